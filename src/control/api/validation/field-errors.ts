// Field errors as Kubernetes reports them (k8s.io/apimachinery/pkg/util/validation/field): a
// field path, a type, the offending value and a detail, rendered as
// `spec.accessModes[0]: Unsupported value: "ReadwriteOnce": supported values: "ReadOnlyMany", …`.

export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueForbidden'
  | 'FieldValueDuplicate'
  | 'FieldValueNotFound'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'FieldValueTypeInvalid';

export interface FieldError {
  /** Dotted path with [index] and [key] parts, e.g. "spec.resources.requests[storage]". */
  field: string;
  type: FieldErrorType;
  /** The offending value; absent for Required, Forbidden and TooMany errors. */
  value?: unknown;
  detail: string;
}

const TYPE_TEXT: Record<FieldErrorType, string> = {
  FieldValueRequired: 'Required value',
  FieldValueInvalid: 'Invalid value',
  FieldValueNotSupported: 'Unsupported value',
  FieldValueForbidden: 'Forbidden',
  FieldValueDuplicate: 'Duplicate value',
  FieldValueNotFound: 'Not found',
  FieldValueTooLong: 'Too long',
  FieldValueTooMany: 'Too many',
  FieldValueTypeInvalid: 'Invalid value',
};

/** Field path helpers: child("spec", "accessModes") → "spec.accessModes", index(p, 0) → "p[0]". */
export function child(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

export function index(path: string, i: number): string {
  return `${path}[${i}]`;
}

export function key(path: string, k: string): string {
  return `${path}[${k}]`;
}

export function required(field: string, detail = ''): FieldError {
  return { field, type: 'FieldValueRequired', detail };
}

export function invalid(field: string, value: unknown, detail: string): FieldError {
  return { field, type: 'FieldValueInvalid', value, detail };
}

export function typeInvalid(field: string, value: unknown, detail: string): FieldError {
  return { field, type: 'FieldValueTypeInvalid', value, detail };
}

export function notSupported(field: string, value: unknown, supported: readonly string[]): FieldError {
  const detail = supported.length === 0 ? '' : `supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`;
  return { field, type: 'FieldValueNotSupported', value, detail };
}

export function forbidden(field: string, detail: string): FieldError {
  return { field, type: 'FieldValueForbidden', detail };
}

export function duplicate(field: string, value: unknown): FieldError {
  return { field, type: 'FieldValueDuplicate', value, detail: '' };
}

export function notFound(field: string, value: unknown): FieldError {
  return { field, type: 'FieldValueNotFound', value, detail: '' };
}

export function tooLong(field: string, maxLength: number): FieldError {
  return { field, type: 'FieldValueTooLong', detail: `must have at most ${maxLength} bytes` };
}

export function tooMany(field: string, max: number): FieldError {
  return { field, type: 'FieldValueTooMany', detail: `must have at most ${max} items` };
}

/** The value as Go's %q / %d / %v would print it in a field error. */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value) ?? 'undefined';
}

/** The message without the field path (a Status cause's message). */
export function errorBody(e: FieldError): string {
  const withValue = !['FieldValueRequired', 'FieldValueForbidden', 'FieldValueTooLong', 'FieldValueTooMany'].includes(e.type) && 'value' in e;
  let text = TYPE_TEXT[e.type];
  if (withValue) text += `: ${formatValue(e.value)}`;
  if (e.detail !== '') text += `: ${e.detail}`;
  return text;
}

/** The full message, e.g. `spec.resources.requests[storage]: Required value`. */
export function errorMessage(e: FieldError): string {
  return `${e.field}: ${errorBody(e)}`;
}
