// The OpenAPI schemas of the served kinds, generated from the zod schemas the API validates with
// (api/kinds/*.ts) so that there is one source of truth. Names follow kube-apiserver: built-in
// kinds as io.k8s.api.<group>.<version>.<Kind>, the snapshot kinds (CustomResourceDefinitions
// upstream) as the reversed group, then version and kind (io.k8s.storage.snapshot.v1.VolumeSnapshot),
// and the shared meta types under io.k8s.apimachinery. Whatever the zod schemas carry as meta
// (descriptions, x-kubernetes-* extensions for strategic merge patch) is kept.
import { z } from 'zod';
import { strategyFor } from '../api/kinds/strategies.js';
import type { ResourceInfo } from '../api/registry.js';
import { objectMeta, quantity } from '../api/validation/schemas.js';
import { describeFields, fieldAt, OBJECT_META_DESCRIPTIONS } from './openapi-descriptions.js';

export type JsonSchema = { [key: string]: unknown };

/** Where references point: OpenAPI 3 components, or Swagger 2 definitions. */
export type Flavor = 'v3' | 'v2';

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
export const OBJECT_META = `${META}.ObjectMeta`;
export const LIST_META = `${META}.ListMeta`;
export const STATUS = `${META}.Status`;
export const DELETE_OPTIONS = `${META}.DeleteOptions`;
export const PATCH = `${META}.Patch`;
export const WATCH_EVENT = `${META}.WatchEvent`;
export const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

export function ref(flavor: Flavor, name: string): string {
  return flavor === 'v3' ? `#/components/schemas/${name}` : `#/definitions/${name}`;
}

/** Groups built into kube-apiserver, named io.k8s.api.<package>; any other group is a CRD's. */
const BUILT_IN_PACKAGES: Record<string, string> = {
  '': 'core',
  'storage.k8s.io': 'storage',
  'scheduling.k8s.io': 'scheduling',
  'coordination.k8s.io': 'coordination',
  policy: 'policy',
  'rbac.authorization.k8s.io': 'rbac',
  apps: 'apps',
  batch: 'batch',
};

/** True for kinds that upstream are CustomResourceDefinitions (the external-snapshotter's). */
export function isCustomResource(resource: ResourceInfo): boolean {
  return !(resource.group in BUILT_IN_PACKAGES);
}

/** The definition name of a kind, e.g. io.k8s.api.core.v1.PersistentVolumeClaim. */
export function definitionName(resource: ResourceInfo, kind: string = resource.kind): string {
  const pkg = BUILT_IN_PACKAGES[resource.group];
  if (pkg !== undefined) return `io.k8s.api.${pkg}.${resource.version}.${kind}`;
  return `${resource.group.split('.').reverse().join('.')}.${resource.version}.${kind}`;
}

const SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Rewrites zod's JSON Schema into what Kubernetes publishes: loose objects list their known
 * fields only (an object with no known fields keeps unknown ones, as x-kubernetes-preserve-unknown-fields),
 * integers carry no artificial bounds, and Swagger 2 gets no anyOf/nullable.
 */
function tidy(node: unknown, flavor: Flavor): unknown {
  if (Array.isArray(node)) return node.map((n) => tidy(n, flavor));
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(node as JsonSchema)) {
    if (k === 'properties' && v !== null && typeof v === 'object') {
      out[k] = Object.fromEntries(Object.entries(v as JsonSchema).map(([name, s]) => [name, tidy(s, flavor)]));
    } else {
      out[k] = tidy(v, flavor);
    }
  }
  const extra = out['additionalProperties'];
  if (extra !== undefined && typeof extra === 'object' && extra !== null && Object.keys(extra).length === 0) {
    delete out['additionalProperties'];
    if (out['properties'] === undefined) out['x-kubernetes-preserve-unknown-fields'] = true;
  }
  if (out['type'] === 'integer') {
    if (out['minimum'] === -SAFE) delete out['minimum'];
    if (out['maximum'] === SAFE) delete out['maximum'];
    out['format'] ??= 'int64';
  }
  if (flavor === 'v2') {
    if ('nullable' in out) {
      delete out['nullable'];
      out['x-nullable'] = true;
    }
    // Swagger 2 has no unions: such a field is of any type.
    for (const union of ['anyOf', 'oneOf']) if (union in out) delete out[union];
    // A $ref stands alone in Swagger 2; allOf with one $ref is the OpenAPI 3 way to describe one.
    const allOf = out['allOf'];
    if (Array.isArray(allOf) && allOf.length === 1) {
      delete out['allOf'];
      Object.assign(out, allOf[0] as JsonSchema);
    }
  }
  return out;
}

