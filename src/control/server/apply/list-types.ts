// How server-side apply treats each list of a kind, as structured-merge-diff reads
// x-kubernetes-list-type / x-kubernetes-list-map-keys: an associative list ("map") merges item by
// item under its key fields (containers by name → k:{"name":"c"}), a set merges scalar values
// (finalizers → v:"x"), an atomic list is owned and replaced as a whole. A list nobody declared
// is atomic, as upstream treats lists without a list type.
//
// The lookup is an injected interface so the kinds' own schema annotations can replace the small
// built-in table below without touching the apply code.
import type { ResourceInfo } from '../../api/registry.js';

export type ListType = { type: 'atomic' } | { type: 'set' } | { type: 'map'; keys: readonly string[] };

export interface ListTypes {
  /** The type of the list at `path`: the field names from the object's root, list items skipped (e.g. ["spec", "containers", "env"]). */
  listType(resource: ResourceInfo, path: readonly string[]): ListType;
}

const ATOMIC: ListType = { type: 'atomic' };
const SET: ListType = { type: 'set' };
const byKeys = (...keys: string[]): ListType => ({ type: 'map', keys });

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
    [`spec.${list}.ports`, byKeys('containerPort', 'protocol')],
    [`spec.${list}.volumeMounts`, byKeys('mountPath')],
    [`spec.${list}.volumeDevices`, byKeys('devicePath')],
  ]),
]);

export const DEFAULT_LIST_TYPES: ListTypes = {
  listType: (_resource, path) => TABLE.get(path.join('.')) ?? ATOMIC,
};
