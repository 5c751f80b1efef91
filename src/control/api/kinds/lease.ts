// Lease: a holder, a duration and renewal times, as client-go's leader election writes them.
// Kubernetes checks only the numbers' ranges and the strategy / preferredHolder pairing.
import type { Lease } from '../types/coordination.js';
import { supportedValue } from '../validation/common.js';
import { type FieldError, forbidden, invalid } from '../validation/field-errors.js';
import { int, kindSchema, str } from '../validation/schemas.js';
import { z } from 'zod';
import { defineStrategy } from './strategy.js';

const STRATEGIES = ['OldestEmulationVersion'] as const;

const schema = kindSchema({
  spec: z
    .looseObject({ holderIdentity: str, leaseDurationSeconds: int, acquireTime: str, renewTime: str, leaseTransitions: int, strategy: str, preferredHolder: str })
    .optional(),
});

export const leaseStrategy = defineStrategy<Lease>({
  schema,
  validate(lease) {
    const spec = lease.spec ?? {};
    const errs: FieldError[] = [];
    if (spec.leaseDurationSeconds !== undefined && spec.leaseDurationSeconds <= 0) {
      errs.push(invalid('spec.leaseDurationSeconds', spec.leaseDurationSeconds, 'must be greater than 0'));
    }
    if (spec.leaseTransitions !== undefined && spec.leaseTransitions < 0) {
      errs.push(invalid('spec.leaseTransitions', spec.leaseTransitions, 'must be greater than or equal to 0'));
    }
    if (spec.strategy !== undefined) errs.push(...supportedValue('spec.strategy', spec.strategy, STRATEGIES));
    if (spec.preferredHolder !== undefined && spec.preferredHolder !== '' && (spec.strategy === undefined || spec.strategy === '')) {
      errs.push(forbidden('spec.preferredHolder', 'may only be specified if `strategy` is defined'));
    }
    return errs;
  },
});
