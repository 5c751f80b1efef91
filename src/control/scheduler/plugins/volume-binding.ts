// VolumeBinding: the pod's claims, moved as they were from the single-class scheduler.
//
//   PreFilter   every claim the pod names exists and is not being deleted (a generic ephemeral
//               volume's claim belongs to the pod); an unbound claim whose class binds Immediately
//               makes the pod wait ("pod has unbound immediate PersistentVolumeClaims").
//   Filter      a bound claim's PV node affinity; an unbound WaitForFirstConsumer claim needs an
//               Available PV that fits the node, or its class's provisioner listed in the node's
//               CSINode, the class's allowedTopologies matched and, for a driver whose CSIDriver
//               sets storageCapacity, the driver's GetCapacity for the node admitting the claim's
//               size (storage-capacity.ts: what CSIStorageCapacity objects tell kube-scheduler).
//               Every refusal is UnschedulableAndUnresolvable, as upstream: preemption cannot help.
//   PostFilter  no node fits: a claim's selected node that is gone and nodes that gave a claim up
//               stop being avoided, and the nodes are filtered again.
//   Permit      if only nodes that gave a claim up fit, the pod goes back after a backoff.
//   PreBind     unbound WaitForFirstConsumer claims get volume.kubernetes.io/selected-node=<node>
//               (the binder and provisioner take it from there); the pod is bound only once all
//               its claims are Bound (Wait until then, reserved on the node).
//
// A claim keeps its selected node for as long as it has one: a CreateVolume that failed there may
// still be running (a timeout), and a volume made meanwhile elsewhere would orphan it. It moves only
// when its selected node is gone, or when the provisioner gave the node up (ProvisioningState
// reschedule: RESOURCE_EXHAUSTED, and only then, external-provisioner removes the selected-node
// annotation). The plugin sees that removal on the claim: the node is avoided for that claim for
// a while and the claim's pods get another feasible node; with no other node, the same one is
// selected again after a backoff (kube-scheduler's pod backoff: 1 s doubling to 10 s), so a pod
// neither flaps between nodes nor hammers a full one. Losing this memory only costs a retry.
import { ephemeralClaimConflict } from '../../api/pod-claims.js';
import { quantityValue } from '../../api/quantity.js';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from '../../api/types/core.js';
import type { StorageClass, TopologySelectorTerm } from '../../api/types/storage.js';
import { dataSourceNode } from '../../controllers/data-source.js';
import { capacityAdmits, StorageCapacity } from '../../controllers/storage-capacity.js';
import {
  ANN_SELECTED_NODE,
  annotation,
  claimClass,
  claimKey,
  isDeleting,
  NO_PROVISIONER,
  selectorAccepts,
  volumeFitsNode,
  volumeSatisfiesClaim,
} from '../../controllers/volume-util.js';
import { type ClaimPlan, IDX_PENDING_BY_CLAIM, IDX_PV_AVAILABLE_BY_CLASS, podClaimPlans, podClaims, REASON_BIND_CONFLICT } from '../claims.js';
import {
  type CycleState,
  type FilterPlugin,
  type PermitPlugin,
  type PostFilterPlugin,
  type PreBindPlugin,
  type PreFilterPlugin,
  SKIP,
  type Status,
  SUCCESS,
  unresolvable,
  unschedulable,
  waitFor,
} from '../framework.js';
import { nodeCsiDrivers } from '../node-drivers.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';

export { REASON_BIND_CONFLICT, REASON_PV_NOT_EXIST } from '../claims.js';
export const REASON_VOLUME_NODE_CONFLICT = 'node(s) had volume node affinity conflict';
export const REASON_NOT_ENOUGH_SPACE = 'node(s) did not have enough free storage';
/** Ours (no kube-scheduler counterpart): a claim restored or cloned from a source held by another node. */
export const REASON_DATA_SOURCE_NODE = "node(s) didn't hold the data source of an unbound claim (local snapshots and volumes are restored and cloned on their own node)";
export const UNBOUND_IMMEDIATE = 'pod has unbound immediate PersistentVolumeClaims';

