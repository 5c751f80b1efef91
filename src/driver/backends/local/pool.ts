import { mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { enableQuota, isBtrfs } from '../../mount/btrfs.js';
import { makeFilesystem, probeFilesystem } from '../../mount/filesystem.js';
import type { LoopDevices } from '../../mount/loop.js';
import type { Mounter } from '../../mount/mount.js';
import type { CommandRunner } from '../../mount/exec.js';

/**
 * max_inline=0: a small file's data goes to a data extent, never inline into the metadata tree.
 * Why: the pool promises its data capacity (pool-capacity.ts), and metadata is stored twice (DUP)
 * while a qgroup counts it once: two 100Mi volumes filled with 1 KiB files (inlined) ran the 300Mi
 * pool's metadata out at 27.5 MiB of the second; with max_inline=0 both stopped at their quota
 * (EDQUOT), as with larger files. The cost: a file under 4 KiB takes a 4 KiB block.
 */
export const POOL_MOUNT_OPTIONS = ['max_inline=0'];

export interface PoolDeps {
  runner: CommandRunner;
  mounter: Mounter;
  loops: LoopDevices;
  log: Logger;
}

export interface Pool {
  /** The btrfs filesystem the volumes live on. */
  root: string;
  /** Set when the pool is an image file we created and mounted ourselves. */
  image?: string;
}

/**
 * Makes `dir` usable as a quota-enforcing btrfs pool. A directory already on btrfs is used as it
 * is; otherwise a sparse `pool.img` of `sizeBytes` is created (once), formatted btrfs and mounted
 * at `dir/pool`. Safe to call at every start: nothing is formatted that already holds data.
 */
export async function openPool(dir: string, sizeBytes: number, deps: PoolDeps): Promise<Pool> {
  await mkdir(dir, { recursive: true });
  if (await isBtrfs(dir)) {
    await enableQuota(dir);
    return { root: dir };
  }
  const root = join(dir, 'pool');
  const image = join(dir, 'pool.img');
  await mkdir(root, { recursive: true });
  if (await deps.mounter.isMountPoint(root)) {
    if (!(await isBtrfs(root))) throw new Error(`${root} is mounted but is not btrfs; refusing to use it as the pool`);
  } else {
    const created = await createSparse(image, sizeBytes);
    // Direct I/O: the pool's writes bypass the host page cache, so syncing the journal on the host
    // filesystem does not also wait for the pool image's dirty pages (ext4 data=ordered).
    const device = await deps.loops.ensureAttached(image, { directIo: true });
    try {
      const fs = await probeFilesystem(device, deps.runner);
      if (fs === null) {
        deps.log.info({ image, sizeBytes, created }, 'formatting new btrfs pool');
        await makeFilesystem(device, 'btrfs', deps.runner, { label: 'stowage-pool' });
      } else if (fs !== 'btrfs') {
        throw new Error(`${image} holds a ${fs} filesystem, not btrfs; refusing to format it`);
      }
      await deps.mounter.mount(device, root, 'btrfs', POOL_MOUNT_OPTIONS);
    } catch (e) {
      // A pool we could not mount must not leave its loop device behind when the driver exits.
      await deps.loops.detach(device).catch(() => undefined);
      throw e;
    }
    deps.log.info({ image, device, root }, 'pool mounted');
  }
  await enableQuota(root);
  return { root, image };
}

/** Creates a sparse file of the given size unless it exists; true if it was created. */
async function createSparse(path: string, sizeBytes: number): Promise<boolean> {
  try {
    await stat(path);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.truncate(sizeBytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}
