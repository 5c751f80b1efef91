// Client-side `apply`, as kubectl does it: the manifest as last applied is kept in the
// kubectl.kubernetes.io/last-applied-configuration annotation; an apply creates the object, or
// sends a three-way JSON merge patch (fields removed since the last apply are deleted, fields that
// differ from the live object are set, everything the server or controllers added is kept).
import { isDeepStrictEqual } from 'node:util';
import { resourceForKind, type ResourceInfo } from '../control/api/registry.js';
import type { KubeObject } from '../control/api/types/meta.js';
import { ApiStatusError, type ApiClient } from './api-client.js';
import { CliError, errorLine } from './errors.js';
import { kindPrefix } from './format/columns.js';
import { LAST_APPLIED_ANNOTATION } from './format/describe.js';
import type { SourcedObject } from './manifests.js';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** JSON with object keys sorted at every level, as Go's encoding/json writes maps. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (!isObject(v)) return v;
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sort(v[k])]),
    );
  };
  return JSON.stringify(sort(value));
}

/**
 * The JSON merge patch that takes `current` to `modified` without losing what others set:
 * keys that were in `original` (the last apply) but are gone from `modified` become null; keys of
 * `modified` whose value differs from `current` are set (objects recursively, lists whole); keys
 * only `current` has are left alone. Empty when nothing needs to change.
 */
export function threeWayMergePatch(original: Json | undefined, modified: Json, current: Json): Json {
  const patch: Json = {};
  for (const [key, m] of Object.entries(modified)) {
    const c = current[key];
    const o = original?.[key];
    if (m === null || m === undefined) {
      if (c !== undefined) patch[key] = null;
      continue;
    }
    if (isObject(m) && isObject(c)) {
      const sub = threeWayMergePatch(isObject(o) ? o : undefined, m, c);
      if (Object.keys(sub).length > 0) patch[key] = sub;
    } else if (!isDeepStrictEqual(m, c)) {
      patch[key] = structuredClone(m);
    }
  }
  for (const key of Object.keys(original ?? {})) {
    if (!(key in modified) && current[key] !== undefined) patch[key] = null;
  }
  return patch;
}

/** The object with the last-applied annotation set to itself (without that annotation). */
export function withLastApplied(obj: KubeObject): KubeObject {
  const copy = structuredClone(obj);
  const annotations = { ...copy.metadata.annotations };
  delete annotations[LAST_APPLIED_ANNOTATION];
  copy.metadata.annotations = annotations;
  const recorded = canonicalJson(copy);
  copy.metadata.annotations = { ...annotations, [LAST_APPLIED_ANNOTATION]: `${recorded}\n` };
  return copy;
}

export type ApplyResult = 'created' | 'configured' | 'unchanged';

export interface Placement {
  /** The namespace for objects that name none. */
  namespace: string;
  /** -n was given: an object naming another namespace is an error, as in kubectl. */
  explicit: boolean;
}

/**
 * The registry entry of a manifest object, or kubectl's "resource mapping not found" error with
 * its second line (applyAll reports it and goes on with the other documents, as kubectl does).
 */
export function mapResource(item: SourcedObject): ResourceInfo {
  const { object, source } = item;
  const r = resourceForKind(object.apiVersion, object.kind);
  if (r === undefined) {
    throw new CliError(
      `error: resource mapping not found for name: "${object.metadata.name ?? ''}" namespace: "${object.metadata.namespace ?? ''}" from "${source}": no matches for kind "${object.kind}" in version "${object.apiVersion}"\nensure CRDs are installed first`,
    );
  }
  return r;
}

/** Puts a namespaced object in its namespace (a copy); cluster-scoped objects lose any namespace. */
export function place(resource: ResourceInfo, obj: KubeObject, placement: Placement): KubeObject {
  const copy = structuredClone(obj);
  if (!resource.namespaced) {
    delete copy.metadata.namespace;
    return copy;
  }
  const own = copy.metadata.namespace;
  if (own && placement.explicit && own !== placement.namespace) {
    throw new CliError(
      `error: the namespace from the provided object "${own}" does not match the namespace "${placement.namespace}". You must pass '--namespace=${own}' to perform this operation.`,
    );
  }
  copy.metadata.namespace = own || placement.namespace;
  return copy;
}

/** `persistentvolumeclaim/rbd-pvc`, `storageclass.storage.k8s.io/csi-rbd-sc`. */
export function objectRef(resource: ResourceInfo, name: string): string {
  return `${kindPrefix(resource)}/${name}`;
}

/** Applies one object; resolves with what happened. */
export async function applyObject(client: ApiClient, resource: ResourceInfo, obj: KubeObject): Promise<ApplyResult> {
  const name = obj.metadata.name;
  if (!name) throw new CliError(`error: ${resource.kind} has no metadata.name (apply needs a name; generateName is for create)`);
  const modified = withLastApplied(obj);
  const live = await client.find(resource, obj.metadata.namespace, name);
  if (live === undefined) {
    await client.create(resource, modified);
    return 'created';
  }
  const text = live.metadata.annotations?.[LAST_APPLIED_ANNOTATION];
  let original: Json | undefined;
  if (text) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (isObject(parsed)) original = parsed;
    } catch {
      original = undefined;
    }
  }
  const patch = threeWayMergePatch(original, modified as unknown as Json, live as unknown as Json);
  if (Object.keys(patch).length === 0) return 'unchanged';
  // Guard against a concurrent writer: the patch was computed against this version.
  patch['metadata'] = { ...(isObject(patch['metadata']) ? patch['metadata'] : {}), resourceVersion: live.metadata.resourceVersion };
  const updated = await client.patch(resource, obj.metadata.namespace, name, patch);
  // The server folds some fields (a Secret's stringData into data): nothing written, nothing changed.
  return updated.metadata.resourceVersion === live.metadata.resourceVersion ? 'unchanged' : 'configured';
}

/** Applies every object in order; failures are collected, the rest still applied. */
export async function applyAll(client: ApiClient, items: readonly SourcedObject[], placement: Placement, out: (line: string) => void): Promise<string[]> {
  const errors: string[] = [];
  for (const item of items) {
    try {
      const resource = mapResource(item);
      const obj = place(resource, item.object, placement);
      let result: ApplyResult;
      try {
        result = await applyObject(client, resource, obj);
      } catch (err) {
        if (err instanceof ApiStatusError && err.code === 409 && err.reason === 'Conflict') {
          // Someone wrote in between: compute the patch again against the new version, once.
          result = await applyObject(client, resource, obj);
        } else {
          throw err;
        }
      }
      out(`${objectRef(resource, obj.metadata.name ?? '')} ${result}`);
    } catch (err) {
      errors.push(errorLine(err, `error when applying "${item.source}"`));
    }
  }
  return errors;
}
