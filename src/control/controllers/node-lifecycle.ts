// kube-controller-manager's node lifecycle controller. Why: a node whose agent died stayed Ready
// forever, and its pods with it. Every node-monitor-period (5 s) and on every change of a Node or
// its Lease, each node is looked at:
//   - health: the last time its kubelet was heard from is the later of its Lease's renewTime
//     (kube-node-lease/<node>) and its Ready condition's lastHeartbeatTime. Silent for longer than
//     node-monitor-grace-period (40 s): its MemoryPressure, DiskPressure, PIDPressure and Ready
//     conditions become Unknown, reason NodeStatusUnknown, "Kubelet stopped posting node status."
//     (NodeStatusNeverUpdated, "Kubelet never posted node status." for one it never posted), the
//     Node gets the event NodeNotReady ("Node X status is now: NodeNotReady") and its pods are
//     marked not ready (their Ready condition False, a Warning NodeNotReady "Node is not ready");
//   - taints (TaintNodesByCondition and the NoExecute taints of taint-based eviction):
//     node.kubernetes.io/not-ready (Ready False) or unreachable (Ready Unknown) with NoSchedule and
//     NoExecute (the NoExecute one with timeAdded), memory-pressure, disk-pressure, pid-pressure,
//     network-unavailable (their conditions True) and unschedulable (spec.unschedulable), all
//     NoSchedule. They go when their cause does; taints of anyone else are left alone.
//   - disruption (upstream's zone states, zones from topology.kubernetes.io/region and zone): when
//     no node anywhere is Ready, the controller assumes it is the one cut off ("master disruption
//     mode") and removes the not-ready/unreachable NoExecute taints instead of adding them; a zone
//     of at most 50 nodes with more than 2 not Ready and at least 55% of them (partial disruption)
//     gets no new ones. So a single-node `up` never evicts its own pods for a lost node.
// The pods themselves are evicted by the taint-eviction-controller (taint-eviction.ts).
import type { Logger } from 'pino';
import { rfc3339 } from '../api/time.js';
import type { Lease } from '../api/types/coordination.js';
import type { Node, NodeCondition, Pod, Taint } from '../api/types/core.js';
import { NODE_LEASE_NAMESPACE } from '../node/node-lease.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import type { Informer } from './informer.js';
import type { ControllerDescriptor } from './registry.js';

/** kube-controller-manager's --node-monitor-grace-period default. */
export const NODE_MONITOR_GRACE_PERIOD_MS = 40_000;
/** kube-controller-manager's --node-startup-grace-period default: for a node that never posted Ready. */
export const NODE_STARTUP_GRACE_PERIOD_MS = 60_000;
/** kube-controller-manager's --node-monitor-period default. */
export const NODE_MONITOR_PERIOD_MS = 5_000;

export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
/** The NoSchedule taints TaintNodesByCondition derives from a condition being True. */
const CONDITION_TAINTS: readonly (readonly [string, string])[] = [
  ['MemoryPressure', 'node.kubernetes.io/memory-pressure'],
  ['DiskPressure', 'node.kubernetes.io/disk-pressure'],
  ['PIDPressure', 'node.kubernetes.io/pid-pressure'],
  ['NetworkUnavailable', 'node.kubernetes.io/network-unavailable'],
];
export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';
/** Every taint key this controller owns. */
const MANAGED_KEYS = new Set([TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, ...CONDITION_TAINTS.map(([, k]) => k)]);
/** The conditions the kubelet posts and the controller turns Unknown. */
const KUBELET_CONDITIONS = ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'];
const POD_NODE_INDEX = 'node-lifecycle/nodeName';
/** Upstream's --unhealthy-zone-threshold and --large-cluster-size-threshold defaults. */
const UNHEALTHY_ZONE_THRESHOLD = 0.55;
const LARGE_CLUSTER_THRESHOLD = 50;

/** What may happen to a node's not-ready/unreachable NoExecute taints: added, only kept, or removed. */
export type NoExecuteMode = 'add' | 'keep' | 'remove';

/** A node's zone key, as upstream's GetZoneKey (region and zone labels). */
function zoneOf(node: Node): string {
  const labels = node.metadata.labels ?? {};
  return `${labels['topology.kubernetes.io/region'] ?? ''}:\0:${labels['topology.kubernetes.io/zone'] ?? ''}`;
}

