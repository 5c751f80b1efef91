// kube-scheduler's cache: per node, the pods counted there (bound and not finished, or assumed
// there while they wait in PreBind) and the sums of their requests, kept up to date from pod events
// so that an attempt reads each node's figures in constant time instead of adding up its pods.
// Pods with inter-pod (anti-)affinity terms are also filed apart, per node, with the nodes that hold
// any (kube-scheduler's PodsWithAffinity / PodsWithRequiredAntiAffinity): InterPodAffinity looks
// only at those, so pods without terms cost it nothing.
import type { Pod } from '../api/types/core.js';
import type { LabelRequirement } from '../api/label-selector.js';
import { podTerms } from './affinity-terms.js';
import { MatchCounts } from './match-counts.js';
import { addTo, emptyResources, podRequests, type Resources } from './resources.js';

export interface NodePods {
  readonly pods: ReadonlyMap<string, Pod>;
  readonly requested: Resources;
  readonly nonZeroRequested: Resources;
  /** The pods with pod affinity or anti-affinity (any kind). */
  readonly withAffinity: ReadonlyMap<string, Pod>;
  /** The pods with required anti-affinity terms. */
  readonly withRequiredAntiAffinity: ReadonlyMap<string, Pod>;
}

interface Entry {
  pods: Map<string, Pod>;
  requested: Resources;
  nonZeroRequested: Resources;
  withAffinity: Map<string, Pod>;
  withRequiredAntiAffinity: Map<string, Pod>;
  /** How many of them have a required anti-affinity term not scoped to the hostname. */
  nonHostScopedAntiAffinity: number;
  /** How many of them have terms that score other pods (required affinity, preferred terms). */
  scoringAffinity: number;
}

function sub(into: Resources, r: Resources): void {
  into.milliCPU -= r.milliCPU;
  into.memory -= r.memory;
  into.ephemeralStorage -= r.ephemeralStorage;
  for (const [k, v] of r.scalar) into.scalar.set(k, (into.scalar.get(k) ?? 0) - v);
}

const EMPTY: NodePods = { pods: new Map(), requested: emptyResources(), nonZeroRequested: emptyResources(), withAffinity: new Map(), withRequiredAntiAffinity: new Map() };

export class SchedulerCache {
  private readonly nodes = new Map<string, Entry>();
  /** pod key → where it is counted, and whether only assumed there. */
  private readonly where = new Map<string, { node: string; assumed: boolean }>();
  /** Nodes holding pods with affinity terms, with required anti-affinity, with such a term not on the hostname. */
  private readonly nodesWithAffinity = new Set<string>();
  private readonly nodesWithRequiredAntiAffinity = new Set<string>();
  private readonly nodesWithNonHostScopedAntiAffinity = new Set<string>();
  private readonly nodesWithScoringAffinity = new Set<string>();
  /** Per node, the pods some label selectors match (PodTopologySpread's counts). */
  private readonly matchCounts = new MatchCounts();
  /** Nodes whose pods changed since the last takeChanged(). */
  private changed = new Set<string>();

  /** The nodes whose pods changed since the last call (for those who keep per-node figures). */
  takeChanged(): ReadonlySet<string> {
    const out = this.changed;
    this.changed = new Set();
    return out;
  }

  /** A pod bound to a node (or no longer: finished, deleted, not bound) as the informer shows it. */
  setBound(key: string, pod: Pod | undefined, nodeName: string | undefined): void {
    const at = this.where.get(key);
    if (nodeName === undefined || pod === undefined) {
      if (at !== undefined && !at.assumed) this.remove(key);
      return;
    }
    this.remove(key);
    this.add(key, pod, nodeName, false);
  }

  /** Reserve: the pod counts on the node until bound or forgotten. */
  assume(key: string, pod: Pod, nodeName: string): void {
    const at = this.where.get(key);
    if (at !== undefined && !at.assumed) return; // already bound
    this.remove(key);
    this.add(key, pod, nodeName, true);
  }

  /** Unreserve (or the attempt found the pod gone or bound by someone else). */
  forget(key: string): void {
    if (this.where.get(key)?.assumed) this.remove(key);
  }

  /** The keys of the pods assumed on a node (waiting in PreBind). */
  *assumedKeys(): Iterable<string> {
    for (const [key, at] of this.where) if (at.assumed) yield key;
  }

