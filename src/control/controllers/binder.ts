// The PersistentVolume controller (Kubernetes' "binder"): binds claims to volumes, hands claims
// that nothing matches to their class's provisioner, and reclaims volumes whose claim is gone.
//
// Two loops, as in kube-controller-manager: one syncs claims, one syncs volumes. Both are
// level-triggered: a sync looks at the object as it is now and does the next step, so a crash
// between steps is finished by the next sync. Binding is the same four writes, in the same order,
// as Kubernetes' bind(): PV claimRef → PV phase Bound → PVC volumeName (+ bind-completed) → PVC
// phase Bound; each is skipped when already done.
//
// Matching: the smallest Available volume of the claim's class whose access modes, capacity,
// volume mode, selector (and node affinity, for a selected node) fit; a volume pre-bound to the
// claim (claimRef) or named by it (spec.volumeName) wins. Available volumes are indexed by class,
// so a sync costs the size of one class's free pool, not of all volumes.
//
// Also, as kube-controller-manager: a claim naming no class gets the default class created after
// it (retroactive default StorageClass assignment). And, standing in for the admission plugin the
// store does not have, the binder's first write to a claim carries kubernetes.io/pvc-protection
// (one write per claim saved).
//
// The store commits writes in groups (store.ts); a sync's writes return at once and are durable by
// the end of the turn. Before an external side effect that depends on them (DeleteVolume) the
// binder awaits store.flushed().
import type { Logger } from 'pino';
import { rfc3339 } from '../api/time.js';
import { compareQuantities, isQuantity } from '../api/quantity.js';
import type { Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumePhase } from '../api/types/core.js';
import type { StorageClass } from '../api/types/storage.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, driverUnavailable, type SyncResult } from './controller.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import {
  ANN_BIND_COMPLETED,
  ANN_BOUND_BY_CONTROLLER,
  ANN_BETA_STORAGE_CLASS,
  ANN_BETA_STORAGE_PROVISIONER,
  ANN_PROVISIONED_BY,
  ANN_PRE_RESIZE_CAPACITY,
  ANN_SELECTED_NODE,
  ANN_STORAGE_PROVISIONER,
  annotation,
  capacityModesMismatch,
  claimClass,
  claimKey,
  claimRefKey,
  hasAnnotation,
  holdsProvisioningFinalizer,
  isBoundToClaim,
  isDeleting,
  NO_PROVISIONER,
  PROVISIONING_FINALIZER,
  PVC_PROTECTION_FINALIZER,
  selectorAccepts,
  storageProvisioner,
  volumeClass,
  volumeFitsNode,
  volumeNameFor,
  volumeSatisfiesClaim,
  volumeStorage,
  withAnnotations,
} from './volume-util.js';

/** Deletes the storage behind a volume whose reclaim policy is Delete (the provisioner does). */
export interface VolumeDeleter {
  /**
   * 'yes' if it can delete this volume now, 'unregistered' if its driver is not reachable yet, 'no'
   * if nothing can, 'external' if an external provisioner does (csi-provisioner turned off).
   */
  canDelete(pv: PersistentVolume): 'yes' | 'unregistered' | 'no' | 'external';
  deleteVolume(pv: PersistentVolume, signal: AbortSignal): Promise<void>;
}

