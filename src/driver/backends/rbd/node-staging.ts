/**
 * The rbd backend's node side: an image becomes a block device through one of three mappers
 * (mapper.ts: krbd or rbd-nbd in kernel-mapper.ts, rbd-fuse + a loop device in fuse-mapper.ts),
 * then a filesystem mounted at the staging path (mount volumes) or the device itself (block
 * volumes). Publishing binds that into the pod's path. The mapper is chosen at NodeStage from the
 * class's `mounter` (map-options.ts) and kept in the stash, so every later call uses the same one.
 *
 * Every step can be redone: stage writes the stash first and each later step checks before it
 * acts; unstage reverses the steps and removes the stash last. A restarted driver repairs what a
 * dead rbd-fuse broke (repairAll): the mount is remade and the loop device, the staging mount and
 * the publications above it are rebuilt on the fresh file. A krbd device outlives the driver; a
 * dead rbd-nbd is not reattached (yet): its staging reports abnormal health.
 */
import { join } from 'node:path';
import { mkdir, open, realpath } from 'node:fs/promises';
import type { Logger } from 'pino';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '../../../csi/errors.js';
import type { CommandRunner } from '../../mount/exec.js';
import { blockDeviceSize } from '../../mount/filesystem.js';
import type { LoopDevices } from '../../mount/loop.js';
import type { MountEntry, Mounter } from '../../mount/mount.js';
import { filesystemUsage, growStagedFilesystem, stageFilesystem } from '../device-fs.js';
import type { NodePaths } from '../node-paths.js';
import { hasErrorCode, umount2 } from '../../mount/syscalls.js';
import type { PublishRequest, StageRequest, VolumeHealth, VolumeRecord, VolumeUsage } from '../backend.js';
import type { ClusterConfig } from '../ceph/cluster-config.js';
import { FuseMounts, type FuseTarget } from './fuse.js';
import { FuseMapper } from './fuse-mapper.js';
import { KernelMapper, type MapperHost } from './kernel-mapper.js';
import type { ImageMapper } from './mapper.js';
import type { MapperKind } from './map-options.js';
import { StashDir, type Stash } from '../ceph/stash.js';
import { isDeviceBind, isReadOnlyMode, publishBlock, publishMount, unpublish } from '../publication.js';
import { requireSameStaging } from '../restage.js';

export interface RbdNodeOptions {
  stateDir: string;
  runner: CommandRunner;
  mounter: Mounter;
  loops: LoopDevices;
  paths: NodePaths;
  timeoutSeconds: number;
  config: ClusterConfig;
  /** How the kernel mappers look at the host (tests). */
  mapperHost?: MapperHost;
}

/** The mapper a staging uses and its options (map-options.ts). */
export interface MapperChoice {
  kind: MapperKind;
  mapOptions: string[];
  unmapOptions: string[];
}

const MNT_DETACH = 0x2;
const UMOUNT_NOFOLLOW = 0x8;

export class RbdNode {
  private fuse!: FuseMounts;
  private fuseMapper!: FuseMapper;
  private kernelMappers!: Record<'krbd' | 'nbd', KernelMapper>;
  private stashes!: StashDir;

  constructor(private readonly opts: RbdNodeOptions) {}

  /** Creates the state directory (0700: it holds keyrings) and resolves it to a canonical path. */
  async init(): Promise<void> {
    await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    const root = await realpath(this.opts.stateDir);
    this.fuse = new FuseMounts(join(root, 'fuse'), this.opts.runner, this.opts.mounter, this.opts.timeoutSeconds);
    this.fuseMapper = new FuseMapper(this.fuse, this.opts.loops);
    const kernel = { runner: this.opts.runner, keyDir: join(root, 'keys'), ...(this.opts.mapperHost ? { host: this.opts.mapperHost } : {}) };
    this.kernelMappers = { krbd: new KernelMapper('krbd', kernel), nbd: new KernelMapper('nbd', kernel) };
    this.stashes = new StashDir(join(root, 'stage'));
  }

  /** The mapper of a staging (stashes from before the choice existed used rbd-fuse). */
  private mapper(s: Pick<Stash, 'mapper'>): ImageMapper {
    const kind = s.mapper ?? 'fuse';
    return kind === 'fuse' ? this.fuseMapper : this.kernelMappers[kind];
  }

