// ObjectMeta rules every kind shares (Kubernetes' ValidateObjectMeta and ValidateObjectMetaUpdate).
import type { ObjectMeta } from '../types/meta.js';
import { forbidden, type FieldError, invalid, required, tooLong } from './field-errors.js';
import { validateLabel, validateLabels, validateQualifiedName } from './common.js';
import { isQualifiedName } from './names.js';

const MAX_ANNOTATIONS_BYTES = 256 * 1024;
const STANDARD_FINALIZERS = new Set(['kubernetes', 'orphan', 'foregroundDeletion']);

export interface MetaRules {
  namespaced: boolean;
  /** The name format of the kind (a subdomain for most, a label for namespaces). */
  nameCheck: (name: string) => string[];
}

function validateFinalizers(finalizers: readonly string[]): FieldError[] {
  const path = 'metadata.finalizers';
  const errs = finalizers.flatMap((f) => {
    const format = validateQualifiedName(path, f);
    if (format.length > 0) return format;
    return f.includes('/') || STANDARD_FINALIZERS.has(f) ? [] : [invalid(path, f, 'name is neither a standard finalizer name nor is it fully qualified')];
  });
  if (finalizers.includes('orphan') && finalizers.includes('foregroundDeletion')) {
    errs.push(invalid(path, finalizers, 'finalizer orphan and foregroundDeletion cannot be both set'));
  }
  return errs;
}

function validateOwnerReferences(meta: ObjectMeta): FieldError[] {
  const refs = meta.ownerReferences ?? [];
  const path = 'metadata.ownerReferences';
  const errs = refs.flatMap((ref) => [
    ...(ref.apiVersion ? [] : [invalid(`${path}.apiVersion`, ref.apiVersion ?? '', 'version must not be empty')]),
    ...(ref.kind ? [] : [invalid(`${path}.kind`, ref.kind ?? '', 'kind must not be empty')]),
    ...(ref.name ? [] : [invalid(`${path}.name`, ref.name ?? '', 'name must not be empty')]),
    ...(ref.uid ? [] : [invalid(`${path}.uid`, ref.uid ?? '', 'uid must not be empty')]),
  ]);
  const controllers = refs.filter((r) => r.controller === true);
  if (controllers.length > 1) {
    const names = controllers.map((r) => `${r.kind}/${r.name}`).join(', ');
    errs.push(invalid(path, refs, `Only one reference can have Controller set to true. Found "true" in references for ${names}`));
  }
  return errs;
}

export function validateObjectMeta(meta: ObjectMeta, rules: MetaRules): FieldError[] {
  const errs: FieldError[] = [];
  if (!meta.name) errs.push(required('metadata.name', 'name or generateName is required'));
  else errs.push(...rules.nameCheck(meta.name).map((m) => invalid('metadata.name', meta.name, m)));
  if (rules.namespaced) {
    if (!meta.namespace) errs.push(required('metadata.namespace'));
    else errs.push(...validateLabel('metadata.namespace', meta.namespace));
  } else if (meta.namespace) {
    errs.push(forbidden('metadata.namespace', 'not allowed on this type'));
  }
  errs.push(...validateLabels('metadata.labels', meta.labels));
  const annotations = meta.annotations ?? {};
  let annotationBytes = 0;
  for (const [k, v] of Object.entries(annotations)) {
    errs.push(...isQualifiedName(k.toLowerCase()).map((m) => invalid('metadata.annotations', k, m)));
    annotationBytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (annotationBytes > MAX_ANNOTATIONS_BYTES) errs.push(tooLong('metadata.annotations', MAX_ANNOTATIONS_BYTES));
  errs.push(...validateFinalizers(meta.finalizers ?? []));
  errs.push(...validateOwnerReferences(meta));
  return errs;
}

/** Identity fields never change; a terminating object accepts no new finalizers. */
export function validateObjectMetaUpdate(meta: ObjectMeta, old: ObjectMeta): FieldError[] {
  const errs: FieldError[] = [];
  for (const field of ['name', 'namespace', 'uid'] as const) {
    if ((meta[field] ?? '') !== (old[field] ?? '')) errs.push(invalid(`metadata.${field}`, meta[field] ?? '', 'field is immutable'));
  }
  if (old.deletionTimestamp !== undefined) {
    const added = (meta.finalizers ?? []).filter((f) => !(old.finalizers ?? []).includes(f));
    if (added.length > 0) {
      errs.push(forbidden('metadata.finalizers', `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`));
    }
  }
  return errs;
}
