/**
 * An in-memory Backend (src/driver/backends/backend.ts) for unit tests of the protocol layer
 * (controller.ts, node.ts) without root, loop devices or Ceph. It keeps the contract the real
 * backends keep — journals that hand out copies (a caller's edits count only once put), storage
 * that exists apart from its record, a finite pool with admission, idempotent work, staging and
 * publishing records with the real backends' refusals — and adds fault injection: make the next
 * call of a method fail, or hold it until the test releases it (to see locks while it runs).
 */
import { mkdir, rm } from 'node:fs/promises';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  ResourceExhaustedError,
} from '../../src/csi/errors.js';
import {
  CONTROLLER_CAPABILITIES,
  type Backend,
  type CapacityInfo,
  type Capability,
  type ControllerCapability,
  type Journal,
  type NodeCall,
  type OpContext,
  type PublishRequest,
  type SnapshotRecord,
  type StageRequest,
  type Topology,
  type VolumeHealth,
  type VolumeRecord,
  type VolumeUsage,
} from '../../src/driver/backends/backend.js';

const MiB = 1024 * 1024;
export const FAKE_TOPOLOGY_KEY = 'topology.fake.stowage.io/node';
/** Parameters the fake knows; anything else is INVALID_ARGUMENT, as every real backend does. */
const KNOWN_PARAMETERS = new Set(['type', 'tier']);
const FS_TYPES = new Set(['ext4', 'xfs']);

/** A hold placed on a method: `reached` resolves when a call arrives, `release` lets it go on. */
export interface Hold {
  reached: Promise<void>;
  release(): void;
}

type Fault = { kind: 'fail'; error: Error } | { kind: 'block'; hold: Hold; arrived: () => void; released: Promise<void> };

export interface FakeOptions {
  nodeId?: string;
  poolBytes?: number;
  maximumVolumeBytes?: number;
  capabilities?: readonly ControllerCapability[];
}

/** Faults by method name ('createVolume', 'volumes.put', 'stage', ...), consumed one per call. */
class Faults {
  private readonly queued = new Map<string, Fault[]>();
  readonly calls: string[] = [];

  failNext(method: string, error: Error): void {
    this.push(method, { kind: 'fail', error });
  }

  blockNext(method: string): Hold {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const released = new Promise<void>((r) => (release = r));
    const hold = { reached, release };
    this.push(method, { kind: 'block', hold, arrived, released });
    return hold;
  }

  private push(method: string, f: Fault): void {
    this.queued.set(method, [...(this.queued.get(method) ?? []), f]);
  }

  async enter(method: string): Promise<void> {
    this.calls.push(method);
    const f = this.queued.get(method)?.shift();
    if (!f) return;
    if (f.kind === 'fail') throw f.error;
    f.arrived();
    await f.released;
  }
}

class MemJournal<T extends { id: string; name: string }> implements Journal<T> {
  readonly records = new Map<string, T>();

  constructor(
    private readonly kind: 'volumes' | 'snapshots',
    private readonly faults: Faults,
  ) {}

  async get(id: string): Promise<T | undefined> {
    await this.faults.enter(`${this.kind}.get`);
    const r = this.records.get(id);
    return r && structuredClone(r);
  }

  async byName(name: string): Promise<T | undefined> {
    await this.faults.enter(`${this.kind}.byName`);
    const r = [...this.records.values()].find((x) => x.name === name);
    return r && structuredClone(r);
  }

  async list(): Promise<T[]> {
    await this.faults.enter(`${this.kind}.list`);
    return [...this.records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((r) => structuredClone(r));
  }

  async put(rec: T): Promise<void> {
    await this.faults.enter(`${this.kind}.put`);
    this.records.set(rec.id, structuredClone(rec));
  }

  async remove(id: string): Promise<void> {
    await this.faults.enter(`${this.kind}.remove`);
    this.records.delete(id);
  }
}

export class FakeBackend implements Backend {
  readonly kind = 'fake';
  readonly defaultFsType = 'ext4';
  readonly controllerCapabilities: readonly ControllerCapability[];
  readonly nodeId: string;
  readonly maxVolumesPerNode = 16;
  readonly maximumVolumeBytes: number;
  readonly poolBytes: number;
  readonly faults = new Faults();
  readonly volumes: MemJournal<VolumeRecord>;
  readonly snapshots: MemJournal<SnapshotRecord>;

