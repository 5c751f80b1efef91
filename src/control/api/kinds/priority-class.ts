// PriorityClass: user-defined priorities are capped, names starting with `system-` are only the
// two system classes (with their values), and value and preemptionPolicy are fixed once created.
import type { PriorityClass } from '../types/scheduling.js';
import { immutable, supportedValue } from '../validation/common.js';
import { type FieldError, forbidden } from '../validation/field-errors.js';
import { bool, int, kindSchema, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

export const MAX_USER_PRIORITY = 1_000_000_000;
const SYSTEM_PREFIX = 'system-';
const PREEMPTION_POLICIES = ['Never', 'PreemptLowerPriority'] as const;

/** The classes every cluster has (the API server creates them at start), as Kubernetes defines them. */
export const SYSTEM_PRIORITY_CLASSES: readonly { name: string; value: number; description: string }[] = [
  { name: 'system-node-critical', value: 2_000_001_000, description: 'Used for system critical pods that must not be moved from their current node.' },
  { name: 'system-cluster-critical', value: 2_000_000_000, description: 'Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.' },
];

/** Why a `system-` class is not one of the system classes as they are defined, or undefined. */
function unknownSystemClass(name: string, value: number, globalDefault: boolean): string | undefined {
  const known = SYSTEM_PRIORITY_CLASSES.find((c) => c.name === name);
  if (known === undefined) return `${name} is not a known system priority class`;
  if (known.value !== value) return `value of ${name} PriorityClass must be ${known.value}`;
  if (globalDefault) return `globalDefault of ${name} PriorityClass must be false`;
  return undefined;
}

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
    if (name.startsWith(SYSTEM_PREFIX)) {
      const why = unknownSystemClass(name, pc.value, pc.globalDefault ?? false);
      if (why !== undefined) errs.push(forbidden('metadata.name', `priority class names with '${SYSTEM_PREFIX}' prefix are reserved for system use only. error: ${why}`));
    } else if (pc.value > MAX_USER_PRIORITY) {
      errs.push(forbidden('value', `maximum allowed value of a user defined priority is ${MAX_USER_PRIORITY}`));
    }
    errs.push(...supportedValue('preemptionPolicy', pc.preemptionPolicy, PREEMPTION_POLICIES));
    return errs;
  },
  validateUpdate(pc, old) {
    const errs = pc.value === old.value ? [] : [forbidden('value', 'may not be changed in an update.')];
    errs.push(...immutable('preemptionPolicy', pc.preemptionPolicy, old.preemptionPolicy));
    return errs;
  },
});
