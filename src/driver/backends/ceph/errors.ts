/**
 * Ceph failures as gRPC statuses, in one place: what the CO sees must say what is wrong and
 * where, never just "INTERNAL: -13".
 */
import {
  AlreadyExistsError,
  CsiError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
} from '../../../csi/errors.js';
import { CephError } from './rados.js';

export interface CephErrorContext {
  clusterID: string;
  monitors: string[];
  user?: string;
}

/**
 * The CsiError for e (already a CsiError: unchanged). A connection that could not be made is
 * UNAVAILABLE naming the monitors; permission problems are PERMISSION_DENIED naming the user;
 * a full cluster (or pool quota) is RESOURCE_EXHAUSTED.
 */
export function cephToCsi(e: unknown, where: CephErrorContext): CsiError {
  if (e instanceof CsiError) return e;
  if (!(e instanceof CephError)) return new InternalError(e instanceof Error ? e.message : String(e), { cause: e });
  const cluster = `ceph cluster ${where.clusterID} (monitors ${where.monitors.join(', ')})`;
  if (e.op === 'rados_connect' && e.code === 'EINVAL') {
    return new InvalidArgumentError(
      `cannot connect to ${cluster} as client.${where.user ?? '?'}: ${e.message} (is userKey a cephx key, and is every monitor host:port?)`,
      { cause: e },
    );
  }
  // The mgr answers its modules' commands one after another, and the volumes module queues them
  // behind its cloner (../cephfs/clone-flow.ts): a late answer is a busy (or failing-over) mgr,
  // not an OSD. UNAVAILABLE, which a CO retries; the cephfs backend answers ABORTED instead where
  // it knows the operation is pending for that volume.
  if (e.code === 'ETIMEDOUT' && e.op.startsWith('mgr command')) {
    return new UnavailableError(
      `the active mgr of ${cluster} did not answer in time: ${e.message} (it is busy, e.g. with CephFS clones, or failing over: see \`ceph mgr stat\`; retry later)`,
      { cause: e },
    );
  }
  // A connected client whose operation timed out reached the monitors: what did not answer is
  // most likely an OSD (stopped, hung, or its PGs inactive). Still UNAVAILABLE: a retry may work.
  if (e.code === 'ETIMEDOUT' && e.op !== 'rados_connect') {
    return new UnavailableError(
      `${cluster} did not answer in time: ${e.message} (an OSD or monitor is not responding, or placement groups are inactive; retry later)`,
      { cause: e },
    );
  }
  switch (e.code) {
    case 'ETIMEDOUT':
    case 'ENOTCONN':
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ESHUTDOWN':
      return new UnavailableError(`cannot reach ${cluster}: ${e.message}`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new PermissionDeniedError(`${cluster} refused client.${where.user ?? '?'}: ${e.message} (check userID/userKey and the user's caps)`, { cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new ResourceExhaustedError(`${cluster} is out of space: ${e.message}`, { cause: e });
    case 'ENOENT':
      return new NotFoundError(`${e.message} on ${cluster}`, { cause: e });
    case 'EEXIST':
      return new AlreadyExistsError(`${e.message} on ${cluster}`, { cause: e });
    default:
      return new InternalError(`${e.message} on ${cluster}`, { cause: e });
  }
}
