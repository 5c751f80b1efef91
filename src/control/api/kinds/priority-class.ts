// PriorityClass: user-defined priorities are capped, and value and preemptionPolicy are fixed
// once created.
import type { PriorityClass } from '../types/scheduling.js';
import { immutable, supportedValue } from '../validation/common.js';
import { type FieldError, forbidden, invalid } from '../validation/field-errors.js';
import { bool, int, kindSchema, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const MAX_USER_PRIORITY = 1_000_000_000;
const SYSTEM_PREFIX = 'system-';
const PREEMPTION_POLICIES = ['Never', 'PreemptLowerPriority'] as const;

const schema = kindSchema({ value: int, globalDefault: bool, description: str, preemptionPolicy: str });

export const priorityClassStrategy = defineStrategy<PriorityClass>({
  schema,
  defaults(pc) {
    pc.value ??= 0;
    pc.preemptionPolicy ??= 'PreemptLowerPriority';
  },
  validate(pc) {
    const errs: FieldError[] = [];
    const name = pc.metadata.name ?? '';
    if (name.startsWith(SYSTEM_PREFIX)) errs.push(invalid('metadata.name', name, "priority class names with 'system-' prefix are reserved"));
    if (pc.value > MAX_USER_PRIORITY) errs.push(forbidden('value', `maximum allowed value of a user defined priority is ${MAX_USER_PRIORITY}`));
    errs.push(...supportedValue('preemptionPolicy', pc.preemptionPolicy, PREEMPTION_POLICIES));
    return errs;
  },
  validateUpdate(pc, old) {
    const errs = pc.value === old.value ? [] : [forbidden('value', 'may not be changed in an update.')];
    errs.push(...immutable('preemptionPolicy', pc.preemptionPolicy, old.preemptionPolicy));
    return errs;
  },
});
