// PodDisruptionBudget (policy/v1): minAvailable or maxUnavailable (not both), each a non-negative
// count or a percentage of at most 100%; a valid selector (empty: every pod of the namespace);
// unhealthyPodEvictionPolicy IfHealthyBudget or AlwaysAllow. The spec may change (policy/v1);
// status belongs to the disruption controller and the eviction subresource. Messages are
// Kubernetes' (pkg/apis/policy/validation).
import { z } from 'zod';
import type { PodDisruptionBudget } from '../types/policy.js';
import { supportedValue, validateLabelSelector } from '../validation/common.js';
import { type FieldError, invalid } from '../validation/field-errors.js';
import { conditions, int, kindSchema, labelSelector, str } from '../validation/schemas.js';
import { intOrString, validateIntOrPercent } from './pod-template.js';
import { defineStrategy } from './strategy.js';

export const UNHEALTHY_POD_EVICTION_POLICIES = ['AlwaysAllow', 'IfHealthyBudget'] as const;

const schema = kindSchema({
  spec: z.looseObject({ minAvailable: intOrString, selector: labelSelector, maxUnavailable: intOrString, unhealthyPodEvictionPolicy: str }).optional(),
  status: z
    .looseObject({
      observedGeneration: int,
      disruptedPods: z.record(z.string(), z.string()).optional(),
      disruptionsAllowed: int,
      currentHealthy: int,
      desiredHealthy: int,
      expectedPods: int,
      conditions: conditions(),
    })
    .optional(),
});

/** A count or a percentage that is also at most 100% (appsvalidation.IsNotMoreThan100Percent). */
function validateBudgetValue(path: string, value: number | string | undefined): FieldError[] {
  const errs = validateIntOrPercent(path, value);
  if (errs.length === 0 && typeof value === 'string' && Number.parseInt(value.slice(0, -1), 10) > 100) errs.push(invalid(path, value, 'must not be greater than 100%'));
  return errs;
}

export const podDisruptionBudgetStrategy = defineStrategy<PodDisruptionBudget>({
  schema,
  prepareForCreate(pdb) {
    pdb.status = {};
  },
  validate(pdb) {
    const spec = pdb.spec ?? {};
    const errs: FieldError[] = [];
    if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) errs.push(invalid('spec', spec, 'minAvailable and maxUnavailable cannot be both set'));
    errs.push(...validateBudgetValue('spec.minAvailable', spec.minAvailable));
    errs.push(...validateBudgetValue('spec.maxUnavailable', spec.maxUnavailable));
    errs.push(...validateLabelSelector('spec.selector', spec.selector));
    if (spec.unhealthyPodEvictionPolicy !== undefined) errs.push(...supportedValue('spec.unhealthyPodEvictionPolicy', spec.unhealthyPodEvictionPolicy, UNHEALTHY_POD_EVICTION_POLICIES));
    const status = pdb.status ?? {};
    for (const field of ['disruptionsAllowed', 'currentHealthy', 'desiredHealthy', 'expectedPods'] as const) {
      const v = status[field];
      if (v !== undefined && v < 0) errs.push(invalid(`status.${field}`, v, 'must be greater than or equal to 0'));
    }
    return errs;
  },
});
