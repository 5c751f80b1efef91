// The snapshotter: what the csi-snapshotter sidecar does beside each driver, here for every
// registered driver whose controller advertises CREATE_DELETE_SNAPSHOT (a driver that does not is
// left alone, so an official csi-snapshotter may serve it against this API instead). It acts on
// VolumeSnapshotContents only; the common controller (snapshot-controller.ts) makes them.
//
//   dynamic content (spec.source.volumeHandle), not ready: CreateSnapshot named
//     "snapshot-<VolumeSnapshot uid>" (a retry after a timeout, an error or a crash asks for the
//     same name, so the driver's idempotency makes it one snapshot), with the class's parameters
//     (minus csi.storage.k8s.io/ keys) and its csi.storage.k8s.io/snapshotter-secret-name/-namespace
//     secret; status.snapshotHandle, creationTime (int64 ns), restoreSize (bytes), readyToUse, or
//     status.error. A snapshot the driver says is not ready yet (a cephfs snapshot, an rbd clone)
//     is asked again with backoff (0.2 s doubling to 30 s), never in a busy loop.
//   pre-provisioned content (spec.source.snapshotHandle): status from ListSnapshots when the driver
//     lists snapshots, else taken as ready.
//   deleted content: DeleteSnapshot when its policy is Delete and its snapshot is gone or being
//     deleted, with the secret recorded on the content; then its finalizer
//     (...volumesnapshotcontent-bound-protection, added here before CreateSnapshot) goes. A content
//     deleted while CreateSnapshot may have been in flight (...volumesnapshot-being-created) asks
//     CreateSnapshot once more, by name, to learn what to delete: nothing is orphaned.
//
// Drivers whose every node serves its own Controller service (local volumes,
// stowage.dev/controller-per-node) are reached on the node that holds the source volume (its PV's
// node affinity); that node is recorded on the content (stowage.dev/snapshot-node), so deletes and
// restores find the snapshot after the source volume is gone.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { CsiClient } from '../../csi/client.js';
import type { CreateSnapshotRequestInput, Snapshot } from '../../csi/types.js';
import type { PersistentVolume } from '../api/types/core.js';
import type { VolumeSnapshotClass, VolumeSnapshotContent } from '../api/types/snapshot.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, driverUnavailable, type SyncResult } from './controller.js';
import type { ControllerDescriptor } from './registry.js';
import { ANN_SNAPSHOT_NODE, volumeNodeOf } from './data-source.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import { decodeSecret, describeError } from './provisioner.js';
import {
  ANN_BEING_CREATED,
  ANN_BEING_DELETED,
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  hasFinalizer,
  PARAM_SECRET_NAME,
  PARAM_SECRET_NAMESPACE,
  VSC_FINALIZER,
  withFinalizers,
} from './snapshot-controller.js';
import { isDeleting } from './volume-util.js';

const POLL_FIRST_MS = 200;
const POLL_MAX_MS = 30_000;

export function snapshotNameFor(content: VolumeSnapshotContent): string {
  return `snapshot-${content.spec.volumeSnapshotRef.uid ?? ''}`;
}

/** A CSI timestamp as int64 nanoseconds (a JS number: exact to a few hundred ns, as JSON carries it). */
function timestampNanos(ts: Snapshot['creation_time']): number | undefined {
  if (ts === null || ts === undefined) return undefined;
  return Number(ts.seconds) * 1e9 + (ts.nanos ?? 0);
}

export interface SnapshotterOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  logger: Logger;
  /** Deadline of one CreateSnapshot / DeleteSnapshot; a timed-out call is retried with the same name. Default 60 s. */
  timeoutMs?: number;
  /** Contents worked on at once. Default 8. */
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_PV_BY_HANDLE = 'snapshotter:pv-by-handle';
const IDX_CONTENT_BY_DRIVER = 'snapshotter:content-by-driver';

export class Snapshotter {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly vscs: Informer<VolumeSnapshotContent>;
  private readonly classes: Informer<VolumeSnapshotClass>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  /** Polls of a not-yet-ready snapshot so far, per content: the next one waits longer. */
  private readonly polls = new Map<string, number>();

