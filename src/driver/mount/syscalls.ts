/**
 * koffi bindings to the few libc calls the mount layer makes directly.
 *
 * Failures throw SyscallError carrying errno/code and naming the call and path.
 *
 * Sync vs async: a koffi call blocks the JS thread for its whole duration. We
 * measured btrfs ioctls (subvolume create, qgroup limit) at p50 ≈ 0.5 ms but
 * p99 ≈ 10 ms when they wait on a transaction, and mount/umount/statfs can wait
 * on I/O or a network filesystem. So those go through koffi's async variant
 * (a worker thread; ≈15–40 µs of overhead per call, measured) and the event
 * loop keeps serving. Only open/close stay synchronous: we open directories,
 * device nodes and image files on local filesystems, which do not wait on I/O.
 */
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { getSystemErrorMessage, getSystemErrorName } from 'node:util';
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';

type AsyncCallback = (err: unknown, result: number) => void;
interface Binding {
  (...args: unknown[]): number;
  async(...args: [...unknown[], AsyncCallback]): void;
}

const DECLS = {
  open: 'int open(const char *path, int flags, uint32_t mode)',
  // The *at calls walk CO-given paths one component at a time from a directory fd (mount/beneath.ts).
  openat: 'int openat(int dirfd, const char *path, int flags, uint32_t mode)',
  mkdirat: 'int mkdirat(int dirfd, const char *path, uint32_t mode)',
  unlinkat: 'int unlinkat(int dirfd, const char *path, int flags)',
  close: 'int close(int fd)',
  // ioctl(2) is variadic; declaring a fixed third argument lets koffi call it
  // asynchronously (it cannot for variadic functions) and is ABI-safe for one
  // integer/pointer argument on every Linux target koffi supports.
  ioctlPtr: 'int ioctl(int fd, unsigned long request, void *arg)',
  ioctlInt: 'int ioctl(int fd, unsigned long request, unsigned long arg)',
  mount: 'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  umount2: 'int umount2(const char *target, int flags)',
  // glibc ≥ 2.36; bound on first use so an older libc only loses this call.
  mountSetattr: 'int mount_setattr(int dirfd, const char *path, unsigned int flags, void *attr, size_t size)',
  statfs: 'int statfs(const char *path, void *buf)',
  statx: 'int statx(int dirfd, const char *path, int flags, uint32_t mask, void *buf)',
} as const;

let libc: LibraryHandle | undefined;
const bindings = new Map<keyof typeof DECLS, Binding>();

/** libc is loaded, and each function bound, on first use: importing this module costs nothing. */
function fn(name: keyof typeof DECLS): Binding {
  let binding = bindings.get(name);
  if (!binding) {
    libc ??= koffi.load('libc.so.6');
    binding = libc.func(DECLS[name]) as unknown as Binding;
    bindings.set(name, binding);
  }
  return binding;
}

/** errno → name from the OS table, for the few libuv cannot name (EDQUOT…). */
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, no]) => [no, name]));

/** The errno's name as Node would give it (libuv's, e.g. 'ENOTSUP' for 95), else the OS table's. */
function errnoName(errno: number): string {
  const name = getSystemErrorName(-errno);
  return name.startsWith('Unknown') ? (ERRNO_NAMES.get(errno) ?? `errno ${errno}`) : name;
}

export class SyscallError extends Error {
  override readonly name = 'SyscallError';
  /** e.g. 'ENOENT', 'EINVAL', 'EBUSY'. */
  readonly code: string;

  constructor(
    /** The call, e.g. 'mount' or 'ioctl(BTRFS_IOC_SUBVOL_CREATE)'. */
    readonly syscall: string,
    /** Positive libc errno. */
    readonly errno: number,
    readonly path?: string,
  ) {
    const code = errnoName(errno);
    const text = getSystemErrorMessage(-errno);
    // libuv has no text for some errnos (EDQUOT…): the name alone is clearer than "Unknown system error".
    super(`${syscall}${path === undefined ? '' : ` ${path}`}: ${code}${text.startsWith('Unknown') ? '' : ` (${text})`}`);
    this.code = code;
  }
}

