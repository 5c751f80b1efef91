// LimitRange: per-type minimums, maximums and defaults, all quantities; a Container item's
// missing defaults are derived as Kubernetes derives them (defaultContainerItem).
import { z } from 'zod';
import { canonicalizeResourceList } from '../quantity.js';
import type { LimitRange, LimitRangeItem } from '../types/core.js';
import { validateResourceList, supportedValue } from '../validation/common.js';
import { child, type FieldError, index, required } from '../validation/field-errors.js';
import { kindSchema, resourceList, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const TYPES = ['Container', 'PersistentVolumeClaim', 'Pod'] as const;
const LISTS = ['max', 'min', 'default', 'defaultRequest', 'maxLimitRequestRatio'] as const;

const item = z.looseObject({ type: str, ...Object.fromEntries(LISTS.map((l) => [l, resourceList])) });
const schema = kindSchema({ spec: z.looseObject({ limits: z.array(item).optional() }).optional() });

/**
 * Kubernetes' SetDefaults_LimitRangeItem for Container items: a max stands for a missing default
 * (limit), a default for a missing defaultRequest, and a min for a defaultRequest still missing.
 */
function defaultContainerItem(item: LimitRangeItem): void {
  const fill = (into: 'default' | 'defaultRequest', from: Record<string, string | number> | undefined): void => {
    for (const [name, q] of Object.entries(from ?? {})) {
      const list = (item[into] ??= {});
      list[name] ??= String(q);
    }
  };
  fill('default', item.max);
  fill('defaultRequest', item.default);
  fill('defaultRequest', item.min);
}

export const limitRangeStrategy = defineStrategy<LimitRange>({
  schema,
  defaults(lr) {
    for (const limit of lr.spec?.limits ?? []) {
      for (const l of LISTS) canonicalizeResourceList(limit[l]);
      if (limit.type === 'Container') defaultContainerItem(limit);
    }
  },
  validate(lr) {
    const limits = lr.spec?.limits;
    if (limits === undefined) return [required('spec.limits')];
    return limits.flatMap((limit, i) => {
      const p = index('spec.limits', i);
      const errs: FieldError[] = limit.type === undefined ? [required(child(p, 'type'))] : supportedValue(child(p, 'type'), limit.type, TYPES);
      for (const l of LISTS) errs.push(...validateResourceList(child(p, l), limit[l]));
      return errs;
    });
  },
});
