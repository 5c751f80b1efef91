/**
 * The paths a CO hands the Node service (staging_target_path, target_path, volume_path), safe by
 * construction.
 *
 * A list of forbidden system directories cannot be complete (/proc/self, /usr/local, /boot/x…)
 * and says nothing about symlinks, so the rule is the other way round: a path is accepted only
 * strictly beneath one of the kubelet directories the driver was given (`--kubelet-dir`,
 * /var/lib/kubelet by default; `stowage up` gives each embedded node its own root), never on or
 * around the driver's own storage (the pool, its journals, the rbd/cephfs state dir), and never
 * at a symlink. resolve() is the check, run with the other argument checks before any lock: it
 * resolves every parent directory with realpath (what does not exist yet is taken as it is — the
 * driver may create it, beneath the root) and returns the canonical path the backends then work
 * with, which is also how the mount table names it.
 *
 * The check alone would leave a window: a parent swapped for a symlink after it and before the
 * mount. So the backends never give the kernel the path string to create, mount on or remove:
 * they go through the operations here, which walk from the root one component at a time without
 * following symlinks and act through the fds (mount/beneath.ts). Refusals are INVALID_ARGUMENT
 * naming the path and the roots.
 */
import { lstat, realpath } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { InvalidArgumentError } from '../../csi/errors.js';
import {
  ensureDirBeneath,
  ensureFileBeneath,
  removeBeneath,
  UnsafePathError,
  withPinned,
  withPinnedParent,
  type BeneathPath,
  type PinnedPath,
} from '../mount/beneath.js';
import { hasErrorCode } from '../mount/syscalls.js';

export { DEFAULT_KUBELET_DIR } from '../defaults.js';

/** What lstat says of a mount whose filesystem stopped answering: it is there, just broken. */
const BROKEN_MOUNT_CODES = ['ENOTCONN', 'ESTALE', 'EIO'];

const isBeneath = (path: string, dir: string) => path.startsWith(dir === '/' ? '/' : `${dir}/`) && path !== dir;
const isAtOrBeneath = (path: string, dir: string) => path === dir || isBeneath(path, dir);

export class NodePaths {
  /**
   * @param roots the kubelet directories (absolute; realpath'd at every use, so a root created
   *   after the driver started counts, and a missing one accepts nothing)
   * @param ownPaths the driver's own storage: refused even beneath a root, as is any path above it
   */
  constructor(
    readonly roots: readonly string[],
    private readonly ownPaths: readonly string[],
  ) {
    for (const r of [...roots, ...ownPaths]) if (!r.startsWith('/')) throw new Error(`${r} is not an absolute path`);
  }

  /** The roots as they are now, canonical; missing ones left out. */
  private async liveRoots(): Promise<string[]> {
    const out: string[] = [];
    for (const r of this.roots) {
      const real = await realpath(r).catch(() => undefined);
      if (real !== undefined) out.push(real);
    }
    return out;
  }

  private rootsText(): string {
    return `${this.roots.join(', ')} (--kubelet-dir)`;
  }

  /**
   * The canonical form of a CO-given path, or INVALID_ARGUMENT. `clean` has passed
   * validate.requirePath (absolute, no "..", no NUL, bounded).
   */
  async resolve(field: string, clean: string): Promise<string> {
    const refuse = (why: string) => new InvalidArgumentError(`${field} "${clean}" ${why}; the node service accepts only paths beneath ${this.rootsText()}`);
    const roots = await this.liveRoots();
    if (roots.length === 0) throw refuse('cannot be served: no kubelet directory exists');
    // Every parent resolved; what does not exist yet is kept as written (and must not be a symlink).
    const name = basename(clean);
    if (clean === '/' || name === '' || name === '.') throw refuse('names no file');
    const parent = await this.canonicalParent(dirname(clean), refuse);
    const full = join(parent, name);
    const root = roots.find((r) => isBeneath(full, r));
    if (root === undefined) {
      const via = full !== clean ? ` (it resolves to ${full})` : '';
      throw refuse(`is outside the kubelet directories${via}`);
    }
    for (const own of await Promise.all(this.ownPaths.map(async (o) => realpath(o).catch(() => resolve(o))))) {
      if (isAtOrBeneath(full, own) || isBeneath(own, full)) throw refuse(`is ${full === own || isBeneath(full, own) ? 'inside' : 'above'} the driver's own storage (${own})`);
    }
    try {
      const st = await lstat(full);
      if (st.isSymbolicLink()) throw refuse('is a symlink');
      // A block device is what a raw block publication looks like (the loop device bound on the
      // target file): retries and NodeUnpublish name it. Nothing is ever mounted onto one.
      if (!st.isDirectory() && !st.isFile() && !st.isBlockDevice()) throw refuse('is neither a directory nor a file');
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      if (hasErrorCode(e, 'ENOTDIR')) throw refuse('has a file where a directory must be');
      if (!hasErrorCode(e, 'ENOENT', ...BROKEN_MOUNT_CODES)) throw e;
    }
    return full;
  }

