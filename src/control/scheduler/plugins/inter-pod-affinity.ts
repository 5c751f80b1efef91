// InterPodAffinity: where a pod may go given the pods already placed, as kube-scheduler does it.
//
// Filter (three checks, in this order, each with Kubernetes' reason and code):
//   - the pod's required affinity: every term's topology domain on the node (same value of the
//     term's topologyKey) holds a pod matching all the terms; else "node(s) didn't match pod
//     affinity rules" (UnschedulableAndUnresolvable). The first pod of a group with affinity to
//     itself passes when no pod anywhere matches and it matches its own terms (on a node with
//     every topology label).
//   - the pod's required anti-affinity: no matching pod in the term's domain; else "node(s) didn't
//     match pod anti-affinity rules" (Unschedulable: preemption might help).
//   - placed pods' required anti-affinity: no pod in the node's domains has a term matching the
//     incoming pod; else "node(s) didn't satisfy existing pods anti-affinity rules" (Unschedulable).
// PreFilter counts the matches per topology pair (key=value) once per attempt; terms on
// kubernetes.io/hostname are not counted but checked against the node's own pods in Filter
// (kube-scheduler's InterPodAffinityHostnameFastPath), and placed pods' anti-affinity is read only
// from the nodes the cache lists as holding such pods. A pod with no terms, in a cluster with no
// required anti-affinity, skips the plugin.
//
// Score: per topology pair, the preferred affinity weights (+) and anti-affinity weights (−) of the
// incoming pod over matching placed pods, and the placed pods' preferred terms (and required
// affinity, hardPodAffinityWeight 1) that match the incoming pod; a node sums the pairs of its
// labels; min–max normalized to 0..100. Without preferred terms of its own, only placed pods with
// terms are looked at. Namespace selectors of the incoming pod's terms are resolved to names with
// the namespaces informer; placed pods' selectors are matched against the incoming pod's namespace.
import type { Namespace, Pod } from '../../api/types/core.js';
import { matchesLabels } from '../../api/label-selector.js';
import type { Informer } from '../../controllers/informer.js';
import { type AffinityTerm, HOSTNAME_LABEL, podMatchesAllTerms, podTerms, termMatches, type WeightedAffinityTerm } from '../affinity-terms.js';
import { type CycleState, MAX_NODE_SCORE, type NodeScore, type PostFilterPlugin, type PreFilterPlugin, type PreScorePlugin, type ScorePlugin, SKIP, SUCCESS, type Status, unresolvable, unschedulable, type FilterPlugin } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';
import { RejectedPods } from '../rejected-pods.js';
import { readSnapshot } from '../snapshot.js';

export const REASON_AFFINITY = "node(s) didn't match pod affinity rules";
export const REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules";
export const REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules";

const AFFINITY_NOT_MATCHED = Object.freeze(unresolvable(REASON_AFFINITY));
const ANTI_AFFINITY_NOT_MATCHED = Object.freeze(unschedulable(REASON_ANTI_AFFINITY));
const EXISTING_ANTI_AFFINITY_NOT_MATCHED = Object.freeze(unschedulable(REASON_EXISTING_ANTI_AFFINITY));

const PREFILTER_KEY = 'PreFilterInterPodAffinity';
const PRESCORE_KEY = 'PreScoreInterPodAffinity';
/** kube-scheduler's InterPodAffinityArgs.hardPodAffinityWeight default. */
const HARD_POD_AFFINITY_WEIGHT = 1;

/** topology pair "key\0value" → count */
type Counts = Map<string, number>;
const pair = (key: string, value: string): string => `${key}\u0000${value}`;

function bump(counts: Counts, key: string, labels: Record<string, string>, by = 1): void {
  const value = labels[key];
  if (value === undefined) return;
  const p = pair(key, value);
  const n = (counts.get(p) ?? 0) + by;
  if (n === 0) counts.delete(p);
  else counts.set(p, n);
}

interface PreFilterState {
  pod: Pod;
  namespaceLabels: Record<string, string> | undefined;
  /** All required affinity terms (namespace selectors resolved). */
  affinity: AffinityTerm[];
  /** Affinity terms checked on the node's own pods (all of them on the hostname), or counted per pair. */
  hostAffinity: AffinityTerm[];
  clusterAffinity: AffinityTerm[];
  hostAnti: AffinityTerm[];
  clusterAnti: AffinityTerm[];
  affinityCounts: Counts;
  antiCounts: Counts;
  existingAntiCounts: Counts;
  /** Pods anywhere matching all the host-scoped affinity terms. */
  hostAffinityMatches: number;
  /** Placed pods may have hostname anti-affinity terms: check each node's own. */
  checkHostExisting: boolean;
}