/** True when err carries one of the codes; works for SyscallError and Node fs errors. */
export function hasErrorCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}

function check(result: number, syscall: string, path?: string): number {
  if (result < 0) throw new SyscallError(syscall, koffi.errno(), path);
  return result;
}

function callAsync(binding: Binding, args: unknown[], syscall: string, path?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    binding.async(...args, (err: unknown, result: number) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      // koffi ≥3.2 exposes the worker thread's errno inside the callback.
      else if (result < 0) reject(new SyscallError(syscall, koffi.errno(), path));
      else resolve(result);
    });
  });
}

/** Address of a buffer's bytes, for structs that point at other buffers. */
export function bufferAddress(buf: Buffer): bigint {
  return koffi.address(buf);
}

/** O_* flags from Node (they differ per architecture), plus O_CLOEXEC which Node does not export. */
export const O = {
  RDONLY: fsConstants.O_RDONLY,
  WRONLY: fsConstants.O_WRONLY,
  RDWR: fsConstants.O_RDWR,
  CREAT: fsConstants.O_CREAT,
  EXCL: fsConstants.O_EXCL,
  DIRECTORY: fsConstants.O_DIRECTORY,
  NOFOLLOW: fsConstants.O_NOFOLLOW,
  CLOEXEC: 0o2000000,
  /** O_PATH: a handle on a place in the tree, not an open file (no read, no write, no device open). */
  PATH: 0o10000000,
} as const;

/** open(2); O_CLOEXEC is always added so spawned commands never inherit the fd. */
export function open(path: string, flags: number, mode = 0): number {
  return check(fn('open')(path, flags | O.CLOEXEC, mode), 'open', path);
}

/** openat(2), synchronous like open (it walks a local directory); O_CLOEXEC is always added. */
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  return check(fn('openat')(dirfd, path, flags | O.CLOEXEC, mode), 'openat', path);
}

export function mkdirat(dirfd: number, path: string, mode: number): void {
  check(fn('mkdirat')(dirfd, path, mode), 'mkdirat', path);
}

export const AT_REMOVEDIR = 0x200;

export function unlinkat(dirfd: number, path: string, flags: number): void {
  check(fn('unlinkat')(dirfd, path, flags), 'unlinkat', path);
}

export function close(fd: number): void {
  check(fn('close')(fd), 'close');
}

/** Runs fn with a freshly opened fd, closing it afterwards whatever happens. */
export async function withFd<T>(path: string, flags: number, use: (fd: number) => Promise<T>, mode = 0): Promise<T> {
  const fd = open(path, flags, mode);
  try {
    return await use(fd);
  } finally {
    close(fd);
  }
}

// Linux ioctl request encoding (include/uapi/asm-generic/ioctl.h):
// bits 0–7 nr, 8–15 type, 16–29 argument size, 30–31 direction.
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export const _IO = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
export const _IOW = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
export const _IOR = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, type, nr, size);

/**
 * ioctl(2) on a worker thread. `arg` is a buffer the kernel reads/writes in
 * place, or an integer passed by value. `name` (e.g. 'FICLONE') and `path`
 * only label errors.
 */
export function ioctl(fd: number, request: number, arg: Buffer | number, name: string, path?: string): Promise<number> {
  const binding = typeof arg === 'number' ? fn('ioctlInt') : fn('ioctlPtr');
  return callAsync(binding, [fd, request, arg], `ioctl(${name})`, path);
}

export async function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): Promise<void> {
  await callAsync(fn('mount'), [source, target, fstype, flags, data], 'mount', target);
}

export async function umount2(target: string, flags: number): Promise<void> {
  await callAsync(fn('umount2'), [target, flags], 'umount2', target);
}

