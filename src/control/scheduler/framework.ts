// kube-scheduler's scheduling framework, the shape every placement rule plugs into: one plugin per
// rule, each implementing some of the extension points below, run in a profile's order for one
// scheduling attempt with a CycleState that lives for that attempt only.
//
//   PreFilter       once per pod: a rejection stops the attempt ("0/N nodes are available: <msg>.")
//   Filter          per node, in order, the first non-Success status decides the node
//   PostFilter      no node passed: VolumeBinding relaxes a soft rule (the nodes are filtered
//                   again), DefaultPreemption finds victims and nominates a node
//   PreScore/Score  per feasible node, 0..100 after NormalizeScore, times the plugin's weight
//   Reserve         the pod is assumed on the node (counted there) until bound or given up
//   Permit          Wait delays the bind (the reservation is undone, the attempt retried later)
//   PreBind         Wait keeps the reservation until something else happens (claims bound)
//   Bind            the pods/binding subresource
//
// Status codes are Kubernetes': Success, Error, Unschedulable (preemption might help),
// UnschedulableAndUnresolvable (it would not), Wait, Skip (the plugin has nothing to say for this
// pod, and its Filter/Score are not run). Reasons are the strings FitError counts per node.
import type { Pod } from '../api/types/core.js';
import type { NodeInfo } from './node-info.js';

export type Code = 'Success' | 'Error' | 'Unschedulable' | 'UnschedulableAndUnresolvable' | 'Wait' | 'Skip';

export interface Status {
  readonly code: Code;
  readonly reasons: readonly string[];
  /** The plugin that returned it (set by the framework). */
  plugin?: string;
  /** Wait: try again after this long. */
  readonly retryAfterMs?: number;
}

export const SUCCESS: Status = Object.freeze({ code: 'Success', reasons: [] });
export const SKIP: Status = Object.freeze({ code: 'Skip', reasons: [] });
export const MAX_NODE_SCORE = 100;

export function unschedulable(...reasons: string[]): Status {
  return { code: 'Unschedulable', reasons };
}
export function unresolvable(...reasons: string[]): Status {
  return { code: 'UnschedulableAndUnresolvable', reasons };
}
export function waitFor(retryAfterMs?: number): Status {
  return retryAfterMs === undefined ? { code: 'Wait', reasons: [] } : { code: 'Wait', reasons: [], retryAfterMs };
}
export function isSuccess(s: Status): boolean {
  return s.code === 'Success';
}

/** Data plugins share within one attempt, and the attempt-wide "decide later" a Filter may ask for. */
export class CycleState {
  private readonly data = new Map<string, unknown>();
  /** Set when a plugin could not decide yet (a figure still being fetched): retry instead of failing. */
  retryAfterMs: number | undefined;
  /** Plugins whose PreFilter/PreScore returned Skip: their Filter/Score are not run. */
  readonly skipFilter = new Set<string>();
  readonly skipScore = new Set<string>();
  /** The Filter plugins to run per node, worked out once per attempt (cleared when skipFilter changes). */
  activeFilters: FilterPlugin[] | undefined;

  /**
   * A copy for a preemption dry run on one node (kube-scheduler's CycleState.Clone): plugins write
   * their data copy-on-write (AddPod/RemovePod), so sharing the values is safe.
   */
  clone(): CycleState {
    const c = new CycleState();
    for (const [k, v] of this.data) c.data.set(k, v);
    c.retryAfterMs = this.retryAfterMs;
    for (const n of this.skipFilter) c.skipFilter.add(n);
    for (const n of this.skipScore) c.skipScore.add(n);
    c.activeFilters = this.activeFilters;
    return c;
  }

  read<T>(key: string): T | undefined {
    return this.data.get(key) as T | undefined;
  }
  write(key: string, value: unknown): void {
    this.data.set(key, value);
  }
  retryAfter(ms: number): void {
    this.retryAfterMs = this.retryAfterMs === undefined ? ms : Math.min(this.retryAfterMs, ms);
  }
}

