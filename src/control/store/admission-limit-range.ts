// The LimitRanger admission plugin, for the LimitRanges of the object's namespace:
//   pods (create)   each Container item's `default` and `defaultRequest` fill the containers' (and
//                   init containers') missing limits and requests, noted in the pod's
//                   kubernetes.io/limit-ranger annotation; then every Container item's min, max and
//                   maxLimitRequestRatio holds for each container, and every Pod item's for the
//                   pod's sums (containers added, the larger of that and each init container)
//   claims (create, update)  PersistentVolumeClaim items' min and max of the requested storage
// A violation is Forbidden with Kubernetes' messages, all of one LimitRange's at once
// (utilerrors' aggregate: one message, or "[a, b]").
import { formatQuantity, parseQuantityOrUndefined, type ParsedQuantity } from '../api/quantity.js';
import { podQOSClass } from '../api/qos.js';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Container, LimitRange, LimitRangeItem, PersistentVolumeClaim, Pod, ResourceList } from '../api/types/core.js';
import type { Reader } from './admission.js';
import { ForbiddenError } from './errors.js';

const LIMIT_RANGES = resourceForName('limitranges') as ResourceInfo;
export const LIMIT_RANGER_ANNOTATION = 'kubernetes.io/limit-ranger';

const parse = parseQuantityOrUndefined;

function text(q: string | number | undefined): string {
  const p = parse(q);
  return p === undefined ? String(q) : formatQuantity(p);
}

