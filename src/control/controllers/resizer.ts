// The resizer: what external-resizer does in a cluster, for every registered CSI driver at once. A
// bound claim whose spec.resources.requests.storage is above its PV's capacity (admission has
// already checked that its class allows expansion and that it does not shrink) is expanded:
//
//   1. the claim says so: annotation volume.kubernetes.io/storage-resizer and event
//      ExternalExpanding (kube-controller-manager's expand controller hands a CSI volume to its
//      external resizer), condition Resizing, status.allocatedResources = the request,
//      allocatedResourceStatuses.storage = ControllerResizeInProgress, event Resizing;
//   2. ControllerExpandVolume(volume handle, required_bytes = the request, the PV's
//      controllerExpandSecretRef — the class's csi.storage.k8s.io/controller-expand-secret-*),
//      on the node that holds the volume when the driver's controller runs per node. A driver
//      without the EXPAND_VOLUME controller capability is not called: its volume needs node
//      expansion only (external-resizer's trivial resizer);
//   3. the PV's capacity becomes the new size; when the driver says node expansion is required the
//      PV keeps the claim's old capacity in volume.alpha.kubernetes.io/pre-resize-capacity, and the
//      claim gets FileSystemResizePending / NodeResizePending: the node agent (node-expansion.ts)
//      finishes it with NodeExpandVolume and only then changes status.capacity. Otherwise the
//      claim's capacity changes now, conditions cleared, event VolumeResizeSuccessful.
//
// A failure is a Warning VolumeResizeFailed event with the driver's message and a
// ControllerResizeError condition, retried with backoff (an OUT_OF_RANGE or INVALID_ARGUMENT answer
// — the local pool cannot hold the growth — is marked ControllerResizeInfeasible, and still retried:
// space may be freed). Level-triggered: everything is read back from the objects, so after a crash
// between the PV and the claim write the next sync finishes the claim from the PV.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CsiError } from '../../csi/errors.js';
import { bytesToQuantity, isQuantity, quantityValue } from '../api/quantity.js';
import { rfc3339 } from '../api/time.js';
import type { PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition, PersistentVolumeClaimStatus } from '../api/types/core.js';
import { ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { readSecretData, volumeCapabilityOf } from './attacher.js';
import { ControllerLoop, driverUnavailable, type SyncResult } from './controller.js';
import type { ControllerDescriptor } from './registry.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import { describeError } from './provisioner.js';
import { ANN_PRE_RESIZE_CAPACITY, annotation, claimKey, isBoundToClaim, nodeSelectorMatches, withAnnotations } from './volume-util.js';

const STORAGE = 'storage';

/** Kubernetes' ClaimResourceStatus values (status.allocatedResourceStatuses). */
export const RESIZE_STATUS = {
  controllerInProgress: 'ControllerResizeInProgress',
  controllerInfeasible: 'ControllerResizeInfeasible',
  nodePending: 'NodeResizePending',
  nodeInProgress: 'NodeResizeInProgress',
  nodeInfeasible: 'NodeResizeInfeasible',
} as const;

/** Kubernetes' PVC condition types of an expansion. */
export const CONDITION = {
  resizing: 'Resizing',
  fsResizePending: 'FileSystemResizePending',
  controllerError: 'ControllerResizeError',
  nodeError: 'NodeResizeError',
} as const;

export const FS_RESIZE_PENDING_MESSAGE = 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.';

/** Bytes of a quantity, or undefined when it is not one. */
export function bytesOf(q: string | undefined): number | undefined {
  if (q === undefined || !isQuantity(q)) return undefined;
  try {
    return quantityValue(q);
  } catch {
    return undefined;
  }
}

export function resizeStatusOf(pvc: PersistentVolumeClaim): string | undefined {
  return pvc.status?.allocatedResourceStatuses?.[STORAGE];
}

export function hasCondition(pvc: PersistentVolumeClaim, type: string): boolean {
  return (pvc.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
}

/** An error the caller must change its request for (CSI: OUT_OF_RANGE, INVALID_ARGUMENT). */
export function infeasible(err: unknown): boolean {
  return err instanceof CsiError && (err.code === grpcStatus.OUT_OF_RANGE || err.code === grpcStatus.INVALID_ARGUMENT);
}

/**
 * A claim's status with the given expansion conditions (others of the expansion removed; a
 * condition already there keeps its transition time), storage's resize status set (or removed
 * with undefined), and optionally new capacity / allocated size.
 */
export function resizeStatus(
  pvc: PersistentVolumeClaim,
  change: { conditions: { type: string; message?: string }[]; state: string | undefined; capacity?: string; allocated?: string },
): PersistentVolumeClaimStatus {
  const status = pvc.status ?? {};
  const now = rfc3339();
  const expansionTypes = new Set<string>(Object.values(CONDITION));
  const kept = (status.conditions ?? []).filter((c) => !expansionTypes.has(c.type));
  const conditions: PersistentVolumeClaimCondition[] = change.conditions.map(({ type, message }) => {
    const before = status.conditions?.find((c) => c.type === type && c.status === 'True');
    return { type, status: 'True', lastProbeTime: now, lastTransitionTime: before?.lastTransitionTime ?? now, ...(message ? { message } : {}) };
  });
  const statuses = { ...status.allocatedResourceStatuses };
  if (change.state === undefined) delete statuses[STORAGE];
  else statuses[STORAGE] = change.state;
  const next: PersistentVolumeClaimStatus = { ...status };
  const allConditions = [...kept, ...conditions];
  if (allConditions.length > 0) next.conditions = allConditions;
  else delete next.conditions;
  if (Object.keys(statuses).length > 0) next.allocatedResourceStatuses = statuses;
  else delete next.allocatedResourceStatuses;
  if (change.capacity !== undefined) next.capacity = { ...status.capacity, [STORAGE]: change.capacity };
  if (change.allocated !== undefined) next.allocatedResources = { ...status.allocatedResources, [STORAGE]: change.allocated };
  return next;
}

/** Same status apart from the conditions' probe times. */
function sameStatus(a: PersistentVolumeClaimStatus | undefined, b: PersistentVolumeClaimStatus): boolean {
  const strip = (s: PersistentVolumeClaimStatus | undefined): string => JSON.stringify({ ...s, conditions: (s?.conditions ?? []).map(({ lastProbeTime: _p, lastTransitionTime: _t, ...c }) => c) });
  return strip(a) === strip(b);
}

/** What the resizer has to do for a claim and its volume (pure: for the tests). */
export type ResizeDecision =
  | { action: 'none' }
  /** Call the driver (or not, without EXPAND_VOLUME) for this many bytes. */
  | { action: 'expand'; bytes: number }
  /** The PV already has the size (a crash after the PV write): record the outcome on the claim. */
  | { action: 'finish'; nodeExpansion: boolean };

export function resizeDecision(pvc: PersistentVolumeClaim, pv: PersistentVolume | undefined): ResizeDecision {
  if (pvc.status?.phase !== 'Bound' || !pvc.spec.volumeName || pv === undefined || pv.spec.csi === undefined || !isBoundToClaim(pv, pvc)) return { action: 'none' };
  const requested = bytesOf(pvc.spec.resources?.requests?.[STORAGE]);
  const current = bytesOf(pv.spec.capacity?.[STORAGE]);
  if (requested === undefined || current === undefined) return { action: 'none' };
  if (requested > current) return { action: 'expand', bytes: requested };
  const state = resizeStatusOf(pvc);
  const controllerUnfinished = state === RESIZE_STATUS.controllerInProgress || state === RESIZE_STATUS.controllerInfeasible || hasCondition(pvc, CONDITION.resizing) || hasCondition(pvc, CONDITION.controllerError);
  if (!controllerUnfinished) return { action: 'none' };
  return { action: 'finish', nodeExpansion: annotation(pv, ANN_PRE_RESIZE_CAPACITY) !== undefined };
}

/** On a claim being expanded: the driver expected to do it (kube-controller-manager's expand controller sets it). */
export const ANN_STORAGE_RESIZER = 'volume.kubernetes.io/storage-resizer';

export interface ResizerOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  /** Events of kube-controller-manager's expand controller (ExternalExpanding); default: recorder. */
  expandRecorder?: EventSink;
  logger: Logger;
  /** Deadline of one ControllerExpandVolume call. Default 60 s. */
  timeoutMs?: number;
  workers?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class Resizer {
  /** Keys: claims, "namespace/name". */
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly expandRecorder: EventSink;
  private readonly log: Logger;
  private readonly timeoutMs: number;

  constructor(options: ResizerOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.expandRecorder = options.expandRecorder ?? options.recorder;
    this.log = options.logger.child({ controller: 'csi-resizer' });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'csi-resizer', logger: options.logger, workers: options.workers ?? 4, sync: (key, signal) => this.sync(key, signal), ...backoff });
    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');
    const enqueue = (pvc: PersistentVolumeClaim): void => this.loop.enqueue(claimKey(pvc));
    this.pvcs.addEventHandler({
      add: enqueue,
      // Our own status writes must not bypass the retry backoff: a spec change (generation), a
      // phase change (bound now) or a resync is what brings a claim back.
      update: (old, pvc) => {
        if (old === pvc || old.metadata.generation !== pvc.metadata.generation || old.status?.phase !== pvc.status?.phase) enqueue(pvc);
      },
    });
    const volumeChanged = (pv: PersistentVolume): void => {
      const ref = pv.spec.claimRef;
      if (ref?.name) this.loop.enqueue(`${ref.namespace || 'default'}/${ref.name}`);
    };
    this.pvs.addEventHandler({ add: volumeChanged, update: (old, pv) => old.spec.capacity?.[STORAGE] !== pv.spec.capacity?.[STORAGE] && volumeChanged(pv) });
    this.registry.onChange(() => {
      for (const pvc of this.pvcs.list()) if (pvc.status?.phase === 'Bound') enqueue(pvc);
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async sync(key: string, signal: AbortSignal): Promise<SyncResult | void> {
    const [namespace = 'default', name = ''] = key.split('/');
    const pvc = this.pvcs.getByName(namespace, name);
    if (pvc === undefined) return;
    const pv = pvc.spec.volumeName ? this.pvs.get(pvc.spec.volumeName) : undefined;
    const decision = resizeDecision(pvc, pv);
    if (decision.action === 'none' || pv === undefined || pv.spec.csi === undefined) return;
    const driver = pv.spec.csi.driver;
    // Not ours (yet): registration requeues it.
    if (!this.registry.isRegistered(driver)) return;
    if (decision.action === 'finish') {
      this.finishClaim(key, decision.nodeExpansion, pv);
      return;
    }

    const pvName = pv.metadata.name ?? '';
    const requested = bytesToQuantity(decision.bytes);
    // The expand controller's part: a CSI volume is left to its external resizer, named on the claim.
    if (annotation(pvc, ANN_STORAGE_RESIZER) !== driver) {
      const [ns = 'default', n = ''] = key.split('/');
      const current = this.store.get('persistentvolumeclaims', ns, n);
      if (current !== undefined) this.store.update(withAnnotations(current, { [ANN_STORAGE_RESIZER]: driver }));
      this.expandRecorder.event(pvc, 'Normal', 'ExternalExpanding', 'waiting for an external controller to expand this PVC');
    }
    if (resizeStatusOf(pvc) !== RESIZE_STATUS.controllerInProgress || !hasCondition(pvc, CONDITION.resizing)) {
      this.recorder.event(pvc, 'Normal', 'Resizing', `External resizer is resizing volume ${pvName}`);
    }
    this.writeClaimStatus(key, (c) => resizeStatus(c, { conditions: [{ type: CONDITION.resizing }], state: RESIZE_STATUS.controllerInProgress, allocated: pvc.spec.resources?.requests?.[STORAGE] ?? requested }));
    // What we are about to do is on record before the driver acts.
    await this.store.flushed();
    if (signal.aborted) return;

    let newBytes: number;
    let nodeExpansion: boolean;
    try {
      ({ newBytes, nodeExpansion } = await this.expand(pv, decision.bytes, signal));
    } catch (err) {
      if (signal.aborted) return;
      const unavailable = driverUnavailable(err);
      if (unavailable !== undefined) return { unavailable };
      const message = describeError(err);
      this.recorder.event(pvc, 'Warning', 'VolumeResizeFailed', `resize volume "${pvName}" by resizer "${driver}" failed: ${message}`);
      const state = infeasible(err) ? RESIZE_STATUS.controllerInfeasible : RESIZE_STATUS.controllerInProgress;
      this.writeClaimStatus(key, (c) => resizeStatus(c, { conditions: [{ type: CONDITION.controllerError, message: `resize volume "${pvName}" by resizer "${driver}" failed: ${message}` }], state }));
      throw new Error(message, { cause: err });
    }
    this.log.debug({ claim: key, volume: pvName, bytes: newBytes, nodeExpansion }, 'ControllerExpandVolume done');

    // The PV first: a crash after it is finished from the PV by the next sync (decision "finish").
    for (let i = 0; ; i++) {
      const current = this.store.get('persistentvolumes', undefined, pvName);
      if (current === undefined) return;
      const oldCapacity = pvc.status?.capacity?.[STORAGE] ?? current.spec.capacity?.[STORAGE];
      const annotated = nodeExpansion && annotation(current, ANN_PRE_RESIZE_CAPACITY) === undefined && oldCapacity !== undefined ? withAnnotations(current, { [ANN_PRE_RESIZE_CAPACITY]: oldCapacity }) : current;
      try {
        this.store.update({ ...annotated, spec: { ...annotated.spec, capacity: { ...annotated.spec.capacity, [STORAGE]: bytesToQuantity(newBytes) } } });
        break;
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
    const updated = this.store.get('persistentvolumes', undefined, pvName);
    if (updated !== undefined) this.finishClaim(key, nodeExpansion, updated);
  }

  /** ControllerExpandVolume, or nothing for a driver that only expands on nodes. */
  private async expand(pv: PersistentVolume, bytes: number, signal: AbortSignal): Promise<{ newBytes: number; nodeExpansion: boolean }> {
    const csi = pv.spec.csi;
    if (csi === undefined) throw new Error(`persistentvolume "${pv.metadata.name ?? ''}" is not a CSI volume`);
    const caps = await this.registry.controllerCapabilities(csi.driver);
    if (!caps.has('EXPAND_VOLUME')) return { newBytes: bytes, nodeExpansion: true };
    const client = this.registry.controllerClient(csi.driver, this.volumeNode(pv));
    if (client === undefined) throw new Error(`CSI driver "${csi.driver}" is not registered`);
    const secrets = csi.controllerExpandSecretRef ? readSecretData(this.store, csi.controllerExpandSecretRef) : {};
    const res = await client.controller.ControllerExpandVolume(
      { volume_id: csi.volumeHandle, capacity_range: { required_bytes: bytes }, secrets, volume_capability: volumeCapabilityOf(pv, caps.has('SINGLE_NODE_MULTI_WRITER')) },
      { timeoutMs: this.timeoutMs, signal },
    );
    const returned = Number(res.capacity_bytes);
    return { newBytes: returned > 0 ? Math.max(returned, bytes) : bytes, nodeExpansion: res.node_expansion_required === true };
  }

  /** The claim after a controller expansion: waiting for a node, or done. */
  private finishClaim(key: string, nodeExpansion: boolean, pv: PersistentVolume): void {
    const pvName = pv.metadata.name ?? '';
    const capacity = pv.spec.capacity?.[STORAGE];
    const written = this.writeClaimStatus(key, (c) =>
      nodeExpansion
        ? resizeStatus(c, { conditions: [{ type: CONDITION.fsResizePending, message: FS_RESIZE_PENDING_MESSAGE }], state: RESIZE_STATUS.nodePending })
        : resizeStatus(c, { conditions: [], state: undefined, ...(capacity === undefined ? {} : { capacity }) }),
    );
    if (written === undefined) return;
    if (nodeExpansion) this.recorder.event(written, 'Normal', 'FileSystemResizeRequired', 'Require file system resize of volume on node');
    else this.recorder.event(written, 'Normal', 'VolumeResizeSuccessful', 'Resize volume succeeded');
    this.log.info({ claim: key, volume: pvName, capacity, nodeExpansion }, 'volume expanded by its controller');
  }

  /** Read-modify-write of a claim's status; returns the claim written (undefined: unchanged or gone). */
  private writeClaimStatus(key: string, change: (pvc: PersistentVolumeClaim) => PersistentVolumeClaimStatus): PersistentVolumeClaim | undefined {
    const [namespace = 'default', name = ''] = key.split('/');
    for (let i = 0; ; i++) {
      const current = this.store.get('persistentvolumeclaims', namespace, name);
      if (current === undefined) return undefined;
      const status = change(current);
      if (sameStatus(current.status, status)) return undefined;
      try {
        return this.store.update({ ...current, status }, { subresource: 'status' });
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
  }

  /** The node a volume lives on, for drivers whose controller runs per node: the node its affinity allows. */
  private volumeNode(pv: PersistentVolume): string | undefined {
    const driver = pv.spec.csi?.driver ?? '';
    if (!this.registry.controllerPerNode(driver)) return undefined;
    const required = pv.spec.nodeAffinity?.required;
    if (required === undefined) return undefined;
    for (const csiNode of this.registry.nodesWithDriver(driver)) {
      const name = csiNode.metadata.name ?? '';
      if (nodeSelectorMatches(required, name, this.store.get('nodes', undefined, name)?.metadata.labels)) return name;
    }
    return undefined;
  }
}

/** The external-resizer sidecar with kube-controller-manager's expand controller's part (registry.ts). */
export const CSI_RESIZER: ControllerDescriptor = {
  name: 'csi-resizer',
  aliases: ['persistentvolume-expander-controller', 'persistentvolume-expander'],
  description: 'external-resizer (with the expand controller): ControllerExpandVolume for grown claims, PVC resize conditions',
  init(ctx) {
    const c = new Resizer({
      store: ctx.store,
      informers: ctx.informers,
      registry: ctx.registry,
      recorder: ctx.events.recorder('external-resizer'),
      expandRecorder: ctx.events.recorder('volume_expand'),
      logger: ctx.logger,
      ...(ctx.csiTimeoutMs === undefined ? {} : { timeoutMs: ctx.csiTimeoutMs }),
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
