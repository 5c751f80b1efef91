import { writeSync } from 'node:fs';

/** How long flushSync (at exit) keeps retrying a full, non-blocking stdout before dropping lines. */
const EXIT_FLUSH_LIMIT_MS = 1_000;

/**
 * A pino destination for a daemon's stdout: the lines logged during one turn of the event loop
 * are written together, with one synchronous write(2), once the turn's callbacks have run
 * (setImmediate). Flushed synchronously at exit.
 *
 * Why not pino.destination({ sync: false }) (sonic-boom's asynchronous mode): each of its writes is
 * a trip through libuv's thread pool, and on a busy 2-core node waking a pool thread, and being
 * woken back by it, costs more CPU than the write itself; the driver's fast calls (CreateVolume of
 * a directory volume) each log two lines. Writing a few lines to a pipe or a file takes
 * microseconds. The price: if whoever reads stdout stops reading and the pipe fills up, the
 * driver waits for it, as Go CSI drivers (klog) do. A non-blocking stdout that is full is retried
 * shortly instead; a closed one (EPIPE) ends logging, like pino's own destination.
 */
export class BatchedStdout {
  private pending = '';
  /** Bytes a full non-blocking stdout did not take yet: they go out before anything pending. */
  private unwritten: Buffer | undefined;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly fd = 1) {
    process.on('exit', () => this.flushSync());
  }

  /** pino's destination contract: one formatted line (with its newline). */
  write(line: string): boolean {
    if (this.closed) return true;
    this.pending += line;
    if (!this.scheduled && this.retryTimer === undefined) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.writeOut(false);
      });
    }
    return true;
  }

  /** Writes everything pending now (pino's logger.flush() calls this). */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  flushSync(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.writeOut(true);
  }

  /** Writes the pending text; on a full non-blocking stdout, retries later (or, at exit, shortly). */
  private writeOut(waitIfFull: boolean): void {
    if ((this.pending === '' && !this.unwritten) || this.closed) return;
    let buf = this.unwritten ? Buffer.concat([this.unwritten, Buffer.from(this.pending)]) : Buffer.from(this.pending);
    this.unwritten = undefined;
    this.pending = '';
    const giveUpAt = Date.now() + EXIT_FLUSH_LIMIT_MS;
    while (buf.length > 0) {
      try {
        buf = buf.subarray(writeSync(this.fd, buf));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' && !waitIfFull) {
          // Keep the rest, ahead of anything logged meanwhile, and try again soon.
          this.unwritten = buf;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.writeOut(false);
          }, 10).unref();
          return;
        }
        if (code === 'EAGAIN' && Date.now() < giveUpAt) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
          continue;
        }
        // Nobody reads our stdout any more (EPIPE, EBADF): stop logging rather than fail calls.
        this.closed = true;
        this.pending = '';
        this.unwritten = undefined;
        return;
      }
    }
  }
}
