// A volume-aware pod scheduler: the parts of kube-scheduler a storage control plane needs, until a
// full scheduler exists. A pod with no spec.nodeName (and schedulerName "default-scheduler" or
// empty) gets a node:
//
//   PreFilter  every PVC the pod names exists and is not being deleted; an unbound claim whose class
//              binds Immediately makes the pod wait ("pod has unbound immediate PersistentVolumeClaims").
//   Filter     per node, first failure wins: unschedulable, untolerated NoSchedule/NoExecute taint,
//              nodeSelector / required node affinity, a ReadWriteOncePod claim another placed pod
//              already uses (VolumeRestrictions), CSI volume limits (CSINode allocatable.count),
//              and volume binding: a bound claim's PV node affinity; an unbound WaitForFirstConsumer
//              claim needs an Available PV that fits the node, or its class's provisioner listed in
//              the node's CSINode, the class's allowedTopologies matched and, for a driver whose
//              CSIDriver sets storageCapacity, the driver's GetCapacity for the node admitting the
//              claim's size (storage-capacity.ts: what CSIStorageCapacity objects tell kube-scheduler).
//   Score      fewest pods on the node, then its name.
//   PreBind    unbound WaitForFirstConsumer claims get volume.kubernetes.io/selected-node=<node>
//              (the binder and provisioner take it from there); the pod is bound only once all its
//              claims are Bound.
//   Bind       the pods/binding subresource (store.bindPod): nodeName is set only if still empty.
//
// Messages are Kubernetes': "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2
// node(s) didn't match Pod's node affinity/selector." on the PodScheduled=False condition and a
// FailedScheduling event; "Successfully assigned ns/pod to node" as the Scheduled event.
//
// A claim keeps its selected node for as long as it has one: a CreateVolume that failed there may
// still be running (a timeout), and a volume made meanwhile elsewhere would orphan it. It moves only
// when its selected node is gone, or when the provisioner gave the node up (ProvisioningState
// reschedule: RESOURCE_EXHAUSTED, and only then, external-provisioner removes the selected-node
// annotation). The scheduler sees that removal on the claim: the node is avoided for that claim for
// a while and the claim's pods get another feasible node; with no other node, the same one is
// selected again after a backoff (kube-scheduler's pod backoff: 1 s doubling to 10 s), so a pod
// neither flaps between nodes nor hammers a full one.
//
// Level-triggered: a sync recomputes everything from the informers; the only memory is which pods
// wait for their claims on which node (so that counts include them) and recent provisioning
// failures, and losing either only costs a less even spread or one more retry.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { ephemeralClaimConflict, podVolumeClaims } from '../api/pod-claims.js';
import { rfc3339 } from '../api/time.js';
import type { Node, NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod, Taint, Toleration } from '../api/types/core.js';
import type { StorageClass, TopologySelectorTerm } from '../api/types/storage.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import { dataSourceNode } from './data-source.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import { type Informer, type InformerFactory, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { podIsFinished } from './protection.js';
import { quantityValue } from '../api/quantity.js';
import { capacityAdmits, StorageCapacity } from './storage-capacity.js';
import {
  ANN_SELECTED_NODE,
  annotation,
  claimClass,
  claimKey,
  isBoundToClaim,
  isDeleting,
  NO_PROVISIONER,
  nodeSelectorMatches,
  selectorAccepts,
  volumeFitsNode,
  volumeSatisfiesClaim,
} from './volume-util.js';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';

// Kubernetes' reasons (kube-scheduler's plugins), counted per node in the FitError message.
export const REASON_UNSCHEDULABLE = 'node(s) were unschedulable';
export const REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector";
export const REASON_VOLUME_NODE_CONFLICT = 'node(s) had volume node affinity conflict';
export const REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind";
export const REASON_PV_NOT_EXIST = 'node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)';
export const REASON_MAX_VOLUME_COUNT = 'node(s) exceed max volume count';
export const REASON_NOT_ENOUGH_SPACE = 'node(s) did not have enough free storage';
/** VolumeRestrictions: a ReadWriteOncePod claim is already used by a pod on a node. */
export const REASON_RWOP_CONFLICT = 'node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode';
/** Ours (no kube-scheduler counterpart): a claim restored or cloned from a source held by another node. */
export const REASON_DATA_SOURCE_NODE = "node(s) didn't hold the data source of an unbound claim (local snapshots and volumes are restored and cloned on their own node)";
export const UNBOUND_IMMEDIATE = 'pod has unbound immediate PersistentVolumeClaims';
/** Tolerating this taint also lets a pod onto an unschedulable node (as kube-scheduler allows). */
const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';

export interface SchedulerOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  logger: Logger;
  /** How long a node where a claim's provisioning failed is avoided for that claim. Default 5 min. */
  provisioningFailureMemoryMs?: number;
  /** First wait before a claim given up by its only feasible node is sent there again (doubles per failure, up to 10 s). Default 1000 ms. */
  rescheduleBackoffMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_PENDING = 'scheduler:pending';
const IDX_PENDING_BY_CLAIM = 'scheduler:pending-by-claim';
const IDX_ACTIVE_BY_NODE = 'scheduler:active-by-node';
const IDX_ACTIVE_BY_CLAIM = 'scheduler:active-by-claim';
const IDX_PV_AVAILABLE_BY_CLASS = 'scheduler:available-by-class';
const IDX_PV_BY_CLAIM_UID = 'scheduler:by-claim-uid';

/** One pod volume backed by a claim: the claim's name and, if it exists, the claim. */
interface PodClaim {
  name: string;
  /** Set for a generic ephemeral volume (claim "<pod>-<volume>", made by another controller). */
  ephemeral: boolean;
  pvc: PersistentVolumeClaim | undefined;
}

/** What the volume-binding filter decided for one claim. */
type ClaimPlan =
  | { kind: 'bound'; pv: PersistentVolume }
  /** Unbound, WaitForFirstConsumer: needs selected-node. */
  | { kind: 'delayed'; pvc: PersistentVolumeClaim; sc: StorageClass; prebound: PersistentVolume | undefined };

export function isOurs(pod: Pod): boolean {
  const name = pod.spec?.schedulerName ?? '';
  return name === '' || name === DEFAULT_SCHEDULER_NAME;
}

/** Waiting for a node: not bound, ours, not finished, not being deleted. */
export function needsScheduling(pod: Pod): boolean {
  return !pod.spec?.nodeName && isOurs(pod) && !isDeleting(pod) && !podIsFinished(pod);
}

/** Kubernetes' ToleratesTaint. */
export function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator ?? 'Equal') {
    case 'Exists':
      return true;
    case 'Equal':
      return (t.value ?? '') === (taint.value ?? '');
    default:
      return false;
  }
}

