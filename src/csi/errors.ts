// Typed CSI errors. Driver code throws these; toGrpcStatus() is the single
// place where an error becomes a gRPC status, and fromServiceError() turns a
// status received by a client back into the same class, so both sides can
// use `instanceof` instead of comparing numeric codes.
import { status, type ServiceError } from '@grpc/grpc-js';

/** An error that carries the gRPC status code it must be reported with. */
export class CsiError extends Error {
  readonly code: status;

  constructor(code: status, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.INVALID_ARGUMENT, message, options);
  }
}

export class NotFoundError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.NOT_FOUND, message, options);
  }
}

export class AlreadyExistsError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.ALREADY_EXISTS, message, options);
  }
}

export class FailedPreconditionError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.FAILED_PRECONDITION, message, options);
  }
}

export class OutOfRangeError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.OUT_OF_RANGE, message, options);
  }
}

export class AbortedError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.ABORTED, message, options);
  }
}

export class ResourceExhaustedError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.RESOURCE_EXHAUSTED, message, options);
  }
}

export class UnavailableError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.UNAVAILABLE, message, options);
  }
}

export class InternalError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.INTERNAL, message, options);
  }
}

export class UnimplementedError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.UNIMPLEMENTED, message, options);
  }
}

export class PermissionDeniedError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.PERMISSION_DENIED, message, options);
  }
}

export class DeadlineExceededError extends CsiError {
  constructor(message: string, options?: ErrorOptions) {
    super(status.DEADLINE_EXCEEDED, message, options);
  }
}

type ErrorClass = new (message: string, options?: ErrorOptions) => CsiError;

const CLASS_BY_CODE: ReadonlyMap<status, ErrorClass> = new Map<status, ErrorClass>([
  [status.INVALID_ARGUMENT, InvalidArgumentError],
  [status.NOT_FOUND, NotFoundError],
  [status.ALREADY_EXISTS, AlreadyExistsError],
  [status.FAILED_PRECONDITION, FailedPreconditionError],
  [status.OUT_OF_RANGE, OutOfRangeError],
  [status.ABORTED, AbortedError],
  [status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
  [status.UNAVAILABLE, UnavailableError],
  [status.INTERNAL, InternalError],
  [status.UNIMPLEMENTED, UnimplementedError],
  [status.PERMISSION_DENIED, PermissionDeniedError],
  [status.DEADLINE_EXCEEDED, DeadlineExceededError],
]);

export interface GrpcStatus {
  code: status;
  details: string;
}

/**
 * The status a failed call reports. CsiErrors keep their code and message;
 * anything else is a bug or an unexpected failure and becomes INTERNAL.
 */
export function toGrpcStatus(err: unknown): GrpcStatus {
  if (err instanceof CsiError) return { code: err.code, details: err.message };
  if (err instanceof Error) return { code: status.INTERNAL, details: err.message };
  return { code: status.INTERNAL, details: String(err) };
}

/**
 * The typed error for a status received by a gRPC client. The message is the
 * server's status details (not grpc-js's "3 INVALID_ARGUMENT: ..." text); the
 * original error is kept as `cause`. Codes without a dedicated class (e.g.
 * CANCELLED, UNAUTHENTICATED) become a plain CsiError with that code.
 */
export function fromServiceError(e: ServiceError): CsiError {
  const Class = CLASS_BY_CODE.get(e.code);
  const message = e.details || e.message;
  return Class ? new Class(message, { cause: e }) : new CsiError(e.code, message, { cause: e });
}
