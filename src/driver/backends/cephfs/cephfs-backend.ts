/**
 * The cephfs backend: volumes are CephFS subvolumes made by the mgr `volumes` module, named and
 * journaled the way ceph-csi's cephfs driver does it, so its StorageClasses, secrets and volume IDs
 * work unchanged:
 *
 * - volume ID        0001-<len>-<clusterID>-<fscid, 16 hex>-<uuid> (../ceph/volume-id.ts; the
 *                    location is the filesystem ID, not a pool)
 * - journal          ceph-csi's omap layout (../ceph/journal.ts) in the filesystem's metadata pool,
 *                    RADOS namespace "csi": csi.volumes.default, csi.volume.<uuid>, csi.snaps.default…
 * - volume           subvolume csi-vol-<uuid> in group `subvolumeGroup` (default csi, created when
 *                    missing), quota = the size; `pool` sets the data pool layout
 * - snapshot         subvolume snapshot csi-snap-<uuid> of the source; deleting a volume that has
 *                    snapshots keeps them (rm --retain-snapshots) and the module purges the
 *                    subvolume with its last snapshot
 * - restore / clone  `fs subvolume snapshot clone` (a clone of a volume goes through a temporary
 *                    snapshot of the source named after the new subvolume). Clones are copied by
 *                    the mgr in the background: CreateVolume waits for it while its caller waits
 *                    (ABORTED once the caller is gone; a retry waits on, DeleteVolume of the ID
 *                    cancels and removes it); a failed one is removed and reported. A clone's mgr
 *                    commands wait as long as the caller, and one left unanswered holds later
 *                    calls on its ID until the mgr answers (clone-flow.ts, unanswered.ts).
 * - expansion        `fs subvolume resize` (online: the mount sees the new quota; no node step)
 *
 * Provisioning uses the adminID/adminKey secrets, mounting userID/userKey (adminID/adminKey when
 * the node-stage secret has no user, as ceph-csi allows). Keys reach librados in memory and
 * ceph-fuse in a 0600 keyfile; never an argv or a log line.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  AbortedError,
  CsiError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnavailableError,
} from '../../../csi/errors.js';
import { CommandFailedError, CommandTimeoutError, type CommandRunner } from '../../mount/exec.js';
import type { LoopDevices } from '../../mount/loop.js';
import type { NodePaths } from '../node-paths.js';
import type { Mounter } from '../../mount/mount.js';
import type {
  Backend,
  Capability,
  ControllerCapability,
  NodeCall,
  OpContext,
  PublishRequest,
  SnapshotRecord,
  StageRequest,
  Topology,
  VolumeHealth,
  VolumeRecord,
  VolumeUsage,
} from '../backend.js';
import type { CephCluster, ClusterConfig } from '../ceph/cluster-config.js';
import { Connections } from '../ceph/connections.js';
import { cephToCsi } from '../ceph/errors.js';
import { OmapJournal, SNAPSHOT_LAYOUT, VOLUME_LAYOUT, type JournalPools } from '../ceph/journal.js';
import { CephError, isCephError, UnansweredMgrCommand, type IoCtx, type MgrPatience, type Rados } from '../ceph/rados.js';
import { decodeId, encodeId, requireAgreement, SNAPSHOT_BESIDE_SOURCE, type CsiIdentifier } from '../ceph/volume-id.js';
import type { CephfsTarget } from './ceph-fuse.js';
import { FsMap, type CephFilesystem } from './fs-map.js';
import { mdsSessionsUnder } from './mds-sessions.js';
import { moduleLoaded, realHostProbe } from '../ceph/kernel-module.js';
import { CephfsNode, type CephfsMounterChoice, type CephfsMounterKind } from './node-staging.js';
import { pollUntil } from './poll.js';
import { Subvolumes, volumesModuleOff } from './subvolumes.js';
import { CANCEL_WAIT_LIMIT_MS, CLONE_WAIT_LIMIT_MS, cloneAndWait, stopClone } from './clone-flow.js';
import { UnansweredCommands } from './unanswered.js';

const MiB = 1024 * 1024;
/** Sizes round up to 4 MiB, as ceph-csi rounds CephFS quotas. */
const SIZE_UNIT = 4 * MiB;
export const DEFAULT_FS = 'ceph';
const SUPPORTED_FS = new Set(['', DEFAULT_FS]);
export const DEFAULT_SUBVOLUME_GROUP = 'csi';
/** ceph-csi keeps the cephfs journal in this RADOS namespace of the metadata pool. */
export const JOURNAL_NAMESPACE = 'csi';

/** ceph-csi's cephfs StorageClass parameters that this driver honours or knowingly ignores. */
const VOLUME_PARAMETERS = new Set(['clusterID', 'fsName', 'pool', 'subvolumeGroup', 'mounter', 'fuseMountOptions', 'kernelMountOptions']);
const SNAPSHOT_PARAMETERS = new Set(['clusterID', 'fsName']);
const MOUNTERS = new Set(['fuse', 'kernel']);
/** Parameters a volume carries to the node in its volume context, as ceph-csi's do. */
const NODE_PARAMETERS = ['mounter', 'fuseMountOptions', 'kernelMountOptions'] as const;

