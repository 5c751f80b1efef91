// The cluster as one attempt sees it, for the plugins that look beyond the node being filtered
// (kube-scheduler's SnapshotSharedLister): every node with its pods, and the few nodes holding pods
// with inter-pod affinity terms, so InterPodAffinity and PodTopologySpread precompute their counts
// per attempt without walking every pod when no pod has terms. The scheduler writes it into the
// CycleState before PreFilter; tests build one from a list of NodeInfos.
import type { LabelRequirement } from '../api/label-selector.js';
import type { Node } from '../api/types/core.js';
import { podTerms } from './affinity-terms.js';
import type { SchedulerCache } from './cache.js';
import type { CycleState } from './framework.js';
import { countsPod } from './match-counts.js';
import { NodeInfo } from './node-info.js';

export interface Snapshot {
  /** Every node, in the scheduler's order. */
  list(): readonly NodeInfo[];
  /** The nodes with pods that have pod affinity or anti-affinity. */
  havePodsWithAffinity(): readonly NodeInfo[];
  /** The nodes with pods whose terms score other pods (required affinity, preferred terms). */
  havePodsWithScoringAffinity(): readonly NodeInfo[];
  /** The nodes with pods that have a required anti-affinity term on another key than the hostname. */
  havePodsWithNonHostScopedAntiAffinity(): readonly NodeInfo[];
  /** Whether any node holds a pod with required anti-affinity. */
  anyPodWithRequiredAntiAffinity(): boolean;
  /** How many pods on a node the selector matches in the namespace, not being deleted (the pod being scheduled left out). */
  countMatching(namespace: string, selector: readonly LabelRequirement[]): (node: NodeInfo) => number;
}

function countOnNode(namespace: string, selector: readonly LabelRequirement[]): (node: NodeInfo) => number {
  return (node) => {
    let n = 0;
    for (const p of node.pods) if (countsPod(namespace, selector, p)) n++;
    return n;
  };
}

const KEY = 'Snapshot';

export function writeSnapshot(state: CycleState, snapshot: Snapshot): void {
  state.write(KEY, snapshot);
}

const NONE: Snapshot = { list: () => [], havePodsWithAffinity: () => [], havePodsWithScoringAffinity: () => [], havePodsWithNonHostScopedAntiAffinity: () => [], anyPodWithRequiredAntiAffinity: () => false, countMatching: countOnNode };

export function readSnapshot(state: CycleState | undefined): Snapshot {
  return state?.read<Snapshot>(KEY) ?? NONE;
}

/** A snapshot over NodeInfos built from pod lists (tests, simulations). */
export function snapshotOf(infos: readonly NodeInfo[]): Snapshot {
  return {
    list: () => infos,
    havePodsWithAffinity: () => infos.filter((i) => i.podsWithAffinity.length > 0),
    havePodsWithScoringAffinity: () => infos.filter((i) => i.podsWithAffinity.some((p) => podTerms(p).scoresOthers)),
    havePodsWithNonHostScopedAntiAffinity: () => infos.filter((i) => i.podsWithRequiredAntiAffinity.some((p) => podTerms(p).hasNonHostScopedRequiredAntiAffinity)),
    anyPodWithRequiredAntiAffinity: () => infos.some((i) => i.podsWithRequiredAntiAffinity.length > 0),
    countMatching: countOnNode,
  };
}

/** The scheduler's snapshot: its nodes for this attempt and the cache's lists of nodes with affinity pods. */
export class CacheSnapshot implements Snapshot {
  private all: NodeInfo[] | undefined;

  constructor(
    private readonly nodes: readonly Node[],
    /** The attempt's NodeInfo for nodes[i] (shared with Filter). */
    private readonly infoAt: (i: number) => NodeInfo,
    private readonly cache: SchedulerCache,
    private readonly nodeByName: (name: string) => Node | undefined,
    /** The pod being scheduled, left out of every node. */
    private readonly podKey: string,
  ) {}

  list(): readonly NodeInfo[] {
    if (this.all === undefined) {
      this.all = new Array<NodeInfo>(this.nodes.length);
      for (let i = 0; i < this.nodes.length; i++) this.all[i] = this.infoAt(i);
    }
    return this.all;
  }

  havePodsWithAffinity(): readonly NodeInfo[] {
    return this.infos(this.cache.havePodsWithAffinity());
  }

  havePodsWithScoringAffinity(): readonly NodeInfo[] {
    return this.infos(this.cache.havePodsWithScoringAffinity());
  }

  havePodsWithNonHostScopedAntiAffinity(): readonly NodeInfo[] {
    return this.infos(this.cache.havePodsWithNonHostScopedAntiAffinity());
  }

  anyPodWithRequiredAntiAffinity(): boolean {
    const names = this.cache.havePodsWithRequiredAntiAffinity();
    if (names.size === 0) return false;
    if (names.size > 1) return true;
    // One node: it may hold only the pod being scheduled (assumed there by an earlier attempt).
    return this.infos(names).some((i) => i.podsWithRequiredAntiAffinity.length > 0);
  }

  countMatching(namespace: string, selector: readonly LabelRequirement[]): (node: NodeInfo) => number {
    const perNode = this.cache.countMatching(namespace, selector);
    // The pod being scheduled may be assumed on a node by an earlier attempt: not counted there.
    const at = this.cache.assumedOn(this.podKey);
    const self = at === undefined ? undefined : this.cache.node(at).pods.get(this.podKey);
    const selfOn = self !== undefined && countsPod(namespace, selector, self) ? at : undefined;
    return (node) => (perNode.get(node.name) ?? 0) - (node.name === selfOn ? 1 : 0);
  }

  private infos(names: ReadonlySet<string>): NodeInfo[] {
    const out: NodeInfo[] = [];
    for (const name of names) {
      const node = this.nodeByName(name);
      if (node !== undefined) out.push(new NodeInfo(node, this.cache.node(name), this.podKey));
    }
    return out;
  }
}
