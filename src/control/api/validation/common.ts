// Semantic checks shared by several kinds: quantities, access modes, selectors, references.
// Each takes the value and its field path and returns field errors in Kubernetes' wording.
import { isDeepStrictEqual } from 'node:util';
import { isQuantity, parseQuantity, QUANTITY_FORMAT_MESSAGE } from '../quantity.js';
import type { NodeSelector, SecretReference } from '../types/core.js';
import type { LabelSelector } from '../types/meta.js';
import { child, type FieldError, forbidden, index, invalid, key, notSupported, required } from './field-errors.js';
import { isCSIDriverName, isDNS1123Label, isDNS1123Subdomain, isQualifiedName, isValidLabelValue } from './names.js';

const ACCESS_MODES = ['ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOnce', 'ReadWriteOncePod'] as const;
const VOLUME_MODES = ['Block', 'Filesystem'] as const;

export function validateQuantity(path: string, value: string | number, { positive = false } = {}): FieldError[] {
  if (!isQuantity(value)) return [invalid(path, value, QUANTITY_FORMAT_MESSAGE)];
  const nanos = parseQuantity(value).nanos;
  if (positive && nanos <= 0n) return [invalid(path, value, 'must be greater than zero')];
  if (nanos < 0n) return [invalid(path, value, 'must be greater than or equal to 0')];
  return [];
}

export function validateResourceList(path: string, list: Record<string, string | number> | undefined): FieldError[] {
  return Object.entries(list ?? {}).flatMap(([name, value]) => [
    ...isQualifiedName(name).map((m) => invalid(path, name, m)),
    ...validateQuantity(key(path, name), value),
  ]);
}

/** Every mode must be known, and ReadWriteOncePod excludes the others. */
export function validateAccessModes(path: string, modes: readonly string[] | undefined, requiredDetail: string): FieldError[] {
  if (modes === undefined || modes.length === 0) return [required(path, requiredDetail)];
  const errs = modes.flatMap((mode, i) => supportedValue(index(path, i), mode, ACCESS_MODES));
  if (modes.includes('ReadWriteOncePod') && modes.length > 1) errs.push(forbidden(path, 'may not use ReadWriteOncePod with other access modes'));
  return errs;
}

export function validateVolumeMode(path: string, mode: string | undefined): FieldError[] {
  return supportedValue(path, mode, VOLUME_MODES);
}

export function validateSubdomain(path: string, value: string): FieldError[] {
  return isDNS1123Subdomain(value).map((m) => invalid(path, value, m));
}

export function validateLabel(path: string, value: string): FieldError[] {
  return isDNS1123Label(value).map((m) => invalid(path, value, m));
}

export function validateQualifiedName(path: string, value: string): FieldError[] {
  return isQualifiedName(value).map((m) => invalid(path, value, m));
}

export function validateDriverName(path: string, value: string | undefined): FieldError[] {
  if (value === undefined || value === '') return [required(path)];
  return isCSIDriverName(value).map((m) => invalid(path, value, m));
}

/** A storage class name where one may be given: "" means "no class", anything else a subdomain. */
export function validateClassName(path: string, value: string | undefined): FieldError[] {
  return value === undefined || value === '' ? [] : validateSubdomain(path, value);
}

export function validateLabels(path: string, labels: Record<string, string> | undefined): FieldError[] {
  return Object.entries(labels ?? {}).flatMap(([k, v]) => [
    ...isQualifiedName(k).map((m) => invalid(path, k, m)),
    ...isValidLabelValue(v).map((m) => invalid(path, v, m)),
  ]);
}

const SELECTOR_OPERATORS = ['DoesNotExist', 'Exists', 'In', 'NotIn'] as const;

export function validateLabelSelector(path: string, selector: LabelSelector | undefined): FieldError[] {
  if (selector === undefined) return [];
  const errs = validateLabels(child(path, 'matchLabels'), selector.matchLabels);
  (selector.matchExpressions ?? []).forEach((expr, i) => {
    const p = index(child(path, 'matchExpressions'), i);
    errs.push(...validateQualifiedName(child(p, 'key'), expr.key ?? ''));
    const values = expr.values ?? [];
    if (expr.operator === 'In' || expr.operator === 'NotIn') {
      if (values.length === 0) errs.push(required(child(p, 'values'), "must be specified when `operator` is 'In' or 'NotIn'"));
    } else if (expr.operator === 'Exists' || expr.operator === 'DoesNotExist') {
      if (values.length > 0) errs.push(forbidden(child(p, 'values'), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
    } else {
      errs.push(notSupported(child(p, 'operator'), expr.operator, SELECTOR_OPERATORS));
    }
  });
  return errs;
}

const NODE_SELECTOR_OPERATORS = ['DoesNotExist', 'Exists', 'Gt', 'In', 'Lt', 'NotIn'] as const;

export function validateNodeSelector(path: string, selector: NodeSelector | undefined): FieldError[] {
  if (selector === undefined) return [];
  const termsPath = child(path, 'nodeSelectorTerms');
  const terms = selector.nodeSelectorTerms ?? [];
  if (terms.length === 0) return [required(termsPath, 'must have at least one node selector term')];
  return terms.flatMap((term, t) =>
    (term.matchExpressions ?? []).flatMap((req, r) => {
      const p = index(child(index(termsPath, t), 'matchExpressions'), r);
      const errs = validateQualifiedName(child(p, 'key'), req.key ?? '');
      const values = req.values ?? [];
      switch (req.operator) {
        case 'In':
        case 'NotIn':
          if (values.length === 0) errs.push(required(child(p, 'values'), 'must be specified when `operator` is \'In\' or \'NotIn\''));
          break;
        case 'Exists':
        case 'DoesNotExist':
          if (values.length > 0) errs.push(forbidden(child(p, 'values'), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
          break;
        case 'Gt':
        case 'Lt':
          if (values.length !== 1) errs.push(required(child(p, 'values'), "must be specified single value when `operator` is 'Lt' or 'Gt'"));
          break;
        default:
          errs.push(notSupported(child(p, 'operator'), req.operator, NODE_SELECTOR_OPERATORS));
      }
      return errs;
    }),
  );
}

/** A secret reference, where given, names a secret in a namespace. */
export function validateSecretReference(path: string, ref: SecretReference | undefined): FieldError[] {
  if (ref === undefined) return [];
  const errs: FieldError[] = [];
  if (!ref.name) errs.push(required(child(path, 'name')));
  else errs.push(...validateSubdomain(child(path, 'name'), ref.name));
  if (!ref.namespace) errs.push(required(child(path, 'namespace')));
  else errs.push(...validateLabel(child(path, 'namespace'), ref.namespace));
  return errs;
}

/** "field is immutable", reported with the new value as Kubernetes' ValidateImmutableField does. */
export function immutable(path: string, value: unknown, oldValue: unknown): FieldError[] {
  return isDeepStrictEqual(value, oldValue) ? [] : [invalid(path, value ?? null, 'field is immutable')];
}

/** Sets target[k] to source[k], or removes it when source has none (so deep comparisons agree). */
export function carryOver<T extends object>(target: T, source: T, k: keyof T): void {
  if (source[k] === undefined) delete target[k];
  else target[k] = source[k];
}

/** Unsupported value, unless the value is absent or one of `supported`. */
export function supportedValue(path: string, value: string | undefined, supported: readonly string[]): FieldError[] {
  return value === undefined || supported.includes(value) ? [] : [notSupported(path, value, supported)];
}
