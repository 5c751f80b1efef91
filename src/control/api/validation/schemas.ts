// Zod building blocks shared by the kinds' structural schemas. Objects are loose (unknown fields
// are kept) and nearly every field is optional: missing required fields are reported by the
// semantic validators, with Kubernetes' wording.
import { z } from 'zod';

export const str = z.string().optional();
export const bool = z.boolean().optional();
export const int = z.number().int({ error: 'must be an integer' }).optional();
export const strings = z.array(z.string()).optional();
export const stringMap = z.record(z.string(), z.string()).optional();
/** Kubernetes accepts quantities as JSON strings or numbers ("1Gi", 5, 0.5). */
export const quantity = z.union([z.string(), z.number()], { error: 'must be a quantity (a string such as "1Gi", or a number)' });
export const resourceList = z.record(z.string(), quantity).optional();

export const objectMeta = z.looseObject({
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
  ownerReferences: z
    .array(z.looseObject({ apiVersion: str, kind: str, name: str, uid: str, controller: bool, blockOwnerDeletion: bool }))
    .optional(),
  finalizers: strings,
});

export const labelSelector = z
  .looseObject({
    matchLabels: stringMap,
    matchExpressions: z.array(z.looseObject({ key: str, operator: str, values: strings })).optional(),
  })
  .optional();

const nodeSelectorRequirements = z.array(z.looseObject({ key: str, operator: str, values: strings })).optional();

export const nodeSelector = z
  .looseObject({
    nodeSelectorTerms: z.array(z.looseObject({ matchExpressions: nodeSelectorRequirements, matchFields: nodeSelectorRequirements })).optional(),
  })
  .optional();

export const objectReference = z
  .looseObject({ apiVersion: str, kind: str, namespace: str, name: str, uid: str, resourceVersion: str, fieldPath: str })
  .optional();

export const secretReference = z.looseObject({ name: str, namespace: str }).optional();

/** The top level every kind shares; kinds extend it with their own fields. */
export function kindSchema<T extends z.core.$ZodShape>(shape: T) {
  return z.looseObject({ apiVersion: z.string(), kind: z.string(), metadata: objectMeta.optional(), ...shape });
}
