import type { Logger } from 'pino';

/**
 * The contract between the CSI services (src/driver/controller.ts, node.ts) and a storage backend.
 *
 * The services own the protocol: capability checks, argument validation, per-volume locks and
 * idempotency by name. A backend owns the storage: its durable journal of names and IDs and the
 * real work. Every backend method must be safe to call again after a crash halfway through it.
 */

export type AccessType = 'mount' | 'block';

/** The CSI access modes, by their wire names. */
export type AccessMode =
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export type Topology = Record<string, string>;

/** A volume capability reduced to what storage cares about. */
export interface Capability {
  accessType: AccessType;
  /** Filesystem for mount volumes ('' = the backend's default); always '' for block. */
  fsType: string;
  mountFlags: string[];
  accessMode: AccessMode;
}

export interface VolumeSource {
  kind: 'snapshot' | 'volume';
  id: string;
}

export interface VolumeRecord {
  id: string;
  name: string;
  /** 'creating' until the backend work is done: a record in this state is finished on retry. */
  state: 'creating' | 'ready';
  capacityBytes: number;
  accessType: AccessType;
  fsType: string;
  accessModes: AccessMode[];
  parameters: Record<string, string>;
  source?: VolumeSource;
  accessibleTopology: Topology[];
  volumeContext: Record<string, string>;
  /** Node IDs the volume is ControllerPublished to. */
  publishedNodes: string[];
  createdAt: string;
}

export interface SnapshotRecord {
  id: string;
  name: string;
  state: 'creating' | 'ready';
  sourceVolumeId: string;
  /** The source's shape, kept so a restore can be checked after the source is deleted. */
  sourceAccessType: AccessType;
  sourceFsType: string;
  sizeBytes: number;
  /** Seconds and nanos of the creation time, as CSI reports it. */
  createdAt: string;
  parameters: Record<string, string>;
  /** Set on the members of a group snapshot. */
  groupSnapshotId?: string;
}

/** A group snapshot (CSI GroupController): its members are ordinary snapshots cut at one point in time. */
export interface GroupSnapshotRecord {
  id: string;
  name: string;
  state: 'creating' | 'ready';
  sourceVolumeIds: string[];
  /** The members' snapshot IDs, in the order of sourceVolumeIds. */
  snapshotIds: string[];
  createdAt: string;
  parameters: Record<string, string>;
}

/**
 * What a backend that can snapshot several volumes at one point in time provides (rbd: RBD group
 * snapshots). Only then is the GroupController service advertised and served.
 */
export interface GroupSnapshots {
  readonly journal: Journal<GroupSnapshotRecord>;
  /** An ID for a new group; ctx.sourceVolumeId is its first member's source. */
  newId(ctx: OpContext): Promise<string>;
  /**
   * Cuts every member (each a snapshot record already written 'creating') at one point in time
   * and makes each restorable like any snapshot. Idempotent. Returns each member's size.
   */
  create(group: GroupSnapshotRecord, members: { snap: SnapshotRecord; source: VolumeRecord }[], ctx: OpContext): Promise<number[]>;
}

/**
 * A durable index of records by ID and by name; the backend chooses where it lives. Every call
 * gets the RPC's OpContext: a journal kept inside the storage system (rbd: the pool's omap) needs
 * the call's secrets to reach it, and, for lookups by name, the request's parameters to know
 * where to look. A journal may throw a CsiError (e.g. INVALID_ARGUMENT for missing secrets,
 * UNAVAILABLE when the storage is unreachable).
 */
export interface Journal<T extends { id: string; name: string }> {
  /** undefined when no such record exists, including for IDs this backend could never have issued. */
  get(id: string, ctx: OpContext): Promise<T | undefined>;
  byName(name: string, ctx: OpContext): Promise<T | undefined>;
  /**
   * Sorted by ID, so pagination tokens stay meaningful between calls. Optional: a journal that
   * cannot be read without the call's secrets (rbd, cephfs) leaves it out, and the list RPCs,
   * which carry none, are not advertised (controller.ts answers UNIMPLEMENTED).
   */
  list?(ctx: OpContext): Promise<T[]>;
  /** durable=false may be lost in a crash; use it only where a retry redoes the write. */
  put(rec: T, durable: boolean, ctx: OpContext): Promise<void>;
  remove(id: string, ctx: OpContext): Promise<void>;
}

export interface CapacityInfo {
  availableBytes: number;
  totalBytes: number;
  maximumVolumeSize: number;
  minimumVolumeSize: number;
}

