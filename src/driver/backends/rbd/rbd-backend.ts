/**
 * The rbd backend: volumes are RBD images in Ceph pools, named and journaled the way ceph-csi
 * does it (volume-id.ts, journal.ts), so ceph-csi's StorageClasses, secrets and volume IDs work
 * unchanged. The controller side talks to Ceph through librados/librbd (rados.ts, librbd.ts) with
 * the credentials of each call; the node side (node-staging.ts) maps images with krbd, rbd-nbd or
 * rbd-fuse and a loop device, as the class's `mounter` says (map-options.ts).
 *
 * Images and snapshots (clone v2, as ceph-csi does since 3.x):
 * - volume            image csi-vol-<uuid>, features from imageFeatures (default layering)
 * - snapshot          image csi-snap-<uuid> cloned from a temporary snapshot of the source (which
 *                     is removed right away: clone v2 keeps it in the trash namespace while the
 *                     clone needs it), with its own snapshot csi-snap-<uuid>. The snapshot lives on
 *                     when its source volume is deleted.
 * - restore / clone   image csi-vol-<uuid> cloned from csi-snap-<s>@csi-snap-<s>, or from a
 *                     temporary snapshot of the source volume
 * - depth             a new clone whose chain of parents is deeper than maxCloneDepth is flattened
 * - deletion          an image that still has clones (its snapshots are in the trash namespace)
 *                     moves to the RBD trash; when its last clone goes, it is purged with it.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../../csi/errors.js';
import type { CommandRunner } from '../../mount/exec.js';
import type { LoopDevices } from '../../mount/loop.js';
import type { NodePaths } from '../node-paths.js';
import type { Mounter } from '../../mount/mount.js';
import type {
  AccessMode,
  AccessType,
  Backend,
  Capability,
  ControllerCapability,
  GroupSnapshotRecord,
  GroupSnapshots,
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
import type { ClusterConfig, CephCluster } from '../ceph/cluster-config.js';
import { Connections } from '../ceph/connections.js';
import { cephToCsi } from '../ceph/errors.js';
import { OmapJournal, SNAPSHOT_LAYOUT, VOLUME_LAYOUT, type JournalPools } from '../ceph/journal.js';
import {
  cloneImage,
  createImage,
  FEATURES,
  Image,
  removeImage,
  trashList,
  trashMove,
  trashRemove,
  TrashState,
  trashStateSet,
  type TrashEntry,
} from './librbd.js';
import { defaultMapper } from './kernel-mapper.js';
import { headerMetadataGet, headerMetadataSet, headerParent, headerSize, imageId, type ParentRef } from './header.js';
import { mapperOfParameter, optionsFor, parseMapOptions } from './map-options.js';
import { RbdNode, type MapperChoice } from './node-staging.js';
import { cutGroup, GROUP_LAYOUT } from './group-snapshots.js';
import { isCephError, type IoCtx, type Rados } from '../ceph/rados.js';
import { decodeId, encodeId, requireAgreement, SNAPSHOT_BESIDE_SOURCE, type CsiIdentifier } from '../ceph/volume-id.js';

const MiB = 1024 * 1024;
/** Images are made of 4 MiB objects (order 22); sizes are rounded up to whole objects. */
export const OBJECT_ORDER = 22;
const OBJECT_BYTES = 2 ** OBJECT_ORDER;
const MINIMUM_BY_FS: Record<string, number> = { xfs: 300 * MiB, ext4: 16 * MiB };
const SUPPORTED_FS = new Set(['', 'ext4', 'xfs']);
export const DEFAULT_FS = 'ext4';
/** Image metadata set once a clone is whole (see ensureImage). */
const COMPLETE_KEY = 'stowage.complete';

/** ceph-csi's StorageClass parameters that this driver honours or knowingly ignores. */
const VOLUME_PARAMETERS = new Set([
  'clusterID',
  'pool',
  'imageFeatures',
  'imageFormat',
  'dataPool',
  'mounter',
  // krbd / rbd-nbd map options (rbd-fuse takes none), in ceph-csi's format.
  'mapOptions',
  'unmapOptions',
]);
const SNAPSHOT_PARAMETERS = new Set(['clusterID', 'pool']);
/** Parameters a volume carries to the node in its volume context, as ceph-csi's do. */
const NODE_PARAMETERS = ['mounter', 'mapOptions', 'unmapOptions'] as const;
/** Feature → the features it needs (rbd refuses the others). */
const FEATURE_NEEDS: Record<string, string[]> = {
  layering: [],
  'exclusive-lock': [],
  'object-map': ['exclusive-lock'],
  'fast-diff': ['object-map'],
  'deep-flatten': [],
  journaling: ['exclusive-lock'],
};

/** Only these: ListVolumes, GetCapacity, ControllerGetVolume... carry no secrets to reach the pool. */
const RBD_CONTROLLER_CAPABILITIES: readonly ControllerCapability[] = [
  'CREATE_DELETE_VOLUME',
  'CREATE_DELETE_SNAPSHOT',
  'CLONE_VOLUME',
  'EXPAND_VOLUME',
  'SINGLE_NODE_MULTI_WRITER',
];