/**
 * The NoExecute mode of every zone (ComputeZoneState and handleDisruption): no Ready node at all →
 * remove everywhere; a zone in partial disruption (more than 2 nodes not Ready, at least 55%)
 * of at most 50 nodes → keep (no new taints); otherwise add.
 */
export function zoneModes(nodes: readonly Node[], ready: (n: Node) => boolean = (n) => n.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True'): Map<string, NoExecuteMode> {
  const counts = new Map<string, { ready: number; notReady: number }>();
  for (const n of nodes) {
    const c = counts.get(zoneOf(n)) ?? { ready: 0, notReady: 0 };
    if (ready(n)) c.ready++;
    else c.notReady++;
    counts.set(zoneOf(n), c);
  }
  const modes = new Map<string, NoExecuteMode>();
  const allDown = nodes.length > 0 && [...counts.values()].every((c) => c.ready === 0);
  for (const [zone, c] of counts) {
    const partial = c.notReady > 2 && c.notReady / (c.ready + c.notReady) >= UNHEALTHY_ZONE_THRESHOLD && c.ready > 0;
    modes.set(zone, allDown ? 'remove' : partial && c.ready + c.notReady <= LARGE_CLUSTER_THRESHOLD ? 'keep' : 'add');
  }
  return modes;
}

function ms(time: string | undefined): number | undefined {
  if (time === undefined) return undefined;
  const t = Date.parse(time);
  return Number.isNaN(t) ? undefined : t;
}

/** When the node's kubelet was last heard from (its Lease or its Ready heartbeat), in ms; undefined: never. */
export function lastHeard(node: Node, lease: Lease | undefined): number | undefined {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const times = [ms(lease?.spec?.renewTime), ms(ready?.lastHeartbeatTime)].filter((t): t is number => t !== undefined);
  return times.length === 0 ? undefined : Math.max(...times);
}

/**
 * The conditions of a node silent past its grace period: the kubelet's conditions Unknown (those
 * already Unknown kept as they are). Undefined when nothing changes.
 */
export function unknownConditions(node: Node, now: number): NodeCondition[] | undefined {
  const conditions = node.status?.conditions ?? [];
  const at = rfc3339(new Date(now));
  let changed = false;
  const out = conditions.map((c) => {
    if (!KUBELET_CONDITIONS.includes(c.type) || c.status === 'Unknown') return c;
    changed = true;
    return { ...c, status: 'Unknown' as const, reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: at };
  });
  for (const type of KUBELET_CONDITIONS) {
    if (out.some((c) => c.type === type)) continue;
    changed = true;
    out.push({
      type,
      status: 'Unknown',
      reason: 'NodeStatusNeverUpdated',
      message: 'Kubelet never posted node status.',
      ...(node.metadata.creationTimestamp === undefined ? {} : { lastHeartbeatTime: node.metadata.creationTimestamp }),
      lastTransitionTime: at,
    });
  }
  return changed ? out : undefined;
}

/**
 * The node's taints as they should be: the ones this controller manages derived from its
 * conditions and spec.unschedulable, everyone else's kept; a taint that stays keeps its timeAdded.
 */
export function desiredTaints(node: Node, now: number, noExecute: NoExecuteMode = 'add'): Taint[] {
  const conditions = node.status?.conditions ?? [];
  const status = (type: string): string | undefined => conditions.find((c) => c.type === type)?.status;
  const want: Taint[] = [];
  const ready = status('Ready');
  const readyKey = ready === 'False' ? TAINT_NOT_READY : ready === 'Unknown' ? TAINT_UNREACHABLE : undefined;
  const current = node.spec?.taints ?? [];
  if (readyKey !== undefined) {
    want.push({ key: readyKey, effect: 'NoSchedule' });
    const has = current.some((t) => t.key === readyKey && t.effect === 'NoExecute');
    if (noExecute === 'add' || (noExecute === 'keep' && has)) want.push({ key: readyKey, effect: 'NoExecute', timeAdded: rfc3339(new Date(now)) });
  }
  for (const [type, key] of CONDITION_TAINTS) if (status(type) === 'True') want.push({ key, effect: 'NoSchedule' });
  if (node.spec?.unschedulable === true) want.push({ key: TAINT_UNSCHEDULABLE, effect: 'NoSchedule' });
  const kept = current.filter((t) => !MANAGED_KEYS.has(t.key) || want.some((w) => w.key === t.key && w.effect === t.effect));
  const added = want.filter((w) => !current.some((t) => t.key === w.key && t.effect === w.effect));
  return [...kept, ...added];
}