export interface Plugin {
  readonly name: string;
}
export interface PreFilterPlugin extends Plugin {
  preFilter(state: CycleState, pod: Pod): Status;
  /**
   * PreFilterExtensions, for preemption's dry runs: the plugin's PreFilter data as if `other` were
   * placed on (or gone from) the node, whose NodeInfo already says so.
   */
  addPod?(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): Status;
  removePod?(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): Status;
}
export interface FilterPlugin extends Plugin {
  filter(state: CycleState, pod: Pod, node: NodeInfo): Status;
}
/** What a PostFilter plugin may look at: every node of the attempt, and the profile's filters. */
export interface PostFilterHandle {
  readonly numNodes: number;
  /** Every node, as the attempt sees it (nominated pods of at least the pod's priority included). */
  nodeInfos(): readonly NodeInfo[];
  /** The profile's Filter plugins on a node (e.g. one with some pods taken away). */
  runFilter(state: CycleState, pod: Pod, node: NodeInfo): Status;
  /** The PreFilter plugins' AddPod / RemovePod (RunPreFilterExtensionAddPod / RemovePod). */
  addPod(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): void;
  removePod(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): void;
}
export interface PostFilterResult {
  status: Status;
  /** Success with `filterAgain`: the plugin relaxed something in the state; the nodes are filtered once more. */
  filterAgain?: boolean;
  /** The node to nominate the pod to ('' clears status.nominatedNodeName; absent leaves it). */
  nominatedNodeName?: string;
}
export interface PostFilterPlugin extends Plugin {
  /** `statuses`: each rejected node's status (all of them: no node passed). */
  postFilter(state: CycleState, pod: Pod, statuses: ReadonlyMap<string, Status>, handle: PostFilterHandle): PostFilterResult;
}
/** The PostFilter plugins' verdict: filter again, or what to tell (FitError's PostFilterMsg) and nominate. */
export interface PostFilterOutcome {
  filterAgain: boolean;
  message: string;
  nominatedNodeName?: string;
}
export interface PreScorePlugin extends Plugin {
  preScore(state: CycleState, pod: Pod, nodes: readonly NodeInfo[]): Status;
}
export interface NodeScore {
  readonly name: string;
  score: number;
}
export interface ScorePlugin extends Plugin {
  score(state: CycleState, pod: Pod, node: NodeInfo): number;
  /** Scales the raw scores into 0..MAX_NODE_SCORE (in place). */
  normalizeScore?(state: CycleState, pod: Pod, scores: NodeScore[]): void;
}
export interface ReservePlugin extends Plugin {
  reserve(state: CycleState, pod: Pod, nodeName: string): Status;
  unreserve(state: CycleState, pod: Pod, nodeName: string): void;
}
export interface PermitPlugin extends Plugin {
  permit(state: CycleState, pod: Pod, nodeName: string): Status;
}
export interface PreBindPlugin extends Plugin {
  preBind(state: CycleState, pod: Pod, nodeName: string): Status;
}
export interface BindPlugin extends Plugin {
  bind(state: CycleState, pod: Pod, nodeName: string): Status;
}

/** Kubernetes' DefaultNormalizeScore: scale to the highest score (reverse: fewer is better). */
export function defaultNormalizeScore(scores: NodeScore[], reverse: boolean): void {
  let max = 0;
  for (const s of scores) if (s.score > max) max = s.score;
  if (max === 0) {
    if (reverse) for (const s of scores) s.score = MAX_NODE_SCORE;
    return;
  }
  for (const s of scores) {
    const scaled = Math.floor((MAX_NODE_SCORE * s.score) / max);
    s.score = reverse ? MAX_NODE_SCORE - scaled : scaled;
  }
}

function has<K extends string>(p: Plugin, method: K): p is Plugin & Record<K, (...args: never[]) => unknown> {
  return typeof (p as unknown as Record<string, unknown>)[method] === 'function';
}

