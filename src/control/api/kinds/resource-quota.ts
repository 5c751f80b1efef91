// ResourceQuota: a namespace's hard limits (spec.hard) and what is used of them (status, written
// by the resource-quota controller; quota-admission.ts enforces them at each write).
import { z } from 'zod';
import { canonicalizeResourceList } from '../quantity.js';
import type { ResourceQuota } from '../types/core.js';
import { supportedValue, validateResourceList } from '../validation/common.js';
import { child, type FieldError, index } from '../validation/field-errors.js';
import { kindSchema, resourceList, str, strings } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

/** Kubernetes' ResourceQuotaScope values. */
export const QUOTA_SCOPES = ['BestEffort', 'CrossNamespacePodAffinity', 'NotBestEffort', 'NotTerminating', 'PriorityClass', 'Terminating'] as const;
const OPERATORS = ['DoesNotExist', 'Exists', 'In', 'NotIn'] as const;

const schema = kindSchema({
  spec: z
    .looseObject({
      hard: resourceList,
      scopes: strings,
      scopeSelector: z.looseObject({ matchExpressions: z.array(z.looseObject({ scopeName: str, operator: str, values: strings })).optional() }).optional(),
    })
    .optional(),
  status: z.looseObject({ hard: resourceList, used: resourceList }).optional(),
});

export const resourceQuotaStrategy = defineStrategy<ResourceQuota>({
  schema,
  prepareForCreate(q) {
    delete q.status;
  },
  defaults(q) {
    canonicalizeResourceList(q.spec?.hard);
    canonicalizeResourceList(q.status?.hard);
    canonicalizeResourceList(q.status?.used);
  },
  validate(q) {
    const errs: FieldError[] = [...validateResourceList('spec.hard', q.spec?.hard), ...validateResourceList('status.hard', q.status?.hard), ...validateResourceList('status.used', q.status?.used)];
    (q.spec?.scopes ?? []).forEach((s, i) => {
      errs.push(...supportedValue(index('spec.scopes', i), s, QUOTA_SCOPES));
    });
    (q.spec?.scopeSelector?.matchExpressions ?? []).forEach((e, i) => {
      const p = index('spec.scopeSelector.matchExpressions', i);
      errs.push(...supportedValue(child(p, 'scopeName'), e.scopeName ?? '', QUOTA_SCOPES));
      errs.push(...supportedValue(child(p, 'operator'), e.operator ?? '', OPERATORS));
    });
    return errs;
  },
});