export interface RbdBackendOptions {
  config: ClusterConfig;
  /** Node state: stashes and rbd-fuse mounts (default /var/lib/stowage/rbd). */
  stateDir: string;
  nodeId: string;
  maxVolumesPerNode: number;
  /** Seconds a connection, a monitor command or an OSD operation may take. */
  timeoutSeconds: number;
  /** A clone deeper than this many parents is flattened (ceph-csi's soft limit is 4). */
  maxCloneDepth: number;
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

export class RbdBackend implements Backend {
  readonly kind = 'rbd';
  readonly controllerCapabilities = RBD_CONTROLLER_CAPABILITIES;
  readonly defaultFsType = DEFAULT_FS;
  readonly nodeId: string;
  readonly maxVolumesPerNode: number;
  readonly volumes: OmapJournal<VolumeRecord>;
  readonly snapshots: OmapJournal<SnapshotRecord>;
  readonly groupSnapshots: GroupSnapshots;
  /** rbd's own limit is 2^64 bytes; this is what a JS number can carry exactly, in whole objects. */
  readonly maximumVolumeBytes = Math.floor(Number.MAX_SAFE_INTEGER / OBJECT_BYTES) * OBJECT_BYTES;
  private readonly conns: Connections;
  private readonly node: RbdNode;

  private constructor(private readonly opts: RbdBackendOptions) {
    this.nodeId = opts.nodeId;
    this.maxVolumesPerNode = opts.maxVolumesPerNode;
    this.conns = new Connections(opts.timeoutSeconds);
    this.volumes = new OmapJournal<VolumeRecord>(VOLUME_LAYOUT, this.volumePools());
    this.snapshots = new OmapJournal<SnapshotRecord>(SNAPSHOT_LAYOUT, this.snapshotPools(), (s) => ({
      'csi.source': this.imageOfId(s.sourceVolumeId, VOLUME_LAYOUT.imagePrefix),
    }));
    this.groupSnapshots = {
      journal: new OmapJournal<GroupSnapshotRecord>(GROUP_LAYOUT, this.snapshotPools()),
      newId: (ctx) => this.newSnapshotId(ctx),
      create: (group, members, ctx) => this.createGroupSnapshot(group, members, ctx),
    };
    this.node = new RbdNode({
      stateDir: opts.stateDir,
      runner: opts.runner,
      mounter: opts.mounter,
      loops: opts.loops,
      paths: opts.paths,
      timeoutSeconds: opts.timeoutSeconds,
      config: opts.config,
    });
  }

  static async open(opts: RbdBackendOptions): Promise<RbdBackend> {
    const b = new RbdBackend(opts);
    await b.node.init();
    // A restarted node plugin finds what it staged and repairs what broke (a dead rbd-fuse).
    if (opts.node) await b.node.repairAll(opts.log);
    return b;
  }

  /** Paths a CO must never hand us: the state directory holds the rbd-fuse mounts. */
  get ownPaths(): string[] {
    return [this.opts.stateDir];
  }

  async ready(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    // rbd-fuse mounts and loop devices stay: staged volumes keep serving while the driver restarts.
    const busy = await this.conns.close();
    if (busy > 0) this.opts.log.warn({ connections: busy }, 'Ceph connections still in use at shutdown were left open, not freed under a running call');
  }

  // ------------------------------------------------------------------ cluster access

  private cluster(clusterID: string): CephCluster {
    return this.opts.config.require(clusterID);
  }

  private creds(ctx: OpContext): Credentials {
    const user = ctx.secrets['userID'];
    const key = ctx.secrets['userKey'];
    if (!user) throw new InvalidArgumentError('secret userID is missing (the provisioner, node-stage or controller-expand secret must carry userID and userKey)');
    if (!key) throw new InvalidArgumentError(`secret userKey is missing for userID ${user}`);
    return { user, key };
  }

  /** Runs use connected to the cluster with the call's credentials; Ceph errors become gRPC statuses. */
  private async withCluster<T>(clusterID: string, ctx: OpContext, use: (rados: Rados, cluster: CephCluster) => Promise<T>): Promise<T> {
    const cluster = this.cluster(clusterID);
    const c = this.creds(ctx);
    try {
      return await this.conns.with(cluster.monitors, c.user, c.key, (rados) => use(rados, cluster));
    } catch (e) {
      throw cephToCsi(e, { clusterID, monitors: cluster.monitors, user: c.user });
    }
  }

  /** The pool an ID names; undefined when that pool no longer exists. */
  private async withIdPool<T>(id: CsiIdentifier, ctx: OpContext, use: (io: IoCtx, rados: Rados) => Promise<T>): Promise<T | undefined> {
    return this.withCluster(id.clusterID, ctx, async (rados) => {
      const name = await rados.poolName(id.poolId);
      if (name === undefined) return undefined;
      return use(await rados.ioctx(id.poolId, name), rados);
    });
  }

  private async requirePool(rados: Rados, clusterID: string, pool: string, what = 'pool'): Promise<IoCtx> {
    const id = await rados.poolId(pool);
    if (id === undefined) throw new InvalidArgumentError(`${what} "${pool}" does not exist in ceph cluster ${clusterID}`);
    return rados.ioctx(id, pool);
  }