function sameTaints(a: readonly Taint[], b: readonly Taint[]): boolean {
  return a.length === b.length && a.every((t, i) => t.key === b[i]?.key && t.effect === b[i]?.effect && (t.value ?? '') === (b[i]?.value ?? ''));
}

export interface NodeLifecycleOptions {
  store: Store;
  nodes: Informer<Node>;
  leases: Informer<Lease>;
  pods: Informer<Pod>;
  /** Events of the node-controller (Nodes and their pods). */
  events: EventSink;
  logger: Logger;
  /** --node-monitor-grace-period. Default 40 s. */
  gracePeriodMs?: number;
  /** --node-monitor-period. Default 5 s. */
  monitorPeriodMs?: number;
  /** The clock (tests). */
  now?: () => number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class NodeLifecycleController {
  readonly loop: ControllerLoop;
  private readonly o: NodeLifecycleOptions;
  private readonly grace: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  /** Zone modes (zoneModes), recomputed at most once a monitor period. */
  private zones: { at: number; modes: Map<string, NoExecuteMode> } | undefined;

  constructor(options: NodeLifecycleOptions) {
    this.o = options;
    this.grace = options.gracePeriodMs ?? NODE_MONITOR_GRACE_PERIOD_MS;
    this.now = options.now ?? Date.now;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'node-lifecycle', logger: options.logger, sync: (name) => this.syncNode(name), workers: 2, ...backoff });
    options.pods.addIndex(POD_NODE_INDEX, (p) => (p.spec.nodeName ? [p.spec.nodeName] : []));
    const enqueue = (n: Node): void => this.loop.enqueue(n.metadata.name ?? '');
    options.nodes.addEventHandler({ add: enqueue, update: (_o, n) => enqueue(n) });
    const enqueueLease = (l: Lease): void => {
      if (l.metadata.namespace === NODE_LEASE_NAMESPACE) this.loop.enqueue(l.metadata.name ?? '');
    };
    options.leases.addEventHandler({ add: enqueueLease, update: (_o, l) => enqueueLease(l) });
  }

  /** One look at a node: its health, then its taints; then when to look again. */
  syncNode(name: string): SyncResult | undefined {
    const { store } = this.o;
    // From the informers (as kube-controller-manager's listers): a lease renewal is a map lookup,
    // not two reads of the store, and 5000 nodes renew every 10 s. A write from a stale copy is a
    // Conflict, retried.
    let node = this.o.nodes.get(name);
    if (node === undefined) return undefined;
    const now = this.now();
    const lease = this.leaseOf(name);
    // A node never heard from counts from its creation, as upstream's probe timestamps start then.
    const heard = lastHeard(node, lease) ?? ms(node.metadata.creationTimestamp) ?? now;
    let requeueAfterMs: number | undefined;
    // A node that never posted Ready gets the (longer) startup grace period, as upstream.
    const posted = node.status?.conditions?.some((c) => c.type === 'Ready') === true;
    const grace = posted ? this.grace : Math.max(this.grace, NODE_STARTUP_GRACE_PERIOD_MS);
    if (now - heard > grace) {
      const wasReady = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      const conditions = unknownConditions(node, now);
      if (conditions !== undefined) {
        node = store.update<Node>({ ...node, status: { ...node.status, conditions } }, { subresource: 'status' });
        this.o.logger.info({ node: name, silentForMs: now - heard }, 'node stopped posting status: conditions Unknown');
        if (wasReady) this.o.events.event(node, 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`);
      }
      this.markPodsNotReady(name, now);
    } else {
      requeueAfterMs = heard + grace - now + 1;
    }
    // Zone states computed before this node went silent do not count it: recompute them.
    const taints = desiredTaints(node, now, this.zoneMode(node, now, now - heard > grace ? heard + grace : undefined));
    if (!sameTaints(taints, node.spec?.taints ?? [])) {
      const { taints: _old, ...rest } = node.spec ?? {};
      store.update<Node>({ ...node, spec: taints.length === 0 ? rest : { ...rest, taints } });
    }
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  private leaseOf(nodeName: string): Lease | undefined {
    return this.o.leases.getByName(NODE_LEASE_NAMESPACE, nodeName);
  }

  /** The node's zone's NoExecute mode; `silentSince`: when this node went past its grace period. */
  private zoneMode(node: Node, now: number, silentSince?: number): NoExecuteMode {
    const period = this.o.monitorPeriodMs ?? NODE_MONITOR_PERIOD_MS;
    if (this.zones === undefined || now - this.zones.at >= period || now < this.zones.at || (silentSince !== undefined && this.zones.at < silentSince)) {
      // Ready as this controller sees it: Ready True and heard from within the grace period, so
      // that nodes gone silent together count as down before their conditions are updated.
      const ready = (n: Node): boolean => {
        if (n.status?.conditions?.find((x) => x.type === 'Ready')?.status !== 'True') return false;
        const heard = lastHeard(n, this.leaseOf(n.metadata.name ?? ''));
        return heard !== undefined && now - heard <= this.grace;
      };
      const nodes = this.o.nodes.list();
      const modes = zoneModes(nodes, ready);
      const before = this.zones?.modes;
      let changed = false;
      for (const [zone, mode] of modes) {
        if (before?.get(zone) === mode || (mode === 'add' && before === undefined)) continue;
        changed = true;
        this.o.logger.warn({ zone: zone.replace('\0', ''), mode }, mode === 'remove' ? 'no node is Ready: master disruption mode, no NoExecute taints' : mode === 'keep' ? 'zone in partial disruption: no new NoExecute taints' : 'zone back to normal');
      }
      // A zone whose state changed: every node's taints are decided again.
      if (changed) for (const n of nodes) this.loop.enqueue(n.metadata.name ?? '');
      this.zones = { at: now, modes };
    }
    return this.zones.modes.get(zoneOf(node)) ?? 'add';
  }

  /** MarkPodsNotReady: the node's pods that still say Ready get Ready False and an event. */
  private markPodsNotReady(nodeName: string, now: number): void {
    const { store, pods } = this.o;
    for (const cached of pods.byIndex(POD_NODE_INDEX, nodeName)) {
      const pod = store.get('pods', cached.metadata.namespace, cached.metadata.name ?? '') as Pod | undefined;
      if (pod === undefined || pod.spec.nodeName !== nodeName) continue;
      const conditions = pod.status?.conditions ?? [];
      if (!conditions.some((c) => c.type === 'Ready' && c.status === 'True')) continue;
      const next = conditions.map((c) => (c.type === 'Ready' ? { ...c, status: 'False', lastTransitionTime: rfc3339(new Date(now)) } : c));
      store.update<Pod>({ ...pod, status: { ...pod.status, conditions: next } }, { subresource: 'status' });
      this.o.events.event(pod, 'Warning', 'NodeNotReady', 'Node is not ready');
    }
  }

  start(): void {
    this.loop.start();
    const period = this.o.monitorPeriodMs ?? NODE_MONITOR_PERIOD_MS;
    this.timer = setInterval(() => {
      for (const n of this.o.nodes.list()) this.loop.enqueue(n.metadata.name ?? '');
    }, period);
    this.timer.unref();
  }

  stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    return this.loop.stop();
  }
}

/** kube-controller-manager's node lifecycle controller (registry.ts). */
export const NODE_LIFECYCLE: ControllerDescriptor = {
  name: 'node-lifecycle-controller',
  aliases: ['nodelifecycle'],
  description: 'Nodes whose kubelet went silent: conditions Unknown, pods not ready; taints from conditions (TaintNodesByCondition)',
  init(ctx) {
    const c = new NodeLifecycleController({
      store: ctx.store,
      nodes: ctx.informers.for('nodes'),
      leases: ctx.informers.for('leases'),
      pods: ctx.informers.for('pods'),
      events: ctx.events.recorder('node-controller'),
      logger: ctx.logger.child({ controller: 'node-lifecycle' }),
      ...(ctx.nodeLifecycle?.gracePeriodMs === undefined ? {} : { gracePeriodMs: ctx.nodeLifecycle.gracePeriodMs }),
      ...(ctx.nodeLifecycle?.monitorPeriodMs === undefined ? {} : { monitorPeriodMs: ctx.nodeLifecycle.monitorPeriodMs }),
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
