/**
 * The error of a librados/librbd call that returned -errno, in its own module so that what
 * builds on it (mgr-wait.ts) and what uses it (rados.ts) do not import each other.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMessage } from 'node:util';

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, no]) => [no, name]));
/**
 * Linux errnos Ceph returns that Node has no name or text for, with what they mean coming from
 * Ceph (never a bare "errno 117").
 */
const CEPH_ERRNOS = new Map<number, [name: string, text: string]>([
  [85, ['ERESTART', 'interrupted operation should be restarted']],
  [108, ['ESHUTDOWN', 'the client was shut down or blocklisted by the cluster']],
  [116, ['ESTALE', 'stale state: the object changed under the operation']],
  [117, ['EUCLEAN', 'left half-done by an interrupted client and needs cleaning up']],
  [125, ['ECANCELED', 'operation canceled']],
]);

/** A librados/librbd call that returned -errno. */
export class CephError extends Error {
  override readonly name = 'CephError';
  /** e.g. 'ENOENT'. */
  readonly code: string;

  constructor(
    /** What was being done, e.g. 'rbd_create4 csi-vol-…'. */
    readonly op: string,
    /** Positive errno. */
    readonly errno: number,
    /** What the daemon said besides the errno (mon and mgr commands: their status string). */
    readonly detail = '',
  ) {
    const known = CEPH_ERRNOS.get(errno);
    const code = ERRNO_NAMES.get(errno) ?? known?.[0] ?? `errno ${errno}`;
    const sys = getSystemErrorMessage(-errno);
    const text = sys.startsWith('Unknown') ? (known?.[1] ?? 'an error librados/librbd does not describe') : sys;
    super(`${op}: ${code} (${detail || text})`);
    this.code = code;
  }
}

export function isCephError(e: unknown, ...codes: string[]): e is CephError {
  return e instanceof CephError && (codes.length === 0 || codes.includes(e.code));
}
