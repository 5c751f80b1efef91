// kube-scheduler's cache: per node, the pods counted there (bound and not finished, or assumed
// there while they wait in PreBind) and the sums of their requests, kept up to date from pod events
// so that an attempt reads each node's figures in constant time instead of adding up its pods.
import type { Pod } from '../api/types/core.js';
import { addTo, emptyResources, podRequests, type Resources } from './resources.js';

export interface NodePods {
  readonly pods: ReadonlyMap<string, Pod>;
  readonly requested: Resources;
  readonly nonZeroRequested: Resources;
}

interface Entry {
  pods: Map<string, Pod>;
  requested: Resources;
  nonZeroRequested: Resources;
}

function sub(into: Resources, r: Resources): void {
  into.milliCPU -= r.milliCPU;
  into.memory -= r.memory;
  into.ephemeralStorage -= r.ephemeralStorage;
  for (const [k, v] of r.scalar) into.scalar.set(k, (into.scalar.get(k) ?? 0) - v);
}

const EMPTY: NodePods = { pods: new Map(), requested: emptyResources(), nonZeroRequested: emptyResources() };

export class SchedulerCache {
  private readonly nodes = new Map<string, Entry>();
  /** pod key → where it is counted, and whether only assumed there. */
  private readonly where = new Map<string, { node: string; assumed: boolean }>();
  /** Nodes whose pods changed since the last takeChanged(). */
  private changed = new Set<string>();

  /** The nodes whose pods changed since the last call (for those who keep per-node figures). */
  takeChanged(): ReadonlySet<string> {
    const out = this.changed;
    this.changed = new Set();
    return out;
  }

  /** A pod bound to a node (or no longer: finished, deleted, not bound) as the informer shows it. */
  setBound(key: string, pod: Pod | undefined, nodeName: string | undefined): void {
    const at = this.where.get(key);
    if (nodeName === undefined || pod === undefined) {
      if (at !== undefined && !at.assumed) this.remove(key);
      return;
    }
    this.remove(key);
    this.add(key, pod, nodeName, false);
  }

  /** Reserve: the pod counts on the node until bound or forgotten. */
  assume(key: string, pod: Pod, nodeName: string): void {
    const at = this.where.get(key);
    if (at !== undefined && !at.assumed) return; // already bound
    this.remove(key);
    this.add(key, pod, nodeName, true);
  }

  /** Unreserve (or the attempt found the pod gone or bound by someone else). */
  forget(key: string): void {
    if (this.where.get(key)?.assumed) this.remove(key);
  }

  assumedOn(key: string): string | undefined {
    const at = this.where.get(key);
    return at?.assumed ? at.node : undefined;
  }

  node(name: string): NodePods {
    return this.nodes.get(name) ?? EMPTY;
  }

  private add(key: string, pod: Pod, nodeName: string, assumed: boolean): void {
    let e = this.nodes.get(nodeName);
    if (e === undefined) this.nodes.set(nodeName, (e = { pods: new Map(), requested: emptyResources(), nonZeroRequested: emptyResources() }));
    this.changed.add(nodeName);
    e.pods.set(key, pod);
    addTo(e.requested, podRequests(pod));
    addTo(e.nonZeroRequested, podRequests(pod, true));
    this.where.set(key, { node: nodeName, assumed });
  }

  private remove(key: string): void {
    const at = this.where.get(key);
    if (at === undefined) return;
    this.where.delete(key);
    const e = this.nodes.get(at.node);
    const pod = e?.pods.get(key);
    if (e === undefined || pod === undefined) return;
    this.changed.add(at.node);
    e.pods.delete(key);
    sub(e.requested, podRequests(pod));
    sub(e.nonZeroRequested, podRequests(pod, true));
    if (e.pods.size === 0) this.nodes.delete(at.node);
  }
}