function sorted(list: ResourceList | undefined): [string, string | number][] {
  return Object.entries(list ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Kubernetes' minConstraint: a request must exist and be at least the minimum, and so must a limit if set. */
export function minConstraint(type: string, name: string, enforced: string | number, requests: ResourceList, limits: ResourceList): string | undefined {
  const min = parse(enforced)?.nanos ?? 0n;
  const req = parse(requests[name]);
  const lim = parse(limits[name]);
  if (req === undefined) return `minimum ${name} usage per ${type} is ${text(enforced)}.  No request is specified`;
  if (req.nanos < min) return `minimum ${name} usage per ${type} is ${text(enforced)}, but request is ${text(requests[name])}`;
  if (lim !== undefined && lim.nanos < min) return `minimum ${name} usage per ${type} is ${text(enforced)}, but limit is ${text(limits[name])}`;
  return undefined;
}

/** Kubernetes' maxConstraint: a limit must exist and be at most the maximum, and so must a request if set. */
export function maxConstraint(type: string, name: string, enforced: string | number, requests: ResourceList, limits: ResourceList): string | undefined {
  const max = parse(enforced)?.nanos ?? 0n;
  const req = parse(requests[name]);
  const lim = parse(limits[name]);
  if (lim === undefined) return `maximum ${name} usage per ${type} is ${text(enforced)}.  No limit is specified`;
  if (lim.nanos > max) return `maximum ${name} usage per ${type} is ${text(enforced)}, but limit is ${text(limits[name])}`;
  if (req !== undefined && req.nanos > max) return `maximum ${name} usage per ${type} is ${text(enforced)}, but request is ${text(requests[name])}`;
  return undefined;
}

/** Kubernetes' maxRequestConstraint, for claims (which have no limits). */
function maxRequestConstraint(type: string, name: string, enforced: string | number, requests: ResourceList): string | undefined {
  const req = parse(requests[name]);
  if (req === undefined) return `maximum ${name} usage per ${type} is ${text(enforced)}.  No request is specified`;
  if (req.nanos > (parse(enforced)?.nanos ?? 0n)) return `maximum ${name} usage per ${type} is ${text(enforced)}, but request is ${text(requests[name])}`;
  return undefined;
}

/** Kubernetes' limitRequestRatioConstraint: limit / request at most the ratio, both set and non-zero. */
export function ratioConstraint(type: string, name: string, enforced: string | number, requests: ResourceList, limits: ResourceList): string | undefined {
  const req = parse(requests[name])?.nanos ?? 0n;
  const lim = parse(limits[name])?.nanos ?? 0n;
  const prefix = `${name} max limit to request ratio per ${type} is ${text(enforced)}`;
  if (req === 0n) return `${prefix}, but no request is specified or request is 0`;
  if (lim === 0n) return `${prefix}, but no limit is specified or limit is 0`;
  const ratio = Number(lim) / Number(req);
  const max = Number(parse(enforced)?.nanos ?? 0n) / 1e9;
  if (ratio > max) return `${prefix}, but provided ratio is ${ratio.toFixed(6)}`;
  return undefined;
}

/** utilerrors.NewAggregate's text: duplicates dropped, one message as it is, several in brackets. */
function aggregate(messages: readonly string[]): string | undefined {
  const unique = [...new Set(messages)];
  if (unique.length === 0) return undefined;
  return unique.length === 1 ? unique[0] : `[${unique.join(', ')}]`;
}

function sum(into: Map<string, ParsedQuantity>, list: ResourceList | undefined): void {
  for (const [name, q] of Object.entries(list ?? {})) {
    const p = parse(q);
    if (p === undefined) continue;
    const had = into.get(name);
    into.set(name, had === undefined || had.nanos === 0n ? { ...p, nanos: (had?.nanos ?? 0n) + p.nanos } : { ...had, nanos: had.nanos + p.nanos });
  }
}

function maxOf(into: Map<string, ParsedQuantity>, list: ResourceList | undefined): void {
  for (const [name, q] of Object.entries(list ?? {})) {
    const p = parse(q);
    const had = into.get(name);
    if (p !== undefined && (had === undefined || p.nanos > had.nanos)) into.set(name, p);
  }
}

function asList(m: Map<string, ParsedQuantity>): ResourceList {
  return Object.fromEntries([...m].map(([k, v]) => [k, formatQuantity(v)]));
}

/** The pod's requests or limits as LimitRanger sums them: containers added, then the larger of that and each init container. */
function podTotal(pod: Pod, which: 'requests' | 'limits'): ResourceList {
  const total = new Map<string, ParsedQuantity>();
  for (const c of pod.spec.containers ?? []) sum(total, c.resources?.[which]);
  for (const c of pod.spec.initContainers ?? []) maxOf(total, c.resources?.[which]);
  return asList(total);
}

function mergeDefaults(c: Container, limits: ResourceList, requests: ResourceList, label: string, notes: string[]): void {
  c.resources ??= {};
  const setLimits: string[] = [];
  const setRequests: string[] = [];
  for (const [name, q] of sorted(limits)) {
    c.resources.limits ??= {};
    if (c.resources.limits[name] === undefined) {
      c.resources.limits[name] = text(q);
      setLimits.push(name);
    }
  }
  for (const [name, q] of sorted(requests)) {
    c.resources.requests ??= {};
    if (c.resources.requests[name] === undefined) {
      c.resources.requests[name] = text(q);
      setRequests.push(name);
    }
  }
  if (setRequests.length > 0) notes.push(`${setRequests.join(', ')} request for ${label} ${c.name ?? ''}`);
  if (setLimits.length > 0) notes.push(`${setLimits.join(', ')} limit for ${label} ${c.name ?? ''}`);
}

/** PodMutateLimitFunc: the Container items' defaults filled in, and noted in the annotation. */
export function defaultPodResources(lr: LimitRange, pod: Pod): void {
  const limits: ResourceList = {};
  const requests: ResourceList = {};
  for (const item of lr.spec?.limits ?? []) {
    if (item.type !== 'Container') continue;
    Object.assign(requests, item.defaultRequest);
    Object.assign(limits, item.default);
  }
  const notes: string[] = [];
  for (const c of pod.spec.containers ?? []) mergeDefaults(c, limits, requests, 'container', notes);
  for (const c of pod.spec.initContainers ?? []) mergeDefaults(c, limits, requests, 'init container', notes);
  if (notes.length > 0) {
    pod.metadata.annotations ??= {};
    pod.metadata.annotations[LIMIT_RANGER_ANNOTATION] = `LimitRanger plugin set: ${notes.join('; ')}`;
  }
}

function checkItem(item: LimitRangeItem, requests: ResourceList, limits: ResourceList, out: string[]): void {
  for (const [name, q] of sorted(item.min)) out.push(minConstraint(item.type, name, q, requests, limits) ?? '');
  for (const [name, q] of sorted(item.max)) out.push(maxConstraint(item.type, name, q, requests, limits) ?? '');
  for (const [name, q] of sorted(item.maxLimitRequestRatio)) out.push(ratioConstraint(item.type, name, q, requests, limits) ?? '');
}

/** PodValidateLimitFunc: the messages of every violated constraint of one LimitRange. */
export function podViolations(lr: LimitRange, pod: Pod): string[] {
  const out: string[] = [];
  for (const item of lr.spec?.limits ?? []) {
    if (item.type === 'Container') {
      for (const c of [...(pod.spec.containers ?? []), ...(pod.spec.initContainers ?? [])]) checkItem(item, c.resources?.requests ?? {}, c.resources?.limits ?? {}, out);
    } else if (item.type === 'Pod') {
      checkItem(item, podTotal(pod, 'requests'), podTotal(pod, 'limits'), out);
    }
  }
  return out.filter((m) => m !== '');
}

/** PersistentVolumeClaimValidateLimitFunc: min and max of the claim's requests. */
export function claimViolations(lr: LimitRange, pvc: PersistentVolumeClaim): string[] {
  const out: string[] = [];
  const requests = pvc.spec.resources?.requests ?? {};
  for (const item of lr.spec?.limits ?? []) {
    if (item.type !== 'PersistentVolumeClaim') continue;
    for (const [name, q] of sorted(item.min)) out.push(minConstraint(item.type, name, q, requests, {}) ?? '');
    for (const [name, q] of sorted(item.max)) out.push(maxRequestConstraint(item.type, name, q, requests) ?? '');
  }
  return out.filter((m) => m !== '');
}

function rangesOf(reader: Reader, namespace: string): LimitRange[] {
  return reader.list(LIMIT_RANGES, namespace) as LimitRange[];
}

/** A new pod, mutating phase: every LimitRange's defaults (and the QoS class they make); whether there were any. */
export function defaultPodLimits(reader: Reader, pod: Pod): boolean {
  const ranges = rangesOf(reader, pod.metadata.namespace ?? '');
  if (ranges.length === 0) return false;
  for (const lr of ranges) defaultPodResources(lr, pod);
  pod.status = { ...pod.status, qosClass: podQOSClass(pod) };
  return true;
}

/** A new pod, validating phase: each LimitRange's constraints. */
export function admitPodLimits(reader: Reader, resource: ResourceInfo, pod: Pod): void {
  for (const lr of rangesOf(reader, pod.metadata.namespace ?? '')) {
    const why = aggregate(podViolations(lr, pod));
    if (why !== undefined) throw new ForbiddenError(resource, pod.metadata.name ?? '', why);
  }
}

/** A claim created or updated (a resize too): each LimitRange's PersistentVolumeClaim items. */
export function admitClaimLimits(reader: Reader, resource: ResourceInfo, pvc: PersistentVolumeClaim): void {
  for (const lr of rangesOf(reader, pvc.metadata.namespace ?? '')) {
    const why = aggregate(claimViolations(lr, pvc));
    if (why !== undefined) throw new ForbiddenError(resource, pvc.metadata.name ?? '', why);
  }
}
