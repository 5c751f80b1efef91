// ReplicaSet (apps/v1): replicas default 1, a selector matching the template, immutable selector.
import { z } from 'zod';
import type { ReplicaSet } from '../types/apps.js';
import type { FieldError } from '../validation/field-errors.js';
import { closed, conditions, int, kindSchema, labelSelector } from '../validation/schemas.js';
import { defaultTemplate, podTemplateSchema, validateNonNegative, validateSelector, validateSelectorUnchanged, validateTemplate } from './pod-template.js';
import { defineStrategy } from './strategy.js';

const schema = kindSchema({
  spec: closed(z.looseObject({ replicas: int, minReadySeconds: int, selector: labelSelector, template: podTemplateSchema })).optional(),
  status: z
    .looseObject({ replicas: int, fullyLabeledReplicas: int, readyReplicas: int, availableReplicas: int, terminatingReplicas: int, observedGeneration: int, conditions: conditions() })
    .optional(),
});

export const replicaSetStrategy = defineStrategy<ReplicaSet>({
  schema,
  prepareForCreate(rs) {
    rs.status = { replicas: 0 };
  },
  defaults(rs) {
    rs.spec ??= {} as ReplicaSet['spec'];
    rs.spec.replicas ??= 1;
    defaultTemplate(rs.spec.template);
  },
  validate(rs) {
    const errs: FieldError[] = [];
    errs.push(...validateNonNegative('spec.replicas', rs.spec.replicas));
    errs.push(...validateNonNegative('spec.minReadySeconds', rs.spec.minReadySeconds));
    errs.push(...validateSelector(rs.spec.selector, rs.spec.template, 'replicaset'));
    errs.push(...validateTemplate(rs.spec.template, ['Always']));
    return errs;
  },
  validateUpdate(rs, old) {
    return validateSelectorUnchanged(rs.spec.selector, old.spec.selector);
  },
});
