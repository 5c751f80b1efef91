/**
 * The cephfs backend's node side: NodeStage mounts the subvolume at the staging path with
 * ceph-fuse (ceph-fuse.ts) or the kernel client (kernel-mount.ts), as the class's `mounter` says
 * (absent: kernel where the ceph module is loaded, else fuse; kept in the stash), NodePublish bind-mounts that into the pod's path (publication.ts, as every
 * backend does), and their reverses undo it. What the secret-less calls need (the record, the
 * mount target, the options) is stashed per staging before anything is mounted (../ceph/stash.ts).
 *
 * A restarted node plugin repairs stagings whose ceph-fuse died (ENOTCONN / ESTALE), as
 * ceph-csi's fuse recovery does: the dead staging mount and every bind of it are detached,
 * ceph-fuse is mounted again with the kept credentials, and the publications are bound again
 * at the same targets with the same read-only flag. A kernel mount has no process to die.
 */
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '../../../csi/errors.js';
import type { CommandRunner } from '../../mount/exec.js';
import { filesystemStats } from '../../mount/filesystem.js';
import type { LoopDevices } from '../../mount/loop.js';
import type { MountEntry, Mounter } from '../../mount/mount.js';
import type { NodePaths } from '../node-paths.js';
import { requireSameStaging } from '../restage.js';
import type { PublishRequest, StageRequest, VolumeHealth, VolumeRecord, VolumeUsage } from '../backend.js';
import { isReadOnlyMode, publishMount, unpublish } from '../publication.js';
import { StashDir, type StashBase } from '../ceph/stash.js';
import type { HostProbe } from '../ceph/kernel-module.js';
import { CEPH_FUSE_FSTYPE, CephFuse, type CephfsTarget } from './ceph-fuse.js';
import { CEPH_KERNEL_FSTYPE, CephKernelMount } from './kernel-mount.js';
import { evictSessions, mdsSessionsUnder } from './mds-sessions.js';

export interface CephfsStash extends StashBase {
  volume: VolumeRecord;
  target: CephfsTarget;
  /** Name of the credential files (CephFuse.key). */
  credKey: string;
  /** -o options: ro, the capability's mount flags, the class's fuseMountOptions or kernelMountOptions. */
  options: string[];
  readonly: boolean;
  /** The capability's mount flags (also in options; absent in stashes older than the re-stage check). */
  mountFlags?: string[];
  /** Which client mounted it (absent in stashes older than the choice: fuse). */
  mounter?: CephfsMounterKind;
}

export type CephfsMounterKind = 'fuse' | 'kernel';

/** The client a staging uses and the class's options for it. */
export interface CephfsMounterChoice {
  kind: CephfsMounterKind;
  options: string[];
}

function fsTypeOf(s: Pick<CephfsStash, 'mounter'>): string {
  return s.mounter === 'kernel' ? CEPH_KERNEL_FSTYPE : CEPH_FUSE_FSTYPE;
}

export interface CephfsNodeOptions {
  stateDir: string;
  runner: CommandRunner;
  mounter: Mounter;
  loops: LoopDevices;
  paths: NodePaths;
  timeoutSeconds: number;
  /** How the kernel client's module check looks at the host (tests). */
  host?: HostProbe;
}

export class CephfsNode {
  private fuse!: CephFuse;
  private kernel!: CephKernelMount;
  private stashes!: StashDir<CephfsStash>;

  constructor(private readonly opts: CephfsNodeOptions) {}

  /** Creates the state directory (0700: it holds keyfiles) and resolves it to a canonical path. */
  async init(): Promise<void> {
    await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    const root = await realpath(this.opts.stateDir);
    this.fuse = new CephFuse(join(root, 'fuse'), this.opts.runner, this.opts.mounter, this.opts.timeoutSeconds);
    this.kernel = new CephKernelMount({ runner: this.opts.runner, mounter: this.opts.mounter, keyDir: join(root, 'keys'), ...(this.opts.host ? { host: this.opts.host } : {}) });
    this.stashes = new StashDir<CephfsStash>(join(root, 'stage'));
  }

