// StorageClass: defaulting, validation and update rules of Kubernetes' StorageClass strategy.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { StorageClass } from '../types/storage.js';
import { immutable, validateQualifiedName, supportedValue } from '../validation/common.js';
import { child, type FieldError, forbidden, index, invalid, required, tooLong, tooMany } from '../validation/field-errors.js';
import { bool, kindSchema, str, stringMap, strings } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const MAX_PARAMETERS = 512;
const MAX_PARAMETERS_BYTES = 256 * 1024;
const RECLAIM_POLICIES = ['Delete', 'Retain'] as const;
const BINDING_MODES = ['Immediate', 'WaitForFirstConsumer'] as const;

const schema = kindSchema({
  provisioner: str,
  parameters: stringMap,
  reclaimPolicy: str,
  mountOptions: strings,
  allowVolumeExpansion: bool,
  volumeBindingMode: str,
  allowedTopologies: z.array(z.looseObject({ matchLabelExpressions: z.array(z.looseObject({ key: str, values: strings })).optional() })).optional(),
});

function validateParameters(parameters: Record<string, string>): FieldError[] {
  const entries = Object.entries(parameters);
  const errs: FieldError[] = [];
  if (entries.length > MAX_PARAMETERS) errs.push(tooMany('parameters', MAX_PARAMETERS));
  let bytes = 0;
  for (const [k, v] of entries) {
    if (k.length === 0) errs.push(invalid('parameters', k, 'field can not be empty.'));
    bytes += k.length + v.length;
  }
  if (bytes > MAX_PARAMETERS_BYTES) errs.push(tooLong('parameters', MAX_PARAMETERS_BYTES));
  return errs;
}

export const storageClassStrategy = defineStrategy<StorageClass>({
  schema,
  defaults(sc) {
    sc.reclaimPolicy ??= 'Delete';
    sc.volumeBindingMode ??= 'Immediate';
  },
  validate(sc) {
    const errs: FieldError[] = [];
    if (!sc.provisioner) errs.push(required('provisioner'));
    else errs.push(...validateQualifiedName('provisioner', sc.provisioner.toLowerCase()).map((e) => ({ ...e, value: sc.provisioner })));
    errs.push(...validateParameters(sc.parameters ?? {}));
    errs.push(...supportedValue('reclaimPolicy', sc.reclaimPolicy, RECLAIM_POLICIES));
    errs.push(...supportedValue('volumeBindingMode', sc.volumeBindingMode, BINDING_MODES));
    (sc.allowedTopologies ?? []).forEach((term, t) => {
      const termPath = child(index('allowedTopologies', t), 'matchLabelExpressions');
      const expressions = term.matchLabelExpressions ?? [];
      if (expressions.length === 0) errs.push(required(termPath, 'must contain at least one requirement'));
      expressions.forEach((expr, e) => {
        const p = index(termPath, e);
        errs.push(...validateQualifiedName(child(p, 'key'), expr.key ?? ''));
        if ((expr.values ?? []).length === 0) errs.push(required(child(p, 'values'), 'must specify as least one value'));
      });
    });
    return errs;
  },
  validateUpdate(sc, old) {
    const errs: FieldError[] = [];
    if (!isDeepStrictEqual(sc.parameters ?? {}, old.parameters ?? {})) errs.push(forbidden('parameters', 'updates to parameters are forbidden.'));
    if (sc.provisioner !== old.provisioner) errs.push(forbidden('provisioner', 'updates to provisioner are forbidden.'));
    if (sc.reclaimPolicy !== old.reclaimPolicy) errs.push(forbidden('reclaimPolicy', 'updates to reclaimPolicy are forbidden.'));
    errs.push(...immutable('volumeBindingMode', sc.volumeBindingMode, old.volumeBindingMode));
    return errs;
  },
});
