// The query parameters every write takes, read as kube-apiserver reads them: ?dryRun (only "All",
// repeatable) and ?fieldValidation (Ignore, Warn, Strict). A value outside those is refused the
// way the API server refuses an invalid CreateOptions/UpdateOptions/PatchOptions/DeleteOptions:
// 422 Invalid naming the options kind.
import { type FieldError, notSupported } from '../api/validation/field-errors.js';
import { InvalidError } from '../store/errors.js';

export type OptionsKind = 'CreateOptions' | 'UpdateOptions' | 'PatchOptions' | 'DeleteOptions';
export type FieldValidation = 'Ignore' | 'Warn' | 'Strict';

export interface WriteQuery {
  dryRun: boolean;
  /** Absent means Warn, kube-apiserver's default. */
  fieldValidation: FieldValidation;
}

const FIELD_VALIDATION_VALUES = ['', 'Ignore', 'Strict', 'Warn'];

/** The options of a write from its query; `bodyDryRun` is DeleteOptions.dryRun from a body. */
export function writeQuery(query: URLSearchParams, kind: OptionsKind, bodyDryRun: readonly string[] = []): WriteQuery {
  const errs: FieldError[] = [];
  const dryRun = [...bodyDryRun, ...query.getAll('dryRun')];
  if (dryRun.some((v) => v !== 'All')) errs.push(notSupported('dryRun', dryRun, ['All']));
  const fieldValidation = query.get('fieldValidation') ?? '';
  if (kind !== 'DeleteOptions' && !FIELD_VALIDATION_VALUES.includes(fieldValidation)) {
    errs.push(notSupported('fieldValidation', fieldValidation, FIELD_VALIDATION_VALUES));
  }
  if (errs.length > 0) throw new InvalidError(kind, 'meta.k8s.io', '', errs);
  return { dryRun: dryRun.length > 0, fieldValidation: fieldValidation === '' ? 'Warn' : (fieldValidation as FieldValidation) };
}
