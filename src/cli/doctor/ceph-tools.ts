// The node's Ceph client side (seed 000: kernel and Ceph version mismatches): the fuse mounters
// on $PATH, the client libraries the backends load (librados2, librbd1, libcephfs2, found in the
// loader's cache through `ldconfig -p`) and the client version from `ceph --version`.
import type { Backend, CheckResult, DoctorDeps } from './types.js';
import { onPath, result } from './types.js';

const TOOLS: { name: string; pkg: string; neededBy: Backend }[] = [
  { name: 'rbd-fuse', pkg: 'rbd-fuse', neededBy: 'rbd' },
  { name: 'ceph-fuse', pkg: 'ceph-fuse', neededBy: 'cephfs' },
];

const LIBS: { so: string; pkg: string; neededBy: Backend[] }[] = [
  { so: 'librados.so.2', pkg: 'librados2', neededBy: ['rbd', 'cephfs'] },
  { so: 'librbd.so.1', pkg: 'librbd1', neededBy: ['rbd'] },
  { so: 'libcephfs.so.2', pkg: 'libcephfs2', neededBy: ['cephfs'] },
];

/** "ceph version 18.2.4 (…) reef (stable)" → "18.2.4". */
export function parseCephVersion(text: string): string | undefined {
  return /ceph version (\d+\.\d+\.\d+)/.exec(text)?.[1];
}

export async function clientVersion(deps: DoctorDeps): Promise<string | undefined> {
  try {
    return parseCephVersion((await deps.runner.run('ceph', ['--version'], { timeoutMs: 10_000 })).stdout);
  } catch {
    return undefined;
  }
}

export async function checkCephTools(deps: DoctorDeps, backend: Backend | undefined): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const severity = (needed: boolean) => (needed ? 'FAIL' : 'warn');
  for (const t of TOOLS) {
    if (await onPath(deps.reader, t.name)) out.push(result(`ceph tool ${t.name}`, 'ok', 'on PATH'));
    else out.push(result(`ceph tool ${t.name}`, severity(backend === t.neededBy), `not on PATH: the ${t.neededBy} backend cannot mount`, `apt-get install ${t.pkg}`));
  }
  let cache: string | undefined;
  try {
    cache = (await deps.runner.run('ldconfig', ['-p'], { timeoutMs: 10_000 })).stdout;
  } catch {
    cache = undefined;
  }
  for (const l of LIBS) {
    const check = `ceph library ${l.pkg}`;
    if (cache === undefined) out.push(result(check, 'warn', 'not checked: `ldconfig -p` failed', 'run doctor on a host with ldconfig'));
    else if (cache.includes(`${l.so} `)) out.push(result(check, 'ok', `${l.so} loadable`));
    else out.push(result(check, severity(backend !== undefined && l.neededBy.includes(backend)), `${l.so} not in the loader cache: the ${l.neededBy.join(' and ')} backend${l.neededBy.length > 1 ? 's' : ''} cannot start`, `apt-get install ${l.pkg}`));
  }
  const version = await clientVersion(deps);
  out.push(version ? result('ceph client version', 'ok', version) : result('ceph client version', 'warn', '`ceph --version` not available', 'apt-get install ceph-common'));
  return out;
}
