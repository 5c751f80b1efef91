/**
 * btrfs pool operations through ioctls. Spawning `btrfs` costs milliseconds of
 * CPU per call; an ioctl costs ≈0.1 ms, which is what lets a node create
 * thousands of volumes a second.
 *
 * Struct layouts and request numbers follow include/uapi/linux/btrfs.h and
 * btrfs_tree.h. Multi-byte fields are written little-endian: every Linux
 * target koffi supports is little-endian.
 */
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { _IO, _IOR, _IOW, _IOWR, bufferAddress, close, hasErrorCode, ioctl, O, open, statfs, withFd } from './syscalls.js';

export const BTRFS_SUPER_MAGIC = 0x9123683e;
/** Inode number of every subvolume's root directory, and the lowest subvolume id (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOL_ROOT_INO = 256;
const FIRST_SUBVOLUME_ID = 256;

const BTRFS_IOCTL_MAGIC = 0x94;
/** struct btrfs_ioctl_vol_args { __s64 fd; char name[4088]; } */
const VOL_ARGS_SIZE = 4096;
const VOL_ARGS_NAME_OFFSET = 8;
/**
 * struct btrfs_ioctl_vol_args_v2 { __s64 fd; __u64 transid; __u64 flags;
 *   union { struct { __u64 size; struct btrfs_qgroup_inherit *qgroup_inherit; }; __u64 unused[4]; };
 *   union { char name[4040]; __u64 devid; __u64 subvolid; }; }
 */
const VOL_ARGS_V2_SIZE = 4096;
const V2_FD = 0;
const V2_FLAGS = 16;
const V2_INHERIT_SIZE = 24;
const V2_INHERIT_PTR = 32;
const V2_NAME_OFFSET = 56;
/**
 * struct btrfs_qgroup_inherit { __u64 flags, num_qgroups, num_ref_copies, num_excl_copies;
 *   struct btrfs_qgroup_limit lim; __u64 qgroups[]; }  (we pass no qgroups[])
 */
const INHERIT_SIZE = 72;
const INHERIT_LIM_OFFSET = 32;
/** struct btrfs_qgroup_limit { __u64 flags, max_rfer, max_excl, rsv_rfer, rsv_excl; } */
const QGROUP_LIMIT_SIZE = 40;
/** struct btrfs_ioctl_qgroup_limit_args { __u64 qgroupid; struct btrfs_qgroup_limit lim; } */
const QGROUP_LIMIT_ARGS_SIZE = 8 + QGROUP_LIMIT_SIZE;
/** struct btrfs_ioctl_qgroup_create_args { __u64 create; __u64 qgroupid; } */
const QGROUP_CREATE_ARGS_SIZE = 16;
/** struct btrfs_ioctl_quota_ctl_args { __u64 cmd; __u64 status; } */
const QUOTA_CTL_ARGS_SIZE = 16;
/** struct btrfs_ioctl_ino_lookup_args { __u64 treeid; __u64 objectid; char name[4080]; } */
const INO_LOOKUP_ARGS_SIZE = 4096;
/** struct btrfs_ioctl_fs_info_args { __u64 max_id; __u64 num_devices; __u8 fsid[16]; … } (1024 bytes) */
const FS_INFO_ARGS_SIZE = 1024;
const FS_INFO_FSID_OFFSET = 16;