/** Like rbd: the list-style RPCs carry no secrets to read the journal with. */
const CEPHFS_CONTROLLER_CAPABILITIES: readonly ControllerCapability[] = [
  'CREATE_DELETE_VOLUME',
  'CREATE_DELETE_SNAPSHOT',
  'CLONE_VOLUME',
  'EXPAND_VOLUME',
  'SINGLE_NODE_MULTI_WRITER',
];

/** Where a snapshot lives, kept in its record (its source volume's record may be gone). */
interface CephfsSnapshotRecord extends SnapshotRecord {
  cephfs?: { subvolume: string; group: string };
}

export interface CephfsBackendOptions {
  config: ClusterConfig;
  /** Node state: stashes and ceph-fuse credentials (default /var/lib/stowage/cephfs). */
  stateDir: string;
  nodeId: string;
  maxVolumesPerNode: number;
  /** Seconds a connection or a monitor/mgr command may take. */
  timeoutSeconds: number;
  runner: CommandRunner;
  mounter: Mounter;
  loops: LoopDevices;
  /** Where CO-given paths may be, and the only way the node side creates, mounts on and removes them. */
  paths: NodePaths;
  log: Logger;
  /** Serve the node side (repairs staged volumes at open). */
  node: boolean;
}

interface Credentials {
  user: string;
  key: string;
}

type Role = 'admin' | 'mount' | 'journal';

export class CephfsBackend implements Backend<VolumeRecord, CephfsSnapshotRecord> {
  readonly kind = 'cephfs';
  readonly controllerCapabilities = CEPHFS_CONTROLLER_CAPABILITIES;
  readonly defaultFsType = DEFAULT_FS;
  readonly nodeId: string;
  readonly maxVolumesPerNode: number;
  readonly volumes: OmapJournal<VolumeRecord>;
  readonly snapshots: OmapJournal<CephfsSnapshotRecord>;
  /** CephFS quotas are 64-bit; this is what a JS number carries exactly, in whole units. */
  readonly maximumVolumeBytes = Math.floor(Number.MAX_SAFE_INTEGER / SIZE_UNIT) * SIZE_UNIT;
  private readonly conns: Connections;
  private readonly fsMap = new FsMap();
  private readonly node: CephfsNode;
  /** Subvolume groups known to exist, by cluster/fs/group (made once per process). */
  private readonly groups = new Set<string>();
  /** Mgr commands left unanswered, by the volume or snapshot ID they were sent for. */
  private readonly unanswered = new UnansweredCommands();

  private constructor(private readonly opts: CephfsBackendOptions) {
    this.nodeId = opts.nodeId;
    this.maxVolumesPerNode = opts.maxVolumesPerNode;
    this.conns = new Connections(opts.timeoutSeconds);
    this.volumes = new OmapJournal<VolumeRecord>(VOLUME_LAYOUT, this.volumePools());
    this.snapshots = new OmapJournal<CephfsSnapshotRecord>(SNAPSHOT_LAYOUT, this.snapshotPools(), (s) => ({
      // ceph-csi's csi.source: the snapshot's parent subvolume.
      'csi.source': s.cephfs?.subvolume ?? this.subvolumeOfId(s.sourceVolumeId),
    }));
    this.node = new CephfsNode({
      stateDir: opts.stateDir,
      runner: opts.runner,
      mounter: opts.mounter,
      loops: opts.loops,
      paths: opts.paths,
      timeoutSeconds: opts.timeoutSeconds,
    });
  }

  static async open(opts: CephfsBackendOptions): Promise<CephfsBackend> {
    const b = new CephfsBackend(opts);
    await b.node.init();
    // A restarted node plugin finds what it staged and remounts what broke (a dead ceph-fuse).
    if (opts.node) await b.node.repairAll(opts.log);
    return b;
  }

  async ready(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    // ceph-fuse mounts stay: staged volumes keep serving while the driver restarts.
    const busy = await this.conns.close();
    if (busy > 0) this.opts.log.warn({ connections: busy }, 'Ceph connections still in use at shutdown were left open, not freed under a running call');
  }

  // ------------------------------------------------------------------ cluster access

  private cluster(clusterID: string): CephCluster {
    return this.opts.config.require(clusterID);
  }

  /**
   * The call's credentials for a role: provisioning needs adminID/adminKey; mounting takes
   * userID/userKey, or the admin's when there is no user; reading the journal takes either.
   */
  private creds(ctx: OpContext, role: Role): Credentials {
    const pick = (idKey: string, keyKey: string): Credentials | undefined => {
      const user = ctx.secrets[idKey];
      if (!user) return undefined;
      const key = ctx.secrets[keyKey];
      if (!key) throw new InvalidArgumentError(`secret ${keyKey} is missing for ${idKey} ${user}`);
      return { user, key };
    };
    if (role === 'admin') {
      const c = pick('adminID', 'adminKey');
      if (!c) throw new InvalidArgumentError('secret adminID is missing (the provisioner, controller-expand and snapshotter secrets must carry adminID and adminKey)');
      return c;
    }
    const c = role === 'mount' ? (pick('userID', 'userKey') ?? pick('adminID', 'adminKey')) : (pick('adminID', 'adminKey') ?? pick('userID', 'userKey'));
    if (!c) throw new InvalidArgumentError('secrets userID/userKey (or adminID/adminKey) are missing (the node-stage secret must carry them)');
    return c;
  }

