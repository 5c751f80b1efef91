/**
 * A filesystem on a block device, as the node side of every device-backed backend uses it: local
 * images (a loop device on an image file) and rbd images (krbd, rbd-nbd or rbd-fuse + loop). One
 * module so the two cannot drift apart again: stage (probe, format only when blank, check, grow
 * offline, mount), grow (NodeExpandVolume) and usage (NodeGetVolumeStats).
 *
 * A read-only stage never writes to the device, as the kubelet's mount-utils (FormatAndMount)
 * and ceph-csi do: a blank device is refused (FAILED_PRECONDITION: nothing the caller retries
 * changes it until the volume is formatted by a read-write stage), and a formatted one is mounted
 * `ro` without a repairing fsck and without growing it. Read-only means what mount-utils looks
 * at, the mount being `ro`: a read-only access mode, or `ro` among the mount flags.
 */
import type { Logger } from 'pino';
import { FailedPreconditionError } from '../../csi/errors.js';
import { CAP_SYS_RESOURCE, hasCapability } from '../mount/capabilities.js';
import type { CommandRunner } from '../mount/exec.js';
import {
  blockDeviceSize,
  checkFilesystem,
  extGrowthPending,
  filesystemStats,
  growFilesystem,
  growUnmountedExt,
  makeFilesystem,
  probeFilesystem,
} from '../mount/filesystem.js';
import type { Mounter } from '../mount/mount.js';
import type { AccessType, VolumeHealth, VolumeUsage } from './backend.js';
import type { NodePaths } from './node-paths.js';

/** What the shared code needs of the node: the command runner, the mounter and the CO's paths. */
export interface DeviceFsHost {
  runner: CommandRunner;
  mounter: Pick<Mounter, 'mount' | 'isMountPoint'>;
  paths: Pick<NodePaths, 'withPinned'>;
}

export interface FilesystemStage {
  volumeId: string;
  device: string;
  stagingPath: string;
  /** The filesystem the volume has (or gets when blank). */
  fsType: string;
  mountFlags: string[];
  readonly: boolean;
}

/**
 * Mounts the device's filesystem at the staging path, formatting it only when it is blank and
 * the stage is read-write. A device holding another filesystem is never reformatted.
 */
export async function stageFilesystem(host: DeviceFsHost, s: FilesystemStage, log: Logger): Promise<void> {
  const { runner } = host;
  const readonly = s.readonly || s.mountFlags.includes('ro');
  const found = await probeFilesystem(s.device, runner);
  if (found === null) {
    if (readonly) {
      throw new FailedPreconditionError(`volume ${s.volumeId} is blank; a read-only stage cannot format it (stage it read-write once first)`);
    }
    log.info({ volumeId: s.volumeId, device: s.device, fsType: s.fsType }, 'formatting blank volume');
    await makeFilesystem(s.device, s.fsType, runner);
  } else if (found !== s.fsType) {
    throw new FailedPreconditionError(`volume ${s.volumeId} holds a ${found} filesystem, not ${s.fsType}; refusing to reformat it`);
  } else if (!readonly) {
    // Repairs only where the stage may write, like the kubelet's checkAndRepairFilesystem.
    await checkFilesystem(s.device, found, runner);
    // Grown while unstaged (expansion, or a restore into a larger volume): grow ext4 now, offline,
    // which needs no CAP_SYS_RESOURCE. xfs can only grow mounted, below.
    if (found === 'ext4' && (await extGrowthPending(s.device, runner))) await growUnmountedExt(s.device, runner);
  }
  // Restores and clones of an xfs volume carry its filesystem UUID, and xfs refuses (EINVAL) to
  // mount a second filesystem with a UUID already mounted: on one node that is the usual case.
  const flags = [...(s.readonly ? ['ro'] : []), ...(s.fsType === 'xfs' ? ['nouuid'] : []), ...s.mountFlags];
  await host.paths.withPinned(s.stagingPath, (target) => host.mounter.mount(s.device, target, s.fsType, flags));
  // xfs grows only while mounted; a no-op when the filesystem already fills the device.
  if (s.fsType === 'xfs' && !readonly) await growFilesystem(s.device, s.stagingPath, 'xfs', runner);
}

export interface FilesystemGrowth {
  device: string;
  accessType: AccessType;
  fsType: string;
  volumePath: string;
  stagingPath: string;
}

/**
 * NodeExpandVolume after the device has grown: grows the filesystem on it to fill it (nothing
 * for a block volume) and returns the device's size.
 */
export async function growStagedFilesystem(host: DeviceFsHost, g: FilesystemGrowth): Promise<{ capacityBytes: number }> {
  const size = async () => ({ capacityBytes: await blockDeviceSize(g.device) });
  if (g.accessType === 'block') return size();
  if (g.fsType === 'ext4') {
    if (!(await extGrowthPending(g.device, host.runner))) return size();
    if (!(await hasCapability(CAP_SYS_RESOURCE))) {
      throw new FailedPreconditionError(
        'growing a mounted ext4 filesystem needs CAP_SYS_RESOURCE, which the driver lacks; the device has grown ' +
          'and the filesystem will grow when the volume is next staged',
      );
    }
  }
  const mountpoint = (await host.mounter.isMountPoint(g.volumePath)) || !g.stagingPath ? g.volumePath : g.stagingPath;
  await growFilesystem(g.device, mountpoint, g.fsType, host.runner);
  return size();
}

/** NodeGetVolumeStats of a mounted filesystem volume: its statfs figures, with the given health. */
export async function filesystemUsage(volumePath: string, health: VolumeHealth): Promise<VolumeUsage> {
  const fs = await filesystemStats(volumePath);
  return {
    kind: 'filesystem',
    totalBytes: fs.totalBytes,
    usedBytes: fs.usedBytes,
    availableBytes: fs.availableBytes,
    totalInodes: fs.totalInodes,
    usedInodes: fs.usedInodes,
    freeInodes: fs.freeInodes,
    health,
  };
}
