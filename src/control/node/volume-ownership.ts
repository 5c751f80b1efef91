// fsGroup on volumes, as the kubelet applies it: whether a CSI volume gets it follows its
// CSIDriver's fsGroupPolicy (File: always; ReadWriteOnceWithFSType, the default: only a volume
// with an fsType and the ReadWriteOnce access mode; None: never), never for read-only or raw block
// volumes; and SetVolumeOwnership: every file and directory gets group fsGroup and group read-write
// (directories also group execute and setgid, so what the pod creates later inherits the group),
// symlinks only their group. fsGroupChangePolicy OnRootMismatch skips the walk when the volume's
// root already has the group and the bits.
import { chmod, lchown, lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';
import type { PersistentVolume } from '../api/types/core.js';

const RW_MASK = 0o660;
const RO_MASK = 0o440;
const EXEC_MASK = 0o110;
const SETGID = 0o2000;

export type FsGroupPolicy = 'File' | 'ReadWriteOnceWithFSType' | 'None';

/** The kubelet's CSI supportsFSGroup: does this volume get the pod's fsGroup? */
export function fsGroupApplies(policy: FsGroupPolicy | undefined, pv: PersistentVolume, readOnly: boolean): boolean {
  if (readOnly || pv.spec.volumeMode === 'Block') return false;
  switch (policy ?? 'ReadWriteOnceWithFSType') {
    case 'File':
      return true;
    case 'None':
      return false;
    default: {
      if (!pv.spec.csi?.fsType) return false;
      return (pv.spec.accessModes ?? []).some((m) => m === 'ReadWriteOnce' || m === 'ReadWriteOncePod');
    }
  }
}

/** The bits a directory (or file) needs, as SetVolumeOwnership adds them. */
function wantedBits(isDir: boolean, readOnly: boolean): number {
  const mask = readOnly ? RO_MASK : RW_MASK;
  return isDir ? mask | EXEC_MASK | SETGID : mask;
}

/** OnRootMismatch: true when the root's group or bits differ, so the walk is needed. */
export async function rootNeedsChange(dir: string, fsGroup: number, readOnly = false): Promise<boolean> {
  const info = await lstat(dir);
  if (info.gid !== fsGroup) return true;
  const bits = wantedBits(info.isDirectory(), readOnly);
  return (info.mode & bits) !== bits;
}

/**
 * Gives the tree at dir the group fsGroup and the group bits (the kubelet's SetVolumeOwnership).
 * Symlinks are not followed. Returns how many entries were changed (0 when skipped).
 */
export async function setVolumeOwnership(dir: string, fsGroup: number, changePolicy: string | undefined, readOnly = false): Promise<number> {
  if (changePolicy === 'OnRootMismatch' && !(await rootNeedsChange(dir, fsGroup, readOnly))) return 0;
  let changed = 0;
  const visit = async (path: string): Promise<void> => {
    const info = await lstat(path);
    await lchown(path, -1, fsGroup);
    changed++;
    if (info.isSymbolicLink()) return;
    await chmod(path, (info.mode & 0o7777) | wantedBits(info.isDirectory(), readOnly));
    if (!info.isDirectory()) return;
    for await (const entry of await opendir(path)) await visit(join(path, entry.name));
  };
  await visit(dir);
  return changed;
}