/** Any zod schema as a Kubernetes OpenAPI schema; references to the shared meta types by name. */
export function openApiSchema(schema: z.ZodType, flavor: Flavor): JsonSchema {
  const shared = new Map<unknown, string>([
    [objectMeta, OBJECT_META],
    [quantity, QUANTITY],
  ]);
  const json = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    override(ctx) {
      const name = shared.get(ctx.zodSchema);
      if (name === undefined || (ctx.zodSchema as unknown) === schema) return;
      const target = ctx.jsonSchema as JsonSchema;
      for (const key of Object.keys(target)) delete target[key];
      target['$ref'] = ref(flavor, name);
    },
  }) as JsonSchema;
  delete json['$schema'];
  return tidy(json, flavor) as JsonSchema;
}

const API_VERSION_DESCRIPTION =
  'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.';
const KIND_DESCRIPTION = 'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase.';
const METADATA_DESCRIPTION = "Standard object's metadata.";
const SPEC_DESCRIPTION = 'Spec defines the desired characteristics of the object.';
const STATUS_DESCRIPTION = 'Status represents the current information/status of the object. Populated by the system. Read-only.';

/** Short descriptions of the kinds, for `kubectl explain`. */
const KIND_DESCRIPTIONS: Record<string, string> = {
  PersistentVolumeClaim: "PersistentVolumeClaim is a user's request for and claim to a persistent volume",
  PersistentVolume: 'PersistentVolume (PV) is a storage resource provisioned by an administrator. It is analogous to a node.',
  StorageClass: 'StorageClass describes the parameters for a class of storage for which PersistentVolumes can be dynamically provisioned.',
  VolumeSnapshot: 'VolumeSnapshot is a user\'s request for either creating a point-in-time snapshot of a persistent volume, or binding to a pre-existing snapshot.',
  VolumeSnapshotContent: 'VolumeSnapshotContent represents the actual "on-disk" snapshot object in the underlying storage system',
  VolumeSnapshotClass: 'VolumeSnapshotClass specifies parameters that a underlying storage system uses when creating a volume snapshot.',
};

function describeTop(properties: JsonSchema, name: string, description: string): void {
  const field = properties[name] as JsonSchema | undefined;
  if (field !== undefined) field['description'] ??= description;
}

export function gvkExtension(resource: ResourceInfo, kind: string = resource.kind): { group: string; kind: string; version: string }[] {
  return [{ group: resource.group, kind, version: resource.version }];
}

/** The schema of a served kind, with its x-kubernetes-group-version-kind. */
export function kindDefinition(resource: ResourceInfo, flavor: Flavor): JsonSchema {
  const schema = openApiSchema(strategyFor(resource).schema, flavor);
  describeFields(resource.kind, schema);
  const properties = (schema['properties'] ?? {}) as JsonSchema;
  describeTop(properties, 'apiVersion', API_VERSION_DESCRIPTION);
  describeTop(properties, 'kind', KIND_DESCRIPTION);
  describeTop(properties, 'metadata', METADATA_DESCRIPTION);
  describeTop(properties, 'spec', SPEC_DESCRIPTION);
  describeTop(properties, 'status', STATUS_DESCRIPTION);
  // Clients send apiVersion and kind, but Kubernetes' schemas do not require them.
  const required = (schema['required'] as string[] | undefined)?.filter((r) => r !== 'apiVersion' && r !== 'kind') ?? [];
  if (required.length > 0) schema['required'] = required;
  else delete schema['required'];
  return {
    description: KIND_DESCRIPTIONS[resource.kind] ?? `${resource.kind} is a ${resource.group === '' ? 'core' : resource.group} ${resource.version} object.`,
    ...schema,
    'x-kubernetes-group-version-kind': gvkExtension(resource),
  };
}

/** The <Kind>List schema. */
export function listDefinition(resource: ResourceInfo, flavor: Flavor): JsonSchema {
  return {
    description: `${resource.kind}List is a list of ${resource.kind} objects.`,
    type: 'object',
    required: ['items'],
    properties: {
      apiVersion: { description: API_VERSION_DESCRIPTION, type: 'string' },
      items: { description: `List of ${resource.plural}.`, type: 'array', items: { $ref: ref(flavor, definitionName(resource)) } },
      kind: { description: KIND_DESCRIPTION, type: 'string' },
      metadata: described(flavor, LIST_META, "Standard list metadata."),
    },
    'x-kubernetes-group-version-kind': gvkExtension(resource, `${resource.kind}List`),
  };
}

