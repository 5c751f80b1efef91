/**
 * Working on a path beneath a trusted root without following anything planted on the way.
 *
 * The node service checks a CO-given path before it takes the lock (backends/node-paths.ts), but
 * a directory on the way can be swapped for a symlink between that check and the mount: kubelet
 * directories hold pod volumes, and what a pod can write, it can rename. So the work never hands
 * the kernel the path string. It opens the root, then every component with
 * openat(O_PATH | O_DIRECTORY | O_NOFOLLOW) — a symlink anywhere fails the walk instead of being
 * followed, ".." is never a component — and mounts, creates and removes through
 * /proc/self/fd/N of what it opened. A swapped path then either still leads to the same
 * directory or fails the walk; it can never lead out of the root.
 *
 * Everything here is synchronous except the work done with the fds: openat, mkdirat, unlinkat
 * and statx on local directories do not wait on I/O (see syscalls.ts for the same rule).
 */
import { constants as fsConstants, readlinkSync } from 'node:fs';
import { AT_REMOVEDIR, close, fileStatOf, hasErrorCode, mkdirat, O, open, openat, unlinkat } from './syscalls.js';

/** The walk met a symlink or a non-directory where a directory must be, or left the root. */
export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
  readonly code = 'EUNSAFEPATH';
  constructor(
    readonly path: string,
    why: string,
  ) {
    super(`${path}: ${why}`);
  }
}

/** A path as a trusted root (canonical, absolute) and the components below it (at least one). */
export interface BeneathPath {
  root: string;
  parts: string[];
}

/**
 * What the work gets for a pinned target: the target itself (mount onto it) and the target
 * reached through its pinned parent, which crosses onto whatever is mounted there (unmount,
 * mount_setattr: those must act on the new mount, not on the directory under it).
 */
export interface PinnedPath {
  /** The canonical path, for messages and for tools that only take a path (mount helpers). */
  path: string;
  /** /proc/self/fd/N of the target opened O_PATH | O_NOFOLLOW. */
  fd: string;
  /** /proc/self/fd/P/<name>, P the parent directory opened by the walk. */
  viaParent: string;
}

const DIR_MODE = 0o750;
const S_IFDIR = fsConstants.S_IFDIR;
const S_IFREG = fsConstants.S_IFREG;
const S_IFLNK = fsConstants.S_IFLNK;

const display = (p: BeneathPath, upTo = p.parts.length) => [p.root, ...p.parts.slice(0, upTo)].join('/');

function typeName(type: number): string {
  switch (type) {
    case S_IFDIR:
      return 'a directory';
    case S_IFREG:
      return 'a file';
    case S_IFLNK:
      return 'a symlink';
    case fsConstants.S_IFCHR:
      return 'a character device';
    case fsConstants.S_IFBLK:
      return 'a block device';
    case fsConstants.S_IFIFO:
      return 'a FIFO';
    case fsConstants.S_IFSOCK:
      return 'a socket';
    default:
      return `of type ${type.toString(8)}`;
  }
}

/**
 * Opens the parent directory of p's last component, one component at a time from the root, never
 * following a symlink; with create, missing directories are made (0750) on the way. Throws
 * UnsafePathError for a symlink or non-directory on the way; ENOENT (without create) as it is.
 */
function openParent(p: BeneathPath, create: boolean): number {
  if (p.parts.length === 0) throw new UnsafePathError(p.root, 'is the root itself');
  for (const part of p.parts) {
    if (part === '' || part === '.' || part === '..' || part.includes('/') || part.includes('\0')) {
      throw new UnsafePathError(display(p), `"${part}" is not a path component`);
    }
  }
  let fd = open(p.root, O.PATH | O.DIRECTORY);
  try {
    for (let i = 0; i < p.parts.length - 1; i++) {
      const part = p.parts[i]!;
      let next: number;
      try {
        next = openat(fd, part, O.PATH | O.NOFOLLOW);
      } catch (e) {
        if (!create || !hasErrorCode(e, 'ENOENT')) throw e;
        try {
          mkdirat(fd, part, DIR_MODE);
        } catch (m) {
          if (!hasErrorCode(m, 'EEXIST')) throw m;
        }
        next = openat(fd, part, O.PATH | O.NOFOLLOW);
      }
      close(fd);
      fd = next;
      const { type } = fileStatOf(fd);
      if (type !== S_IFDIR) throw new UnsafePathError(display(p, i + 1), `is ${typeName(type)}, not a directory`);
    }
    // Belt and braces: the kernel's own name for what we hold must still be beneath the root.
    const where = readlinkSync(`/proc/self/fd/${fd}`);
    if (where !== p.root && !where.startsWith(`${p.root === '/' ? '' : p.root}/`)) {
      throw new UnsafePathError(display(p), `leads to ${where}, outside ${p.root}`);
    }
    return fd;
  } catch (e) {
    close(fd);
    if (hasErrorCode(e, 'ELOOP', 'ENOTDIR')) throw new UnsafePathError(display(p), 'a component on the way is a symlink or not a directory');
    throw e;
  }
}

