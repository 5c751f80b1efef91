// How server-side apply treats each list of a kind, as structured-merge-diff reads
// x-kubernetes-list-type / x-kubernetes-list-map-keys: an associative list ("map") merges item by
// item under its key fields (containers by name → k:{"name":"c"}), a set merges scalar values
// (finalizers → v:"x"), an atomic list is owned and replaced as a whole. A list nobody declared
// is atomic, as upstream treats lists without a list type.
//
// The lookup is an injected interface so the kinds' own schema annotations can replace the small
// built-in table below without touching the apply code.
import { patchMetaFor } from '../../api/patch-meta.js';
import type { ResourceInfo } from '../../api/registry.js';

/** A "map" list's key fields; `defaults` fills a key field an item leaves out (ports' protocol is TCP). */
export type ListType = { type: 'atomic' } | { type: 'set' } | { type: 'map'; keys: readonly string[]; defaults?: Readonly<Record<string, unknown>> };

export interface ListTypes {
  /** The type of the list at `path`: the field names from the object's root, list items skipped (e.g. ["spec", "containers", "env"]). */
  listType(resource: ResourceInfo, path: readonly string[]): ListType;
  /** Whether the struct or map at `path` is atomic (x-kubernetes-map-type: atomic): owned and replaced whole. Absent: none is. */
  atomicMap?(resource: ResourceInfo, path: readonly string[]): boolean;
}

const ATOMIC: ListType = { type: 'atomic' };
const SET: ListType = { type: 'set' };
const byKeys = (...keys: string[]): ListType => ({ type: 'map', keys });
const PORTS: ListType = { type: 'map', keys: ['containerPort', 'protocol'], defaults: { protocol: 'TCP' } };

const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'];

/** The upstream associative lists and sets of the kinds this server serves, by dotted path. */
const TABLE = new Map<string, ListType>([
  ['metadata.finalizers', SET],
  ['metadata.ownerReferences', byKeys('uid')],
  ['spec.volumes', byKeys('name')],
  ['spec.taints', byKeys('key', 'effect')],
  ['status.conditions', byKeys('type')],
  ...CONTAINER_LISTS.flatMap((list): [string, ListType][] => [
    [`spec.${list}`, byKeys('name')],
    [`spec.${list}.env`, byKeys('name')],
    [`spec.${list}.ports`, PORTS],
    [`spec.${list}.volumeMounts`, byKeys('mountPath')],
    [`spec.${list}.volumeDevices`, byKeys('devicePath')],
  ]),
]);

/** Upstream's atomic structs among the served kinds' fields (ObjectReference, LabelSelector, NodeSelector, TypedLocalObjectReference). */
const ATOMIC_MAPS = new Set([
  'persistentvolumes:spec.claimRef',
  'persistentvolumes:spec.nodeAffinity.required',
  'persistentvolumeclaims:spec.selector',
  'persistentvolumeclaims:spec.dataSource',
]);

export const DEFAULT_LIST_TYPES: ListTypes = {
  listType: (_resource, path) => TABLE.get(path.join('.')) ?? ATOMIC,
  atomicMap: (resource, path) => ATOMIC_MAPS.has(`${resource.plural}:${path.join('.')}`),
};

/**
 * The list types the kinds' schemas declare (api/patch-meta.ts: the same x-kubernetes-* meta that
 * strategic merge patch and OpenAPI read): a merge key makes an associative list, a merge strategy
 * without one or list type "set" a set, list type "atomic" an atomic list. Where the schemas say
 * nothing, the built-in table above decides. Ports keep their protocol key and its TCP default,
 * which strategic merge patch's single merge key cannot say.
 */
export const SCHEMA_LIST_TYPES: ListTypes = {
  listType(resource, path) {
    let meta = patchMetaFor(resource);
    path.forEach((name, i) => {
      meta = meta.field(name);
      if (i < path.length - 1 && meta.items().known) meta = meta.items();
    });
    if (meta.listType === 'atomic') return ATOMIC;
    if (meta.listType === 'set') return SET;
    const key = meta.mergeKey;
    if (key !== undefined) return path[path.length - 1] === 'ports' && key === 'containerPort' ? PORTS : byKeys(key);
    if (meta.strategies.includes('merge')) return SET;
    return DEFAULT_LIST_TYPES.listType(resource, path);
  },
  atomicMap: DEFAULT_LIST_TYPES.atomicMap,
};