  async stashedVolume(volumeId: string): Promise<VolumeRecord | undefined> {
    return (await this.stashes.ofVolume(volumeId))[0]?.volume;
  }

  // ------------------------------------------------------------------ stage / unstage

  /** 'ok', 'broken' or 'absent', asked of the client that mounted the staging. */
  private state(s: CephfsStash): Promise<'ok' | 'broken' | 'absent'> {
    return s.mounter === 'kernel' ? this.kernel.state(s.stagingPath) : this.fuse.state(s.stagingPath);
  }

  private async mountWith(s: CephfsStash, secretKey: string | undefined, log: Logger): Promise<void> {
    if (s.mounter !== 'kernel') return this.fuse.mount(s.credKey, s.target, secretKey, s.stagingPath, s.options, log);
    if (secretKey === undefined) throw new FailedPreconditionError(`cannot remount ${s.target.fsName}:${s.target.path} with the kernel client without the node-stage secret: stage the volume again`);
    await this.kernel.mount(s.target, secretKey, s.stagingPath, s.options, log);
  }

  async stage(req: StageRequest, target: CephfsTarget, secretKey: string, choice: CephfsMounterChoice, log: Logger): Promise<void> {
    const { volume, stagingPath, capability } = req;
    const readonly = isReadOnlyMode(capability.accessMode);
    const prior = await this.stashes.get(volume.id, stagingPath);
    const kind = prior ? (prior.mounter ?? 'fuse') : choice.kind;
    const stash: CephfsStash = {
      version: 1,
      volumeId: volume.id,
      stagingPath,
      volume,
      target,
      credKey: this.fuse.key(volume.id, stagingPath),
      options: [...(readonly ? ['ro'] : []), ...capability.mountFlags, ...choice.options],
      readonly,
      mountFlags: capability.mountFlags,
      mounter: kind,
    };
    // Looked at before mkdir: on a staging whose ceph-fuse died, mkdir itself fails (ENOTCONN).
    const current = await this.opts.mounter.mountAt(stagingPath);
    if (current) {
      // Checked before anything is touched: a refused stage must leave nothing of this volume behind.
      if (!prior || current.fsType !== fsTypeOf(prior)) {
        throw new AlreadyExistsError(`staging path ${stagingPath} already has another mount (${current.source} ${current.fsType})`);
      }
      requireSameStaging(volume.id, stagingPath, prior, stash);
      if ((await this.state(prior)) === 'ok') return;
      // Staged here before, but its client died: mount it again (with the fresh secret).
      await this.repair(prior, log, secretKey);
      return;
    }
    // The kernel client's module is checked before the staging path or the stash is touched.
    if (kind === 'kernel') await this.kernel.requireModule();
    await this.opts.paths.ensureDir(stagingPath);
    await this.stashes.put(stash);
    try {
      await this.mountWith(stash, secretKey, log);
    } catch (e) {
      // Leave nothing half-done: the CO retries from scratch.
      await this.unstage(volume.id, stagingPath, log).catch((u: unknown) =>
        log.warn({ err: (u as Error).message, volumeId: volume.id }, 'could not undo a failed stage'),
      );
      throw e;
    }
  }

  async unstage(volumeId: string, stagingPath: string, log: Logger): Promise<void> {
    const stash = await this.stashes.get(volumeId, stagingPath);
    const current = await this.opts.mounter.mountAt(stagingPath);
    if (!stash) {
      // Never staged here (or already unstaged): nothing of ours can be at the path.
      if (current) throw new FailedPreconditionError(`${stagingPath} holds a mount (${current.source}) that is not volume ${volumeId}'s`);
      return;
    }
    if (current) {
      if (current.fsType !== fsTypeOf(stash)) {
        throw new FailedPreconditionError(`${stagingPath} holds another mount (${current.source} ${current.fsType}), not volume ${volumeId}`);
      }
      if (stash.mounter === 'kernel') await this.opts.paths.viaParent(stagingPath, (at) => this.opts.mounter.unmount(at, stagingPath));
      else await this.fuse.unmount(stagingPath, log);
    }
    await this.fuse.removeCredentials(stash.credKey);
    await this.stashes.remove(volumeId, stagingPath);
  }

