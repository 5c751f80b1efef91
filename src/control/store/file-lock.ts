// One process at a time on a store file. SQLite's own locks allow several connections (the
// store's, and its checkpointer thread's: checkpointer.ts), so they cannot keep a second control
// plane out; an exclusive flock(2) on the database file does. flock locks belong to the open file
// and are independent of the POSIX (fcntl) locks SQLite takes on the same file, so the two do not
// interfere; the kernel drops ours when the process dies, however it dies. A second open of the
// same file, by another process or by this one, is refused.
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

type Flock = (fd: number, operation: number) => number;
let flockFn: Flock | undefined;

function flock(): Flock {
  flockFn ??= koffi.load('libc.so.6').func('int flock(int fd, int operation)') as Flock;
  return flockFn;
}

/** The file is locked by another holder: another process (or another open in this one). */
export class FileLockedError extends Error {
  constructor(readonly path: string) {
    super(`${path} is locked by another process`);
    this.name = 'FileLockedError';
  }
}

export interface FileLock {
  /** Releases the lock (idempotent). */
  release(): void;
}

/**
 * Takes an exclusive lock on the file at path (created empty if it does not exist), without
 * waiting: FileLockedError when someone holds it.
 */
export function lockFile(path: string): FileLock {
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
  if (flock()(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = koffi.errno();
    closeSync(fd);
    if (errno === osConstants.errno.EWOULDBLOCK) throw new FileLockedError(path);
    throw Object.assign(new Error(`flock ${path}: errno ${errno}`), { errno });
  }
  let held = true;
  return {
    release: () => {
      if (!held) return;
      held = false;
      flock()(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