/** A StorageClass's allowedTopologies against a node's labels: terms OR'ed, expressions AND'ed. */
export function topologyAllows(terms: readonly TopologySelectorTerm[] | undefined, labels: Record<string, string> | undefined): boolean {
  if (terms === undefined || terms.length === 0) return true;
  return terms.some((term) => (term.matchLabelExpressions ?? []).every((e) => labels?.[e.key] !== undefined && e.values.includes(labels[e.key] ?? '')));
}

/** Per attempt: which claims may move, and whether nodes that gave a claim up are still avoided. */
interface BindingState {
  moving: Set<string>;
  avoidFailures: boolean;
  /** What is the same for every node, per unbound claim: worked out at its first node (claimFacts). */
  facts?: Map<PersistentVolumeClaim, ClaimFacts>;
}
const STATE_KEY = 'VolumeBinding';

/** Per attempt and claim: the node-independent part of the Filter. */
interface ClaimFacts {
  /** The Available volumes of the claim's class that would satisfy it, wherever they are. */
  candidates: readonly PersistentVolume[];
  /** The node holding the claim's local data source, if it has one. */
  sourceNode: string | undefined;
}

export class VolumeBinding implements PreFilterPlugin, FilterPlugin, PostFilterPlugin, PermitPlugin, PreBindPlugin {
  readonly name = 'VolumeBinding';
  private readonly capacity: StorageCapacity;
  /** claim uid → node → until when provisioning there is avoided. */
  private readonly failures = new Map<string, Map<string, number>>();
  /** claim uid → how often its selected node was given up, and when last. */
  private readonly reschedules = new Map<string, { count: number; at: number }>();