  /** Storage by volume ID: its allocated bytes (apart from the record, as on disk). */
  readonly storage = new Map<string, number>();
  /** Snapshot storage by snapshot ID: its size. */
  readonly snapshotStorage = new Map<string, number>();
  /** Staging path by volume ID, with how it was staged. */
  readonly staged = new Map<string, { stagingPath: string; capability: Capability }>();
  /** Publications by target path. */
  readonly published = new Map<string, { volumeId: string; stagingPath: string; readonly: boolean }>();
  /** Filesystem size the node has grown each volume to. */
  readonly nodeSize = new Map<string, number>();
  /** A reason DeleteVolume must refuse, by volume ID. */
  readonly inUse = new Map<string, string>();
  private seq = 0;

  constructor(opts: FakeOptions = {}) {
    this.nodeId = opts.nodeId ?? 'fake-node-1';
    this.poolBytes = opts.poolBytes ?? 100 * 1024 ** 3;
    this.maximumVolumeBytes = opts.maximumVolumeBytes ?? 50 * 1024 ** 3;
    this.controllerCapabilities = opts.capabilities ?? CONTROLLER_CAPABILITIES;
    this.volumes = new MemJournal('volumes', this.faults);
    this.snapshots = new MemJournal('snapshots', this.faults);
  }

  /** Seeds a ready volume (record and storage) directly, for a row's "state before". */
  addVolume(partial: Partial<VolumeRecord> & { id: string }): VolumeRecord {
    const rec: VolumeRecord = {
      name: `pvc-${partial.id}`,
      state: 'ready',
      capacityBytes: 1024 ** 3,
      accessType: 'mount',
      fsType: '',
      accessModes: ['SINGLE_NODE_WRITER'],
      parameters: {},
      accessibleTopology: [{ [FAKE_TOPOLOGY_KEY]: this.nodeId }],
      volumeContext: {},
      publishedNodes: [],
      createdAt: new Date(0).toISOString(),
      ...partial,
    };
    this.volumes.records.set(rec.id, structuredClone(rec));
    this.storage.set(rec.id, rec.capacityBytes);
    return rec;
  }

  addSnapshot(partial: Partial<SnapshotRecord> & { id: string; sourceVolumeId: string }): SnapshotRecord {
    const snap: SnapshotRecord = {
      name: `snap-${partial.id}`,
      state: 'ready',
      sourceAccessType: 'mount',
      sourceFsType: '',
      sizeBytes: 1024 ** 3,
      createdAt: new Date(0).toISOString(),
      parameters: {},
      ...partial,
    };
    this.snapshots.records.set(snap.id, structuredClone(snap));
    this.snapshotStorage.set(snap.id, snap.sizeBytes);
    return snap;
  }

  /** Bytes promised to volumes (records of any state: a reservation counts from its first write). */
  promisedBytes(): number {
    let n = 0;
    for (const v of this.volumes.records.values()) n += v.capacityBytes;
    return n;
  }

  async ready(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}

  checkParameters(params: Record<string, string>, kind: 'volume' | 'snapshot'): void {
    const unknown = Object.keys(params)
      .sort()
      .find((k) => !k.startsWith('csi.storage.k8s.io/') && !KNOWN_PARAMETERS.has(k));
    if (unknown !== undefined) throw new InvalidArgumentError(`unknown ${kind} parameter "${unknown}"`);
  }

  unsupportedCapability(cap: Capability): string | undefined {
    if (cap.accessMode === 'MULTI_NODE_MULTI_WRITER' || cap.accessMode === 'MULTI_NODE_SINGLE_WRITER') {
      return `access mode ${cap.accessMode} is not supported by the fake backend`;
    }
    if (cap.accessType === 'mount' && cap.fsType !== '' && !FS_TYPES.has(cap.fsType)) return `fs type ${cap.fsType} is not supported`;
    return undefined;
  }

