// Stale mounts under the kubelet roots and the state dirs: a fuse daemon (rbd-fuse, ceph-fuse)
// that died leaves its mount answering every stat with ENOTCONN ("Transport endpoint is not
// connected"); kubelet then cannot unpublish or republish the volume until it is unmounted.
import { isUnder, parseMountLines } from './mountinfo.js';
import type { CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';

const DEAD = new Set(['ENOTCONN', 'ESTALE', 'EIO', 'ETIMEDOUT']);
/** A mount whose server is gone can hang stat; past this it is reported as not answering. */
const STAT_TIMEOUT_MS = 5_000;

function statWithin(deps: DoctorDeps, path: string, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('ETIMEDOUT'), timeoutMs);
    timer.unref();
  });
  return Promise.race([deps.reader.statError(path), late]).finally(() => clearTimeout(timer));
}

export async function checkStaleMounts(deps: DoctorDeps, dirs: string[], statTimeoutMs = STAT_TIMEOUT_MS): Promise<CheckResult[]> {
  const mounts = parseMountLines((await deps.reader.readText('/proc/self/mountinfo')) ?? '').filter((m) => dirs.some((d) => isUnder(m.mountPoint, d)));
  const out: CheckResult[] = [];
  for (const m of mounts) {
    const err = await statWithin(deps, m.mountPoint, statTimeoutMs);
    if (err !== undefined && DEAD.has(err)) {
      const why = err === 'ENOTCONN' ? 'Transport endpoint is not connected (its fuse daemon is gone)' : err === 'ETIMEDOUT' ? `stat does not return within ${statTimeoutMs} ms` : `stat fails with ${err}`;
      out.push(result(`stale mount ${m.mountPoint}`, 'FAIL', `${m.fsType} from ${m.source}: ${why}`, `umount -l ${m.mountPoint} (kubelet then stages and publishes it again)`));
    }
  }
  if (out.length === 0) out.push(result('stale mounts', 'ok', `${mounts.length} mount${mounts.length === 1 ? '' : 's'} under ${dirs.join(', ')}, none stale`));
  return out;
}