export class InterPodAffinity implements PreFilterPlugin, FilterPlugin, PostFilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'InterPodAffinity';
  private readonly rejected: RejectedPods;
  private readonly namespaces: Informer<Namespace>;

  constructor(ctx: PluginContext) {
    this.namespaces = ctx.informers.for('namespaces');
    // A placed pod can only help a pod waiting for affinity, and only if it matches one of its terms.
    this.rejected = new RejectedPods(ctx, this.name, (placed, waiting) => podTerms(waiting).requiredAffinity.some((t) => termMatches(t, placed, this.namespaceLabels(placed.metadata.namespace))));
  }

  private namespaceLabels(namespace: string | undefined): Record<string, string> | undefined {
    return this.namespaces.get(namespace ?? 'default')?.metadata.labels;
  }

  /** kube-scheduler's mergeAffinityTermNamespacesIfNotEmpty: a non-empty namespaceSelector becomes names. */
  private resolve(term: AffinityTerm): AffinityTerm {
    const sel = term.namespaceSelector;
    if (sel === null || sel.length === 0) return term;
    const namespaces = new Set(term.namespaces);
    for (const ns of this.namespaces.list()) if (matchesLabels(sel, ns.metadata.labels)) namespaces.add(ns.metadata.name ?? '');
    return { ...term, namespaces, namespaceSelector: null };
  }

  preFilter(state: CycleState, pod: Pod): Status {
    const snapshot = readSnapshot(state);
    const terms = podTerms(pod);
    const affinity = terms.requiredAffinity.map((t) => this.resolve(t));
    const anti = terms.requiredAntiAffinity.map((t) => this.resolve(t));
    const checkHostExisting = snapshot.anyPodWithRequiredAntiAffinity();
    if (affinity.length === 0 && anti.length === 0 && !checkHostExisting) return SKIP;

    const namespaceLabels = this.namespaceLabels(pod.metadata.namespace);
    // Placed pods' anti-affinity terms that the incoming pod matches (hostname terms: in Filter).
    const existingAntiCounts: Counts = new Map();
    for (const info of snapshot.havePodsWithNonHostScopedAntiAffinity()) {
      const labels = info.node.metadata.labels ?? {};
      for (const existing of info.podsWithRequiredAntiAffinity) {
        for (const t of podTerms(existing).requiredAntiAffinity) if (t.topologyKey !== HOSTNAME_LABEL && termMatches(t, pod, namespaceLabels)) bump(existingAntiCounts, t.topologyKey, labels);
      }
    }

    const allHost = affinity.every((t) => t.topologyKey === HOSTNAME_LABEL);
    const s: PreFilterState = {
      pod,
      namespaceLabels,
      affinity,
      hostAffinity: allHost ? affinity : [],
      clusterAffinity: allHost ? [] : affinity,
      hostAnti: anti.filter((t) => t.topologyKey === HOSTNAME_LABEL),
      clusterAnti: anti.filter((t) => t.topologyKey !== HOSTNAME_LABEL),
      affinityCounts: new Map(),
      antiCounts: new Map(),
      existingAntiCounts,
      hostAffinityMatches: 0,
      checkHostExisting,
    };
    // The incoming pod's terms that need the whole cluster: every placed pod, counted per pair.
    if (s.clusterAffinity.length > 0 || s.clusterAnti.length > 0) {
      for (const info of snapshot.list()) {
        const labels = info.node.metadata.labels ?? {};
        for (const existing of info.pods) {
          if (podMatchesAllTerms(s.clusterAffinity, existing)) for (const t of s.clusterAffinity) bump(s.affinityCounts, t.topologyKey, labels);
          for (const t of s.clusterAnti) if (termMatches(t, existing, undefined)) bump(s.antiCounts, t.topologyKey, labels);
        }
      }
    }
    // How many pods match anywhere (none: the first pod of a self-affine group may go anywhere). A
    // count, not whether one exists: preemption's RemovePod takes matching pods away one by one.
    if (s.hostAffinity.length > 0) {
      for (const info of snapshot.list()) for (const p of info.pods) if (podMatchesAllTerms(s.hostAffinity, p)) s.hostAffinityMatches++;
    }
    state.write(PREFILTER_KEY, s);
    return SUCCESS;
  }

  filter(state: CycleState, _pod: Pod, node: NodeInfo): Status {
    const s = state.read<PreFilterState>(PREFILTER_KEY);
    if (s === undefined) return SUCCESS;
    const labels = node.node.metadata.labels ?? {};
    if (!this.satisfiesAffinity(s, node, labels)) return AFFINITY_NOT_MATCHED;
    if (conflictsWithAntiAffinity(s, node, labels)) return ANTI_AFFINITY_NOT_MATCHED;
    if (!satisfiesExistingAntiAffinity(s, node, labels)) return EXISTING_ANTI_AFFINITY_NOT_MATCHED;
    return SUCCESS;
  }

  private satisfiesAffinity(s: PreFilterState, node: NodeInfo, labels: Record<string, string>): boolean {
    if (s.hostAffinity.length > 0) {
      if (labels[HOSTNAME_LABEL] === undefined) return false;
      if (node.pods.some((p) => podMatchesAllTerms(s.hostAffinity, p))) return true;
      return s.hostAffinityMatches <= 0 && selfAffinity(s, labels);
    }
    if (s.clusterAffinity.length === 0) return true;
    let podsExist = true;
    for (const t of s.clusterAffinity) {
      const value = labels[t.topologyKey];
      if (value === undefined) return false; // every topology label must be on the node, also for the first pod
      if ((s.affinityCounts.get(pair(t.topologyKey, value)) ?? 0) <= 0) podsExist = false;
    }
    return podsExist || (s.affinityCounts.size === 0 && selfAffinity(s, labels));
  }

  /**
   * kube-scheduler's PreFilterExtensions, for preemption: the attempt's counts with a pod added to
   * (or removed from) a node, as if it were placed there (or gone). Copy on write, so a CycleState
   * copied per candidate node keeps its own counts. Terms on the hostname need nothing here: Filter
   * reads them from the NodeInfo it is given.
   */
  addPod(state: CycleState, _pod: Pod, other: Pod, node: NodeInfo): Status {
    return this.update(state, other, node, 1);
  }

  removePod(state: CycleState, _pod: Pod, other: Pod, node: NodeInfo): Status {
    return this.update(state, other, node, -1);
  }

  private update(state: CycleState, other: Pod, node: NodeInfo, by: number): Status {
    const old = state.read<PreFilterState>(PREFILTER_KEY);
    if (old === undefined) return SUCCESS;
    const s: PreFilterState = { ...old, existingAntiCounts: new Map(old.existingAntiCounts), affinityCounts: new Map(old.affinityCounts), antiCounts: new Map(old.antiCounts) };
    const labels = node.node.metadata.labels ?? {};
    for (const t of podTerms(other).requiredAntiAffinity) if (t.topologyKey !== HOSTNAME_LABEL && termMatches(t, s.pod, s.namespaceLabels)) bump(s.existingAntiCounts, t.topologyKey, labels, by);
    if (podMatchesAllTerms(s.clusterAffinity, other)) for (const t of s.clusterAffinity) bump(s.affinityCounts, t.topologyKey, labels, by);
    for (const t of s.clusterAnti) if (termMatches(t, other, undefined)) bump(s.antiCounts, t.topologyKey, labels, by);
    if (podMatchesAllTerms(s.hostAffinity, other)) s.hostAffinityMatches += by;
    state.write(PREFILTER_KEY, s);
    return SUCCESS;
  }

  /** PostFilter: nothing fitted; the pod waits for a pod event if this plugin refused a node. */
  postFilter(_state: CycleState, pod: Pod, statuses: ReadonlyMap<string, Status>): { status: Status } {
    this.rejected.note(pod, statuses);
    return { status: unschedulable() };
  }

  preScore(state: CycleState, pod: Pod, nodes: readonly NodeInfo[]): Status {
    if (nodes.length === 0) return SKIP;
    const terms = podTerms(pod);
    const hasConstraints = terms.preferredAffinity.length > 0 || terms.preferredAntiAffinity.length > 0;
    const snapshot = readSnapshot(state);
    // Without preferred terms of its own, only placed pods whose terms score others matter (required
    // anti-affinity alone never scores): kube-scheduler walks every pod with affinity, to the same result.
    const infos = hasConstraints ? snapshot.list() : snapshot.havePodsWithScoringAffinity();
    if (infos.length === 0) return SKIP;
    const resolved = (list: readonly WeightedAffinityTerm[]): WeightedAffinityTerm[] => list.map((w) => ({ term: this.resolve(w.term), weight: w.weight }));
    const preferredAffinity = resolved(terms.preferredAffinity);
    const preferredAnti = resolved(terms.preferredAntiAffinity);
    const namespaceLabels = this.namespaceLabels(pod.metadata.namespace);

    // topologyKey → value → score
    const scores = new Map<string, Map<string, number>>();
    const add = (t: AffinityTerm, weight: number, target: Pod, nsLabels: Record<string, string> | undefined, labels: Record<string, string>): void => {
      if (!termMatches(t, target, nsLabels)) return;
      const value = labels[t.topologyKey];
      if (value === undefined) return;
      let byValue = scores.get(t.topologyKey);
      if (byValue === undefined) scores.set(t.topologyKey, (byValue = new Map()));
      byValue.set(value, (byValue.get(value) ?? 0) + weight);
    };
    for (const info of infos) {
      const labels = info.node.metadata.labels ?? {};
      if (Object.keys(labels).length === 0) continue;
      for (const existing of hasConstraints ? info.pods : info.podsWithAffinity.filter((p) => podTerms(p).scoresOthers)) {
        for (const w of preferredAffinity) add(w.term, w.weight, existing, undefined, labels);
        for (const w of preferredAnti) add(w.term, -w.weight, existing, undefined, labels);
        const theirs = podTerms(existing);
        for (const t of theirs.requiredAffinity) add(t, HARD_POD_AFFINITY_WEIGHT, pod, namespaceLabels, labels);
        for (const w of theirs.preferredAffinity) add(w.term, w.weight, pod, namespaceLabels, labels);
        for (const w of theirs.preferredAntiAffinity) add(w.term, -w.weight, pod, namespaceLabels, labels);
      }
    }
    if (scores.size === 0) return SKIP;
    state.write(PRESCORE_KEY, scores);
    return SUCCESS;
  }

  score(state: CycleState, _pod: Pod, node: NodeInfo): number {
    const scores = state.read<Map<string, Map<string, number>>>(PRESCORE_KEY);
    if (scores === undefined) return 0;
    const labels = node.node.metadata.labels ?? {};
    let total = 0;
    for (const [key, byValue] of scores) {
      const value = labels[key];
      if (value !== undefined) total += byValue.get(value) ?? 0;
    }
    return total;
  }

  /** Min–max to 0..100 (scores may be negative). */
  normalizeScore(state: CycleState, _pod: Pod, scores: NodeScore[]): void {
    if (state.read(PRESCORE_KEY) === undefined) return;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const s of scores) {
      if (s.score > max) max = s.score;
      if (s.score < min) min = s.score;
    }
    const diff = max - min;
    for (const s of scores) s.score = diff > 0 ? Math.trunc((MAX_NODE_SCORE * (s.score - min)) / diff) : 0;
  }
}

