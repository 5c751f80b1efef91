// kube-scheduler's FitError text, shared by the scheduler (why a pod fits no node) and
// DefaultPreemption (why preempting would not help either): "0/N nodes are available:
// <prefilter>. <count reason, …>." with each rejected node's reasons counted.
import type { Status } from './framework.js';

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