/** One profile's plugins, run at each extension point in order. */
export class Framework {
  private readonly preFilters: PreFilterPlugin[];
  private readonly filters: FilterPlugin[];
  private readonly postFilters: PostFilterPlugin[];
  private readonly preScores: PreScorePlugin[];
  private readonly scorers: { plugin: ScorePlugin; weight: number }[];
  private readonly reservers: ReservePlugin[];
  private readonly permits: PermitPlugin[];
  private readonly preBinders: PreBindPlugin[];
  private readonly binders: BindPlugin[];

  constructor(
    readonly schedulerName: string,
    plugins: readonly { plugin: Plugin; weight?: number }[],
  ) {
    const all = plugins.map((p) => p.plugin);
    this.preFilters = all.filter((p): p is PreFilterPlugin => has(p, 'preFilter'));
    this.filters = all.filter((p): p is FilterPlugin => has(p, 'filter'));
    this.postFilters = all.filter((p): p is PostFilterPlugin => has(p, 'postFilter'));
    this.preScores = all.filter((p): p is PreScorePlugin => has(p, 'preScore'));
    this.scorers = plugins.filter((p) => has(p.plugin, 'score')).map((p) => ({ plugin: p.plugin as ScorePlugin, weight: p.weight ?? 1 }));
    this.reservers = all.filter((p): p is ReservePlugin => has(p, 'reserve'));
    this.permits = all.filter((p): p is PermitPlugin => has(p, 'permit'));
    this.preBinders = all.filter((p): p is PreBindPlugin => has(p, 'preBind'));
    this.binders = all.filter((p): p is BindPlugin => has(p, 'bind'));
  }

  /** The first PreFilter that does not succeed (Skip: that plugin's Filter is left out). */
  runPreFilter(state: CycleState, pod: Pod): Status {
    for (const p of this.preFilters) {
      const s = p.preFilter(state, pod);
      if (s.code === 'Skip') {
        state.skipFilter.add(p.name);
        state.activeFilters = undefined;
      } else if (s.code !== 'Success') return { ...s, plugin: p.name };
    }
    return SUCCESS;
  }

  /** Every PreFilter plugin's AddPod (not those whose PreFilter said Skip); an error is thrown. */
  runPreFilterExtensionAddPod(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): void {
    for (const p of this.preFilters) {
      if (p.addPod === undefined || state.skipFilter.has(p.name)) continue;
      const s = p.addPod(state, pod, other, node);
      if (s.code !== 'Success') throw new Error(`${p.name} AddPod: ${s.reasons.join(', ')}`);
    }
  }

  /** Every PreFilter plugin's RemovePod (not those whose PreFilter said Skip); an error is thrown. */
  runPreFilterExtensionRemovePod(state: CycleState, pod: Pod, other: Pod, node: NodeInfo): void {
    for (const p of this.preFilters) {
      if (p.removePod === undefined || state.skipFilter.has(p.name)) continue;
      const s = p.removePod(state, pod, other, node);
      if (s.code !== 'Success') throw new Error(`${p.name} RemovePod: ${s.reasons.join(', ')}`);
    }
  }

  /** The first Filter that rejects the node, or Success. */
  runFilter(state: CycleState, pod: Pod, node: NodeInfo): Status {
    let filters = state.activeFilters;
    if (filters === undefined) state.activeFilters = filters = state.skipFilter.size === 0 ? this.filters : this.filters.filter((p) => !state.skipFilter.has(p.name));
    for (let i = 0; i < filters.length; i++) {
      const p = filters[i] as FilterPlugin;
      const s = p.filter(state, pod, node);
      if (s.code !== 'Success') return { ...s, plugin: p.name };
    }
    return SUCCESS;
  }

