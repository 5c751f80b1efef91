// kube-scheduler's NodeInfo for one attempt: a node with the pods counted on it (bound and not
// finished, plus pods assumed there while they wait for PreBind) and what they take. Figures are
// computed on first use and kept for the attempt, so a Filter that only reads labels costs nothing.
import type { Node, Pod } from '../api/types/core.js';
import { type Allocatable, addTo, emptyResources, nodeAllocatable, podRequests, type Resources } from './resources.js';

export class NodeInfo {
  readonly name: string;
  private requestedCache: Resources | undefined;
  private nonZeroCache: Resources | undefined;
  private allocatableCache: Allocatable | undefined;

  constructor(
    readonly node: Node,
    /** The other pods on the node (the pod being scheduled is never among them). */
    readonly pods: readonly Pod[],
  ) {
    this.name = node.metadata.name ?? '';
  }

  /** The pods' requests as they are (NodeResourcesFit's filter). */
  get requested(): Resources {
    if (this.requestedCache === undefined) this.requestedCache = sum(this.pods, false);
    return this.requestedCache;
  }

  /** The pods' requests with the non-zero defaults (scoring). */
  get nonZeroRequested(): Resources {
    if (this.nonZeroCache === undefined) this.nonZeroCache = sum(this.pods, true);
    return this.nonZeroCache;
  }

  get allocatable(): Allocatable {
    if (this.allocatableCache === undefined) this.allocatableCache = nodeAllocatable(this.node);
    return this.allocatableCache;
  }
}

function sum(pods: readonly Pod[], nonZero: boolean): Resources {
  const total = emptyResources();
  for (const p of pods) addTo(total, podRequests(p, nonZero));
  return total;
}
