// What an object uses of a ResourceQuota, in Kubernetes' resource names, and what a namespace uses
// in all: shared by quota admission (admission-quota.ts) and the resource-quota controller.
//   every namespaced object   count/<plural>[.<group>] = 1 (count/pods, count/deployments.apps, …)
//   pods                      pods = 1 unless Succeeded or Failed (count/pods counts those too);
//                             requests.cpu (and cpu), requests.memory (and memory),
//                             requests.ephemeral-storage (and ephemeral-storage), limits.cpu,
//                             limits.memory, limits.ephemeral-storage, requests.<extended>: the
//                             pod's sums (containers added, the larger of that and each init
//                             container, plus overhead)
//   persistentvolumeclaims    persistentvolumeclaims = 1, requests.storage (the larger of the
//                             request and status.allocatedResources), and both per class:
//                             <class>.storageclass.storage.k8s.io/requests.storage and
//                             …/persistentvolumeclaims
//   configmaps, secrets, resourcequotas   their own name = 1
// A quota with scopes (spec.scopes, spec.scopeSelector) counts only the pods they select:
// Terminating / NotTerminating (activeDeadlineSeconds), BestEffort / NotBestEffort (QoS class),
// PriorityClass (the pod's priorityClassName, In/NotIn/Exists/DoesNotExist); other kinds never match
// a scoped quota.
import { formatQuantity, parseQuantityOrUndefined, type ParsedQuantity } from '../api/quantity.js';
import { podQOSClass } from '../api/qos.js';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { PersistentVolumeClaim, Pod, ResourceList, ResourceQuota, ScopedResourceSelectorRequirement } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';

export type Usage = Map<string, ParsedQuantity>;

const ONE: ParsedQuantity = { nanos: 1_000_000_000n, format: 'DecimalSI' };
const ZERO: ParsedQuantity = { nanos: 0n, format: 'DecimalSI' };
const CLASS_SUFFIX = '.storageclass.storage.k8s.io/';
const BETA_CLASS_ANNOTATION = 'volume.beta.kubernetes.io/storage-class';
/** Names counted by their plain name beside count/<plural> (Kubernetes' legacy object counts). */
const LEGACY_COUNTS = new Set(['configmaps', 'secrets', 'resourcequotas', 'persistentvolumeclaims']);

const parse = parseQuantityOrUndefined;

/** Quantity.Add: the sum keeps the first operand's format unless that one is zero. */
export function addQuantity(a: ParsedQuantity | undefined, b: ParsedQuantity): ParsedQuantity {
  if (a === undefined || a.nanos === 0n) return { nanos: (a?.nanos ?? 0n) + b.nanos, format: b.format };
  return { nanos: a.nanos + b.nanos, format: a.format };
}

export function addUsage(into: Usage, u: Usage): void {
  for (const [k, q] of u) into.set(k, addQuantity(into.get(k), q));
}

export function quantityText(q: ParsedQuantity | undefined): string {
  return q === undefined ? '0' : formatQuantity(q);
}

/** The count key of a resource: count/pods, count/deployments.apps. */
export function countKey(resource: ResourceInfo): string {
  return resource.group === '' ? `count/${resource.plural}` : `count/${resource.plural}.${resource.group}`;
}

function listTotal(lists: (ResourceList | undefined)[], initLists: (ResourceList | undefined)[], overhead: ResourceList | undefined): Map<string, ParsedQuantity> {
  const total = new Map<string, ParsedQuantity>();
  for (const list of lists) {
    for (const [k, q] of Object.entries(list ?? {})) {
      const p = parse(q);
      if (p !== undefined) total.set(k, addQuantity(total.get(k), p));
    }
  }
  for (const list of initLists) {
    for (const [k, q] of Object.entries(list ?? {})) {
      const p = parse(q);
      const had = total.get(k);
      if (p !== undefined && (had === undefined || p.nanos > had.nanos)) total.set(k, p);
    }
  }
  for (const [k, q] of Object.entries(overhead ?? {})) {
    const p = parse(q);
    if (p !== undefined && total.has(k)) total.set(k, addQuantity(total.get(k), p));
  }
  return total;
}

/** Whether a pod still counts for compute resources: not Succeeded or Failed. */
function podIsLive(pod: Pod): boolean {
  return pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
}

/** Kubernetes' podComputeUsageHelper over one set of requests and limits. */
export function computeUsage(requests: ReadonlyMap<string, ParsedQuantity>, limits: ReadonlyMap<string, ParsedQuantity>): Usage {
  const u: Usage = new Map([['pods', ONE]]);
  for (const name of ['cpu', 'memory', 'ephemeral-storage']) {
    const r = requests.get(name);
    if (r !== undefined) {
      u.set(name, r);
      u.set(`requests.${name}`, r);
    }
    const l = limits.get(name);
    if (l !== undefined) u.set(`limits.${name}`, l);
  }
  for (const [name, r] of requests) if (name.includes('/') || name.startsWith('hugepages-')) u.set(`requests.${name}`, r);
  return u;
}

function podUsage(pod: Pod): Usage {
  const usage: Usage = new Map([['count/pods', ONE]]);
  if (!podIsLive(pod)) return usage;
  const containers = pod.spec?.containers ?? [];
  const inits = pod.spec?.initContainers ?? [];
  const overhead = pod.spec?.['overhead'] as ResourceList | undefined;
  const requests = listTotal(
    containers.map((c) => c.resources?.requests),
    inits.map((c) => c.resources?.requests),
    overhead,
  );
  const limits = listTotal(
    containers.map((c) => c.resources?.limits),
    inits.map((c) => c.resources?.limits),
    overhead,
  );
  addUsage(usage, computeUsage(requests, limits));
  return usage;
}

