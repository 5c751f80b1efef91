// The full validation of an object of a known resource: structure, metadata, the kind's rules,
// and on update the immutability rules. Returns field errors; the store turns them into Invalid.
import { strategyFor } from '../kinds/strategies.js';
import type { ResourceInfo } from '../registry.js';
import type { KubeObject } from '../types/meta.js';
import { decode } from './decode.js';
import type { FieldError } from './field-errors.js';
import { validateObjectMeta, validateObjectMetaUpdate } from './meta.js';
import { isDNS1123Subdomain } from './names.js';

/** JSON type mismatches of the known fields; nothing else is safe to check until these are gone. */
export function decodeObject(obj: unknown, resource: ResourceInfo): FieldError[] {
  return decode(strategyFor(resource).schema, obj);
}

export function validateObject(obj: KubeObject, resource: ResourceInfo): FieldError[] {
  const strategy = strategyFor(resource);
  return [
    ...validateObjectMeta(obj.metadata, { namespaced: resource.namespaced, nameCheck: strategy.nameCheck ?? isDNS1123Subdomain }),
    ...strategy.validate(obj),
  ];
}

export function validateObjectUpdate(obj: KubeObject, old: KubeObject, resource: ResourceInfo): FieldError[] {
  const errs = [...validateObjectMetaUpdate(obj.metadata, old.metadata), ...validateObject(obj, resource)];
  return [...errs, ...(strategyFor(resource).validateUpdate?.(obj, old) ?? [])];
}