  assumedOn(key: string): string | undefined {
    const at = this.where.get(key);
    return at?.assumed ? at.node : undefined;
  }

  node(name: string): NodePods {
    return this.nodes.get(name) ?? EMPTY;
  }

  /** Per node name, the placed pods of the namespace the selector matches (not being deleted). Read only. */
  countMatching(namespace: string, selector: readonly LabelRequirement[]): ReadonlyMap<string, number> {
    return this.matchCounts.get(namespace, selector, () => this.placed());
  }

  private *placed(): Iterable<[string, Pod]> {
    for (const [node, e] of this.nodes) for (const p of e.pods.values()) yield [node, p];
  }

  /** Names of the nodes with pods that have pod affinity or anti-affinity. Read only. */
  havePodsWithAffinity(): ReadonlySet<string> {
    return this.nodesWithAffinity;
  }
  /** Names of the nodes with pods that have required anti-affinity terms. Read only. */
  havePodsWithRequiredAntiAffinity(): ReadonlySet<string> {
    return this.nodesWithRequiredAntiAffinity;
  }
  /** Names of the nodes with pods that have a required anti-affinity term on another key than the hostname. Read only. */
  havePodsWithNonHostScopedAntiAffinity(): ReadonlySet<string> {
    return this.nodesWithNonHostScopedAntiAffinity;
  }
  /** Names of the nodes with pods whose terms score other pods (required affinity, preferred terms). Read only. */
  havePodsWithScoringAffinity(): ReadonlySet<string> {
    return this.nodesWithScoringAffinity;
  }

  private add(key: string, pod: Pod, nodeName: string, assumed: boolean): void {
    let e = this.nodes.get(nodeName);
    if (e === undefined) this.nodes.set(nodeName, (e = { pods: new Map(), requested: emptyResources(), nonZeroRequested: emptyResources(), withAffinity: new Map(), withRequiredAntiAffinity: new Map(), nonHostScopedAntiAffinity: 0, scoringAffinity: 0 }));
    this.changed.add(nodeName);
    e.pods.set(key, pod);
    addTo(e.requested, podRequests(pod));
    addTo(e.nonZeroRequested, podRequests(pod, true));
    this.where.set(key, { node: nodeName, assumed });
    this.matchCounts.added(pod, nodeName);
    const terms = podTerms(pod);
    if (terms.hasAffinity) {
      e.withAffinity.set(key, pod);
      this.nodesWithAffinity.add(nodeName);
    }
    if (terms.requiredAntiAffinity.length > 0) {
      e.withRequiredAntiAffinity.set(key, pod);
      this.nodesWithRequiredAntiAffinity.add(nodeName);
    }
    if (terms.hasNonHostScopedRequiredAntiAffinity && e.nonHostScopedAntiAffinity++ === 0) this.nodesWithNonHostScopedAntiAffinity.add(nodeName);
    if (terms.scoresOthers && e.scoringAffinity++ === 0) this.nodesWithScoringAffinity.add(nodeName);
  }

  private remove(key: string): void {
    const at = this.where.get(key);
    if (at === undefined) return;
    this.where.delete(key);
    const e = this.nodes.get(at.node);
    const pod = e?.pods.get(key);
    if (e === undefined || pod === undefined) return;
    this.changed.add(at.node);
    e.pods.delete(key);
    this.matchCounts.removed(pod, at.node);
    sub(e.requested, podRequests(pod));
    sub(e.nonZeroRequested, podRequests(pod, true));
    if (e.withAffinity.delete(key) && e.withAffinity.size === 0) this.nodesWithAffinity.delete(at.node);
    if (e.withRequiredAntiAffinity.delete(key) && e.withRequiredAntiAffinity.size === 0) this.nodesWithRequiredAntiAffinity.delete(at.node);
    const terms = podTerms(pod);
    if (terms.hasNonHostScopedRequiredAntiAffinity && --e.nonHostScopedAntiAffinity === 0) this.nodesWithNonHostScopedAntiAffinity.delete(at.node);
    if (terms.scoresOthers && --e.scoringAffinity === 0) this.nodesWithScoringAffinity.delete(at.node);
    if (e.pods.size === 0) this.nodes.delete(at.node);
  }
}