export interface StatFs {
  /** Filesystem magic, e.g. 0x9123683e for btrfs. */
  type: number;
  bsize: number;
  /** Unit of the block counts (the kernel reports bsize here when the fs has no fragments). */
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

// struct statfs on 64-bit Linux (x86_64 and asm-generic alike): ten 8-byte words
// then spares. Read little-endian: every 64-bit target koffi supports on Linux is LE.
const STATFS_SIZE = 120;
const STATFS_FIELDS = ['type', 'bsize', 'blocks', 'bfree', 'bavail', 'files', 'ffree'] as const;
const STATFS_FRSIZE_OFFSET = 72;

export async function statfs(path: string): Promise<StatFs> {
  const buf = Buffer.alloc(STATFS_SIZE);
  await callAsync(fn('statfs'), [path, buf], 'statfs', path);
  const out = { frsize: Number(buf.readBigInt64LE(STATFS_FRSIZE_OFFSET)) } as StatFs;
  STATFS_FIELDS.forEach((field, i) => {
    out[field] = Number(buf.readBigInt64LE(i * 8));
  });
  return out;
}

const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
// struct statx (include/uapi/linux/stat.h), the same on every architecture.
const STATX_SIZE = 256;
const STATX_MNT_ID = 0x1000;
const STATX_MASK_OFFSET = 0x00;
const STATX_ATTRIBUTES_OFFSET = 0x08;
const STATX_ATTRIBUTES_MASK_OFFSET = 0x38;
const STATX_MNT_ID_OFFSET = 0x90;
const STATX_TYPE = 0x1;
const STATX_SIZE_MASK = 0x200;
const STATX_MODE_OFFSET = 0x1c;
const STATX_SIZE_OFFSET = 0x28;

export interface StatxMount {
  /** STATX_ATTR_* bits set for this file. */
  attributes: bigint;
  /** STATX_ATTR_* bits this kernel and filesystem actually report. */
  attributesMask: bigint;
  /** The mount the file is on (mountinfo's first field); null if the kernel did not say. */
  mountId: number | null;
}

/** statx(2) for what Node's fs.stat does not expose: mount id and STATX_ATTR_MOUNT_ROOT. */
export async function statxMount(path: string, flags: number): Promise<StatxMount> {
  const buf = Buffer.alloc(STATX_SIZE);
  await callAsync(fn('statx'), [AT_FDCWD, path, flags, STATX_MNT_ID, buf], 'statx', path);
  const hasMountId = (buf.readUInt32LE(STATX_MASK_OFFSET) & STATX_MNT_ID) !== 0;
  return {
    attributes: buf.readBigUInt64LE(STATX_ATTRIBUTES_OFFSET),
    attributesMask: buf.readBigUInt64LE(STATX_ATTRIBUTES_MASK_OFFSET),
    mountId: hasMountId ? Number(buf.readBigUInt64LE(STATX_MNT_ID_OFFSET)) : null,
  };
}

/**
 * The file type bits (S_IFMT) and size of what an fd refers to, an O_PATH fd included (statx with
 * AT_EMPTY_PATH; synchronous: the fds are local directories and files, see mount/beneath.ts).
 */
export function fileStatOf(fd: number): { type: number; size: number } {
  const buf = Buffer.alloc(STATX_SIZE);
  check(fn('statx')(fd, '', AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_SIZE_MASK, buf), 'statx');
  return { type: buf.readUInt16LE(STATX_MODE_OFFSET) & fsConstants.S_IFMT, size: Number(buf.readBigUInt64LE(STATX_SIZE_OFFSET)) };
}

/** struct mount_attr { __u64 attr_set, attr_clr, propagation, userns_fd; } */
const MOUNT_ATTR_SIZE = 32;

const AT_RECURSIVE = 0x8000;

/**
 * mount_setattr(2) on the mount at path (and, if recursive, every mount below
 * it): sets/clears MOUNT_ATTR_* bits, leaving the others alone.
 */
export async function mountSetattr(path: string, attrSet: number, attrClear: number, recursive: boolean, noFollow = false): Promise<void> {
  const attr = Buffer.alloc(MOUNT_ATTR_SIZE);
  attr.writeBigUInt64LE(BigInt(attrSet), 0);
  attr.writeBigUInt64LE(BigInt(attrClear), 8);
  const flags = (recursive ? AT_RECURSIVE : 0) | (noFollow ? AT_SYMLINK_NOFOLLOW : 0);
  await callAsync(fn('mountSetattr'), [AT_FDCWD, path, flags, attr, MOUNT_ATTR_SIZE], 'mount_setattr', path);
}
