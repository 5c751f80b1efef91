// TaintToleration: Filter rejects a node with a NoSchedule or NoExecute taint the pod does not
// tolerate ("node(s) had untolerated taint {key: value}"); Score counts the node's PreferNoSchedule
// taints the pod does not tolerate, normalized in reverse (fewest such taints scores 100).
import type { Node, Pod, Taint, Toleration } from '../../api/types/core.js';
import { type CycleState, defaultNormalizeScore, type FilterPlugin, type NodeScore, type ScorePlugin, SUCCESS, type Status, unresolvable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';

/** Kubernetes' ToleratesTaint. */
export function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator ?? 'Equal') {
    case 'Exists':
      return true;
    case 'Equal':
      return (t.value ?? '') === (taint.value ?? '');
    default:
      return false;
  }
}

/** The first NoSchedule/NoExecute taint no toleration covers. */
export function untoleratedTaint(node: Node, tolerations: readonly Toleration[] | undefined): Taint | undefined {
  return (node.spec?.taints ?? []).find((taint) => (taint.effect === 'NoSchedule' || taint.effect === 'NoExecute') && !(tolerations ?? []).some((t) => tolerates(t, taint)));
}

export function untoleratedTaintReason(taint: Taint): string {
  return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
}

export class TaintToleration implements FilterPlugin, ScorePlugin {
  readonly name = 'TaintToleration';

  filter(_state: CycleState, pod: Pod, node: NodeInfo): Status {
    const taint = untoleratedTaint(node.node, pod.spec.tolerations);
    return taint === undefined ? SUCCESS : unresolvable(untoleratedTaintReason(taint));
  }

  score(_state: CycleState, pod: Pod, node: NodeInfo): number {
    // Only tolerations that could cover a PreferNoSchedule taint count (empty effect or that one).
    const tolerations = (pod.spec.tolerations ?? []).filter((t) => !t.effect || t.effect === 'PreferNoSchedule');
    return (node.node.spec?.taints ?? []).filter((taint) => taint.effect === 'PreferNoSchedule' && !tolerations.some((t) => tolerates(t, taint))).length;
  }

  normalizeScore(_state: CycleState, _pod: Pod, scores: NodeScore[]): void {
    defaultNormalizeScore(scores, true);
  }
}