export interface BinderOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  deleter: VolumeDeleter;
  /** Whether this control plane's csi-provisioner runs; if not, every claim waits for an external one. Default true. */
  provisionerInProcess?: boolean;
  logger: Logger;
  /** Concurrent volume syncs (deletions wait on the driver). Default 16. */
  volumeWorkers?: number;
  /** Retry backoff; defaults as client-go (5 ms … 1000 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_AVAILABLE_BY_CLASS = 'binder:available-by-class';
const IDX_BY_CLAIM = 'binder:by-claim';
const IDX_BY_DRIVER = 'binder:by-csi-driver';
const IDX_UNBOUND_BY_CLASS = 'binder:unbound-by-class';
const IDX_BY_VOLUME_NAME = 'binder:by-volume-name';

const YES = 'yes';

function isAvailable(pv: PersistentVolume): boolean {
  return pv.status?.phase === 'Available' && pv.spec.claimRef === undefined && !isDeleting(pv);
}

function isUnbound(pvc: PersistentVolumeClaim): boolean {
  return !hasAnnotation(pvc, ANN_BIND_COMPLETED) && pvc.status?.phase !== 'Lost';
}

const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';

function isDefaultClass(sc: StorageClass): boolean {
  return sc.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true';
}

function needsProtection(pvc: PersistentVolumeClaim): boolean {
  return !isDeleting(pvc) && !(pvc.metadata.finalizers ?? []).includes(PVC_PROTECTION_FINALIZER);
}

/** The claim with the pvc-protection finalizer (unless it is being deleted). */
function protect(pvc: PersistentVolumeClaim): PersistentVolumeClaim {
  if (!needsProtection(pvc)) return pvc;
  return { ...pvc, metadata: { ...pvc.metadata, finalizers: [...(pvc.metadata.finalizers ?? []), PVC_PROTECTION_FINALIZER] } };
}

function compareStorage(a: string, b: string): number {
  return isQuantity(a) && isQuantity(b) ? compareQuantities(a, b) : 0;
}

export class Binder {
  readonly claims: ControllerLoop;
  readonly volumes: ControllerLoop;
  private readonly store: Store;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly classes: Informer<StorageClass>;
  private readonly nodes: Informer<Node>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly deleter: VolumeDeleter;
  private readonly provisionerInProcess: boolean;
  private readonly log: Logger;

  constructor(options: BinderOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.deleter = options.deleter;
    this.provisionerInProcess = options.provisionerInProcess !== false;
    this.log = options.logger.child({ controller: 'persistentvolume-binder' });
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.claims = new ControllerLoop({ name: 'persistentvolume-binder-claims', logger: options.logger, workers: 1, sync: (key) => this.syncClaim(key), ...backoff });
    this.volumes = new ControllerLoop({
      name: 'persistentvolume-binder-volumes',
      logger: options.logger,
      workers: options.volumeWorkers ?? 16,
      sync: (key, signal) => this.syncVolume(key, signal),
      ...backoff,
    });

    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');
    this.classes = options.informers.for('storageclasses');
    this.nodes = options.informers.for('nodes');

    this.pvs.addIndex(IDX_AVAILABLE_BY_CLASS, (pv) => (isAvailable(pv) ? [volumeClass(pv)] : []));
    this.pvs.addIndex(IDX_BY_CLAIM, (pv) => {
      const k = claimRefKey(pv);
      return k === undefined ? [] : [k];
    });
    this.pvs.addIndex(IDX_BY_DRIVER, (pv) => (pv.spec.csi?.driver ? [pv.spec.csi.driver] : []));
    this.pvcs.addIndex(IDX_UNBOUND_BY_CLASS, (pvc) => (isUnbound(pvc) ? [claimClass(pvc)] : []));
    this.pvcs.addIndex(IDX_BY_VOLUME_NAME, (pvc) => (pvc.spec.volumeName ? [pvc.spec.volumeName] : []));

    this.pvcs.addEventHandler({
      add: (pvc) => this.claims.enqueue(claimKey(pvc)),
      update: (_old, pvc) => this.claims.enqueue(claimKey(pvc)),
      delete: (pvc) => {
        // The volumes it held (or that were made for it) are released.
        if (pvc.spec.volumeName) this.volumes.enqueue(pvc.spec.volumeName);
        for (const k of this.pvs.indexKeys(IDX_BY_CLAIM, claimKey(pvc))) this.volumes.enqueue(k);
      },
    });
    this.pvs.addEventHandler({
      add: (pv) => this.volumeChanged(pv),
      update: (_old, pv) => this.volumeChanged(pv),
      delete: (pv) => {
        const k = claimRefKey(pv);
        if (k !== undefined) this.claims.enqueue(k);
        for (const c of this.pvcs.indexKeys(IDX_BY_VOLUME_NAME, pv.metadata.name ?? '')) this.claims.enqueue(c);
      },
    });
    // A new or changed class can make pending claims provisionable.
    const classChanged = (sc: StorageClass): void => {
      for (const k of this.pvcs.indexKeys(IDX_UNBOUND_BY_CLASS, sc.metadata.name ?? '')) this.claims.enqueue(k);
      // A new default class is given retroactively to claims that name none.
      if (isDefaultClass(sc)) for (const k of this.pvcs.indexKeys(IDX_UNBOUND_BY_CLASS, '')) this.claims.enqueue(k);
    };
    this.classes.addEventHandler({ add: classChanged, update: (old, sc) => old !== sc && classChanged(sc) });
    // A driver (un)registered: its released volumes can now be deleted; claims may wait for it.
    this.registry.onChange((driver) => {
      for (const k of this.pvs.indexKeys(IDX_BY_DRIVER, driver)) this.volumes.enqueue(k);
      for (const pvc of this.pvcs.list()) if (isUnbound(pvc) && storageProvisioner(pvc) === driver) this.claims.enqueue(claimKey(pvc));
    });
  }

