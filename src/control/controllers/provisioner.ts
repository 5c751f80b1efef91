// The provisioner: what external-provisioner does in a cluster, for every registered CSI driver at
// once. A claim the binder handed to a provisioner (annotation volume.kubernetes.io/storage-
// provisioner) whose class names a registered CSIDriver gets CreateVolume(name "pvc-<claim uid>")
// and then a PersistentVolume pre-bound to it; the binder completes the binding.
//
// Idempotent by construction: the volume name is derived from the claim's uid, so a retry after a
// timeout, a failed PV write or a crash asks the driver for the same volume again (CSI's
// CreateVolume is idempotent by name) and never makes a second one. CreateVolume is called only
// once the claim is committed (store.flushed()), so the uid it is named after survives a crash. Several CreateVolume calls run
// at once (one per worker, 16 by default); one claim is never worked on twice at a time.
//
// Every attempt ends in a ProvisioningState, external-provisioner's: a timeout, UNAVAILABLE, ABORTED
// or a cancelled call is `inBackground` (the volume may still be being made: the same node is asked
// again with the same name, even if the claim goes away meanwhile, and the volume then deleted);
// RESOURCE_EXHAUSTED for a claim with a selected node, or a selected node that is gone, is
// `reschedule`: the provisioner removes volume.kubernetes.io/selected-node, which is the only thing
// that makes the scheduler move a claim. Anything else is retried on the same node. Moving on any
// failure, as before, orphaned `pvc-<uid>` on node-1 when its timed-out CreateVolume finished after
// node-2 had made its own. For the same reason an Immediate claim of a driver whose nodes each make
// their own volumes gets its node written on it (selected-node, as external-provisioner's
// --node-deployment owner does) before its first CreateVolume: the driver's controller endpoint,
// where such claims went, is whichever node registered last and changes across restarts.
//
// It also deletes: the binder calls deleteVolume() for a released volume whose policy is Delete.
import { randomBytes } from 'node:crypto';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CsiClient } from '../../csi/client.js';
import { CsiError } from '../../csi/errors.js';
import type { CreateVolumeRequestInput, TopologyInput, TopologyRequirementInput, Volume, VolumeCapabilityInput } from '../../csi/types.js';
import { bytesToQuantity, isQuantity, quantityValue } from '../api/quantity.js';
import type {
  CSIPersistentVolumeSource,
  Node,
  NodeSelectorTerm,
  PersistentVolume,
  PersistentVolumeAccessMode,
  PersistentVolumeClaim,
  Secret,
  SecretReference,
} from '../api/types/core.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../api/types/snapshot.js';
import type { CSINode, StorageClass } from '../api/types/storage.js';
import { AlreadyExistsError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import type { VolumeDeleter } from './binder.js';
import { ControllerLoop, driverUnavailable, type SyncResult } from './controller.js';
import { dataSourceNode } from './data-source.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_PROVISIONED_BY,
  ANN_SELECTED_NODE,
  annotation,
  claimClass,
  claimKey,
  hasAnnotation,
  hasSelector,
  isDeleting,
  PV_PROTECTION_FINALIZER,
  storageProvisioner,
  ANN_BIND_COMPLETED,
  nodeSelectorMatches,
  holdsProvisioningFinalizer,
  PROVISIONING_FINALIZER,
  volumeNameFor,
} from './volume-util.js';

export { PROVISIONING_FINALIZER, volumeNameFor } from './volume-util.js';

const PREFIX = 'csi.storage.k8s.io/';
export const PARAM_FSTYPE = `${PREFIX}fstype`;

/** The secret kinds of a class's parameters, as external-provisioner names them. */
const SECRET_KINDS = {
  provisioner: 'provisioner-secret',
  controllerPublish: 'controller-publish-secret',
  nodeStage: 'node-stage-secret',
  nodePublish: 'node-publish-secret',
  controllerExpand: 'controller-expand-secret',
  nodeExpand: 'node-expand-secret',
} as const;
type SecretKind = keyof typeof SECRET_KINDS;

/** On a VolumeSnapshotContent: a restore may change the volume mode (Filesystem ↔ Block). */
const ANN_ALLOW_VOLUME_MODE_CHANGE = 'snapshot.storage.kubernetes.io/allow-volume-mode-change';

/** Set on every provisioned PV's volumeAttributes, as external-provisioner does. */
export const PROVISIONER_IDENTITY_ATTRIBUTE = 'storage.kubernetes.io/csiProvisionerIdentity';

export interface ProvisionerOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  logger: Logger;
  /** CreateVolume calls in flight at once. Default 16. */
  concurrency?: number;
  /** Deadline of one CreateVolume / DeleteVolume; a timed-out call is retried with the same name. Default 60 s. */
  timeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** A configuration problem of a claim or class: reported on the claim, retried with backoff. */
export class ProvisioningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvisioningError';
  }
}

/**
 * What a failed provisioning attempt means, as external-provisioner's ProvisioningState says it:
 *
 *   finished      the driver answered: nothing is in progress (retried with backoff, same node);
 *   inBackground  the volume may still be being made (timeout, UNAVAILABLE, ABORTED, cancelled,
 *                 or not a gRPC answer at all): ask the same node again, with the same name, and
 *                 never move the claim, or the volume made meanwhile would be orphaned;
 *   noChange      failed before the driver was asked (a secret, a data source…): whatever an
 *                 earlier attempt left in progress still is;
 *   reschedule    final for the selected node (RESOURCE_EXHAUSTED, or the node is gone): the
 *                 selected-node annotation is removed so that the scheduler picks a node again.
 */
export type ProvisioningState = 'finished' | 'inBackground' | 'noChange' | 'reschedule';

/**
 * external-provisioner's checkError(): a CreateVolume error's ProvisioningState. `mayReschedule`:
 * the driver has topology and the claim a selected node (WaitForFirstConsumer), so another node
 * may be asked.
 */
