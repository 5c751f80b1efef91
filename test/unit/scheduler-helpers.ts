// In-memory pods and nodes for the scheduler plugins' table-driven tests: a node with allocatable
// figures, labels and taints, a pod with per-container requests, and the NodeInfo a Filter sees.
import type { Container, Node, Pod, Taint } from '../../src/control/api/types/core.js';
import { NodeInfo } from '../../src/control/scheduler/node-info.js';

export function node(name: string, opts: { allocatable?: Record<string, string>; labels?: Record<string, string>; taints?: Taint[]; unschedulable?: boolean } = {}): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...opts.labels } },
    spec: { ...(opts.taints ? { taints: opts.taints } : {}), ...(opts.unschedulable ? { unschedulable: true } : {}) },
    ...(opts.allocatable ? { status: { allocatable: opts.allocatable } } : {}),
  };
}

/** A container asking for these requests (and limits). */
export function ctr(name: string, requests?: Record<string, string>, limits?: Record<string, string>, extra: Partial<Container> = {}): Container {
  const resources = { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
  return { name, image: 'busybox', ...(requests || limits ? { resources } : {}), ...extra };
}

export function podOf(name: string, containers: Container[], spec: Partial<Pod['spec']> = {}): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', uid: `uid-${name}` }, spec: { containers, ...spec } };
}

/** A pod requesting cpu/memory in one container. */
export function podRequesting(name: string, requests: Record<string, string>): Pod {
  return podOf(name, [ctr('c', requests)]);
}

export function info(n: Node, pods: Pod[] = []): NodeInfo {
  return new NodeInfo(n, pods);
}
