import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  AbortedError,
  AlreadyExistsError,
  CsiError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
  fromServiceError,
  toGrpcStatus,
} from '../../src/csi/errors.js';

const classes = [
  [InvalidArgumentError, status.INVALID_ARGUMENT],
  [NotFoundError, status.NOT_FOUND],
  [AlreadyExistsError, status.ALREADY_EXISTS],
  [FailedPreconditionError, status.FAILED_PRECONDITION],
  [OutOfRangeError, status.OUT_OF_RANGE],
  [AbortedError, status.ABORTED],
  [ResourceExhaustedError, status.RESOURCE_EXHAUSTED],
  [UnavailableError, status.UNAVAILABLE],
  [InternalError, status.INTERNAL],
  [UnimplementedError, status.UNIMPLEMENTED],
  [PermissionDeniedError, status.PERMISSION_DENIED],
  [DeadlineExceededError, status.DEADLINE_EXCEEDED],
] as const;

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

describe('CSI errors', () => {
  it('each class carries its code, name and message through toGrpcStatus and back', () => {
    for (const [Class, code] of classes) {
      const err = new Class('why it failed');
      assert.ok(err instanceof CsiError && err instanceof Error);
      assert.equal(err.code, code);
      assert.equal(err.name, Class.name);
      assert.deepEqual(toGrpcStatus(err), { code, details: 'why it failed' });

      const back = fromServiceError(serviceError(code, 'why it failed'));
      assert.ok(back instanceof Class, `${status[code]} -> ${back.name}`);
      assert.equal(back.message, 'why it failed');
      assert.equal(back.code, code);
    }
  });

  it('maps anything that is not a CsiError to INTERNAL with its message', () => {
    assert.deepEqual(toGrpcStatus(new TypeError('x is undefined')), { code: status.INTERNAL, details: 'x is undefined' });
    assert.deepEqual(toGrpcStatus('plain string'), { code: status.INTERNAL, details: 'plain string' });
  });

  it('keeps codes without a class as a plain CsiError with the original as cause', () => {
    const original = serviceError(status.UNAUTHENTICATED, 'bad token');
    const err = fromServiceError(original);
    assert.equal(err.constructor, CsiError);
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(err.message, 'bad token');
    assert.equal(err.cause, original);
  });
});
