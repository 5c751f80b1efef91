// PodTopologySpread: spreads a pod's group over topology domains (the values of a node label), as
// kube-scheduler does it, from spec.topologySpreadConstraints:
//
//   DoNotSchedule  Filter. PreFilter counts, per constraint and domain, the pods of the pod's namespace
//                  matching the constraint's labelSelector (plus matchLabelKeys from the pod's own
//                  labels; not those being deleted) on the nodes that have every constraint's key and
//                  pass its nodeAffinityPolicy (default Honor: nodeSelector and required node affinity)
//                  and nodeTaintsPolicy (default Ignore). A node is refused when its domain's count,
//                  plus one if the pod matches the selector, minus the smallest domain's count (0
//                  while fewer domains than minDomains exist) exceeds maxSkew: "node(s) didn't match
//                  pod topology spread constraints"; a node without the key is refused with
//                  "… (missing required label)" (UnschedulableAndUnresolvable).
//   ScheduleAnyway Score. Each feasible node scores, per constraint, its domain's count times
//                  log(domains + 2) plus maxSkew − 1 (hostname: the node's own pods); fewer is better,
//                  normalized in reverse to 0..100 (weight 2 in the default profile).
//
// A pod without constraints gets the system defaults that replaced SelectorSpread: hostname maxSkew
// 3 and zone maxSkew 5, ScheduleAnyway, with the selector of the ReplicaSet or StatefulSet that
// controls the pod (Stowage serves no Services or ReplicationControllers); nodes without a zone
// label still spread by hostname. A node's matching pods are read from the cache's per-selector
// counts (match-counts.ts), so an attempt costs one look per node, not one per placed pod; the
// smallest domain and whether the pod matches itself are worked out once, in PreFilter.
import type { ReplicaSet, StatefulSet } from '../../api/types/apps.js';
import type { Node, Pod } from '../../api/types/core.js';
import type { LabelRequirement } from '../../api/label-selector.js';
import { matchesLabels } from '../../api/label-selector.js';
import type { LabelSelector } from '../../api/types/meta.js';
import type { Informer } from '../../controllers/informer.js';
import { HOSTNAME_LABEL, requirementsOf } from '../affinity-terms.js';
import { type CycleState, type FilterPlugin, MAX_NODE_SCORE, type NodeScore, type PostFilterPlugin, type PreFilterPlugin, type PreScorePlugin, type ScorePlugin, SKIP, SUCCESS, type Status, unresolvable, unschedulable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';
import { RejectedPods } from '../rejected-pods.js';
import { readSnapshot, type Snapshot } from '../snapshot.js';
import { podMatchesNode } from './node-affinity.js';
import { untoleratedTaint } from './taint-toleration.js';

export const REASON_SPREAD = "node(s) didn't match pod topology spread constraints";
export const REASON_SPREAD_LABEL = `${REASON_SPREAD} (missing required label)`;

const MISSING_LABEL = Object.freeze(unresolvable(REASON_SPREAD_LABEL));
const SKEWED = Object.freeze(unschedulable(REASON_SPREAD));

const ZONE_LABEL = 'topology.kubernetes.io/zone';
const PREFILTER_KEY = 'PreFilterPodTopologySpread';
const PRESCORE_KEY = 'PreScorePodTopologySpread';

type Action = 'DoNotSchedule' | 'ScheduleAnyway';
type Policy = 'Honor' | 'Ignore';

export interface TopologySpreadConstraintSpec {
  maxSkew: number;
  topologyKey: string;
  whenUnsatisfiable: Action;
  labelSelector?: LabelSelector | null;
  minDomains?: number;
  nodeAffinityPolicy?: Policy;
  nodeTaintsPolicy?: Policy;
  matchLabelKeys?: string[];
}

interface Constraint {
  maxSkew: number;
  topologyKey: string;
  /** null: selects nothing; []: selects everything (and then counts nothing, as kube-scheduler). */
  selector: readonly LabelRequirement[] | null;
  minDomains: number;
  nodeAffinityPolicy: Policy;
  nodeTaintsPolicy: Policy;
}

/** kube-scheduler's systemDefaultConstraints. */
const SYSTEM_DEFAULTS: readonly TopologySpreadConstraintSpec[] = [
  { topologyKey: HOSTNAME_LABEL, whenUnsatisfiable: 'ScheduleAnyway', maxSkew: 3 },
  { topologyKey: ZONE_LABEL, whenUnsatisfiable: 'ScheduleAnyway', maxSkew: 5 },
];

function constraintsOf(specs: readonly TopologySpreadConstraintSpec[], labels: Record<string, string>, action: Action): Constraint[] {
  const out: Constraint[] = [];
  for (const c of specs) {
    if (c.whenUnsatisfiable !== action) continue;
    let selector = requirementsOf(c.labelSelector);
    if (selector !== null) {
      // matchLabelKeys: "key=<the pod's value>" for each key the pod has.
      const extra: LabelRequirement[] = [];
      for (const key of Array.isArray(c.matchLabelKeys) ? c.matchLabelKeys : []) if (Object.hasOwn(labels, key)) extra.push({ key, operator: 'Equals', values: [labels[key] ?? ''] });
      selector = [...extra, ...selector];
    }
    out.push({ maxSkew: c.maxSkew, topologyKey: c.topologyKey, selector, minDomains: c.minDomains ?? 1, nodeAffinityPolicy: c.nodeAffinityPolicy ?? 'Honor', nodeTaintsPolicy: c.nodeTaintsPolicy ?? 'Ignore' });
  }
  return out;
}

/** Per node, the pods a constraint counts (kube-scheduler's countPodsMatchSelector: an empty selector counts none). */
function counter(snapshot: Snapshot, selector: readonly LabelRequirement[] | null, namespace: string): (node: NodeInfo) => number {
  return selector === null || selector.length === 0 ? () => 0 : snapshot.countMatching(namespace, selector);
}

function includes(c: Constraint, pod: Pod, node: Node): boolean {
  if (c.nodeAffinityPolicy === 'Honor' && !podMatchesNode(pod, node)) return false;
  if (c.nodeTaintsPolicy === 'Honor' && untoleratedTaint(node, pod.spec.tolerations) !== undefined) return false;
  return true;
}

/** Per constraint, the smallest domain's count (0 while fewer domains than minDomains). */
function minimumsOf(constraints: readonly Constraint[], counts: readonly Map<string, number>[]): number[] {
  return constraints.map((c, i) => {
    const m = counts[i] as Map<string, number>;
    if (m.size < c.minDomains) return 0;
    let min = Number.MAX_SAFE_INTEGER;
    for (const n of m.values()) if (n < min) min = n;
    return min;
  });
}

const hasKeys = (labels: Record<string, string>, constraints: readonly Constraint[]): boolean => constraints.every((c) => labels[c.topologyKey] !== undefined);

interface PreFilterState {
  constraints: Constraint[];
  /** Per constraint: domain value → matching pods. */
  counts: Map<string, number>[];
  /** Per constraint: the smallest count (0 while fewer domains than minDomains). */
  minimums: number[];
  /** Per constraint: 1 when the pod matches the selector itself. */
  selfMatches: number[];
}

interface PreScoreState {
  constraints: Constraint[];
  /** Per constraint: a node's matching pods. */
  counters: ((node: NodeInfo) => number)[];
  /** Per constraint (not the hostname): domain value → matching pods. */
  counts: Map<string, number>[];
  weights: number[];
  ignored: Set<string>;
}

export class PodTopologySpread implements PreFilterPlugin, FilterPlugin, PostFilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'PodTopologySpread';
  private readonly rejected: RejectedPods;
  private readonly replicaSets: Informer<ReplicaSet>;
  private readonly statefulSets: Informer<StatefulSet>;

  constructor(ctx: PluginContext) {
    // A placed pod can only change the skew for a waiting pod of its namespace whose constraints select it.
    this.rejected = new RejectedPods(
      ctx,
      this.name,
      (placed, waiting) =>
        (placed.metadata.namespace ?? 'default') === (waiting.metadata.namespace ?? 'default') &&
        this.constraints(waiting, 'DoNotSchedule').some((c) => c.selector !== null && matchesLabels(c.selector, placed.metadata.labels)),
    );
    this.replicaSets = ctx.informers.for('replicasets');
    this.statefulSets = ctx.informers.for('statefulsets');
  }

  private constraints(pod: Pod, action: Action): Constraint[] {
    const own = pod.spec.topologySpreadConstraints as TopologySpreadConstraintSpec[] | undefined;
    if (own !== undefined && own.length > 0) return constraintsOf(own, pod.metadata.labels ?? {}, action);
    const defaults = constraintsOf(SYSTEM_DEFAULTS, pod.metadata.labels ?? {}, action);
    if (defaults.length === 0) return [];
    const selector = this.defaultSelector(pod);
    if (selector.length === 0) return [];
    return defaults.map((c) => ({ ...c, selector }));
  }

  /** kube-scheduler's DefaultSelector, for the owners Stowage serves: the controlling ReplicaSet's or StatefulSet's selector. */
  private defaultSelector(pod: Pod): LabelRequirement[] {
    const owner = pod.metadata.ownerReferences?.find((r) => r.controller === true);
    if (owner === undefined || !owner.apiVersion.startsWith('apps/')) return [];
    const ns = pod.metadata.namespace ?? 'default';
    const controller = owner.kind === 'ReplicaSet' ? this.replicaSets.getByName(ns, owner.name) : owner.kind === 'StatefulSet' ? this.statefulSets.getByName(ns, owner.name) : undefined;
    return requirementsOf(controller?.spec?.selector) ?? [];
  }

  preFilter(state: CycleState, pod: Pod): Status {
    const constraints = this.constraints(pod, 'DoNotSchedule');
    if (constraints.length === 0) return SKIP;
    const ns = pod.metadata.namespace ?? 'default';
    const snapshot = readSnapshot(state);
    const counters = constraints.map((c) => counter(snapshot, c.selector, ns));
    const counts = constraints.map(() => new Map<string, number>());
    for (const info of snapshot.list()) {
      const labels = info.node.metadata.labels ?? {};
      if (!hasKeys(labels, constraints)) continue;
      constraints.forEach((c, i) => {
        if (!includes(c, pod, info.node)) return;
        const value = labels[c.topologyKey] ?? '';
        const m = counts[i] as Map<string, number>;
        m.set(value, (m.get(value) ?? 0) + (counters[i] as (node: NodeInfo) => number)(info));
      });
    }
    const minimums = minimumsOf(constraints, counts);
    const selfMatches = constraints.map((c) => (c.selector !== null && matchesLabels(c.selector, pod.metadata.labels) ? 1 : 0));
    state.write(PREFILTER_KEY, { constraints, counts, minimums, selfMatches } satisfies PreFilterState);
    return SUCCESS;
  }

  filter(state: CycleState, _pod: Pod, node: NodeInfo): Status {
    const s = state.read<PreFilterState>(PREFILTER_KEY);
    if (s === undefined) return SUCCESS;
    const labels = node.node.metadata.labels ?? {};
    for (let i = 0; i < s.constraints.length; i++) {
      const c = s.constraints[i] as Constraint;
      const value = labels[c.topologyKey];
      if (value === undefined) return MISSING_LABEL;
      const skew = ((s.counts[i] as Map<string, number>).get(value) ?? 0) + (s.selfMatches[i] as number) - (s.minimums[i] as number);
      if (skew > c.maxSkew) return SKEWED;
    }
    return SUCCESS;
  }

  /**
   * kube-scheduler's PreFilterExtensions, for preemption: the counts with a pod added to (or removed
   * from) a node. Copy on write, so a CycleState copied per candidate node keeps its own counts.
   */
  addPod(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): Status {
    return this.update(state, pod, other, node, 1);
  }

  removePod(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): Status {
    return this.update(state, pod, other, node, -1);
  }

  private update(state: CycleState, pod: Pod, other: Pod, node: NodeInfo, by: number): Status {
    const old = state.read<PreFilterState>(PREFILTER_KEY);
    if (old === undefined || (other.metadata.namespace ?? 'default') !== (pod.metadata.namespace ?? 'default')) return SUCCESS;
    const labels = node.node.metadata.labels ?? {};
    if (!hasKeys(labels, old.constraints)) return SUCCESS;
    const counts = old.counts.map((m) => new Map(m));
    old.constraints.forEach((c, i) => {
      if (c.selector === null || !matchesLabels(c.selector, other.metadata.labels) || !includes(c, pod, node.node)) return;
      const value = labels[c.topologyKey] ?? '';
      const m = counts[i] as Map<string, number>;
      m.set(value, (m.get(value) ?? 0) + by);
    });
    state.write(PREFILTER_KEY, { ...old, counts, minimums: minimumsOf(old.constraints, counts) } satisfies PreFilterState);
    return SUCCESS;
  }

  /** PostFilter: nothing fitted; the pod waits for a pod event if this plugin refused a node. */
  postFilter(_state: CycleState, pod: Pod, statuses: ReadonlyMap<string, Status>): { status: Status } {
    this.rejected.note(pod, statuses);
    return { status: unschedulable() };
  }

  preScore(state: CycleState, pod: Pod, nodes: readonly NodeInfo[]): Status {
    if (nodes.length === 0) return SKIP;
    const constraints = this.constraints(pod, 'ScheduleAnyway');
    if (constraints.length === 0) return SKIP;
    const snapshot = readSnapshot(state);
    // Only explicit constraints need every key on a node: without a zone label, defaults still spread by hostname.
    const requireAll = ((pod.spec.topologySpreadConstraints as unknown[] | undefined)?.length ?? 0) > 0;
    const ignored = new Set<string>();
    const counts = constraints.map(() => new Map<string, number>());
    // Domains only nodes without the label are in ("" in kube-scheduler): they weigh, nobody reads their count.
    const unlabelled = constraints.map(() => false);
    for (const info of nodes) {
      const labels = info.node.metadata.labels ?? {};
      if (requireAll && !hasKeys(labels, constraints)) {
        ignored.add(info.name);
        continue;
      }
      constraints.forEach((c, i) => {
        if (c.topologyKey === HOSTNAME_LABEL) return;
        const value = labels[c.topologyKey];
        if (value === undefined) unlabelled[i] = true;
        else (counts[i] as Map<string, number>).set(value, 0);
      });
    }
    const weights = constraints.map((c, i) => {
      const size = c.topologyKey === HOSTNAME_LABEL ? nodes.length - ignored.size : (counts[i] as Map<string, number>).size + (unlabelled[i] && !(counts[i] as Map<string, number>).has('') ? 1 : 0);
      return Math.log(size + 2);
    });
    const ns = pod.metadata.namespace ?? 'default';
    const counters = constraints.map((c) => counter(snapshot, c.selector, ns));
    if (counts.some((m) => m.size > 0)) {
      for (const info of snapshot.list()) {
        const labels = info.node.metadata.labels ?? {};
        if (requireAll && !hasKeys(labels, constraints)) continue;
        constraints.forEach((c, i) => {
          const m = counts[i] as Map<string, number>;
          const value = labels[c.topologyKey] ?? '';
          const n = m.get(value);
          if (n === undefined || !includes(c, pod, info.node)) return;
          m.set(value, n + (counters[i] as (node: NodeInfo) => number)(info));
        });
      }
    }
    state.write(PRESCORE_KEY, { constraints, counters, counts, weights, ignored } satisfies PreScoreState);
    return SUCCESS;
  }

  score(state: CycleState, _pod: Pod, node: NodeInfo): number {
    const s = state.read<PreScoreState>(PRESCORE_KEY);
    if (s === undefined || s.ignored.has(node.name)) return 0;
    const labels = node.node.metadata.labels ?? {};
    let score = 0;
    for (const [i, c] of s.constraints.entries()) {
      const value = labels[c.topologyKey];
      if (value === undefined) continue;
      const n = c.topologyKey === HOSTNAME_LABEL ? (s.counters[i] as (node: NodeInfo) => number)(node) : ((s.counts[i] as Map<string, number>).get(value) ?? 0);
      score += n * (s.weights[i] as number) + (c.maxSkew - 1);
    }
    return Math.round(score);
  }

  /** Fewer matching pods is better: reversed against the highest, ignored nodes 0. */
  normalizeScore(state: CycleState, _pod: Pod, scores: NodeScore[]): void {
    const s = state.read<PreScoreState>(PRESCORE_KEY);
    if (s === undefined) return;
    let min = Number.MAX_SAFE_INTEGER;
    let max = 0;
    for (const n of scores) {
      if (s.ignored.has(n.name)) continue;
      if (n.score < min) min = n.score;
      if (n.score > max) max = n.score;
    }
    for (const n of scores) {
      if (s.ignored.has(n.name)) n.score = 0;
      else if (max === 0) n.score = MAX_NODE_SCORE;
      else n.score = Math.trunc((MAX_NODE_SCORE * (max + min - n.score)) / max);
    }
  }
}
