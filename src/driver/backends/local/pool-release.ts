import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Unmounts a pool that `openPool` mounted from DIR/pool.img and detaches its loop device. The
 * driver never does this on its own (staged volumes outlive driver restarts); this is for tearing
 * a node down, and for tests and the demo, which must leave nothing behind.
 */
export async function releasePool(dir: string): Promise<void> {
  const root = join(dir, 'pool');
  const image = join(dir, 'pool.img');
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const mounted = mountinfo.split('\n').some((line) => line.split(' ')[4] === root);
  if (mounted) await run('umount', [root]);
  for (const name of await readdir('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
    if (backing.trim() === image) await run('losetup', ['-d', `/dev/${name}`]).catch(() => undefined);
  }
}
