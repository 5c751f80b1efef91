// The query parameters every write takes, read as kube-apiserver reads them: ?dryRun (only "All",
// repeatable) and ?fieldValidation (Ignore, Warn, Strict). A value outside those is refused the
// way the API server refuses an invalid CreateOptions/UpdateOptions/PatchOptions/DeleteOptions:
// 422 Invalid on the options kind, e.g. `CreateOptions.meta.k8s.io "" is invalid: dryRun:
// Unsupported value: []string{"Yes"}: supported values: "All"`.
import { ApiError } from '../store/errors.js';

export type OptionsKind = 'CreateOptions' | 'UpdateOptions' | 'PatchOptions' | 'DeleteOptions';
export type FieldValidation = 'Ignore' | 'Warn' | 'Strict';

export interface WriteQuery {
  dryRun: boolean;
  /** Absent means Warn, kube-apiserver's default. */
  fieldValidation: FieldValidation;
}

const FIELD_VALIDATION_VALUES = ['', 'Ignore', 'Strict', 'Warn'];
const GROUP = 'meta.k8s.io';

interface Cause {
  field: string;
  body: string;
}

/** Go's %q of a string (for the ASCII these values are, what JSON writes). */
function quoted(value: string): string {
  return JSON.stringify(value);
}

function supported(values: readonly string[]): string {
  return `supported values: ${values.map(quoted).join(', ')}`;
}

function invalidOptions(kind: OptionsKind, causes: readonly Cause[]): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.body}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${kind}.${GROUP} "" is invalid: ${summary}`, {
    group: GROUP,
    kind,
    causes: causes.map((c) => ({ reason: 'FieldValueNotSupported', message: c.body, field: c.field })),
  });
}

/** The options of a write from its query; `bodyDryRun` is DeleteOptions.dryRun from a body. */
export function writeQuery(query: URLSearchParams, kind: OptionsKind, bodyDryRun: readonly string[] = []): WriteQuery {
  const causes: Cause[] = [];
  const dryRun = [...bodyDryRun, ...query.getAll('dryRun')];
  if (dryRun.some((v) => v !== 'All')) {
    causes.push({ field: 'dryRun', body: `Unsupported value: []string{${dryRun.map(quoted).join(', ')}}: ${supported(['All'])}` });
  }
  const fieldValidation = query.get('fieldValidation') ?? '';
  if (kind !== 'DeleteOptions' && !FIELD_VALIDATION_VALUES.includes(fieldValidation)) {
    causes.push({ field: 'fieldValidation', body: `Unsupported value: ${quoted(fieldValidation)}: ${supported(FIELD_VALIDATION_VALUES)}` });
  }
  if (causes.length > 0) throw invalidOptions(kind, causes);
  return { dryRun: dryRun.length > 0, fieldValidation: fieldValidation === '' ? 'Warn' : (fieldValidation as FieldValidation) };
}
