import { join } from 'node:path';
import { pino } from 'pino';
import { ExecRunner } from '../../mount/exec.js';
import { LoopDevices } from '../../mount/loop.js';
import { Mounter } from '../../mount/mount.js';

/**
 * Unmounts a pool that `openPool` mounted from DIR/pool.img and detaches its loop device. The
 * driver never does this on its own (staged volumes outlive driver restarts); this is for tearing
 * a node down, and for tests and the demo, which must leave nothing behind.
 */
export async function releasePool(
  dir: string,
  mounter = new Mounter(new ExecRunner(pino({ level: 'warn' }))),
  loops = new LoopDevices(),
): Promise<void> {
  const root = join(dir, 'pool');
  // Unmount every stacked mount at the root (a crashed run may have mounted it twice).
  while (await mounter.isMountPoint(root)) await mounter.unmount(root);
  for (const device of await loops.devicesFor(join(dir, 'pool.img'))) await loops.detach(device);
}