const BTRFS_IOC_SYNC = _IO(BTRFS_IOCTL_MAGIC, 8);
const BTRFS_IOC_SNAP_DESTROY = _IOW(BTRFS_IOCTL_MAGIC, 15, VOL_ARGS_SIZE);
const BTRFS_IOC_INO_LOOKUP = _IOWR(BTRFS_IOCTL_MAGIC, 18, INO_LOOKUP_ARGS_SIZE);
const BTRFS_IOC_SNAP_CREATE_V2 = _IOW(BTRFS_IOCTL_MAGIC, 23, VOL_ARGS_V2_SIZE);
const BTRFS_IOC_SUBVOL_CREATE_V2 = _IOW(BTRFS_IOCTL_MAGIC, 24, VOL_ARGS_V2_SIZE);
const BTRFS_IOC_FS_INFO = _IOR(BTRFS_IOCTL_MAGIC, 31, FS_INFO_ARGS_SIZE);
const BTRFS_IOC_QUOTA_CTL = _IOWR(BTRFS_IOCTL_MAGIC, 40, QUOTA_CTL_ARGS_SIZE);
const BTRFS_IOC_QGROUP_CREATE = _IOW(BTRFS_IOCTL_MAGIC, 42, QGROUP_CREATE_ARGS_SIZE);
// The kernel header really declares QGROUP_LIMIT as _IOR although userspace writes the args.
const BTRFS_IOC_QGROUP_LIMIT = _IOR(BTRFS_IOCTL_MAGIC, 43, QGROUP_LIMIT_ARGS_SIZE);
/** FICLONE = _IOW(0x94, 9, int): generic since Linux 4.5, born as BTRFS_IOC_CLONE. */
const FICLONE = _IOW(BTRFS_IOCTL_MAGIC, 9, 4);

const BTRFS_SUBVOL_RDONLY = 1n << 1n;
const BTRFS_SUBVOL_QGROUP_INHERIT = 1n << 2n;
const BTRFS_QGROUP_INHERIT_SET_LIMITS = 1n << 0n;
const BTRFS_QGROUP_LIMIT_MAX_RFER = 1n << 0n;
/** A limit value of (u64)-1 clears the limit. */
const QGROUP_LIMIT_CLEAR = 0xffff_ffff_ffff_ffffn;
const BTRFS_QUOTA_CTL_ENABLE = 1n;
const BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA = 4n;

const DIR_FLAGS = O.RDONLY | O.DIRECTORY;

export async function isBtrfs(path: string): Promise<boolean> {
  return (await statfs(path)).type === BTRFS_SUPER_MAGIC;
}

/** True when path is the root directory of a btrfs subvolume. */
export async function isSubvolume(path: string): Promise<boolean> {
  return (await stat(path)).ino === SUBVOL_ROOT_INO && (await isBtrfs(path));
}

/** Names come from callers: allow exactly one path component, nothing the kernel would reinterpret. */
function checkName(name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > 255 || name === '.' || name === '..' || /[/\0]/.test(name)) {
    throw new RangeError(`invalid btrfs subvolume name ${JSON.stringify(name)}`);
  }
}

function volArgs(name: string): Buffer {
  const buf = Buffer.alloc(VOL_ARGS_SIZE);
  buf.write(name, VOL_ARGS_NAME_OFFSET);
  return buf;
}

/**
 * vol_args_v2, followed in the same buffer by a qgroup_inherit carrying the
 * limit when maxBytes is given.
 */
function volArgsV2(name: string, flags: bigint, maxBytes: number | undefined, srcFd = 0): Buffer {
  const buf = Buffer.alloc(VOL_ARGS_V2_SIZE + (maxBytes === undefined ? 0 : INHERIT_SIZE));
  buf.writeBigInt64LE(BigInt(srcFd), V2_FD);
  buf.write(name, V2_NAME_OFFSET);
  if (maxBytes !== undefined) {
    const inherit = buf.subarray(VOL_ARGS_V2_SIZE);
    inherit.writeBigUInt64LE(BTRFS_QGROUP_INHERIT_SET_LIMITS, 0);
    writeLimit(inherit.subarray(INHERIT_LIM_OFFSET), maxBytes);
    flags |= BTRFS_SUBVOL_QGROUP_INHERIT;
    buf.writeBigUInt64LE(BigInt(INHERIT_SIZE), V2_INHERIT_SIZE);
    // The kernel copies the inherit struct during the call; buf stays alive until then.
    buf.writeBigUInt64LE(bufferAddress(inherit), V2_INHERIT_PTR);
  }
  buf.writeBigUInt64LE(flags, V2_FLAGS);
  return buf;
}

function writeLimit(lim: Buffer, maxBytes: number | null): void {
  lim.writeBigUInt64LE(BTRFS_QGROUP_LIMIT_MAX_RFER, 0);
  lim.writeBigUInt64LE(maxBytes === null ? QGROUP_LIMIT_CLEAR : BigInt(maxBytes), 8);
}

