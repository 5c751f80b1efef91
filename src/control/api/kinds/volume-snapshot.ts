// VolumeSnapshot: a user's request for a snapshot of a PVC (or a claim on an existing content).
import { z } from 'zod';
import type { VolumeSnapshot } from '../types/snapshot.js';
import { immutable, validateSubdomain } from '../validation/common.js';
import { type FieldError, forbidden, required } from '../validation/field-errors.js';
import { closed, kindSchema, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const ONE_SOURCE = 'exactly one of persistentVolumeClaimName and volumeSnapshotContentName must be set';

const schema = kindSchema({
  // The CRD's whole spec (snapshot.storage.k8s.io/v1): closed, so field validation sees typos.
  spec: closed(
    z.looseObject({
      source: closed(z.looseObject({ persistentVolumeClaimName: str, volumeSnapshotContentName: str })).optional(),
      volumeSnapshotClassName: str,
    }),
  ).optional(),
  status: z.looseObject({ boundVolumeSnapshotContentName: str, creationTime: str, restoreSize: str }).optional(),
});

export const volumeSnapshotStrategy = defineStrategy<VolumeSnapshot>({
  schema,
  prepareForCreate(vs) {
    delete vs.status;
  },
  validate(vs) {
    const spec = vs.spec as VolumeSnapshot['spec'] | undefined;
    if (spec === undefined) return [required('spec')];
    const source = spec.source ?? {};
    const set = [source.persistentVolumeClaimName, source.volumeSnapshotContentName].filter((s) => s !== undefined).length;
    const errs: FieldError[] = [];
    if (set === 0) errs.push(required('spec.source', ONE_SOURCE));
    if (set === 2) errs.push(forbidden('spec.source', ONE_SOURCE));
    const className = spec.volumeSnapshotClassName;
    if (className !== undefined) errs.push(...validateSubdomain('spec.volumeSnapshotClassName', className));
    return errs;
  },
  validateUpdate(vs, old) {
    return immutable('spec.source', vs.spec.source, old.spec.source);
  },
});