function last(p: BeneathPath): string {
  return p.parts[p.parts.length - 1]!;
}

/** Opens the last component O_PATH | O_NOFOLLOW in the pinned parent; undefined when missing. */
function openLast(parent: number, p: BeneathPath): number | undefined {
  try {
    return openat(parent, last(p), O.PATH | O.NOFOLLOW);
  } catch (e) {
    if (hasErrorCode(e, 'ENOENT')) return undefined;
    throw e;
  }
}

function withParent<T>(p: BeneathPath, create: boolean, use: (parent: number) => T): T {
  const parent = openParent(p, create);
  try {
    return use(parent);
  } finally {
    close(parent);
  }
}

/** Creates p as a directory (and the directories above it, beneath the root); an existing directory is fine. */
export function ensureDirBeneath(p: BeneathPath, mode = DIR_MODE): void {
  withParent(p, true, (parent) => {
    try {
      mkdirat(parent, last(p), mode);
    } catch (e) {
      if (!hasErrorCode(e, 'EEXIST')) throw e;
    }
    const fd = openLast(parent, p);
    if (fd === undefined) throw new UnsafePathError(display(p), 'vanished while it was being created');
    try {
      const { type } = fileStatOf(fd);
      if (type !== S_IFDIR) throw new UnsafePathError(display(p), `is ${typeName(type)}, not a directory`);
    } finally {
      close(fd);
    }
  });
}

/** Creates p as an empty file (0600; the directories above it too); an existing regular file is fine. */
export function ensureFileBeneath(p: BeneathPath): void {
  withParent(p, true, (parent) => {
    const existing = openLast(parent, p);
    if (existing !== undefined) {
      try {
        const { type } = fileStatOf(existing);
        if (type !== S_IFREG) throw new UnsafePathError(display(p), `is ${typeName(type)}, not a file`);
      } finally {
        close(existing);
      }
      return;
    }
    try {
      close(openat(parent, last(p), O.CREAT | O.EXCL | O.WRONLY | O.NOFOLLOW, 0o600));
    } catch (e) {
      if (hasErrorCode(e, 'EEXIST')) return ensureFileBeneath(p);
      throw e;
    }
  });
}

/**
 * Runs use with p pinned: the parent walked beneath the root, the target opened without following
 * it. The target must exist and be a directory or a regular file (what a mount can go on).
 */
export async function withPinned<T>(p: BeneathPath, use: (pinned: PinnedPath) => Promise<T>): Promise<T> {
  const parent = openParent(p, false);
  try {
    const fd = openLast(parent, p);
    if (fd === undefined) throw Object.assign(new Error(`${display(p)} does not exist`), { code: 'ENOENT' });
    try {
      const { type } = fileStatOf(fd);
      if (type !== S_IFDIR && type !== S_IFREG) throw new UnsafePathError(display(p), `is ${typeName(type)}; a mount can only go on a directory or a file`);
      return await use({ path: display(p), fd: `/proc/self/fd/${fd}`, viaParent: `/proc/self/fd/${parent}/${last(p)}` });
    } finally {
      close(fd);
    }
  } finally {
    close(parent);
  }
}

/**
 * Runs use with p's parent pinned, given /proc/self/fd/P/<name> (for umount2 with
 * UMOUNT_NOFOLLOW: the walk is pinned, the last step follows no symlink but crosses onto the
 * mount). undefined, without calling use, when a directory on the way does not exist.
 */
export async function withPinnedParent<T>(p: BeneathPath, use: (viaParent: string) => Promise<T>): Promise<T | undefined> {
  let parent: number;
  try {
    parent = openParent(p, false);
  } catch (e) {
    if (hasErrorCode(e, 'ENOENT')) return undefined;
    throw e;
  }
  try {
    return await use(`/proc/self/fd/${parent}/${last(p)}`);
  } finally {
    close(parent);
  }
}

/**
 * Removes what publish or stage created at p: an empty directory, or an empty regular file.
 * Missing is success; anything else there (a non-empty directory, a file with data, a device, a
 * symlink) is left alone.
 */
export function removeBeneath(p: BeneathPath): void {
  let parent: number;
  try {
    parent = openParent(p, false);
  } catch (e) {
    if (hasErrorCode(e, 'ENOENT')) return;
    throw e;
  }
  try {
    const fd = openLast(parent, p);
    if (fd === undefined) return;
    let st: { type: number; size: number };
    try {
      st = fileStatOf(fd);
    } finally {
      close(fd);
    }
    try {
      if (st.type === S_IFDIR) unlinkat(parent, last(p), AT_REMOVEDIR);
      else if (st.type === S_IFREG && st.size === 0) unlinkat(parent, last(p), 0);
    } catch (e) {
      // Not empty: not only ours. Gone meanwhile: done.
      if (!hasErrorCode(e, 'ENOENT', 'ENOTEMPTY', 'EEXIST')) throw e;
    }
  } finally {
    close(parent);
  }
}
