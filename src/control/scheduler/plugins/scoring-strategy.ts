// NodeResourcesFit's scoring strategies, as kube-scheduler's NodeResourcesFitArgs.scoringStrategy:
// LeastAllocated (the default: spread), MostAllocated (bin-pack) and RequestedToCapacityRatio (a
// piecewise-linear shape of utilization → score, 0..10 scaled to 0..100), each over a list of
// resources with weights (default cpu and memory, weight 1). Requested is the pods' requests with
// the non-zero defaults plus the pod's; a resource the node does not report is left out.
import { MAX_NODE_SCORE } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { Resources } from '../resources.js';

export type ScoringStrategyType = 'LeastAllocated' | 'MostAllocated' | 'RequestedToCapacityRatio';

export interface ScoringStrategy {
  type?: ScoringStrategyType;
  resources?: { name: string; weight?: number }[];
  requestedToCapacityRatio?: { shape: { utilization: number; score: number }[] };
}

const MAX_CUSTOM_PRIORITY_SCORE = 10;
const DEFAULT_RESOURCES = [
  { name: 'cpu', weight: 1 },
  { name: 'memory', weight: 1 },
];

/** Kubernetes' leastRequestedScore for one resource. */
export function leastRequestedScore(requested: number, capacity: number): number {
  if (capacity === 0 || requested > capacity) return 0;
  return Math.floor(((capacity - requested) * MAX_NODE_SCORE) / capacity);
}

/** Kubernetes' mostRequestedScore for one resource (requested above capacity counts as full). */
export function mostRequestedScore(requested: number, capacity: number): number {
  if (capacity === 0) return 0;
  return Math.floor((Math.min(requested, capacity) * MAX_NODE_SCORE) / capacity);
}

/** Kubernetes' BuildBrokenLinearFunction over (utilization, score) points sorted by utilization. */
export function brokenLinear(shape: readonly { utilization: number; score: number }[]): (p: number) => number {
  return (p) => {
    for (let i = 0; i < shape.length; i++) {
      const cur = shape[i] as { utilization: number; score: number };
      if (p <= cur.utilization) {
        if (i === 0) return cur.score;
        const prev = shape[i - 1] as { utilization: number; score: number };
        return prev.score + Math.trunc(((cur.score - prev.score) * (p - prev.utilization)) / (cur.utilization - prev.utilization));
      }
    }
    return (shape[shape.length - 1] as { score: number }).score;
  };
}

function value(r: Resources, name: string): number {
  switch (name) {
    case 'cpu':
      return r.milliCPU;
    case 'memory':
      return r.memory;
    case 'ephemeral-storage':
      return r.ephemeralStorage;
    default:
      return r.scalar.get(name) ?? 0;
  }
}

function allocatableOf(node: NodeInfo, name: string): number {
  const a = node.allocatable;
  switch (name) {
    case 'cpu':
      return a.milliCPU ?? 0;
    case 'memory':
      return a.memory ?? 0;
    case 'ephemeral-storage':
      return a.ephemeralStorage ?? 0;
    default:
      return a.scalar.get(name) ?? 0;
  }
}

/** The node's score for a pod with these (non-zero) requests under the strategy. */
export function strategyScorer(strategy: ScoringStrategy = {}): (request: Resources, node: NodeInfo) => number {
  const resources = (strategy.resources ?? DEFAULT_RESOURCES).map((r) => ({ name: r.name, weight: r.weight ?? 1 }));
  const type = strategy.type ?? 'LeastAllocated';
  if (type === 'RequestedToCapacityRatio') {
    const shape = (strategy.requestedToCapacityRatio?.shape ?? []).map((p) => ({ utilization: p.utilization, score: p.score * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE) }));
    if (shape.length === 0) throw new Error('RequestedToCapacityRatio needs requestedToCapacityRatio.shape');
    const raw = brokenLinear(shape);
    const one = (requested: number, capacity: number): number => (capacity === 0 || requested > capacity ? raw(100) : raw(requested <= 0 ? 0 : Math.floor((requested * 100) / capacity)));
    return (request, node) => {
      let total = 0;
      let weights = 0;
      for (const r of resources) {
        const capacity = allocatableOf(node, r.name);
        if (capacity === 0) continue;
        const s = one(value(node.nonZeroRequested, r.name) + value(request, r.name), capacity);
        if (s > 0) {
          total += s * r.weight;
          weights += r.weight;
        }
      }
      return weights === 0 ? 0 : Math.round(total / weights);
    };
  }
  const per = type === 'MostAllocated' ? mostRequestedScore : leastRequestedScore;
  // The default resources (cpu and memory, weight 1 each) on the node's plain figures: this runs
  // per feasible node per pod. Other lists take the general path.
  const cpuAndMemory = resources.length === 2 && resources[0]?.name === 'cpu' && resources[0].weight === 1 && resources[1]?.name === 'memory' && resources[1].weight === 1;
  const general = (request: Resources, node: NodeInfo): number => {
    let total = 0;
    let weights = 0;
    for (const r of resources) {
      const capacity = allocatableOf(node, r.name);
      if (capacity === 0) continue;
      total += per(value(node.nonZeroRequested, r.name) + value(request, r.name), capacity) * r.weight;
      weights += r.weight;
    }
    return weights === 0 ? 0 : Math.floor(total / weights);
  };
  if (!cpuAndMemory) return general;
  return (request, node) => {
    const f = node.fitFigures();
    // Capacity 0 or not reported (NaN): the resource is left out, as allocatableOf's 0 above.
    const cpuCap = Number.isNaN(f.allocMilliCPU) ? 0 : f.allocMilliCPU;
    const memCap = Number.isNaN(f.allocMemory) ? 0 : f.allocMemory;
    let total = 0;
    let weights = 0;
    if (cpuCap !== 0) {
      total += per(f.nonZeroMilliCPU + request.milliCPU, cpuCap);
      weights++;
    }
    if (memCap !== 0) {
      total += per(f.nonZeroMemory + request.memory, memCap);
      weights++;
    }
    return weights === 0 ? 0 : Math.floor(total / weights);
  };
}
