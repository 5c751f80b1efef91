// The common snapshot controller: what external-snapshotter's snapshot-controller does in a
// cluster, for every driver. It never talks to a driver; that is the snapshotter's part
// (snapshotter.ts, csi-snapshotter's role), so either half can be replaced by the official one.
//
//   VolumeSnapshot (source.persistentVolumeClaimName)  → VolumeSnapshotContent "snapcontent-<uid>"
//       (dynamic): driver, deletionPolicy and secrets from spec.volumeSnapshotClassName, or from the
//       class marked snapshot.storage.kubernetes.io/is-default-class for the source PV's driver
//       (then written into the snapshot's spec, as upstream does);
//   VolumeSnapshot (source.volumeSnapshotContentName)  → that content (pre-provisioned), bound both
//       ways: the content's volumeSnapshotRef must name this snapshot; its uid is filled in here.
//
// The content's status (written by the snapshotter) is copied to the snapshot's: bound content,
// readyToUse, restoreSize, creationTime, error, with upstream's events (CreatingSnapshot,
// SnapshotCreated, SnapshotReady, SnapshotContentCreationFailed, ...).
//
// Finalizers, upstream's names: the snapshot holds ...volumesnapshot-as-source-protection (kept
// while a Pending claim restores from it) and ...volumesnapshot-bound-protection (while bound);
// the source claim holds ...pvc-as-source-protection while a snapshot of it is being taken (not yet
// readyToUse). Deleting a snapshot marks its content ...volumesnapshot-being-deleted and, with
// deletionPolicy Delete, deletes the content; the snapshotter then deletes the backend snapshot and
// the content's own finalizer. A content whose snapshot is gone is deleted the same way (Delete) or
// kept (Retain).
//
// Level-triggered: every sync reads the objects and takes one step, so a retry or a restart after a
// kill -9 converges (the content's name is derived from the snapshot's uid: never two).
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { bytesToQuantity } from '../api/quantity.js';
import type { PersistentVolume, PersistentVolumeClaim } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent } from '../api/types/snapshot.js';
import { AlreadyExistsError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { ControllerDescriptor } from './registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import { isDeleting } from './volume-util.js';

export const SNAPSHOT_GROUP = 'snapshot.storage.k8s.io';
const PREFIX = 'snapshot.storage.kubernetes.io/';
export const VS_SOURCE_FINALIZER = `${PREFIX}volumesnapshot-as-source-protection`;
export const VS_BOUND_FINALIZER = `${PREFIX}volumesnapshot-bound-protection`;
export const VSC_FINALIZER = `${PREFIX}volumesnapshotcontent-bound-protection`;
export const PVC_SOURCE_FINALIZER = `${PREFIX}pvc-as-source-protection`;
export const ANN_DEFAULT_CLASS = `${PREFIX}is-default-class`;
/** On a content: its snapshot is being deleted (the snapshotter may delete the backend snapshot). */
export const ANN_BEING_DELETED = `${PREFIX}volumesnapshot-being-deleted`;
/** On a content: CreateSnapshot may be in flight (a deleted content must find and delete what it made). */
export const ANN_BEING_CREATED = `${PREFIX}volumesnapshot-being-created`;
/** On a content: the secret DeleteSnapshot needs, from the class at creation. */
export const ANN_DELETION_SECRET_NAME = `${PREFIX}deletion-secret-name`;
export const ANN_DELETION_SECRET_NAMESPACE = `${PREFIX}deletion-secret-namespace`;
/** The class parameters naming the snapshotter secret (external-snapshotter's). */
export const PARAM_SECRET_NAME = 'csi.storage.k8s.io/snapshotter-secret-name';
export const PARAM_SECRET_NAMESPACE = 'csi.storage.k8s.io/snapshotter-secret-namespace';

export function contentNameFor(vs: VolumeSnapshot): string {
  return `snapcontent-${vs.metadata.uid ?? ''}`;
}

function snapshotKey(vs: { metadata: { namespace?: string | undefined; name?: string | undefined } }): string {
  return `${vs.metadata.namespace ?? 'default'}/${vs.metadata.name ?? ''}`;
}

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return (obj.metadata.finalizers ?? []).includes(finalizer);
}