  constructor(private readonly ctx: PluginContext) {
    this.capacity = new StorageCapacity({ registry: ctx.registry, logger: ctx.logger, onChange: () => ctx.enqueuePending() });
    const claimChanged = (pvc: PersistentVolumeClaim): void => {
      for (const k of ctx.pods.indexKeys(IDX_PENDING_BY_CLAIM, claimKey(pvc))) ctx.enqueue(k);
    };
    ctx.pvcs.addEventHandler({
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
    ctx.pvs.addEventHandler({
      add: (pv) => {
        capacityChanged(pv);
        ctx.enqueuePending();
      },
      delete: capacityChanged,
      update: (old, pv) => old !== pv && (old.spec.claimRef === undefined) !== (pv.spec.claimRef === undefined) && ctx.enqueuePending(),
    });
    ctx.classes.addEventHandler({ add: () => ctx.enqueuePending(), update: (old, sc) => old !== sc && ctx.enqueuePending() });
    ctx.registry.onChange(() => ctx.enqueuePending());
  }

  preFilter(state: CycleState, pod: Pod): Status {
    const claims = podClaims(this.ctx, state, pod);
    if (claims.length === 0) return SKIP;
    for (const c of claims) {
      const pvc = c.pvc;
      if (pvc === undefined) {
        return unresolvable(c.ephemeral ? `waiting for ephemeral volume controller to create the persistentvolumeclaim "${c.name}"` : `persistentvolumeclaim "${c.name}" not found`);
      }
      if (isDeleting(pvc)) return unresolvable(`persistentvolumeclaim "${c.name}" is being deleted`);
      const notOurs = c.ephemeral ? ephemeralClaimConflict(pod, pvc) : undefined;
      if (notOurs !== undefined) return unresolvable(notOurs);
    }
    for (const c of claims) {
      const pvc = c.pvc;
      if (pvc === undefined || pvc.spec.volumeName) continue;
      const className = claimClass(pvc);
      const sc = className ? this.ctx.classes.get(className) : undefined;
      if (className && sc === undefined) return unresolvable(`storageclass.storage.k8s.io "${className}" not found`);
      if (sc?.volumeBindingMode !== 'WaitForFirstConsumer') return unresolvable(UNBOUND_IMMEDIATE);
    }
    // Claims whose selected node is gone may move, if another node fits. Nodes that gave a claim
    // up (the provisioner removed its selected node) are avoided while another fits.
    const moving = new Set(claims.flatMap((c) => (c.pvc !== undefined && this.selectedNodeGone(c.pvc) ? [c.name] : [])));
    state.write(STATE_KEY, { moving, avoidFailures: true } satisfies BindingState);
    return SUCCESS;
  }

  filter(state: CycleState, pod: Pod, info: NodeInfo): Status {
    let bs = state.read<BindingState>(STATE_KEY);
    if (bs === undefined) state.write(STATE_KEY, (bs = { moving: new Set(), avoidFailures: true }));
    const { moving, avoidFailures } = bs;
    const node = info.node;
    const nodeName = info.name;
    const plans = podClaimPlans(this.ctx, state, pod);
    for (const { plan } of plans) if (typeof plan === 'string') return unresolvable(plan);
    for (const { name, plan } of plans as { name: string; plan: ClaimPlan }[]) {
      if (plan.kind === 'bound') {
        if (!volumeFitsNode(plan.pv, nodeName, node.metadata.labels)) return unresolvable(REASON_VOLUME_NODE_CONFLICT);
        continue;
      }
      const { pvc, sc, prebound } = plan;
      // A volume already made for the claim (provisioned, not yet bound) decides where it can go.
      if (prebound !== undefined) {
        if (!volumeFitsNode(prebound, nodeName, node.metadata.labels)) return unresolvable(REASON_VOLUME_NODE_CONFLICT);
        continue;
      }
      const selected = annotation(pvc, ANN_SELECTED_NODE);
      if (selected !== undefined && !moving.has(name)) {
        if (selected !== nodeName) return unresolvable(REASON_BIND_CONFLICT);
        continue;
      }
      if (avoidFailures && this.failedOn(pvc, nodeName)) return unresolvable(REASON_BIND_CONFLICT);
      const facts = this.claimFacts(bs, pvc, sc);
      // A local snapshot or volume is restored or cloned only on the node that holds it.
      if (facts.sourceNode !== undefined && facts.sourceNode !== nodeName) return unresolvable(REASON_DATA_SOURCE_NODE);
      const why = this.claimFitsNode(state, pvc, sc, info, facts.candidates);
      if (why !== undefined) return unresolvable(why);
    }
    return SUCCESS;
  }

  postFilter(state: CycleState): { status: Status; filterAgain?: boolean } {
    const current = state.read<BindingState>(STATE_KEY);
    if (current === undefined || !current.avoidFailures) return { status: unschedulable() };
    state.write(STATE_KEY, { moving: new Set(), avoidFailures: false } satisfies BindingState);
    return { status: SUCCESS, filterAgain: true };
  }

  permit(state: CycleState, pod: Pod): Status {
    if (state.read<BindingState>(STATE_KEY)?.avoidFailures !== false) return SUCCESS;
    // Only nodes that gave a claim up fit: back to one of them, after a backoff.
    const wait = Math.max(0, ...podClaims(this.ctx, state, pod).map((c) => (c.pvc !== undefined && annotation(c.pvc, ANN_SELECTED_NODE) === undefined ? this.rescheduleWaitMs(c.pvc) : 0)));
    return wait > 0 ? waitFor(wait) : SUCCESS;
  }

  /** Points every claim that waits for a consumer at the node; Wait until they are all bound. */
  preBind(state: CycleState, pod: Pod, nodeName: string): Status {
    let waiting = false;
    for (const c of podClaims(this.ctx, state, pod)) {
      const pvc = c.pvc;
      if (pvc === undefined) continue;
      if (pvc.status?.phase === 'Bound' && pvc.spec.volumeName) continue;
      waiting = true;
      if (pvc.spec.volumeName) continue; // binding in progress
      if (annotation(pvc, ANN_SELECTED_NODE) === nodeName) continue;
      if (annotation(pvc, ANN_SELECTED_NODE) !== undefined) this.ctx.logger.info({ pod: `${pod.metadata.namespace}/${pod.metadata.name}`, claim: claimKey(pvc), from: annotation(pvc, ANN_SELECTED_NODE), to: nodeName }, 'the selected node is gone; trying another');
      this.ctx.store.update({ ...pvc, metadata: { ...pvc.metadata, annotations: { ...pvc.metadata.annotations, [ANN_SELECTED_NODE]: nodeName } } });
    }
    return waiting ? waitFor() : SUCCESS;
  }

  /** An unbound claim's selected node is gone: it may move (a node that exists is given up only by the provisioner). */
  private selectedNodeGone(pvc: PersistentVolumeClaim): boolean {
    if (pvc.spec.volumeName) return false;
    const selected = annotation(pvc, ANN_SELECTED_NODE);
    return selected !== undefined && this.ctx.nodes.get(selected) === undefined;
  }

  /** The claim's selected node was given up: avoid it for that claim, and count the reschedule for the backoff. */
  private selectedNodeGivenUp(pvc: PersistentVolumeClaim, node: string): void {
    const uid = pvc.metadata.uid ?? '';
    let nodes = this.failures.get(uid);
    if (nodes === undefined) this.failures.set(uid, (nodes = new Map()));
    nodes.set(node, Date.now() + this.ctx.provisioningFailureMemoryMs);
    const last = this.reschedules.get(uid);
    this.reschedules.set(uid, { count: (last?.count ?? 0) + 1, at: Date.now() });
    this.ctx.logger.info({ claim: claimKey(pvc), node }, 'the provisioner gave up the selected node; choosing again');
  }

  /** How long to wait before sending a rescheduled claim back to a node that gave it up: 0 if not. */
  private rescheduleWaitMs(pvc: PersistentVolumeClaim): number {
    const r = this.reschedules.get(pvc.metadata.uid ?? '');
    if (r === undefined) return 0;
    const base = this.ctx.rescheduleBackoffMs;
    const delay = Math.min(base * 2 ** Math.min(r.count - 1, 10), Math.max(base, 10_000));
    return Math.max(0, r.at + delay - Date.now());
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

  /** The claim's ClaimFacts, worked out once per attempt (the Filter runs for hundreds of nodes). */
  private claimFacts(bs: BindingState, pvc: PersistentVolumeClaim, sc: StorageClass): ClaimFacts {
    bs.facts ??= new Map();
    let facts = bs.facts.get(pvc);
    if (facts === undefined) {
      facts = {
        candidates: this.ctx.pvs.byIndex(IDX_PV_AVAILABLE_BY_CLASS, claimClass(pvc)).filter((pv) => volumeSatisfiesClaim(pv, pvc) === undefined && selectorAccepts(pvc, pv)),
        sourceNode: dataSourceNode(pvc, sc.provisioner, this.ctx.registry, this.ctx.store),
      };
      bs.facts.set(pvc, facts);
    }
    return facts;
  }

  /** Why an unbound WaitForFirstConsumer claim cannot get a volume on the node, or undefined when it can. */
  private claimFitsNode(state: CycleState, pvc: PersistentVolumeClaim, sc: StorageClass, info: NodeInfo, candidates: readonly PersistentVolume[]): string | undefined {
    const node = info.node;
    const nodeName = info.name;
    const labels = node.metadata.labels;
    // An Available volume of the class that would satisfy the claim there (the binder will pick it).
    for (const pv of candidates) if (volumeFitsNode(pv, nodeName, labels)) return undefined;
    if (sc.provisioner === NO_PROVISIONER) return REASON_BIND_CONFLICT;
    // Or provisioning: the driver runs on the node and the class allows its topology...
    if (!this.ctx.registry.nodeNamesWithDriver(sc.provisioner).has(nodeName)) return REASON_BIND_CONFLICT;
    if (!topologyAllows(sc.allowedTopologies, labels)) return REASON_BIND_CONFLICT;
    // ...and, when the driver publishes capacity, has room for the claim there.
    if (!this.capacity.tracks(sc.provisioner)) return undefined;
    const driver = nodeCsiDrivers(this.ctx, info).get(sc.provisioner);
    if (driver === undefined) return REASON_BIND_CONFLICT;
    const segments = Object.fromEntries((driver.topologyKeys ?? []).flatMap((k) => (labels?.[k] !== undefined ? [[k, labels[k]]] : [])));
    const answer = this.capacity.lookup(sc.provisioner, nodeName, sc, segments);
    if (answer === 'pending') {
      // Decide once the figure is known (its arrival enqueues the pod too).
      state.retryAfter(100);
      return REASON_NOT_ENOUGH_SPACE;
    }
    if (answer === 'unknown') return undefined; // the provisioner will find out
    const request = pvc.spec.resources?.requests?.['storage'];
    const bytes = request === undefined ? 0 : quantityValue(request);
    return capacityAdmits(answer, bytes) ? undefined : REASON_NOT_ENOUGH_SPACE;
  }
}