  placeVolume(requisite: Topology[], preferred: Topology[]): Topology[] {
    const mine = this.nodeTopology();
    const fits = (t: Topology) => Object.entries(t).every(([k, v]) => mine[k] === v);
    if (requisite.length > 0 && !requisite.some(fits)) {
      throw new ResourceExhaustedError(`no requisite topology is reachable (this backend serves ${JSON.stringify(mine)})`);
    }
    void preferred;
    return [mine];
  }

  async newVolumeId(): Promise<string> {
    await this.faults.enter('newVolumeId');
    return `vol-${String(++this.seq).padStart(4, '0')}`;
  }

  async newSnapshotId(): Promise<string> {
    await this.faults.enter('newSnapshotId');
    return `snap-${String(++this.seq).padStart(4, '0')}`;
  }

  async capacity(): Promise<CapacityInfo> {
    await this.faults.enter('capacity');
    const available = Math.max(0, this.poolBytes - this.promisedBytes());
    return { availableBytes: available, totalBytes: this.poolBytes, maximumVolumeSize: this.maximumVolumeBytes, minimumVolumeSize: MiB };
  }

  async reserveCapacity(request: { bytes: number; purpose: 'create' | 'expand'; volumeId: string }, commit: () => Promise<void>): Promise<void> {
    await this.faults.enter('reserveCapacity');
    const free = this.poolBytes - this.promisedBytes();
    if (request.bytes > free) {
      const msg = `${request.bytes} bytes for volume ${request.volumeId} do not fit: ${free} bytes are free`;
      throw request.purpose === 'create' ? new ResourceExhaustedError(msg) : new OutOfRangeError(msg);
    }
    await commit();
  }

  allocationSize(requestedBytes: number): number {
    return Math.ceil(requestedBytes / MiB) * MiB;
  }

  async createVolume(rec: VolumeRecord, _ctx: OpContext): Promise<void> {
    await this.faults.enter('createVolume');
    if (this.storage.has(rec.id)) return;
    if (rec.source?.kind === 'snapshot' && !this.snapshotStorage.has(rec.source.id)) {
      throw new NotFoundError(`source snapshot ${rec.source.id} has no data`);
    }
    if (rec.source?.kind === 'volume' && !this.storage.has(rec.source.id)) throw new NotFoundError(`source volume ${rec.source.id} has no data`);
    this.storage.set(rec.id, rec.capacityBytes);
  }

  async hasStorage(rec: VolumeRecord): Promise<boolean> {
    return this.storage.has(rec.id);
  }

  async deleteVolume(rec: VolumeRecord, _ctx: OpContext): Promise<void> {
    await this.faults.enter('deleteVolume');
    this.storage.delete(rec.id);
    this.nodeSize.delete(rec.id);
  }

  async volumeInUse(rec: VolumeRecord): Promise<string | undefined> {
    await this.faults.enter('volumeInUse');
    return this.inUse.get(rec.id);
  }

  async createSnapshot(snap: SnapshotRecord, source: VolumeRecord, _ctx: OpContext): Promise<{ sizeBytes: number }> {
    await this.faults.enter('createSnapshot');
    const size = this.storage.get(source.id);
    if (size === undefined) throw new NotFoundError(`source volume ${source.id} has no data`);
    if (!this.snapshotStorage.has(snap.id)) this.snapshotStorage.set(snap.id, size);
    return { sizeBytes: this.snapshotStorage.get(snap.id) ?? size };
  }

  async deleteSnapshot(snap: SnapshotRecord, _ctx: OpContext): Promise<void> {
    await this.faults.enter('deleteSnapshot');
    this.snapshotStorage.delete(snap.id);
  }

  async expandVolume(rec: VolumeRecord, newBytes: number, _ctx: OpContext): Promise<{ nodeExpansionRequired: boolean }> {
    await this.faults.enter('expandVolume');
    if (!this.storage.has(rec.id)) throw new NotFoundError(`volume ${rec.id} has no data`);
    this.storage.set(rec.id, Math.max(newBytes, this.storage.get(rec.id) ?? 0));
    return { nodeExpansionRequired: rec.accessType === 'mount' };
  }

  async controllerHealth(rec: VolumeRecord): Promise<VolumeHealth> {
    return this.storage.has(rec.id) ? { abnormal: false, message: 'volume is healthy' } : { abnormal: true, message: `volume ${rec.id} has no data` };
  }

