import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, open, rename, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  ResourceExhaustedError,
  UnavailableError,
} from '../../../csi/errors.js';
import {
  createSubvolume,
  dataBytesUsed,
  deleteSubvolume,
  isBtrfs,
  qgroupUsage,
  reflinkCopy,
  setQgroupLimit,
  snapshotSubvolume,
  subvolumeId,
  btrfsSysfsDir,
  qgroupBytes,
} from '../../mount/btrfs.js';
import type { CommandRunner } from '../../mount/exec.js';
import { hasErrorCode } from '../../mount/syscalls.js';
import { blockDeviceSize, filesystemStats } from '../../mount/filesystem.js';
import type { LoopDevices } from '../../mount/loop.js';
import { parseMountInfo, readMountInfo, type MountEntry, type Mounter } from '../../mount/mount.js';
import { CONTROLLER_CAPABILITIES } from '../backend.js';
import type {
  AccessMode,
  AccessType,
  Backend,
  Capability,
  CapacityInfo,
  OpContext,
  PublishRequest,
  SnapshotRecord,
  StageRequest,
  Topology,
  VolumeHealth,
  VolumeRecord,
  VolumeUsage,
} from '../backend.js';
import { filesystemUsage, growStagedFilesystem, stageFilesystem } from '../device-fs.js';
import type { NodePaths } from '../node-paths.js';
import { isDeviceBind, isReadOnlyMode, publishBlock, publishMount, unpublish } from '../publication.js';
import { requireSameStaging } from '../restage.js';
import { FileJournal } from './journal.js';
import { PoolLayout, storageFor, type Storage } from './layout.js';
import { openPool, type Pool } from './pool.js';
import { AdmissionLock, availableBytes, checkAdmission, committedBytes, poolLimit, usableBytes } from './pool-capacity.js';

export const TOPOLOGY_KEY = 'topology.stowage.dev/node';