export interface CreateSubvolumeOptions {
  /**
   * Referenced-bytes limit, passed as qgroup inheritance so one ioctl creates
   * the subvolume with its limit in place: no window (or crash) leaving it
   * unlimited, one transaction join instead of two. Beware: the kernel
   * silently ignores it when quotas are off, so enableQuota() the pool first.
   */
  maxBytes?: number;
}

/** Creates subvolume dir/name (BTRFS_IOC_SUBVOL_CREATE_V2). EEXIST if it exists. */
export async function createSubvolume(dir: string, name: string, opts: CreateSubvolumeOptions = {}): Promise<void> {
  checkName(name);
  const args = volArgsV2(name, 0n, opts.maxBytes);
  await withFd(dir, DIR_FLAGS, (fd) => ioctl(fd, BTRFS_IOC_SUBVOL_CREATE_V2, args, 'BTRFS_IOC_SUBVOL_CREATE_V2', `${dir}/${name}`));
}

export interface SnapshotOptions {
  readonly?: boolean;
  /**
   * Referenced-bytes limit for the snapshot. Set as a second step: with full
   * qgroups the kernel copies the source's limit onto a snapshot after applying
   * any inherited one. Without it the snapshot keeps the source's limit (full
   * mode) or has none (simple mode).
   */
  maxBytes?: number;
}

/** Snapshots subvolume src as dir/name (BTRFS_IOC_SNAP_CREATE_V2). Waits for a transaction commit. */
export async function snapshotSubvolume(src: string, dir: string, name: string, opts: SnapshotOptions = {}): Promise<void> {
  checkName(name);
  const srcFd = open(src, DIR_FLAGS);
  try {
    const args = volArgsV2(name, opts.readonly ? BTRFS_SUBVOL_RDONLY : 0n, undefined, srcFd);
    await withFd(dir, DIR_FLAGS, (fd) => ioctl(fd, BTRFS_IOC_SNAP_CREATE_V2, args, 'BTRFS_IOC_SNAP_CREATE_V2', `${dir}/${name}`));
  } finally {
    close(srcFd);
  }
  if (opts.maxBytes !== undefined) await setQgroupLimit(`${dir}/${name}`, opts.maxBytes);
}

/**
 * Deletes subvolume dir/name (BTRFS_IOC_SNAP_DESTROY); a missing one is fine.
 * The subvolume is unlinked at once; its data is freed later by the cleaner
 * thread, which runs after a transaction commit.
 *
 * Its qgroup cannot be destroyed here: the kernel refuses (EBUSY) until the
 * cleaner has dropped the subvolume. It then removes the qgroup itself (seen
 * on 6.18, both quota modes), except with simple quotas when other subvolumes
 * (clones, snapshots) still use extents it wrote: those stay charged to it,
 * and the qgroup lingers, at 0 bytes once they are gone. removeStaleQgroups()
 * sweeps those.
 */
export async function deleteSubvolume(dir: string, name: string): Promise<void> {
  checkName(name);
  try {
    await withFd(dir, DIR_FLAGS, (fd) => ioctl(fd, BTRFS_IOC_SNAP_DESTROY, volArgs(name), 'BTRFS_IOC_SNAP_DESTROY', `${dir}/${name}`));
  } catch (err) {
    if (!hasErrorCode(err, 'ENOENT')) throw err;
  }
}

/** The id of the subvolume containing path (BTRFS_IOC_INO_LOOKUP with treeid 0). */
export async function subvolumeId(path: string): Promise<number> {
  const args = Buffer.alloc(INO_LOOKUP_ARGS_SIZE);
  args.writeBigUInt64LE(BigInt(SUBVOL_ROOT_INO), 8);
  await withFd(path, O.RDONLY, (fd) => ioctl(fd, BTRFS_IOC_INO_LOOKUP, args, 'BTRFS_IOC_INO_LOOKUP', path));
  return Number(args.readBigUInt64LE(0));
}

