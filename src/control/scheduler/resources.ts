// What a pod asks of a node and what a node offers, in the units kube-scheduler counts: milli-CPU,
// bytes of memory and ephemeral-storage, and whole units of extended resources (anything else in
// a resource list: hugepages-*, example.com/gpu, …).
//
// A pod's requests are Kubernetes' PodRequests: the containers' requests summed; an init container
// runs alone before them, so the pod needs the larger of that sum and each init container's
// request (plus the restartable "sidecar" init containers started before it, which also run beside
// the app containers); then spec.overhead. A request absent where a limit is set is the limit, as
// the API server's defaulting makes it. For scoring, a container that requests no CPU or memory
// counts as 100m / 200Mi (Kubernetes' non-zero defaults), so empty pods still spread.
import { parseQuantity, quantityValue } from '../api/quantity.js';
import type { Container, Node, Pod } from '../api/types/core.js';

export interface Resources {
  milliCPU: number;
  memory: number;
  ephemeralStorage: number;
  /** Extended resources, by name. */
  scalar: Map<string, number>;
}

export const DEFAULT_MILLI_CPU_REQUEST = 100;
export const DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024;

export function emptyResources(): Resources {
  return { milliCPU: 0, memory: 0, ephemeralStorage: 0, scalar: new Map() };
}

export function isZero(r: Resources): boolean {
  return r.milliCPU === 0 && r.memory === 0 && r.ephemeralStorage === 0 && [...r.scalar.values()].every((v) => v === 0);
}

/** Milli-units of a quantity, rounded up (Quantity.MilliValue()). */
export function milliValue(q: string | number): number {
  const { nanos } = parseQuantity(q);
  const m = nanos >= 0n ? (nanos + 999_999n) / 1_000_000n : -(-nanos / 1_000_000n);
  return Number(m);
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback; // validation rejects bad quantities; a stray one must not stop the scheduler
  }
}

/** A resource list in scheduler units (pods is not a pod request, so it is left out). */
export function fromList(list: Record<string, string | number> | undefined): Resources {
  const r = emptyResources();
  for (const [name, q] of Object.entries(list ?? {})) add(r, name, q);
  return r;
}

function add(r: Resources, name: string, q: string | number): void {
  switch (name) {
    case 'cpu':
      r.milliCPU += safe(() => milliValue(q), 0);
      return;
    case 'memory':
      r.memory += safe(() => quantityValue(q), 0);
      return;
    case 'ephemeral-storage':
      r.ephemeralStorage += safe(() => quantityValue(q), 0);
      return;
    case 'pods':
      return;
    default:
      r.scalar.set(name, (r.scalar.get(name) ?? 0) + safe(() => quantityValue(q), 0));
  }
}

export function addTo(into: Resources, r: Resources): void {
  into.milliCPU += r.milliCPU;
  into.memory += r.memory;
  into.ephemeralStorage += r.ephemeralStorage;
  for (const [k, v] of r.scalar) into.scalar.set(k, (into.scalar.get(k) ?? 0) + v);
}

function maxInto(into: Resources, r: Resources): void {
  into.milliCPU = Math.max(into.milliCPU, r.milliCPU);
  into.memory = Math.max(into.memory, r.memory);
  into.ephemeralStorage = Math.max(into.ephemeralStorage, r.ephemeralStorage);
  for (const [k, v] of r.scalar) into.scalar.set(k, Math.max(into.scalar.get(k) ?? 0, v));
}

function copy(r: Resources): Resources {
  return { ...r, scalar: new Map(r.scalar) };
}

/** One container's requests (limits where requests are absent); nonZero: 100m / 200Mi where CPU / memory is not requested. */
export function containerRequests(c: Container, nonZero: boolean): Resources {
  const list: Record<string, string | number> = { ...c.resources?.limits, ...c.resources?.requests };
  const r = fromList(list);
  if (nonZero) {
    if (list['cpu'] === undefined) r.milliCPU = DEFAULT_MILLI_CPU_REQUEST;
    if (list['memory'] === undefined) r.memory = DEFAULT_MEMORY_REQUEST;
  }
  return r;
}

// Informer objects are replaced, never changed in place: a pod object's requests are computed once.
const cache = new WeakMap<Pod, Resources>();
const nonZeroCache = new WeakMap<Pod, Resources>();

/** Kubernetes' PodRequests (see the header). Do not modify the result: it is shared. */
export function podRequests(pod: Pod, nonZero = false): Resources {
  const memo = nonZero ? nonZeroCache : cache;
  let r = memo.get(pod);
  if (r === undefined) memo.set(pod, (r = computePodRequests(pod, nonZero)));
  return r;
}

function computePodRequests(pod: Pod, nonZero: boolean): Resources {
  const total = emptyResources();
  for (const c of pod.spec.containers ?? []) addTo(total, containerRequests(c, nonZero));
  const init = emptyResources();
  const sidecars = emptyResources();
  for (const c of pod.spec.initContainers ?? []) {
    const r = containerRequests(c, nonZero);
    if (c['restartPolicy'] === 'Always') {
      addTo(total, r);
      addTo(sidecars, r);
      maxInto(init, sidecars);
    } else {
      const during = copy(r);
      addTo(during, sidecars);
      maxInto(init, during);
    }
  }
  maxInto(total, init);
  const overhead = pod.spec['overhead'] as Record<string, string> | undefined;
  if (overhead !== undefined) addTo(total, fromList(overhead));
  return total;
}

/**
 * What the node offers, per resource. A node that reports no status.allocatable (a Node written by
 * hand, or by an agent that does not report it) and any of cpu / memory / ephemeral-storage / pods
 * it leaves out count as unlimited (undefined here): without it every pod would be unschedulable.
 * An extended resource the node does not list is 0, as in Kubernetes.
 */
export interface Allocatable {
  milliCPU: number | undefined;
  memory: number | undefined;
  ephemeralStorage: number | undefined;
  pods: number | undefined;
  scalar: Map<string, number>;
}

export function nodeAllocatable(node: Node): Allocatable {
  const list = node.status?.allocatable ?? {};
  const r = fromList(list);
  const num = (name: string, v: number): number | undefined => (list[name] === undefined ? undefined : v);
  return {
    milliCPU: num('cpu', r.milliCPU),
    memory: num('memory', r.memory),
    ephemeralStorage: num('ephemeral-storage', r.ephemeralStorage),
    pods: list['pods'] === undefined ? undefined : safe(() => quantityValue(list['pods'] as string), undefined),
    scalar: r.scalar,
  };
}
