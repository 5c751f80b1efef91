// Kubelet roots and mount propagation (seed 000): the node plugin mounts into the kubelet root
// with Bidirectional propagation, which only reaches kubelet and the pods when the mount the root
// lies on is shared. A private one lets the plugin's mounts vanish from the pod's view.
import { mountOf, parseMountLines } from './mountinfo.js';
import type { CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';

export async function checkPropagation(deps: DoctorDeps, kubeletDirs: string[]): Promise<CheckResult[]> {
  const mounts = parseMountLines((await deps.reader.readText('/proc/self/mountinfo')) ?? '');
  const out: CheckResult[] = [];
  for (const dir of kubeletDirs) {
    const check = `kubelet dir ${dir}`;
    const err = await deps.reader.statError(dir);
    if (err !== undefined) {
      out.push(result(check, 'FAIL', `does not exist (${err})`, `start kubelet with --root-dir, or pass --kubelet-dir with kubelet's root`));
      continue;
    }
    const m = mountOf(mounts, dir);
    const shared = m?.tags.find((t) => t.startsWith('shared:'));
    const where = m === undefined ? 'on no mount' : m.mountPoint === dir ? 'a mount point' : `not a mount point, on ${m.mountPoint}`;
    if (shared) out.push(result(check, 'ok', `${where}, shared (${shared}): Bidirectional propagation works`));
    else {
      const kind = m?.tags.some((t) => t.startsWith('master:')) ? 'slave' : 'private';
      const fix = m?.mountPoint === dir ? `mount --make-rshared ${dir}` : `mount --bind ${dir} ${dir} && mount --make-rshared ${dir}`;
      out.push(result(check, 'FAIL', `${where}, ${kind}: the plugin's Bidirectional mounts will not reach kubelet and the pods`, fix));
    }
  }
  return out;
}
