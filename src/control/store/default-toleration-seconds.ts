// The DefaultTolerationSeconds admission plugin kube-apiserver runs by default. Why: without it a
// pod on a node that went unreachable would be evicted at once (it tolerates nothing) or never;
// Kubernetes gives every pod 300 s: a pod that does not already tolerate the NoExecute taints
// node.kubernetes.io/not-ready and node.kubernetes.io/unreachable gets a toleration of each
// (operator Exists, effect NoExecute, tolerationSeconds from kube-apiserver's
// --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds, both 300).
import type { Pod, Toleration } from '../api/types/core.js';

export const DEFAULT_TOLERATION_SECONDS = 300;

export interface DefaultTolerationSeconds {
  notReady?: number;
  unreachable?: number;
}

/** Adds the two default tolerations a pod lacks (at creation). */
export function admitDefaultTolerationSeconds(pod: Pod, seconds: DefaultTolerationSeconds = {}): void {
  const tolerations: Toleration[] = [...(pod.spec.tolerations ?? [])];
  const add = (key: string, value: number): void => {
    // Upstream's test: a toleration of that key (or of every key) for NoExecute (or every effect).
    if (tolerations.some((t) => (!t.key || t.key === key) && (!t.effect || t.effect === 'NoExecute'))) return;
    tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: value });
  };
  add('node.kubernetes.io/not-ready', seconds.notReady ?? DEFAULT_TOLERATION_SECONDS);
  add('node.kubernetes.io/unreachable', seconds.unreachable ?? DEFAULT_TOLERATION_SECONDS);
  if (tolerations.length > 0) pod.spec.tolerations = tolerations;
}