const MiB = 1024 * 1024;
/** mkfs.xfs refuses filesystems smaller than 300 MiB; ext4 needs a little room for its journal. */
const MINIMUM_BY_FS: Record<string, number> = { xfs: 300 * MiB, ext4: 16 * MiB };
const SUPPORTED_FS = new Set(['', 'btrfs', 'ext4', 'xfs']);
/** A local volume lives on one node, so only single-node modes make sense. */
const SUPPORTED_MODES = new Set<AccessMode>([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

export interface LocalBackendOptions {
  dir: string;
  poolSizeBytes: number;
  nodeId: string;
  maxVolumesPerNode: number;
  /** How many times its usable size the pool may promise (--local-overcommit; 1 = none). */
  overcommit?: number;
  runner: CommandRunner;
  mounter: Mounter;
  loops: LoopDevices;
  /** Where CO-given paths may be, and the only way stage and publish create, mount on and remove them. */
  paths: NodePaths;
  log: Logger;
}

/** The local backend: volumes in a btrfs pool on this node. */
export class LocalBackend implements Backend {
  readonly kind = 'local';
  readonly controllerCapabilities = CONTROLLER_CAPABILITIES;
  readonly defaultFsType = 'btrfs';
  readonly nodeId: string;
  readonly maxVolumesPerNode: number;
  private readonly admission = new AdmissionLock();
  /** Creates admitted whose journal record is still being written: id → bytes. */
  private readonly admitted = new Map<string, number>();
  /**
   * Subvolumes deleted whose data btrfs' cleaner may not have freed yet (it runs after a commit,
   * seconds later), by subvolume id, with what they may still hold (their size: qgroup figures lag
   * until a commit, so they cannot be trusted to be low). They count until the kernel has dropped
   * their qgroup, or a volume admitted into that space could be written full before it is free and
   * hit ENOSPC (seen: a 100Mi volume created right after two full ones were deleted stopped at
   * 19 MiB). A sweep every second, off the admission path, forgets the freed ones. Kept in memory:
   * after a driver restart the cleaner has long finished.
   */
  private readonly dying = new Map<number, number>();
  private sweep: NodeJS.Timeout | undefined;
  private sysfs: Promise<string> | undefined;
  /** Snapshots' exclusive bytes, read at most once a second (qgroup numbers move at commits anyway). */
  private snapshotBytesCache: { at: number; bytes: Promise<number> } | undefined;
  private readonly overcommit: number;

  private constructor(
    private readonly opts: LocalBackendOptions,
    private readonly pool: Pool,
    private readonly layout: PoolLayout,
    readonly volumes: FileJournal<VolumeRecord>,
    readonly snapshots: FileJournal<SnapshotRecord>,
    /** What the pool promises with no overcommit (pool-capacity.ts): measured once, at open. */
    readonly usableBytes: number,
  ) {
    this.nodeId = opts.nodeId;
    this.maxVolumesPerNode = opts.maxVolumesPerNode;
    this.overcommit = opts.overcommit ?? 1;
    poolLimit(usableBytes, this.overcommit); // refuses a bad overcommit at start
  }

  static async open(opts: LocalBackendOptions): Promise<LocalBackend> {
    const pool = await openPool(opts.dir, opts.poolSizeBytes, opts);
    const layout = new PoolLayout(pool.root, pool.image ? join(opts.dir, 'meta') : undefined);
    for (const d of [layout.volumesDir, layout.snapshotsDir]) await mkdir(d, { recursive: true });
    const volumes = await FileJournal.open<VolumeRecord>(layout.volumeRecordsDir);
    const snapshots = await FileJournal.open<SnapshotRecord>(layout.snapshotRecordsDir);
    // The data capacity: what is stored plus what statfs says can still be (see pool-capacity.ts).
    const [used, { availableBytes: free }] = await Promise.all([dataBytesUsed(pool.root), filesystemStats(pool.root)]);
    const usable = usableBytes(used + free);
    opts.log.info({ dataCapacityBytes: used + free, usableBytes: usable, overcommit: opts.overcommit ?? 1 }, 'pool capacity');
    return new LocalBackend(opts, pool, layout, volumes, snapshots, usable);
  }

  get root(): string {
    return this.pool.root;
  }

  /** Paths a CO must never hand us as staging or target paths. */
  get ownPaths(): string[] {
    return [this.opts.dir];
  }

  async ready(): Promise<boolean> {
    try {
      return (await isBtrfs(this.pool.root)) && (this.pool.image === undefined || (await this.opts.mounter.isMountPoint(this.pool.root)));
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    // The pool stays mounted: staged volumes keep serving while the driver restarts.
  }

  // ---------------------------------------------------------------- controller

  checkParameters(params: Record<string, string>): void {
    // Sidecars add csi.storage.k8s.io/* keys (pvc name, namespace...); they are information only.
    const unknown = Object.keys(params).find((k) => !k.startsWith('csi.storage.k8s.io/'));
    if (unknown !== undefined) {
      throw new InvalidArgumentError(`parameter "${unknown}" is not known to the local backend (it takes none)`);
    }
  }

  unsupportedCapability(cap: Capability): string | undefined {
    if (!SUPPORTED_MODES.has(cap.accessMode)) {
      return `access mode ${cap.accessMode} is not supported: a local volume lives on one node`;
    }
    if (cap.accessType === 'mount' && !SUPPORTED_FS.has(cap.fsType)) {
      return `fs_type "${cap.fsType}" is not supported (use btrfs, ext4 or xfs)`;
    }
    return undefined;
  }

  nodeTopology(): Topology {
    return { [TOPOLOGY_KEY]: this.nodeId };
  }

  placeVolume(requisite: Topology[]): Topology[] {
    const mine = this.nodeTopology();
    const matches = (t: Topology) => Object.entries(t).every(([k, v]) => mine[k] === v);
    if (requisite.length > 0 && !requisite.some(matches)) {
      throw new ResourceExhaustedError(
        `no requisite topology includes this node (${TOPOLOGY_KEY}=${this.nodeId}); local volumes exist only here`,
      );
    }
    // `preferred` is only a preference: with no requisite, this node is as good as any.
    return [mine];
  }

  async newVolumeId(): Promise<string> {
    return randomUUID();
  }

  async newSnapshotId(): Promise<string> {
    return randomUUID();
  }

  /** The pool's limit (usable × overcommit): no volume can be larger. Measured at open; the pool does not resize under us. */
  get maximumVolumeBytes(): number {
    return poolLimit(this.usableBytes, this.overcommit);
  }

  /** What CreateVolume would admit now: GetCapacity reports exactly this. */
  async capacity(): Promise<CapacityInfo> {
    await this.checkPoolHealthy();
    const available = availableBytes(this.figures(await this.committedBytes()));
    return {
      availableBytes: available,
      totalBytes: this.maximumVolumeBytes,
      maximumVolumeSize: available,
      minimumVolumeSize: MiB,
    };
  }

  /**
   * A create is checked and recorded in `admitted` under the lock, and its journal write (a durable
   * put, waiting for the disk) runs after the lock is released, so that concurrent creates still
   * share one fdatasync; until the record is in the journal, `admitted` counts it. An expansion
   * (rare) holds the lock through its write: its record is already counted at the old size.
   */
  async reserveCapacity(request: { bytes: number; purpose: 'create' | 'expand'; volumeId: string }, commit: () => Promise<void>): Promise<void> {
    const { bytes, purpose, volumeId } = request;
    // The I/O is outside the lock (concurrent calls share it); only the sum and the check are in it.
    await this.checkPoolHealthy();
    const snapshotBytes = await this.snapshotBytes();
    if (purpose === 'expand') {
      await this.admission.run(async () => {
        checkAdmission(this.figures(await this.promisedBytes(snapshotBytes)), bytes, purpose);
        await commit();
      });
      return;
    }
    await this.admission.run(async () => {
      checkAdmission(this.figures(await this.promisedBytes(snapshotBytes)), bytes, purpose);
      this.admitted.set(volumeId, bytes);
    });
    try {
      await commit();
    } finally {
      this.admitted.delete(volumeId);
    }
  }

  private figures(committed: number) {
    return { usable: this.usableBytes, overcommit: this.overcommit, committed };
  }

  /**
   * Bytes promised: every volume record's size (in-flight `creating` ones too) and every snapshot's
   * exclusive bytes. Qgroup numbers move at transaction commits, so a snapshot's share can lag up to
   * the commit interval (30 s) behind writes to its source.
   */
  async committedBytes(): Promise<number> {
    return this.promisedBytes(await this.snapshotBytes());
  }

  /** The in-memory part of the sum (journal, creates in flight, deleted subvolumes), plus the snapshots' bytes. */
  private async promisedBytes(snapshotBytes: number): Promise<number> {
    const all = await this.volumes.list();
    const sizes = all.map((v) => v.capacityBytes);
    // Creates admitted whose record is not in the journal yet (their durable write is under way).
    const known = new Set(all.map((v) => v.id));
    for (const [id, bytes] of this.admitted) if (!known.has(id)) sizes.push(bytes);
    return committedBytes({ volumeBytes: sizes, snapshotExclusiveBytes: [snapshotBytes, ...this.dying.values()] });
  }

  private snapshotBytes(): Promise<number> {
    const now = performance.now();
    if (this.snapshotBytesCache === undefined || now - this.snapshotBytesCache.at > 1_000) {
      const bytes = this.snapshots.list().then(async (all) => (await Promise.all(all.map((s) => this.snapshotExclusiveBytes(s)))).reduce((a, b) => a + b, 0));
      this.snapshotBytesCache = { at: now, bytes };
      bytes.catch(() => (this.snapshotBytesCache = undefined));
    }
    return this.snapshotBytesCache.bytes;
  }

  /** Deletes a volume's or snapshot's subvolume, counting up to `bytes` of it until the cleaner has freed it. */
  private async deleteCounted(dir: string, name: string, bytes: number): Promise<void> {
    const id = await subvolumeId(join(dir, name)).catch((e: unknown) => {
      if (hasErrorCode(e, 'ENOENT')) return undefined;
      throw e;
    });
    await deleteSubvolume(dir, name);
    this.snapshotBytesCache = undefined;
    if (id === undefined) return;
    this.dying.set(id, bytes);
    this.sweep ??= setInterval(() => void this.sweepDying(), 1_000).unref();
  }

  /** Forgets deleted subvolumes the cleaner has dropped (qgroup gone, or empty once it lingers). */
  private async sweepDying(): Promise<void> {
    try {
      this.sysfs ??= btrfsSysfsDir(this.pool.root);
      const sysfs = await this.sysfs;
      for (const id of [...this.dying.keys()]) {
        const q = await qgroupBytes(sysfs, id);
        if (q === null || (q.referencedBytes === 0 && q.exclusiveBytes === 0)) this.dying.delete(id);
      }
    } catch (err) {
      this.sysfs = undefined;
      this.opts.log.warn({ err }, 'cannot read the qgroups of deleted subvolumes');
    }
    if (this.dying.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  /**
   * UNAVAILABLE, naming the fault, when the pool cannot take writes: not mounted (a plain directory
   * is not btrfs), mounted read-only (btrfs turns itself read-only after an I/O error on its
   * device), or failing to answer statfs at all (EIO). Without it such calls ended in INTERNAL.
   */
  private async checkPoolHealthy(): Promise<void> {
    const problem = await this.poolProblem();
    if (problem !== undefined) throw new UnavailableError(problem);
  }

  /** What is wrong with the pool, in words, or undefined when it can take writes. */
  private async poolProblem(): Promise<string | undefined> {
    const root = this.pool.root;
    try {
      if (!(await isBtrfs(root))) return `the pool is not mounted at ${root} (its filesystem is gone from under the driver)`;
      await access(root, fsConstants.W_OK);
      return undefined;
    } catch (e) {
      if (hasErrorCode(e, 'EROFS')) {
        return `the pool at ${root} is read-only (btrfs turns read-only after an I/O error on its device; see the kernel log)`;
      }
      return `the pool at ${root} cannot be used: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  }

  private async snapshotExclusiveBytes(snap: SnapshotRecord): Promise<number> {
    const storage = storageFor(snap.sourceAccessType, snap.sourceFsType);
    const path = this.layout.snapshotPath(snap.id, storage);
    try {
      if (storage === 'subvolume') return (await qgroupUsage(path))?.exclusiveBytes ?? 0;
      // A reflinked image has no qgroup: its allocated bytes bound what it holds alone.
      return (await stat(path)).blocks * 512;
    } catch (e) {
      // A snapshot still being taken (or half-deleted) has no storage yet: nothing to count.
      if (hasErrorCode(e, 'ENOENT')) return 0;
      throw e;
    }
  }

  allocationSize(requestedBytes: number, cap: { accessType: AccessType; fsType: string }): number {
    const minimum = cap.accessType === 'mount' ? (MINIMUM_BY_FS[cap.fsType] ?? MiB) : MiB;
    const wanted = Math.max(requestedBytes, minimum);
    return Math.ceil(wanted / MiB) * MiB;
  }

  async createVolume(rec: VolumeRecord, ctx: OpContext): Promise<void> {
    const storage = storageFor(rec.accessType, rec.fsType);
    const path = this.layout.volumePath(rec.id, storage);
    // Capacity was admitted with the record (reserveCapacity), before this point.
    const sourcePath = await this.sourcePath(rec, storage);
    if (storage === 'subvolume') {
      // Creating or snapshotting a subvolume is atomic: after a crash it either exists whole or not
      // at all. One that exists (a retry after a crash) only needs its limit made right.
      if (sourcePath) {
        if (!(await exists(path))) await snapshotSubvolume(sourcePath, this.layout.volumesDir, rec.id, { readonly: false });
        // A snapshot inherits its source's limit; the clone gets its own.
        await setQgroupLimit(path, rec.capacityBytes);
      } else {
        try {
          // One ioctl creates the subvolume with its limit already in place.
          await createSubvolume(this.layout.volumesDir, rec.id, { maxBytes: rec.capacityBytes });
        } catch (e) {
          if (!hasErrorCode(e, 'EEXIST')) throw e;
          await setQgroupLimit(path, rec.capacityBytes);
        }
      }
    } else {
      if (!(await exists(path))) {
        const tmp = `${path}.tmp`;
        if (sourcePath) {
          await unlink(tmp).catch(() => undefined);
          if (rec.source?.kind === 'volume') await this.flushImage(sourcePath, ctx);
          await reflinkCopy(sourcePath, tmp);
        } else {
          const fh = await open(tmp, 'w', 0o600);
          await fh.close();
        }
        await rename(tmp, path);
      }
      // Never shrink: a restored snapshot may be larger than asked only if the caller asked wrongly.
      const size = (await stat(path)).size;
      if (size < rec.capacityBytes) await truncate(path, rec.capacityBytes);
    }
    ctx.log.debug({ volumeId: rec.id, storage, path }, 'volume storage ready');
  }

  private async sourcePath(rec: VolumeRecord, storage: Storage): Promise<string | undefined> {
    if (!rec.source) return undefined;
    const path =
      rec.source.kind === 'snapshot'
        ? this.layout.snapshotPath(rec.source.id, storage)
        : this.layout.volumePath(rec.source.id, storage);
    if (!(await exists(path))) throw new NotFoundError(`source ${rec.source.kind} ${rec.source.id} has no data in the pool`);
    return path;
  }

  async hasStorage(rec: VolumeRecord): Promise<boolean> {
    return exists(this.layout.volumePath(rec.id, storageFor(rec.accessType, rec.fsType)));
  }

  async deleteVolume(rec: VolumeRecord, ctx: OpContext): Promise<void> {
    const storage = storageFor(rec.accessType, rec.fsType);
    if (storage === 'subvolume') {
      await this.deleteCounted(this.layout.volumesDir, rec.id, rec.capacityBytes);
    } else {
      await unlink(this.layout.volumePath(rec.id, storage)).catch(ignoreMissing);
      await unlink(`${this.layout.volumePath(rec.id, storage)}.tmp`).catch(ignoreMissing);
    }
    ctx.log.debug({ volumeId: rec.id }, 'volume storage removed');
  }

  async volumeInUse(rec: VolumeRecord): Promise<string | undefined> {
    const storage = storageFor(rec.accessType, rec.fsType);
    const path = this.layout.volumePath(rec.id, storage);
    if (storage === 'image') {
      const devices = await this.opts.loops.devicesFor(path);
      if (devices.length > 0) return `volume ${rec.id} is attached on ${devices.join(', ')} (still staged)`;
      return undefined;
    }
    const mounted = await this.mountsOfSubvolume(rec.id);
    if (mounted.length > 0) return `volume ${rec.id} is still mounted at ${mounted.map((m) => m.mountPoint).join(', ')}`;
    return undefined;
  }

  async createSnapshot(snap: SnapshotRecord, source: VolumeRecord, ctx: OpContext): Promise<{ sizeBytes: number }> {
    const storage = storageFor(source.accessType, source.fsType);
    const from = this.layout.volumePath(source.id, storage);
    const to = this.layout.snapshotPath(snap.id, storage);
    if (!(await exists(from))) throw new NotFoundError(`source volume ${source.id} has no data in the pool`);
    if (!(await exists(to))) {
      if (storage === 'subvolume') {
        await snapshotSubvolume(from, this.layout.snapshotsDir, snap.id, { readonly: true });
      } else {
        const tmp = `${to}.tmp`;
        await unlink(tmp).catch(ignoreMissing);
        await this.flushImage(from, ctx);
        await reflinkCopy(from, tmp);
        await rename(tmp, to);
      }
    }
    this.snapshotBytesCache = undefined;
    ctx.log.debug({ snapshotId: snap.id, sourceVolumeId: source.id }, 'snapshot taken');
    return { sizeBytes: source.capacityBytes };
  }

  async deleteSnapshot(snap: SnapshotRecord, ctx: OpContext): Promise<void> {
    if (storageFor(snap.sourceAccessType, snap.sourceFsType) === 'subvolume') {
      await this.deleteCounted(this.layout.snapshotsDir, snap.id, snap.sizeBytes);
    } else {
      const image = this.layout.snapshotPath(snap.id, 'image');
      await unlink(image).catch(ignoreMissing);
      await unlink(`${image}.tmp`).catch(ignoreMissing);
    }
    ctx.log.debug({ snapshotId: snap.id }, 'snapshot removed');
  }

  async expandVolume(rec: VolumeRecord, newBytes: number): Promise<{ nodeExpansionRequired: boolean }> {
    const storage = storageFor(rec.accessType, rec.fsType);
    const path = this.layout.volumePath(rec.id, storage);
    if (newBytes > this.maximumVolumeBytes) throw new OutOfRangeError(`${newBytes} bytes is more than the whole pool (${this.maximumVolumeBytes} bytes)`);
    if (storage === 'subvolume') {
      await setQgroupLimit(path, newBytes);
      return { nodeExpansionRequired: false };
    }
    const size = (await stat(path)).size;
    if (size < newBytes) await truncate(path, newBytes);
    return { nodeExpansionRequired: true };
  }

  async controllerHealth(rec: VolumeRecord): Promise<VolumeHealth> {
    const problem = await this.poolProblem();
    if (problem !== undefined) return { abnormal: true, message: `volume ${rec.id} is on a failing pool: ${problem}` };
    const path = this.layout.volumePath(rec.id, storageFor(rec.accessType, rec.fsType));
    if (!(await exists(path))) return { abnormal: true, message: `backing storage ${path} is missing` };
    return { abnormal: false, message: 'volume is healthy' };
  }

  // ---------------------------------------------------------------- node

  async stage(req: StageRequest, ctx: OpContext): Promise<void> {
    const { volume, stagingPath, capability } = req;
    const storage = storageFor(volume.accessType, volume.fsType);
    const path = this.layout.volumePath(volume.id, storage);
    if (!(await exists(path))) throw new NotFoundError(`volume ${volume.id} has no data in the pool`);
    const readonly = isReadOnlyMode(capability.accessMode);

    if (capability.accessType === 'block') {
      // Raw block: the loop device is the staged state; publish binds the device node.
      await this.opts.loops.ensureAttached(path, { readonly });
      return;
    }
    const { paths, mounter } = this.opts;
    await paths.ensureDir(stagingPath);
    const current = await mounter.mountAt(stagingPath);
    if (storage === 'subvolume') {
      if (current) {
        if (isSubvolumeMount(current, volume.id)) {
          // No stash on this backend: the mount itself says read-only or not (mount flags are not compared).
          requireSameStaging(volume.id, stagingPath, { readonly: current.readonly }, { readonly });
          return;
        }
        throw new AlreadyExistsError(`staging path ${stagingPath} already has another mount (${current.source})`);
      }
      await paths.withPinned(stagingPath, (target) => mounter.bindMount(path, target, { readonly }));
      return;
    }
    if (current) {
      // Checked before attaching: a refused stage must not leave this volume's loop device behind.
      if ((await this.opts.loops.devicesFor(path)).includes(current.source)) {
        requireSameStaging(volume.id, stagingPath, { readonly: current.readonly }, { readonly });
        return;
      }
      throw new AlreadyExistsError(`staging path ${stagingPath} already has another mount (${current.source})`);
    }
    const attached = await this.opts.loops.devicesFor(path);
    const device = await this.opts.loops.ensureAttached(path);
    const fs = { volumeId: volume.id, device, stagingPath, fsType: volume.fsType, mountFlags: capability.mountFlags, readonly };
    try {
      await stageFilesystem(this.opts, fs, ctx.log);
    } catch (e) {
      // A refused stage (a blank volume staged read-only, another filesystem) leaves no loop device
      // of its own behind, as rbd's undoes its mapping: the CO need not call NodeUnstage after it.
      if (!attached.includes(device)) {
        await this.opts.loops.detach(device).catch((d: unknown) => ctx.log.warn({ err: (d as Error).message, device }, 'could not detach after a failed stage'));
      }
      throw e;
    }
  }

  /** The journal is on this node: every node call reads it. */
  async nodeVolume(id: string): Promise<VolumeRecord | undefined> {
    return this.volumes.get(id);
  }

  async unstage(volumeId: string, stagingPath: string): Promise<void> {
    const volume = await this.knownVolume(volumeId);
    const storage = storageFor(volume.accessType, volume.fsType);
    const current = await this.opts.mounter.mountAt(stagingPath);
    if (current) {
      if (!(await this.isMountOf(volume, current))) {
        throw new FailedPreconditionError(`${stagingPath} holds another mount (${current.source}), not volume ${volume.id}`);
      }
      await this.opts.paths.viaParent(stagingPath, (at) => this.opts.mounter.unmount(at, stagingPath));
    }
    if (storage === 'image') {
      for (const device of await this.opts.loops.devicesFor(this.layout.volumePath(volume.id, storage))) {
        await this.opts.loops.detach(device);
      }
    }
  }

  async publish(req: PublishRequest): Promise<void> {
    const { volume, stagingPath, targetPath, capability, readonly } = req;
    const common = { volumeId: volume.id, targetPath, accessMode: capability.accessMode, readonly };
    if (capability.accessType === 'block') {
      const file = this.layout.volumePath(volume.id, storageFor(volume.accessType, volume.fsType));
      await publishBlock(this.opts, { ...common, file, attached: await this.opts.loops.attachmentsOf(file) });
    } else {
      await publishMount(this.opts, { ...common, stagingPath });
    }
  }

  async unpublish(volumeId: string, targetPath: string): Promise<void> {
    const volume = await this.knownVolume(volumeId);
    await unpublish(this.opts, volumeId, targetPath, (m) => this.isMountOf(volume, m));
  }

  async nodeExpand(volume: VolumeRecord, volumePath: string, stagingPath: string): Promise<{ capacityBytes: number }> {
    const storage = storageFor(volume.accessType, volume.fsType);
    if (storage === 'subvolume') return { capacityBytes: volume.capacityBytes };
    const devices = await this.opts.loops.devicesFor(this.layout.volumePath(volume.id, storage));
    const device = devices[0];
    if (!device) throw new FailedPreconditionError(`volume ${volume.id} is not staged on this node`);
    // Every device on the file (a read-only publication has its own) must see the new size.
    for (const d of devices) await this.opts.loops.refreshCapacity(d);
    return growStagedFilesystem(this.opts, { device, accessType: volume.accessType, fsType: volume.fsType, volumePath, stagingPath });
  }

  async usage(volume: VolumeRecord, volumePath: string): Promise<VolumeUsage> {
    const storage = storageFor(volume.accessType, volume.fsType);
    const backing = this.layout.volumePath(volume.id, storage);
    const problem = await this.poolProblem();
    if (problem !== undefined) {
      // The volume may still be mounted and readable (a bind mount keeps the filesystem alive):
      // say what it holds if it can, and that it is not healthy.
      const fs = volume.accessType === 'mount' ? await filesystemStats(volumePath).catch(() => undefined) : undefined;
      return {
        kind: volume.accessType === 'block' ? 'block' : 'filesystem',
        totalBytes: volume.capacityBytes,
        ...(fs ? { usedBytes: fs.usedBytes, availableBytes: fs.availableBytes } : {}),
        health: { abnormal: true, message: `volume ${volume.id} is on a failing pool: ${problem}` },
      };
    }
    if (!(await exists(backing))) {
      return { kind: volume.accessType === 'block' ? 'block' : 'filesystem', totalBytes: 0, health: { abnormal: true, message: `backing storage ${backing} is missing` } };
    }
    const mount = await this.opts.mounter.mountAt(volumePath);
    if (mount && !(await this.isMountOf(volume, mount))) throw new NotFoundError(`volume ${volume.id} is not at ${volumePath}`);
    const mounted = mount !== undefined;
    const health: VolumeHealth = mounted
      ? { abnormal: false, message: 'volume is mounted and healthy' }
      : { abnormal: true, message: `${volumePath} is not mounted` };
    if (volume.accessType === 'block') {
      const [device] = await this.opts.loops.devicesFor(backing);
      const totalBytes = device ? await blockDeviceSize(device) : (await stat(backing)).size;
      return { kind: 'block', totalBytes, health };
    }
    if (storage === 'subvolume') {
      const fs = await filesystemStats(volumePath);
      const q = await qgroupUsage(backing);
      const used = q?.referencedBytes ?? 0;
      const total = q?.limitBytes ?? volume.capacityBytes;
      return {
        kind: 'filesystem',
        totalBytes: total,
        usedBytes: used,
        availableBytes: Math.max(0, Math.min(total - used, fs.availableBytes)),
        totalInodes: fs.totalInodes,
        usedInodes: fs.usedInodes,
        freeInodes: fs.freeInodes,
        health,
      };
    }
    return filesystemUsage(volumePath, health);
  }

  private async knownVolume(id: string): Promise<VolumeRecord> {
    const rec = await this.volumes.get(id);
    if (!rec) throw new NotFoundError(`volume ${id} does not exist`);
    return rec;
  }

  /** Whether mount m is this volume's: its subvolume, or a filesystem on (or a bind of) its loop device. */
  private async isMountOf(volume: VolumeRecord, m: MountEntry): Promise<boolean> {
    const storage = storageFor(volume.accessType, volume.fsType);
    if (storage === 'subvolume') return isSubvolumeMount(m, volume.id);
    const devices = await this.opts.loops.devicesFor(this.layout.volumePath(volume.id, storage)).catch(() => [] as string[]);
    return devices.some((d) => (volume.accessType === 'block' ? isDeviceBind(m, d) : m.source === d));
  }

  /**
   * Before an image is copied (a snapshot, or a clone of a volume): what the volume's users wrote
   * and the kernel still holds in memory is written into the image first, so the copy holds
   * everything written before the call (as a subvolume snapshot does), not only what writeback
   * happened to reach. A pod that wrote and even ran `sync` a moment ago may otherwise lose it in the
   * copy. One syncfs(2) (`sync -f`) per filesystem mounted from the image's loop devices; a device
   * used raw (a block volume) gets BLKFLSBUF (`blockdev --flushbufs`). A copy taken while writes go
   * on is crash-consistent, as a kernel rbd snapshot is. An image attached nowhere needs nothing.
   */
  private async flushImage(imagePath: string, ctx: OpContext): Promise<void> {
    const devices = await this.opts.loops.devicesFor(imagePath);
    if (devices.length === 0) return;
    const mounts = parseMountInfo(readMountInfo()).filter((m) => devices.includes(m.source));
    const synced = new Set<string>();
    for (const m of mounts) {
      if (synced.has(m.majorMinor)) continue;
      synced.add(m.majorMinor);
      await this.opts.runner.run('sync', ['-f', m.mountPoint]);
    }
    for (const device of devices) if (!mounts.some((m) => m.source === device)) await this.opts.runner.run('blockdev', ['--flushbufs', device]);
    ctx.log.debug({ image: imagePath, devices, filesystems: synced.size }, 'image flushed before its copy');
  }

  private async mountsOfSubvolume(id: string): Promise<MountEntry[]> {
    const text = readMountInfo();
    // Usually no mount names the volume at all: then there is nothing to parse.
    if (!text.includes(`/volumes/${id}`)) return [];
    return parseMountInfo(text).filter((m) => isSubvolumeMount(m, id));
  }
}

function isSubvolumeMount(m: MountEntry, id: string): boolean {
  return m.fsType === 'btrfs' && m.root.endsWith(`/volumes/${id}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function ignoreMissing(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT') throw e;
}
