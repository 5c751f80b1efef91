// PersistentVolumeClaim: defaulting, validation and the update rules of Kubernetes' PVC strategy.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { canonicalizeResourceList, compareQuantities, isQuantity } from '../quantity.js';
import type { PersistentVolumeClaim, TypedObjectReference } from '../types/core.js';
import {
  carryOver,
  validateAccessModes,
  validateClassName,
  validateLabelSelector,
  validateQuantity,
  validateResourceList,
  validateSubdomain,
  validateVolumeMode, supportedValue } from '../validation/common.js';
import { child, type FieldError, forbidden, key, notSupported, required } from '../validation/field-errors.js';
import { atomic, closed, conditions, kindSchema, labelSelector, resourceList, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const typedReference = z.looseObject({ apiGroup: str, kind: str, name: str, namespace: str }).optional();

/** A claim's spec; also the spec of a StatefulSet's volumeClaimTemplates. */
export const pvcSpecSchema = closed(
    z.looseObject({
      accessModes: atomic(z.array(z.string())).optional(),
      selector: labelSelector,
      resources: z.looseObject({ requests: resourceList, limits: resourceList }).optional(),
      volumeName: str,
      storageClassName: str,
      volumeMode: str,
      dataSource: typedReference,
      dataSourceRef: typedReference,
      volumeAttributesClassName: str,
    }),
  );

const schema = kindSchema({
  spec: pvcSpecSchema.optional(),
  status: z
    .looseObject({
      phase: str,
      accessModes: atomic(z.array(z.string())).optional(),
      capacity: resourceList,
      conditions: conditions(),
      allocatedResources: resourceList,
      allocatedResourceStatuses: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
});

const PHASES = ['Bound', 'Lost', 'Pending'] as const;
const RESIZE_STATUSES: readonly string[] = ['ControllerResizeInProgress', 'ControllerResizeInfeasible', 'NodeResizeInProgress', 'NodeResizeInfeasible', 'NodeResizePending'];
const STORAGE = 'storage';

function validateDataSource(path: string, ref: TypedObjectReference | undefined): FieldError[] {
  if (ref === undefined) return [];
  const errs: FieldError[] = [];
  if (!ref.name) errs.push(required(child(path, 'name')));
  if (!ref.kind) errs.push(required(child(path, 'kind')));
  if (ref.kind === 'PersistentVolumeClaim' && ref.apiGroup) {
    errs.push(notSupported(child(path, 'apiGroup'), ref.apiGroup, ['']));
  }
  return errs;
}

export const persistentVolumeClaimStrategy = defineStrategy<PersistentVolumeClaim>({
  schema,
  prepareForCreate(pvc) {
    pvc.status = { phase: 'Pending' };
  },
  defaults(pvc) {
    pvc.spec ??= {};
    pvc.spec.volumeMode ??= 'Filesystem';
    canonicalizeResourceList(pvc.spec.resources?.requests);
    canonicalizeResourceList(pvc.spec.resources?.limits);
    canonicalizeResourceList(pvc.status?.capacity);
    if (pvc.status) pvc.status.phase ??= 'Pending';
  },
  validate(pvc) {
    const spec = pvc.spec;
    const errs = validateAccessModes('spec.accessModes', spec.accessModes, 'at least 1 access mode is required');
    errs.push(...validateLabelSelector('spec.selector', spec.selector));
    const requestsPath = 'spec.resources.requests';
    const storage = spec.resources?.requests?.[STORAGE];
    if (storage === undefined) errs.push(required(key(requestsPath, STORAGE)));
    else errs.push(...validateQuantity(key(requestsPath, STORAGE), storage, { positive: true }));
    errs.push(...validateResourceList(requestsPath, spec.resources?.requests).filter((e) => e.field !== key(requestsPath, STORAGE)));
    errs.push(...validateResourceList('spec.resources.limits', spec.resources?.limits));
    errs.push(...validateVolumeMode('spec.volumeMode', spec.volumeMode));
    errs.push(...validateClassName('spec.storageClassName', spec.storageClassName));
    if (spec.volumeName) errs.push(...validateSubdomain('spec.volumeName', spec.volumeName));
    errs.push(...validateDataSource('spec.dataSource', spec.dataSource));
    errs.push(...validateDataSource('spec.dataSourceRef', spec.dataSourceRef));

    const status = pvc.status ?? {};
    errs.push(...supportedValue('status.phase', status.phase, PHASES));
    if (status.accessModes !== undefined && status.accessModes.length > 0) {
      errs.push(...validateAccessModes('status.accessModes', status.accessModes, ''));
    }
    errs.push(...validateResourceList('status.capacity', status.capacity));
    errs.push(...validateResourceList('status.allocatedResources', status.allocatedResources));
    // Where an expansion stands: Kubernetes' ClaimResourceStatus values only.
    for (const [name, value] of Object.entries(status.allocatedResourceStatuses ?? {})) {
      if (!RESIZE_STATUSES.includes(value)) errs.push(notSupported(key('status.allocatedResourceStatuses', name), value, RESIZE_STATUSES));
    }
    return errs;
  },
  validateUpdate(pvc, old) {
    // Compare the specs with the mutable parts taken from the old one: volumeName may be set once
    // (binding), storageClassName may be set once when it was never given (retroactive default
    // class), and a bound claim's storage request may grow (expansion). Most updates (binding,
    // annotations, finalizers) leave the spec as it was: nothing to compare then.
    if (isDeepStrictEqual(pvc.spec, old.spec)) return [];
    // A copy of what is changed below (top-level fields, the storage request); the rest is shared.
    const resources = pvc.spec.resources;
    const newSpec: typeof pvc.spec = {
      ...pvc.spec,
      ...(resources === undefined ? {} : { resources: { ...resources, ...(resources.requests === undefined ? {} : { requests: { ...resources.requests } }) } }),
    };
    const oldSpec = old.spec;
    if (!oldSpec.volumeName) carryOver(newSpec, oldSpec, 'volumeName');
    if (oldSpec.storageClassName === undefined) carryOver(newSpec, oldSpec, 'storageClassName');
    const errs: FieldError[] = [];
    const newStorage = pvc.spec.resources?.requests?.[STORAGE];
    const oldStorage = oldSpec.resources?.requests?.[STORAGE];
    if (pvc.status?.phase === 'Bound' && newSpec.resources?.requests && oldStorage !== undefined) {
      newSpec.resources.requests[STORAGE] = oldStorage;
      if (newStorage !== undefined && isQuantity(newStorage) && compareQuantities(newStorage, oldStorage) < 0) {
        errs.push(forbidden(key('spec.resources.requests', STORAGE), 'field can not be less than previous value'));
      }
    }
    if (!isDeepStrictEqual(newSpec, oldSpec)) {
      errs.push(forbidden('spec', 'spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims'));
    }
    return errs;
  },
});