  /** Runs use connected to the cluster with the call's credentials; Ceph errors become gRPC statuses. */
  private async withCluster<T>(clusterID: string, ctx: OpContext, role: Role, use: (rados: Rados, cluster: CephCluster) => Promise<T>): Promise<T> {
    const cluster = this.cluster(clusterID);
    const c = this.creds(ctx, role);
    try {
      return await this.conns.with(cluster.monitors, c.user, c.key, (rados) => use(rados, cluster));
    } catch (e) {
      throw cephfsError(e, { clusterID, monitors: cluster.monitors, user: c.user });
    }
  }

  /** The filesystem an ID names; undefined when that filesystem no longer exists. */
  private async withIdFs<T>(id: CsiIdentifier, ctx: OpContext, role: Role, use: (fs: CephFilesystem, rados: Rados) => Promise<T>): Promise<T | undefined> {
    return this.withCluster(id.clusterID, ctx, role, async (rados) => {
      const fs = await this.fsMap.byId(id.clusterID, rados, id.poolId);
      if (!fs) return undefined;
      return use(fs, rados);
    });
  }

  private async requireFs(rados: Rados, clusterID: string, fsName: string): Promise<CephFilesystem> {
    const fs = await this.fsMap.byName(clusterID, rados, fsName);
    if (!fs) {
      const known = (await this.fsMap.list(clusterID, rados)).map((f) => f.name).join(', ') || 'none';
      throw new InvalidArgumentError(`CephFS filesystem "${fsName}" does not exist in ceph cluster ${clusterID} (filesystems: ${known})`);
    }
    return fs;
  }

  /** The journal's I/O context: the filesystem's metadata pool, namespace csi. */
  private async journalIo(rados: Rados, fs: CephFilesystem): Promise<IoCtx> {
    const name = await rados.poolName(fs.metadataPoolId);
    if (name === undefined) throw new InternalError(`the metadata pool (ID ${fs.metadataPoolId}) of filesystem ${fs.name} does not exist`);
    return rados.ioctx(fs.metadataPoolId, name, JOURNAL_NAMESPACE);
  }

  private volumePools(): JournalPools {
    return {
      withIdPool: (id, ctx, use) => this.withIdFs(id, ctx, 'journal', async (fs, rados) => use(await this.journalIo(rados, fs))),
      withNamePool: async (ctx, use) => {
        const p = ctx.parameters ?? {};
        const clusterID = p['clusterID'];
        const fsName = p['fsName'];
        if (!clusterID || !fsName) throw new InvalidArgumentError('parameters clusterID and fsName are required');
        return this.withCluster(clusterID, ctx, 'journal', async (rados) => {
          const fs = await this.requireFs(rados, clusterID, fsName);
          return use(await this.journalIo(rados, fs), (uuid) => encodeId({ clusterID, poolId: fs.fscid, uuid }));
        });
      },
    };
  }

  /** Snapshots are journaled in their source volume's filesystem, as ceph-csi does. */
  private snapshotPools(): JournalPools {
    return {
      withIdPool: (id, ctx, use) => this.withIdFs(id, ctx, 'journal', async (fs, rados) => use(await this.journalIo(rados, fs))),
      withNamePool: async (ctx, use) => {
        const source = ctx.sourceVolumeId ? decodeId(ctx.sourceVolumeId) : undefined;
        if (!source) return undefined; // not one of our volumes: the source lookup answers NOT_FOUND
        // The source's ID names cluster and filesystem; a VolumeSnapshotClass may repeat them, never contradict them.
        const p = ctx.parameters ?? {};
        requireAgreement('clusterID', p['clusterID'], source.clusterID, `the cluster of source volume ${ctx.sourceVolumeId}`, SNAPSHOT_BESIDE_SOURCE);
        return this.withIdFs(source, ctx, 'journal', async (fs, rados) => {
          requireAgreement('fsName', p['fsName'], fs.name, `the filesystem of source volume ${ctx.sourceVolumeId}`, SNAPSHOT_BESIDE_SOURCE);
          return use(await this.journalIo(rados, fs), (uuid) => encodeId({ clusterID: source.clusterID, poolId: source.poolId, uuid }));
        });
      },
    };
  }

  private parse(id: string): CsiIdentifier {
    const parsed = decodeId(id);
    if (!parsed) throw new NotFoundError(`${id} is not a cephfs volume or snapshot ID`);
    return parsed;
  }

  private subvolumeOfId(id: string): string {
    const parsed = decodeId(id);
    return parsed ? `${VOLUME_LAYOUT.imagePrefix}${parsed.uuid}` : '';
  }

  private subvolumeOf(rec: VolumeRecord): string {
    return rec.volumeContext['subvolumeName'] ?? this.subvolumeOfId(rec.id);
  }

