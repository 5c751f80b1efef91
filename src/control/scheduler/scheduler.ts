// kube-scheduler's scheduling cycle on the framework (framework.ts): a pod with no spec.nodeName
// whose spec.schedulerName names one of our profiles (profile.ts; empty: default-scheduler) gets a
// node. Per attempt: PreFilter; Filter over the nodes (first failing plugin decides each node;
// above 100 nodes only until enough fit, kube-scheduler's numFeasibleNodesToFind);
// if none passes, PostFilter and, when a plugin relaxed something, Filter again; PreScore and Score
// over the feasible nodes (weighted sum; ties go to the node with fewest pods, then to the name,
// where kube-scheduler picks at random: placements stay reproducible); Reserve (the pod is assumed
// on the node: counted there by every plugin); Permit; PreBind; Bind. Pods come off the queue
// highest priority first (scheduling-queue.ts); a pod assumed on a node, or nominated to one by
// preemption (plugins/default-preemption.ts), tries that node first; nominated pods count on their
// node for pods of no higher priority.
//
// Messages are Kubernetes': "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2
// node(s) didn't match Pod's node affinity/selector." (FitError: each node's reasons counted, the
// counts sorted; a PreFilter rejection is "0/N nodes are available: <message>.") on the
// PodScheduled=False condition and a FailedScheduling event; "Successfully assigned ns/pod to node"
// as the Scheduled event.
//
// Level-triggered: an attempt recomputes everything from the informers and the cache (cache.ts:
// per node, the pods counted there and their summed requests, kept from pod events). Which pods
// are assumed on which node (waiting in PreBind for their claims) and the plugins' own memory
// (VolumeBinding's provisioning failures) are the only state, and losing either costs a less even
// spread or one more retry. Unschedulable pods (kube-scheduler's unschedulablePods) go back to the
// queue on the events that can make them fit: a node added or changed (not its heartbeats), a pod
// deleted or finished, and each plugin's own (claims, volumes, classes, CSI drivers for
// VolumeBinding); an event during a pod's own attempt sends it back too (kube-scheduler's
// moveRequestCycle), and a pod left unschedulable for 5 minutes is tried again all the same
// (podMaxInUnschedulablePodsDuration). Pods not yet tried, or waiting out a retry, are already in
// the queue: an event does not touch them, so 5000 volumes made for 5000 waiting pods cost 5000
// steps, not 25 million.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { rfc3339 } from '../api/time.js';
import type { Node, Pod } from '../api/types/core.js';
import { ControllerLoop, type SyncResult } from '../controllers/controller.js';
import type { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import { type InformerFactory, keyOf } from '../controllers/informer.js';
import { podIsFinished } from '../controllers/protection.js';
import type { ControllerDescriptor } from '../controllers/registry.js';
import { isDeleting } from '../controllers/volume-util.js';
import { SchedulerCache } from './cache.js';
import { addClaimIndexes } from './claims.js';
import { fitErrorMessage, reasonCounts } from './fit-error.js';
import { CycleState, Framework, type Plugin, type PostFilterHandle, type PostFilterOutcome, type Status } from './framework.js';
import { NodeInfo } from './node-info.js';
import type { PluginContext, SchedulerStore } from './plugin-context.js';
import { podPriority } from './pod-priority.js';
import { DEFAULT_SCHEDULER_NAME, PLUGINS, PROFILES, type ProfileConfig } from './profile.js';
import { SchedulingQueue } from './scheduling-queue.js';
import { CacheSnapshot, writeSnapshot } from './snapshot.js';
import { SchedulerThread } from './thread.js';

export { DEFAULT_SCHEDULER_NAME } from './profile.js';
export { podClaimNames } from './claims.js';
export { fitErrorMessage, reasonCounts } from './fit-error.js';

export interface SchedulerOptions {
  /** The store, or on the scheduler's own thread the proxy of it (plugin-context.ts). */
  store: SchedulerStore;
  informers: InformerFactory;
  registry: DriverRegistry;
  /** Events of the default profile (and of the others, without recorderFor). */
  recorder: EventSink;
  /** Each profile's events, reported by its schedulerName, as kube-scheduler does. */
  recorderFor?: (schedulerName: string) => EventSink;
  logger: Logger;
  /** The profiles to run (default PROFILES: default-scheduler). */
  profiles?: readonly ProfileConfig[];
  /** How long a node where a claim's provisioning failed is avoided for that claim. Default 5 min. */
  provisioningFailureMemoryMs?: number;
  /** First wait before a claim given up by its only feasible node is sent there again (doubles per failure, up to 10 s). Default 1000 ms. */
  rescheduleBackoffMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How long a pod stays unschedulable before it is tried again without an event (kube-scheduler's podMaxInUnschedulablePodsDuration). Default 5 min. */
  maxUnschedulableMs?: number;
  /** Called before and after each attempt (the scheduler's thread tells the control plane whether it is idle). */
  beforeSync?: () => void;
  afterSync?: () => void;
}

/**
 * kube-scheduler's numFeasibleNodesToFind with the default percentageOfNodesToScore (adaptive):
 * every node up to 100; above, 50% minus 1% per 125 nodes (at least 5%), and never fewer than 100.
 */
export function numFeasibleNodesToFind(numNodes: number): number {
  if (numNodes < 100) return numNodes;
  const percentage = Math.max(5, 50 - Math.trunc(numNodes / 125));
  return Math.max(100, Math.trunc((numNodes * percentage) / 100));
}

export class Scheduler {
  readonly loop: ControllerLoop;
  private readonly ctx: PluginContext;
  private readonly log: Logger;
  private readonly recorders = new Map<string, EventSink>();
  private readonly profiles = new Map<string, Framework>();
  /** Per node, the pods bound or assumed there (Reserve, while they wait in PreBind) and their requests. */
  private readonly cache = new SchedulerCache();
  /** Where the next attempt starts looking (kube-scheduler's nextStartNodeIndex). */
  private nextStartNodeIndex = 0;
  /** The nodes by name (dropped when a node is added or deleted; an update replaces its entry). */
  private nodeList: Node[] | undefined;
  private nodeIndex = new Map<string, number>();
  /**
   * Each node's NodeInfo (by its index in nodeList) from the last attempt that looked at it, reused
   * while the Node object is the same and the cache has not changed the node's pods (kube-
   * scheduler's snapshot, updated per change): its pod list, sums and allocatable are then worked
   * out once, not per pod.
   */
  private infoSlots: (NodeInfo | undefined)[] = [];
  /** Pods whose last attempt found no node, and since when (kube-scheduler's unschedulablePods). */
  private readonly unschedulablePods = new Map<string, number>();
  /** The pod being tried, and whether a move request (enqueuePending) came meanwhile. */
  private attempting: string | undefined;
  private movedDuringAttempt = false;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Pods unschedulable for longer than this are tried again without an event. */
  private readonly maxUnschedulableMs: number;
  /** Pods waiting for a node, by their status.nominatedNodeName (kube-scheduler's nominator). */
  private readonly nominated = new Map<string, Map<string, Pod>>();
  private readonly nominatedAt = new Map<string, string>();

  constructor(options: SchedulerOptions) {
    this.log = options.logger.child({ controller: 'scheduler' });
    this.maxUnschedulableMs = options.maxUnschedulableMs ?? 300_000;
    const recorderFor = options.recorderFor;
    const recorder = (name: string): EventSink => {
      let r = this.recorders.get(name);
      if (r === undefined) this.recorders.set(name, (r = name === DEFAULT_SCHEDULER_NAME || recorderFor === undefined ? options.recorder : recorderFor(name)));
      return r;
    };
    const backoff = {
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    };
    // Highest priority first (PrioritySort), a pod's priority read when it is queued.
    const queue = new SchedulingQueue((key) => {
      const pod = this.ctx.pods.get(key);
      return pod === undefined ? 0 : podPriority(pod);
    }, backoff);
    this.loop = new ControllerLoop({ name: 'scheduler', logger: options.logger, sync: (key) => this.sync(key), queue, ...backoff, ...(options.beforeSync === undefined ? {} : { beforeSync: options.beforeSync }), ...(options.afterSync === undefined ? {} : { afterSync: options.afterSync }) });
    const pods = options.informers.for('pods');
    const nodes = options.informers.for('nodes');
    this.ctx = {
      store: options.store,
      registry: options.registry,
      recorder: options.recorder,
      logger: this.log,
      pods,
      nodes,
      pvcs: options.informers.for('persistentvolumeclaims'),
      pvs: options.informers.for('persistentvolumes'),
      classes: options.informers.for('storageclasses'),
      informers: options.informers,
      enqueue: (key) => this.loop.enqueue(key),
      enqueuePending: () => this.enqueuePending(),
      nominatedOn: (nodeName) => [...(this.nominated.get(nodeName)?.values() ?? [])],
      provisioningFailureMemoryMs: options.provisioningFailureMemoryMs ?? 300_000,
      rescheduleBackoffMs: options.rescheduleBackoffMs ?? 1_000,
    };

    const needs = (pod: Pod): boolean => this.needsScheduling(pod);
    addClaimIndexes(this.ctx, needs);

    // Plugins: built once by name, shared by the profiles that list them.
    const built = new Map<string, Plugin>();
    for (const profile of options.profiles ?? PROFILES) {
      const plugins = profile.plugins.map(({ name, weight, args }) => {
        // Plugins with args of their own are built for them (a plugin's event handlers may then run twice).
        const id = args === undefined ? name : `${name} ${JSON.stringify(args)}`;
        let plugin = built.get(id);
        if (plugin === undefined) {
          const factory = PLUGINS[name];
          if (factory === undefined) throw new Error(`scheduler profile ${profile.schedulerName}: unknown plugin ${name}`);
          built.set(id, (plugin = factory(this.ctx, args ?? {})));
        }
        return weight === undefined ? { plugin } : { plugin, weight };
      });
      this.profiles.set(profile.schedulerName, new Framework(profile.schedulerName, plugins));
      recorder(profile.schedulerName);
    }

    const counted = (pod: Pod): string | undefined => (pod.spec?.nodeName && !podIsFinished(pod) ? pod.spec.nodeName : undefined);
    pods.addEventHandler({
      add: (pod) => {
        this.cache.setBound(keyOf(pod), pod, counted(pod));
        this.nominate(keyOf(pod), pod);
        if (needs(pod)) this.loop.enqueue(keyOf(pod));
      },
      update: (old, pod) => {
        this.cache.setBound(keyOf(pod), pod, counted(pod));
        this.nominate(keyOf(pod), pod);
        if (!needs(pod)) this.unschedulablePods.delete(keyOf(pod));
        // Our own status writes (PodScheduled=False) change only status: no new attempt for them.
        const changed = old === pod || !isDeepStrictEqual(old.spec, pod.spec) || !isDeepStrictEqual(old.metadata.labels, pod.metadata.labels) || old.metadata.deletionTimestamp !== pod.metadata.deletionTimestamp;
        if (needs(pod) && changed) this.loop.enqueue(keyOf(pod));
        // A pod that finished frees its node's resources and volume slots.
        if (old.spec?.nodeName && !podIsFinished(old) && podIsFinished(pod)) this.enqueuePending();
      },
      delete: (pod) => {
        this.unschedulablePods.delete(keyOf(pod));
        this.cache.setBound(keyOf(pod), undefined, undefined);
        this.nominate(keyOf(pod), undefined);
        this.cache.forget(keyOf(pod));
        if (pod.spec?.nodeName) this.enqueuePending();
      },
    });
    nodes.addEventHandler({
      add: () => {
        this.nodeList = undefined;
        this.enqueuePending();
      },
      // Heartbeats do not change where pods fit; allocatable, spec and labels do.
      update: (old, node) => {
        const i = this.nodeIndex.get(node.metadata.name ?? '');
        if (this.nodeList !== undefined && i !== undefined) this.nodeList[i] = node;
        if (old === node || !isDeepStrictEqual(old.spec, node.spec) || !isDeepStrictEqual(old.metadata.labels, node.metadata.labels) || !isDeepStrictEqual(old.status?.allocatable, node.status?.allocatable)) this.enqueuePending();
      },
      delete: () => {
        this.nodeList = undefined;
        this.enqueuePending(true);
      },
    });
  }

  private recorderOf(fw: Framework | undefined): EventSink {
    return this.recorders.get(fw?.schedulerName ?? DEFAULT_SCHEDULER_NAME) ?? this.ctx.recorder;
  }

  /** The profile for a pod (empty schedulerName: default-scheduler), if it is ours. */
  profileFor(pod: Pod): Framework | undefined {
    return this.profiles.get(pod.spec?.schedulerName || DEFAULT_SCHEDULER_NAME);
  }

  /** Waiting for a node: not bound, ours, not finished, not being deleted. */
  needsScheduling(pod: Pod): boolean {
    return !pod.spec?.nodeName && this.profileFor(pod) !== undefined && !isDeleting(pod) && !podIsFinished(pod);
  }

  start(): void {
    this.loop.start();
    // kube-scheduler's flushUnschedulablePodsLeftover, every 30 s.
    this.flushTimer = setInterval(() => this.flushUnschedulable(), Math.min(30_000, this.maxUnschedulableMs));
    this.flushTimer.unref();
  }

  stop(): Promise<void> {
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    return this.loop.stop();
  }

  /** Pods unschedulable for longer than maxUnschedulableMs, tried again. */
  private flushUnschedulable(now = Date.now()): void {
    for (const [k, since] of this.unschedulablePods) {
      if (now - since < this.maxUnschedulableMs) continue;
      this.unschedulablePods.delete(k);
      this.loop.enqueue(k);
    }
  }

  /**
   * The nodes by name (the order is kept between node additions and deletions; objects are
   * current: an update replaces its entry). Read only: rebuilt, not changed, when nodes come or go.
   */
  private sortedNodes(): readonly Node[] {
    if (this.nodeList === undefined) {
      this.cache.takeChanged();
      const list = this.ctx.nodes.list().sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
      this.nodeIndex = new Map(list.map((n, i) => [n.metadata.name ?? '', i]));
      this.nodeList = list;
      this.infoSlots = new Array(list.length);
    }
    // NodeInfos of nodes whose pods changed are made again.
    for (const name of this.cache.takeChanged()) {
      const i = this.nodeIndex.get(name);
      if (i !== undefined) this.infoSlots[i] = undefined;
    }
    return this.nodeList;
  }

  /** Keeps the nominator: a pod waiting for a node, under its status.nominatedNodeName. */
  private nominate(key: string, pod: Pod | undefined, nodeName = pod !== undefined && this.needsScheduling(pod) ? pod.status?.nominatedNodeName : undefined): void {
    const was = this.nominatedAt.get(key);
    if (was !== undefined && was !== nodeName) {
      const on = this.nominated.get(was);
      on?.delete(key);
      if (on?.size === 0) this.nominated.delete(was);
      this.nominatedAt.delete(key);
    }
    if (!nodeName || pod === undefined) return;
    let on = this.nominated.get(nodeName);
    if (on === undefined) this.nominated.set(nodeName, (on = new Map()));
    on.set(key, pod);
    this.nominatedAt.set(key, nodeName);
  }

  /** The pods nominated to the node that count there for this pod: other pods of at least its priority. */
  private nominatedFor(nodeName: string, pod: Pod, key: string): Pod[] {
    const on = this.nominated.get(nodeName);
    if (on === undefined) return [];
    const priority = podPriority(pod);
    const out: Pod[] = [];
    for (const [k, p] of on) if (k !== key && podPriority(p) >= priority) out.push(p);
    return out;
  }

  /**
   * kube-scheduler's MoveAllToActiveOrBackoffQueue: another attempt for every unschedulable pod,
   * and for the pod being tried now if it ends unschedulable; with `assumedToo` (their node is
   * gone) for the pods assumed on a node too (waiting in PreBind for their claims: kube-scheduler's
   * binding cycle), which otherwise their claims' events bring back.
   */
  private enqueuePending(assumedToo = false): void {
    if (this.attempting !== undefined) this.movedDuringAttempt = true;
    for (const k of this.unschedulablePods.keys()) this.loop.enqueue(k);
    this.unschedulablePods.clear();
    if (assumedToo) for (const k of [...this.cache.assumedKeys()]) this.loop.enqueue(k);
  }

  private sync(key: string): SyncResult | void {
    // Its binding (or another write of its last attempt) is in flight: tried once it is answered.
    if (this.ctx.store.whenWritten?.(key, () => this.loop.enqueue(key)) === true) return;
    this.unschedulablePods.delete(key);
    this.attempting = key;
    this.movedDuringAttempt = false;
    try {
      return this.attempt(key);
    } finally {
      this.attempting = undefined;
    }
  }

  private attempt(key: string): SyncResult | void {
    const pod = this.ctx.pods.get(key);
    const fw = pod === undefined ? undefined : this.profileFor(pod);
    if (pod === undefined || fw === undefined || !this.needsScheduling(pod)) {
      this.cache.forget(key);
      return;
    }
    const state = new CycleState();
    const nodes = this.sortedNodes();

    if (nodes.length === 0) return this.unschedulable(pod, 'no nodes available to schedule pods');

    // NodeInfos are made for the nodes looked at only (above 100 nodes, not all are). Pods
    // nominated to a node (waiting for their victims to go) count there for pods of no higher
    // priority (kube-scheduler runs the filters with and without them; Stowage only with).
    // Most nodes: their shared NodeInfo (infoSlots). The node the pod is assumed on (counting it
    // there) and nodes with nominated pods get one of their own for this attempt.
    const assumedOn = this.cache.assumedOn(key);
    const assumedIndex = assumedOn === undefined ? -1 : (this.nodeIndex.get(assumedOn) ?? -1);
    const withNominated = this.nominated.size > 0;
    let own: Map<number, NodeInfo> | undefined;
    const infoAt = (i: number): NodeInfo => {
      const n = nodes[i] as Node;
      if (i === assumedIndex || (withNominated && this.nominated.has(n.metadata.name ?? ''))) {
        let info = own?.get(i);
        if (info !== undefined && info.node === n) return info;
        const name = n.metadata.name ?? '';
        const extra = withNominated ? this.nominatedFor(name, pod, key) : [];
        if (i === assumedIndex || extra.length > 0) {
          info = new NodeInfo(n, this.cache.node(name), key);
          if (extra.length > 0) info = new NodeInfo(n, [...info.pods, ...extra]);
          (own ??= new Map()).set(i, info);
          return info;
        }
      }
      let info = this.infoSlots[i];
      if (info === undefined || info.node !== n) this.infoSlots[i] = info = new NodeInfo(n, this.cache.node(n.metadata.name ?? ''));
      return info;
    };
    writeSnapshot(state, new CacheSnapshot(nodes, infoAt, this.cache, (name) => this.ctx.nodes.get(name), key));
    const handle: PostFilterHandle = {
      numNodes: nodes.length,
      nodeInfos: () => nodes.map((_, i) => infoAt(i)),
      runFilter: (s, p, n) => fw.runFilter(s, p, n),
      addPod: (s, p, other, n) => fw.runPreFilterExtensionAddPod(s, p, other, n),
      removePod: (s, p, other, n) => fw.runPreFilterExtensionRemovePod(s, p, other, n),
    };

    const pre = fw.runPreFilter(state, pod);
    if (pre.code === 'Error') throw new Error(`${pre.plugin ?? 'PreFilter'}: ${pre.reasons.join(', ')}`);
    if (pre.code !== 'Success') {
      // Every node has the PreFilter's status; PostFilter (preemption) runs all the same.
      const statuses = new Map<string, Status>(nodes.map((n) => [n.metadata.name ?? '', pre]));
      const post = fw.runPostFilter(state, pod, statuses, handle);
      return this.unschedulable(pod, withPostFilter(fitErrorMessage(nodes.length, new Map(), pre.reasons.join(', ')), post), post.nominatedNodeName);
    }

    // The node the pod is assumed on (waiting in PreBind: its claims point there), else its
    // nominated node, first: if it passes, it is the node (kube-scheduler's evaluateNominatedNode).
    let chosen: NodeInfo | undefined;
    const firstNode = this.cache.assumedOn(key) ?? pod.status?.nominatedNodeName;
    const firstIndex = firstNode ? (this.nodeIndex.get(firstNode) ?? -1) : -1;
    if (firstIndex >= 0 && nodes[firstIndex]?.metadata.name === firstNode && fw.runFilter(state, pod, infoAt(firstIndex)).code === 'Success' && state.retryAfterMs === undefined) chosen = infoAt(firstIndex);

    if (chosen === undefined) {
      const start = this.nextStartNodeIndex % nodes.length;
      let result = this.filter(fw, state, pod, nodes.length, infoAt, start);
      let post: PostFilterOutcome | undefined;
      if (result.feasible.length === 0 && state.retryAfterMs === undefined) {
        post = fw.runPostFilter(state, pod, result.statuses, handle);
        if (post.filterAgain) {
          result = this.filter(fw, state, pod, nodes.length, infoAt, start);
          post = result.feasible.length === 0 && state.retryAfterMs === undefined ? fw.runPostFilter(state, pod, result.statuses, handle) : undefined;
        }
      }
      this.nextStartNodeIndex = (start + result.processed) % nodes.length;
      // A plugin could not decide yet (a capacity figure still being asked for): decide once it can.
      if (state.retryAfterMs !== undefined) return { requeueAfterMs: state.retryAfterMs };
      if (result.feasible.length === 0) return this.unschedulable(pod, withPostFilter(fitErrorMessage(nodes.length, reasonCounts(result.statuses.values())), post), post?.nominatedNodeName);
      chosen = this.pick(fw, state, pod, result.feasible);
    }
    const nodeName = chosen.name;

    // Reserve: counted on the node from now on, until bound or given up.
    this.cache.assume(key, pod, nodeName);
    const reserved = fw.runReserve(state, pod, nodeName);
    if (reserved.code !== 'Success') {
      this.cache.forget(key);
      throw new Error(`${reserved.plugin ?? 'Reserve'}: ${reserved.reasons.join(', ')}`);
    }
    const permit = fw.runPermit(state, pod, nodeName);
    if (permit.code !== 'Success') {
      fw.runUnreserve(state, pod, nodeName);
      this.cache.forget(key);
      if (permit.code === 'Wait') return { requeueAfterMs: permit.retryAfterMs ?? 1_000 };
      return this.unschedulable(pod, permit.reasons.join(', '));
    }
    const preBind = fw.runPreBind(state, pod, nodeName);
    if (preBind.code === 'Wait') {
      this.log.debug({ pod: key, node: nodeName }, "waiting for the pod's claims to be bound");
      return preBind.retryAfterMs === undefined ? undefined : { requeueAfterMs: preBind.retryAfterMs };
    }
    if (preBind.code !== 'Success') {
      fw.runUnreserve(state, pod, nodeName);
      this.cache.forget(key);
      throw new Error(`${preBind.plugin ?? 'PreBind'}: ${preBind.reasons.join(', ')}`);
    }
    const bound = fw.runBind(state, pod, nodeName);
    if (bound.code !== 'Success') {
      fw.runUnreserve(state, pod, nodeName);
      this.cache.forget(key);
      throw new Error(`${bound.plugin ?? 'Bind'}: ${bound.reasons.join(', ')}`);
    }
    // Still assumed there until the informer shows the binding (the cache then counts it as bound).
    const scheduled = (): void => {
      this.recorderOf(fw).event(pod, 'Normal', 'Scheduled', `Successfully assigned ${key} to ${nodeName}`);
      this.log.debug({ pod: key, node: nodeName }, 'scheduled');
    };
    if (this.ctx.store.afterWrites === undefined) scheduled();
    else this.ctx.store.afterWrites(scheduled);
  }

  /** The pod whose attempt runs now (its writes are its own: see writeFailed). */
  get attemptingKey(): string | undefined {
    return this.attempting;
  }

  /**
   * A write an attempt made through a proxy of the store (the scheduler on its own thread) failed
   * after the attempt returned, as a sync that threw would have: the pod is no longer counted where
   * it was assumed, and is tried again with the loop's backoff (a conflict: it was working from an
   * older copy of an object; not found: the pod or claim went meanwhile).
   */
  writeFailed(key: string, err: Error & { reason?: string }): void {
    this.cache.forget(key);
    this.unschedulablePods.delete(key);
    if (this.loop.queue.isShuttingDown) return;
    const delay = this.loop.queue.addRateLimited(key);
    if (err.reason === 'Conflict' || err.reason === 'NotFound') this.log.debug({ pod: key, reason: err.message, retryInMs: delay }, 'write failed; trying again');
    else this.log.warn({ pod: key, err: err.message, retryInMs: delay }, 'write failed; trying again');
  }

  /**
   * Filter over the nodes, from `start` round the list (kube-scheduler's nextStartNodeIndex), until
   * enough feasible nodes are found (numFeasibleNodesToFind): the feasible ones, each rejected node's
   * status, and how many nodes were looked at.
   */
  private filter(fw: Framework, state: CycleState, pod: Pod, count: number, nodeAt: (i: number) => NodeInfo, start: number): { feasible: NodeInfo[]; statuses: Map<string, Status>; processed: number } {
    const feasible: NodeInfo[] = [];
    const statuses = new Map<string, Status>();
    const wanted = numFeasibleNodesToFind(count);
    let processed = 0;
    while (processed < count && feasible.length < wanted) {
      const node = nodeAt((start + processed) % count);
      processed++;
      const s = fw.runFilter(state, pod, node);
      if (s.code === 'Success') feasible.push(node);
      else if (s.code === 'Error') throw new Error(`${s.plugin ?? 'Filter'} on node ${node.name}: ${s.reasons.join(', ')}`);
      else statuses.set(node.name, s);
    }
    return { feasible, statuses, processed };
  }

  /** The highest total score; ties: fewest pods, then the name. */
  private pick(fw: Framework, state: CycleState, pod: Pod, feasible: readonly NodeInfo[]): NodeInfo {
    if (feasible.length === 1) return feasible[0] as NodeInfo;
    const pre = fw.runPreScore(state, pod, feasible);
    if (pre.code !== 'Success') throw new Error(`${pre.plugin ?? 'PreScore'}: ${pre.reasons.join(', ')}`);
    const totals = fw.runScore(state, pod, feasible);
    let best = 0;
    for (let i = 1; i < feasible.length; i++) {
      const d = (totals[i] as number) - (totals[best] as number);
      if (d < 0) continue;
      const node = feasible[i] as NodeInfo;
      const other = feasible[best] as NodeInfo;
      const fewer = node.fitFigures().podCountFigure - other.fitFigures().podCountFigure;
      if (d > 0 || fewer < 0 || (fewer === 0 && node.name < other.name)) best = i;
    }
    return feasible[best] as NodeInfo;
  }

  /** PodScheduled=False (reason Unschedulable), a FailedScheduling event, and the nomination PostFilter asked for. */
  private unschedulable(pod: Pod, message: string, nominatedNodeName?: string): SyncResult | void {
    const key = keyOf(pod);
    this.cache.forget(key);
    // Waits for an event that could make it fit; one that came during this attempt already may have.
    if (this.movedDuringAttempt && this.attempting === key) this.loop.enqueue(key);
    else this.unschedulablePods.set(key, Date.now());
    this.recorderOf(this.profileFor(pod)).event(pod, 'Warning', 'FailedScheduling', message);
    this.log.debug({ pod: key, message }, 'unschedulable');
    const conditions = pod.status?.conditions ?? [];
    const current = conditions.find((c) => c.type === 'PodScheduled');
    const nominate = nominatedNodeName !== undefined && nominatedNodeName !== (pod.status?.nominatedNodeName ?? '');
    if (current?.status === 'False' && current.reason === 'Unschedulable' && current.message === message && !nominate) return;
    const condition = {
      type: 'PodScheduled',
      status: 'False',
      reason: 'Unschedulable',
      message,
      lastTransitionTime: current?.status === 'False' ? (current.lastTransitionTime ?? rfc3339()) : rfc3339(),
    };
    const { nominatedNodeName: _was, ...rest } = pod.status ?? {};
    const status = nominatedNodeName === undefined ? { ...pod.status } : nominatedNodeName === '' ? rest : { ...rest, nominatedNodeName };
    const updated = this.ctx.store.update({ ...pod, status: { ...status, conditions: [...conditions.filter((c) => c.type !== 'PodScheduled'), condition] } }, { subresource: 'status' }) as Pod;
    // The nominator knows at once (the informer's event follows).
    if (nominate) this.nominate(key, updated);
  }
}

/** FitError's text with the PostFilter plugins' message after it (" preemption: …"). */
function withPostFilter(message: string, post: PostFilterOutcome | undefined): string {
  return post === undefined || post.message === '' ? message : `${message} ${post.message}`;
}

/** kube-scheduler (registry.ts). */
export const SCHEDULER: ControllerDescriptor = {
  name: 'scheduler',
  description: 'kube-scheduler: the scheduling framework with its default plugins (resources, ports, taints, node affinity, volumes, pod affinity, topology spread, preemption), priority order, selected-node for WaitForFirstConsumer claims',
  init(ctx) {
    // On a thread of its own (thread.ts) where the machine has a core for it.
    if (ctx.schedulerThread) {
      const t = new SchedulerThread({ store: ctx.store, events: ctx.events, logger: ctx.logger, resyncMs: ctx.resyncMs, backoff: ctx.backoff, csiTimeoutMs: ctx.csiTimeoutMs });
      return { loops: [], idle: () => t.idle(), start: () => t.start(), stop: () => t.stop() };
    }
    const s = new Scheduler({ store: ctx.store, informers: ctx.informers, registry: ctx.registry, recorder: ctx.events.recorder(DEFAULT_SCHEDULER_NAME), recorderFor: (name) => ctx.events.recorder(name), logger: ctx.logger, ...ctx.backoff });
    return { loops: [s.loop], start: () => s.start(), stop: () => s.stop() };
  },
};
