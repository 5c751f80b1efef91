// DaemonSet (apps/v1): RollingUpdate maxUnavailable 1 / maxSurge 0 and revisionHistoryLimit 10 by
// default, a selector matching the template, immutable selector.
import { z } from 'zod';
import type { DaemonSet } from '../types/apps.js';
import { supportedValue } from '../validation/common.js';
import type { FieldError } from '../validation/field-errors.js';
import { closed, conditions, int, kindSchema, labelSelector, str } from '../validation/schemas.js';
import { defaultTemplate, intOrString, podTemplateSchema, validateIntOrPercent, validateNonNegative, validateSelector, validateSelectorUnchanged, validateTemplate } from './pod-template.js';
import { defineStrategy } from './strategy.js';

const schema = kindSchema({
  spec: closed(
    z.looseObject({
      selector: labelSelector,
      template: podTemplateSchema,
      updateStrategy: z.looseObject({ type: str, rollingUpdate: z.looseObject({ maxUnavailable: intOrString, maxSurge: intOrString }).optional() }).optional(),
      minReadySeconds: int,
      revisionHistoryLimit: int,
    }),
  ).optional(),
  status: z
    .looseObject({
      currentNumberScheduled: int,
      numberMisscheduled: int,
      desiredNumberScheduled: int,
      numberReady: int,
      observedGeneration: int,
      updatedNumberScheduled: int,
      numberAvailable: int,
      numberUnavailable: int,
      collisionCount: int,
      conditions: conditions(),
    })
    .optional(),
});

export const daemonSetStrategy = defineStrategy<DaemonSet>({
  schema,
  prepareForCreate(ds) {
    ds.status = { currentNumberScheduled: 0, numberMisscheduled: 0, desiredNumberScheduled: 0, numberReady: 0 };
  },
  defaults(ds) {
    ds.spec ??= {} as DaemonSet['spec'];
    const spec = ds.spec;
    spec.updateStrategy ??= {};
    spec.updateStrategy.type ??= 'RollingUpdate';
    if (spec.updateStrategy.type === 'RollingUpdate') {
      spec.updateStrategy.rollingUpdate ??= {};
      spec.updateStrategy.rollingUpdate.maxUnavailable ??= 1;
      spec.updateStrategy.rollingUpdate.maxSurge ??= 0;
    }
    spec.revisionHistoryLimit ??= 10;
    defaultTemplate(spec.template);
  },
  validate(ds) {
    const spec = ds.spec;
    const errs: FieldError[] = [];
    errs.push(...validateSelector(spec.selector, spec.template, 'daemonset'));
    errs.push(...validateTemplate(spec.template, ['Always']));
    errs.push(...supportedValue('spec.updateStrategy.type', spec.updateStrategy?.type, ['OnDelete', 'RollingUpdate']));
    errs.push(...validateIntOrPercent('spec.updateStrategy.rollingUpdate.maxUnavailable', spec.updateStrategy?.rollingUpdate?.maxUnavailable));
    errs.push(...validateIntOrPercent('spec.updateStrategy.rollingUpdate.maxSurge', spec.updateStrategy?.rollingUpdate?.maxSurge));
    errs.push(...validateNonNegative('spec.minReadySeconds', spec.minReadySeconds));
    return errs;
  },
  validateUpdate(ds, old) {
    return validateSelectorUnchanged(ds.spec.selector, old.spec.selector);
  },
});
