// Deployment (apps/v1): Kubernetes' defaults (RollingUpdate 25%/25%, revisionHistoryLimit 10,
// progressDeadlineSeconds 600), validation, and the immutable selector.
import { z } from 'zod';
import type { Deployment } from '../types/apps.js';
import { supportedValue } from '../validation/common.js';
import { type FieldError, forbidden, invalid } from '../validation/field-errors.js';
import { bool, closed, conditions, int, kindSchema, labelSelector, str } from '../validation/schemas.js';
import { defaultTemplate, intOrString, podTemplateSchema, validateIntOrPercent, validateNonNegative, validateSelector, validateSelectorUnchanged, validateTemplate } from './pod-template.js';
import { defineStrategy } from './strategy.js';

const schema = kindSchema({
  spec: closed(
    z.looseObject({
      replicas: int,
      selector: labelSelector,
      template: podTemplateSchema,
      strategy: z.looseObject({ type: str, rollingUpdate: z.looseObject({ maxUnavailable: intOrString, maxSurge: intOrString }).optional() }).optional(),
      minReadySeconds: int,
      revisionHistoryLimit: int,
      paused: bool,
      progressDeadlineSeconds: int,
    }),
  ).optional(),
  status: z
    .looseObject({
      observedGeneration: int,
      replicas: int,
      updatedReplicas: int,
      readyReplicas: int,
      availableReplicas: int,
      unavailableReplicas: int,
      terminatingReplicas: int,
      collisionCount: int,
      conditions: conditions(),
    })
    .optional(),
});

const STRATEGY_TYPES = ['Recreate', 'RollingUpdate'] as const;

/** A percentage or count resolved against replicas (intstr.GetScaledValueFromIntOrPercent). */
export function scaledValue(value: number | string | undefined, total: number, roundUp: boolean): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  const percent = Number.parseInt(value.slice(0, -1), 10);
  const exact = (percent * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

export const deploymentStrategy = defineStrategy<Deployment>({
  schema,
  prepareForCreate(d) {
    d.status = {};
  },
  defaults(d) {
    d.spec ??= {} as Deployment['spec'];
    const spec = d.spec;
    spec.replicas ??= 1;
    spec.strategy ??= {};
    spec.strategy.type ??= 'RollingUpdate';
    if (spec.strategy.type === 'RollingUpdate') {
      spec.strategy.rollingUpdate ??= {};
      spec.strategy.rollingUpdate.maxUnavailable ??= '25%';
      spec.strategy.rollingUpdate.maxSurge ??= '25%';
    }
    spec.revisionHistoryLimit ??= 10;
    spec.progressDeadlineSeconds ??= 600;
    defaultTemplate(spec.template);
  },
  validate(d) {
    const spec = d.spec;
    const errs: FieldError[] = [];
    errs.push(...validateNonNegative('spec.replicas', spec.replicas));
    errs.push(...validateSelector(spec.selector, spec.template, 'deployment'));
    errs.push(...validateTemplate(spec.template, ['Always']));
    errs.push(...supportedValue('spec.strategy.type', spec.strategy?.type, STRATEGY_TYPES));
    const ru = spec.strategy?.rollingUpdate;
    if (spec.strategy?.type === 'Recreate' && ru !== undefined) {
      errs.push(forbidden('spec.strategy.rollingUpdate', 'may not be specified when strategy `type` is \'Recreate\''));
    }
    if (spec.strategy?.type === 'RollingUpdate' && ru !== undefined) {
      errs.push(...validateIntOrPercent('spec.strategy.rollingUpdate.maxUnavailable', ru.maxUnavailable));
      errs.push(...validateIntOrPercent('spec.strategy.rollingUpdate.maxSurge', ru.maxSurge));
      if (scaledValue(ru.maxUnavailable, 100, false) === 0 && scaledValue(ru.maxSurge, 100, true) === 0) {
        errs.push(invalid('spec.strategy.rollingUpdate.maxUnavailable', ru.maxUnavailable, 'may not be 0 when `maxSurge` is 0'));
      }
      if (typeof ru.maxUnavailable === 'string' && Number.parseInt(ru.maxUnavailable, 10) > 100) {
        errs.push(invalid('spec.strategy.rollingUpdate.maxUnavailable', ru.maxUnavailable, 'must not be greater than 100%'));
      }
    }
    errs.push(...validateNonNegative('spec.minReadySeconds', spec.minReadySeconds));
    errs.push(...validateNonNegative('spec.revisionHistoryLimit', spec.revisionHistoryLimit));
    if (spec.progressDeadlineSeconds !== undefined && spec.progressDeadlineSeconds <= (spec.minReadySeconds ?? 0)) {
      errs.push(invalid('spec.progressDeadlineSeconds', spec.progressDeadlineSeconds, 'must be greater than minReadySeconds'));
    }
    return errs;
  },
  validateUpdate(d, old) {
    return validateSelectorUnchanged(d.spec.selector, old.spec.selector);
  },
});
