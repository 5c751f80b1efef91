/**
 * Filesystems on block devices: probe, make, check, grow, and measure.
 * The e2fsprogs/xfsprogs/btrfs-progs tools run through the CommandRunner;
 * sizes and usage come straight from ioctl/statfs.
 */
import { open } from 'node:fs/promises';
import type { CommandRunner } from './exec.js';
import { _IOR, ioctl, O, statfs, withFd } from './syscalls.js';

/** Formatting and growing are quick (lazy init) but must not be cut short on a slow disk. */
const MKFS_TIMEOUT_MS = 5 * 60_000;
const GROW_TIMEOUT_MS = 5 * 60_000;
/** A full e2fsck pass over a large, damaged filesystem can take a while. */
const FSCK_TIMEOUT_MS = 15 * 60_000;

/** BLKGETSIZE64 = _IOR(0x12, 114, size_t): device size in bytes. */
const BLKGETSIZE64 = _IOR(0x12, 114, 8);

const EXT = new Set(['ext2', 'ext3', 'ext4']);

/** Paths reach tools as arguments: an absolute path can never be taken for an option. */
function absolute(path: string): string {
  if (!path.startsWith('/')) throw new RangeError(`expected an absolute path, got ${JSON.stringify(path)}`);
  return path;
}

/**
 * What the device holds: the filesystem type ('ext4', 'xfs'…), else the
 * partition-table type, else 'unknown' for any other signature; null only
 * when the device is readable and blkid positively found nothing. Any other
 * failure throws, so a device that could not be probed is never mistaken for
 * a blank one (and formatted).
 */
export async function probeFilesystem(device: string, runner: CommandRunner): Promise<string | null> {
  // blkid also exits 2 ("nothing found") for a device it cannot open: prove we can read it first.
  const fh = await open(absolute(device), 'r');
  try {
    await fh.read(Buffer.alloc(4096), 0, 4096, 0);
  } finally {
    await fh.close();
  }
  // -p: low-level probe of the device itself, bypassing blkid's cache.
  const { stdout, stderr, exitCode } = await runner.run('blkid', ['-p', '-o', 'export', device], { okExitCodes: [0, 2] });
  if (exitCode === 2 && stderr.trim() !== '') throw new Error(`blkid could not probe ${device}: ${stderr.trim()}`);
  if (exitCode === 2) return null;
  const tags = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) tags.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return tags.get('TYPE') ?? tags.get('PTTYPE') ?? 'unknown';
}

export interface MakeFilesystemOptions {
  label?: string;
}

/** Formats device, overwriting whatever is there: callers probe first. */
export async function makeFilesystem(
  device: string,
  fstype: string,
  runner: CommandRunner,
  opts: MakeFilesystemOptions = {},
): Promise<void> {
  const label = opts.label === undefined ? [] : ['-L', opts.label];
  const dev = absolute(device);
  let cmd: string;
  let args: string[];
  if (EXT.has(fstype)) {
    // -m 0: no root-reserved blocks on a data volume. Lazy inode-table and
    // journal init and no discard make formatting take well under a second.
    cmd = `mkfs.${fstype}`;
    args = ['-F', '-q', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', ...label, dev];
  } else if (fstype === 'xfs') {
    cmd = 'mkfs.xfs';
    args = ['-f', '-q', '-K', ...label, dev]; // -K: no discard
  } else if (fstype === 'btrfs') {
    cmd = 'mkfs.btrfs';
    args = ['-f', '-q', '-K', ...label, dev];
  } else {
    throw new RangeError(`cannot make a ${JSON.stringify(fstype)} filesystem`);
  }
  await runner.run(cmd, args, { timeoutMs: MKFS_TIMEOUT_MS });
}

/**
 * Checks an unmounted filesystem before it is mounted. ext*: `e2fsck -p`
 * (exit 1/2 = errors fixed, ≥4 = unfixable and throws). xfs and btrfs need
 * nothing: their logs replay on mount, and their offline checkers are not
 * meant for routine use.
 */
export async function checkFilesystem(
  device: string,
  fstype: string,
  runner: CommandRunner,
): Promise<'clean' | 'fixed' | 'not-checked'> {
  if (!EXT.has(fstype)) return 'not-checked';
  const { exitCode } = await runner.run('e2fsck', ['-p', absolute(device)], {
    okExitCodes: [0, 1, 2],
    timeoutMs: FSCK_TIMEOUT_MS,
  });
  return exitCode === 0 ? 'clean' : 'fixed';
}

/**
 * Whether an ext* filesystem is smaller than its device by at least one block group (what
 * resize2fs can add). Reads the superblock with dumpe2fs, which works mounted or not.
 */
export async function extGrowthPending(device: string, runner: CommandRunner): Promise<boolean> {
  const { stdout } = await runner.run('dumpe2fs', ['-h', absolute(device)], { timeoutMs: FSCK_TIMEOUT_MS });
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(stdout)?.[1] ?? NaN);
  const blockSize = field('Block size');
  const fsBytes = field('Block count') * blockSize;
  if (!Number.isFinite(fsBytes)) throw new Error(`dumpe2fs gave no block count for ${device}`);
  return (await blockDeviceSize(device)) - fsBytes >= blockSize * field('Blocks per group');
}

/**
 * Grows an unmounted ext* filesystem to fill its device (a volume expanded or restored into a
 * larger size while not staged). Offline growth needs no CAP_SYS_RESOURCE, unlike online growth.
 */
export async function growUnmountedExt(device: string, runner: CommandRunner): Promise<void> {
  // resize2fs insists on a forced check first, so that it never moves a damaged filesystem.
  await runner.run('e2fsck', ['-f', '-p', absolute(device)], { okExitCodes: [0, 1, 2], timeoutMs: FSCK_TIMEOUT_MS });
  await runner.run('resize2fs', [absolute(device)], { timeoutMs: GROW_TIMEOUT_MS });
}

/** Grows a mounted filesystem to fill its (already grown) device. */
export async function growFilesystem(
  device: string,
  mountpoint: string,
  fstype: string,
  runner: CommandRunner,
): Promise<void> {
  const opts = { timeoutMs: GROW_TIMEOUT_MS };
  if (EXT.has(fstype)) await runner.run('resize2fs', [absolute(device)], opts);
  else if (fstype === 'xfs') await runner.run('xfs_growfs', ['-d', absolute(mountpoint)], opts);
  else if (fstype === 'btrfs') await runner.run('btrfs', ['filesystem', 'resize', 'max', absolute(mountpoint)], opts);
  else throw new RangeError(`cannot grow a ${JSON.stringify(fstype)} filesystem`);
}

export interface FilesystemStats {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  /** 0 on filesystems without a fixed inode count (btrfs). */
  totalInodes: number;
  freeInodes: number;
  usedInodes: number;
}

/** Capacity and usage of the filesystem containing path (statfs). */
export async function filesystemStats(path: string): Promise<FilesystemStats> {
  const s = await statfs(path);
  return {
    totalBytes: s.blocks * s.frsize,
    availableBytes: s.bavail * s.frsize,
    usedBytes: (s.blocks - s.bfree) * s.frsize,
    totalInodes: s.files,
    freeInodes: s.ffree,
    usedInodes: s.files - s.ffree,
  };
}

/** Size of a block device in bytes (ioctl BLKGETSIZE64). */
export async function blockDeviceSize(device: string): Promise<number> {
  const size = Buffer.alloc(8);
  await withFd(device, O.RDONLY, (fd) => ioctl(fd, BLKGETSIZE64, size, 'BLKGETSIZE64', device));
  return Number(size.readBigUInt64LE(0));
}