export interface VolumeHealth {
  abnormal: boolean;
  message: string;
}

export interface VolumeUsage {
  kind: 'filesystem' | 'block';
  totalBytes: number;
  usedBytes?: number;
  availableBytes?: number;
  totalInodes?: number;
  usedInodes?: number;
  freeInodes?: number;
  health: VolumeHealth;
}

export interface OpContext {
  log: Logger;
  /** The RPC's secrets ({} for RPCs that carry none: NodeUnstage, NodeUnpublish, lists...). */
  secrets: Record<string, string>;
  /**
   * CreateVolume / CreateSnapshot: the request's parameters (StorageClass / VolumeSnapshotClass),
   * which tell a backend like rbd which cluster and pool a new record (and its name index) lives in.
   */
  parameters?: Record<string, string>;
  /** CreateSnapshot: the source volume, whose pool holds the snapshot's journal on rbd. */
  sourceVolumeId?: string;
  /**
   * Aborted when the caller is gone (its gRPC deadline passed, or it cancelled): work that waits
   * (a CephFS clone) waits until then at most. Absent outside an RPC.
   */
  readonly signal?: AbortSignal;
}

export interface StageRequest {
  volume: VolumeRecord;
  stagingPath: string;
  capability: Capability;
  publishContext: Record<string, string>;
  volumeContext: Record<string, string>;
}

export interface PublishRequest {
  volume: VolumeRecord;
  stagingPath: string;
  targetPath: string;
  capability: Capability;
  readonly: boolean;
}

/** The node RPC a volume is looked up for (NodeStage carries the secrets to reach the storage). */
export type NodeCall = 'stage' | 'publish' | 'expand' | 'stats';

/** The controller capabilities a backend can serve (controller.ts advertises the intersection). */
export type ControllerCapability =
  | 'CREATE_DELETE_VOLUME'
  | 'CREATE_DELETE_SNAPSHOT'
  | 'LIST_SNAPSHOTS'
  | 'CLONE_VOLUME'
  | 'EXPAND_VOLUME'
  | 'LIST_VOLUMES'
  | 'GET_CAPACITY'
  | 'GET_VOLUME'
  | 'VOLUME_CONDITION'
  | 'SINGLE_NODE_MULTI_WRITER';

/**
 * Every controller capability the services implement, in the order they are advertised; a
 * backend serves a subset (Backend.controllerCapabilities) and only that is advertised.
 */
export const CONTROLLER_CAPABILITIES: readonly ControllerCapability[] = [
  'CREATE_DELETE_VOLUME',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
  'EXPAND_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'GET_VOLUME',
  'VOLUME_CONDITION',
  'SINGLE_NODE_MULTI_WRITER',
];


/**
 * What both halves share. The record types are parameters so that a backend whose records carry
 * data of its own (cephfs: where a snapshot lives) types it once, instead of casting at each use.
 */
export interface BackendCommon<V extends VolumeRecord = VolumeRecord> {
  /** e.g. 'local'. */
  readonly kind: string;
  readonly volumes: Journal<V>;
  /** The filesystem a mount volume gets when the capability names none (local: btrfs, rbd: ext4). */
  readonly defaultFsType: string;
  /** Why the backend can't serve a capability (access mode, fs type), or undefined if it can. */
  unsupportedCapability(cap: Capability): string | undefined;
  /** Probe: false while the backend cannot serve (pool not mounted, cluster unreachable). */
  ready(): Promise<boolean>;
  /** Release what the backend holds open (not volumes). */
  close(): Promise<void>;
}

/**
 * The Controller service's half (controller.ts, group-controller.ts). Optional methods have a
 * default in the protocol layer: a backend leaves out what it does not serve.
 */
export interface ControllerBackend<V extends VolumeRecord = VolumeRecord, S extends SnapshotRecord = SnapshotRecord> extends BackendCommon<V> {
  /**
   * What the backend can serve. A backend whose records can only be read with per-call secrets
   * (rbd) cannot list or look up volumes for the secret-less RPCs (ListVolumes, GetCapacity...).
   */
  readonly controllerCapabilities: readonly ControllerCapability[];
  readonly snapshots: Journal<S>;
  /** Group snapshots, where the backend can cut them (the GroupController service). */
  readonly groupSnapshots?: GroupSnapshots;

