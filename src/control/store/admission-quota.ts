// The ResourceQuota admission plugin. A create (or a claim's update: a resize) in a namespace with
// quotas is refused when, for a quota that selects it, what it adds on top of the quota's
// status.used exceeds spec.hard: Forbidden, `exceeded quota: <name>, requested: <k>=<v>,
// used: <k>=<v>, limited: <k>=<v>` (the exceeded resources, sorted, comma-separated), as Kubernetes
// says it. A pod under a quota of cpu or memory must declare them: `failed quota: <name>: must
// specify limits.cpu for: <containers>; requests.memory for: …`.
//
// As in kube-apiserver, an admitted write charges the quotas: their status.used grows by what the
// object adds, written with it (the store applies the returned charges in the same synchronous
// step, so two concurrent creates cannot both pass a quota of 1); what is freed (deletions, pods
// that finished) is given back by the resourcequota-controller's recount. Unlike kube-apiserver,
// which refuses a quota whose status does not list a resource yet ("status unknown for quota"),
// a quota is counted as it is created (initialQuotaStatus), and a resource its status does not
// list yet is counted from the store on the spot.
import { type ParsedQuantity, parseQuantity } from '../api/quantity.js';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Pod, ResourceQuota } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { Reader } from './admission.js';
import { ForbiddenError } from './errors.js';
import { addQuantity, computeUsage, masked, quantityText, quotaSelects, quotaUsed, type Usage, usageList, usageOf } from './quota-usage.js';

export const QUOTAS = resourceForName('resourcequotas') as ResourceInfo;
/** The compute resources each container must declare when a quota limits them. */
const MUST_DECLARE = new Set(['cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory']);

/** A quota whose status.used an admitted write raises: the store writes it with the object. */
export interface QuotaCharge {
  namespace: string;
  name: string;
  used: Record<string, string>;
}

function pretty(usage: Usage, keys: readonly string[]): string {
  return keys.map((k) => `${k}=${quantityText(usage.get(k))}`).join(',');
}

function parsed(v: string | number): ParsedQuantity {
  try {
    return parseQuantity(v);
  } catch {
    return { nanos: 0n, format: 'DecimalSI' };
  }
}

function listUsage(list: Record<string, string | number> | undefined): Usage {
  return new Map(Object.entries(list ?? {}).map(([k, v]) => [k, parsed(v)]));
}

/** Kubernetes' pod evaluator Constraints: the containers missing a declaration the quota needs. */
function missingDeclarations(q: ResourceQuota, pod: Pod): string | undefined {
  const required = Object.keys(q.spec?.hard ?? {}).filter((k) => MUST_DECLARE.has(k));
  if (required.length === 0) return undefined;
  const missing = new Map<string, Set<string>>();
  for (const c of [...(pod.spec.containers ?? []), ...(pod.spec.initContainers ?? [])]) {
    const has = computeUsage(listUsage(c.resources?.requests), listUsage(c.resources?.limits));
    for (const k of required) {
      if (has.has(k)) continue;
      const names = missing.get(k) ?? new Set<string>();
      names.add(c.name ?? '');
      missing.set(k, names);
    }
  }
  if (missing.size === 0) return undefined;
  const parts = [...missing.keys()].sort().map((k) => `${k} for: ${[...(missing.get(k) ?? [])].sort().join(',')}`);
  return `must specify ${parts.join('; ')}`;
}

function objectsOf(reader: Reader, namespace: string): (r: ResourceInfo) => KubeObject[] {
  const lists = new Map<string, KubeObject[]>();
  return (r) => {
    let l = lists.get(r.plural);
    if (l === undefined) lists.set(r.plural, (l = reader.list(r, namespace)));
    return l;
  };
}

/** A new quota's status: hard as in spec, used as the namespace uses it now. */
export function initialQuotaStatus(reader: Reader, q: ResourceQuota): void {
  q.status = { hard: { ...(q.spec?.hard ?? {}) }, used: usageList(quotaUsed(q, objectsOf(reader, q.metadata.namespace ?? ''))) };
}

/**
 * Admits `obj` (a create when `old` is undefined; otherwise an update, which only claims are
 * checked for, their growth counting) against the quotas of its namespace; returns the charges to
 * write with it.
 */
export function admitQuota(reader: Reader, resource: ResourceInfo, obj: KubeObject, old?: KubeObject): QuotaCharge[] {
  if (!resource.namespaced) return [];
  if (old !== undefined && resource.plural !== 'persistentvolumeclaims') return [];
  const namespace = obj.metadata.namespace ?? '';
  const quotas = reader.list(QUOTAS, namespace) as ResourceQuota[];
  if (quotas.length === 0) return [];
  const delta = usageOf(resource, obj);
  if (old !== undefined) {
    const before = usageOf(resource, old);
    for (const [k, q] of delta) {
      const grown = q.nanos - (before.get(k)?.nanos ?? 0n);
      if (grown > 0n) delta.set(k, { ...q, nanos: grown });
      else delta.delete(k);
    }
    if (delta.size === 0) return [];
  }
  const name = obj.metadata.name ?? '';
  const objects = objectsOf(reader, namespace);
  const charges: QuotaCharge[] = [];
  for (const q of [...quotas].sort((a, b) => ((a.metadata.name ?? '') < (b.metadata.name ?? '') ? -1 : 1))) {
    if (!quotaSelects(q, resource, obj)) continue;
    if (old === undefined && resource.plural === 'pods') {
      const why = missingDeclarations(q, obj as Pod);
      if (why !== undefined) throw new ForbiddenError(resource, name, `failed quota: ${q.metadata.name ?? ''}: ${why}`);
    }
    const hard = q.spec?.hard ?? {};
    const requested = masked(delta, hard);
    if (requested.size === 0) continue;
    const used = listUsage(q.status?.used);
    if ([...requested.keys()].some((k) => !used.has(k))) {
      const live = quotaUsed(q, objects);
      for (const k of requested.keys()) if (!used.has(k)) used.set(k, live.get(k) ?? parsed(0));
    }
    const limits = listUsage(hard);
    const exceeded = [...requested.keys()].filter((k) => (used.get(k)?.nanos ?? 0n) + (requested.get(k)?.nanos ?? 0n) > (limits.get(k)?.nanos ?? 0n)).sort();
    if (exceeded.length > 0) {
      throw new ForbiddenError(
        resource,
        name,
        `exceeded quota: ${q.metadata.name ?? ''}, requested: ${pretty(requested, exceeded)}, used: ${pretty(used, exceeded)}, limited: ${pretty(limits, exceeded)}`,
      );
    }
    const next = new Map(used);
    for (const [k, v] of requested) next.set(k, addQuantity(used.get(k), v));
    charges.push({ namespace, name: q.metadata.name ?? '', used: { ...q.status?.used, ...usageList(next) } });
  }
  return charges;
}