  private volumePools(): JournalPools {
    return {
      withIdPool: (id, ctx, use) => this.withIdPool(id, ctx, (io) => use(io)),
      withNamePool: async (ctx, use) => {
        const p = ctx.parameters ?? {};
        const clusterID = p['clusterID'];
        const pool = p['pool'];
        if (!clusterID || !pool) throw new InvalidArgumentError('parameters clusterID and pool are required');
        return this.withCluster(clusterID, ctx, async (rados) => {
          const io = await this.requirePool(rados, clusterID, pool);
          return use(io, (uuid) => encodeId({ clusterID, poolId: io.poolId, uuid }));
        });
      },
    };
  }

  /** Snapshots are journaled in their source volume's pool, as ceph-csi does. */
  private snapshotPools(): JournalPools {
    return {
      withIdPool: (id, ctx, use) => this.withIdPool(id, ctx, (io) => use(io)),
      withNamePool: async (ctx, use) => {
        const source = ctx.sourceVolumeId ? decodeId(ctx.sourceVolumeId) : undefined;
        if (!source) return undefined; // not one of our volumes: the source lookup answers NOT_FOUND
        // The source's ID names cluster and pool; a VolumeSnapshotClass may repeat them, never contradict them.
        const p = ctx.parameters ?? {};
        requireAgreement('clusterID', p['clusterID'], source.clusterID, `the cluster of source volume ${ctx.sourceVolumeId}`, SNAPSHOT_BESIDE_SOURCE);
        return this.withIdPool(source, ctx, (io) => {
          requireAgreement('pool', p['pool'], io.poolName, `the pool of source volume ${ctx.sourceVolumeId}`, SNAPSHOT_BESIDE_SOURCE);
          return use(io, (uuid) => encodeId({ clusterID: source.clusterID, poolId: source.poolId, uuid }));
        });
      },
    };
  }

  private imageOfId(id: string, prefix: string): string {
    const parsed = decodeId(id);
    return parsed ? `${prefix}${parsed.uuid}` : '';
  }

  private parse(id: string): CsiIdentifier {
    const parsed = decodeId(id);
    if (!parsed) throw new NotFoundError(`${id} is not an rbd volume or snapshot ID`);
    return parsed;
  }

  // ------------------------------------------------------------------ controller

  checkParameters(params: Record<string, string>, kind: 'volume' | 'snapshot'): void {
    const known = kind === 'volume' ? VOLUME_PARAMETERS : SNAPSHOT_PARAMETERS;
    for (const k of Object.keys(params)) {
      if (k.startsWith('csi.storage.k8s.io/')) continue;
      if (!known.has(k)) throw new InvalidArgumentError(`parameter "${k}" is not known to the rbd backend (it takes ${[...known].join(', ')})`);
    }
    // A snapshot's cluster and pool are its source volume's, named by the source's ID: a
    // VolumeSnapshotClass without parameters is legal (the journal lookup checks any it has).
    if (kind === 'snapshot') return;
    const clusterID = params['clusterID'];
    if (!clusterID) throw new InvalidArgumentError('parameter clusterID is required');
    this.cluster(clusterID);
    if (!params['pool']) throw new InvalidArgumentError('parameter pool is required');
    const format = params['imageFormat'];
    if (format !== undefined && format !== '2') throw new InvalidArgumentError(`parameter imageFormat "${format}" is not supported (only 2)`);
    mapperOfParameter(params['mounter']);
    parseMapOptions(params['mapOptions'], 'mapOptions');
    parseMapOptions(params['unmapOptions'], 'unmapOptions');
    this.features(params);
  }

  /** The imageFeatures parameter as librbd bits; INVALID_ARGUMENT for unknown or unsatisfiable ones. */
  private features(params: Record<string, string>): bigint {
    const names = (params['imageFeatures'] ?? 'layering').split(',').map((f) => f.trim()).filter((f) => f !== '');
    if (names.length === 0) throw new InvalidArgumentError('parameter imageFeatures is empty (use at least "layering")');
    let bits = 0n;
    for (const n of names) {
      const bit = FEATURES[n];
      if (bit === undefined) throw new InvalidArgumentError(`parameter imageFeatures: unknown feature "${n}" (known: ${Object.keys(FEATURES).join(', ')})`);
      for (const need of FEATURE_NEEDS[n] ?? []) {
        if (!names.includes(need)) throw new InvalidArgumentError(`parameter imageFeatures: "${n}" needs "${need}"`);
      }
      bits |= bit;
    }
    return bits;
  }

  unsupportedCapability(cap: Capability): string | undefined {
    if (cap.accessType === 'mount') {
      if (!SUPPORTED_FS.has(cap.fsType)) return `fs_type "${cap.fsType}" is not supported by the rbd backend (use ext4 or xfs)`;
      if (cap.accessMode === 'MULTI_NODE_MULTI_WRITER' || cap.accessMode === 'MULTI_NODE_SINGLE_WRITER') {
        return `access mode ${cap.accessMode} is supported for raw block volumes only: a filesystem mounted read-write on two nodes would be corrupted`;
      }
    }
    return undefined;
  }

