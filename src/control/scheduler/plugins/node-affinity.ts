// NodeAffinity: Filter keeps the nodes matching spec.nodeSelector and the required node affinity
// ("node(s) didn't match Pod's node affinity/selector"); Score adds up the weights of the
// preferredDuringSchedulingIgnoredDuringExecution terms a node matches, normalized to 0..100.
import type { Node, NodeSelector, NodeSelectorTerm, Pod } from '../../api/types/core.js';
import { nodeSelectorMatches } from '../../controllers/volume-util.js';
import { type CycleState, defaultNormalizeScore, type FilterPlugin, type NodeScore, type PreScorePlugin, type ScorePlugin, SKIP, SUCCESS, type Status, unresolvable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';

export const REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector";

interface PreferredTerm {
  weight: number;
  preference: NodeSelectorTerm;
}
interface NodeAffinitySpec {
  requiredDuringSchedulingIgnoredDuringExecution?: NodeSelector;
  preferredDuringSchedulingIgnoredDuringExecution?: PreferredTerm[];
}

function nodeAffinity(pod: Pod): NodeAffinitySpec | undefined {
  return (pod.spec.affinity as { nodeAffinity?: NodeAffinitySpec } | undefined)?.nodeAffinity;
}

/** spec.nodeSelector and affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution. */
export function podMatchesNode(pod: Pod, node: Node): boolean {
  const labels = node.metadata.labels ?? {};
  for (const [k, v] of Object.entries(pod.spec.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const required = nodeAffinity(pod)?.requiredDuringSchedulingIgnoredDuringExecution;
  return required === undefined || nodeSelectorMatches(required, node.metadata.name ?? '', labels);
}

export class NodeAffinity implements FilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'NodeAffinity';

  filter(_state: CycleState, pod: Pod, node: NodeInfo): Status {
    return podMatchesNode(pod, node.node) ? SUCCESS : unresolvable(REASON_AFFINITY);
  }

  preScore(_state: CycleState, pod: Pod): Status {
    return (nodeAffinity(pod)?.preferredDuringSchedulingIgnoredDuringExecution ?? []).length === 0 ? SKIP : SUCCESS;
  }

  score(_state: CycleState, pod: Pod, node: NodeInfo): number {
    let total = 0;
    for (const term of nodeAffinity(pod)?.preferredDuringSchedulingIgnoredDuringExecution ?? []) {
      if (term.weight !== 0 && nodeSelectorMatches({ nodeSelectorTerms: [term.preference] }, node.name, node.node.metadata.labels)) total += term.weight;
    }
    return total;
  }

  normalizeScore(_state: CycleState, _pod: Pod, scores: NodeScore[]): void {
    defaultNormalizeScore(scores, false);
  }
}
