// What the workload controllers (statefulset, replicaset, deployment, daemonset, job) share, as
// kube-controller-manager's controller_utils: controller references, pods made from a template,
// readiness and availability, the template hash, and the pods-by-owner index.
import { createHash } from 'node:crypto';
import type { PodTemplateSpec } from '../api/types/apps.js';
import type { Pod } from '../api/types/core.js';
import type { KubeObject, OwnerReference } from '../api/types/meta.js';
import type { Informer } from './informer.js';

/** The informer index of pods by their controller's uid. */
export const IDX_POD_BY_CONTROLLER = 'workloads:pods-by-controller-uid';

/** The reference a controller puts on what it creates: controller and blocking its owner's deletion. */
export function controllerRef(owner: KubeObject): OwnerReference {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name ?? '', uid: owner.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

export function controllerOf(obj: KubeObject): OwnerReference | undefined {
  return (obj.metadata.ownerReferences ?? []).find((r) => r.controller === true);
}

/** Adds the pods-by-controller index to the shared pod informer (once). */
export function indexPodsByController(pods: Informer<Pod>): void {
  try {
    pods.addIndex(IDX_POD_BY_CONTROLLER, (p) => {
      const ref = controllerOf(p);
      return ref === undefined ? [] : [ref.uid];
    });
  } catch {
    // Already added by another workload controller, or the informer already started: both fine
    // only in the first case, which is the one that happens (controllers are built before start).
  }
}

export function podsOwnedBy(pods: Informer<Pod>, owner: KubeObject): Pod[] {
  return pods.byIndex(IDX_POD_BY_CONTROLLER, owner.metadata.uid ?? '');
}

/** A pod built from a template (GetPodFromTemplate): its labels, annotations and spec, owned by `owner`. */
export function podFromTemplate(template: PodTemplateSpec, owner: KubeObject, name: { name?: string; generateName?: string }, extraLabels: Record<string, string> = {}): Pod {
  const t = structuredClone(template);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...name,
      namespace: owner.metadata.namespace,
      labels: { ...t.metadata?.labels, ...extraLabels },
      ...(t.metadata?.annotations ? { annotations: t.metadata.annotations } : {}),
      ...(t.metadata?.finalizers ? { finalizers: t.metadata.finalizers } : {}),
      ownerReferences: [controllerRef(owner)],
    },
    spec: t.spec,
  };
}

export function isTerminating(obj: KubeObject): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}

export function isFinished(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function readyCondition(pod: Pod): { status: string; lastTransitionTime?: string } | undefined {
  return (pod.status?.conditions ?? []).find((c) => c.type === 'Ready');
}

/** Ready condition True (podutil.IsPodReady). */
export function isReady(pod: Pod): boolean {
  return readyCondition(pod)?.status === 'True';
}

export function isRunningAndReady(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && isReady(pod);
}

/** Ready for at least minReadySeconds (podutil.IsPodAvailable). */
export function isAvailable(pod: Pod, minReadySeconds: number, now = Date.now()): boolean {
  if (!isReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  const since = Date.parse(readyCondition(pod)?.lastTransitionTime ?? '');
  return Number.isFinite(since) && since + minReadySeconds * 1000 <= now;
}

/** The milliseconds until a ready pod becomes available, or undefined if it never will by waiting. */
export function untilAvailable(pod: Pod, minReadySeconds: number, now = Date.now()): number | undefined {
  if (!isReady(pod) || minReadySeconds <= 0) return undefined;
  const since = Date.parse(readyCondition(pod)?.lastTransitionTime ?? '');
  if (!Number.isFinite(since)) return undefined;
  const left = since + minReadySeconds * 1000 - now;
  return left > 0 ? left : undefined;
}

/**
 * A short, stable hash of a pod template (and a collision count), in the alphabet Kubernetes'
 * rand.SafeEncodeString uses for pod-template-hash and controller-revision-hash values.
 */
export function templateHash(template: PodTemplateSpec, collisionCount = 0): string {
  const digest = createHash('sha256').update(JSON.stringify(template)).update(String(collisionCount)).digest();
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let out = '';
  for (let i = 0; i < 10; i++) out += alphabet[(digest[i] ?? 0) % alphabet.length];
  return out;
}

/** The conditions with `next` in place of its type's (lastTransitionTime kept while the status is unchanged). */
export function setCondition<C extends { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string; lastUpdateTime?: string }>(list: C[] | undefined, next: C): C[] {
  const old = (list ?? []).find((c) => c.type === next.type);
  if (old === undefined) return [...(list ?? []), next];
  // Same status, reason and message: keep the old one (no write just for a newer update time).
  if (old.status === next.status && old.reason === next.reason && old.message === next.message) return list ?? [];
  const merged = old.status === next.status ? { ...next, lastTransitionTime: old.lastTransitionTime ?? next.lastTransitionTime } : next;
  return (list ?? []).map((c) => (c.type === next.type ? merged : c));
}
