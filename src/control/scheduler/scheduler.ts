// kube-scheduler's scheduling cycle on the framework (framework.ts): a pod with no spec.nodeName
// whose spec.schedulerName names one of our profiles (profile.ts; empty: default-scheduler) gets a
// node. Per attempt: PreFilter; Filter over every node (first failing plugin decides each node);
// if none passes, PostFilter and, when a plugin relaxed something, Filter again; PreScore and Score
// over the feasible nodes (weighted sum; ties go to the node with fewest pods, then to the name,
// where kube-scheduler picks at random: placements stay reproducible); Reserve (the pod is assumed
// on the node: counted there by every plugin); Permit; PreBind; Bind.
//
// Messages are Kubernetes': "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2
// node(s) didn't match Pod's node affinity/selector." (FitError: each node's reasons counted, the
// counts sorted; a PreFilter rejection is "0/N nodes are available: <message>.") on the
// PodScheduled=False condition and a FailedScheduling event; "Successfully assigned ns/pod to node"
// as the Scheduled event.
//
// Level-triggered: an attempt recomputes everything from the informers. Which pods are assumed on
// which node (waiting in PreBind for their claims) and the plugins' own memory (VolumeBinding's
// provisioning failures) are the only state, and losing either costs a less even spread or one
// more retry. Pods go back to the queue on the events that can make them fit: a node added or
// changed (not its heartbeats), a pod deleted or finished, and each plugin's own (claims, volumes,
// classes, CSI drivers for VolumeBinding).
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { rfc3339 } from '../api/time.js';
import type { Node, Pod } from '../api/types/core.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from '../controllers/controller.js';
import type { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import { type InformerFactory, keyOf } from '../controllers/informer.js';
import { podIsFinished } from '../controllers/protection.js';
import type { ControllerDescriptor } from '../controllers/registry.js';
import { isDeleting } from '../controllers/volume-util.js';
import { addClaimIndexes } from './claims.js';
import { CycleState, Framework, type Plugin, type Status } from './framework.js';
import { NodeInfo } from './node-info.js';
import { IDX_ACTIVE_BY_NODE, type PluginContext } from './plugin-context.js';
import { DEFAULT_SCHEDULER_NAME, PLUGINS, PROFILES, type ProfileConfig } from './profile.js';

export { DEFAULT_SCHEDULER_NAME } from './profile.js';
export { podClaimNames } from './claims.js';

export interface SchedulerOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  logger: Logger;
  /** The profiles to run (default PROFILES: default-scheduler). */
  profiles?: readonly ProfileConfig[];
  /** How long a node where a claim's provisioning failed is avoided for that claim. Default 5 min. */
  provisioningFailureMemoryMs?: number;
  /** First wait before a claim given up by its only feasible node is sent there again (doubles per failure, up to 10 s). Default 1000 ms. */
  rescheduleBackoffMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_PENDING = 'scheduler:pending';

/** Kubernetes' FitError text: "0/N nodes are available: <prefilter>. <count reason, …>." */
export function fitErrorMessage(numNodes: number, reasons: ReadonlyMap<string, number>, preFilter?: string): string {
  let msg = `0/${numNodes} nodes are available:`;
  if (preFilter !== undefined) msg += ` ${preFilter}.`;
  const histogram = [...reasons].map(([reason, n]) => `${n} ${reason}`).sort();
  if (histogram.length > 0) msg += ` ${histogram.join(', ')}.`;
  return msg;
}

/** Each reason of each rejected node, counted (FitError's histogram). */
export function reasonCounts(statuses: Iterable<Status>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of statuses) for (const r of s.reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

export class Scheduler {
  readonly loop: ControllerLoop;
  private readonly ctx: PluginContext;
  private readonly log: Logger;
  private readonly recorder: EventSink;
  private readonly profiles = new Map<string, Framework>();
  /** Pods reserved on a node while they wait for PreBind (their claims), by key → node. */
  private readonly assumed = new Map<string, string>();

  constructor(options: SchedulerOptions) {
    this.log = options.logger.child({ controller: 'scheduler' });
    this.recorder = options.recorder;
    this.loop = new ControllerLoop({
      name: 'scheduler',
      logger: options.logger,
      sync: (key) => this.sync(key),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
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
      assumed: this.assumed,
      enqueue: (key) => this.loop.enqueue(key),
      enqueuePending: () => this.enqueuePending(),
      provisioningFailureMemoryMs: options.provisioningFailureMemoryMs ?? 300_000,
      rescheduleBackoffMs: options.rescheduleBackoffMs ?? 1_000,
    };

    const needs = (pod: Pod): boolean => this.needsScheduling(pod);
    pods.addIndex(IDX_PENDING, (pod) => (needs(pod) ? [''] : []));
    pods.addIndex(IDX_ACTIVE_BY_NODE, (pod) => (pod.spec?.nodeName && !podIsFinished(pod) ? [pod.spec.nodeName] : []));
    addClaimIndexes(this.ctx, needs);

    // Plugins: built once by name, shared by the profiles that list them.
    const built = new Map<string, Plugin>();
    for (const profile of options.profiles ?? PROFILES) {
      const plugins = profile.plugins.map(({ name, weight }) => {
        let plugin = built.get(name);
        if (plugin === undefined) {
          const factory = PLUGINS[name];
          if (factory === undefined) throw new Error(`scheduler profile ${profile.schedulerName}: unknown plugin ${name}`);
          built.set(name, (plugin = factory(this.ctx)));
        }
        return weight === undefined ? { plugin } : { plugin, weight };
      });
      this.profiles.set(profile.schedulerName, new Framework(profile.schedulerName, plugins));
    }

    pods.addEventHandler({
      add: (pod) => needs(pod) && this.loop.enqueue(keyOf(pod)),
      update: (old, pod) => {
        // Our own status writes (PodScheduled=False) change only status: no new attempt for them.
        const changed = old === pod || !isDeepStrictEqual(old.spec, pod.spec) || !isDeepStrictEqual(old.metadata.labels, pod.metadata.labels) || old.metadata.deletionTimestamp !== pod.metadata.deletionTimestamp;
        if (needs(pod) && changed) this.loop.enqueue(keyOf(pod));
        // A pod that finished frees its node's resources and volume slots.
        if (old.spec?.nodeName && !podIsFinished(old) && podIsFinished(pod)) this.enqueuePending();
      },
      delete: (pod) => {
        this.assumed.delete(keyOf(pod));
        if (pod.spec?.nodeName) this.enqueuePending();
      },
    });
    nodes.addEventHandler({
      add: () => this.enqueuePending(),
      // Heartbeats do not change where pods fit; allocatable, spec and labels do.
      update: (old, node) =>
        (old === node || !isDeepStrictEqual(old.spec, node.spec) || !isDeepStrictEqual(old.metadata.labels, node.metadata.labels) || !isDeepStrictEqual(old.status?.allocatable, node.status?.allocatable)) && this.enqueuePending(),
      delete: () => this.enqueuePending(),
    });
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
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private enqueuePending(): void {
    for (const k of this.ctx.pods.indexKeys(IDX_PENDING, '')) this.loop.enqueue(k);
  }

  /** The node with the pods counted on it: bound and not finished, and assumed there (never the pod itself). */
  private nodeInfo(node: Node, podKey: string): NodeInfo {
    const name = node.metadata.name ?? '';
    const pods = this.ctx.pods.byIndex(IDX_ACTIVE_BY_NODE, name).filter((p) => keyOf(p) !== podKey);
    for (const [k, n] of this.assumed) {
      if (n !== name || k === podKey) continue;
      const p = this.ctx.pods.get(k);
      if (p !== undefined && !p.spec.nodeName) pods.push(p);
    }
    return new NodeInfo(node, pods);
  }

  private sync(key: string): SyncResult | void {
    const pod = this.ctx.pods.get(key);
    const fw = pod === undefined ? undefined : this.profileFor(pod);
    if (pod === undefined || fw === undefined || !this.needsScheduling(pod)) {
      this.assumed.delete(key);
      return;
    }
    const state = new CycleState();
    const nodes = this.ctx.nodes.list().sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));

    const pre = fw.runPreFilter(state, pod);
    if (pre.code === 'Error') throw new Error(`${pre.plugin ?? 'PreFilter'}: ${pre.reasons.join(', ')}`);
    if (pre.code !== 'Success') return this.unschedulable(pod, fitErrorMessage(nodes.length, new Map(), pre.reasons.join(', ')));
    if (nodes.length === 0) return this.unschedulable(pod, 'no nodes available to schedule pods');

    const infos = nodes.map((n) => this.nodeInfo(n, key));
    let result = this.filter(fw, state, pod, infos);
    if (result.feasible.length === 0 && fw.runPostFilter(state, pod, result.statuses)) result = this.filter(fw, state, pod, infos);
    // A plugin could not decide yet (a capacity figure still being asked for): decide once it can.
    if (state.retryAfterMs !== undefined) return { requeueAfterMs: state.retryAfterMs };
    if (result.feasible.length === 0) return this.unschedulable(pod, fitErrorMessage(nodes.length, reasonCounts(result.statuses.values())));

    const chosen = this.pick(fw, state, pod, result.feasible);
    const nodeName = chosen.name;

    // Reserve: counted on the node from now on, until bound or given up.
    this.assumed.set(key, nodeName);
    const reserved = fw.runReserve(state, pod, nodeName);
    if (reserved.code !== 'Success') {
      this.assumed.delete(key);
      throw new Error(`${reserved.plugin ?? 'Reserve'}: ${reserved.reasons.join(', ')}`);
    }
    const permit = fw.runPermit(state, pod, nodeName);
    if (permit.code !== 'Success') {
      fw.runUnreserve(state, pod, nodeName);
      this.assumed.delete(key);
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
      this.assumed.delete(key);
      throw new Error(`${preBind.plugin ?? 'PreBind'}: ${preBind.reasons.join(', ')}`);
    }
    const bound = fw.runBind(state, pod, nodeName);
    if (bound.code !== 'Success') {
      fw.runUnreserve(state, pod, nodeName);
      this.assumed.delete(key);
      throw new Error(`${bound.plugin ?? 'Bind'}: ${bound.reasons.join(', ')}`);
    }
    this.assumed.delete(key);
    this.recorder.event(pod, 'Normal', 'Scheduled', `Successfully assigned ${key} to ${nodeName}`);
    this.log.debug({ pod: key, node: nodeName }, 'scheduled');
  }

  /** Filter over every node: the feasible ones, and each other node's status. */
  private filter(fw: Framework, state: CycleState, pod: Pod, nodes: readonly NodeInfo[]): { feasible: NodeInfo[]; statuses: Map<string, Status> } {
    const feasible: NodeInfo[] = [];
    const statuses = new Map<string, Status>();
    for (const node of nodes) {
      const s = fw.runFilter(state, pod, node);
      if (s.code === 'Success') feasible.push(node);
      else if (s.code === 'Error') throw new Error(`${s.plugin ?? 'Filter'} on node ${node.name}: ${s.reasons.join(', ')}`);
      else statuses.set(node.name, s);
    }
    return { feasible, statuses };
  }

  /** The highest total score; ties: fewest pods, then the name (nodes come sorted by name). */
  private pick(fw: Framework, state: CycleState, pod: Pod, feasible: readonly NodeInfo[]): NodeInfo {
    if (feasible.length === 1) return feasible[0] as NodeInfo;
    const pre = fw.runPreScore(state, pod, feasible);
    if (pre.code !== 'Success') throw new Error(`${pre.plugin ?? 'PreScore'}: ${pre.reasons.join(', ')}`);
    const totals = fw.runScore(state, pod, feasible);
    let best = feasible[0] as NodeInfo;
    for (const node of feasible.slice(1)) {
      const d = (totals.get(node.name) ?? 0) - (totals.get(best.name) ?? 0);
      if (d > 0 || (d === 0 && node.pods.length < best.pods.length)) best = node;
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
    this.ctx.store.update({ ...pod, status: { ...pod.status, conditions: [...conditions.filter((c) => c.type !== 'PodScheduled'), condition] } }, { subresource: 'status' });
  }
}

/** kube-scheduler (registry.ts). */
export const SCHEDULER: ControllerDescriptor = {
  name: 'scheduler',
  description: 'kube-scheduler: the scheduling framework with its default plugins (resources, ports, taints, node affinity, volumes), selected-node for WaitForFirstConsumer claims',
  init(ctx) {
    const s = new Scheduler({ store: ctx.store, informers: ctx.informers, registry: ctx.registry, recorder: ctx.events.recorder(DEFAULT_SCHEDULER_NAME), logger: ctx.logger, ...ctx.backoff });
    return { loops: [s.loop], start: () => s.start(), stop: () => s.stop() };
  },
};
