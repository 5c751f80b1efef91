import { basename } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError } from '../../csi/errors.js';
import type { LoopDevices } from '../mount/loop.js';
import type { MountEntry, Mounter } from '../mount/mount.js';
import type { AccessMode } from './backend.js';
import type { NodePaths } from './node-paths.js';

/**
 * NodePublish and NodeUnpublish as every backend whose staged state is a mount or a loop device
 * does them (local images and subvolumes, rbd over rbd-fuse): the rules for idempotency,
 * read-only publications and single writers live here once. Target paths are created, mounted
 * on and removed only through NodePaths (beneath the kubelet directories, no symlink followed).
 */

export interface PublishDeps {
  mounter: Mounter;
  loops: LoopDevices;
  paths: NodePaths;
}

export function isReadOnlyMode(mode: AccessMode): boolean {
  return mode === 'SINGLE_NODE_READER_ONLY' || mode === 'MULTI_NODE_READER_ONLY';
}

/** A bind mount of a device node shows the devtmpfs as its source and the node's name as its root. */
export function isDeviceBind(m: MountEntry, device: string): boolean {
  return m.root === `/${basename(device)}`;
}

/** SINGLE_NODE_SINGLE_WRITER: one publication at a time, even on the same node. */
async function refuseSecondWriter(mounter: Mounter, mode: AccessMode, targetPath: string, isPublication: (m: MountEntry) => boolean): Promise<void> {
  if (mode !== 'SINGLE_NODE_SINGLE_WRITER') return;
  const other = (await mounter.mounts()).find((m) => m.mountPoint !== targetPath && isPublication(m));
  if (other) throw new FailedPreconditionError(`the volume is SINGLE_NODE_SINGLE_WRITER and already published at ${other.mountPoint}`);
}

export interface BlockPublication {
  volumeId: string;
  /** The loop devices staged for the volume (NodeStage attached at least one). */
  attached: { device: string; readonly: boolean }[];
  /** The backing file, for a read-only device when only a read-write one is staged. */
  file: string;
  /** How to get that read-only device when it is not a loop device on `file` (rbd's mappers). */
  readOnlyDevice?: () => Promise<string>;
  targetPath: string;
  accessMode: AccessMode;
  readonly: boolean;
}

/** Binds the volume's loop device node onto the target file (which publish creates). */
export async function publishBlock(deps: PublishDeps, p: BlockPublication): Promise<void> {
  const ro = p.readonly || isReadOnlyMode(p.accessMode);
  if (p.attached.length === 0) throw new FailedPreconditionError(`volume ${p.volumeId} is not staged on this node (no block device)`);
  const current = await deps.mounter.mountAt(p.targetPath);
  if (current) {
    const mine = p.attached.find((l) => isDeviceBind(current, l.device));
    if (!mine) throw new AlreadyExistsError(`${p.targetPath} already has another mount (${current.source})`);
    if (mine.readonly !== ro) throw new AlreadyExistsError(`${p.targetPath} is already published with readonly=${mine.readonly}`);
    return;
  }
  await refuseSecondWriter(deps.mounter, p.accessMode, p.targetPath, (m) => p.attached.some((l) => isDeviceBind(m, l.device)));
  // A read-only bind mount does not stop writes to a device node (the kernel checks device
  // access, not the mount), so a read-only publication gets its own read-only loop device.
  let device = p.attached.find((l) => l.readonly === ro)?.device;
  if (!device) {
    if (!ro) throw new FailedPreconditionError(`volume ${p.volumeId} is staged read-only; it cannot be published read-write`);
    device = p.readOnlyDevice ? await p.readOnlyDevice() : await deps.loops.attach(p.file, { readonly: true });
  }
  await deps.paths.ensureFile(p.targetPath);
  await deps.paths.withPinned(p.targetPath, (target) => deps.mounter.bindMount(device, target, { readonly: ro }));
}

export interface MountPublication {
  volumeId: string;
  stagingPath: string;
  targetPath: string;
  accessMode: AccessMode;
  readonly: boolean;
}

/** Bind-mounts the staged filesystem onto the target directory (which publish creates). */
export async function publishMount(deps: PublishDeps, p: MountPublication): Promise<void> {
  const ro = p.readonly || isReadOnlyMode(p.accessMode);
  const staged = await deps.mounter.mountAt(p.stagingPath);
  if (!staged) throw new FailedPreconditionError(`volume ${p.volumeId} is not staged at ${p.stagingPath}`);
  const sameFs = (m: MountEntry) => m.majorMinor === staged.majorMinor && m.root === staged.root;
  const current = await deps.mounter.mountAt(p.targetPath);
  if (current) {
    if (!sameFs(current)) throw new AlreadyExistsError(`${p.targetPath} already has another mount (${current.source})`);
    if (current.readonly !== ro) throw new AlreadyExistsError(`${p.targetPath} is already published with readonly=${current.readonly}`);
    return;
  }
  await refuseSecondWriter(deps.mounter, p.accessMode, p.targetPath, (m) => m.mountPoint !== p.stagingPath && sameFs(m));
  await deps.paths.ensureDir(p.targetPath);
  await deps.paths.withPinned(p.stagingPath, (staging) =>
    deps.paths.withPinned(p.targetPath, (target) => deps.mounter.bindMount(staging, target, { readonly: ro })),
  );
}

/**
 * Unmounts the volume's publication at targetPath (never another mount that sits there) and
 * removes what publish created: the directory or, for block, the empty file. Anything else at the
 * path was not made by us and is left alone.
 */
export async function unpublish(
  { mounter, paths }: { mounter: Mounter; paths: NodePaths },
  volumeId: string,
  targetPath: string,
  isOurs: (m: MountEntry) => Promise<boolean>,
): Promise<void> {
  const current = await mounter.mountAt(targetPath);
  if (current) {
    if (!(await isOurs(current))) {
      throw new FailedPreconditionError(`${targetPath} holds another mount (${current.source}), not volume ${volumeId}`);
    }
    await paths.viaParent(targetPath, (at) => mounter.unmount(at, targetPath));
  }
  await paths.remove(targetPath);
}
