// Leftover loop devices (seed 000's orphans, the local backend's pools): from /sys/block/loopN,
// a device whose backing file was deleted, or whose file lies under our state dirs while nothing
// mounts the device, holds space and a loop slot until `losetup -d`.
import { isUnder, parseMountLines } from './mountinfo.js';
import type { CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';

const DELETED = ' (deleted)';

export async function checkLoopDevices(deps: DoctorDeps, stateDirs: string[]): Promise<CheckResult[]> {
  const mounted = new Set(parseMountLines((await deps.reader.readText('/proc/self/mountinfo')) ?? '').map((m) => m.source));
  const out: CheckResult[] = [];
  let attached = 0;
  for (const name of (await deps.reader.list('/sys/block')).filter((n) => /^loop\d+$/.test(n)).sort()) {
    const backing = (await deps.reader.readText(`/sys/block/${name}/loop/backing_file`))?.trim();
    if (!backing) continue;
    attached++;
    const dev = `/dev/${name}`;
    const inUse = mounted.has(dev) || (await deps.reader.list(`/sys/block/${name}/holders`)).length > 0;
    const file = backing.endsWith(DELETED) ? backing.slice(0, -DELETED.length) : backing;
    if (backing.endsWith(DELETED) || (await deps.reader.statError(file)) === 'ENOENT') {
      out.push(result(`loop device ${dev}`, 'warn', `backing file ${file} is deleted${inUse ? ' (still mounted)' : ''}`, inUse ? `unmount it, then losetup -d ${dev}` : `losetup -d ${dev}`));
    } else if (!inUse && stateDirs.some((d) => isUnder(file, d))) {
      out.push(result(`loop device ${dev}`, 'warn', `left over: backs ${file} under our state dir and nothing mounts it`, `losetup -d ${dev}`));
    }
  }
  if (out.length === 0) out.push(result('loop devices', 'ok', `${attached} attached, none left over`));
  return out;
}