  private groupOf(rec: VolumeRecord): string {
    return rec.volumeContext['subvolumeGroup'] ?? rec.parameters['subvolumeGroup'] ?? DEFAULT_SUBVOLUME_GROUP;
  }

  /**
   * How the mgr commands of a call on volume (or snapshot) id wait: a clone's (CreateVolume or
   * DeleteVolume of a volume with a content source) as long as the caller waits, up to
   * CLONE_WAIT_LIMIT_MS, because the mgr answers them late while clones run (clone-flow.ts says
   * why); the rest for --ceph-timeout, so that a mgr that is down fails a plain call fast. Either
   * way a command left unanswered is remembered under id until the mgr answers it.
   */
  private patience(id: string, ctx: OpContext, clone: boolean): MgrPatience {
    const track = (answer: Promise<void>, op: string) => {
      ctx.log.warn({ id, op }, 'mgr command left unanswered; later calls on this ID wait for its answer');
      this.unanswered.add(id, answer);
    };
    const signal = clone ? ctx.signal : undefined;
    return signal ? { signal, waitMs: CLONE_WAIT_LIMIT_MS, onUnanswered: track } : { onUnanswered: track };
  }

  /**
   * Waits (as long as the caller does, up to limitMs) for the mgr to answer the commands earlier
   * calls on id left unanswered; ABORTED, which the CO retries, while any is still out.
   */
  private async afterUnanswered(id: string, ctx: OpContext, rpc: string, limitMs: number): Promise<void> {
    if (this.unanswered.count(id) === 0) return;
    const left = await this.unanswered.settle(id, { signal: ctx.signal, limitMs });
    if (left === 0) return;
    throw new AbortedError(
      `${left} mgr command(s) an earlier call sent for ${id} are still unanswered (the mgr is busy: running CephFS clones hold up its volumes module); ` +
        `they may still take effect, so ${rpc} waits for them: retry ${rpc}`,
    );
  }

  private async ensureGroup(clusterID: string, sv: Subvolumes): Promise<void> {
    const key = `${clusterID}/${sv.fsName}/${sv.group}`;
    if (this.groups.has(key)) return;
    await sv.ensureGroup();
    this.groups.add(key);
  }

  // ------------------------------------------------------------------ controller

  checkParameters(params: Record<string, string>, kind: 'volume' | 'snapshot'): void {
    const known = kind === 'volume' ? VOLUME_PARAMETERS : SNAPSHOT_PARAMETERS;
    for (const k of Object.keys(params)) {
      if (k.startsWith('csi.storage.k8s.io/')) continue;
      if (!known.has(k)) throw new InvalidArgumentError(`parameter "${k}" is not known to the cephfs backend (it takes ${[...known].join(', ')})`);
    }
    // A snapshot's cluster and filesystem are its source volume's, named by the source's ID: a
    // VolumeSnapshotClass without parameters is legal (the journal lookup checks any it has).
    if (kind === 'snapshot') return;
    const clusterID = params['clusterID'];
    if (!clusterID) throw new InvalidArgumentError('parameter clusterID is required');
    this.cluster(clusterID);
    if (!params['fsName']) throw new InvalidArgumentError('parameter fsName is required (the CephFS filesystem volumes are made in)');
    const group = params['subvolumeGroup'];
    if (group !== undefined && !/^[A-Za-z0-9_.-]+$/.test(group)) throw new InvalidArgumentError(`parameter subvolumeGroup "${group}" may only hold letters, digits, "_", "." and "-"`);
    const mounter = params['mounter'];
    if (mounter !== undefined && !MOUNTERS.has(mounter)) throw new InvalidArgumentError(`parameter mounter "${mounter}" is not one of ${[...MOUNTERS].join(', ')}`);
    mountOptionList(params['fuseMountOptions'], 'fuseMountOptions');
    mountOptionList(params['kernelMountOptions'], 'kernelMountOptions');
  }

  unsupportedCapability(cap: Capability): string | undefined {
    if (cap.accessType === 'block') return 'raw block volumes are not supported by the cephfs backend: a CephFS volume is a filesystem (use the rbd backend for block)';
    if (!SUPPORTED_FS.has(cap.fsType)) return `fs_type "${cap.fsType}" is not supported by the cephfs backend: volumes are CephFS subvolumes (leave fs_type empty, or "${DEFAULT_FS}")`;
    return undefined;
  }

  /** CephFS volumes are reachable from every node: no topology. */
  nodeTopology(): Topology {
    return {};
  }

  placeVolume(): Topology[] {
    return [];
  }

  async newVolumeId(ctx: OpContext): Promise<string> {
    const p = ctx.parameters ?? {};
    const clusterID = p['clusterID'] ?? '';
    const fscid = await this.withCluster(clusterID, ctx, 'admin', async (rados) => (await this.requireFs(rados, clusterID, p['fsName'] ?? '')).fscid);
    return encodeId({ clusterID, poolId: fscid, uuid: randomUUID() });
  }

  async newSnapshotId(ctx: OpContext): Promise<string> {
    const source = this.parse(ctx.sourceVolumeId ?? '');
    return encodeId({ clusterID: source.clusterID, poolId: source.poolId, uuid: randomUUID() });
  }

