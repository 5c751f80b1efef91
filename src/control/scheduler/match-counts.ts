// Per node, how many placed pods a label selector matches in a namespace (not those being deleted),
// kept up to date from the cache's pod additions and removals for the selectors PodTopologySpread
// asked for lately: a Deployment's pods share one selector, so after the first attempt each attempt
// reads one number per node instead of matching every placed pod (kube-scheduler walks them all, on
// 16 goroutines). At most MAX_SELECTORS are kept; the least recently asked for goes first.
import { type LabelRequirement, matchesLabels } from '../api/label-selector.js';
import type { Pod } from '../api/types/core.js';

const MAX_SELECTORS = 32;

interface Counter {
  readonly namespace: string;
  readonly selector: readonly LabelRequirement[];
  readonly perNode: Map<string, number>;
}

/** The pods a selector counts: in the namespace, matching, not being deleted. */
export function countsPod(namespace: string, selector: readonly LabelRequirement[], pod: Pod): boolean {
  return !pod.metadata.deletionTimestamp && (pod.metadata.namespace ?? 'default') === namespace && matchesLabels(selector, pod.metadata.labels);
}

export class MatchCounts {
  /** Insertion order is recency: a counter asked for again moves to the end. */
  private readonly counters = new Map<string, Counter>();

  /** Per node, the matching pods; built from `placed` the first time, then kept. Read only. */
  get(namespace: string, selector: readonly LabelRequirement[], placed: () => Iterable<[string, Pod]>): ReadonlyMap<string, number> {
    const key = `${namespace}\u0000${JSON.stringify(selector)}`;
    let c = this.counters.get(key);
    if (c !== undefined) {
      this.counters.delete(key);
      this.counters.set(key, c);
      return c.perNode;
    }
    c = { namespace, selector, perNode: new Map() };
    for (const [node, pod] of placed()) if (countsPod(namespace, selector, pod)) c.perNode.set(node, (c.perNode.get(node) ?? 0) + 1);
    this.counters.set(key, c);
    if (this.counters.size > MAX_SELECTORS) this.counters.delete(this.counters.keys().next().value as string);
    return c.perNode;
  }

  added(pod: Pod, node: string): void {
    for (const c of this.counters.values()) if (countsPod(c.namespace, c.selector, pod)) c.perNode.set(node, (c.perNode.get(node) ?? 0) + 1);
  }

  removed(pod: Pod, node: string): void {
    for (const c of this.counters.values()) {
      if (!countsPod(c.namespace, c.selector, pod)) continue;
      const n = (c.perNode.get(node) ?? 0) - 1;
      if (n > 0) c.perNode.set(node, n);
      else c.perNode.delete(node);
    }
  }
}
