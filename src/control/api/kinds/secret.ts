// Secret: stringData is folded into base64 data on every write (and never stored), as the
// Kubernetes API server does; an immutable secret's data cannot change.
import { isDeepStrictEqual } from 'node:util';
import type { Secret } from '../types/core.js';
import { immutable } from '../validation/common.js';
import { type FieldError, forbidden, invalid, key, tooLong } from '../validation/field-errors.js';
import { isConfigMapKey } from '../validation/names.js';
import { bool, kindSchema, str, stringMap } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const MAX_SECRET_BYTES = 1024 * 1024;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Secret values never appear in error messages. */
const REDACTED = '<secret value redacted>';

const schema = kindSchema({ type: str, data: stringMap, stringData: stringMap, immutable: bool });

export const secretStrategy = defineStrategy<Secret>({
  schema,
  defaults(secret) {
    secret.type ??= 'Opaque';
    if (secret.stringData !== undefined) {
      secret.data ??= {};
      for (const [k, v] of Object.entries(secret.stringData)) secret.data[k] = Buffer.from(v, 'utf8').toString('base64');
      delete secret.stringData;
    }
  },
  validate(secret) {
    const errs: FieldError[] = [];
    let bytes = 0;
    for (const [k, v] of Object.entries(secret.data ?? {})) {
      errs.push(...isConfigMapKey(k).map((m) => invalid(key('data', k), k, m)));
      if (!BASE64.test(v)) errs.push(invalid(key('data', k), REDACTED, 'must be base64-encoded'));
      bytes += Buffer.byteLength(v, 'base64');
    }
    if (bytes > MAX_SECRET_BYTES) errs.push(tooLong('data', MAX_SECRET_BYTES));
    return errs;
  },
  validateUpdate(secret, old) {
    const errs = immutable('type', secret.type, old.type);
    if (old.immutable === true) {
      if (secret.immutable !== true) errs.push(forbidden('immutable', 'field is immutable when `immutable` is set'));
      if (!isDeepStrictEqual(secret.data ?? {}, old.data ?? {})) errs.push(forbidden('data', 'field is immutable when `immutable` is set'));
    }
    return errs;
  },
});
