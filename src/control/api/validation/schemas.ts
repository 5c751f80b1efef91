// Zod building blocks shared by the kinds' structural schemas. Objects are loose (unknown fields
// are kept) and nearly every field is optional: missing required fields are reported by the
// semantic validators, with Kubernetes' wording.
//
// Lists carry Kubernetes' patch metadata (the patchStrategy/patchMergeKey struct tags and +listType
// markers of k8s.io/api) as zod meta under the names Kubernetes' OpenAPI gives them; strategic
// merge patch reads them from here (api/patch-meta.ts) and the OpenAPI document shows them.
import { z } from 'zod';

const closedObjects = new WeakSet<z.ZodType>();

/**
 * Marks an object schema as naming every field Kubernetes' type has, so that any other field is
 * unknown (?fieldValidation=Strict refuses it, Warn warns). Objects not marked are only partly
 * described here and nothing in them is called unknown.
 */
export function closed<T extends z.ZodType>(schema: T): T {
  closedObjects.add(schema);
  return schema;
}

export function isClosed(schema: z.ZodType): boolean {
  return closedObjects.has(schema);
}

/** A list merged by key: `x-kubernetes-patch-strategy: merge` (plus retainKeys where upstream has it). */
export function mergeByKey<T extends z.ZodType>(schema: T, mergeKey: string, mapKeys: readonly string[] = [mergeKey], retainKeys = false): T {
  return schema.meta({
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': [...mapKeys],
    'x-kubernetes-patch-merge-key': mergeKey,
    'x-kubernetes-patch-strategy': retainKeys ? 'merge,retainKeys' : 'merge',
  });
}

/** A list of distinct scalars merged as a set (metadata.finalizers). */
export function mergeAsSet<T extends z.ZodType>(schema: T): T {
  return schema.meta({ 'x-kubernetes-list-type': 'set', 'x-kubernetes-patch-strategy': 'merge' });
}

/** A list a patch replaces whole. */
export function atomic<T extends z.ZodType>(schema: T): T {
  return schema.meta({ 'x-kubernetes-list-type': 'atomic' });
}

/** Status conditions, merged by type. */
export function conditions() {
  return mergeByKey(
    z.array(z.looseObject({ type: z.string().optional(), status: z.string().optional(), reason: z.string().optional(), message: z.string().optional(), lastTransitionTime: z.string().optional() })),
    'type',
  ).optional();
}

export const str = z.string().optional();
export const bool = z.boolean().optional();
export const int = z.number().int({ error: 'must be an integer' }).optional();
export const strings = z.array(z.string()).optional();
export const stringMap = z.record(z.string(), z.string()).optional();
/** Kubernetes accepts quantities as JSON strings or numbers ("1Gi", 5, 0.5). */
export const quantity = z.union([z.string(), z.number()], { error: 'must be a quantity (a string such as "1Gi", or a number)' });
export const resourceList = z.record(z.string(), quantity).optional();

export const objectMeta = closed(z.looseObject({
  name: str,
  generateName: str,
  namespace: str,
  uid: str,
  resourceVersion: str,
  generation: int,
  creationTimestamp: str,
  deletionTimestamp: str,
  deletionGracePeriodSeconds: int,
  labels: stringMap,
  annotations: stringMap,
  ownerReferences: mergeByKey(z.array(z.looseObject({ apiVersion: str, kind: str, name: str, uid: str, controller: bool, blockOwnerDeletion: bool })), 'uid').optional(),
  finalizers: mergeAsSet(z.array(z.string())).optional(),
  selfLink: str,
  managedFields: atomic(z.array(z.looseObject({ manager: str, operation: str, apiVersion: str, time: str, fieldsType: str, subresource: str }))).optional(),
}));

export const labelSelector = closed(
  z.looseObject({
    matchLabels: stringMap,
    matchExpressions: atomic(z.array(closed(z.looseObject({ key: str, operator: str, values: atomic(z.array(z.string())).optional() })))).optional(),
  }),
).optional();

const nodeSelectorRequirements = z.array(z.looseObject({ key: str, operator: str, values: strings })).optional();

export const nodeSelector = z
  .looseObject({
    nodeSelectorTerms: z.array(z.looseObject({ matchExpressions: nodeSelectorRequirements, matchFields: nodeSelectorRequirements })).optional(),
  })
  .optional();

export const objectReference = closed(z.looseObject({ apiVersion: str, kind: str, namespace: str, name: str, uid: str, resourceVersion: str, fieldPath: str })).optional();

export const secretReference = z.looseObject({ name: str, namespace: str }).optional();

/** The top level every kind shares; kinds extend it with their own fields, all of them (it is closed). */
export function kindSchema<T extends z.core.$ZodShape>(shape: T) {
  return closed(z.looseObject({ apiVersion: z.string(), kind: z.string(), metadata: objectMeta.optional(), ...shape }));
}
