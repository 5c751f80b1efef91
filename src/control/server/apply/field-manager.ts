// Server-side apply and managedFields at the HTTP edge: the fieldManager and force options of a
// write (checked as kube-apiserver's ValidatePatchOptions / ValidateFieldManager do), the manager
// of an Update (fieldManager, else the User-Agent's program name), the hook that records every
// create, update and non-apply patch in metadata.managedFields, and the apply request itself
// (application/apply-patch+yaml: creates the object when it does not exist).
import type { ResourceInfo } from '../../api/registry.js';
import type { KubeObject } from '../../api/types/meta.js';
import { errorBody, errorMessage, type FieldError, forbidden, invalid, required, tooLong } from '../../api/validation/field-errors.js';
import { ApiError, BadRequestError, InternalError, NotFoundError } from '../../store/errors.js';
import type { Store } from '../../store/store.js';
import { boolParam } from '../query.js';
import { type ListTypes, SCHEMA_LIST_TYPES } from './list-types.js';
import { decodeManagedFields, encodeManagedFields, type Managed, ManagedFieldsError } from './managed-fields.js';
import { checkNoDuplicates, DuplicateKeyError } from './typed-value.js';
import { apply, recordUpdate, type Scope } from './updater.js';

export const APPLY_PATCH = 'application/apply-patch+yaml';

/** Where apply learns which lists are keyed, sets or atomic (the one line to point at the kinds' own schema annotations). */
const listTypes: ListTypes = SCHEMA_LIST_TYPES;

const MAX_MANAGER_LENGTH = 128;
type OptionsKind = 'CreateOptions' | 'UpdateOptions' | 'PatchOptions';

/** 422 on the request's options, as NewInvalid words it for meta.k8s.io kinds. */
class InvalidOptionsError extends ApiError {
  constructor(kind: OptionsKind, causes: readonly FieldError[]) {
    const list = causes.map(errorMessage);
    super(422, 'Invalid', `${kind}.meta.k8s.io "" is invalid: ${list.length === 1 ? list[0] : `[${list.join(', ')}]`}`, {
      name: '',
      group: 'meta.k8s.io',
      kind,
      causes: causes.map((c) => ({ reason: c.type, message: errorBody(c), field: c.field })),
    });
  }
}

/** Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

function managerErrors(manager: string): FieldError[] {
  const errs: FieldError[] = [];
  if (Buffer.byteLength(manager) > MAX_MANAGER_LENGTH) errs.push(tooLong('fieldManager', MAX_MANAGER_LENGTH));
  let position = 0;
  for (const ch of manager) {
    if (!PRINTABLE.test(ch)) {
      const code = (ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
      errs.push(invalid('fieldManager', manager, `invalid character U+${code} (at position ${position})`));
    }
    position += Buffer.byteLength(ch);
  }
  return errs;
}

/** The program name of a User-Agent ("kubectl/v1.32.0 (linux/amd64) …" → "kubectl"), upstream's default manager. */
export function managerFromUserAgent(userAgent: string | undefined): string {
  return (userAgent ?? '').split('/')[0] ?? '';
}

/**
 * The manager of a create, update or non-apply patch: ?fieldManager, else the User-Agent's program
 * name. `force` is for apply only.
 */
export function updateManager(kind: OptionsKind, query: URLSearchParams, userAgent: string | undefined): string {
  const given = query.get('fieldManager') ?? '';
  const errs = managerErrors(given);
  if (kind === 'PatchOptions' && query.has('force')) errs.unshift(forbidden('force', 'may not be specified for non-apply patch'));
  if (errs.length > 0) throw new InvalidOptionsError(kind, errs);
  return given || managerFromUserAgent(userAgent);
}

function scopeOf(resource: ResourceInfo, subresource: string | undefined): Scope {
  return { resource, listTypes, ...(subresource ? { subresource } : {}) };
}

/** The request's own managedFields when they should replace the live ones (upstream's decodeLiveOrNew). */
function managedForUpdate(next: KubeObject, old: KubeObject | undefined, subresource: string | undefined): Managed {
  const live = (): Managed => {
    try {
      return decodeManagedFields(old?.metadata.managedFields);
    } catch {
      return new Map();
    }
  };
  if (subresource) return live();
  const given = next.metadata.managedFields;
  // [] (or one empty entry) clears ownership; anything that does not decode is ignored.
  if (Array.isArray(given) && (given.length === 0 || (given.length === 1 && isEmptyEntry(given[0])))) return new Map();
  try {
    const managed = decodeManagedFields(given);
    return managed.size > 0 ? managed : live();
  } catch {
    return live();
  }
}

function isEmptyEntry(entry: unknown): boolean {
  return entry !== null && typeof entry === 'object' && Object.keys(entry).length === 0;
}