  constructor(options: SnapshotterOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'csi-snapshotter' });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.loop = new ControllerLoop({
      name: 'csi-snapshotter',
      logger: options.logger,
      workers: options.concurrency ?? 8,
      sync: (key, signal) => this.sync(key, signal),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.vscs = options.informers.for('volumesnapshotcontents');
    this.classes = options.informers.for('volumesnapshotclasses');
    this.pvs = options.informers.for('persistentvolumes');
    this.pvs.addIndex(IDX_PV_BY_HANDLE, (pv) => (pv.spec.csi ? [`${pv.spec.csi.driver}|${pv.spec.csi.volumeHandle}`] : []));
    this.vscs.addIndex(IDX_CONTENT_BY_DRIVER, (c) => (c.spec?.driver ? [c.spec.driver] : []));
    const changed = (c: VolumeSnapshotContent): void => {
      if (this.needsWork(c)) this.loop.enqueue(c.metadata.name ?? '');
    };
    this.vscs.addEventHandler({ add: changed, update: (_old, c) => changed(c), delete: (c) => this.polls.delete(c.metadata.name ?? '') });
    this.registry.onChange((driver) => {
      for (const k of this.vscs.indexKeys(IDX_CONTENT_BY_DRIVER, driver)) this.loop.enqueue(k);
    });
  }

  get loops(): ControllerLoop[] {
    return [this.loop];
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private needsWork(c: VolumeSnapshotContent): boolean {
    if (isDeleting(c)) return hasFinalizer(c, VSC_FINALIZER);
    return c.status?.readyToUse !== true || !c.status.snapshotHandle || !hasFinalizer(c, VSC_FINALIZER);
  }

  /** The node holding the snapshot's source, for drivers served per node. */
  private nodeOf(content: VolumeSnapshotContent): string | undefined {
    const driver = content.spec.driver;
    if (!this.registry.controllerPerNode(driver)) return undefined;
    const recorded = content.metadata.annotations?.[ANN_SNAPSHOT_NODE];
    if (recorded) return recorded;
    const handle = content.spec.source.volumeHandle;
    const pv = handle ? this.pvs.byIndex(IDX_PV_BY_HANDLE, `${driver}|${handle}`)[0] : undefined;
    return pv === undefined ? undefined : volumeNodeOf(pv, this.registry, this.store);
  }

  private async sync(name: string, signal: AbortSignal): Promise<SyncResult | void> {
    const content = this.vscs.get(name);
    if (content === undefined || !this.needsWork(content)) return;
    const driver = content.spec.driver;
    // Not registered here: another snapshotter's (or registration requeues it).
    if (!this.registry.isRegistered(driver)) return;
    let caps: ReadonlySet<string>;
    try {
      caps = await this.registry.controllerCapabilities(driver);
    } catch (err) {
      const unavailable = driverUnavailable(err);
      if (unavailable !== undefined) return { unavailable };
      throw err;
    }
    if (!caps.has('CREATE_DELETE_SNAPSHOT')) return;
    const node = this.nodeOf(content);
    const client = this.registry.controllerClient(driver, node);
    if (client === undefined) return;
    try {
      if (isDeleting(content)) return await this.delete(content, client, signal);
      if (!hasFinalizer(content, VSC_FINALIZER)) {
        this.store.update(withFinalizers(content, [VSC_FINALIZER]));
        return; // requeued by the update
      }
      if (content.spec.source.snapshotHandle) return await this.syncPreProvisioned(content, client, caps, signal);
      return await this.create(content, client, node, signal);
    } catch (err) {
      if (signal.aborted) return;
      const unavailable = driverUnavailable(err);
      if (unavailable !== undefined) return { unavailable };
      throw err;
    }
  }

  private readSecret(name: string | undefined, namespace: string | undefined): Record<string, string> {
    if (!name || !namespace) return {};
    const secret = this.store.get('secrets', namespace, name);
    if (secret === undefined) throw new Error(`error getting secret ${name} in namespace ${namespace}: secrets "${name}" not found`);
    return decodeSecret(secret);
  }

  private async create(content: VolumeSnapshotContent, client: CsiClient, node: string | undefined, signal: AbortSignal): Promise<SyncResult | void> {
    const name = content.metadata.name ?? '';
    const volumeHandle = content.spec.source.volumeHandle ?? '';
    let request: CreateSnapshotRequestInput;
    try {
      const className = content.spec.volumeSnapshotClassName ?? '';
      const cls = this.classes.get(className);
      if (cls === undefined) throw new Error(`failed to get snapshot class: volumesnapshotclass.snapshot.storage.k8s.io "${className}" not found`);
      const ref = content.spec.volumeSnapshotRef;
      const expand = (s: string | undefined): string | undefined =>
        s?.replaceAll('${volumesnapshotcontent.name}', name).replaceAll('${volumesnapshot.name}', ref.name ?? '').replaceAll('${volumesnapshot.namespace}', ref.namespace ?? '');
      const secrets = this.readSecret(expand(cls.parameters?.[PARAM_SECRET_NAME]), expand(cls.parameters?.[PARAM_SECRET_NAMESPACE]));
      const parameters = Object.fromEntries(Object.entries(cls.parameters ?? {}).filter(([k]) => !k.startsWith('csi.storage.k8s.io/')));
      request = { name: snapshotNameFor(content), source_volume_id: volumeHandle, parameters, secrets };
    } catch (err) {
      this.failed(content, err);
      throw err;
    }

    // Mark the call (and the node it goes to) before making it: a content deleted meanwhile, or
    // after a crash, knows that something may exist to be deleted, and where.
    const annotations = { ...content.metadata.annotations, [ANN_BEING_CREATED]: 'yes', ...(node === undefined ? {} : { [ANN_SNAPSHOT_NODE]: node }) };
    let current = content;
    if (!isDeepStrictEqual(annotations, content.metadata.annotations)) current = this.store.update({ ...content, metadata: { ...content.metadata, annotations } });
    await this.store.flushed();
    if (signal.aborted) return;

    let snapshot: Snapshot;
    try {
      const response = await client.controller.CreateSnapshot(request, { timeoutMs: this.timeoutMs, signal });
      if (response.snapshot === null || !response.snapshot.snapshot_id) throw new Error('the driver returned no snapshot');
      snapshot = response.snapshot;
    } catch (err) {
      if (signal.aborted) return;
      this.failed(this.vscs.get(name) ?? current, err);
      throw err;
    }
    const latest = this.vscs.get(name);
    if (latest === undefined || latest.metadata.uid !== content.metadata.uid) return;
    const status: NonNullable<VolumeSnapshotContent['status']> = {
      snapshotHandle: snapshot.snapshot_id,
      readyToUse: snapshot.ready_to_use,
      restoreSize: Number(snapshot.size_bytes),
    };
    const created = timestampNanos(snapshot.creation_time);
    if (created !== undefined) status.creationTime = created;
    const written = this.store.update({ ...latest, status }, { subresource: 'status' });
    if (snapshot.ready_to_use) {
      this.polls.delete(name);
      const rest = { ...written.metadata.annotations };
      delete rest[ANN_BEING_CREATED];
      this.store.update({ ...written, metadata: { ...written.metadata, annotations: rest } });
      this.log.debug({ content: name, snapshotId: snapshot.snapshot_id }, 'snapshot ready');
      return;
    }
    // Not ready yet: ask again later, each time waiting longer.
    const n = this.polls.get(name) ?? 0;
    this.polls.set(name, n + 1);
    return { requeueAfterMs: Math.min(POLL_FIRST_MS * 2 ** n, POLL_MAX_MS) };
  }

  private async syncPreProvisioned(content: VolumeSnapshotContent, client: CsiClient, caps: ReadonlySet<string>, signal: AbortSignal): Promise<SyncResult | void> {
    const handle = content.spec.source.snapshotHandle ?? '';
    let status: NonNullable<VolumeSnapshotContent['status']> = { snapshotHandle: handle, readyToUse: true };
    if (caps.has('LIST_SNAPSHOTS')) {
      const response = await client.controller.ListSnapshots({ snapshot_id: handle }, { timeoutMs: this.timeoutMs, signal });
      const found = response.entries[0]?.snapshot;
      if (found === null || found === undefined) {
        this.failed(content, new Error(`snapshot ${handle} not found by the driver`));
        return { requeue: true };
      }
      status = { snapshotHandle: handle, readyToUse: found.ready_to_use, restoreSize: Number(found.size_bytes) };
      const created = timestampNanos(found.creation_time);
      if (created !== undefined) status.creationTime = created;
    }
    if (!isDeepStrictEqual(status, content.status)) this.store.update({ ...content, status }, { subresource: 'status' });
    if (!status.readyToUse) {
      const name = content.metadata.name ?? '';
      const n = this.polls.get(name) ?? 0;
      this.polls.set(name, n + 1);
      return { requeueAfterMs: Math.min(POLL_FIRST_MS * 2 ** n, POLL_MAX_MS) };
    }
  }

  private async delete(content: VolumeSnapshotContent, client: CsiClient, signal: AbortSignal): Promise<SyncResult | void> {
    const name = content.metadata.name ?? '';
    const ref = content.spec.volumeSnapshotRef;
    const vs = ref.name ? this.store.get('volumesnapshots', ref.namespace || 'default', ref.name) : undefined;
    const snapshotLive = vs !== undefined && vs.metadata.uid === ref.uid && !isDeleting(vs) && content.metadata.annotations?.[ANN_BEING_DELETED] !== 'yes';
    if (content.spec.deletionPolicy === 'Delete' && !snapshotLive) {
      let handle = content.status?.snapshotHandle ?? content.spec.source.snapshotHandle;
      try {
        const secrets = this.readSecret(content.metadata.annotations?.[ANN_DELETION_SECRET_NAME], content.metadata.annotations?.[ANN_DELETION_SECRET_NAMESPACE]);
        if (!handle && content.metadata.annotations?.[ANN_BEING_CREATED] === 'yes' && content.spec.source.volumeHandle) {
          // CreateSnapshot may have made it without our hearing: ask again by name to learn its ID.
          const response = await client.controller.CreateSnapshot(
            { name: snapshotNameFor(content), source_volume_id: content.spec.source.volumeHandle, secrets, parameters: this.parametersOf(content) },
            { timeoutMs: this.timeoutMs, signal },
          );
          handle = response.snapshot?.snapshot_id;
        }
        if (handle) await client.controller.DeleteSnapshot({ snapshot_id: handle, secrets }, { timeoutMs: this.timeoutMs, signal });
      } catch (err) {
        if (signal.aborted) return;
        this.recorder.event(content, 'Warning', 'SnapshotDeleteError', `Failed to delete snapshot: ${describeError(err)}`);
        throw err;
      }
      this.log.debug({ content: name, snapshotId: handle }, 'DeleteSnapshot done');
    } else if (snapshotLive) {
      // Deleted under a live snapshot: it stays until the snapshot goes (the snapshot's deletion requeues it).
      this.log.debug({ content: name }, 'content deleted while its snapshot is bound; waiting');
      return { requeueAfterMs: 5_000 };
    }
    this.polls.delete(name);
    this.store.update(withFinalizers(content, [], [VSC_FINALIZER]));
  }

  private parametersOf(content: VolumeSnapshotContent): Record<string, string> {
    const cls = this.classes.get(content.spec.volumeSnapshotClassName ?? '');
    return Object.fromEntries(Object.entries(cls?.parameters ?? {}).filter(([k]) => !k.startsWith('csi.storage.k8s.io/')));
  }

  private failed(content: VolumeSnapshotContent, err: unknown): void {
    const message = `failed to take snapshot of the volume ${content.spec.source.volumeHandle ?? ''}: ${describeError(err)}`;
    this.recorder.event(content, 'Warning', 'SnapshotCreationFailed', `Failed to create snapshot: ${message}`);
    if (driverUnavailable(err) !== undefined) return;
    const latest = this.vscs.get(content.metadata.name ?? '') ?? content;
    // Written once per message: a status write requeues the content, which must wait for its backoff.
    if (latest.status?.error?.message === message) return;
    const status = { ...latest.status, readyToUse: false, error: { time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), message } };
    this.store.update({ ...latest, status }, { subresource: 'status' });
  }
}

/** The csi-snapshotter sidecar (registry.ts): CreateSnapshot/DeleteSnapshot for contents of registered drivers. */
export const CSI_SNAPSHOTTER: ControllerDescriptor = {
  name: 'csi-snapshotter',
  description: 'external-snapshotter sidecar: CreateSnapshot / DeleteSnapshot for VolumeSnapshotContents of registered drivers',
  init(ctx) {
    const c = new Snapshotter({
      store: ctx.store,
      informers: ctx.informers,
      registry: ctx.registry,
      recorder: ctx.events.recorder('csi-snapshotter'),
      logger: ctx.logger,
      ...(ctx.csiTimeoutMs === undefined ? {} : { timeoutMs: ctx.csiTimeoutMs }),
      ...ctx.backoff,
    });
    return { loops: c.loops, start: () => c.start(), stop: () => c.stop() };
  },
};