  nodeTopology(): Topology {
    return { [FAKE_TOPOLOGY_KEY]: this.nodeId };
  }

  async nodeVolume(id: string, _ctx: OpContext, call: NodeCall): Promise<VolumeRecord | undefined> {
    await this.faults.enter(`nodeVolume.${call}`);
    return this.volumes.get(id);
  }

  /** Stages "the filesystem": creates the staging directory (no mount) and records it. */
  async stage(req: StageRequest, _ctx: OpContext): Promise<void> {
    await this.faults.enter('stage');
    const current = this.staged.get(req.volume.id);
    if (current) {
      if (current.stagingPath !== req.stagingPath) {
        throw new FailedPreconditionError(`volume ${req.volume.id} is already staged at ${current.stagingPath}`);
      }
      return;
    }
    await mkdir(req.stagingPath, { recursive: true });
    this.staged.set(req.volume.id, { stagingPath: req.stagingPath, capability: req.capability });
    this.nodeSize.set(req.volume.id, this.storage.get(req.volume.id) ?? req.volume.capacityBytes);
  }

  async unstage(volumeId: string, stagingPath: string, _ctx: OpContext): Promise<void> {
    await this.faults.enter('unstage');
    const current = this.staged.get(volumeId);
    if (!current || current.stagingPath !== stagingPath) return;
    const users = [...this.published.entries()].filter(([, p]) => p.volumeId === volumeId).map(([t]) => t);
    if (users.length > 0) throw new FailedPreconditionError(`volume ${volumeId} is still published at ${users.join(', ')}`);
    this.staged.delete(volumeId);
    await rm(stagingPath, { recursive: true, force: true });
  }

  async publish(req: PublishRequest, _ctx: OpContext): Promise<void> {
    await this.faults.enter('publish');
    const staged = this.staged.get(req.volume.id);
    if (staged?.stagingPath !== req.stagingPath) throw new FailedPreconditionError(`volume ${req.volume.id} is not staged at ${req.stagingPath}`);
    const current = this.published.get(req.targetPath);
    if (current) {
      if (current.volumeId !== req.volume.id) throw new AlreadyExistsError(`${req.targetPath} already has another mount (volume ${current.volumeId})`);
      if (current.readonly !== req.readonly) throw new AlreadyExistsError(`${req.targetPath} is already published with readonly=${current.readonly}`);
      return;
    }
    await mkdir(req.targetPath, { recursive: true });
    this.published.set(req.targetPath, { volumeId: req.volume.id, stagingPath: req.stagingPath, readonly: req.readonly });
  }

  async unpublish(volumeId: string, targetPath: string, _ctx: OpContext): Promise<void> {
    await this.faults.enter('unpublish');
    const current = this.published.get(targetPath);
    if (current && current.volumeId !== volumeId) throw new FailedPreconditionError(`${targetPath} holds another mount (volume ${current.volumeId}), not volume ${volumeId}`);
    this.published.delete(targetPath);
    await rm(targetPath, { recursive: true, force: true });
  }

  async nodeExpand(volume: VolumeRecord, volumePath: string, _stagingPath: string, _ctx: OpContext): Promise<{ capacityBytes: number }> {
    await this.faults.enter('nodeExpand');
    const isPublished = this.published.get(volumePath)?.volumeId === volume.id || this.staged.get(volume.id)?.stagingPath === volumePath;
    if (!isPublished) throw new NotFoundError(`volume ${volume.id} is not at ${volumePath}`);
    const size = this.storage.get(volume.id) ?? volume.capacityBytes;
    this.nodeSize.set(volume.id, size);
    return { capacityBytes: size };
  }

  async usage(volume: VolumeRecord, volumePath: string): Promise<VolumeUsage> {
    await this.faults.enter('usage');
    const total = this.nodeSize.get(volume.id) ?? volume.capacityBytes;
    void volumePath;
    if (volume.accessType === 'block') return { kind: 'block', totalBytes: total, health: { abnormal: false, message: 'ok' } };
    return { kind: 'filesystem', totalBytes: total, usedBytes: 4096, availableBytes: total - 4096, totalInodes: 1000, usedInodes: 11, freeInodes: 989, health: { abnormal: false, message: 'ok' } };
  }
}