  /**
   * The image's devices on this node. A kernel mapping's device noted in the stash counts too: an
   * rbd-nbd whose daemon died is no longer listed, and its staging must still unmount and unstage.
   */
  private async devicesOf(s: Stash): Promise<string[]> {
    const listed = (await this.mapper(s).devices(s)).map((d) => d.device);
    return s.device && !listed.includes(s.device) ? [...listed, s.device] : listed;
  }

  async stashedVolume(volumeId: string): Promise<VolumeRecord | undefined> {
    return (await this.stashes.ofVolume(volumeId))[0]?.volume;
  }

  // ------------------------------------------------------------------ stage / unstage

  async stage(req: StageRequest, target: FuseTarget, secretKey: string, log: Logger, defaultFs: string, choice: MapperChoice): Promise<void> {
    const { volume, stagingPath, capability } = req;
    const readonly = isReadOnlyMode(capability.accessMode);
    const fuseKey = this.fuse.key(target);
    // A staging made before keeps its mapper: a retried NodeStage must find what it made.
    const prior = await this.stashes.get(volume.id, stagingPath);
    const kind = prior ? (prior.mapper ?? 'fuse') : choice.kind;
    const stash: Stash = {
      version: 1,
      volumeId: volume.id,
      stagingPath,
      volume,
      fuse: target,
      fuseKey,
      mapper: kind,
      ...(kind === 'fuse' ? {} : { mapOptions: choice.mapOptions, unmapOptions: choice.unmapOptions }),
      accessType: capability.accessType,
      fsType: capability.accessType === 'block' ? '' : volume.fsType || defaultFs,
      mountFlags: capability.mountFlags,
      readonly,
    };

    if (capability.accessType === 'mount') {
      await this.opts.paths.ensureDir(stagingPath);
      const current = await this.opts.mounter.mountAt(stagingPath);
      if (current) {
        // Checked before anything is touched: a refused stage must leave nothing of this volume behind.
        if (prior && (await this.devicesOf(prior)).includes(current.source)) {
          requireSameStaging(volume.id, stagingPath, prior, stash);
          return;
        }
        throw new AlreadyExistsError(`staging path ${stagingPath} already has another mount (${current.source})`);
      }
    } else if (prior && (await this.devicesOf(prior)).length > 0) {
      requireSameStaging(volume.id, stagingPath, prior, stash);
      return;
    }

    await this.stashes.put(stash);
    try {
      await this.bringUp(stash, secretKey, log);
    } catch (e) {
      // Leave nothing half-done: the CO retries from scratch.
      await this.unstage(volume.id, stagingPath, log).catch((u: unknown) =>
        log.warn({ err: (u as Error).message, volumeId: volume.id }, 'could not undo a failed stage'),
      );
      throw e;
    }
  }

  /** Mapped device, filesystem: whatever of it is missing. */
  private async bringUp(s: Stash, secretKey: string | undefined, log: Logger): Promise<void> {
    const device = await this.mapper(s).map(s, secretKey, s.readonly, log);
    if ((s.mapper ?? 'fuse') !== 'fuse' && s.device !== device) {
      s.device = device;
      await this.stashes.put(s);
    }
    if (s.accessType === 'block') return;
    if (await this.opts.mounter.mountAt(s.stagingPath)) return;
    await this.mountFilesystem(s, device, log);
  }

  private async mountFilesystem(s: Stash, device: string, log: Logger): Promise<void> {
    const fs = { volumeId: s.volumeId, device, stagingPath: s.stagingPath, fsType: s.fsType, mountFlags: s.mountFlags, readonly: s.readonly };
    await stageFilesystem(this.opts, fs, log);
  }