  // ------------------------------------------------------------------ publish / unpublish

  async publish(req: PublishRequest): Promise<void> {
    const { volume, stagingPath, targetPath, capability, readonly } = req;
    const stash = await this.stashes.get(volume.id, stagingPath);
    if (!stash) throw new FailedPreconditionError(`volume ${volume.id} is not staged at ${stagingPath}`);
    await publishMount(this.opts, { volumeId: volume.id, stagingPath, targetPath, accessMode: capability.accessMode, readonly });
  }

  async unpublish(volumeId: string, targetPath: string): Promise<void> {
    const all = await this.opts.mounter.mounts();
    await unpublish(this.opts, volumeId, targetPath, async (m) => this.isPublicationOf(volumeId, m, all));
  }

  /** A mount is the volume's when it is a mount of the same filesystem as one of its stagings. */
  private async isPublicationOf(volumeId: string, m: MountEntry, all: MountEntry[]): Promise<boolean> {
    for (const s of await this.stashes.ofVolume(volumeId)) {
      if (m.fsType !== fsTypeOf(s)) continue;
      const staged = all.findLast((x) => x.mountPoint === s.stagingPath);
      // The root too: the kernel client may share one superblock between subvolumes of a filesystem.
      if (staged && staged.majorMinor === m.majorMinor && staged.root === m.root) return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ stats

  async usage(volume: VolumeRecord, volumePath: string): Promise<VolumeUsage> {
    const stash = (await this.stashes.ofVolume(volume.id))[0];
    if (!stash) return { kind: 'filesystem', totalBytes: 0, health: { abnormal: true, message: `volume ${volume.id} is not staged on this node` } };
    const all = await this.opts.mounter.mounts();
    const mount = all.findLast((m) => m.mountPoint === volumePath);
    if (mount && !(await this.isPublicationOf(volume.id, mount, all))) throw new NotFoundError(`volume ${volume.id} is not at ${volumePath}`);
    const fuseState = await this.state(stash);
    const client = stash.mounter === 'kernel' ? 'kernel cephfs' : 'ceph-fuse';
    const broken = mount ? await this.opts.mounter.isCorrupted(volumePath) : false;
    const health: VolumeHealth =
      fuseState !== 'ok' || broken
        ? {
            abnormal: true,
            message:
              stash.mounter === 'kernel'
                ? `the ${client} mount of ${stash.target.fsName}:${stash.target.path} at ${stash.stagingPath} is ${fuseState === 'ok' ? 'broken' : fuseState} (NodeStage again remounts it)`
                : `the ${client} mount of ${stash.target.fsName}:${stash.target.path} at ${stash.stagingPath} is ${fuseState === 'ok' ? 'broken' : fuseState} (ceph-fuse is not serving it; the node plugin remounts it when restarted)`,
          }
        : mount
          ? { abnormal: false, message: 'volume is mounted and healthy' }
          : { abnormal: true, message: `${volumePath} is not mounted` };
    if (health.abnormal && (fuseState !== 'ok' || broken)) return { kind: 'filesystem', totalBytes: volume.capacityBytes, health };
    // Both clients report the subvolume's quota as the size (ceph-fuse: client_quota_df); inodes have no fixed
    // count on CephFS, so none are reported.
    const fs = await filesystemStats(volumePath);
    return { kind: 'filesystem', totalBytes: fs.totalBytes, usedBytes: fs.usedBytes, availableBytes: fs.availableBytes, health };
  }

  /** The size the mount sees now (the quota, once ceph-fuse has heard of the resize). */
  async mountedSize(volume: VolumeRecord, volumePath: string): Promise<number> {
    const stash = (await this.stashes.ofVolume(volume.id))[0];
    if (!stash) throw new FailedPreconditionError(`volume ${volume.id} is not staged on this node`);
    return (await filesystemStats(volumePath)).totalBytes;
  }

  // ------------------------------------------------------------------ repair after a restart

  /**
   * For every staging whose ceph-fuse is gone: remount and put the publications back. Failures
   * are logged, not fatal: one broken volume must not keep the node plugin down.
   */
  async repairAll(log: Logger): Promise<void> {
    await this.kernel.sweepSecretFiles();
    for (const s of await this.stashes.list()) {
      try {
        // A kernel mount outlives the driver and needs a secret to be remade: NodeStage's retry does that.
        if (s.mounter !== 'kernel' && (await this.fuse.state(s.stagingPath)) !== 'ok') await this.repair(s, log);
      } catch (e) {
        log.error({ err: (e as Error).message, volumeId: s.volumeId, stagingPath: s.stagingPath }, 'could not repair a staged cephfs volume');
      }
    }
    // Credential files of stagings that no longer exist (an unstage cut short before its last step).
    const live = new Set((await this.stashes.list()).map((s) => s.credKey));
    for (const key of await this.fuse.keys()) if (!live.has(key)) await this.fuse.removeCredentials(key);
  }

  /**
   * The dead ceph-fuse's MDS session still holds capabilities on the volume's files: until it
   * times out (a minute), the new mount waits on every file the old one had open. Evict it: a
   * session rooted at the volume, from this host, whose ceph-fuse process is gone. Needs a user
   * the MDS lets evict clients; when it refuses, the repair goes on and the files are readable
   * again once the session times out.
   */
  private async evictDeadClients(s: CephfsStash, secretKey: string | undefined, log: Logger): Promise<void> {
    const key = secretKey ?? (await this.fuse.storedKey(s.credKey));
    if (!key) return;
    const t = { monitors: s.target.monitors, user: s.target.user, key, fsName: s.target.fsName, timeoutSeconds: this.opts.timeoutSeconds };
    try {
      const host = hostname();
      const dead: number[] = [];
      for (const session of await mdsSessionsUnder(this.opts.runner, t, s.target.path)) {
        if (session.host !== host || session.pid === 0) continue;
        const argv = await readFile(`/proc/${session.pid}/cmdline`, 'utf8').catch(() => '');
        if (!argv.split('\0')[0]?.endsWith('ceph-fuse')) dead.push(session.id);
      }
      if (dead.length === 0) return;
      await evictSessions(this.opts.runner, t, dead);
      log.info({ volumeId: s.volumeId, clients: dead.map((id) => `client.${id}`) }, 'evicted the MDS sessions of dead ceph-fuse clients');
    } catch (e) {
      log.warn({ volumeId: s.volumeId, err: (e as Error).message }, 'could not evict the dead ceph-fuse client (its files stay locked until its MDS session times out)');
    }
  }

  private async repair(s: CephfsStash, log: Logger, secretKey?: string): Promise<void> {
    const all = await this.opts.mounter.mounts();
    const staged = all.findLast((m) => m.mountPoint === s.stagingPath);
    // Publications: binds of the dead filesystem elsewhere, with their read-only flags.
    const binds = staged ? all.filter((m) => m.majorMinor === staged.majorMinor && m.root === staged.root && m.mountPoint !== s.stagingPath) : [];
    log.warn({ volumeId: s.volumeId, stagingPath: s.stagingPath, publications: binds.map((b) => b.mountPoint) }, 'repairing a broken cephfs staging');
    for (const b of [...binds].reverse()) await this.fuse.detachLazily(b.mountPoint);
    if (staged) await this.fuse.detachLazily(s.stagingPath);
    if (s.mounter !== 'kernel') await this.evictDeadClients(s, secretKey, log);
    await this.opts.paths.ensureDir(s.stagingPath);
    await this.mountWith(s, secretKey, log);
    for (const b of binds) {
      // Put back where it was, through NodePaths like any publication (the path is walked afresh).
      await this.opts.paths.withPinned(s.stagingPath, (source) =>
        this.opts.paths.withPinned(b.mountPoint, (t) => this.opts.mounter.bindMount(source, t, { readonly: b.readonly })),
      );
      log.info({ target: b.mountPoint, readonly: b.readonly }, 'publication restored');
    }
  }
}