  allocationSize(requestedBytes: number): number {
    return Math.max(SIZE_UNIT, Math.ceil(requestedBytes / SIZE_UNIT) * SIZE_UNIT);
  }

  async createVolume(rec: VolumeRecord, ctx: OpContext): Promise<void> {
    const id = this.parse(rec.id);
    const name = `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    const group = this.groupOf(rec);
    const pool = rec.parameters['pool'];
    await this.afterUnanswered(rec.id, ctx, 'CreateVolume', CLONE_WAIT_LIMIT_MS);
    const done = await this.withIdFs(id, ctx, 'admin', async (fs, rados) => {
      if (pool) {
        const names = await Promise.all(fs.dataPoolIds.map((p) => rados.poolName(p)));
        if (!names.includes(pool)) throw new InvalidArgumentError(`parameter pool "${pool}" is not a data pool of filesystem ${fs.name} (data pools: ${names.join(', ')})`);
      }
      const sv = new Subvolumes(rados, fs.name, group, this.patience(rec.id, ctx, Boolean(rec.source)));
      await this.ensureGroup(id.clusterID, sv);
      if (rec.source) await this.cloneInto(rec, sv, name, pool, ctx);
      else await sv.create(name, { sizeBytes: rec.capacityBytes, ...(pool ? { pool } : {}) });
      const path = await sv.getpath(name);
      rec.volumeContext = {
        clusterID: id.clusterID,
        fsName: fs.name,
        subvolumeName: name,
        subvolumeGroup: group,
        subvolumePath: path,
        ...(pool ? { pool } : {}),
        ...Object.fromEntries(NODE_PARAMETERS.filter((k) => rec.parameters[k] !== undefined).map((k) => [k, rec.parameters[k]!])),
      };
      ctx.log.debug({ volumeId: rec.id, fsName: fs.name, subvolume: name, path }, 'cephfs subvolume ready');
      return true;
    });
    if (!done) throw new FailedPreconditionError(`the filesystem of volume ${rec.id} (fscid ${id.poolId}) no longer exists`);
  }

  /** Where a content source's data is: subvolume, group and snapshot to clone from. */
  private async sourceOf(rec: VolumeRecord, name: string, ctx: OpContext): Promise<{ subvolume: string; group: string; snap: string; temporary: boolean }> {
    const source = rec.source!;
    if (source.kind === 'snapshot') {
      const snap = await this.snapshots.get(source.id, ctx);
      if (!snap) throw new NotFoundError(`snapshot ${source.id} does not exist`);
      const where = snap.cephfs ?? (await this.snapshotLocationFallback(snap, ctx));
      return { ...where, snap: `${SNAPSHOT_LAYOUT.imagePrefix}${this.parse(source.id).uuid}`, temporary: false };
    }
    const from = await this.volumes.get(source.id, ctx);
    // A clone whose source went away meanwhile: its temporary snapshot (named like the clone) is all that's left.
    return { subvolume: from ? this.subvolumeOf(from) : this.subvolumeOfId(source.id), group: from ? this.groupOf(from) : this.groupOf(rec), snap: name, temporary: true };
  }

  private async snapshotLocationFallback(snap: SnapshotRecord, ctx: OpContext): Promise<{ subvolume: string; group: string }> {
    const from = await this.volumes.get(snap.sourceVolumeId, ctx);
    return from ? { subvolume: this.subvolumeOf(from), group: this.groupOf(from) } : { subvolume: this.subvolumeOfId(snap.sourceVolumeId), group: DEFAULT_SUBVOLUME_GROUP };
  }

  /**
   * Starts the clone (once: the journal reserved the name and its ID first, so a clone whose
   * caller went away is found again by a retry, or removed by DeleteVolume of that ID), then
   * waits for the mgr to copy it while the caller waits: OK once complete (grown to the requested
   * size), ABORTED if the caller gives up first (the clone goes on; a retry waits on). A failed
   * clone is removed and reported; the retry starts it over.
   */
  private async cloneInto(rec: VolumeRecord, sv: Subvolumes, name: string, pool: string | undefined, ctx: OpContext): Promise<void> {
    // The mgr clones within one filesystem of one cluster.
    const from = this.parse(rec.source!.id);
    const to = this.parse(rec.id);
    const what = `source ${rec.source!.kind} ${rec.source!.id}`;
    const why = "a clone is made in its source's filesystem";
    requireAgreement('clusterID', to.clusterID, from.clusterID, `the cluster of ${what}`, why);
    if (from.poolId !== to.poolId) {
      const names = await this.withCluster(from.clusterID, ctx, 'journal', async (rados) => (await this.fsMap.byId(from.clusterID, rados, from.poolId))?.name);
      requireAgreement('fsName', sv.fsName, names ?? `fscid ${from.poolId}`, `the filesystem of ${what}`, why);
    }
    const src = await this.sourceOf(rec, name, ctx);
    await cloneAndWait({ volumeId: rec.id, sv, name, src, pool, capacityBytes: rec.capacityBytes, signal: ctx.signal, log: ctx.log });
  }

  async deleteVolume(rec: VolumeRecord, ctx: OpContext): Promise<void> {
    const id = this.parse(rec.id);
    const name = this.subvolumeOf(rec);
    // A create whose mgr commands are still unanswered may yet make the subvolume: not before them.
    await this.afterUnanswered(rec.id, ctx, 'DeleteVolume', CANCEL_WAIT_LIMIT_MS);
    await this.withIdFs(id, ctx, 'admin', async (fs, rados) => {
      const patience = this.patience(rec.id, ctx, Boolean(rec.source));
      const sv = new Subvolumes(rados, fs.name, this.groupOf(rec), patience);
      if (rec.source) await stopClone(sv, name, rec.id, { signal: ctx.signal, log: ctx.log });
      try {
        await sv.remove(name);
      } catch (e) {
        // Snapshots of it still exist: they outlive it (CSI snapshots are independent objects).
        if (!isCephError(e, 'ENOTEMPTY')) throw e;
        ctx.log.info({ volumeId: rec.id, subvolume: name }, 'subvolume has snapshots: removed with --retain-snapshots');
        await sv.remove(name, { retainSnapshots: true });
      }
      if (rec.source?.kind === 'volume') {
        // A clone cut short may have left its temporary snapshot on the source.
        const from = await this.volumes.get(rec.source.id, ctx).catch(() => undefined);
        const srcSv = new Subvolumes(rados, fs.name, from ? this.groupOf(from) : this.groupOf(rec), patience);
        // EAGAIN: still the source of a clone the mgr has not let go of yet; never left pinned.
        const srcName = from ? this.subvolumeOf(from) : this.subvolumeOfId(rec.source.id);
        const removed = await pollUntil(
          () => srcSv.snapshotRemove(srcName, name).then(() => true, (e: unknown) => {
            if (isCephError(e, 'EAGAIN', 'EWOULDBLOCK')) return false;
            throw e;
          }),
          (done) => done,
          { signal: ctx.signal, limitMs: CANCEL_WAIT_LIMIT_MS },
        );
        if (!removed.settled) throw new AbortedError(`the temporary snapshot ${srcName}@${name} of volume ${rec.id}'s clone still has clones pending; retry DeleteVolume`);
      }
    });
    ctx.log.debug({ volumeId: rec.id, subvolume: name }, 'cephfs subvolume removed');
  }

  /**
   * A subvolume some client has mounted (an MDS session rooted in it) must not be deleted under
   * it: the mount would go stale and the pod lose its data. Asked of the MDS (`session ls`).
   */
  async volumeInUse(rec: VolumeRecord, ctx: OpContext): Promise<string | undefined> {
    const path = rec.volumeContext['subvolumePath'];
    if (!path) return undefined;
    const id = this.parse(rec.id);
    const cluster = this.cluster(id.clusterID);
    const c = this.creds(ctx, 'admin');
    const fsName = rec.volumeContext['fsName'] ?? rec.parameters['fsName'] ?? '';
    let sessions: Awaited<ReturnType<typeof mdsSessionsUnder>>;
    try {
      sessions = await mdsSessionsUnder(this.opts.runner, { monitors: cluster.monitors, user: c.user, key: c.key, fsName, timeoutSeconds: this.opts.timeoutSeconds }, path);
    } catch (e) {
      throw cephfsError(e, { clusterID: id.clusterID, monitors: cluster.monitors, user: c.user });
    }
    if (sessions.length === 0) return undefined;
    const who = sessions.map((s) => `client.${s.id}${s.entity ? ` (${s.entity})` : ''}${s.host ? ` on ${s.host}` : ''}`).join(', ');
    return `volume ${rec.id} (subvolume ${fsName}:${path}) is still mounted by ${who}`;
  }

  /** Every omap write is durable once Ceph acknowledges it (see rbd-backend.ts). */
  async hasStorage(): Promise<boolean> {
    return false;
  }

  async createSnapshot(snap: CephfsSnapshotRecord, source: VolumeRecord, ctx: OpContext): Promise<{ sizeBytes: number }> {
    const sid = this.parse(snap.id);
    const subvolume = this.subvolumeOf(source);
    const group = this.groupOf(source);
    const snapName = `${SNAPSHOT_LAYOUT.imagePrefix}${sid.uuid}`;
    await this.afterUnanswered(snap.id, ctx, 'CreateSnapshot', CANCEL_WAIT_LIMIT_MS);
    const size = await this.withIdFs(sid, ctx, 'admin', async (fs, rados) => {
      const sv = new Subvolumes(rados, fs.name, group, this.patience(snap.id, ctx, false));
      try {
        await sv.snapshotCreate(subvolume, snapName);
      } catch (e) {
        if (isCephError(e, 'ENOENT')) throw new NotFoundError(`source volume ${source.id} has no subvolume ${subvolume}`, { cause: e });
        throw e;
      }
      return (await sv.info(subvolume))?.quotaBytes ?? source.capacityBytes;
    });
    if (size === undefined) throw new NotFoundError(`the filesystem of source volume ${source.id} no longer exists`);
    snap.cephfs = { subvolume, group };
    ctx.log.debug({ snapshotId: snap.id, subvolume, snapshot: snapName }, 'cephfs snapshot taken');
    return { sizeBytes: size };
  }

  async deleteSnapshot(snap: CephfsSnapshotRecord, ctx: OpContext): Promise<void> {
    const sid = this.parse(snap.id);
    const snapName = `${SNAPSHOT_LAYOUT.imagePrefix}${sid.uuid}`;
    const where = snap.cephfs ?? (await this.snapshotLocationFallback(snap, ctx));
    await this.afterUnanswered(snap.id, ctx, 'DeleteSnapshot', CANCEL_WAIT_LIMIT_MS);
    await this.withIdFs(sid, ctx, 'admin', async (fs, rados) => {
      try {
        await new Subvolumes(rados, fs.name, where.group, this.patience(snap.id, ctx, false)).snapshotRemove(where.subvolume, snapName);
      } catch (e) {
        if (isCephError(e, 'EAGAIN', 'EWOULDBLOCK')) {
          throw new FailedPreconditionError(`snapshot ${snap.id} (${where.subvolume}@${snapName}) has clones in progress; delete it once they are done`, { cause: e });
        }
        throw e;
      }
    });
  }

  async expandVolume(rec: VolumeRecord, newBytes: number, ctx: OpContext): Promise<{ nodeExpansionRequired: boolean }> {
    const id = this.parse(rec.id);
    const name = this.subvolumeOf(rec);
    const found = await this.withIdFs(id, ctx, 'admin', async (fs, rados) => {
      const sv = new Subvolumes(rados, fs.name, this.groupOf(rec));
      try {
        await sv.resize(name, newBytes);
      } catch (e) {
        if (isCephError(e, 'ENOENT')) return false;
        throw e;
      }
      return true;
    });
    if (!found) throw new NotFoundError(`volume ${rec.id} has no subvolume ${name}`);
    // The quota is the size: mounts see it at once, there is no filesystem to grow on the node.
    return { nodeExpansionRequired: false };
  }

  async controllerHealth(rec: VolumeRecord, ctx: OpContext): Promise<VolumeHealth> {
    const id = this.parse(rec.id);
    const name = this.subvolumeOf(rec);
    const info = await this.withIdFs(id, ctx, 'admin', (fs, rados) => new Subvolumes(rados, fs.name, this.groupOf(rec)).info(name));
    if (!info) return { abnormal: true, message: `subvolume ${name} is missing` };
    return info.state === 'complete' ? { abnormal: false, message: 'subvolume exists' } : { abnormal: true, message: `subvolume ${name} is ${info.state}` };
  }

  // ------------------------------------------------------------------ node

  async nodeVolume(id: string, ctx: OpContext, call: NodeCall): Promise<VolumeRecord | undefined> {
    if (!decodeId(id)) return undefined;
    // NodeStage reads the journal with its node-stage secrets; the other node calls use what
    // NodeStage stashed, unless they carry secrets.
    if (call === 'stage') this.creds(ctx, 'mount');
    const hasSecrets = Boolean((ctx.secrets['userID'] && ctx.secrets['userKey']) || (ctx.secrets['adminID'] && ctx.secrets['adminKey']));
    if (call === 'stage' || hasSecrets) return this.volumes.get(id, ctx);
    const stashed = await this.node.stashedVolume(id);
    if (!stashed && call !== 'stats') throw new FailedPreconditionError(`volume ${id} is not staged on this node`);
    return stashed;
  }

  async stage(req: StageRequest, ctx: OpContext): Promise<void> {
    const id = this.parse(req.volume.id);
    const choice = await this.mounterChoice(req);
    const c = this.creds(ctx, 'mount');
    const cluster = this.cluster(id.clusterID);
    const vc = { ...req.volumeContext, ...req.volume.volumeContext };
    let fsName = vc['fsName'];
    let path = vc['subvolumePath'];
    if (!fsName || !path) {
      const found = await this.withIdFs(id, ctx, 'mount', async (fs, rados) => ({
        fsName: fs.name,
        path: await new Subvolumes(rados, fs.name, this.groupOf(req.volume)).getpath(this.subvolumeOf(req.volume)),
      }));
      if (!found) throw new NotFoundError(`the filesystem of volume ${req.volume.id} no longer exists`);
      ({ fsName, path } = found);
    }
    const target: CephfsTarget = { clusterID: id.clusterID, monitors: cluster.monitors, fsName, path, user: c.user };
    try {
      await this.node.stage(req, target, c.key, choice, ctx.log);
    } catch (e) {
      throw fuseError(e, { clusterID: id.clusterID, monitors: cluster.monitors, user: c.user, what: `${fsName}:${path}` });
    }
  }

  /**
   * The client a NodeStage mounts with: the class's `mounter` (the volume's context, the CO's, or
   * the record's parameters) or, when none, ceph-csi's choice: the kernel client where the ceph
   * module is loaded, ceph-fuse elsewhere; with that client's options from the class.
   */
  private async mounterChoice(req: StageRequest): Promise<CephfsMounterChoice> {
    const param = (k: string) => req.volume.volumeContext[k] ?? req.volumeContext[k] ?? req.volume.parameters[k];
    const asked = param('mounter');
    if (asked !== undefined && !MOUNTERS.has(asked)) throw new InvalidArgumentError(`mounter "${asked}" is not one of ${[...MOUNTERS].join(', ')}`);
    const kind: CephfsMounterKind = asked === 'kernel' || asked === 'fuse' ? asked : (await moduleLoaded(realHostProbe, 'ceph')) ? 'kernel' : 'fuse';
    const options = mountOptionList(param(kind === 'kernel' ? 'kernelMountOptions' : 'fuseMountOptions'), kind === 'kernel' ? 'kernelMountOptions' : 'fuseMountOptions');
    return { kind, options };
  }

  async unstage(volumeId: string, stagingPath: string, ctx: OpContext): Promise<void> {
    this.parse(volumeId);
    await this.node.unstage(volumeId, stagingPath, ctx.log);
  }

  async publish(req: PublishRequest): Promise<void> {
    await this.node.publish(req);
  }

  async unpublish(volumeId: string, targetPath: string): Promise<void> {
    this.parse(volumeId);
    await this.node.unpublish(volumeId, targetPath);
  }

  /** Nothing to grow on the node (the quota is the size); reports what the mount sees. */
  async nodeExpand(volume: VolumeRecord, volumePath: string): Promise<{ capacityBytes: number }> {
    return { capacityBytes: await this.node.mountedSize(volume, volumePath) };
  }

  async usage(volume: VolumeRecord, volumePath: string): Promise<VolumeUsage> {
    return this.node.usage(volume, volumePath);
  }
}

