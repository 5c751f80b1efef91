// NodeResourcesFit: the pod's requests (resources.ts: containers, init containers, overhead) must
// fit in what the node's status.allocatable leaves after the pods already counted there. Reasons
// are kube-scheduler's, one per short resource: "Too many pods", "Insufficient cpu", "Insufficient
// memory", "Insufficient ephemeral-storage", "Insufficient <extended resource>". A request larger
// than the whole node is UnschedulableAndUnresolvable (no preemption could help), else
// Unschedulable. A node without allocatable figures takes anything (resources.ts).
//
// Score is the scoring strategy of the plugin's args (scoring-strategy.ts), by default
// LeastAllocated over cpu and memory (weight 1 each), with the non-zero defaults for containers
// that request nothing: per resource (allocatable - requested) * 100 / allocatable, then the
// weighted mean. Resources a node does not report are left out.
import type { Pod } from '../../api/types/core.js';
import { type CycleState, type FilterPlugin, type PreFilterPlugin, type PreScorePlugin, type ScorePlugin, SUCCESS, type Status } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import { isZero, podRequests, type Resources } from '../resources.js';
import { type ScoringStrategy, strategyScorer } from './scoring-strategy.js';

/** kube-scheduler's NodeResourcesFitArgs (the part Stowage reads). */
export interface NodeResourcesFitArgs {
  scoringStrategy?: ScoringStrategy;
}

export const REASON_TOO_MANY_PODS = 'Too many pods';
export const insufficient = (resource: string): string => `Insufficient ${resource}`;

const STATE_REQUESTS = 'NodeResourcesFit/requests';
const STATE_SCORE_REQUESTS = 'NodeResourcesFit/score-requests';

interface Shortfall {
  reason: string;
  /** Even an empty node could not take it. */
  unresolvable: boolean;
}

const NONE: readonly Shortfall[] = Object.freeze([]);

/** Why the node cannot take a pod with these requests: one entry per short resource. */
export function fitShortfalls(request: Resources, node: NodeInfo): readonly Shortfall[] {
  // The common case first, on the node's plain figures, without allocations: everything fits
  // (NaN allocatable: not reported, unlimited; every comparison with it is false).
  const f = node.fitFigures();
  if (
    !(f.podCountFigure + 1 > f.allocPods) &&
    request.scalar.size === 0 &&
    !(request.milliCPU > 0 && request.milliCPU > f.allocMilliCPU - f.usedMilliCPU) &&
    !(request.memory > 0 && request.memory > f.allocMemory - f.usedMemory) &&
    !(request.ephemeralStorage > 0 && request.ephemeralStorage > f.allocEphemeral - f.usedEphemeral)
  )
    return NONE;
  const alloc = node.allocatable;
  const tooMany = alloc.pods !== undefined && node.podCount + 1 > alloc.pods;
  if (!tooMany && isZero(request)) return NONE;
  const used = node.requested;
  // The common case first, without allocations: everything fits.
  if (
    !tooMany &&
    request.scalar.size === 0 &&
    !(request.milliCPU > 0 && alloc.milliCPU !== undefined && request.milliCPU > alloc.milliCPU - used.milliCPU) &&
    !(request.memory > 0 && alloc.memory !== undefined && request.memory > alloc.memory - used.memory) &&
    !(request.ephemeralStorage > 0 && alloc.ephemeralStorage !== undefined && request.ephemeralStorage > alloc.ephemeralStorage - used.ephemeralStorage)
  )
    return NONE;
  const out: Shortfall[] = tooMany ? [{ reason: REASON_TOO_MANY_PODS, unresolvable: false }] : [];
  if (isZero(request)) return out;
  const check = (name: string, want: number, have: number | undefined, inUse: number): void => {
    if (want > 0 && have !== undefined && want > have - inUse) out.push({ reason: insufficient(name), unresolvable: want > have });
  };
  check('cpu', request.milliCPU, alloc.milliCPU, used.milliCPU);
  check('memory', request.memory, alloc.memory, used.memory);
  check('ephemeral-storage', request.ephemeralStorage, alloc.ephemeralStorage, used.ephemeralStorage);
  for (const [name, want] of request.scalar) check(name, want, alloc.scalar.get(name) ?? 0, used.scalar.get(name) ?? 0);
  return out;
}

export { leastRequestedScore, mostRequestedScore } from './scoring-strategy.js';

export class NodeResourcesFit implements PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'NodeResourcesFit';
  private readonly scorer: (request: Resources, node: NodeInfo) => number;

  constructor(args: NodeResourcesFitArgs = {}) {
    this.scorer = strategyScorer(args.scoringStrategy);
  }

  preFilter(state: CycleState, pod: Pod): Status {
    state.write(STATE_REQUESTS, podRequests(pod));
    return SUCCESS;
  }

  filter(state: CycleState, pod: Pod, node: NodeInfo): Status {
    const request = state.read<Resources>(STATE_REQUESTS) ?? podRequests(pod);
    const short = fitShortfalls(request, node);
    if (short.length === 0) return SUCCESS;
    const code = short.every((s) => s.unresolvable) ? 'UnschedulableAndUnresolvable' : 'Unschedulable';
    return { code, reasons: short.map((s) => s.reason) };
  }

  preScore(state: CycleState, pod: Pod): Status {
    state.write(STATE_SCORE_REQUESTS, podRequests(pod, true));
    return SUCCESS;
  }

  score(state: CycleState, pod: Pod, node: NodeInfo): number {
    return this.scorer(state.read<Resources>(STATE_SCORE_REQUESTS) ?? podRequests(pod, true), node);
  }
}