  async unstage(volumeId: string, stagingPath: string, log: Logger): Promise<void> {
    const stash = await this.stashes.get(volumeId, stagingPath);
    const current = await this.opts.mounter.mountAt(stagingPath);
    if (!stash) {
      // Never staged here (or already unstaged): nothing of ours can be at the path.
      if (current) throw new FailedPreconditionError(`${stagingPath} holds a mount (${current.source}) that is not volume ${volumeId}'s`);
      return;
    }
    const devices = await this.devicesOf(stash);
    if (current) {
      if (!devices.includes(current.source)) {
        throw new FailedPreconditionError(`${stagingPath} holds another mount (${current.source}), not volume ${volumeId}`);
      }
      await this.opts.paths.viaParent(stagingPath, (at) => this.opts.mounter.unmount(at, stagingPath));
    }
    const all = await this.stashes.list();
    const others = all.filter((s) => !(s.volumeId === volumeId && s.stagingPath === stagingPath));
    // Those of the same mapper only: each mapper knows what it shares between stagings.
    const kind = stash.mapper ?? 'fuse';
    await this.mapper(stash).release(stash, others.filter((s) => (s.mapper ?? 'fuse') === kind), log);
    await this.stashes.remove(volumeId, stagingPath);
  }

  // ------------------------------------------------------------------ publish / unpublish

  async publish(req: PublishRequest): Promise<void> {
    const { volume, stagingPath, targetPath, capability, readonly } = req;
    const stash = (await this.stashes.get(volume.id, stagingPath)) ?? (await this.stashes.ofVolume(volume.id))[0];
    if (!stash) throw new FailedPreconditionError(`volume ${volume.id} is not staged on this node`);
    const common = { volumeId: volume.id, targetPath, accessMode: capability.accessMode, readonly };
    if (capability.accessType === 'block') {
      const mapper = this.mapper(stash);
      await publishBlock(this.opts, { ...common, file: '', attached: await mapper.devices(stash), readOnlyDevice: () => mapper.readOnlyDevice(stash) });
    } else {
      await publishMount(this.opts, { ...common, stagingPath });
    }
  }

  async unpublish(volumeId: string, targetPath: string): Promise<void> {
    await unpublish(this.opts, volumeId, targetPath, (m) => this.isPublicationOf(volumeId, m));
  }