interface ErrorWhere {
  clusterID: string;
  monitors: string[];
  user?: string;
}

/** Ceph failures of this backend as gRPC statuses (../ceph/errors.ts plus what the mgr says). */
export function cephfsError(e: unknown, where: ErrorWhere): CsiError {
  if (e instanceof CsiError) return e;
  const off = volumesModuleOff(e, where.clusterID);
  if (off) return off;
  if (e instanceof UnansweredMgrCommand) {
    // The operation is pending in the mgr for this volume: the spec's ABORTED ("operation pending
    // for volume"), which a CO retries with the same name or ID; the retry waits for that answer.
    return new AbortedError(
      `${e.message} (the mgr answers late while CephFS clones run: its volumes module queues commands behind its cloner). ` +
        'The driver holds further calls on this volume until the mgr answers: retry the same call (same name or ID); it finds what the command did',
      { cause: e },
    );
  }
  if (e instanceof CephError && e.op.startsWith('mgr command')) {
    if (e.code === 'ECANCELED') return new AbortedError(`${e.message}; retry`, { cause: e });
    if (e.code === 'EAGAIN' || e.code === 'EWOULDBLOCK') return new AbortedError(`${e.message}; retry`, { cause: e });
    if (e.code === 'EINVAL') return new InvalidArgumentError(`${e.message} (ceph cluster ${where.clusterID})`, { cause: e });
  }
  return cephToCsi(e, where);
}