export function claimClass(pvc: PersistentVolumeClaim): string {
  return pvc.metadata.annotations?.[BETA_CLASS_ANNOTATION] ?? pvc.spec?.storageClassName ?? '';
}

function claimUsage(pvc: PersistentVolumeClaim): Usage {
  const usage: Usage = new Map([
    ['count/persistentvolumeclaims', ONE],
    ['persistentvolumeclaims', ONE],
  ]);
  const cls = claimClass(pvc);
  if (cls !== '') usage.set(`${cls}${CLASS_SUFFIX}persistentvolumeclaims`, ONE);
  const request = parse(pvc.spec?.resources?.requests?.['storage']);
  const allocated = parse(pvc.status?.allocatedResources?.['storage']);
  const storage = request !== undefined && allocated !== undefined ? (allocated.nanos > request.nanos ? allocated : request) : (request ?? allocated);
  if (storage !== undefined) {
    usage.set('requests.storage', storage);
    if (cls !== '') usage.set(`${cls}${CLASS_SUFFIX}requests.storage`, storage);
  }
  return usage;
}

/** What one object uses (see the header). */
export function usageOf(resource: ResourceInfo, obj: KubeObject): Usage {
  if (!resource.namespaced) return new Map();
  if (resource.plural === 'pods') return podUsage(obj as Pod);
  if (resource.plural === 'persistentvolumeclaims') return claimUsage(obj as PersistentVolumeClaim);
  const usage: Usage = new Map([[countKey(resource), ONE]]);
  if (LEGACY_COUNTS.has(resource.plural) && resource.group === '') usage.set(resource.plural, ONE);
  return usage;
}

/** The resource whose objects a quota key counts, or undefined (services, …: nothing served uses it). */
export function resourceOfKey(key: string): ResourceInfo | undefined {
  if (key.startsWith('count/')) return resourceForName(key.slice('count/'.length));
  if (key === 'persistentvolumeclaims' || key === 'requests.storage' || key.includes(CLASS_SUFFIX)) return resourceForName('persistentvolumeclaims');
  if (LEGACY_COUNTS.has(key)) return resourceForName(key);
  if (key === 'pods' || key === 'cpu' || key === 'memory' || key === 'ephemeral-storage' || key.startsWith('requests.') || key.startsWith('limits.')) {
    return resourceForName('pods');
  }
  return undefined;
}

function scopeRequirements(q: ResourceQuota): ScopedResourceSelectorRequirement[] {
  return [...(q.spec?.scopes ?? []).map((scopeName): ScopedResourceSelectorRequirement => ({ scopeName, operator: 'Exists' })), ...(q.spec?.scopeSelector?.matchExpressions ?? [])];
}

function podMatchesScope(pod: Pod, r: ScopedResourceSelectorRequirement): boolean {
  const deadline = pod.spec?.activeDeadlineSeconds;
  const terminating = deadline !== undefined && deadline >= 0;
  const bestEffort = podQOSClass(pod) === 'BestEffort';
  switch (r.scopeName) {
    case 'Terminating':
      return terminating;
    case 'NotTerminating':
      return !terminating;
    case 'BestEffort':
      return bestEffort;
    case 'NotBestEffort':
      return !bestEffort;
    case 'PriorityClass': {
      const name = pod.spec?.priorityClassName;
      const values = r.values ?? [];
      if (r.operator === 'Exists') return Boolean(name);
      if (r.operator === 'DoesNotExist') return !name;
      if (r.operator === 'In') return values.includes(name ?? '');
      if (r.operator === 'NotIn') return !values.includes(name ?? '');
      return false;
    }
    default:
      return false;
  }
}

/** Whether the quota's scopes select the object (an unscoped quota selects everything). */
export function quotaSelects(q: ResourceQuota, resource: ResourceInfo, obj: KubeObject): boolean {
  const reqs = scopeRequirements(q);
  if (reqs.length === 0) return true;
  if (resource.plural !== 'pods') return false;
  return reqs.every((r) => podMatchesScope(obj as Pod, r));
}

/** The usage restricted to the quota's hard resources. */
export function masked(usage: Usage, hard: ResourceList): Usage {
  return new Map([...usage].filter(([k]) => hard[k] !== undefined));
}

/**
 * What a namespace uses of each of the quota's hard resources, from its objects
 * (`objects(resource)` lists one resource in the quota's namespace): every hard resource present,
 * 0 when nothing uses it.
 */
export function quotaUsed(q: ResourceQuota, objects: (resource: ResourceInfo) => KubeObject[]): Usage {
  const hard = q.spec?.hard ?? {};
  const used: Usage = new Map(Object.keys(hard).map((k) => [k, ZERO]));
  const resources = new Map<string, ResourceInfo>();
  for (const key of Object.keys(hard)) {
    const r = resourceOfKey(key);
    if (r !== undefined) resources.set(r.plural, r);
  }
  for (const r of resources.values()) {
    for (const obj of objects(r)) if (quotaSelects(q, r, obj)) addUsage(used, masked(usageOf(r, obj), hard));
  }
  return used;
}

export function usageList(u: Usage): ResourceList {
  return Object.fromEntries([...u].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, quantityText(v)]));
}