  /** realpath of dir, walking up to the deepest part that exists; the missing rest appended. */
  private async canonicalParent(dir: string, refuse: (why: string) => InvalidArgumentError): Promise<string> {
    const missing: string[] = [];
    for (let d = dir; ; d = dirname(d)) {
      try {
        const real = await realpath(d);
        return join(real, ...missing.reverse());
      } catch (e) {
        if (hasErrorCode(e, 'ENOTDIR')) throw refuse(`has a file where a directory must be (${d})`);
        if (!hasErrorCode(e, 'ENOENT', 'ELOOP')) throw e;
        // A dangling symlink also fails realpath with ENOENT: it is not "missing", it is a symlink.
        const st = await lstat(d).catch(() => undefined);
        if (st?.isSymbolicLink()) throw refuse(`goes through a symlink that leads nowhere (${d})`);
        if (d === '/') throw refuse('cannot be resolved');
        missing.push(basename(d));
      }
    }
  }

  /** The root a canonical path lies beneath, and its components below it. */
  private async locate(path: string): Promise<BeneathPath> {
    const root = (await this.liveRoots()).filter((r) => isBeneath(path, r)).sort((a, b) => b.length - a.length)[0];
    if (root === undefined) throw new InvalidArgumentError(`${path} is outside the kubelet directories ${this.rootsText()}`);
    return { root, parts: relative(root, path).split(sep) };
  }

  /** Runs a step of the work, turning an unsafe walk into INVALID_ARGUMENT. */
  private async guarded<T>(path: string, step: (p: BeneathPath) => T | Promise<T>): Promise<T> {
    const p = await this.locate(path);
    try {
      return await step(p);
    } catch (e) {
      if (e instanceof UnsafePathError) {
        throw new InvalidArgumentError(`${path} is not safe to use: ${e.message} (symlinks are never followed beneath ${this.rootsText()})`, { cause: e });
      }
      throw e;
    }
  }

  /** mkdir -p beneath the root, without following symlinks. */
  ensureDir(path: string): Promise<void> {
    return this.guarded(path, (p) => ensureDirBeneath(p));
  }

  /** An empty file at path (block publication targets), its directories made beneath the root. */
  ensureFile(path: string): Promise<void> {
    return this.guarded(path, (p) => ensureFileBeneath(p));
  }

  /** Runs use with the existing path pinned (mount on pinned.fd; see Mounter.mount). */
  withPinned<T>(path: string, use: (pinned: PinnedPath) => Promise<T>): Promise<T> {
    return this.guarded(path, (p) => withPinned(p, use));
  }

  /**
   * Runs use with a name for the path reached through its pinned parent (for umount2 with
   * UMOUNT_NOFOLLOW); nothing is run when a directory on the way is missing.
   */
  async viaParent(path: string, use: (viaParent: string) => Promise<void>): Promise<void> {
    await this.guarded(path, (p) => withPinnedParent(p, use));
  }

  /** Removes the empty directory or empty file at path; anything else is left alone. */
  remove(path: string): Promise<void> {
    return this.guarded(path, (p) => removeBeneath(p));
  }
}