  /** rbd volumes are reachable from every node: no topology. */
  nodeTopology(): Topology {
    return {};
  }

  placeVolume(): Topology[] {
    return [];
  }

  async newVolumeId(ctx: OpContext): Promise<string> {
    const p = ctx.parameters ?? {};
    const clusterID = p['clusterID'] ?? '';
    const pool = p['pool'] ?? '';
    const poolId = await this.withCluster(clusterID, ctx, async (rados) => (await this.requirePool(rados, clusterID, pool)).poolId);
    return encodeId({ clusterID, poolId, uuid: randomUUID() });
  }

  async newSnapshotId(ctx: OpContext): Promise<string> {
    const source = this.parse(ctx.sourceVolumeId ?? '');
    return encodeId({ clusterID: source.clusterID, poolId: source.poolId, uuid: randomUUID() });
  }

  allocationSize(requestedBytes: number, cap: { accessType: AccessType; fsType: string }): number {
    const fs = cap.accessType === 'mount' ? cap.fsType || DEFAULT_FS : '';
    const wanted = Math.max(requestedBytes, MINIMUM_BY_FS[fs] ?? OBJECT_BYTES);
    return Math.ceil(wanted / OBJECT_BYTES) * OBJECT_BYTES;
  }

  async createVolume(rec: VolumeRecord, ctx: OpContext): Promise<void> {
    const id = this.parse(rec.id);
    const image = `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    const features = this.features(rec.parameters);
    const dataPool = rec.parameters['dataPool'];
    const done = await this.withIdPool(id, ctx, async (io, rados) => {
      if (dataPool) await this.requirePool(rados, id.clusterID, dataPool, 'dataPool');
      // The image's size when this call knows it without opening the image (undefined: look).
      let size: number | undefined;
      if (rec.source) {
        size = await this.cloneInto(rec, id.clusterID, io, image, features, dataPool, ctx);
      } else {
        const opts = { features, order: OBJECT_ORDER, ...(dataPool ? { dataPool } : {}) };
        if (await this.ensureImage(io, image, ctx, () => createImage(io, image, rec.capacityBytes, opts))) size = rec.capacityBytes;
      }
      // A clone (or an image found from an earlier attempt) may be smaller than asked: grow it.
      size ??= await Image.with(io, image, async (img) => img.stat().size, { readOnly: true });
      if (size !== undefined && size < rec.capacityBytes) await Image.with(io, image, (img) => img.resize(rec.capacityBytes));
      rec.volumeContext = {
        clusterID: id.clusterID,
        pool: io.poolName,
        journalPool: io.poolName,
        imageName: image,
        imageFeatures: rec.parameters['imageFeatures'] ?? 'layering',
        ...(dataPool ? { dataPool } : {}),
        ...Object.fromEntries(NODE_PARAMETERS.filter((k) => rec.parameters[k] !== undefined).map((k) => [k, rec.parameters[k]!])),
      };
      ctx.log.debug({ volumeId: rec.id, pool: io.poolName, image }, 'rbd image ready');
      return true;
    });
    if (!done) throw new NotFoundError(`the pool of volume ${rec.id} does not exist`);
  }

  /**
   * Makes an image unless a whole one exists. librbd's create and clone take several writes; a
   * driver killed halfway leaves an image that may not open (create) or has no parent yet (clone).
   * A clone counts as whole once it carries our marker (set right after rbd_clone3 returned);
   * anything else of that name is a leftover of a cut-short attempt and is removed first.
   *
   * For a clone the marker is read and set with one cls_rbd call each on the image's ID and header
   * objects (header.ts), not through an open image: a read-write open, metadata set and close cost
   * five times the clone itself under load, and nobody else has a clone open that this call is
   * still making. Returns true when this call made the image.
   */
  private async ensureImage(io: IoCtx, image: string, ctx: OpContext, make: () => Promise<void>, clone = false): Promise<boolean> {
    const exists = async () => (await Image.with(io, image, async () => true, { readOnly: true })) === true;
    if (clone ? await this.cloneIsWhole(io, image) : await exists()) return false;
    try {
      await make();
    } catch (e) {
      if (!isCephError(e, 'EEXIST')) throw e;
      if (!clone && (await exists())) return false; // a plain image that opens is whole (made by a concurrent call)
      ctx.log.info({ pool: io.poolName, image }, 'removing a half-made image left by an interrupted attempt');
      await removeImage(io, image).catch((r: unknown) => {
        if (!isCephError(r, 'ENOENT')) throw r;
      });
      await make();
    }
    if (clone) {
      const madeId = await imageId(io, image);
      if (madeId === undefined) throw new Error(`rbd_clone3 returned but ${io.poolName}/${image} has no ID object`);
      await headerMetadataSet(io, madeId, COMPLETE_KEY, image);
    }
    return true;
  }

  /** A clone carries our marker (see ensureImage); false when there is no image of that name. */
  private async cloneIsWhole(io: IoCtx, image: string): Promise<boolean> {
    const id = await imageId(io, image);
    return id !== undefined && (await headerMetadataGet(io, id, COMPLETE_KEY)) !== undefined;
  }

  /**
   * Restore (from a snapshot image's snapshot) or clone (through a temporary snapshot of the
   * source). The new clone's depth is its parent's plus one, walked from the parent this call
   * already has open or looks at anyway, so the clone itself is never opened just to find its
   * parent. Returns the clone's size when this call made it (its parent snapshot's size), so the
   * caller need not open it to decide whether to grow it; undefined when an earlier attempt did
   * (whose clone is then looked at itself: it may have been grown or flattened already).
   */
  private async cloneInto(
    rec: VolumeRecord,
    clusterID: string,
    io: IoCtx,
    image: string,
    features: bigint,
    dataPool: string | undefined,
    ctx: OpContext,
  ): Promise<number | undefined> {
    const source = rec.source!;
    const src = this.parse(source.id);
    // librbd clones across pools, never across clusters.
    requireAgreement('clusterID', clusterID, src.clusterID, `the cluster of source ${source.kind} ${source.id}`, 'a clone is made in its source\'s cluster');
    const opts = {
      features: features | FEATURES['layering']! | FEATURES['deep-flatten']!,
      order: OBJECT_ORDER,
      cloneFormat: 2 as const,
      ...(dataPool ? { dataPool } : {}),
    };
    const made = await this.withIdPool(src, ctx, async (srcIo) => {
      if (source.kind === 'snapshot') {
        const snapImage = `${SNAPSHOT_LAYOUT.imagePrefix}${src.uuid}`;
        // The parent's size and depth are read while the clone is made (both only read it), with
        // cls_rbd calls on its header rather than opens. Snapshot images are never resized: the
        // head's size is their snapshot's.
        const look = imageId(srcIo, snapImage).then(async (id) => {
          if (id === undefined) return undefined;
          const [size, parent] = await Promise.all([headerSize(srcIo, id), headerParent(srcIo, id)]);
          return size === undefined ? undefined : { size, depth: 1 + (await this.chainDepth(clusterID, srcIo, parent, ctx)) };
        });
        let fresh: boolean;
        try {
          fresh = await this.ensureImage(io, image, ctx, () => cloneImage(srcIo, snapImage, snapImage, io, image, opts), true);
        } catch (e) {
          // No snapshot image at all: NOT_FOUND below rather than the clone's ENOENT.
          if ((await look.catch(() => null)) === undefined) return undefined;
          throw e;
        }
        const parent = await look;
        if (!parent) return undefined;
        return fresh ? { size: parent.size, depth: parent.depth } : {};
      }
      // Through a temporary snapshot of the source named after the new image: a retry finds its own.
      const srcImage = `${VOLUME_LAYOUT.imagePrefix}${src.uuid}`;
      return Image.with(srcIo, srcImage, async (parent) => {
        const size = parent.stat().size;
        const fresh = await this.ensureImage(io, image, ctx, async () => {
          if (!parent.snapExists(image)) await parent.snapCreate(image);
          await cloneImage(srcIo, srcImage, image, io, image, opts);
        }, true);
        // With a clone v2 child the snapshot moves to the trash namespace, out of everyone's way.
        if (parent.snapExists(image)) await parent.snapRemove(image);
        return fresh ? { size, depth: 1 + (await this.chainDepth(clusterID, srcIo, await parent.parent(), ctx)) } : {};
      });
    });
    if (!made) throw new NotFoundError(`source ${source.kind} ${source.id} has no image in the cluster`);
    // A clone an earlier attempt made may have been flattened by it already: its own depth then.
    const depth = made.depth ?? (await this.ownDepth(clusterID, io, image, ctx));
    if (depth > this.opts.maxCloneDepth) await this.flatten(io, image, depth, ctx);
    return made.size;
  }

  /** Flattens a new clone whose parents go deeper than maxCloneDepth (a long chain slows every read). */
  private async flatten(io: IoCtx, image: string, depth: number, ctx: OpContext, img?: Image): Promise<void> {
    ctx.log.info({ image, depth, max: this.opts.maxCloneDepth }, 'flattening a clone past the depth limit');
    if (img) await img.flatten();
    else await Image.with(io, image, (i) => i.flatten());
  }

  /** How many parents the image has now, read from its header. */
  private async ownDepth(clusterID: string, io: IoCtx, image: string, ctx: OpContext): Promise<number> {
    const id = await imageId(io, image);
    return id === undefined ? 0 : this.chainDepth(clusterID, io, await headerParent(io, id), ctx);
  }

  /**
   * How many parents an image has, given its own parent (undefined: it is not a clone, depth 0):
   * the parent counts one, and so does each of its ancestors, found with one rbd.parent_get on
   * each header (a parent may be in the trash: its header stays while clones need it).
   */
  private async chainDepth(clusterID: string, io: IoCtx, parent: ParentRef | undefined, ctx: OpContext): Promise<number> {
    let depth = 0;
    while (parent && depth < 64) {
      depth++;
      const p: ParentRef = parent;
      parent = await this.withParentPool(clusterID, io, p, ctx, (pio) => headerParent(pio, p.imageId));
    }
    return depth;
  }

  /** Runs use on the parent's pool (usually the image's own; parents are always in the same cluster). */
  private async withParentPool<T>(
    clusterID: string,
    io: IoCtx,
    parent: ParentRef,
    ctx: OpContext,
    use: (pio: IoCtx) => Promise<T>,
  ): Promise<T | undefined> {
    if (parent.poolId === io.poolId) return use(io);
    return this.withIdPool({ clusterID, poolId: parent.poolId, uuid: '' }, ctx, use);
  }

  async deleteVolume(rec: VolumeRecord, ctx: OpContext): Promise<void> {
    const id = this.parse(rec.id);
    const image = rec.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    await this.withIdPool(id, ctx, async (io) => {
      // A clone cut short may have left its temporary snapshot on the source.
      if (rec.source?.kind === 'volume') {
        const src = decodeId(rec.source.id);
        if (src) await this.removeSnapIfThere(io, `${VOLUME_LAYOUT.imagePrefix}${src.uuid}`, image);
      }
      await this.removeImageAndPurge(io, image, ctx);
    });
    ctx.log.debug({ volumeId: rec.id, image }, 'rbd image removed');
  }

  private async removeSnapIfThere(io: IoCtx, image: string, snap: string): Promise<void> {
    await Image.with(io, image, async (img) => {
      if (img.snapExists(snap)) await img.snapRemove(snap);
    });
  }

  /**
   * Removes an image: first its leftover snapshots of ours, then the image itself, or, when clones
   * still need it, moves it to the trash. Then purges what in the pool's trash no clone needs any
   * more (this image's parents, or the leftovers of a delete that was cut short).
   */
  private async removeImageAndPurge(io: IoCtx, image: string, ctx: OpContext): Promise<void> {
    // Looked at read-only (no watch to register); opened for writing only when there is work.
    const ours = ((await Image.with(io, image, (img) => img.snapList(), { readOnly: true })) ?? []).filter((snap) => snap.startsWith('csi-'));
    if (ours.length > 0) {
      await Image.with(io, image, async (img) => {
        for (const snap of ours) await img.snapRemove(snap);
      });
    }
    try {
      await removeImage(io, image);
    } catch (e) {
      if (isCephError(e, 'ENOTEMPTY')) {
        // Its snapshots are in the trash namespace, parents of live clones: they outlive it.
        ctx.log.info({ image }, 'image still has clones; moved to the trash until they are gone');
        try {
          await trashMove(io, image);
        } catch (e2) {
          // A retry after a move cut short: rbd_remove already finished it; it is in the trash.
          if (!isCephError(e2, 'ENOENT')) throw e2;
        }
      } else if (isCephError(e, 'EBUSY')) {
        const busy = await this.watchedBy(io, image);
        throw new FailedPreconditionError(`image ${io.poolName}/${image} is still being used${busy ? `: ${busy}` : ''}`);
      } else if (!isCephError(e, 'ENOENT')) {
        throw e;
      }
    }
    await this.purgeTrash(io, ctx);
  }

  /**
   * Removes the images of ours in the pool's trash that no clone needs any more; one removal can
   * free its own parent, so it goes round until nothing more goes. Images others put in the trash
   * (names not csi-vol-/csi-snap-) are left alone.
   */
  private async purgeTrash(io: IoCtx, ctx: OpContext): Promise<void> {
    for (let round = 0; round < 64; round++) {
      let removed = 0;
      for (const entry of await trashList(io)) {
        if (entry.source !== 0 || !/^csi-(vol|snap)-/.test(entry.name)) continue;
        try {
          await this.trashRemoveRepairing(io, entry, ctx);
          removed++;
          ctx.log.info({ pool: io.poolName, image: entry.name }, 'purged a trashed image no clone needs');
        } catch (e) {
          // Still the parent of a clone (or already gone).
          if (!isCephError(e, 'ENOTEMPTY', 'EBUSY', 'ENOENT', 'EPERM')) throw e;
        }
      }
      if (removed === 0) return;
    }
  }

  /**
   * rbd_trash_remove, finishing first a trash move of ours cut short: librbd's move adds the trash
   * entry in state MOVING, removes the image from rbd_id.<name> and rbd_directory, then sets it
   * NORMAL; a driver killed in between leaves it MOVING, and every removal fails with EUCLEAN.
   * rbd_trash_move by name does the remaining steps (librbd finds the MOVING entry when the name
   * is already out of the directory; it may still say ENOENT), then the state is set NORMAL (a
   * no-op when the move already did).
   */
  private async trashRemoveRepairing(io: IoCtx, entry: TrashEntry, ctx: OpContext): Promise<void> {
    try {
      await trashRemove(io, entry.id);
      return;
    } catch (e) {
      if (!isCephError(e, 'EUCLEAN')) throw e;
    }
    try {
      await trashMove(io, entry.name);
    } catch (e) {
      if (!isCephError(e, 'ENOENT')) throw e;
    }
    await trashStateSet(io, entry.id, TrashState.NORMAL, TrashState.MOVING);
    ctx.log.warn({ pool: io.poolName, image: entry.name, id: entry.id }, 'finished a trash move an earlier driver was killed in');
    await trashRemove(io, entry.id);
  }

  private async watchedBy(io: IoCtx, image: string): Promise<string | undefined> {
    const watchers = await Image.with(io, image, (img) => img.watchers(), { readOnly: true });
    if (!watchers || watchers.length === 0) return undefined;
    return `watched by ${watchers.map((w) => `client.${w.id} at ${w.addr}`).join(', ')}`;
  }

  async volumeInUse(rec: VolumeRecord, ctx: OpContext): Promise<string | undefined> {
    const id = this.parse(rec.id);
    const image = rec.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    const busy = await this.withIdPool(id, ctx, (io) => this.watchedBy(io, image));
    // ceph-csi's "rbd image … is still being used": mapped on a node (or opened by anyone).
    return busy ? `volume ${rec.id} (image ${rec.volumeContext['pool'] ?? ''}/${image}) is still being used: ${busy}` : undefined;
  }

  /**
   * Only asked for records still 'creating' (volume-lookup.ts): the local backend may lose a
   * 'ready' mark it did not wait for, but every omap write here is durable once acknowledged, so a
   * 'creating' record is a create that never finished, of which the CO was never told: NOT_FOUND.
   */
  async hasStorage(): Promise<boolean> {
    return false;
  }

  async createSnapshot(snap: SnapshotRecord, source: VolumeRecord, ctx: OpContext): Promise<{ sizeBytes: number }> {
    const sid = this.parse(snap.id);
    const src = this.parse(source.id);
    const snapImage = `${SNAPSHOT_LAYOUT.imagePrefix}${sid.uuid}`;
    const srcImage = source.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${src.uuid}`;
    const size = await this.withIdPool(sid, ctx, async (io) => {
      const made = await Image.with(io, srcImage, async (parent) => {
        // The source's state now, through a temporary snapshot named like the snapshot image.
        await this.ensureImage(io, snapImage, ctx, async () => {
          if (!parent.snapExists(snapImage)) await parent.snapCreate(snapImage);
          await cloneImage(io, srcImage, snapImage, io, snapImage, {
            features: FEATURES['layering']! | FEATURES['deep-flatten']!,
            order: OBJECT_ORDER,
            cloneFormat: 2,
          });
        }, true);
        if (parent.snapExists(snapImage)) await parent.snapRemove(snapImage);
        return true;
      });
      if (!made) throw new NotFoundError(`source volume ${source.id} has no image ${srcImage}`);
      // One open of the snapshot image: flatten when too deep (its depth from its own parent, so
      // a retry after the flatten sees it done), its snapshot, its size.
      return Image.with(io, snapImage, async (img) => {
        if (!img.snapExists(snapImage)) {
          const depth = await this.chainDepth(src.clusterID, io, await img.parent(), ctx);
          if (depth > this.opts.maxCloneDepth) await this.flatten(io, snapImage, depth, ctx, img);
          await img.snapCreate(snapImage);
        }
        return img.stat().size;
      });
    });
    if (size === undefined) throw new NotFoundError(`the pool of source volume ${source.id} does not exist`);
    ctx.log.debug({ snapshotId: snap.id, image: snapImage }, 'rbd snapshot taken');
    return { sizeBytes: size };
  }

