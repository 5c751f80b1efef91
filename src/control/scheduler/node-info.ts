// kube-scheduler's NodeInfo for one attempt: a node with the pods counted on it (bound and not
// finished, plus pods assumed there while they wait for PreBind) and what they take, never the pod
// being scheduled itself. Built from the scheduler's cache (cache.ts: sums kept up to date, so a
// node costs nothing to look at) or, in tests, from a list of pods.
import type { Node, Pod } from '../api/types/core.js';
import { podTerms } from './affinity-terms.js';
import type { NodePods } from './cache.js';
import { type Allocatable, addTo, emptyResources, nodeAllocatable, podRequests, type Resources } from './resources.js';

export class NodeInfo {
  readonly name: string;
  /**
   * The figures NodeResourcesFit and the resource scorers read per node, as plain numbers on this
   * object (set by fitFigures(): read them after calling it). Filter and Score run over hundreds
   * of nodes per pod, and following allocatable → requested → pods objects per node cost more
   * than the arithmetic. Allocatable NaN: the node does not report it (unlimited). Extended
   * resources are not here: callers read allocatable and requested for them.
   */
  allocMilliCPU = Number.NaN;
  allocMemory = Number.NaN;
  allocEphemeral = Number.NaN;
  allocPods = Number.NaN;
  usedMilliCPU = 0;
  usedMemory = 0;
  usedEphemeral = 0;
  nonZeroMilliCPU = 0;
  nonZeroMemory = 0;
  podCountFigure = 0;
  private fitReady = false;
  /** Plugins' per-node figures kept with this NodeInfo (see memo()). */
  private memos: Map<string, unknown> | undefined;
  private podsCache: readonly Pod[] | undefined;
  private requestedCache: Resources | undefined;
  private nonZeroCache: Resources | undefined;
  private allocatableCache: Allocatable | undefined;
  private readonly cached: NodePods | undefined;
  /** The pod being scheduled, counted in `cached` (assumed there by an earlier attempt). */
  private readonly self: Pod | undefined;

  constructor(
    readonly node: Node,
    pods: readonly Pod[] | NodePods,
    /** The key of the pod being scheduled, left out of the figures. */
    excludeKey?: string,
  ) {
    this.name = node.metadata.name ?? '';
    if (Array.isArray(pods)) this.podsCache = pods as readonly Pod[];
    else {
      this.cached = pods as NodePods;
      this.self = excludeKey === undefined ? undefined : this.cached.pods.get(excludeKey);
    }
  }

  /** The other pods on the node. */
  get pods(): readonly Pod[] {
    if (this.podsCache === undefined) {
      const self = this.self;
      this.podsCache = [...(this.cached?.pods.values() ?? [])].filter((p) => p !== self);
    }
    return this.podsCache;
  }

  /** The other pods on the node with pod affinity or anti-affinity (InterPodAffinity's scoring). */
  get podsWithAffinity(): readonly Pod[] {
    return this.others(this.cached?.withAffinity, (p) => podTerms(p).hasAffinity);
  }

  /** The other pods on the node with required anti-affinity terms. */
  get podsWithRequiredAntiAffinity(): readonly Pod[] {
    return this.others(this.cached?.withRequiredAntiAffinity, (p) => podTerms(p).requiredAntiAffinity.length > 0);
  }

  private others(filed: ReadonlyMap<string, Pod> | undefined, test: (p: Pod) => boolean): readonly Pod[] {
    if (filed === undefined) return this.pods.filter(test);
    if (filed.size === 0) return [];
    const self = this.self;
    const out: Pod[] = [];
    for (const p of filed.values()) if (p !== self) out.push(p);
    return out;
  }

  /**
   * A plugin's figure for this node, kept while this NodeInfo is (the node and its pods unchanged):
   * the caller checks that it still holds (node-drivers.ts keeps a generation with it).
   */
  memo<T>(key: string): T | undefined {
    return this.memos?.get(key) as T | undefined;
  }

  setMemo(key: string, value: unknown): void {
    (this.memos ??= new Map()).set(key, value);
  }

  /** Sets the plain figures above (once). */
  fitFigures(): this {
    if (this.fitReady) return this;
    const a = this.allocatable;
    const used = this.requested;
    const nz = this.nonZeroRequested;
    this.allocMilliCPU = a.milliCPU ?? Number.NaN;
    this.allocMemory = a.memory ?? Number.NaN;
    this.allocEphemeral = a.ephemeralStorage ?? Number.NaN;
    this.allocPods = a.pods ?? Number.NaN;
    this.usedMilliCPU = used.milliCPU;
    this.usedMemory = used.memory;
    this.usedEphemeral = used.ephemeralStorage;
    this.nonZeroMilliCPU = nz.milliCPU;
    this.nonZeroMemory = nz.memory;
    this.podCountFigure = this.podCount;
    this.fitReady = true;
    return this;
  }

  get podCount(): number {
    if (this.podsCache !== undefined || this.cached === undefined) return this.pods.length;
    return this.cached.pods.size - (this.self === undefined ? 0 : 1);
  }

  /** The pods' requests as they are (NodeResourcesFit's filter). Read only. */
  get requested(): Resources {
    if (this.requestedCache === undefined) this.requestedCache = this.figures(false);
    return this.requestedCache;
  }

  /** The pods' requests with the non-zero defaults (scoring). Read only. */
  get nonZeroRequested(): Resources {
    if (this.nonZeroCache === undefined) this.nonZeroCache = this.figures(true);
    return this.nonZeroCache;
  }

  get allocatable(): Allocatable {
    if (this.allocatableCache === undefined) {
      let a = allocatables.get(this.node);
      if (a === undefined) allocatables.set(this.node, (a = nodeAllocatable(this.node)));
      this.allocatableCache = a;
    }
    return this.allocatableCache;
  }

  private figures(nonZero: boolean): Resources {
    const total = emptyResources();
    if (this.cached === undefined) {
      for (const p of this.pods) addTo(total, podRequests(p, nonZero));
      return total;
    }
    const sums = nonZero ? this.cached.nonZeroRequested : this.cached.requested;
    if (this.self === undefined) return sums;
    addTo(total, sums);
    const mine = podRequests(this.self, nonZero);
    total.milliCPU -= mine.milliCPU;
    total.memory -= mine.memory;
    total.ephemeralStorage -= mine.ephemeralStorage;
    for (const [k, v] of mine.scalar) total.scalar.set(k, (total.scalar.get(k) ?? 0) - v);
    return total;
  }
}

/** Node objects are replaced, never changed in place: their figures are parsed once. */
const allocatables = new WeakMap<Node, Allocatable>();