/** A reference with its own description: allOf in OpenAPI 3 (as upstream), a bare $ref in Swagger 2. */
export function described(flavor: Flavor, name: string, description: string): JsonSchema {
  return flavor === 'v3' ? { description, allOf: [{ $ref: ref(flavor, name) }] } : { description, $ref: ref(flavor, name) };
}

function objectMetaDefinition(flavor: Flavor): JsonSchema {
  const schema = openApiSchema(objectMeta, flavor);
  for (const [path, description] of Object.entries(OBJECT_META_DESCRIPTIONS)) {
    const field = fieldAt(schema, path);
    if (field !== undefined) field.description ??= description;
  }
  return { description: 'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.', ...schema };
}

/** The apimachinery types every group's document refers to. */
export function metaDefinitions(flavor: Flavor): Record<string, JsonSchema> {
  const string = (description: string): JsonSchema => ({ description, type: 'string' });
  const int = (description: string): JsonSchema => ({ description, type: 'integer', format: 'int64' });
  const typeMeta = { apiVersion: string(API_VERSION_DESCRIPTION), kind: string(KIND_DESCRIPTION) };
  return {
    [OBJECT_META]: objectMetaDefinition(flavor),
    [LIST_META]: {
      description: 'ListMeta describes metadata that synthetic resources must have, including lists and various status objects.',
      type: 'object',
      properties: {
        continue: string('continue may be set if the user set a limit on the number of items returned, and indicates that the server has more data available.'),
        remainingItemCount: int('remainingItemCount is the number of subsequent items in the list which are not included in this list response.'),
        resourceVersion: string("String that identifies the server's internal version of this object that can be used by clients to determine when objects have changed."),
        selfLink: string('Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.'),
      },
    },
    [QUANTITY]:
      flavor === 'v3'
        ? { description: 'Quantity is a fixed-point representation of a number, such as "1Gi", "500m" or 5.', oneOf: [{ type: 'string' }, { type: 'number' }] }
        : { description: 'Quantity is a fixed-point representation of a number, such as "1Gi", "500m" or 5.', type: 'string' },
    [STATUS]: {
      description: 'Status is a return value for calls that do not return other objects.',
      type: 'object',
      properties: {
        ...typeMeta,
        code: { description: 'Suggested HTTP return code for this status, 0 if not set.', type: 'integer', format: 'int32' },
        details: { description: 'Extended data associated with the reason.', type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        message: string('A human-readable description of the status of this operation.'),
        metadata: described(flavor, LIST_META, 'Standard list metadata.'),
        reason: string('A machine-readable description of why this operation is in the "Failure" status.'),
        status: string('Status of the operation. One of: "Success" or "Failure".'),
      },
      'x-kubernetes-group-version-kind': [{ group: '', kind: 'Status', version: 'v1' }],
    },
    [DELETE_OPTIONS]: {
      description: 'DeleteOptions may be provided when deleting an API object.',
      type: 'object',
      properties: {
        ...typeMeta,
        dryRun: { description: 'When present, indicates that modifications should not be persisted.', type: 'array', items: { type: 'string' } },
        gracePeriodSeconds: int('The duration in seconds before the object should be deleted.'),
        orphanDependents: { description: 'Deprecated: please use the PropagationPolicy.', type: 'boolean' },
        preconditions: {
          description: 'Must be fulfilled before a deletion is carried out.',
          type: 'object',
          properties: { resourceVersion: string('Specifies the target ResourceVersion'), uid: string('Specifies the target UID.') },
        },
        propagationPolicy: string("Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
      },
      'x-kubernetes-group-version-kind': [{ group: '', kind: 'DeleteOptions', version: 'v1' }],
    },
    [PATCH]: { description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.', type: 'object' },
    [WATCH_EVENT]: {
      description: 'Event represents a single event to a watched resource.',
      type: 'object',
      required: ['type', 'object'],
      properties: {
        object: { description: 'The object the event is about: the whole object for ADDED, MODIFIED and DELETED, a Status for ERROR, metadata.resourceVersion only for BOOKMARK.', type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        type: string('ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.'),
      },
      'x-kubernetes-group-version-kind': [{ group: '', kind: 'WatchEvent', version: 'v1' }],
    },
  };
}
