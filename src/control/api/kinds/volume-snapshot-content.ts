// VolumeSnapshotContent: a snapshot that exists (or is being made) in the storage system, bound
// to one VolumeSnapshot.
import { z } from 'zod';
import type { VolumeSnapshotContent } from '../types/snapshot.js';
import { immutable, validateDriverName, supportedValue } from '../validation/common.js';
import { type FieldError, forbidden, required } from '../validation/field-errors.js';
import { kindSchema, objectReference, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';
import { DELETION_POLICIES } from './volume-snapshot-class.js';

const ONE_SOURCE = 'exactly one of volumeHandle and snapshotHandle must be set';

const schema = kindSchema({
  spec: z
    .looseObject({
      volumeSnapshotRef: objectReference,
      driver: str,
      deletionPolicy: str,
      source: z.looseObject({ volumeHandle: str, snapshotHandle: str }).optional(),
      volumeSnapshotClassName: str,
      sourceVolumeMode: str,
    })
    .optional(),
  status: z.looseObject({ snapshotHandle: str, readyToUse: z.boolean().optional() }).optional(),
});

export const volumeSnapshotContentStrategy = defineStrategy<VolumeSnapshotContent>({
  schema,
  prepareForCreate(content) {
    delete content.status;
  },
  validate(content) {
    const spec = content.spec as VolumeSnapshotContent['spec'] | undefined;
    if (spec === undefined) return [required('spec')];
    const errs: FieldError[] = validateDriverName('spec.driver', spec.driver);
    if (!spec.deletionPolicy) errs.push(required('spec.deletionPolicy'));
    else errs.push(...supportedValue('spec.deletionPolicy', spec.deletionPolicy, DELETION_POLICIES));
    const source = spec.source ?? {};
    const set = [source.volumeHandle, source.snapshotHandle].filter((s) => s !== undefined).length;
    if (set === 0) errs.push(required('spec.source', ONE_SOURCE));
    if (set === 2) errs.push(forbidden('spec.source', ONE_SOURCE));
    const ref = spec.volumeSnapshotRef as VolumeSnapshotContent['spec']['volumeSnapshotRef'] | undefined;
    if (!ref?.name) errs.push(required('spec.volumeSnapshotRef.name'));
    if (!ref?.namespace) errs.push(required('spec.volumeSnapshotRef.namespace'));
    return errs;
  },
  validateUpdate(content, old) {
    return [
      ...immutable('spec.source', content.spec.source, old.spec.source),
      ...immutable('spec.sourceVolumeMode', content.spec.sourceVolumeMode, old.spec.sourceVolumeMode),
    ];
  },
});
