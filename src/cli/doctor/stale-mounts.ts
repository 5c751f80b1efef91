// Stale mounts under the kubelet roots and the state dirs: a fuse daemon (rbd-fuse, ceph-fuse)
// that died leaves its mount answering every stat with ENOTCONN ("Transport endpoint is not
// connected"); kubelet then cannot unpublish or republish the volume until it is unmounted.
import { isUnder, parseMountLines } from './mountinfo.js';
import type { CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';

const DEAD = new Set(['ENOTCONN', 'ESTALE', 'EIO']);

export async function checkStaleMounts(deps: DoctorDeps, dirs: string[]): Promise<CheckResult[]> {
  const mounts = parseMountLines((await deps.reader.readText('/proc/self/mountinfo')) ?? '').filter((m) => dirs.some((d) => isUnder(m.mountPoint, d)));
  const out: CheckResult[] = [];
  for (const m of mounts) {
    const err = await deps.reader.statError(m.mountPoint);
    if (err !== undefined && DEAD.has(err)) {
      const why = err === 'ENOTCONN' ? 'Transport endpoint is not connected (its fuse daemon is gone)' : `stat fails with ${err}`;
      out.push(result(`stale mount ${m.mountPoint}`, 'FAIL', `${m.fsType} from ${m.source}: ${why}`, `umount -l ${m.mountPoint} (kubelet then stages and publishes it again)`));
    }
  }
  if (out.length === 0) out.push(result('stale mounts', 'ok', `${mounts.length} mount${mounts.length === 1 ? '' : 's'} under ${dirs.join(', ')}, none stale`));
  return out;
}