  /** Throws InvalidArgumentError naming the first parameter the backend does not know. */
  checkParameters(params: Record<string, string>, kind: 'volume' | 'snapshot'): void;
  /** Topology a new volume would be accessible from, given the requisite topologies (or RESOURCE_EXHAUSTED). */
  placeVolume(requisite: Topology[], preferred: Topology[]): Topology[];
  /** An ID for a new record; ctx carries the request's parameters (rbd encodes cluster and pool in it). */
  newVolumeId(ctx: OpContext): Promise<string>;
  newSnapshotId(ctx: OpContext): Promise<string>;
  /**
   * GetCapacity's figures. Only a backend that advertises GET_CAPACITY provides it; without it
   * GetCapacity answers UNIMPLEMENTED (controller.ts).
   */
  capacity?(): Promise<CapacityInfo>;
  /**
   * Admission for a backend with a finite pool of its own (local): runs `commit` — the journal
   * write of volume `volumeId` after which `bytes` more count as promised — only if they fit, so
   * that concurrent calls cannot together overshoot. Otherwise throws RESOURCE_EXHAUSTED ('create')
   * or OUT_OF_RANGE ('expand'). Backends whose storage system enforces its own quotas leave it out.
   */
  reserveCapacity?(request: { bytes: number; purpose: 'create' | 'expand'; volumeId: string }, commit: () => Promise<void>): Promise<void>;
  /** The largest volume the backend could ever create (a cheap, cached figure; no I/O). */
  readonly maximumVolumeBytes: number;
  /** Rounds a request up to what the backend allocates (e.g. 1 MiB, or an fs minimum). */
  allocationSize(requestedBytes: number, cap: { accessType: AccessType; fsType: string }): number;
  /** Creates (or finishes creating) the storage for a record in state 'creating'. Idempotent. */
  createVolume(rec: V, ctx: OpContext): Promise<void>;
  /** Whether the volume's storage exists (whole: creation is atomic or goes through a rename). */
  hasStorage(rec: V): Promise<boolean>;
  /** Removes the storage. Idempotent: missing storage is success. */
  deleteVolume(rec: V, ctx: OpContext): Promise<void>;
  /** Why a volume can't be deleted now (e.g. it has dependent snapshots in use), or undefined. */
  volumeInUse(rec: V, ctx: OpContext): Promise<string | undefined>;
  createSnapshot(snap: S, source: V, ctx: OpContext): Promise<{ sizeBytes: number }>;
  deleteSnapshot(snap: S, ctx: OpContext): Promise<void>;
  /** Grows the volume's allocation; returns whether the node must grow the filesystem. */
  expandVolume(rec: V, newBytes: number, ctx: OpContext): Promise<{ nodeExpansionRequired: boolean }>;
  controllerHealth(rec: V, ctx: OpContext): Promise<VolumeHealth>;
}

/** The Node service's half (node.ts). */
export interface NodeBackend<V extends VolumeRecord = VolumeRecord> extends BackendCommon<V> {
  readonly nodeId: string;
  readonly maxVolumesPerNode: number;
  /** {} when volumes are reachable from every node (rbd): no topology is advertised then. */
  nodeTopology(): Topology;
  /**
   * The record the node side works with (stage, publish, stats, expansion). The local backend
   * reads its journal; rbd reads the journal when the call carries secrets (NodeStage) and
   * otherwise the stash it wrote when staging. undefined = NOT_FOUND.
   */
  nodeVolume(id: string, ctx: OpContext, call: NodeCall): Promise<V | undefined>;
  stage(req: StageRequest, ctx: OpContext): Promise<void>;
  /**
   * Takes the ID, not a record: NodeUnstage carries no secrets, so the backend decides what it
   * knows about the volume. Throws NotFoundError only for a volume that cannot exist.
   */
  unstage(volumeId: string, stagingPath: string, ctx: OpContext): Promise<void>;
  publish(req: PublishRequest, ctx: OpContext): Promise<void>;
  /** Takes the ID for the same reason as unstage. */
  unpublish(volumeId: string, targetPath: string, ctx: OpContext): Promise<void>;
  nodeExpand(volume: V, volumePath: string, stagingPath: string, ctx: OpContext): Promise<{ capacityBytes: number }>;
  usage(volume: V, volumePath: string): Promise<VolumeUsage>;
}

/**
 * A whole backend: one driver process serves both halves (the Controller service also needs
 * nodeTopology for GetCapacity's topology check, so it takes the whole).
 */
export type Backend<V extends VolumeRecord = VolumeRecord, S extends SnapshotRecord = SnapshotRecord> = ControllerBackend<V, S> & NodeBackend<V>;