/** The first NoSchedule/NoExecute taint no toleration covers. */
export function untoleratedTaint(node: Node, tolerations: readonly Toleration[] | undefined): Taint | undefined {
  return (node.spec?.taints ?? []).find((taint) => (taint.effect === 'NoSchedule' || taint.effect === 'NoExecute') && !(tolerations ?? []).some((t) => tolerates(t, taint)));
}

/** spec.nodeSelector and affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution. */
export function podMatchesNode(pod: Pod, node: Node): boolean {
  const labels = node.metadata.labels ?? {};
  for (const [k, v] of Object.entries(pod.spec.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const affinity = pod.spec.affinity as { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: NodeSelector } } | undefined;
  const required = affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  return required === undefined || nodeSelectorMatches(required, node.metadata.name ?? '', labels);
}

/** A StorageClass's allowedTopologies against a node's labels: terms OR'ed, expressions AND'ed. */
export function topologyAllows(terms: readonly TopologySelectorTerm[] | undefined, labels: Record<string, string> | undefined): boolean {
  if (terms === undefined || terms.length === 0) return true;
  return terms.some((term) => (term.matchLabelExpressions ?? []).every((e) => labels?.[e.key] !== undefined && e.values.includes(labels[e.key] ?? '')));
}

/** Kubernetes' FitError text: "0/N nodes are available: <prefilter>. <count reason, …>." */
export function fitErrorMessage(numNodes: number, reasons: ReadonlyMap<string, number>, preFilter?: string): string {
  let msg = `0/${numNodes} nodes are available:`;
  if (preFilter !== undefined) msg += ` ${preFilter}.`;
  const histogram = [...reasons].map(([reason, n]) => `${n} ${reason}`).sort();
  if (histogram.length > 0) msg += ` ${histogram.join(', ')}.`;
  return msg;
}

/** The pod's claims: persistentVolumeClaim volumes and generic ephemeral volumes ("<pod>-<volume>"). */
export function podClaimNames(pod: Pod): { name: string; ephemeral: boolean }[] {
  return podVolumeClaims(pod).map((c) => ({ name: c.claimName, ephemeral: c.ephemeral }));
}

/** A claim only one pod may use at a time (access mode ReadWriteOncePod). */
function readWriteOncePod(pvc: PersistentVolumeClaim): boolean {
  return (pvc.spec.accessModes ?? []).includes('ReadWriteOncePod');
}

export class Scheduler {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly classes: Informer<StorageClass>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly log: Logger;
  private readonly failureMemoryMs: number;
  private readonly capacity: StorageCapacity;
  /** Set by a filter pass that met a capacity figure still being asked for. */
  private capacityPending = false;
  /** Pods waiting (PreBind) for their claims, by key → the node chosen: counted as on that node. */
  private readonly assumed = new Map<string, string>();
  /** claim uid → node → until when provisioning there is avoided. */
  private readonly failures = new Map<string, Map<string, number>>();
  /** claim uid → how often its selected node was given up, and when last. */
  private readonly reschedules = new Map<string, { count: number; at: number }>();
  private readonly rescheduleBackoffMs: number;

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'scheduler' });
    this.failureMemoryMs = options.provisioningFailureMemoryMs ?? 300_000;
    this.capacity = new StorageCapacity({ registry: options.registry, logger: options.logger, onChange: () => this.enqueuePending() });
    this.rescheduleBackoffMs = options.rescheduleBackoffMs ?? 1_000;
    this.loop = new ControllerLoop({
      name: 'scheduler',
      logger: options.logger,
      sync: (key) => this.sync(key),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.pods = options.informers.for('pods');
    this.nodes = options.informers.for('nodes');
    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');
    this.classes = options.informers.for('storageclasses');

    this.pods.addIndex(IDX_PENDING, (pod) => (needsScheduling(pod) ? [''] : []));
    this.pods.addIndex(IDX_PENDING_BY_CLAIM, (pod) => {
      if (!needsScheduling(pod)) return [];
      const ns = pod.metadata.namespace ?? 'default';
      return podClaimNames(pod).map((c) => `${ns}/${c.name}`);
    });
    this.pods.addIndex(IDX_ACTIVE_BY_NODE, (pod) => (pod.spec?.nodeName && !podIsFinished(pod) ? [pod.spec.nodeName] : []));
    this.pods.addIndex(IDX_ACTIVE_BY_CLAIM, (pod) => (pod.spec?.nodeName && !podIsFinished(pod) ? podClaimNames(pod).map((c) => `${pod.metadata.namespace ?? 'default'}/${c.name}`) : []));
    this.pvs.addIndex(IDX_PV_AVAILABLE_BY_CLASS, (pv) => (pv.spec.claimRef === undefined && !isDeleting(pv) ? [pv.spec.storageClassName ?? ''] : []));
    this.pvs.addIndex(IDX_PV_BY_CLAIM_UID, (pv) => (pv.spec.claimRef?.uid ? [pv.spec.claimRef.uid] : []));

    this.pods.addEventHandler({
      add: (pod) => needsScheduling(pod) && this.loop.enqueue(keyOf(pod)),
      update: (old, pod) => {
        // Our own status writes (PodScheduled=False) change only status: no new attempt for them.
        const changed = old === pod || !isDeepStrictEqual(old.spec, pod.spec) || !isDeepStrictEqual(old.metadata.labels, pod.metadata.labels) || old.metadata.deletionTimestamp !== pod.metadata.deletionTimestamp;
        if (needsScheduling(pod) && changed) this.loop.enqueue(keyOf(pod));
        // A pod that finished frees its node's volume slots.
        if (old.spec?.nodeName && !podIsFinished(old) && podIsFinished(pod)) this.enqueuePending();
      },
      delete: (pod) => {
        this.assumed.delete(keyOf(pod));
        if (pod.spec?.nodeName) this.enqueuePending();
      },
    });
    this.nodes.addEventHandler({
      add: () => this.enqueuePending(),
      // Status updates (heartbeats, volumesInUse) do not change where pods fit.
      update: (old, node) => (old === node || !isDeepStrictEqual(old.spec, node.spec) || !isDeepStrictEqual(old.metadata.labels, node.metadata.labels)) && this.enqueuePending(),
      delete: () => this.enqueuePending(),
    });
    const claimChanged = (pvc: PersistentVolumeClaim): void => {
      for (const k of this.pods.indexKeys(IDX_PENDING_BY_CLAIM, claimKey(pvc))) this.loop.enqueue(k);
    };
    this.pvcs.addEventHandler({
      add: claimChanged,
      update: (old, pvc) => {
        // The provisioner gave the selected node up (external-provisioner's reschedule).
        const from = annotation(old, ANN_SELECTED_NODE);
        if (from !== undefined && annotation(pvc, ANN_SELECTED_NODE) === undefined && !pvc.spec.volumeName && old.metadata.uid === pvc.metadata.uid) this.selectedNodeGivenUp(pvc, from);
        // Bound: nothing to remember about where it failed.
        if (pvc.spec.volumeName) {
          this.failures.delete(pvc.metadata.uid ?? '');
          this.reschedules.delete(pvc.metadata.uid ?? '');
        }
        claimChanged(pvc);
      },
      delete: (pvc) => {
        this.failures.delete(pvc.metadata.uid ?? '');
        this.reschedules.delete(pvc.metadata.uid ?? '');
        claimChanged(pvc);
      },
    });
    // A volume made or removed changes what its driver has left.
    const capacityChanged = (pv: PersistentVolume): void => {
      if (pv.spec.csi?.driver) this.capacity.invalidate(pv.spec.csi.driver);
    };
    this.pvs.addEventHandler({
      add: (pv) => {
        capacityChanged(pv);
        this.enqueuePending();
      },
      delete: capacityChanged,
      update: (old, pv) => old !== pv && (old.spec.claimRef === undefined) !== (pv.spec.claimRef === undefined) && this.enqueuePending(),
    });
    this.classes.addEventHandler({ add: () => this.enqueuePending(), update: (old, sc) => old !== sc && this.enqueuePending() });
    this.registry.onChange(() => this.enqueuePending());
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** The claim's selected node was given up: avoid it for that claim, and count the reschedule for the backoff. */
  private selectedNodeGivenUp(pvc: PersistentVolumeClaim, node: string): void {
    const uid = pvc.metadata.uid ?? '';
    let nodes = this.failures.get(uid);
    if (nodes === undefined) this.failures.set(uid, (nodes = new Map()));
    nodes.set(node, Date.now() + this.failureMemoryMs);
    const last = this.reschedules.get(uid);
    this.reschedules.set(uid, { count: (last?.count ?? 0) + 1, at: Date.now() });
    this.log.info({ claim: claimKey(pvc), node }, 'the provisioner gave up the selected node; choosing again');
  }

  /** How long to wait before sending a rescheduled claim back to a node that gave it up: 0 if not. */
  private rescheduleWaitMs(pvc: PersistentVolumeClaim): number {
    const r = this.reschedules.get(pvc.metadata.uid ?? '');
    if (r === undefined) return 0;
    const delay = Math.min(this.rescheduleBackoffMs * 2 ** Math.min(r.count - 1, 10), Math.max(this.rescheduleBackoffMs, 10_000));
    return Math.max(0, r.at + delay - Date.now());
  }

  private enqueuePending(): void {
    for (const k of this.pods.indexKeys(IDX_PENDING, '')) this.loop.enqueue(k);
  }

  private failedOn(pvc: PersistentVolumeClaim, node: string): boolean {
    const uid = pvc.metadata.uid ?? '';
    const nodes = this.failures.get(uid);
    const until = nodes?.get(node);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    nodes?.delete(node);
    if (nodes?.size === 0) this.failures.delete(uid);
    return false;
  }

  private sync(key: string): SyncResult | void {
    const pod = this.pods.get(key);
    if (pod === undefined || !needsScheduling(pod)) {
      this.assumed.delete(key);
      return;
    }
    const nodes = this.nodes.list().sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
    const ns = pod.metadata.namespace ?? 'default';
    const claims: PodClaim[] = podClaimNames(pod).map((c) => ({ ...c, pvc: this.pvcs.getByName(ns, c.name) }));

    const preFilter = this.preFilter(pod, claims);
    if (preFilter !== undefined) return this.unschedulable(pod, fitErrorMessage(nodes.length, new Map(), preFilter));
    if (nodes.length === 0) return this.unschedulable(pod, 'no nodes available to schedule pods');

    // Claims whose selected node is gone may move, if another node fits. Nodes that gave a claim
    // up (the provisioner removed its selected node) are avoided while another fits.
    let moving = new Set(claims.flatMap((c) => (c.pvc !== undefined && this.selectedNodeGone(c.pvc) ? [c.name] : [])));
    this.capacityPending = false;
    let result = this.filter(pod, claims, nodes, moving, true);
    let retrying = false;
    if (result.feasible.length === 0) {
      moving = new Set();
      result = this.filter(pod, claims, nodes, moving, false);
      retrying = true;
    }
    // Capacity still being asked of a driver: decide once it is known (its arrival enqueues us too).
    if (this.capacityPending) return { requeueAfterMs: 100 };
    if (result.feasible.length === 0) return this.unschedulable(pod, fitErrorMessage(nodes.length, result.reasons));
    if (retrying) {
      // Only nodes that gave a claim up fit: back to one of them, after a backoff.
      const wait = Math.max(0, ...claims.map((c) => (c.pvc !== undefined && annotation(c.pvc, ANN_SELECTED_NODE) === undefined ? this.rescheduleWaitMs(c.pvc) : 0)));
      if (wait > 0) return { requeueAfterMs: wait };
    }

    const node = this.score(key, result.feasible);
    const nodeName = node.metadata.name ?? '';

    // PreBind: point every claim that waits for a consumer at the node, then wait for them to bind.
    let waiting = false;
    for (const c of claims) {
      const pvc = c.pvc;
      if (pvc === undefined) continue;
      if (pvc.status?.phase === 'Bound' && pvc.spec.volumeName) continue;
      waiting = true;
      if (pvc.spec.volumeName) continue; // binding in progress
      if (annotation(pvc, ANN_SELECTED_NODE) === nodeName) continue;
      if (annotation(pvc, ANN_SELECTED_NODE) !== undefined) this.log.info({ pod: key, claim: claimKey(pvc), from: annotation(pvc, ANN_SELECTED_NODE), to: nodeName }, 'the selected node is gone; trying another');
      this.store.update({ ...pvc, metadata: { ...pvc.metadata, annotations: { ...pvc.metadata.annotations, [ANN_SELECTED_NODE]: nodeName } } });
    }
    if (waiting) {
      this.assumed.set(key, nodeName);
      this.log.debug({ pod: key, node: nodeName }, 'waiting for the pod\'s claims to be bound');
      return;
    }

    this.store.bindPod(ns, pod.metadata.name ?? '', nodeName, { uid: pod.metadata.uid ?? '' });
    this.assumed.delete(key);
    this.recorder.event(pod, 'Normal', 'Scheduled', `Successfully assigned ${key} to ${nodeName}`);
    this.log.debug({ pod: key, node: nodeName }, 'scheduled');
  }

  /** An unbound claim's selected node is gone: it may move (a node that exists is given up only by the provisioner). */
  private selectedNodeGone(pvc: PersistentVolumeClaim): boolean {
    if (pvc.spec.volumeName) return false;
    const selected = annotation(pvc, ANN_SELECTED_NODE);
    return selected !== undefined && this.nodes.get(selected) === undefined;
  }

  /** Why no node can take the pod whatever the node (Kubernetes' PreFilter), if so. */
  private preFilter(pod: Pod, claims: readonly PodClaim[]): string | undefined {
    for (const c of claims) {
      const pvc = c.pvc;
      if (pvc === undefined) {
        return c.ephemeral ? `waiting for ephemeral volume controller to create the persistentvolumeclaim "${c.name}"` : `persistentvolumeclaim "${c.name}" not found`;
      }
      if (isDeleting(pvc)) return `persistentvolumeclaim "${c.name}" is being deleted`;
      const notOurs = c.ephemeral ? ephemeralClaimConflict(pod, pvc) : undefined;
      if (notOurs !== undefined) return notOurs;
    }
    for (const c of claims) {
      const pvc = c.pvc;
      if (pvc === undefined || pvc.spec.volumeName) continue;
      const className = claimClass(pvc);
      const sc = className ? this.classes.get(className) : undefined;
      if (className && sc === undefined) return `storageclass.storage.k8s.io "${className}" not found`;
      if (sc?.volumeBindingMode !== 'WaitForFirstConsumer') return UNBOUND_IMMEDIATE;
    }
    return undefined;
  }

  /** Kubernetes' Filter phase over every node: the feasible nodes, and why the others are not. */
  private filter(pod: Pod, claims: readonly PodClaim[], nodes: readonly Node[], moving: ReadonlySet<string>, avoidFailures: boolean): { feasible: Node[]; reasons: Map<string, number> } {
    const feasible: Node[] = [];
    const reasons = new Map<string, number>();
    for (const node of nodes) {
      const why = this.whyNot(pod, claims, node, moving, avoidFailures);
      if (why === undefined) feasible.push(node);
      else reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
    return { feasible, reasons };
  }

  private whyNot(pod: Pod, claims: readonly PodClaim[], node: Node, moving: ReadonlySet<string>, avoidFailures: boolean): string | undefined {
    const nodeName = node.metadata.name ?? '';
    const tolerations = pod.spec.tolerations;
    if (node.spec?.unschedulable && !(tolerations ?? []).some((t) => tolerates(t, { key: TAINT_UNSCHEDULABLE, effect: 'NoSchedule' }))) return REASON_UNSCHEDULABLE;
    const taint = untoleratedTaint(node, tolerations);
    if (taint !== undefined) return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
    if (!podMatchesNode(pod, node)) return REASON_AFFINITY;
    if (this.readWriteOncePodInUse(pod, claims)) return REASON_RWOP_CONFLICT;

    const plans: { name: string; plan: ClaimPlan }[] = [];
    for (const c of claims) {
      if (c.pvc === undefined) continue;
      const plan = this.planClaim(c.pvc);
      if (typeof plan === 'string') return plan;
      plans.push({ name: c.name, plan });
    }
    if (this.exceedsVolumeLimits(pod, plans.map((p) => p.plan), nodeName)) return REASON_MAX_VOLUME_COUNT;

    for (const { name, plan } of plans) {
      if (plan.kind === 'bound') {
        if (!volumeFitsNode(plan.pv, nodeName, node.metadata.labels)) return REASON_VOLUME_NODE_CONFLICT;
        continue;
      }
      const { pvc, sc, prebound } = plan;
      // A volume already made for the claim (provisioned, not yet bound) decides where it can go.
      if (prebound !== undefined) {
        if (!volumeFitsNode(prebound, nodeName, node.metadata.labels)) return REASON_VOLUME_NODE_CONFLICT;
        continue;
      }
      const selected = annotation(pvc, ANN_SELECTED_NODE);
      if (selected !== undefined && !moving.has(name)) {
        if (selected !== nodeName) return REASON_BIND_CONFLICT;
        continue;
      }
      if (avoidFailures && this.failedOn(pvc, nodeName)) return REASON_BIND_CONFLICT;
      // A local snapshot or volume is restored or cloned only on the node that holds it.
      const sourceNode = dataSourceNode(pvc, sc.provisioner, this.registry, this.store);
      if (sourceNode !== undefined && sourceNode !== nodeName) return REASON_DATA_SOURCE_NODE;
      const why = this.claimFitsNode(pvc, sc, node);
      if (why !== undefined) return why;
    }
    return undefined;
  }

  /** Kubernetes' VolumeRestrictions for ReadWriteOncePod: another pod placed on a node already uses one of the pod's RWOP claims. */
  private readWriteOncePodInUse(pod: Pod, claims: readonly PodClaim[]): boolean {
    return claims.some((c) => c.pvc !== undefined && readWriteOncePod(c.pvc) && this.pods.indexKeys(IDX_ACTIVE_BY_CLAIM, claimKey(c.pvc)).some((k) => k !== keyOf(pod)));
  }

  /** A claim's binding state, or the reason (for every node) it cannot be used. */
  private planClaim(pvc: PersistentVolumeClaim): ClaimPlan | string {
    if (pvc.spec.volumeName) {
      const pv = this.pvs.get(pvc.spec.volumeName);
      return pv === undefined ? REASON_PV_NOT_EXIST : { kind: 'bound', pv };
    }
    const sc = this.classes.get(claimClass(pvc));
    // preFilter made sure of the class; this only guards a class deleted in between.
    if (sc === undefined) return REASON_BIND_CONFLICT;
    const prebound = this.pvs.byIndex(IDX_PV_BY_CLAIM_UID, pvc.metadata.uid ?? '').find((pv) => isBoundToClaim(pv, pvc) && !isDeleting(pv));
    return { kind: 'delayed', pvc, sc, prebound };
  }

  /** Why an unbound WaitForFirstConsumer claim cannot get a volume on the node, or undefined when it can. */
  private claimFitsNode(pvc: PersistentVolumeClaim, sc: StorageClass, node: Node): string | undefined {
    const nodeName = node.metadata.name ?? '';
    const labels = node.metadata.labels;
    // An Available volume of the class that would satisfy the claim there (the binder will pick it).
    for (const pv of this.pvs.byIndex(IDX_PV_AVAILABLE_BY_CLASS, claimClass(pvc))) {
      if (volumeSatisfiesClaim(pv, pvc) === undefined && selectorAccepts(pvc, pv) && volumeFitsNode(pv, nodeName, labels)) return undefined;
    }
    if (sc.provisioner === NO_PROVISIONER) return REASON_BIND_CONFLICT;
    // Or provisioning: the driver runs on the node and the class allows its topology...
    const driver = this.registry.nodeDriver(sc.provisioner, nodeName);
    if (driver === undefined) return REASON_BIND_CONFLICT;
    if (!topologyAllows(sc.allowedTopologies, labels)) return REASON_BIND_CONFLICT;
    // ...and, when the driver publishes capacity, has room for the claim there.
    if (!this.capacity.tracks(sc.provisioner)) return undefined;
    const segments = Object.fromEntries((driver.topologyKeys ?? []).flatMap((k) => (labels?.[k] !== undefined ? [[k, labels[k]]] : [])));
    const answer = this.capacity.lookup(sc.provisioner, nodeName, sc, segments);
    if (answer === 'pending') {
      this.capacityPending = true;
      return REASON_NOT_ENOUGH_SPACE;
    }
    if (answer === 'unknown') return undefined; // the provisioner will find out
    const request = pvc.spec.resources?.requests?.['storage'];
    const bytes = request === undefined ? 0 : quantityValue(request);
    return capacityAdmits(answer, bytes) ? undefined : REASON_NOT_ENOUGH_SPACE;
  }

  /** CSI volume limits: the node's volumes per driver, plus this pod's new ones, against allocatable.count. */
  private exceedsVolumeLimits(pod: Pod, plans: readonly ClaimPlan[], nodeName: string): boolean {
    const wanted = new Map<string, Set<string>>();
    for (const plan of plans) this.addVolume(wanted, plan);
    if (wanted.size === 0) return false;
    const limits = new Map<string, number>();
    for (const driver of wanted.keys()) {
      const count = this.registry.nodeDriver(driver, nodeName)?.allocatable?.count;
      if (count !== undefined) limits.set(driver, count);
    }
    if (limits.size === 0) return false;
    const used = new Map<string, Set<string>>();
    const key = keyOf(pod);
    const onNode = this.pods.byIndex(IDX_ACTIVE_BY_NODE, nodeName);
    for (const [k, n] of this.assumed) {
      if (n !== nodeName || k === key) continue;
      const p = this.pods.get(k);
      if (p !== undefined) onNode.push(p);
    }
    for (const p of onNode) {
      const ns = p.metadata.namespace ?? 'default';
      for (const c of podClaimNames(p)) {
        const pvc = this.pvcs.getByName(ns, c.name);
        if (pvc === undefined) continue;
        const plan = this.planClaim(pvc);
        if (typeof plan !== 'string') this.addVolume(used, plan);
      }
    }
    for (const [driver, limit] of limits) {
      const all = new Set([...(used.get(driver) ?? []), ...(wanted.get(driver) ?? [])]);
      const added = [...(wanted.get(driver) ?? [])].filter((v) => !(used.get(driver) ?? new Set()).has(v)).length;
      if (added > 0 && all.size > limit) return true;
    }
    return false;
  }

  /** Adds a claim's volume (driver → unique ids) to a tally. */
  private addVolume(tally: Map<string, Set<string>>, plan: ClaimPlan): void {
    let driver: string | undefined;
    let id: string;
    const pv = plan.kind === 'bound' ? plan.pv : plan.prebound;
    if (pv !== undefined) {
      driver = pv.spec.csi?.driver;
      id = `${driver ?? ''}^${pv.spec.csi?.volumeHandle ?? ''}`;
    } else if (plan.kind === 'delayed') {
      driver = plan.sc.provisioner;
      id = `claim:${plan.pvc.metadata.uid ?? ''}`;
    } else return;
    if (driver === undefined) return;
    let set = tally.get(driver);
    if (set === undefined) tally.set(driver, (set = new Set()));
    set.add(id);
  }

  /** Fewest pods (bound, not finished, or waiting for their claims there), then the name. */
  private score(key: string, feasible: readonly Node[]): Node {
    const count = (name: string): number => {
      let n = this.pods.indexKeys(IDX_ACTIVE_BY_NODE, name).length;
      for (const [k, node] of this.assumed) if (node === name && k !== key) n++;
      return n;
    };
    let best = feasible[0] as Node;
    let bestCount = count(best.metadata.name ?? '');
    for (const node of feasible.slice(1)) {
      const c = count(node.metadata.name ?? '');
      if (c < bestCount) {
        best = node;
        bestCount = c;
      }
    }
    return best;
  }

  /** PodScheduled=False (reason Unschedulable) and a FailedScheduling event. */
  private unschedulable(pod: Pod, message: string): SyncResult | void {
    const key = keyOf(pod);
    this.assumed.delete(key);
    this.recorder.event(pod, 'Warning', 'FailedScheduling', message);
    this.log.debug({ pod: key, message }, 'unschedulable');
    const conditions = pod.status?.conditions ?? [];
    const current = conditions.find((c) => c.type === 'PodScheduled');
    if (current?.status === 'False' && current.reason === 'Unschedulable' && current.message === message) return;
    const condition = {
      type: 'PodScheduled',
      status: 'False',
      reason: 'Unschedulable',
      message,
      lastTransitionTime: current?.status === 'False' ? (current.lastTransitionTime ?? rfc3339()) : rfc3339(),
    };
    this.store.update({ ...pod, status: { ...pod.status, conditions: [...conditions.filter((c) => c.type !== 'PodScheduled'), condition] } }, { subresource: 'status' });
  }
}

/** The volume parts of kube-scheduler (registry.ts). */
export const SCHEDULER: ControllerDescriptor = {
  name: 'scheduler',
  description: 'kube-scheduler, volume-aware: a node for pods without one, selected-node for WaitForFirstConsumer claims',
  init(ctx) {
    const s = new Scheduler({ store: ctx.store, informers: ctx.informers, registry: ctx.registry, recorder: ctx.events.recorder(DEFAULT_SCHEDULER_NAME), logger: ctx.logger, ...ctx.backoff });
    return { loops: [s.loop], start: () => s.start(), stop: () => s.stop() };
  },
};