/** Sets (or with null clears) the referenced-bytes limit of the subvolume containing subvolPath. */
export async function setQgroupLimit(subvolPath: string, maxBytes: number | null): Promise<void> {
  const args = Buffer.alloc(QGROUP_LIMIT_ARGS_SIZE);
  // qgroupid 0 = the level-0 qgroup of the subvolume the fd is in.
  writeLimit(args.subarray(8), maxBytes);
  await withFd(subvolPath, O.RDONLY, (fd) => ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, args, 'BTRFS_IOC_QGROUP_LIMIT', subvolPath));
}

export type QuotaMode = 'full' | 'simple';

/**
 * Turns quotas on (idempotent). 'simple' quotas (Linux ≥ 6.7) account each
 * extent to the subvolume that wrote it instead of walking backrefs. The
 * kernel keeps whatever mode is already on, so the mode in force is returned.
 */
export async function enableQuota(mountpoint: string, mode: QuotaMode = 'full'): Promise<QuotaMode> {
  const args = Buffer.alloc(QUOTA_CTL_ARGS_SIZE);
  args.writeBigUInt64LE(mode === 'simple' ? BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA : BTRFS_QUOTA_CTL_ENABLE, 0);
  await withFd(mountpoint, DIR_FLAGS, (fd) => ioctl(fd, BTRFS_IOC_QUOTA_CTL, args, 'BTRFS_IOC_QUOTA_CTL', mountpoint));
  const status = await quotaStatus(mountpoint);
  if (!status) throw new Error(`quotas on ${mountpoint} are still off after BTRFS_IOC_QUOTA_CTL`);
  return status.mode;
}

/*
 * Quota state is read from /sys/fs/btrfs/<fsid>/qgroups (Linux ≥ 5.9), the
 * kernel's in-memory view: a limit set at creation shows at once, where the
 * on-disk quota tree (what `btrfs qgroup show` reads) lags until the next
 * transaction commit. Usage numbers in both move at commits.
 */

/** sysfs directory of the filesystem containing path (named by its fsid, from BTRFS_IOC_FS_INFO). */
async function sysfsDir(path: string): Promise<string> {
  const args = Buffer.alloc(FS_INFO_ARGS_SIZE);
  await withFd(path, O.RDONLY, (fd) => ioctl(fd, BTRFS_IOC_FS_INFO, args, 'BTRFS_IOC_FS_INFO', path));
  const hex = args.toString('hex', FS_INFO_FSID_OFFSET, FS_INFO_FSID_OFFSET + 16);
  const uuid = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join('-');
  return `/sys/fs/btrfs/${uuid}`;
}

/** Contents of a sysfs file, or null when it does not exist. */
async function readSysfs(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    // ENODEV: the kernel removed the object (a qgroup) between open and read — gone all the same.
    if (hasErrorCode(err, 'ENOENT', 'ENODEV')) return null;
    throw err;
  }
}

export interface QuotaStatus {
  mode: QuotaMode;
  /** Full-mode numbers are wrong until a rescan completes (the kernel starts one itself). */
  inconsistent: boolean;
}

/** Quota state of the filesystem containing path; null when quotas are off. */
export async function quotaStatus(path: string): Promise<QuotaStatus | null> {
  const qgroups = `${await sysfsDir(path)}/qgroups`;
  const [mode, inconsistent] = await Promise.all([readSysfs(`${qgroups}/mode`), readSysfs(`${qgroups}/inconsistent`)]);
  if (mode === null) return null;
  return { mode: mode === 'squota' ? 'simple' : 'full', inconsistent: inconsistent === '1' };
}

export interface QgroupUsage {
  /** Bytes referenced by the subvolume, as of the last transaction commit. */
  referencedBytes: number;
  /** Bytes referenced by this subvolume alone (shared with no other), as of the last commit. */
  exclusiveBytes: number;
  /** Referenced-bytes limit, or null when none is set. */
  limitBytes: number | null;
}

/**
 * Usage and limit of a subvolume's level-0 qgroup. `subvolId` defaults to the
 * subvolume containing path; pass it to ask about a qgroup whose subvolume is
 * gone. null when that qgroup does not exist or quotas are off.
 */
