// CSINode: the CSI drivers registered on a node, with their node IDs and topology keys.
import { z } from 'zod';
import type { CSINode } from '../types/storage.js';
import { immutable, validateDriverName, validateQualifiedName } from '../validation/common.js';
import { child, duplicate, type FieldError, index, invalid, required, tooLong } from '../validation/field-errors.js';
import { atomic, int, kindSchema, mergeByKey, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const MAX_NODE_ID_LENGTH = 192;

const schema = kindSchema({
  spec: z
    .looseObject({
      drivers: mergeByKey(z.array(z.looseObject({ name: str, nodeID: str, topologyKeys: atomic(z.array(z.string())).optional(), allocatable: z.looseObject({ count: int }).optional() })), 'name').optional(),
    })
    .optional(),
});

export const csiNodeStrategy = defineStrategy<CSINode>({
  schema,
  defaults(node) {
    node.spec ??= { drivers: [] };
    node.spec.drivers ??= [];
  },
  validate(node) {
    const seen = new Set<string>();
    return node.spec.drivers.flatMap((d, i) => {
      const p = index('spec.drivers', i);
      const errs: FieldError[] = validateDriverName(child(p, 'name'), d.name);
      if (d.name && seen.has(d.name)) errs.push(duplicate(child(p, 'name'), d.name));
      seen.add(d.name);
      if (!d.nodeID) errs.push(required(child(p, 'nodeID')));
      else if (d.nodeID.length > MAX_NODE_ID_LENGTH) errs.push(tooLong(child(p, 'nodeID'), MAX_NODE_ID_LENGTH));
      for (const k of d.topologyKeys ?? []) errs.push(...validateQualifiedName(child(p, 'topologyKeys'), k));
      const count = d.allocatable?.count;
      if (count !== undefined && count < 0) errs.push(invalid(child(p, 'allocatable.count'), count, 'must be greater than or equal to 0'));
      return errs;
    });
  },
  validateUpdate(node, old) {
    // A driver's identity on the node is fixed while it stays registered.
    return node.spec.drivers.flatMap((d, i) => {
      const before = old.spec.drivers.find((o) => o.name === d.name);
      if (before === undefined) return [];
      const p = index('spec.drivers', i);
      return [
        ...immutable(child(p, 'nodeID'), d.nodeID, before.nodeID),
        ...immutable(child(p, 'topologyKeys'), d.topologyKeys ?? [], before.topologyKeys ?? []),
        ...immutable(child(p, 'allocatable'), d.allocatable, before.allocatable),
      ];
    });
  },
});