/** The first pod of a group with affinity to itself: it matches its own terms and the node has their topology labels. */
function selfAffinity(s: PreFilterState, labels: Record<string, string>): boolean {
  if (!podMatchesAllTerms(s.affinity, s.pod)) return false;
  return s.affinity.every((t) => labels[t.topologyKey] !== undefined);
}

function conflictsWithAntiAffinity(s: PreFilterState, node: NodeInfo, labels: Record<string, string>): boolean {
  if (s.antiCounts.size > 0) {
    for (const t of s.clusterAnti) {
      const value = labels[t.topologyKey];
      if (value !== undefined && (s.antiCounts.get(pair(t.topologyKey, value)) ?? 0) > 0) return true;
    }
  }
  if (s.hostAnti.length === 0 || labels[HOSTNAME_LABEL] === undefined) return false;
  for (const p of node.pods) for (const t of s.hostAnti) if (termMatches(t, p, undefined)) return true;
  return false;
}

function satisfiesExistingAntiAffinity(s: PreFilterState, node: NodeInfo, labels: Record<string, string>): boolean {
  if (s.existingAntiCounts.size > 0) {
    for (const [key, value] of Object.entries(labels)) if ((s.existingAntiCounts.get(pair(key, value)) ?? 0) > 0) return false;
  }
  if (!s.checkHostExisting || labels[HOSTNAME_LABEL] === undefined) return true;
  for (const p of node.podsWithRequiredAntiAffinity) {
    for (const t of podTerms(p).requiredAntiAffinity) if (t.topologyKey === HOSTNAME_LABEL && termMatches(t, s.pod, s.namespaceLabels)) return false;
  }
  return true;
}