  start(): void {
    this.claims.start();
    this.volumes.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.claims.stop(), this.volumes.stop()]);
  }

  private volumeChanged(pv: PersistentVolume): void {
    const name = pv.metadata.name ?? '';
    this.volumes.enqueue(name);
    const k = claimRefKey(pv);
    if (k !== undefined) this.claims.enqueue(k);
    for (const c of this.pvcs.indexKeys(IDX_BY_VOLUME_NAME, name)) this.claims.enqueue(c);
    // A volume that became available may be what pending claims of its class wait for.
    if (isAvailable(pv)) for (const c of this.pvcs.indexKeys(IDX_UNBOUND_BY_CLASS, volumeClass(pv))) this.claims.enqueue(c);
  }

  // ---------------------------------------------------------------- claims

  syncClaim(key: string): SyncResult | void {
    const pvc = this.pvcs.get(key);
    if (pvc === undefined) return;
    const result = hasAnnotation(pvc, ANN_BIND_COMPLETED) ? this.syncBoundClaim(pvc) : this.syncUnboundClaim(pvc);
    // kubernetes.io/pvc-protection comes with the create (the StorageObjectInUseProtection
    // admission plugin). A claim stored without it gets it with the binder's first write to it
    // (see protect()), or now when the binder had nothing else to write.
    const after = this.pvcs.get(key);
    if (after !== undefined && needsProtection(after)) this.store.update(protect(after));
    return result;
  }

  private syncUnboundClaim(pvc: PersistentVolumeClaim): SyncResult | void {
    const requested = pvc.spec.volumeName;
    if (!requested && pvc.spec.storageClassName === undefined && annotation(pvc, ANN_BETA_STORAGE_CLASS) === undefined) {
      // Retroactive default StorageClass assignment (Kubernetes 1.28+): a claim created when there
      // was no default class gets the one that exists now.
      const dflt = this.defaultClass();
      if (dflt !== undefined) {
        this.store.update(protect({ ...pvc, spec: { ...pvc.spec, storageClassName: dflt } }));
        return;
      }
    }
    if (!requested) {
      const className = claimClass(pvc);
      const sc = className ? this.classes.get(className) : undefined;
      const delayBinding = sc?.volumeBindingMode === 'WaitForFirstConsumer';
      const selectedNode = annotation(pvc, ANN_SELECTED_NODE);
      const match = this.findBestMatch(pvc, delayBinding, selectedNode);
      if (match.volume !== undefined) {
        this.bind(match.volume, pvc);
        return;
      }
      pvc = this.withClaimPhase(pvc, 'Pending');
      if (delayBinding && !selectedNode) {
        this.recorder.event(pvc, 'Normal', 'WaitForFirstConsumer', 'waiting for first consumer to be created before binding');
        return;
      }
      if (sc !== undefined && sc.provisioner !== NO_PROVISIONER) {
        this.provisionClaim(pvc, sc);
        return;
      }
      const why = match.rejected.length > 0 ? `; ${match.rejected.join('; ')}` : '';
      if (className === '') {
        this.recorder.event(pvc, 'Normal', 'FailedBinding', `no persistent volumes available for this claim and no storage class is set${why}`);
      } else if (sc === undefined) {
        this.recorder.event(pvc, 'Warning', 'ProvisioningFailed', `storageclass.storage.k8s.io "${className}" not found${why}`);
      } else {
        this.recorder.event(pvc, 'Normal', 'FailedBinding', `no persistent volumes available for this claim and storage class "${className}" has no provisioner${why}`);
      }
      return;
    }

    // The user asked for a particular volume.
    const pv = this.pvs.get(requested);
    if (pv === undefined) {
      this.setClaimPhase(pvc, 'Pending');
      this.recorder.event(pvc, 'Normal', 'FailedBinding', `volume "${requested}" requested by the claim does not exist`);
      return;
    }
    if (pv.spec.claimRef === undefined) {
      const why = volumeSatisfiesClaim(pv, pvc);
      if (why !== undefined) {
        this.setClaimPhase(pvc, 'Pending');
        this.recorder.event(pvc, 'Warning', 'VolumeMismatch', `Cannot bind to requested volume "${requested}": ${why}`);
        return;
      }
      this.bind(pv, pvc);
      return;
    }
    if (isBoundToClaim(pv, pvc)) {
      this.bind(pv, pvc);
      return;
    }
    this.setClaimPhase(pvc, 'Pending');
    if (!hasAnnotation(pvc, ANN_BOUND_BY_CONTROLLER)) {
      this.recorder.event(pvc, 'Warning', 'FailedBinding', `volume "${requested}" already bound to a different claim.`);
    }
  }

  private syncBoundClaim(pvc: PersistentVolumeClaim): void {
    const name = pvc.spec.volumeName;
    if (!name) {
      if (this.setClaimPhase(pvc, 'Lost')) {
        this.recorder.event(pvc, 'Warning', 'ClaimLost', 'Bound claim has lost reference to PersistentVolume. Data on the volume is lost!');
      }
      return;
    }
    const pv = this.pvs.get(name);
    if (pv === undefined) {
      if (this.setClaimPhase(pvc, 'Lost')) {
        this.recorder.event(pvc, 'Warning', 'ClaimLost', 'Bound claim has lost its PersistentVolume. Data on the volume is lost!');
      }
      return;
    }
    if (pv.spec.claimRef === undefined || isBoundToClaim(pv, pvc)) {
      // Unbound volume (fix it) or a consistent binding (make sure both statuses say so).
      this.bind(pv, pvc);
      return;
    }
    if (this.setClaimPhase(pvc, 'Lost')) {
      this.recorder.event(pvc, 'Warning', 'ClaimMisbound', 'Two claims are bound to the same volume, this one is bound incorrectly');
    }
  }

  /** Asks the class's provisioner for a volume: the claim gets the storage-provisioner annotation. */
  private provisionClaim(pvc: PersistentVolumeClaim, sc: StorageClass): void {
    if (isDeleting(pvc)) return;
    const provisioner = sc.provisioner;
    if (annotation(pvc, ANN_STORAGE_PROVISIONER) !== provisioner || annotation(pvc, ANN_BETA_STORAGE_PROVISIONER) !== provisioner) {
      pvc = this.store.update(protect(withAnnotations(pvc, { [ANN_STORAGE_PROVISIONER]: provisioner, [ANN_BETA_STORAGE_PROVISIONER]: provisioner })));
    }
    if (!this.provisionerInProcess) {
      // csi-provisioner is off (--controllers): an external one (the official sidecar) provisions.
      this.recorder.event(
        pvc,
        'Normal',
        'ExternalProvisioning',
        `Waiting for a volume to be created either by the external provisioner '${provisioner}' or manually by the system administrator. ` +
          'If volume creation is delayed, please verify that the provisioner is running and correctly registered.',
      );
    } else if (!this.registry.isRegistered(provisioner)) {
      this.recorder.event(
        pvc,
        'Normal',
        'ExternalProvisioning',
        `Waiting for a volume to be created either by the external provisioner '${provisioner}' or manually by the system administrator. ` +
          `If volume creation is delayed, please verify that the provisioner is running and correctly registered ` +
          `(no CSIDriver "${provisioner}" with a controller endpoint is registered).`,
      );
    }
  }

  /** The default StorageClass (the newest, if several), as the DefaultStorageClass admission plugin picks it. */
  private defaultClass(): string | undefined {
    const defaults = this.classes.list().filter(isDefaultClass);
    defaults.sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
    return defaults[0]?.metadata.name;
  }

  /** The volume to bind the claim to, or why none fits. */
  private findBestMatch(pvc: PersistentVolumeClaim, delayBinding: boolean, selectedNode: string | undefined): { volume?: PersistentVolume; rejected: string[] } {
    const nodeLabels = selectedNode === undefined ? undefined : this.nodes.get(selectedNode)?.metadata.labels;
    // A volume pre-bound to this claim wins, whatever its class.
    for (const pv of this.pvs.byIndex(IDX_BY_CLAIM, claimKey(pvc))) {
      if (!isBoundToClaim(pv, pvc) || isDeleting(pv)) continue;
      if (capacityModesMismatch(pv, pvc) !== undefined) continue;
      if (selectedNode !== undefined && !volumeFitsNode(pv, selectedNode, nodeLabels)) return { rejected: [] };
      return { volume: pv, rejected: [] };
    }
    if (delayBinding && selectedNode === undefined) return { rejected: [] };
    let best: PersistentVolume | undefined;
    const rejected: string[] = [];
    const candidates = this.pvs.byIndex(IDX_AVAILABLE_BY_CLASS, claimClass(pvc));
    for (const pv of candidates) {
      let why = capacityModesMismatch(pv, pvc);
      if (why === undefined && !selectorAccepts(pvc, pv)) why = 'labels do not match the claim selector';
      if (why === undefined && selectedNode !== undefined && !volumeFitsNode(pv, selectedNode, nodeLabels)) why = `node affinity excludes node ${selectedNode}`;
      if (why !== undefined) {
        if (rejected.length < 3) rejected.push(`volume ${pv.metadata.name ?? ''}: ${why}`);
        else if (rejected.length === 3) rejected.push('…');
        continue;
      }
      if (best === undefined) best = pv;
      else {
        const c = compareStorage(volumeStorage(pv), volumeStorage(best));
        if (c < 0 || (c === 0 && (pv.metadata.name ?? '') < (best.metadata.name ?? ''))) best = pv;
      }
    }
    return best === undefined ? { rejected: candidates.length === 0 ? [] : [`${candidates.length} available volume(s) of the class checked: ${rejected.join('; ')}`] } : { volume: best, rejected: [] };
  }

  /** Kubernetes' bind(): each of the four steps writes only if it is not done yet. */
  private bind(pv: PersistentVolume, pvc: PersistentVolumeClaim): void {
    let volume = pv;
    const ref = volume.spec.claimRef;
    if (ref === undefined || ref.name !== pvc.metadata.name || (ref.namespace || 'default') !== pvc.metadata.namespace || ref.uid !== pvc.metadata.uid) {
      // bound-by-controller only when the binder chose the claim (not for a volume the user pre-bound to it).
      const chosen = !isBoundToClaim(volume, pvc) && !hasAnnotation(volume, ANN_BOUND_BY_CONTROLLER);
      volume = this.store.update({
        ...(chosen ? withAnnotations(volume, { [ANN_BOUND_BY_CONTROLLER]: YES }) : volume),
        spec: {
          ...volume.spec,
          claimRef: {
            kind: 'PersistentVolumeClaim',
            namespace: pvc.metadata.namespace ?? 'default',
            name: pvc.metadata.name ?? '',
            uid: pvc.metadata.uid ?? '',
            apiVersion: 'v1',
            resourceVersion: pvc.metadata.resourceVersion ?? '',
          },
        },
      });
    }
    volume = this.setVolumePhase(volume, 'Bound');

    let claim = pvc;
    const volumeName = volume.metadata.name ?? '';
    // Bound to the volume provisioned for it: the PV answers for that volume from now on, so the
    // provisioner's finalizer goes in this same write (see PROVISIONING_FINALIZER).
    const provisioned = volumeName === volumeNameFor(claim) && holdsProvisioningFinalizer(claim);
    if (claim.spec.volumeName !== volumeName || annotation(claim, ANN_BIND_COMPLETED) !== YES || provisioned) {
      const set: Record<string, string> = { [ANN_BIND_COMPLETED]: YES };
      if (claim.spec.volumeName !== volumeName) set[ANN_BOUND_BY_CONTROLLER] = YES;
      const next = withAnnotations(claim, set);
      if (provisioned) next.metadata = { ...next.metadata, finalizers: (next.metadata.finalizers ?? []).filter((f) => f !== PROVISIONING_FINALIZER) };
      claim = this.store.update(protect({ ...next, spec: { ...claim.spec, volumeName } }));
    }
    const status = claim.status ?? {};
    const accessModes = volume.spec.accessModes ?? [];
    // As Kubernetes: the capacity is set when the claim becomes Bound, not after. Once bound, a PV
    // larger than the claim's status means an expansion the node has not finished yet (resizer.ts);
    // a PV the resizer grew but whose filesystem still has the old size says so in its pre-resize
    // annotation.
    const preResize = annotation(volume, ANN_PRE_RESIZE_CAPACITY);
    const capacity = status.phase === 'Bound' ? (status.capacity ?? volume.spec.capacity ?? {}) : preResize !== undefined ? { storage: preResize } : (volume.spec.capacity ?? {});
    if (status.phase !== 'Bound' || JSON.stringify(status.accessModes ?? []) !== JSON.stringify(accessModes) || JSON.stringify(status.capacity ?? {}) !== JSON.stringify(capacity)) {
      claim = this.store.update({ ...claim, status: { ...status, phase: 'Bound', accessModes, capacity } }, { subresource: 'status' });
      this.log.debug({ claim: claimKey(claim), volume: volumeName }, 'bound');
    }
  }

  /** Writes the claim's phase if it differs; returns whether it wrote. */
  private setClaimPhase(pvc: PersistentVolumeClaim, phase: 'Pending' | 'Lost'): boolean {
    if (pvc.status?.phase === phase) return false;
    this.store.update({ ...pvc, status: { ...pvc.status, phase } }, { subresource: 'status' });
    return true;
  }

  /** The claim with the given phase (written if it differed). */
  private withClaimPhase(pvc: PersistentVolumeClaim, phase: 'Pending' | 'Lost'): PersistentVolumeClaim {
    if (pvc.status?.phase === phase) return pvc;
    return this.store.update({ ...pvc, status: { ...pvc.status, phase } }, { subresource: 'status' });
  }

  // ---------------------------------------------------------------- volumes

  private setVolumePhase(pv: PersistentVolume, phase: PersistentVolumePhase, message?: string): PersistentVolume {
    if (pv.status?.phase === phase && (message === undefined || pv.status.message === message)) return pv;
    const status = { phase, lastPhaseTransitionTime: rfc3339(), ...(message === undefined ? {} : { message }) };
    return this.store.update({ ...pv, status }, { subresource: 'status' });
  }

  async syncVolume(key: string, signal: AbortSignal): Promise<SyncResult | void> {
    const pv = this.pvs.get(key);
    if (pv === undefined) return;
    const ref = pv.spec.claimRef;
    if (ref === undefined) {
      this.setVolumePhase(pv, 'Available');
      return;
    }
    if (!ref.uid) {
      // Pre-bound by the user to a claim by name: available to that claim only; its sync binds.
      this.setVolumePhase(pv, 'Available');
      return;
    }
    const claim = this.pvcs.getByName(ref.namespace || 'default', ref.name ?? '');
    if (claim === undefined || claim.metadata.uid !== ref.uid) {
      // The claim is gone (or was recreated): the volume is released.
      let released = pv;
      if (pv.status?.phase !== 'Released' && pv.status?.phase !== 'Failed') released = this.setVolumePhase(pv, 'Released');
      return this.reclaim(released, signal);
    }
    if (!claim.spec.volumeName) {
      // Binding in progress (e.g. a freshly provisioned volume): the claim's sync finishes it.
      return;
    }
    if (claim.spec.volumeName === pv.metadata.name) {
      this.setVolumePhase(pv, 'Bound');
      return;
    }
    // The claim is bound to another volume.
    if (hasAnnotation(pv, ANN_PROVISIONED_BY) && pv.spec.persistentVolumeReclaimPolicy === 'Delete') {
      let released = pv;
      if (pv.status?.phase !== 'Released' && pv.status?.phase !== 'Failed') released = this.setVolumePhase(pv, 'Released');
      return this.reclaim(released, signal);
    }
    if (hasAnnotation(pv, ANN_BOUND_BY_CONTROLLER)) {
      // We bound it; undo that and make it available again.
      const { claimRef: _dropped, ...spec } = pv.spec;
      const unbound = this.store.update({ ...withAnnotations(pv, {}, [ANN_BOUND_BY_CONTROLLER]), spec });
      this.setVolumePhase(unbound, 'Available');
    }
  }

  private async reclaim(pv: PersistentVolume, signal: AbortSignal): Promise<SyncResult | void> {
    const name = pv.metadata.name ?? '';
    switch (pv.spec.persistentVolumeReclaimPolicy ?? 'Retain') {
      case 'Retain':
        return;
      case 'Recycle':
        if (pv.status?.phase !== 'Failed') {
          this.setVolumePhase(pv, 'Failed', 'Recycle is not supported: use Delete or Retain');
          this.recorder.event(pv, 'Warning', 'VolumeFailedRecycle', 'Recycle is not supported: use Delete or Retain');
        }
        return;
      case 'Delete':
        break;
    }
    if (pv.status?.phase === 'Failed') return;
    switch (this.deleter.canDelete(pv)) {
      case 'no': {
        const message = `error getting deleter volume plugin for volume "${name}": no deletable volume plugin matched`;
        this.setVolumePhase(pv, 'Failed', message);
        this.recorder.event(pv, 'Warning', 'VolumeFailedDelete', message);
        return;
      }
      case 'unregistered':
        // Deleted once its driver registers (the registry's change requeues it).
        this.recorder.event(pv, 'Warning', 'VolumeFailedDelete', `CSI driver "${pv.spec.csi?.driver ?? ''}" is not registered; the volume will be deleted when it is`);
        return;
      case 'external':
        // The sidecar that provisioned it deletes it (external-provisioner watches released volumes).
        return;
      case 'yes':
        break;
    }
    // The decision rests on store state (the claim is gone, the volume Released): it must be
    // durable before the storage goes, or a crash could bring back a claim whose data is deleted.
    await this.store.flushed();
    if (signal.aborted) return;
    try {
      await this.deleter.deleteVolume(pv, signal);
    } catch (err) {
      if (signal.aborted) return;
      this.recorder.event(pv, 'Warning', 'VolumeFailedDelete', (err as Error).message);
      const unavailable = driverUnavailable(err);
      if (unavailable !== undefined) return { unavailable };
      throw err;
    }
    // The storage is gone: remove the PV object (pv-protection lets it go, as it is not Bound).
    const current = this.pvs.get(name);
    if (current === undefined || current.metadata.uid !== pv.metadata.uid) return;
    try {
      this.store.delete('persistentvolumes', undefined, name, { preconditions: { uid: pv.metadata.uid ?? '' } });
      this.log.info({ volume: name }, 'volume deleted');
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}


/** kube-controller-manager's persistentvolume-binder (registry.ts). */
export const PERSISTENTVOLUME_BINDER: ControllerDescriptor = {
  name: 'persistentvolume-binder-controller',
  aliases: ['persistentvolume-binder'],
  description: "the PV controller: binds claims and volumes, hands claims to provisioners, reclaims released volumes",
  init(ctx) {
    const binder = new Binder({
      store: ctx.store,
      informers: ctx.informers,
      registry: ctx.registry,
      recorder: ctx.events.recorder('persistentvolume-controller'),
      deleter: ctx.deleter,
      provisionerInProcess: ctx.enabled.includes('csi-provisioner'),
      logger: ctx.logger,
      ...(ctx.concurrency === undefined ? {} : { volumeWorkers: ctx.concurrency }),
      ...ctx.backoff,
    });
    return { loops: [binder.claims, binder.volumes], start: () => binder.start(), stop: () => binder.stop() };
  },
};