export function withFinalizers<T extends KubeObject>(obj: T, add: readonly string[], remove: readonly string[] = []): T {
  const rest = (obj.metadata.finalizers ?? []).filter((f) => !remove.includes(f));
  for (const f of add) if (!rest.includes(f)) rest.push(f);
  return { ...obj, metadata: { ...obj.metadata, finalizers: rest } };
}

/** The snapshot a claim restores from (dataSourceRef, else dataSource), if any: its name. */
export function restoreSourceOf(pvc: PersistentVolumeClaim): string | undefined {
  const ref = pvc.spec.dataSourceRef ?? pvc.spec.dataSource;
  if (ref?.kind !== 'VolumeSnapshot' || ref.apiGroup !== SNAPSHOT_GROUP) return undefined;
  if (ref.namespace && ref.namespace !== (pvc.metadata.namespace ?? 'default')) return undefined;
  return ref.name;
}

/** Nanoseconds since the epoch (a content's creationTime) as an RFC 3339 time (a snapshot's). */
export function nanosToTime(ns: number): string {
  return new Date(Math.floor(ns / 1e6)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface SnapshotControllerOptions {
  store: Store;
  informers: InformerFactory;
  recorder: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_SNAPSHOTS_BY_CLAIM = 'snapshot-controller:by-claim';
const IDX_RESTORES_BY_SNAPSHOT = 'snapshot-controller:restores-by-snapshot';

export class SnapshotController {
  readonly snapshots: ControllerLoop;
  readonly contents: ControllerLoop;
  private readonly store: Store;
  private readonly vss: Informer<VolumeSnapshot>;
  private readonly vscs: Informer<VolumeSnapshotContent>;
  private readonly classes: Informer<VolumeSnapshotClass>;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly recorder: EventSink;
  private readonly log: Logger;

  constructor(options: SnapshotControllerOptions) {
    this.store = options.store;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'snapshot-controller' });
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.snapshots = new ControllerLoop({ name: 'snapshot-controller', logger: options.logger, workers: 4, sync: (key) => this.syncSnapshot(key), ...backoff });
    this.contents = new ControllerLoop({ name: 'snapshot-controller-contents', logger: options.logger, workers: 2, sync: (key) => this.syncContent(key), ...backoff });
    this.vss = options.informers.for('volumesnapshots');
    this.vscs = options.informers.for('volumesnapshotcontents');
    this.classes = options.informers.for('volumesnapshotclasses');
    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');

    this.vss.addIndex(IDX_SNAPSHOTS_BY_CLAIM, (vs) => {
      const claim = vs.spec?.source?.persistentVolumeClaimName;
      return claim ? [`${vs.metadata.namespace ?? 'default'}/${claim}`] : [];
    });
    // Claims still restoring from a snapshot (not bound yet) keep its as-source finalizer.
    this.pvcs.addIndex(IDX_RESTORES_BY_SNAPSHOT, (pvc) => {
      const source = restoreSourceOf(pvc);
      return source !== undefined && pvc.status?.phase !== 'Bound' && !isDeleting(pvc) ? [`${pvc.metadata.namespace ?? 'default'}/${source}`] : [];
    });
    const snapshotChanged = (vs: VolumeSnapshot): void => this.snapshots.enqueue(snapshotKey(vs));
    this.vss.addEventHandler({ add: snapshotChanged, update: (_old, vs) => snapshotChanged(vs), delete: (vs) => this.snapshotGone(vs) });
    const contentChanged = (c: VolumeSnapshotContent): void => {
      this.contents.enqueue(c.metadata.name ?? '');
      const ref = c.spec?.volumeSnapshotRef;
      if (ref?.name) this.snapshots.enqueue(`${ref.namespace || 'default'}/${ref.name}`);
    };
    this.vscs.addEventHandler({ add: contentChanged, update: (_old, c) => contentChanged(c), delete: contentChanged });
    const claimChanged = (pvc: PersistentVolumeClaim): void => {
      const ns = pvc.metadata.namespace ?? 'default';
      for (const k of this.vss.indexKeys(IDX_SNAPSHOTS_BY_CLAIM, `${ns}/${pvc.metadata.name ?? ''}`)) this.snapshots.enqueue(k);
      const source = restoreSourceOf(pvc);
      if (source !== undefined) this.snapshots.enqueue(`${ns}/${source}`);
    };
    this.pvcs.addEventHandler({ add: claimChanged, update: (old, pvc) => old !== pvc && claimChanged(pvc), delete: claimChanged });
    // A bound PV (the claim's phase follows) may make a waiting snapshot possible.
    this.pvs.addEventHandler({
      update: (old, pv) => {
        const ref = pv.spec.claimRef;
        if (old !== pv && ref?.name) for (const k of this.vss.indexKeys(IDX_SNAPSHOTS_BY_CLAIM, `${ref.namespace || 'default'}/${ref.name}`)) this.snapshots.enqueue(k);
      },
    });
    const classChanged = (): void => {
      for (const vs of this.vss.list()) if (!vs.status?.boundVolumeSnapshotContentName) this.snapshots.enqueue(snapshotKey(vs));
    };
    this.classes.addEventHandler({ add: classChanged, update: (old, c) => old !== c && classChanged() });
  }

  get loops(): ControllerLoop[] {
    return [this.snapshots, this.contents];
  }

  start(): void {
    this.snapshots.start();
    this.contents.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.snapshots.stop(), this.contents.stop()]);
  }

  /** A snapshot gone for good: its content and source claim may be done with. */
  private snapshotGone(vs: VolumeSnapshot): void {
    const name = vs.status?.boundVolumeSnapshotContentName ?? (vs.spec?.source?.volumeSnapshotContentName || contentNameFor(vs));
    this.contents.enqueue(name);
    const claim = vs.spec?.source?.persistentVolumeClaimName;
    if (claim) this.snapshots.enqueue(`${vs.metadata.namespace ?? 'default'}/${claim}#claim`);
  }

  // ---------------------------------------------------------------- snapshots

  private syncSnapshot(key: string): SyncResult | void {
    // "ns/claim#claim": only the source claim's finalizer needs a look (its snapshot is gone).
    if (key.endsWith('#claim')) {
      this.syncClaimFinalizer(key.slice(0, -'#claim'.length));
      return;
    }
    const vs = this.vss.get(key);
    if (vs === undefined) return;
    const result = isDeleting(vs) ? this.deleteSnapshot(vs) : this.syncLiveSnapshot(vs);
    const claim = vs.spec.source.persistentVolumeClaimName;
    if (claim) this.syncClaimFinalizer(`${vs.metadata.namespace ?? 'default'}/${claim}`);
    return result;
  }

  private syncLiveSnapshot(vs: VolumeSnapshot): SyncResult | void {
    if (!hasFinalizer(vs, VS_SOURCE_FINALIZER)) {
      this.store.update(withFinalizers(vs, [VS_SOURCE_FINALIZER]));
      return; // the update requeues it
    }
    const contentName = vs.spec.source.volumeSnapshotContentName;
    if (contentName) return this.syncPreProvisioned(vs, contentName);
    return this.syncDynamic(vs);
  }

  private syncPreProvisioned(vs: VolumeSnapshot, contentName: string): SyncResult | void {
    const content = this.vscs.get(contentName);
    if (content === undefined) {
      this.setError(vs, 'SnapshotContentMissing', `VolumeSnapshotContent ${contentName} is missing`);
      return;
    }
    const ref = content.spec.volumeSnapshotRef;
    if (ref.name !== vs.metadata.name || ref.namespace !== vs.metadata.namespace || (ref.uid && ref.uid !== vs.metadata.uid)) {
      this.setError(vs, 'SnapshotMisbound', `VolumeSnapshotContent ${contentName} is bound to a different snapshot`);
      return;
    }
    if (!ref.uid) {
      // Bind the content to this very snapshot.
      this.store.update({ ...content, spec: { ...content.spec, volumeSnapshotRef: { ...ref, kind: 'VolumeSnapshot', apiVersion: `${SNAPSHOT_GROUP}/v1`, uid: vs.metadata.uid ?? '', resourceVersion: vs.metadata.resourceVersion ?? '' } } });
      return;
    }
    this.copyStatus(vs, content);
  }

  private syncDynamic(vs: VolumeSnapshot): SyncResult | void {
    const name = contentNameFor(vs);
    const existing = this.vscs.get(name);
    if (existing !== undefined) {
      if (existing.spec.volumeSnapshotRef.uid !== vs.metadata.uid) {
        this.setError(vs, 'SnapshotContentMisbound', `VolumeSnapshotContent ${name} is bound to a different snapshot`);
        return;
      }
      this.copyStatus(vs, existing);
      return;
    }
    if (vs.status?.boundVolumeSnapshotContentName) {
      // Its content was deleted under it: say so, make no other.
      this.setError(vs, 'SnapshotContentMissing', `VolumeSnapshotContent ${vs.status.boundVolumeSnapshotContentName} is missing`);
      return;
    }
    const ns = vs.metadata.namespace ?? 'default';
    const claimName = vs.spec.source.persistentVolumeClaimName ?? '';
    const pvc = this.pvcs.getByName(ns, claimName);
    if (pvc === undefined) return this.creationFailed(vs, `failed to get input parameters to create snapshot ${vs.metadata.name ?? ''}: persistentvolumeclaim "${claimName}" not found`);
    if (isDeleting(pvc)) return this.creationFailed(vs, `the PVC ${claimName} is being deleted, will not attempt to take a snapshot of it`);
    const pv = pvc.spec.volumeName && pvc.status?.phase === 'Bound' ? this.pvs.get(pvc.spec.volumeName) : undefined;
    // Not bound yet: wait (the claim's and its volume's changes requeue the snapshot).
    if (pv === undefined) {
      this.log.debug({ snapshot: snapshotKey(vs), claim: claimName }, 'source claim not bound yet');
      return;
    }
    if (pv.spec.csi === undefined) return this.creationFailed(vs, `the PV ${pv.metadata.name ?? ''} is not a CSI volume: it cannot be snapshotted`);
    const driver = pv.spec.csi.driver;
    let cls: VolumeSnapshotClass | undefined;
    if (vs.spec.volumeSnapshotClassName) {
      cls = this.classes.get(vs.spec.volumeSnapshotClassName);
      if (cls === undefined) return this.creationFailed(vs, `failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "${vs.spec.volumeSnapshotClassName}" not found`);
    } else {
      const defaults = this.classes.list().filter((c) => c.driver === driver && c.metadata.annotations?.[ANN_DEFAULT_CLASS] === 'true');
      if (defaults.length === 0) return this.creationFailed(vs, `cannot find default snapshot class for snapshot ${vs.metadata.name ?? ''}`);
      if (defaults.length > 1) return this.creationFailed(vs, `${defaults.length} default snapshot classes were found for driver ${driver}`);
      cls = defaults[0] as VolumeSnapshotClass;
      // As upstream: the snapshot records the class it was given.
      this.store.update({ ...vs, spec: { ...vs.spec, volumeSnapshotClassName: cls.metadata.name ?? '' } });
      return;
    }
    if (cls.driver !== driver) return this.creationFailed(vs, `the VolumeSnapshotClass ${cls.metadata.name ?? ''} is for driver ${cls.driver}, but the volume ${pv.metadata.name ?? ''} is on ${driver}`);

    // The source claim stays while its snapshot is being taken.
    if (!hasFinalizer(pvc, PVC_SOURCE_FINALIZER)) this.store.update(withFinalizers(pvc, [PVC_SOURCE_FINALIZER]));
    const annotations: Record<string, string> = {};
    const secretName = cls.parameters?.[PARAM_SECRET_NAME];
    const secretNamespace = cls.parameters?.[PARAM_SECRET_NAMESPACE];
    if (secretName && secretNamespace) {
      annotations[ANN_DELETION_SECRET_NAME] = secretName.replaceAll('${volumesnapshotcontent.name}', name).replaceAll('${volumesnapshot.name}', vs.metadata.name ?? '').replaceAll('${volumesnapshot.namespace}', ns);
      annotations[ANN_DELETION_SECRET_NAMESPACE] = secretNamespace.replaceAll('${volumesnapshotcontent.name}', name).replaceAll('${volumesnapshot.namespace}', ns);
    }
    const content: VolumeSnapshotContent = {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: { name, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
      spec: {
        volumeSnapshotRef: { kind: 'VolumeSnapshot', apiVersion: `${SNAPSHOT_GROUP}/v1`, namespace: ns, name: vs.metadata.name ?? '', uid: vs.metadata.uid ?? '', resourceVersion: vs.metadata.resourceVersion ?? '' },
        driver,
        deletionPolicy: cls.deletionPolicy,
        source: { volumeHandle: pv.spec.csi.volumeHandle },
        volumeSnapshotClassName: cls.metadata.name ?? '',
        sourceVolumeMode: pv.spec.volumeMode ?? 'Filesystem',
      },
    };
    try {
      this.store.create(content);
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) {
        this.setError(vs, 'SnapshotContentCreationFailed', `Failed to create snapshot content with error ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }
    }
    this.recorder.event(vs, 'Normal', 'CreatingSnapshot', `Waiting for a snapshot ${snapshotKey(vs)} to be created by the CSI driver.`);
    this.writeStatus(vs, { boundVolumeSnapshotContentName: name, readyToUse: false });
  }

  /** Content status → snapshot status, with the events of its transitions. */
  private copyStatus(vs: VolumeSnapshot, content: VolumeSnapshotContent): void {
    const name = content.metadata.name ?? '';
    if (!hasFinalizer(vs, VS_BOUND_FINALIZER)) {
      this.store.update(withFinalizers(vs, [VS_BOUND_FINALIZER]));
      return;
    }
    const cs = content.status ?? {};
    const status: NonNullable<VolumeSnapshot['status']> = { boundVolumeSnapshotContentName: name, readyToUse: cs.readyToUse === true };
    if (cs.creationTime !== undefined) status.creationTime = nanosToTime(cs.creationTime);
    if (cs.restoreSize !== undefined) status.restoreSize = bytesToQuantity(cs.restoreSize);
    if (cs.error !== undefined) status.error = cs.error;
    const before = vs.status ?? {};
    if (status.creationTime !== undefined && before.creationTime === undefined) {
      this.recorder.event(vs, 'Normal', 'SnapshotCreated', `Snapshot ${snapshotKey(vs)} was successfully created by the CSI driver.`);
    }
    if (status.readyToUse && before.readyToUse !== true) this.recorder.event(vs, 'Normal', 'SnapshotReady', `Snapshot ${snapshotKey(vs)} is ready to use.`);
    if (cs.error?.message && cs.error.message !== before.error?.message) this.recorder.event(vs, 'Warning', 'SnapshotCreationFailed', `Failed to create snapshot: ${cs.error.message}`);
    this.writeStatus(vs, status);
  }

  private creationFailed(vs: VolumeSnapshot, message: string): SyncResult {
    this.setError(vs, 'SnapshotContentCreationFailed', `Failed to create snapshot content with error ${message}`);
    return { requeue: true };
  }

  private setError(vs: VolumeSnapshot, reason: string, message: string): void {
    if (vs.status?.error?.message === message) return;
    this.recorder.event(vs, 'Warning', reason, message);
    this.writeStatus(vs, { ...vs.status, readyToUse: vs.status?.readyToUse ?? false, error: { time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), message } });
  }

  private writeStatus(vs: VolumeSnapshot, status: NonNullable<VolumeSnapshot['status']>): void {
    if (isDeepStrictEqual(vs.status ?? {}, status)) return;
    this.store.update({ ...vs, status }, { subresource: 'status' });
  }

  private deleteSnapshot(vs: VolumeSnapshot): SyncResult | void {
    const key = snapshotKey(vs);
    const restores = this.pvcs.indexKeys(IDX_RESTORES_BY_SNAPSHOT, key);
    if (restores.length > 0 && hasFinalizer(vs, VS_SOURCE_FINALIZER)) {
      this.recorder.event(vs, 'Normal', 'SnapshotDeletePending', 'Snapshot is being used to restore a PVC');
      return; // the claims' changes requeue it
    }
    const contentName = vs.status?.boundVolumeSnapshotContentName ?? vs.spec.source.volumeSnapshotContentName ?? contentNameFor(vs);
    const content = this.vscs.get(contentName);
    if (content !== undefined && content.spec.volumeSnapshotRef.uid === vs.metadata.uid) {
      if (content.metadata.annotations?.[ANN_BEING_DELETED] !== 'yes') {
        this.store.update({ ...content, metadata: { ...content.metadata, annotations: { ...content.metadata.annotations, [ANN_BEING_DELETED]: 'yes' } } });
        return; // the content's update requeues the snapshot
      }
      if (content.spec.deletionPolicy === 'Delete' && !isDeleting(content)) {
        try {
          this.store.delete('volumesnapshotcontents', undefined, contentName);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
    }
    if (hasFinalizer(vs, VS_SOURCE_FINALIZER) || hasFinalizer(vs, VS_BOUND_FINALIZER)) this.store.update(withFinalizers(vs, [], [VS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]));
  }

  /** The claim keeps pvc-as-source-protection while any live snapshot of it is not ready yet. */
  private syncClaimFinalizer(claimKey: string): void {
    const pvc = this.pvcs.get(claimKey);
    if (pvc === undefined || !hasFinalizer(pvc, PVC_SOURCE_FINALIZER)) return;
    const inProgress = this.vss.byIndex(IDX_SNAPSHOTS_BY_CLAIM, claimKey).some((vs) => {
      if (isDeleting(vs) || vs.status?.readyToUse === true) return false;
      const content = this.vscs.get(contentNameFor(vs));
      // Taken (a handle exists) but not ready yet still counts: the backend may read the volume.
      return content === undefined ? vs.status?.boundVolumeSnapshotContentName === undefined && vs.status?.error === undefined : content.status?.readyToUse !== true && content.status?.error === undefined;
    });
    if (!inProgress) this.store.update(withFinalizers(pvc, [], [PVC_SOURCE_FINALIZER]));
  }

  // ---------------------------------------------------------------- contents

  /** A content whose snapshot is gone: Delete → delete it (the snapshotter deletes the backend snapshot); Retain → keep. */
  private syncContent(name: string): void {
    const content = this.vscs.get(name);
    if (content === undefined || isDeleting(content)) return;
    const ref = content.spec.volumeSnapshotRef;
    if (!ref.uid) return; // pre-provisioned, not bound yet
    const vs = this.vss.getByName(ref.namespace || 'default', ref.name ?? '');
    if (vs !== undefined && vs.metadata.uid === ref.uid) return;
    if (content.spec.deletionPolicy !== 'Delete') return;
    if (content.metadata.annotations?.[ANN_BEING_DELETED] !== 'yes') {
      this.store.update({ ...content, metadata: { ...content.metadata, annotations: { ...content.metadata.annotations, [ANN_BEING_DELETED]: 'yes' } } });
      return;
    }
    this.log.debug({ content: name }, 'snapshot gone; deleting its content (policy Delete)');
    try {
      this.store.delete('volumesnapshotcontents', undefined, name);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}

/** The common snapshot controller (registry.ts): swap it for the official snapshot-controller with -snapshot-controller. */
export const SNAPSHOT_CONTROLLER: ControllerDescriptor = {
  name: 'snapshot-controller',
  description: 'snapshot-controller: VolumeSnapshot → VolumeSnapshotContent, statuses, finalizers (never calls a driver)',
  init(ctx) {
    const c = new SnapshotController({ store: ctx.store, informers: ctx.informers, recorder: ctx.events.recorder('snapshot-controller'), logger: ctx.logger, ...ctx.backoff });
    return { loops: c.loops, start: () => c.start(), stop: () => c.stop() };
  },
};