  private async isPublicationOf(volumeId: string, m: MountEntry): Promise<boolean> {
    for (const s of await this.stashes.ofVolume(volumeId)) {
      const devices = await this.devicesOf(s);
      if (s.accessType === 'block' ? devices.some((d) => isDeviceBind(m, d)) : devices.includes(m.source)) return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ expansion and stats

  async expand(volume: VolumeRecord, volumePath: string, stagingPath: string, log: Logger): Promise<{ capacityBytes: number }> {
    const stash = (stagingPath ? await this.stashes.get(volume.id, stagingPath) : undefined) ?? (await this.stashes.ofVolume(volume.id))[0];
    if (!stash) throw new FailedPreconditionError(`volume ${volume.id} is not staged on this node`);
    const devices = await this.devicesOf(stash);
    const device = devices[0];
    if (!device) throw new FailedPreconditionError(`volume ${volume.id} is not staged on this node (its image is not mapped)`);
    for (const d of devices) await this.mapper(stash).refresh(stash, d);
    log.debug({ volumeId: volume.id, device, size: await blockDeviceSize(device) }, 'mapped device resized');
    return growStagedFilesystem(this.opts, { device, accessType: stash.accessType, fsType: stash.fsType, volumePath, stagingPath });
  }

  async usage(volume: VolumeRecord, volumePath: string): Promise<VolumeUsage> {
    const stashes = await this.stashes.ofVolume(volume.id);
    const kind = volume.accessType === 'block' ? 'block' : 'filesystem';
    const stash = stashes[0];
    if (!stash) return { kind, totalBytes: 0, health: { abnormal: true, message: `volume ${volume.id} is not staged on this node` } };
    const problem = await this.mapper(stash).problem(stash);
    const mount = await this.opts.mounter.mountAt(volumePath);
    if (mount && !(await this.isPublicationOf(volume.id, mount))) throw new NotFoundError(`volume ${volume.id} is not at ${volumePath}`);
    const health: VolumeHealth =
      problem !== undefined
        ? { abnormal: true, message: problem }
        : mount
          ? { abnormal: false, message: 'volume is mounted and healthy' }
          : { abnormal: true, message: `${volumePath} is not mounted` };
    if (volume.accessType === 'block') {
      const [device] = await this.devicesOf(stash);
      return { kind: 'block', totalBytes: device ? await blockDeviceSize(device) : 0, health };
    }
    return filesystemUsage(volumePath, health);
  }

  // ------------------------------------------------------------------ repair after a restart

  /**
   * For every staging: when its rbd-fuse died (ENOTCONN) or the loop device no longer reads,
   * remount and rebuild the chain above it, putting publications back where they were.
   * Failures are logged, not fatal: one broken volume must not keep the node plugin down.
   */
  async repairAll(log: Logger): Promise<void> {
    for (const m of Object.values(this.kernelMappers)) await m.sweepKeyfiles();
    const stashes = await this.stashes.list();
    const done = new Set<string>();
    for (const s of stashes) {
      try {
        if ((s.mapper ?? 'fuse') === 'fuse') await this.repair(s, stashes.filter((x) => (x.mapper ?? 'fuse') === 'fuse'), done, log);
        else if (s.accessType === 'mount' && !(await this.opts.mounter.mountAt(s.stagingPath)) && (await this.devicesOf(s)).length > 0) {
          // A kernel mapping outlives the driver; only a staging mount lost meanwhile is remade.
          await this.bringUp(s, undefined, log);
        }
      } catch (e) {
        log.error({ err: (e as Error).message, volumeId: s.volumeId, stagingPath: s.stagingPath }, 'could not repair a staged rbd volume');
      }
    }
  }

  private async repair(s: Stash, all: Stash[], done: Set<string>, log: Logger): Promise<void> {
    const state = await this.fuse.state(s.fuseKey);
    const oldDevices = await this.devicesOf(s);
    const healthy = state === 'ok' && oldDevices.length > 0 && (await Promise.all(oldDevices.map(readable))).every(Boolean);
    if (healthy) {
      if (s.accessType === 'mount' && !(await this.opts.mounter.mountAt(s.stagingPath))) await this.bringUp(s, undefined, log);
      return;
    }
    if (done.has(s.fuseKey)) return; // the chain of this image was rebuilt for an earlier staging
    done.add(s.fuseKey);
    log.warn({ volumeId: s.volumeId, fuse: state, devices: oldDevices }, 'repairing a broken rbd staging');
    // Everything mounted from the old loop devices: staging mounts and publications.
    const mounts = (await this.opts.mounter.mounts()).filter((m) => oldDevices.some((d) => m.source === d || isDeviceBind(m, d)));
    for (const m of [...mounts].reverse()) await detach(m.mountPoint);
    for (const d of oldDevices) await this.opts.loops.detach(d);
    const sharers = all.filter((x) => x.fuseKey === s.fuseKey);
    for (const x of sharers) await this.bringUp(x, undefined, log);
    const [device] = await this.devicesOf(s);
    if (!device) throw new Error(`no loop device on ${this.fuseMapper.file(s)} after the repair`);
    const stagingPaths = new Set(sharers.map((x) => x.stagingPath));
    for (const m of mounts) {
      if (stagingPaths.has(m.mountPoint)) continue;
      if (s.accessType === 'block') {
        await this.opts.paths.withPinned(m.mountPoint, (t) => this.opts.mounter.bindMount(device, t, { readonly: m.readonly }));
      } else {
        const from = sharers.find((x) => x.accessType === 'mount')?.stagingPath;
        if (from) {
          await this.opts.paths.withPinned(from, (source) =>
            this.opts.paths.withPinned(m.mountPoint, (t) => this.opts.mounter.bindMount(source, t, { readonly: m.readonly })),
          );
        }
      }
      log.info({ target: m.mountPoint }, 'publication restored');
    }
  }
}

/** Whether the device answers a read (a loop device on a dead rbd-fuse file does not). */
async function readable(device: string): Promise<boolean> {
  try {
    const fh = await open(device, 'r');
    try {
      const { bytesRead } = await fh.read(Buffer.alloc(4096), 0, 4096, 0);
      return bytesRead > 0;
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

async function detach(mountPoint: string): Promise<void> {
  try {
    await umount2(mountPoint, UMOUNT_NOFOLLOW);
  } catch (e) {
    if (hasErrorCode(e, 'EINVAL', 'ENOENT')) return;
    await umount2(mountPoint, MNT_DETACH | UMOUNT_NOFOLLOW).catch((e2: unknown) => {
      if (!hasErrorCode(e2, 'EINVAL', 'ENOENT')) throw e2;
    });
  }
}


