// The ResourceQuota admission plugin. A create (or a claim's update: a resize) in a namespace with
// quotas is refused when, for a quota that selects it, what it adds on top of what the namespace
// already uses exceeds spec.hard: Forbidden, `exceeded quota: <name>, requested: <k>=<v>,
// used: <k>=<v>, limited: <k>=<v>` (the exceeded resources, sorted, comma-separated), as Kubernetes
// says it. A pod under a quota of cpu or memory must declare them: `failed quota: <name>: must
// specify limits.cpu for: <containers>; requests.memory for: …`.
//
// Race-free by construction: the store's writes are synchronous, so the usage read here (from the
// store itself, not from status.used, which the resource-quota controller keeps for display) and
// the write it admits happen with no other write between them. Kubernetes reaches the same end
// with an optimistic update of status.used per request.
import { type ParsedQuantity, parseQuantity } from '../api/quantity.js';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Pod, ResourceQuota } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { Reader } from './admission.js';
import { ForbiddenError } from './errors.js';
import { computeUsage, masked, quantityText, quotaSelects, quotaUsed, type Usage, usageOf } from './quota-usage.js';

const QUOTAS = resourceForName('resourcequotas') as ResourceInfo;
/** The compute resources each container must declare when a quota limits them. */
const MUST_DECLARE = new Set(['cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory']);

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

function hardUsage(q: ResourceQuota): Usage {
  return new Map(Object.entries(q.spec?.hard ?? {}).map(([k, v]) => [k, parsed(v)]));
}

/** Kubernetes' pod evaluator Constraints: the containers missing a declaration the quota needs. */
function missingDeclarations(q: ResourceQuota, pod: Pod): string | undefined {
  const required = Object.keys(q.spec?.hard ?? {}).filter((k) => MUST_DECLARE.has(k));
  if (required.length === 0) return undefined;
  const missing = new Map<string, Set<string>>();
  for (const c of [...(pod.spec.containers ?? []), ...(pod.spec.initContainers ?? [])]) {
    const list = (l: Record<string, string | number> | undefined): Map<string, ParsedQuantity> => new Map(Object.entries(l ?? {}).map(([k, v]) => [k, parsed(v)]));
    const has = computeUsage(list(c.resources?.requests), list(c.resources?.limits));
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

/**
 * Admits `obj` (a create when `old` is undefined; otherwise an update, which only claims are
 * checked for, their growth counting) against the quotas of its namespace.
 */
export function admitQuota(reader: Reader, resource: ResourceInfo, obj: KubeObject, old?: KubeObject): void {
  if (!resource.namespaced) return;
  if (old !== undefined && resource.plural !== 'persistentvolumeclaims') return;
  const namespace = obj.metadata.namespace ?? '';
  const quotas = reader.list(QUOTAS, namespace) as ResourceQuota[];
  if (quotas.length === 0) return;
  const delta = usageOf(resource, obj);
  if (old !== undefined) {
    const before = usageOf(resource, old);
    for (const [k, q] of delta) {
      const grown = q.nanos - (before.get(k)?.nanos ?? 0n);
      if (grown > 0n) delta.set(k, { ...q, nanos: grown });
      else delta.delete(k);
    }
    if (delta.size === 0) return;
  }
  const name = obj.metadata.name ?? '';
  const lists = new Map<string, KubeObject[]>();
  const objects = (r: ResourceInfo): KubeObject[] => {
    let l = lists.get(r.plural);
    if (l === undefined) lists.set(r.plural, (l = reader.list(r, namespace)));
    return l;
  };
  for (const q of [...quotas].sort((a, b) => ((a.metadata.name ?? '') < (b.metadata.name ?? '') ? -1 : 1))) {
    if (!quotaSelects(q, resource, obj)) continue;
    if (old === undefined && resource.plural === 'pods') {
      const why = missingDeclarations(q, obj as Pod);
      if (why !== undefined) throw new ForbiddenError(resource, name, `failed quota: ${q.metadata.name ?? ''}: ${why}`);
    }
    const hard = q.spec?.hard ?? {};
    const requested = masked(delta, hard);
    if (requested.size === 0) continue;
    const used = quotaUsed(q, objects);
    const limits = hardUsage(q);
    const exceeded = [...requested.keys()].filter((k) => (used.get(k)?.nanos ?? 0n) + (requested.get(k)?.nanos ?? 0n) > (limits.get(k)?.nanos ?? 0n)).sort();
    if (exceeded.length > 0) {
      throw new ForbiddenError(
        resource,
        name,
        `exceeded quota: ${q.metadata.name ?? ''}, requested: ${pretty(requested, exceeded)}, used: ${pretty(used, exceeded)}, limited: ${pretty(limits, exceeded)}`,
      );
    }
  }
}