/** A ceph-fuse that would not mount, as a status naming what it said. */
function fuseError(e: unknown, where: ErrorWhere & { what: string }): CsiError {
  if (e instanceof CsiError) return e;
  if (e instanceof CommandTimeoutError) {
    return new UnavailableError(`ceph-fuse did not mount ${where.what} in time: cannot reach ceph cluster ${where.clusterID} (monitors ${where.monitors.join(', ')})`, { cause: e });
  }
  if (e instanceof CommandFailedError) {
    const text = e.message;
    if (/\((1|13)\) (Operation not permitted|Permission denied)/.test(text)) {
      return new PermissionDeniedError(`ceph cluster ${where.clusterID} refused client.${where.user ?? '?'} mounting ${where.what} (check userID/userKey and the user's mds/osd caps): ${text}`, { cause: e });
    }
    if (/\((110|111|107)\)|timed out|Connection refused/i.test(text)) {
      return new UnavailableError(`cannot reach ceph cluster ${where.clusterID} (monitors ${where.monitors.join(', ')}) to mount ${where.what}: ${text}`, { cause: e });
    }
    if (/\(2\) No such file or directory/.test(text)) return new NotFoundError(`${where.what} does not exist on ceph cluster ${where.clusterID}: ${text}`, { cause: e });
  }
  return cephfsError(e, where);
}

/** A fuseMountOptions / kernelMountOptions value as a list; INVALID_ARGUMENT for empty or malformed options. */
export function mountOptionList(text: string | undefined, name: string): string[] {
  if (text === undefined) return [];
  const list = text.split(',').map((o) => o.trim());
  for (const o of list) {
    if (o === '') throw new InvalidArgumentError(`parameter ${name}: empty option in "${text}"`);
    if (!/^[A-Za-z0-9_.-]+(=[^\s,=][^\s,]*)?$/.test(o)) throw new InvalidArgumentError(`parameter ${name}: malformed option "${o}" (expected name or name=value)`);
  }
  return list;
}