  /**
   * The PostFilter plugins in order, until one succeeds: it may ask for the nodes to be filtered
   * again, or nominate a node. Otherwise the rejections' messages, joined (kube-scheduler's
   * PostFilterMsg), and the last nomination asked for (a clear).
   */
  runPostFilter(state: CycleState, pod: Pod, statuses: ReadonlyMap<string, Status>, handle: PostFilterHandle): PostFilterOutcome {
    const reasons: string[] = [];
    let nominated: string | undefined;
    for (const p of this.postFilters) {
      const r = p.postFilter(state, pod, statuses, handle);
      if (r.status.code === 'Error') throw new Error(`${p.name}: ${r.status.reasons.join(', ')}`);
      if (r.status.code === 'Success') {
        const out: PostFilterOutcome = { filterAgain: r.filterAgain === true, message: '' };
        if (r.nominatedNodeName !== undefined) out.nominatedNodeName = r.nominatedNodeName;
        return out;
      }
      if (r.nominatedNodeName !== undefined) nominated = r.nominatedNodeName;
      reasons.push(...r.status.reasons);
    }
    const out: PostFilterOutcome = { filterAgain: false, message: reasons.join(', ') };
    if (nominated !== undefined) out.nominatedNodeName = nominated;
    return out;
  }

  runPreScore(state: CycleState, pod: Pod, nodes: readonly NodeInfo[]): Status {
    for (const p of this.preScores) {
      const s = p.preScore(state, pod, nodes);
      if (s.code === 'Skip') state.skipScore.add(p.name);
      else if (s.code !== 'Success') return { ...s, plugin: p.name };
    }
    return SUCCESS;
  }

  /** Each node's total (in the nodes' order): every Score plugin's normalized score times its weight. */
  runScore(state: CycleState, pod: Pod, nodes: readonly NodeInfo[]): number[] {
    const totals = new Array<number>(nodes.length).fill(0);
    for (const { plugin, weight } of this.scorers) {
      if (state.skipScore.has(plugin.name)) continue;
      if (plugin.normalizeScore === undefined) {
        // Nothing to scale: straight into the totals, without a NodeScore per node.
        for (let i = 0; i < nodes.length; i++) totals[i] = (totals[i] as number) + plugin.score(state, pod, nodes[i] as NodeInfo) * weight;
        continue;
      }
      const scores: NodeScore[] = nodes.map((n) => ({ name: n.name, score: plugin.score(state, pod, n) }));
      plugin.normalizeScore(state, pod, scores);
      for (let i = 0; i < scores.length; i++) totals[i] = (totals[i] as number) + (scores[i] as NodeScore).score * weight;
    }
    return totals;
  }

  runReserve(state: CycleState, pod: Pod, nodeName: string): Status {
    for (const [i, p] of this.reservers.entries()) {
      const s = p.reserve(state, pod, nodeName);
      if (s.code !== 'Success') {
        for (const q of this.reservers.slice(0, i + 1).reverse()) q.unreserve(state, pod, nodeName);
        return { ...s, plugin: p.name };
      }
    }
    return SUCCESS;
  }

  runUnreserve(state: CycleState, pod: Pod, nodeName: string): void {
    for (const p of [...this.reservers].reverse()) p.unreserve(state, pod, nodeName);
  }

  /** The first Permit that does not allow the pod (Wait: the longest wait asked). */
  runPermit(state: CycleState, pod: Pod, nodeName: string): Status {
    let wait: Status | undefined;
    for (const p of this.permits) {
      const s = p.permit(state, pod, nodeName);
      if (s.code === 'Wait') {
        if (wait === undefined || (s.retryAfterMs ?? 0) > (wait.retryAfterMs ?? 0)) wait = { ...s, plugin: p.name };
      } else if (s.code !== 'Success') return { ...s, plugin: p.name };
    }
    return wait ?? SUCCESS;
  }

  runPreBind(state: CycleState, pod: Pod, nodeName: string): Status {
    for (const p of this.preBinders) {
      const s = p.preBind(state, pod, nodeName);
      if (s.code !== 'Success') return { ...s, plugin: p.name };
    }
    return SUCCESS;
  }

  /** The first binder that does not Skip binds. */
  runBind(state: CycleState, pod: Pod, nodeName: string): Status {
    for (const p of this.binders) {
      const s = p.bind(state, pod, nodeName);
      if (s.code !== 'Skip') return { ...s, plugin: p.name };
    }
    return { code: 'Error', reasons: ['no bind plugin bound the pod'] };
  }
}
