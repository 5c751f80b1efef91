// VolumeSnapshotClass: the driver and deletion policy of the snapshots that name it.
import type { VolumeSnapshotClass } from '../types/snapshot.js';
import { validateDriverName, supportedValue } from '../validation/common.js';
import { type FieldError, required } from '../validation/field-errors.js';
import { kindSchema, str, stringMap } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

export const DELETION_POLICIES = ['Delete', 'Retain'] as const;

const schema = kindSchema({ driver: str, deletionPolicy: str, parameters: stringMap });

export const volumeSnapshotClassStrategy = defineStrategy<VolumeSnapshotClass>({
  schema,
  validate(vsc) {
    const errs: FieldError[] = validateDriverName('driver', vsc.driver);
    if (!vsc.deletionPolicy) errs.push(required('deletionPolicy'));
    else errs.push(...supportedValue('deletionPolicy', vsc.deletionPolicy, DELETION_POLICIES));
    return errs;
  },
});
