// Namespace: named by an RFC 1123 label, Active at creation, with the "kubernetes" finalizer that
// holds it while its content is deleted (the store's garbage collector plays the namespace
// controller).
import { z } from 'zod';
import type { Namespace } from '../types/core.js';
import { carryOver, validateQualifiedName, supportedValue } from '../validation/common.js';
import { isDNS1123Label } from '../validation/names.js';
import { atomic, conditions, kindSchema, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

/** The spec finalizer Kubernetes puts on every namespace. */
export const NAMESPACE_FINALIZER = 'kubernetes';
const PHASES = ['Active', 'Terminating'] as const;

const schema = kindSchema({
  spec: z.looseObject({ finalizers: atomic(z.array(z.string())).optional() }).optional(),
  status: z.looseObject({ phase: str, conditions: conditions() }).optional(),
});

export const namespaceStrategy = defineStrategy<Namespace>({
  schema,
  nameCheck: isDNS1123Label,
  prepareForCreate(ns) {
    ns.status = { phase: 'Active' };
    const finalizers = ns.spec?.finalizers ?? [];
    ns.spec = { ...ns.spec, finalizers: finalizers.includes(NAMESPACE_FINALIZER) ? finalizers : [...finalizers, NAMESPACE_FINALIZER] };
  },
  prepareForUpdate(ns, old) {
    // spec.finalizers change only through finalization, never through an update.
    carryOver(ns, old, 'spec');
  },
  validate(ns) {
    const errs = (ns.spec?.finalizers ?? []).flatMap((f) => validateQualifiedName('spec.finalizers', f));
    const phase = ns.status?.phase;
    errs.push(...supportedValue('status.phase', phase, PHASES));
    return errs;
  },
});
