// CSIStorageCapacity: the room a driver has for one class on the nodes its nodeTopology selects
// (published by the csi-capacity controller, read by kube-scheduler). As Kubernetes validates it:
// storageClassName is required and a subdomain, the quantities are non-negative, the selector is
// a valid label selector; storageClassName and nodeTopology cannot change.
import { canonicalizeQuantityField } from '../quantity.js';
import type { CSIStorageCapacity } from '../types/storage.js';
import { immutable, validateLabelSelector, validateQuantity, validateSubdomain } from '../validation/common.js';
import { type FieldError, required } from '../validation/field-errors.js';
import { kindSchema, labelSelector, quantity, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const schema = kindSchema({ nodeTopology: labelSelector, storageClassName: str, capacity: quantity.optional(), maximumVolumeSize: quantity.optional() });

export const csiStorageCapacityStrategy = defineStrategy<CSIStorageCapacity>({
  schema,
  defaults(c) {
    // Stored canonical, as the API server does ("1024Mi" reads back "1Gi").
    if (c.capacity !== undefined) c.capacity = canonicalizeQuantityField(c.capacity);
    if (c.maximumVolumeSize !== undefined) c.maximumVolumeSize = canonicalizeQuantityField(c.maximumVolumeSize);
  },
  validate(c) {
    const errs: FieldError[] = [];
    if (c.storageClassName === undefined || c.storageClassName === '') errs.push(required('storageClassName'));
    else errs.push(...validateSubdomain('storageClassName', c.storageClassName));
    errs.push(...validateLabelSelector('nodeTopology', c.nodeTopology));
    if (c.capacity !== undefined) errs.push(...validateQuantity('capacity', c.capacity));
    if (c.maximumVolumeSize !== undefined) errs.push(...validateQuantity('maximumVolumeSize', c.maximumVolumeSize));
    return errs;
  },
  validateUpdate(c, old) {
    return [...immutable('storageClassName', c.storageClassName, old.storageClassName), ...immutable('nodeTopology', c.nodeTopology, old.nodeTopology)];
  },
});
