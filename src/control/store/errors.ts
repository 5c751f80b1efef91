// Typed API errors. The store and the HTTP server throw these; toStatus() is the one place an
// error becomes a Kubernetes Status, with the HTTP code, reason and details clients (kubectl,
// client-go) key on. Messages follow the API server's wording.
import type { ResourceInfo } from '../api/registry.js';
import type { Status, StatusDetails } from '../api/types/meta.js';
import { errorBody, errorMessage, type FieldError } from '../api/validation/field-errors.js';

export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Expired'
  | 'RequestEntityTooLarge'
  | 'UnsupportedMediaType'
  | 'NotAcceptable'
  | 'Timeout'
  | 'TooManyRequests'
  | 'Invalid'
  | 'InternalError'
  | 'ServiceUnavailable';

export class ApiError extends Error {
  readonly code: number;
  readonly reason: StatusReason;
  readonly details: StatusDetails | undefined;
  /** A continue token the Status carries in its metadata (a 410 for a compacted list continue). */
  listContinue: string | undefined;

  constructor(code: number, reason: StatusReason, message: string, details?: StatusDetails) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

/** Details naming an object the way Kubernetes does: kind is the resource (plural). */
function objectDetails(resource: ResourceInfo, name: string): StatusDetails {
  return { name, ...(resource.group === '' ? {} : { group: resource.group }), kind: resource.plural };
}

/** `persistentvolumeclaims "x"`, or `storageclasses.storage.k8s.io "x"` outside the core group. */
function qualified(resource: ResourceInfo, name: string): string {
  return `${resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`} "${name}"`;
}

export class BadRequestError extends ApiError {
  constructor(message: string) {
    super(400, 'BadRequest', message);
  }
}

export class UnauthorizedError extends ApiError {
  constructor() {
    super(401, 'Unauthorized', 'Unauthorized');
  }
}

export class ForbiddenError extends ApiError {
  constructor(resource: ResourceInfo, name: string, why: string) {
    super(403, 'Forbidden', `${qualified(resource, name)} is forbidden: ${why}`, objectDetails(resource, name));
  }
}

export class NotFoundError extends ApiError {
  constructor(resource: ResourceInfo, name: string) {
    super(404, 'NotFound', `${qualified(resource, name)} not found`, objectDetails(resource, name));
  }
}

/** A URL that names no resource at all. */
export class NoResourceError extends ApiError {
  constructor() {
    super(404, 'NotFound', 'the server could not find the requested resource');
  }
}

export class MethodNotAllowedError extends ApiError {
  constructor(method: string, what: string) {
    super(405, 'MethodNotAllowed', `${method} is not supported on ${what}`);
  }
}

export class AlreadyExistsError extends ApiError {
  constructor(resource: ResourceInfo, name: string) {
    super(409, 'AlreadyExists', `${qualified(resource, name)} already exists`, objectDetails(resource, name));
  }
}

export class ConflictError extends ApiError {
  static readonly MODIFIED = 'the object has been modified; please apply your changes to the latest version and try again';

  constructor(resource: ResourceInfo, name: string, why: string = ConflictError.MODIFIED) {
    super(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(resource, name)}: ${why}`, objectDetails(resource, name));
  }
}

/** A watch (or list) from a resourceVersion older than the retained event log. */
export class ExpiredError extends ApiError {
  constructor(requested: number, oldest: number) {
    super(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
  }
}

export class RequestEntityTooLargeError extends ApiError {
  constructor(limit: number) {
    super(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);
  }
}

export class UnsupportedMediaTypeError extends ApiError {
  constructor(contentType: string, supported: readonly string[]) {
    super(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${supported.join(', ')} (got "${contentType}")`);
  }
}

/** A response in none of the media types the client accepts (kube-apiserver's NewNotAcceptableError). */
export class NotAcceptableError extends ApiError {
  constructor(supported: readonly string[]) {
    super(406, 'NotAcceptable', `only the following media types are accepted: ${supported.join(', ')}`);
  }
}

/** 429 (errors.NewTooManyRequests): try again later; retryAfterSeconds > 0 also becomes a Retry-After header. */
export class TooManyRequestsError extends ApiError {
  constructor(message: string, retryAfterSeconds: number, causes: { type: string; message: string }[] = []) {
    super(429, 'TooManyRequests', message, { ...(causes.length > 0 ? { causes: causes.map((c) => ({ reason: c.type, message: c.message })) } : {}), ...(retryAfterSeconds > 0 ? { retryAfterSeconds } : {}) });
  }
}

/** A list at a resourceVersion the store has not reached (storage.NewTooLargeResourceVersionError). */
export class TooLargeResourceVersionError extends ApiError {
  constructor(requested: number, current: number) {
    super(504, 'Timeout', `Too large resource version: ${requested}, current: ${current}`, {
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      retryAfterSeconds: 1,
    });
  }
}

export class InvalidError extends ApiError {
  readonly causes: readonly FieldError[];

  constructor(kind: string, group: string, name: string, causes: readonly FieldError[]) {
    const list = causes.map(errorMessage);
    const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
    super(422, 'Invalid', `${kind} "${name}" is invalid: ${summary}`, {
      name,
      ...(group === '' ? {} : { group }),
      kind,
      causes: causes.map((c) => ({ reason: c.type, message: errorBody(c), field: c.field })),
    });
    this.causes = causes;
  }
}

export class InternalError extends ApiError {
  constructor(message: string) {
    super(500, 'InternalError', `Internal error occurred: ${message}`);
  }
}

/**
 * A write refused because the store's disk has no room for it (see Store: the free space is
 * checked before a write becomes visible to anyone). Nothing was written; reads still work, and
 * writes resume by themselves once space is freed, so it is a 503 a client may retry.
 */
export class DiskFullError extends ApiError {
  constructor(dir: string, free: number, needed: number) {
    super(503, 'ServiceUnavailable', `the store's disk is full: ${free} bytes free in ${dir}, a write needs ${needed}; writes resume once space is freed (reads are served)`);
  }
}

/**
 * The store could not commit (disk full, I/O error…) and has stopped: writes that in-process
 * observers already saw are lost, so nothing more is served until the process restarts.
 */
export class StoreFailedError extends ApiError {
  constructor(cause: unknown) {
    super(500, 'InternalError', `Internal error occurred: the store failed to commit and stopped serving (restart to recover): ${cause instanceof Error ? cause.message : String(cause)}`);
    this.cause = cause;
  }
}

/** The Kubernetes Status for any thrown value; anything not an ApiError is a 500. */
export function toStatus(err: unknown): Status {
  const e = err instanceof ApiError ? err : new InternalError(err instanceof Error ? err.message : String(err));
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: e.listContinue === undefined ? {} : { continue: e.listContinue },
    status: 'Failure',
    message: e.message,
    reason: e.reason,
    ...(e.details === undefined ? {} : { details: e.details }),
    code: e.code,
  };
}