  /** The members cut together through an RBD group snapshot (group-snapshots.ts); all in one pool. */
  private async createGroupSnapshot(group: GroupSnapshotRecord, members: { snap: SnapshotRecord; source: VolumeRecord }[], ctx: OpContext): Promise<number[]> {
    const gid = this.parse(group.id);
    for (const { source } of members) {
      const src = this.parse(source.id);
      if (src.clusterID !== gid.clusterID || src.poolId !== gid.poolId) {
        throw new InvalidArgumentError(`source volume ${source.id} is not in the pool of ${members[0]?.source.id ?? ''}: an RBD group snapshot takes the images of one pool`);
      }
    }
    const parts = members.map(({ snap, source }) => ({
      source: source.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${this.parse(source.id).uuid}`,
      snapImage: `${SNAPSHOT_LAYOUT.imagePrefix}${this.parse(snap.id).uuid}`,
    }));
    const sizes = await this.withIdPool(gid, ctx, async (io) => {
      await cutGroup(io, `${GROUP_LAYOUT.imagePrefix}${gid.uuid}`, parts, {
        whole: (image) => this.cloneIsWhole(io, image),
        ensure: async (image, make) => {
          await this.ensureImage(io, image, ctx, make, true);
        },
        options: { features: FEATURES['layering']! | FEATURES['deep-flatten']!, order: OBJECT_ORDER },
      });
      const out: number[] = [];
      for (const p of parts) out.push((await Image.with(io, p.snapImage, async (img) => img.stat().size, { readOnly: true })) ?? 0);
      return out;
    });
    if (sizes === undefined) throw new NotFoundError(`the pool of group snapshot ${group.id} does not exist`);
    ctx.log.debug({ groupSnapshotId: group.id, members: parts.map((p) => p.snapImage) }, 'rbd group snapshot taken');
    return sizes;
  }

  async deleteSnapshot(snap: SnapshotRecord, ctx: OpContext): Promise<void> {
    const sid = this.parse(snap.id);
    const snapImage = `${SNAPSHOT_LAYOUT.imagePrefix}${sid.uuid}`;
    const src = decodeId(snap.sourceVolumeId);
    await this.withIdPool(sid, ctx, async (io) => {
      // A CreateSnapshot cut short may have left its temporary snapshot on the source.
      if (src) await this.removeSnapIfThere(io, `${VOLUME_LAYOUT.imagePrefix}${src.uuid}`, snapImage);
      await this.removeImageAndPurge(io, snapImage, ctx);
    });
  }

  async expandVolume(rec: VolumeRecord, newBytes: number, ctx: OpContext): Promise<{ nodeExpansionRequired: boolean }> {
    const id = this.parse(rec.id);
    const image = rec.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    const found = await this.withIdPool(id, ctx, (io) =>
      Image.with(io, image, async (img) => {
        if (img.stat().size < newBytes) await img.resize(newBytes);
        return true;
      }),
    );
    if (!found) throw new NotFoundError(`volume ${rec.id} has no image ${image}`);
    // The node must tell its loop device (and the filesystem) about the new size, block or not.
    return { nodeExpansionRequired: true };
  }

  async controllerHealth(rec: VolumeRecord, ctx: OpContext): Promise<VolumeHealth> {
    const id = this.parse(rec.id);
    const image = rec.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    const found = await this.withIdPool(id, ctx, (io) => Image.with(io, image, async () => true, { readOnly: true }));
    return found ? { abnormal: false, message: 'image exists' } : { abnormal: true, message: `image ${image} is missing` };
  }

  // ------------------------------------------------------------------ node

  async nodeVolume(id: string, ctx: OpContext, call: NodeCall): Promise<VolumeRecord | undefined> {
    if (!decodeId(id)) return undefined;
    // NodeStage reads the journal (its node-stage secrets are required); the other node calls carry
    // no secrets as a rule and use what NodeStage stashed, unless they do carry some.
    if (call === 'stage') this.creds(ctx);
    if (call === 'stage' || (ctx.secrets['userID'] && ctx.secrets['userKey'])) return this.volumes.get(id, ctx);
    const stashed = await this.node.stashedVolume(id);
    // Without secrets nothing but the stash can be known: a volume of ours that is not staged here
    // is, for publish and expansion, the spec's "not staged" rather than "does not exist".
    if (!stashed && call !== 'stats') throw new FailedPreconditionError(`volume ${id} is not staged on this node`);
    return stashed;
  }

  async stage(req: StageRequest, ctx: OpContext): Promise<void> {
    const id = this.parse(req.volume.id);
    const c = this.creds(ctx);
    const cluster = this.cluster(id.clusterID);
    let pool = req.volume.volumeContext['pool'] ?? req.volumeContext['pool'];
    pool ??= await this.withIdPool(id, ctx, async (io) => io.poolName);
    if (!pool) throw new NotFoundError(`the pool of volume ${req.volume.id} does not exist`);
    const image = req.volume.volumeContext['imageName'] ?? `${VOLUME_LAYOUT.imagePrefix}${id.uuid}`;
    const choice = await this.mapperChoice(req);
    try {
      await this.node.stage(req, { clusterID: id.clusterID, monitors: cluster.monitors, pool, image, user: c.user }, c.key, ctx.log, this.defaultFsType, choice);
    } catch (e) {
      throw cephToCsi(e, { clusterID: id.clusterID, monitors: cluster.monitors, user: c.user });
    }
  }

  /**
   * The mapper a NodeStage uses: the class's `mounter` (the volume's context, the CO's, or the
   * record's parameters, in that order) or, when none, krbd on a kernel with the rbd bus and
   * rbd-fuse elsewhere; with its map options. Malformed values are INVALID_ARGUMENT here too: a
   * static PV's volume attributes never went through CreateVolume.
   */
  private async mapperChoice(req: StageRequest): Promise<MapperChoice> {
    const param = (k: string) => req.volume.volumeContext[k] ?? req.volumeContext[k] ?? req.volume.parameters[k];
    const kind = mapperOfParameter(param('mounter')) ?? (await defaultMapper());
    const mapOptions = optionsFor(kind, parseMapOptions(param('mapOptions'), 'mapOptions'));
    const unmapOptions = optionsFor(kind, parseMapOptions(param('unmapOptions'), 'unmapOptions'));
    return { kind, mapOptions, unmapOptions };
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

  async nodeExpand(volume: VolumeRecord, volumePath: string, stagingPath: string, ctx: OpContext): Promise<{ capacityBytes: number }> {
    return this.node.expand(volume, volumePath, stagingPath, ctx.log);
  }

  async usage(volume: VolumeRecord, volumePath: string): Promise<VolumeUsage> {
    return this.node.usage(volume, volumePath);
  }
}

export function isReadOnlyMode(mode: AccessMode): boolean {
  return mode === 'SINGLE_NODE_READER_ONLY' || mode === 'MULTI_NODE_READER_ONLY';
}
