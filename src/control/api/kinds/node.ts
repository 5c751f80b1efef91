// Node: taints and the capacity a node reports. Status is kept at creation because a node
// registers itself with its status, as the kubelet does.
import { z } from 'zod';
import { canonicalizeResourceList } from '../quantity.js';
import type { Node } from '../types/core.js';
import { validateQualifiedName, validateResourceList, supportedValue } from '../validation/common.js';
import { child, index, required } from '../validation/field-errors.js';
import { atomic, bool, closed, conditions, kindSchema, mergeAsSet, mergeByKey, resourceList, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const TAINT_EFFECTS = ['NoExecute', 'NoSchedule', 'PreferNoSchedule'] as const;

const schema = kindSchema({
  spec: closed(
    z.looseObject({
      podCIDR: str,
      podCIDRs: mergeAsSet(z.array(z.string())).optional(),
      providerID: str,
      unschedulable: bool,
      taints: atomic(z.array(z.looseObject({ key: str, value: str, effect: str, timeAdded: str }))).optional(),
      configSource: z.looseObject({}).optional(),
      externalID: str,
    }),
  ).optional(),
  status: z
    .looseObject({
      capacity: resourceList,
      allocatable: resourceList,
      conditions: conditions(),
      addresses: mergeByKey(z.array(z.looseObject({ type: str, address: str })), 'type').optional(),
    })
    .optional(),
});

export const nodeStrategy = defineStrategy<Node>({
  schema,
  defaults(node) {
    canonicalizeResourceList(node.status?.capacity);
    canonicalizeResourceList(node.status?.allocatable);
  },
  validate(node) {
    const errs = (node.spec?.taints ?? []).flatMap((t, i) => {
      const p = index('spec.taints', i);
      const taintErrs = validateQualifiedName(child(p, 'key'), t.key ?? '');
      if (t.effect === undefined) taintErrs.push(required(child(p, 'effect')));
      else taintErrs.push(...supportedValue(child(p, 'effect'), t.effect, TAINT_EFFECTS));
      return taintErrs;
    });
    errs.push(...validateResourceList('status.capacity', node.status?.capacity));
    errs.push(...validateResourceList('status.allocatable', node.status?.allocatable));
    return errs;
  },
});