export function provisioningState(err: unknown, mayReschedule: boolean): ProvisioningState {
  if (!(err instanceof CsiError)) return 'inBackground';
  switch (err.code) {
    case grpcStatus.RESOURCE_EXHAUSTED:
      // CSI: "unable to provision in accessible_topology": nothing is in progress. It may work on
      // another node (reschedule); without one the attempt is final, retried later with backoff
      // (external-provisioner's checkError).
      return mayReschedule ? 'reschedule' : 'finished';
    case grpcStatus.CANCELLED:
    case grpcStatus.DEADLINE_EXCEEDED:
    case grpcStatus.UNAVAILABLE:
    case grpcStatus.ABORTED:
      return 'inBackground';
    default:
      return 'finished';
  }
}

/** What one provisioning attempt came to; `error` unless the volume was provisioned. */
export interface ProvisioningOutcome {
  state: ProvisioningState;
  error?: unknown;
  /** The claim as the attempt saw it (with the node it chose): what a call in background is finished with. */
  claim?: PersistentVolumeClaim;
}

/** How Kubernetes prints a gRPC failure: `rpc error: code = NotFound desc = …`. */
export function describeError(err: unknown): string {
  if (err instanceof CsiError) {
    const name = grpcStatus[err.code] ?? String(err.code);
    const pascal = name
      .toLowerCase()
      .split('_')
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join('');
    const code = pascal === 'Ok' ? 'OK' : pascal;
    return `rpc error: code = ${code} desc = ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Expands ${pvc.name}, ${pvc.namespace}, ${pv.name} and (where allowed) ${pvc.annotations['key']}. */
export function expandTemplate(template: string, vars: { pvName: string; pvc: PersistentVolumeClaim }, allow: { pvcName: boolean; annotations: boolean }, what: string): string {
  return template.replace(/\$\{([^}]*)\}/g, (_whole, expr: string) => {
    const e = expr.trim();
    if (e === 'pv.name') return vars.pvName;
    if (e === 'pvc.namespace') return vars.pvc.metadata.namespace ?? 'default';
    if (e === 'pvc.name' && allow.pvcName) return vars.pvc.metadata.name ?? '';
    const ann = /^pvc\.annotations\['([^']+)'\]$/.exec(e);
    if (ann && allow.annotations) {
      const value = vars.pvc.metadata.annotations?.[ann[1] ?? ''];
      if (value === undefined) throw new ProvisioningError(`${what}: the claim has no annotation "${ann[1] ?? ''}" for template "${template}"`);
      return value;
    }
    throw new ProvisioningError(`${what}: "${template}" uses \${${e}}, which is not supported here`);
  });
}

/** The secret reference a class gives for one kind of call, templates expanded; undefined if none. */
export function secretReference(sc: StorageClass, kind: SecretKind, pvName: string, pvc: PersistentVolumeClaim): SecretReference | undefined {
  const params = sc.parameters ?? {};
  const base = `${PREFIX}${SECRET_KINDS[kind]}`;
  const name = params[`${base}-name`];
  const namespace = params[`${base}-namespace`];
  if (name === undefined && namespace === undefined) return undefined;
  if (name === undefined || namespace === undefined) {
    throw new ProvisioningError(`StorageClass "${sc.metadata.name ?? ''}": ${base}-name and ${base}-namespace must be given together`);
  }
  // As external-provisioner: the provisioner secret may not use the claim's annotations (the claim's
  // author could point it at any secret); the others may.
  const allowAnnotations = kind !== 'provisioner';
  const resolvedName = expandTemplate(name, { pvName, pvc }, { pvcName: true, annotations: allowAnnotations }, `${base}-name`);
  const resolvedNamespace = expandTemplate(namespace, { pvName, pvc }, { pvcName: false, annotations: false }, `${base}-namespace`);
  if (!resolvedName || !resolvedNamespace) throw new ProvisioningError(`${base}-name/-namespace resolve to an empty name or namespace`);
  return { name: resolvedName, namespace: resolvedNamespace };
}

export function decodeSecret(secret: Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries(secret.stringData ?? {})) out[k] = v;
  return out;
}

/** The parameters a driver gets: the class's, without the csi.storage.k8s.io/ keys meant for us. */
export function driverParameters(sc: StorageClass): Record<string, string> {
  return Object.fromEntries(Object.entries(sc.parameters ?? {}).filter(([k]) => !k.startsWith(PREFIX)));
}

/** Kubernetes access modes as CSI access modes (external-provisioner's mapping). */
export function csiAccessMode(mode: PersistentVolumeAccessMode, singleNodeMultiWriter: boolean): NonNullable<VolumeCapabilityInput['access_mode']>['mode'] {
  switch (mode) {
    case 'ReadWriteOnce':
      return singleNodeMultiWriter ? 'SINGLE_NODE_MULTI_WRITER' : 'SINGLE_NODE_WRITER';
    case 'ReadWriteOncePod':
      return singleNodeMultiWriter ? 'SINGLE_NODE_SINGLE_WRITER' : 'SINGLE_NODE_WRITER';
    case 'ReadOnlyMany':
      return 'MULTI_NODE_READER_ONLY';
    case 'ReadWriteMany':
      return 'MULTI_NODE_MULTI_WRITER';
  }
}

/** A volume's accessible topology as PV node affinity: one term per segment. */
export function nodeAffinityFor(topology: readonly { segments: Record<string, string> }[]): PersistentVolume['spec']['nodeAffinity'] {
  const terms: NodeSelectorTerm[] = topology
    .filter((t) => Object.keys(t.segments).length > 0)
    .map((t) => ({
      matchExpressions: Object.entries(t.segments)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, value]) => ({ key, operator: 'In' as const, values: [value] })),
    }));
  return terms.length === 0 ? undefined : { required: { nodeSelectorTerms: terms } };
}

const IDX_PENDING_BY_PROVISIONER = 'provisioner:pending-by-provisioner';
const IDX_PENDING_BY_CLASS = 'provisioner:pending-by-class';
const IDX_PENDING_BY_SNAPSHOT = 'provisioner:pending-by-snapshot';

function isPending(pvc: PersistentVolumeClaim): boolean {
  return !pvc.spec.volumeName && !hasAnnotation(pvc, ANN_BIND_COMPLETED) && (pvc.status?.phase ?? 'Pending') === 'Pending';
}

export class Provisioner implements VolumeDeleter {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly classes: Informer<StorageClass>;
  private readonly nodes: Informer<Node>;
  private readonly csiNodes: Informer<CSINode>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  /**
   * Claims (by key, as they were) whose last CreateVolume may still be running on the driver (its ProvisioningState
   * was inBackground), as external-provisioner's claimsInProgress: kept across noChange attempts.
   */
  private readonly inBackground = new Map<string, PersistentVolumeClaim>();
  /** external-provisioner's identity: "<start ms>-<random>-<name>"; kept in volumeAttributes. */
  private readonly identity = `${Date.now()}-${randomBytes(2).readUInt16BE() % 10000}-stowage`;

  constructor(options: ProvisionerOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'csi-provisioner' });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.loop = new ControllerLoop({
      name: 'csi-provisioner',
      logger: options.logger,
      workers: options.concurrency ?? 16,
      sync: (key, signal) => this.sync(key, signal),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');
    this.classes = options.informers.for('storageclasses');
    this.nodes = options.informers.for('nodes');
    this.csiNodes = options.informers.for('csinodes');

    this.pvcs.addIndex(IDX_PENDING_BY_PROVISIONER, (pvc) => {
      const p = storageProvisioner(pvc);
      return p !== undefined && isPending(pvc) ? [p] : [];
    });
    this.pvcs.addIndex(IDX_PENDING_BY_CLASS, (pvc) => (storageProvisioner(pvc) !== undefined && isPending(pvc) ? [claimClass(pvc)] : []));
    const consider = (pvc: PersistentVolumeClaim): void => {
      if (this.wants(pvc) || holdsProvisioningFinalizer(pvc)) this.loop.enqueue(claimKey(pvc));
    };
    this.pvcs.addEventHandler({
      add: consider,
      update: (_old, pvc) => consider(pvc),
      // Its CreateVolume may still be running: finish it, and delete what it made.
      delete: (pvc) => this.inBackground.get(claimKey(pvc))?.metadata.uid === pvc.metadata.uid && this.loop.enqueue(claimKey(pvc)),
    });
    // A provisioned volume deleted before its claim was bound: provision again.
    this.pvs.addEventHandler({
      delete: (pv) => {
        const ref = pv.spec.claimRef;
        if (ref?.name) this.loop.enqueue(`${ref.namespace || 'default'}/${ref.name}`);
      },
    });
    this.registry.onChange((driver) => {
      for (const k of this.pvcs.indexKeys(IDX_PENDING_BY_PROVISIONER, driver)) this.loop.enqueue(k);
    });
    const classChanged = (sc: StorageClass): void => {
      for (const k of this.pvcs.indexKeys(IDX_PENDING_BY_CLASS, sc.metadata.name ?? '')) this.loop.enqueue(k);
    };
    this.classes.addEventHandler({ add: classChanged, update: (old, sc) => old !== sc && classChanged(sc) });
    // A snapshot that becomes ready: the claims restoring from it may go on.
    this.pvcs.addIndex(IDX_PENDING_BY_SNAPSHOT, (pvc) => {
      const ref = pvc.spec.dataSourceRef ?? pvc.spec.dataSource;
      return ref?.kind === 'VolumeSnapshot' && isPending(pvc) ? [`${pvc.metadata.namespace ?? 'default'}/${ref.name}`] : [];
    });
    options.informers.for('volumesnapshots').addEventHandler({
      update: (old, vs) => {
        if (old.status?.readyToUse === true || vs.status?.readyToUse !== true) return;
        for (const pvc of this.pvcs.byIndex(IDX_PENDING_BY_SNAPSHOT, `${vs.metadata.namespace ?? 'default'}/${vs.metadata.name ?? ''}`)) consider(pvc);
      },
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Cheap check, on every claim event: is this claim ours to provision now? */
  private wants(pvc: PersistentVolumeClaim): boolean {
    if (!isPending(pvc) || isDeleting(pvc)) return false;
    const provisioner = storageProvisioner(pvc);
    if (provisioner === undefined) return false;
    const sc = this.classes.get(claimClass(pvc));
    if (sc === undefined || sc.provisioner !== provisioner) return false;
    if (sc.volumeBindingMode === 'WaitForFirstConsumer' && !hasAnnotation(pvc, ANN_SELECTED_NODE)) return false;
    return this.pvs.get(volumeNameFor(pvc)) === undefined;
  }

  private async sync(key: string, signal: AbortSignal): Promise<SyncResult | void> {
    let pvc = this.pvcs.get(key);
    if (pvc !== undefined && holdsProvisioningFinalizer(pvc)) {
      const pv = this.pvs.get(volumeNameFor(pvc));
      // Provisioned: the PV (and its reclaim policy) answers for the volume from now on. The
      // binder's write that binds the claim to it lets the claim go; one deleted before that, or
      // bound by another binder, is let go here.
      if (pv !== undefined && pv.spec.claimRef?.uid === pvc.metadata.uid && (isDeleting(pvc) || pvc.spec.volumeName)) return this.releaseClaim(pvc);
      // Deleted before it got its PV: whatever CreateVolume made under its name is deleted first.
      if (isDeleting(pvc)) return this.abandon(key, pvc, signal);
    }
    const pending = this.inBackground.get(key);
    if (pending !== undefined && pvc?.metadata.uid === pending.metadata.uid && this.pvs.get(volumeNameFor(pending)) !== undefined) {
      // Provisioned meanwhile: nothing is in progress any more.
      this.inBackground.delete(key);
      return;
    }
    // A claim whose CreateVolume may still be running that went away, was recreated, or no longer
    // wants a volume (bound elsewhere, its selected node removed): the call is made again as it
    // was, so that the volume it made is found, then given a PV or deleted (created()).
    const finishing = pending !== undefined && (pvc === undefined || pvc.metadata.uid !== pending.metadata.uid || !this.wants(pvc));
    if (finishing) pvc = pending;
    else if (pvc === undefined || !this.wants(pvc)) return;
    const outcome = await this.provision(key, pvc, signal);
    switch (outcome.state) {
      case 'finished':
      case 'reschedule':
        this.inBackground.delete(key);
        // A claim recreated under the same name is provisioned next.
        if (finishing) this.loop.enqueue(key);
        break;
      case 'inBackground':
        this.inBackground.set(key, outcome.claim ?? pvc);
        break;
      case 'noChange':
        break;
    }
    if (outcome.state === 'reschedule') this.reschedule(key, pvc);
    if (outcome.error === undefined) return;
    if (outcome.state === 'reschedule') return;
    const unavailable = driverUnavailable(outcome.error);
    if (unavailable !== undefined) return { unavailable };
    throw outcome.error;
  }

  /**
   * Gives up the claim's selected node, as external-provisioner does on ProvisioningReschedule:
   * removes volume.kubernetes.io/selected-node, so that the scheduler picks a node again. The only
   * way a claim leaves its node.
   */
  private reschedule(key: string, pvc: PersistentVolumeClaim): void {
    const current = this.pvcs.get(key);
    if (current === undefined || current.metadata.uid !== pvc.metadata.uid || annotation(current, ANN_SELECTED_NODE) === undefined) return;
    const annotations = { ...current.metadata.annotations };
    delete annotations[ANN_SELECTED_NODE];
    this.store.update({ ...current, metadata: { ...current.metadata, annotations } });
    this.log.info({ claim: key, node: annotation(pvc, ANN_SELECTED_NODE) }, 'provisioning failed for good on the selected node; rescheduling');
  }

  /** One provisioning attempt: its ProvisioningState and, unless it succeeded, the error. */
  private async provision(key: string, claimed: PersistentVolumeClaim, signal: AbortSignal): Promise<ProvisioningOutcome> {
    let pvc = claimed;
    const sc = this.classes.get(claimClass(pvc));
    if (sc === undefined) return { state: 'noChange' };
    const driverName = sc.provisioner;
    // A driver whose nodes each make their own volumes: a claim without a selected node is given one
    // here, before its first CreateVolume, and keeps it (see ownerNode()).
    const owned = annotation(pvc, ANN_SELECTED_NODE) === undefined ? this.ownerNode(pvc, driverName) : undefined;
    if (owned !== undefined) pvc = { ...pvc, metadata: { ...pvc.metadata, annotations: { ...pvc.metadata.annotations, [ANN_SELECTED_NODE]: owned } } };
    const selectedNode = annotation(pvc, ANN_SELECTED_NODE);
    const className = sc.metadata.name ?? '';
    const failed = (state: ProvisioningState, err: unknown, message = `failed to provision volume with StorageClass "${className}": ${describeError(err)}`): ProvisioningOutcome => {
      this.recorder.event(pvc, 'Warning', 'ProvisioningFailed', message);
      return { state, error: err, claim: pvc };
    };
    // As external-provisioner: a selected node that no longer exists (Node or CSINode) is given up.
    if (selectedNode !== undefined && this.nodes.get(selectedNode) === undefined) {
      return failed('reschedule', new ProvisioningError(`nodes "${selectedNode}" not found`), `failed to get target node: nodes "${selectedNode}" not found`);
    }
    if (selectedNode !== undefined && this.csiNodes.get(selectedNode) === undefined && this.registry.nodesWithDriver(driverName).length > 0) {
      return failed('reschedule', new ProvisioningError(`csinodes.storage.k8s.io "${selectedNode}" not found`), `failed to provision volume with StorageClass "${className}": error generating accessibility requirements: csinodes.storage.k8s.io "${selectedNode}" not found`);
    }
    // A restore or clone of a volume served per node (local) is made on the node holding its source.
    const client = this.registry.controllerClient(driverName, selectedNode ?? this.dataSourceNode(pvc, driverName));
    // Not registered: the binder says so on the claim; registration requeues the claim.
    if (client === undefined) return { state: 'noChange' };
    const pvName = volumeNameFor(pvc);

    this.recorder.event(pvc, 'Normal', 'Provisioning', `External provisioner is provisioning volume for claim "${claimKey(pvc)}"`);
    let request: CreateVolumeRequestInput;
    let provisionerSecretRef: SecretReference | undefined;
    try {
      if (hasSelector(pvc)) throw new ProvisioningError('claim Selector is not supported');
      ({ request, provisionerSecretRef } = await this.createRequest(pvc, sc, driverName, pvName));
    } catch (err) {
      if (signal.aborted) return { state: 'noChange' };
      // Nothing was asked of the driver this time: an earlier attempt still in progress still is.
      return failed('noChange', err);
    }

    // The claim records that a volume may now exist under this name (PROVISIONING_FINALIZER), and,
    // when this attempt chose it, on which node (selected-node).
    if (!isDeleting(pvc) && (!holdsProvisioningFinalizer(pvc) || owned !== undefined)) {
      const current = this.store.get('persistentvolumeclaims', pvc.metadata.namespace, pvc.metadata.name ?? '');
      if (current === undefined || current.metadata.uid !== pvc.metadata.uid || isDeleting(current)) return { state: 'noChange' };
      const pinned = annotation(current, ANN_SELECTED_NODE);
      // Another writer chose a node meanwhile: its update brings the claim back here.
      if (owned !== undefined && pinned !== undefined && pinned !== owned) return { state: 'noChange' };
      if (!holdsProvisioningFinalizer(current) || (owned !== undefined && pinned === undefined)) {
        this.store.update<PersistentVolumeClaim>({
          ...current,
          metadata: {
            ...current.metadata,
            ...(owned === undefined ? {} : { annotations: { ...current.metadata.annotations, [ANN_SELECTED_NODE]: owned } }),
            finalizers: holdsProvisioningFinalizer(current) ? current.metadata.finalizers : [...(current.metadata.finalizers ?? []), PROVISIONING_FINALIZER],
          },
        });
      }
    }
    // The store commits in groups (store.ts): the claim this volume is named after (its uid), its
    // finalizer, its node and the writes that handed it to us must be durable before the volume
    // exists, or a crash could leave a volume named after a claim that never was, that nothing
    // remembers, or that the next attempt looks for on another node.
    await this.store.flushed();
    if (signal.aborted) return { state: 'noChange' };

    let volume: Volume;
    try {
      const response = await client.controller.CreateVolume(request, { timeoutMs: this.timeoutMs, signal });
      if (response.volume === null || !response.volume.volume_id) throw new ProvisioningError('the driver returned no volume');
      volume = response.volume;
    } catch (err) {
      // Stopping: the call was cancelled, and may be running still; the next run asks again.
      if (signal.aborted) return { state: 'inBackground', claim: pvc };
      // Another node may be asked only if the driver has topology (the request named the
      // selected node's) and the claim waits for its first consumer (the scheduler selected its
      // node and chooses again). A node this provisioner chose for an Immediate claim is kept:
      // nothing would choose better, and RESOURCE_EXHAUSTED is retried there with backoff.
      const mayReschedule = selectedNode !== undefined && request.accessibility_requirements !== undefined && sc.volumeBindingMode === 'WaitForFirstConsumer';
      return failed(provisioningState(err, mayReschedule), err);
    }
    try {
      await this.created(key, pvc, sc, driverName, pvName, client, request, provisionerSecretRef, volume, signal);
    } catch (err) {
      // The volume exists but has no PV yet (or could not be deleted again): it must be asked for
      // again even if the claim goes meanwhile, as a call in progress would be.
      return { state: 'inBackground', error: err, claim: pvc };
    }
    return { state: 'finished' };
  }

  /**
   * The node an Immediate claim of a driver whose nodes each serve their own volumes
   * (CONTROLLER_PER_NODE_ANNOTATION) is made on, as external-provisioner's --node-deployment
   * instance that becomes the claim's owner sets selected-node to its own node: the node holding
   * its data source, else the one behind the driver's controller endpoint (where such claims have
   * always gone), else the first node listing the driver. Written on the claim before the first
   * CreateVolume, so a retry, after a timeout or a restart, asks the same node: the controller
   * endpoint is whichever node registered last, which a restart or a node joining changes.
   * Undefined for other drivers (one Controller service for all) and claims that already have a node.
   */
  private ownerNode(pvc: PersistentVolumeClaim, driverName: string): string | undefined {
    if (!this.registry.controllerPerNode(driverName)) return undefined;
    const source = this.dataSourceNode(pvc, driverName);
    if (source !== undefined) return source;
    const endpoint = this.registry.controllerEndpoint(driverName);
    const candidates = this.registry
      .nodesWithDriver(driverName)
      .map((n) => n.metadata.name ?? '')
      .filter((n) => n !== '' && this.nodes.get(n) !== undefined)
      .sort();
    return candidates.find((n) => this.registry.nodeEndpoint(driverName, n) === endpoint) ?? candidates[0];
  }

  /** CreateVolume succeeded: the PersistentVolume, or the volume deleted again if the claim no longer wants it. */
  private async created(
    key: string,
    pvc: PersistentVolumeClaim,
    sc: StorageClass,
    driverName: string,
    pvName: string,
    client: CsiClient,
    request: CreateVolumeRequestInput,
    provisionerSecretRef: SecretReference | undefined,
    volume: Volume,
    signal: AbortSignal,
  ): Promise<void> {
    const className = sc.metadata.name ?? '';
    const requestedBytes = Number(request.capacity_range?.required_bytes ?? 0);
    const secrets = request.secrets ?? {};
    const current = this.store.get('persistentvolumeclaims', pvc.metadata.namespace, pvc.metadata.name ?? '');
    if (current === undefined || current.metadata.uid !== pvc.metadata.uid || isDeleting(current) || (current.spec.volumeName && current.spec.volumeName !== pvName)) {
      // Deleted, recreated or bound elsewhere while the driver worked: don't leave the volume behind.
      this.log.info({ claim: key, volumeId: volume.volume_id }, 'claim gone or bound elsewhere during provisioning; deleting the new volume');
      // Only once the change that makes it unwanted is durable.
      await this.store.flushed();
      await client.controller.DeleteVolume({ volume_id: volume.volume_id, secrets }, { timeoutMs: this.timeoutMs, signal });
      if (current !== undefined && current.metadata.uid === pvc.metadata.uid) this.releaseClaim(current);
      return;
    }
    if (volume.capacity_bytes > 0 && volume.capacity_bytes < requestedBytes) {
      await client.controller.DeleteVolume({ volume_id: volume.volume_id, secrets }, { timeoutMs: this.timeoutMs, signal });
      const message = `created volume capacity ${volume.capacity_bytes} less than requested capacity ${requestedBytes}`;
      this.recorder.event(pvc, 'Warning', 'ProvisioningFailed', `failed to provision volume with StorageClass "${className}": ${message}`);
      throw new ProvisioningError(message);
    }

    const pv = this.persistentVolume(current, sc, driverName, pvName, volume, requestedBytes, provisionerSecretRef);
    try {
      this.store.create(pv);
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) {
        this.recorder.event(pvc, 'Warning', 'ProvisioningFailed', `failed to create PersistentVolume "${pvName}": ${describeError(err)}`);
        throw err;
      }
      const existing = this.pvs.get(pvName);
      if (existing?.spec.claimRef?.uid !== pvc.metadata.uid) throw err;
    }
    this.recorder.event(current, 'Normal', 'ProvisioningSucceeded', `Successfully provisioned volume ${pvName}`);
    this.log.debug({ claim: key, volume: pvName, volumeId: volume.volume_id }, 'provisioned');
    // The PV is written: it answers for the volume now. The claim keeps PROVISIONING_FINALIZER
    // until the binder binds it to the PV, in that same write (one write less per claim); the PV
    // commits before it, so no crash leaves a claim let go with no PV.
  }

  /** Drops PROVISIONING_FINALIZER from the claim as it is in the store now (a conflict is retried). */
  private releaseClaim(pvc: PersistentVolumeClaim): void {
    const current = this.store.get('persistentvolumeclaims', pvc.metadata.namespace, pvc.metadata.name ?? '');
    if (current === undefined || current.metadata.uid !== pvc.metadata.uid || !holdsProvisioningFinalizer(current)) return;
    this.store.update<PersistentVolumeClaim>({ ...current, metadata: { ...current.metadata, finalizers: (current.metadata.finalizers ?? []).filter((f) => f !== PROVISIONING_FINALIZER) } });
  }

  /**
   * A claim deleted before its PV existed, whose CreateVolume may have made a volume: the call is
   * made again by the same name (the driver answers with what it made, or makes it), the volume is
   * deleted (created() sees the claim going), and the claim let go. A final refusal means nothing
   * exists under the name; a class gone leaves nothing to ask.
   */
  private async abandon(key: string, pvc: PersistentVolumeClaim, signal: AbortSignal): Promise<SyncResult | void> {
    this.inBackground.delete(key);
    if (this.classes.get(claimClass(pvc)) === undefined) {
      this.recorder.event(pvc, 'Warning', 'ProvisioningFailed', `StorageClass "${claimClass(pvc)}" not found: cannot check for a volume made for the deleted claim`);
      return this.releaseClaim(pvc);
    }
    const outcome = await this.provision(key, pvc, signal);
    if (outcome.state === 'finished' || outcome.state === 'reschedule') {
      // Success deleted the volume and let go in created(); a final error made nothing.
      if (outcome.error !== undefined && !signal.aborted) this.releaseClaim(pvc);
      return;
    }
    if (outcome.error === undefined) return { requeue: true };
    const unavailable = driverUnavailable(outcome.error);
    if (unavailable !== undefined) return { unavailable };
    throw outcome.error;
  }

  private async createRequest(
    pvc: PersistentVolumeClaim,
    sc: StorageClass,
    driverName: string,
    pvName: string,
  ): Promise<{ request: CreateVolumeRequestInput; provisionerSecretRef: SecretReference | undefined }> {
    const storage = pvc.spec.resources?.requests?.['storage'];
    if (storage === undefined || !isQuantity(storage)) throw new ProvisioningError('the claim requests no storage size');
    const limit = pvc.spec.resources?.limits?.['storage'];
    const block = (pvc.spec.volumeMode ?? 'Filesystem') === 'Block';
    const fsType = block ? '' : (sc.parameters?.[PARAM_FSTYPE] ?? '');
    const capabilities = await this.registry.controllerCapabilities(driverName);
    const multiWriter = capabilities.has('SINGLE_NODE_MULTI_WRITER');
    const accessModes = pvc.spec.accessModes ?? [];
    if (accessModes.length === 0) throw new ProvisioningError('the claim has no access modes');
    const volumeCapabilities: VolumeCapabilityInput[] = accessModes.map((mode) => ({
      ...(block ? { block: {} } : { mount: { fs_type: fsType, mount_flags: sc.mountOptions ?? [] } }),
      access_mode: { mode: csiAccessMode(mode, multiWriter) },
    }));
    const provisionerSecretRef = secretReference(sc, 'provisioner', pvName, pvc);
    const secrets = provisionerSecretRef === undefined ? {} : this.readSecret(provisionerSecretRef);
    const source = this.contentSource(pvc, driverName);
    const topology = this.topologyRequirement(pvc, sc, driverName);
    const request: CreateVolumeRequestInput = {
      name: pvName,
      capacity_range: { required_bytes: quantityValue(storage), limit_bytes: limit !== undefined && isQuantity(limit) ? quantityValue(limit) : 0 },
      volume_capabilities: volumeCapabilities,
      parameters: driverParameters(sc),
      secrets,
      ...(topology === undefined ? {} : { accessibility_requirements: topology }),
      ...(source === undefined ? {} : { volume_content_source: source }),
    };
    return { request, provisionerSecretRef };
  }

  private readSecret(ref: SecretReference): Record<string, string> {
    const secret = this.store.get('secrets', ref.namespace, ref.name ?? '');
    if (secret === undefined) throw new ProvisioningError(`error getting secret ${ref.name ?? ''} in namespace ${ref.namespace ?? ''}: secrets "${ref.name ?? ''}" not found`);
    return decodeSecret(secret);
  }

  /** Where the volume must be accessible from: the selected node, the class's allowed topologies, or any node with the driver. */
  private topologyRequirement(pvc: PersistentVolumeClaim, sc: StorageClass, driverName: string): TopologyRequirementInput | undefined {
    const sourceNode = this.dataSourceNode(pvc, driverName);
    const picked = annotation(pvc, ANN_SELECTED_NODE);
    if (picked !== undefined && sourceNode !== undefined && picked !== sourceNode) {
      throw new ProvisioningError(`the data source of this claim is on node "${sourceNode}": it can only be restored or cloned there, not on the selected node "${picked}"`);
    }
    const selected = picked ?? sourceNode;
    if (selected !== undefined) {
      const entry = this.registry.nodeDriver(driverName, selected);
      if (entry === undefined) {
        // A driver no node lists has no topology; one that other nodes list must be on this one.
        if (this.registry.nodesWithDriver(driverName).length === 0) return undefined;
        throw new ProvisioningError(`driver "${driverName}" is not registered on the selected node "${selected}" (no entry in CSINode "${selected}")`);
      }
      const keys = entry.topologyKeys ?? [];
      if (keys.length === 0) return undefined;
      const labels = this.nodes.get(selected)?.metadata.labels ?? {};
      const segments: Record<string, string> = {};
      for (const k of keys) {
        const value = labels[k];
        if (value === undefined) throw new ProvisioningError(`topology labels from selected node "${selected}" do not match topology keys from CSINode: label ${k} missing`);
        segments[k] = value;
      }
      return { requisite: [{ segments }], preferred: [{ segments }] };
    }
    const allowed = sc.allowedTopologies ?? [];
    if (allowed.length > 0) {
      const segs: TopologyInput[] = [];
      for (const term of allowed) {
        let partial: Record<string, string>[] = [{}];
        for (const expr of term.matchLabelExpressions ?? []) partial = partial.flatMap((p) => expr.values.map((v) => ({ ...p, [expr.key]: v })));
        for (const p of partial) if (Object.keys(p).length > 0) segs.push({ segments: p });
      }
      return segs.length === 0 ? undefined : { requisite: segs, preferred: segs };
    }
    // Immediate binding: anywhere the driver runs.
    const seen = new Set<string>();
    const segs: TopologyInput[] = [];
    for (const csiNode of this.registry.nodesWithDriver(driverName)) {
      const entry = csiNode.spec.drivers.find((d) => d.name === driverName);
      const keys = entry?.topologyKeys ?? [];
      if (keys.length === 0) continue;
      const labels = this.nodes.get(csiNode.metadata.name ?? '')?.metadata.labels ?? {};
      if (!keys.every((k) => labels[k] !== undefined)) continue;
      const segments = Object.fromEntries(keys.map((k) => [k, labels[k] ?? '']));
      const id = JSON.stringify(Object.entries(segments).sort());
      if (seen.has(id)) continue;
      seen.add(id);
      segs.push({ segments });
    }
    return segs.length === 0 ? undefined : { requisite: segs, preferred: segs };
  }

  /** A clone's source volume or a restore's snapshot, from spec.dataSourceRef / dataSource. */
  private contentSource(pvc: PersistentVolumeClaim, driverName: string): CreateVolumeRequestInput['volume_content_source'] {
    const ref = pvc.spec.dataSourceRef ?? pvc.spec.dataSource;
    if (ref === undefined) return undefined;
    const ns = pvc.metadata.namespace ?? 'default';
    if (ref.namespace && ref.namespace !== ns) throw new ProvisioningError('cross-namespace data sources are not supported');
    if (ref.kind === 'PersistentVolumeClaim' && !ref.apiGroup) {
      const source = this.pvcs.getByName(ns, ref.name);
      if (source === undefined) throw new ProvisioningError(`source claim "${ref.name}" not found`);
      if (source.status?.phase !== 'Bound' || !source.spec.volumeName) throw new ProvisioningError(`source claim "${ref.name}" is not bound`);
      const pv = this.pvs.get(source.spec.volumeName);
      if (pv?.spec.csi === undefined) throw new ProvisioningError(`source claim "${ref.name}" has no CSI volume`);
      if (pv.spec.csi.driver !== driverName) throw new ProvisioningError(`source claim "${ref.name}" is on driver ${pv.spec.csi.driver}, not ${driverName}`);
      if (claimClass(source) !== claimClass(pvc)) throw new ProvisioningError(`source claim "${ref.name}" has another StorageClass`);
      const sourceSize = source.status?.capacity?.['storage'] ?? pv.spec.capacity?.['storage'];
      if (sourceSize !== undefined && isQuantity(sourceSize)) this.checkRestoreSize(pvc, quantityValue(sourceSize), `the size ${quantityValue(sourceSize)} for the source PVC ${ref.name}`);
      return { volume: { volume_id: pv.spec.csi.volumeHandle } };
    }
    if (ref.kind === 'VolumeSnapshot' && ref.apiGroup === 'snapshot.storage.k8s.io') {
      const snap = this.store.get('volumesnapshots', ns, ref.name) as VolumeSnapshot | undefined;
      if (snap === undefined) throw new ProvisioningError(`snapshot "${ref.name}" not found`);
      if (snap.status?.readyToUse !== true || !snap.status.boundVolumeSnapshotContentName) throw new ProvisioningError(`snapshot "${ref.name}" is not ready to use`);
      const content = this.store.get('volumesnapshotcontents', undefined, snap.status.boundVolumeSnapshotContentName) as VolumeSnapshotContent | undefined;
      const handle = content?.status?.snapshotHandle ?? content?.spec.source.snapshotHandle;
      if (content === undefined || !handle) throw new ProvisioningError(`snapshot "${ref.name}" has no snapshot handle`);
      if (content.spec.driver !== driverName) throw new ProvisioningError(`snapshot "${ref.name}" was taken by driver ${content.spec.driver}, not ${driverName}`);
      const mode = pvc.spec.volumeMode ?? 'Filesystem';
      if (content.spec.sourceVolumeMode !== undefined && content.spec.sourceVolumeMode !== mode && content.metadata.annotations?.[ANN_ALLOW_VOLUME_MODE_CHANGE] !== 'true') {
        throw new ProvisioningError(`requested volume ${claimKey(pvc)} modifies the mode of the source volume but does not have permission to do so. ${ANN_ALLOW_VOLUME_MODE_CHANGE} annotation is not present on snapshotcontent ${content.metadata.name ?? ''}`);
      }
      if (content.status?.restoreSize !== undefined) this.checkRestoreSize(pvc, content.status.restoreSize, `the size ${content.status.restoreSize} for the source snapshot ${ref.name}`);
      return { snapshot: { snapshot_id: handle } };
    }
    throw new ProvisioningError(`data source ${ref.apiGroup ? `${ref.apiGroup}/` : ''}${ref.kind} is not supported`);
  }

  /** A claim smaller than its data source is refused (external-provisioner's words). */
  private checkRestoreSize(pvc: PersistentVolumeClaim, sourceBytes: number, what: string): void {
    const storage = pvc.spec.resources?.requests?.['storage'];
    const requested = storage !== undefined && isQuantity(storage) ? quantityValue(storage) : 0;
    if (requested < sourceBytes) throw new ProvisioningError(`requested volume size ${requested} is less than ${what}`);
  }

  private dataSourceNode(pvc: PersistentVolumeClaim, driverName: string): string | undefined {
    return dataSourceNode(pvc, driverName, this.registry, this.store);
  }

  private persistentVolume(
    pvc: PersistentVolumeClaim,
    sc: StorageClass,
    driverName: string,
    pvName: string,
    volume: Volume,
    requestedBytes: number,
    provisionerSecretRef: SecretReference | undefined,
  ): PersistentVolume {
    const block = (pvc.spec.volumeMode ?? 'Filesystem') === 'Block';
    const fsType = block ? '' : (sc.parameters?.[PARAM_FSTYPE] ?? '');
    const refs: Partial<Record<SecretKind, SecretReference>> = {};
    for (const kind of ['controllerPublish', 'nodeStage', 'nodePublish', 'controllerExpand', 'nodeExpand'] as const) {
      const ref = secretReference(sc, kind, pvName, pvc);
      if (ref !== undefined) refs[kind] = ref;
    }
    const csi: CSIPersistentVolumeSource = {
      driver: driverName,
      volumeHandle: volume.volume_id,
      ...(fsType ? { fsType } : {}),
      volumeAttributes: { ...volume.volume_context, [PROVISIONER_IDENTITY_ATTRIBUTE]: this.identity },
      ...(refs.controllerPublish ? { controllerPublishSecretRef: refs.controllerPublish } : {}),
      ...(refs.nodeStage ? { nodeStageSecretRef: refs.nodeStage } : {}),
      ...(refs.nodePublish ? { nodePublishSecretRef: refs.nodePublish } : {}),
      ...(refs.controllerExpand ? { controllerExpandSecretRef: refs.controllerExpand } : {}),
      ...(refs.nodeExpand ? { nodeExpandSecretRef: refs.nodeExpand } : {}),
    };
    const annotations: Record<string, string> = { [ANN_PROVISIONED_BY]: driverName };
    if (provisionerSecretRef !== undefined) {
      annotations[ANN_DELETION_SECRET_NAME] = provisionerSecretRef.name ?? '';
      annotations[ANN_DELETION_SECRET_NAMESPACE] = provisionerSecretRef.namespace ?? '';
    }
    const bytes = volume.capacity_bytes > 0 ? volume.capacity_bytes : requestedBytes;
    const nodeAffinity = nodeAffinityFor(volume.accessible_topology);
    return {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: pvName, annotations, finalizers: [PV_PROTECTION_FINALIZER] },
      spec: {
        capacity: { storage: bytesToQuantity(bytes) },
        accessModes: [...(pvc.spec.accessModes ?? [])],
        claimRef: {
          kind: 'PersistentVolumeClaim',
          namespace: pvc.metadata.namespace ?? 'default',
          name: pvc.metadata.name ?? '',
          uid: pvc.metadata.uid ?? '',
          apiVersion: 'v1',
          resourceVersion: pvc.metadata.resourceVersion ?? '',
        },
        persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? 'Delete',
        storageClassName: sc.metadata.name ?? '',
        ...(sc.mountOptions && sc.mountOptions.length > 0 ? { mountOptions: [...sc.mountOptions] } : {}),
        volumeMode: block ? 'Block' : 'Filesystem',
        csi,
        ...(nodeAffinity === undefined ? {} : { nodeAffinity }),
      },
    };
  }

  // ---------------------------------------------------------------- deletion (VolumeDeleter)

  canDelete(pv: PersistentVolume): 'yes' | 'unregistered' | 'no' {
    const driver = pv.spec.csi?.driver;
    if (driver === undefined) return 'no';
    return this.registry.isRegistered(driver) ? 'yes' : 'unregistered';
  }

  /** The node a volume lives on, for drivers whose controller runs per node: the node its affinity allows. */
  private volumeNode(pv: PersistentVolume): string | undefined {
    const driver = pv.spec.csi?.driver ?? '';
    if (!this.registry.controllerPerNode(driver)) return undefined;
    const required = pv.spec.nodeAffinity?.required;
    if (required === undefined) return undefined;
    for (const csiNode of this.registry.nodesWithDriver(driver)) {
      const name = csiNode.metadata.name ?? '';
      const node = this.store.get('nodes', undefined, name);
      if (nodeSelectorMatches(required, name, node?.metadata.labels)) return name;
    }
    return undefined;
  }

  /** DeleteVolume for a released volume, with the secret recorded when it was provisioned. */
  async deleteVolume(pv: PersistentVolume, signal: AbortSignal): Promise<void> {
    const csi = pv.spec.csi;
    if (csi === undefined) throw new Error(`volume ${pv.metadata.name ?? ''} is not a CSI volume`);
    const client: CsiClient | undefined = this.registry.controllerClient(csi.driver, this.volumeNode(pv));
    if (client === undefined) throw new Error(`CSI driver "${csi.driver}" is not registered`);
    let secrets: Record<string, string> = {};
    const name = annotation(pv, ANN_DELETION_SECRET_NAME);
    const namespace = annotation(pv, ANN_DELETION_SECRET_NAMESPACE);
    if (name && namespace) secrets = this.readSecret({ name, namespace });
    try {
      await client.controller.DeleteVolume({ volume_id: csi.volumeHandle, secrets }, { timeoutMs: this.timeoutMs, signal });
    } catch (err) {
      throw new Error(describeError(err), { cause: err });
    }
    this.log.debug({ volume: pv.metadata.name, volumeId: csi.volumeHandle }, 'DeleteVolume done');
  }
}

/** The external-provisioner sidecar (registry.ts); it also deletes released volumes for the binder. */
export const CSI_PROVISIONER: ControllerDescriptor = {
  name: 'csi-provisioner',
  description: 'external-provisioner: CreateVolume and a PersistentVolume for claims, DeleteVolume for released volumes',
  init(ctx) {
    const p = new Provisioner({
      store: ctx.store,
      informers: ctx.informers,
      registry: ctx.registry,
      recorder: ctx.events.recorder('stowage-csi-provisioner'),
      logger: ctx.logger,
      ...(ctx.concurrency === undefined ? {} : { concurrency: ctx.concurrency }),
      ...(ctx.csiTimeoutMs === undefined ? {} : { timeoutMs: ctx.csiTimeoutMs }),
      ...ctx.backoff,
    });
    ctx.provideDeleter(p);
    return { loops: [p.loop], start: () => p.start(), stop: () => p.stop() };
  },
};
