// Durability off the event loop. With synchronous=FULL, SQLite's COMMIT writes the transaction's
// frames to the WAL and then fsyncs it, on the calling thread: the store's one thread waited for
// the disk at every group commit (a sixth of its time in bench/scheduler-bench.ts at 5000 nodes,
// most of it in the sync, because the checkpoint thread syncs the database file at the same time).
//
// Here the store's connection commits with synchronous=NORMAL (SQLite writes the frames, no
// sync), and this class makes them durable with fdatasync on libuv's thread pool, then reports the
// revision that is now durable. A write is acknowledged (Store.flushed()) only after that, so what
// an acknowledged write survives is unchanged: kill -9 (the frames are in the page cache) and
// power loss (they are on disk). A commit that was not synced yet when the power went is lost,
// whole: the WAL's frames carry cumulative checksums and recovery stops at the first one that does
// not match, so the database comes back at the last transaction that reached the disk, as with
// FULL when the crash comes before COMMIT returns. Checkpoints still sync the WAL before copying it.
//
// One sync at a time: commits made while one runs are covered by the next, which starts as soon as
// it ends (group commit on the sync as well). The WAL file is opened once, read-only (fdatasync
// needs no write access); SQLite keeps the same file while its connection is open (a checkpoint
// rewinds it, never replaces it) and deletes it only when the last connection closes, after
// close() here.
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

/** The two system calls, replaceable to inject faults in tests. */
export interface SyncCalls {
  fdatasync(fd: number, callback: (err: NodeJS.ErrnoException | null) => void): void;
  fdatasyncSync(fd: number): void;
}

const SYSTEM: SyncCalls = { fdatasync, fdatasyncSync };

export class WalSync {
  private fd: number | undefined;
  private inFlight = false;
  private closed = false;
  /** The highest revision committed to the WAL, and the highest known to be on disk. */
  private written: number;
  private synced: number;

  constructor(
    private readonly walPath: string,
    revision: number,
    /** Revisions up to rv are durable (called in increasing order). */
    private readonly durable: (rv: number) => void,
    /** A sync failed: what was written since the last one may not be on disk. */
    private readonly failed: (err: Error) => void,
    private readonly calls: SyncCalls = SYSTEM,
  ) {
    this.written = revision;
    this.synced = revision;
  }

  /**
   * Revisions up to rv are committed (in the WAL, not yet synced): starts a sync unless one runs,
   * or, with `later`, leaves it to the caller's syncNow().
   */
  committed(rv: number, later = false): void {
    this.written = Math.max(this.written, rv);
    if (!later) this.start();
  }

  /** Syncs now, on this thread (opening, closing, flushSync()); throws if the sync fails. */
  syncNow(): void {
    if (this.closed || this.written <= this.synced) return;
    const target = this.written;
    this.calls.fdatasyncSync(this.open());
    this.advance(target);
  }

  /** No more syncs; the file is closed once a sync in progress has ended. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.inFlight) this.closeFile();
  }

  private start(): void {
    if (this.inFlight || this.closed || this.written <= this.synced) return;
    const target = this.written;
    let fd: number;
    try {
      fd = this.open();
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    this.inFlight = true;
    this.calls.fdatasync(fd, (err) => {
      this.inFlight = false;
      if (this.closed) {
        this.closeFile();
        return;
      }
      if (err !== null) {
        this.failed(err);
        return;
      }
      this.advance(target);
      this.start();
    });
  }

  private advance(target: number): void {
    if (target <= this.synced) return;
    this.synced = target;
    this.durable(target);
  }

  private open(): number {
    this.fd ??= openSync(this.walPath, 'r');
    return this.fd;
  }

  private closeFile(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch {
      // Nothing was written through it: a failed close loses nothing (and is not retried: the
      // number may already belong to another file).
    }
  }
}
