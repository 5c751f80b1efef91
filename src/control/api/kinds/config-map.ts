// ConfigMap: key formats, the size limit, and immutability once `immutable` is set.
import { isDeepStrictEqual } from 'node:util';
import type { ConfigMap } from '../types/core.js';
import { type FieldError, forbidden, invalid, key, tooLong } from '../validation/field-errors.js';
import { isConfigMapKey } from '../validation/names.js';
import { bool, kindSchema, stringMap } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const MAX_CONFIG_MAP_BYTES = 1024 * 1024;

const schema = kindSchema({ data: stringMap, binaryData: stringMap, immutable: bool });

export const configMapStrategy = defineStrategy<ConfigMap>({
  schema,
  validate(cm) {
    const errs: FieldError[] = [];
    let bytes = 0;
    for (const [field, map] of [['data', cm.data], ['binaryData', cm.binaryData]] as const) {
      for (const [k, v] of Object.entries(map ?? {})) {
        errs.push(...isConfigMapKey(k).map((m) => invalid(key(field, k), k, m)));
        bytes += k.length + v.length;
      }
    }
    for (const k of Object.keys(cm.data ?? {})) {
      if (cm.binaryData !== undefined && Object.hasOwn(cm.binaryData, k)) errs.push(invalid(key('data', k), k, 'duplicate of key present in binaryData'));
    }
    if (bytes > MAX_CONFIG_MAP_BYTES) errs.push(tooLong('data', MAX_CONFIG_MAP_BYTES));
    return errs;
  },
  validateUpdate(cm, old) {
    if (old.immutable !== true) return [];
    const errs: FieldError[] = [];
    if (cm.immutable !== true) errs.push(forbidden('immutable', 'field is immutable when `immutable` is set'));
    if (!isDeepStrictEqual(cm.data ?? {}, old.data ?? {})) errs.push(forbidden('data', 'field is immutable when `immutable` is set'));
    if (!isDeepStrictEqual(cm.binaryData ?? {}, old.binaryData ?? {})) errs.push(forbidden('binaryData', 'field is immutable when `immutable` is set'));
    return errs;
  },
});