function store(obj: KubeObject, managed: Managed): void {
  const entries = encodeManagedFields(managed);
  if (entries.length > 0) obj.metadata.managedFields = entries;
  else delete obj.metadata.managedFields;
}

/** The Store hook that records a create or update by `manager` in the object's managedFields. */
export function trackUpdate(resource: ResourceInfo, manager: string, subresource?: string): (next: KubeObject, old: KubeObject | undefined) => void {
  return (next, old) => {
    const managed = managedForUpdate(next, old, subresource);
    recordUpdate(scopeOf(resource, subresource), { manager, apiVersion: resource.apiVersion }, old, next, managed);
    store(next, managed);
  };
}

export interface ApplyTarget {
  resource: ResourceInfo;
  namespace: string | undefined;
  name: string;
  subresource?: 'status';
  /** dryRun=All: everything runs, nothing is stored. */
  dryRun?: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The apply configuration, checked as kube-apiserver checks it, cut to what the endpoint writes. */
function configOf(target: ApplyTarget, body: unknown): KubeObject {
  const { resource } = target;
  if (!isRecord(body)) throw new BadRequestError('error decoding YAML: the apply configuration must be an object');
  const metadata = body.metadata ?? {};
  if (!isRecord(metadata)) throw new BadRequestError('error decoding YAML: metadata must be an object');
  if (metadata.managedFields !== undefined && metadata.managedFields !== null) throw new BadRequestError('metadata.managedFields must be nil');
  if (body.apiVersion !== resource.apiVersion) {
    throw new BadRequestError(`Incorrect version specified in apply patch. Specified patch version: ${String(body.apiVersion ?? '')}, expected: ${resource.apiVersion}`);
  }
  if (body.kind !== resource.kind) throw new BadRequestError(`the kind in the apply configuration (${String(body.kind ?? '')}) does not match the URL's ${resource.kind}`);
  if (metadata.name !== undefined && metadata.name !== target.name) {
    throw new BadRequestError(`the name of the object (${String(metadata.name)}) does not match the name on the URL (${target.name})`);
  }
  if (target.namespace !== undefined && metadata.namespace !== undefined && metadata.namespace !== target.namespace) {
    throw new BadRequestError('the namespace of the provided object does not match the namespace sent on the request');
  }
  const config = { ...body, metadata: { ...metadata, name: target.name, ...(target.namespace === undefined ? {} : { namespace: target.namespace }) } } as KubeObject &
    Record<string, unknown>;
  if (target.subresource === 'status') {
    return { apiVersion: config.apiVersion, kind: config.kind, metadata: { name: target.name, ...(target.namespace === undefined ? {} : { namespace: target.namespace }) }, ...(config.status === undefined ? {} : { status: config.status }) } as KubeObject;
  }
  if (resource.hasStatus) delete config.status;
  return config;
}

/** PATCH application/apply-patch+yaml: the object applied (and created when new: 201). */
export function applyPatch(db: Store, target: ApplyTarget, body: unknown, query: URLSearchParams): { code: number; object: KubeObject } {
  const manager = query.get('fieldManager') ?? '';
  const errs = [...(manager === '' ? [required('fieldManager', 'is required for apply patch')] : []), ...managerErrors(manager)];
  if (errs.length > 0) throw new InvalidOptionsError('PatchOptions', errs);
  const force = boolParam(query, 'force');
  const { resource, subresource } = target;
  const config = configOf(target, body);
  const live = db.get(resource.plural, target.namespace, target.name);
  if (live === undefined && subresource !== undefined) throw new NotFoundError(resource, target.name);
  let managed: Managed;
  try {
    managed = decodeManagedFields(live?.metadata.managedFields);
  } catch (err) {
    if (err instanceof ManagedFieldsError) throw new InternalError(`failed to decode managed fields: ${err.message}`);
    throw err;
  }
  const scope = scopeOf(resource, subresource);
  try {
    checkNoDuplicates(scope, config);
  } catch (err) {
    if (err instanceof DuplicateKeyError) throw new BadRequestError(`failed to create typed patch object (${resource.group}/${resource.version}, Kind=${resource.kind}): ${err.message}`);
    throw err;
  }
  const merged = apply(scope, { manager, apiVersion: resource.apiVersion }, live, config, managed, force);
  store(merged, managed);
  const keep = (next: KubeObject): void => store(next, managed);
  const dryRun = target.dryRun === true;
  if (live === undefined) return { code: 201, object: db.create(merged, { manageFields: keep, dryRun }) };
  return { code: 200, object: db.update(merged, { ...(subresource ? { subresource } : {}), manageFields: keep, dryRun }) };
}
