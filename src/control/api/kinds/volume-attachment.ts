// VolumeAttachment: a request to attach one PV to one node; the spec never changes.
import { z } from 'zod';
import type { VolumeAttachment } from '../types/storage.js';
import { immutable, validateDriverName, validateSubdomain } from '../validation/common.js';
import { type FieldError, forbidden, required } from '../validation/field-errors.js';
import { bool, kindSchema, str, stringMap } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const volumeError = z.looseObject({ time: str, message: str }).optional();
const schema = kindSchema({
  spec: z
    .looseObject({
      attacher: str,
      nodeName: str,
      source: z.looseObject({ persistentVolumeName: str, inlineVolumeSpec: z.looseObject({}).optional() }).optional(),
    })
    .optional(),
  status: z.looseObject({ attached: bool, attachmentMetadata: stringMap, attachError: volumeError, detachError: volumeError }).optional(),
});

const ONE_SOURCE = 'must specify exactly one of inlineVolumeSpec and persistentVolumeName';

export const volumeAttachmentStrategy = defineStrategy<VolumeAttachment>({
  schema,
  prepareForCreate(va) {
    delete va.status;
  },
  validate(va) {
    const spec = va.spec as VolumeAttachment['spec'] | undefined;
    if (spec === undefined) return [required('spec')];
    const errs: FieldError[] = validateDriverName('spec.attacher', spec.attacher);
    if (!spec.nodeName) errs.push(required('spec.nodeName'));
    else errs.push(...validateSubdomain('spec.nodeName', spec.nodeName));
    const source = spec.source ?? {};
    const hasPv = source.persistentVolumeName !== undefined;
    const hasInline = source.inlineVolumeSpec !== undefined;
    if (!hasPv && !hasInline) errs.push(required('spec.source', ONE_SOURCE));
    else if (hasPv && hasInline) errs.push(forbidden('spec.source', ONE_SOURCE));
    else if (hasPv && source.persistentVolumeName === '') errs.push(required('spec.source.persistentVolumeName', 'must specify non empty persistentVolumeName'));
    return errs;
  },
  validateUpdate(va, old) {
    return immutable('spec', va.spec, old.spec);
  },
});