export async function qgroupUsage(path: string, subvolId?: number): Promise<QgroupUsage | null> {
  const [dir, id] = await Promise.all([sysfsDir(path), subvolId ?? subvolumeId(path)]);
  const qgroup = `${dir}/qgroups/0_${id}`;
  const [referenced, exclusive, limitFlags, maxReferenced] = await Promise.all(
    ['referenced', 'exclusive', 'limit_flags', 'max_referenced'].map((f) => readSysfs(`${qgroup}/${f}`)),
  );
  if (referenced == null || exclusive == null || limitFlags == null || maxReferenced == null) return null;
  const limited = (BigInt(limitFlags) & BTRFS_QGROUP_LIMIT_MAX_RFER) !== 0n;
  return { referencedBytes: Number(referenced), exclusiveBytes: Number(exclusive), limitBytes: limited ? Number(maxReferenced) : null };
}

/**
 * Bytes of file data the filesystem holds right now (allocation/data/bytes_used in sysfs: extents
 * in data block groups, each counted once however many subvolumes share it).
 */
export async function dataBytesUsed(path: string): Promise<number> {
  const used = await readSysfs(`${await sysfsDir(path)}/allocation/data/bytes_used`);
  if (used === null) throw new Error(`no btrfs data allocation figures for ${path} in sysfs`);
  return Number(used);
}

/**
 * Destroys level-0 qgroups whose subvolume is gone and whose usage has dropped
 * to 0 (see deleteSubvolume); returns their ids. Relies on the kernel refusing
 * (EBUSY) to destroy the qgroup of a live subvolume, verified on 6.18: a fresh
 * live subvolume can show 0 bytes before its first commit.
 */
export async function removeStaleQgroups(mountpoint: string): Promise<number[]> {
  const qgroups = `${await sysfsDir(mountpoint)}/qgroups`;
  let entries: string[];
  try {
    entries = await readdir(qgroups);
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return []; // quotas off
    throw err;
  }
  const removed: number[] = [];
  await withFd(mountpoint, DIR_FLAGS, async (fd) => {
    for (const entry of entries) {
      const id = Number(/^0_(\d+)$/.exec(entry)?.[1]);
      if (!(id >= FIRST_SUBVOLUME_ID) || (await readSysfs(`${qgroups}/${entry}/referenced`)) !== '0') continue;
      const args = Buffer.alloc(QGROUP_CREATE_ARGS_SIZE); // create = 0: destroy
      args.writeBigUInt64LE(BigInt(id), 8);
      try {
        await ioctl(fd, BTRFS_IOC_QGROUP_CREATE, args, 'BTRFS_IOC_QGROUP_CREATE', `${mountpoint} qgroup 0/${id}`);
        removed.push(id);
      } catch (err) {
        if (!hasErrorCode(err, 'EBUSY', 'ENOENT')) throw err; // live subvolume, or already gone
      }
    }
  });
  return removed;
}

/** Commits the current transaction (BTRFS_IOC_SYNC), which also refreshes qgroup numbers. */
export async function syncFilesystem(path: string): Promise<void> {
  await withFd(path, O.RDONLY, (fd) => ioctl(fd, BTRFS_IOC_SYNC, 0, 'BTRFS_IOC_SYNC', path));
}

/**
 * Creates dstFile sharing srcFile's extents (FICLONE): instant, no data copied.
 * Fails where the filesystem cannot reflink (EXDEV, EINVAL, or EOPNOTSUPP,
 * which Node and SyscallError name 'ENOTSUP'), and with EEXIST if dstFile
 * exists; a failed attempt leaves no dstFile behind.
 */
export async function reflinkCopy(srcFile: string, dstFile: string): Promise<void> {
  const src = open(srcFile, O.RDONLY);
  try {
    // 0600: volume images are private to the driver.
    const dst = open(dstFile, O.WRONLY | O.CREAT | O.EXCL, 0o600);
    try {
      await ioctl(dst, FICLONE, src, 'FICLONE', dstFile);
    } catch (err) {
      await unlink(dstFile).catch(() => {}); // the reflink error is the one worth reporting
      throw err;
    } finally {
      close(dst);
    }
  } finally {
    close(src);
  }
}
