// NodeResourcesBalancedAllocation: prefers the node where, with the pod added, the CPU and memory
// fractions in use are closest to each other: score (1 - std) * 100, the standard deviation of the
// fractions (each capped at 1; for two resources |a - b| / 2). Actual requests, no non-zero
// defaults; a pod that requests neither CPU nor memory is skipped, as kube-scheduler does.
import type { Pod } from '../../api/types/core.js';
import { type CycleState, MAX_NODE_SCORE, type PreScorePlugin, type ScorePlugin, SKIP, SUCCESS, type Status } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import { podRequests, type Resources } from '../resources.js';

const STATE_KEY = 'NodeResourcesBalancedAllocation';

/** Kubernetes' balancedResourceScorer over (requested, allocatable) pairs. */
export function balancedScore(pairs: readonly (readonly [requested: number, allocatable: number | undefined])[]): number {
  const fractions: number[] = [];
  for (const [requested, allocatable] of pairs) {
    if (allocatable === undefined || allocatable === 0) continue;
    fractions.push(Math.min(1, requested / allocatable));
  }
  let std = 0;
  if (fractions.length === 2) std = Math.abs(((fractions[0] as number) - (fractions[1] as number)) / 2);
  else if (fractions.length > 2) {
    const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
    std = Math.sqrt(fractions.reduce((a, f) => a + (f - mean) ** 2, 0) / fractions.length);
  }
  return Math.trunc((1 - std) * MAX_NODE_SCORE);
}

export class NodeResourcesBalancedAllocation implements PreScorePlugin, ScorePlugin {
  readonly name = 'NodeResourcesBalancedAllocation';

  preScore(state: CycleState, pod: Pod): Status {
    const request = podRequests(pod);
    if (request.milliCPU === 0 && request.memory === 0) return SKIP;
    state.write(STATE_KEY, request);
    return SUCCESS;
  }

  score(state: CycleState, pod: Pod, node: NodeInfo): number {
    const request = state.read<Resources>(STATE_KEY) ?? podRequests(pod);
    const f = node.fitFigures();
    // Not reported (NaN) or 0: the resource is left out.
    const cpu = !(f.allocMilliCPU > 0 || f.allocMilliCPU < 0) ? undefined : Math.min(1, (f.usedMilliCPU + request.milliCPU) / f.allocMilliCPU);
    const memory = !(f.allocMemory > 0 || f.allocMemory < 0) ? undefined : Math.min(1, (f.usedMemory + request.memory) / f.allocMemory);
    // balancedScore for the two resources, without its arrays (this runs per node per pod).
    if (cpu === undefined || memory === undefined) return MAX_NODE_SCORE;
    return Math.trunc((1 - Math.abs((cpu - memory) / 2)) * MAX_NODE_SCORE);
  }
}
