// The controller loop: workers take keys off a WorkQueue and call a sync function that makes the
// world match the object's current state (level-triggered: it is told only a key, never what
// changed, so running it again is always safe). A sync that throws is retried with per-key
// exponential backoff; one that succeeds resets the backoff.
//
// A sync that could not reach a CSI driver (UNAVAILABLE: the driver is not listening yet, is
// restarting, or its socket is missing) says so with a typed outcome, `unavailable`, rather than
// by throwing: that is a normal moment of a restart, not a failure of the object. It is retried
// with the same per-key backoff, but never waits more than UNAVAILABLE_RETRY_MAX_MS, so a driver
// that comes back is used again within seconds even after a long outage.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CsiError } from '../../csi/errors.js';
import { ConflictError } from '../store/errors.js';
import { type RateLimiterOptions, WorkQueue } from './work-queue.js';

/** Longest wait between retries of a key whose driver was unavailable. */
export const UNAVAILABLE_RETRY_MAX_MS = 5_000;

/** What a sync may return instead of throwing. */
export interface SyncResult {
  /** Retry with backoff, without logging an error (e.g. "waiting for X"). */
  requeue?: boolean;
  /** Check again after this many ms (backoff reset). */
  requeueAfterMs?: number;
  /**
   * A CSI driver the sync needs could not be reached: retry with backoff capped at
   * UNAVAILABLE_RETRY_MAX_MS. Carries the driver's error for the log.
   */
  unavailable?: CsiError;
}

/**
 * The UNAVAILABLE error in err or its causes: a driver that cannot be reached (no listener, no
 * socket, connection lost). Other codes are the driver's answer and are not unavailability.
 */
export function driverUnavailable(err: unknown): CsiError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof CsiError && e.code === grpcStatus.UNAVAILABLE) return e;
  }
  return undefined;
}

export type SyncFunction = (key: string, signal: AbortSignal) => Promise<SyncResult | void> | SyncResult | void;

export interface ControllerLoopOptions extends RateLimiterOptions {
  name: string;
  /** Concurrent workers; each works on a different key. Default 1. */
  workers?: number;
  logger: Logger;
  sync: SyncFunction;
  /** The queue to take keys from (default a FIFO WorkQueue with these options' backoff). */
  queue?: WorkQueue;
  /** Called before each sync, and after it once its key is done (idle is current then). */
  beforeSync?: () => void;
  afterSync?: () => void;
}

export class ControllerLoop {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly workers: number;
  private readonly log: Logger;
  private readonly sync: SyncFunction;
  private readonly beforeSync: (() => void) | undefined;
  private readonly afterSync: (() => void) | undefined;
  private readonly abort = new AbortController();
  private running: Promise<void>[] = [];
  /** Keys being synced now, for tests and shutdown. */
  private active = 0;

  constructor(options: ControllerLoopOptions) {
    this.name = options.name;
    this.queue = options.queue ?? new WorkQueue(options);
    this.workers = Math.max(1, options.workers ?? 1);
    this.log = options.logger.child({ controller: options.name });
    this.sync = options.sync;
    this.beforeSync = options.beforeSync;
    this.afterSync = options.afterSync;
  }

  get logger(): Logger {
    return this.log;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Whether nothing is queued or being synced (timers for later retries may still be pending). */
  get idle(): boolean {
    // inFlight: a key handed to a waiting worker is not in the queue, and not yet active either.
    return this.active === 0 && this.queue.length === 0 && this.queue.inFlight === 0;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    for (let i = 0; i < this.workers; i++) this.running.push(this.worker());
  }

  /** Stops taking keys, aborts in-flight syncs' signal, and waits for them to return. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    this.abort.abort(new Error(`${this.name} controller stopping`));
    await Promise.all(this.running);
    this.running = [];
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.active++;
      this.beforeSync?.();
      try {
        await this.process(key);
      } finally {
        this.active--;
        this.queue.done(key);
        this.afterSync?.();
      }
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.sync(key, this.abort.signal);
      if (result?.unavailable !== undefined) {
        if (this.queue.isShuttingDown) return;
        const delay = this.queue.addRateLimited(key, UNAVAILABLE_RETRY_MAX_MS);
        this.log.info({ key, reason: result.unavailable.message, retryInMs: delay, attempts: this.queue.numRequeues(key) }, 'CSI driver unavailable; retrying');
      } else if (result?.requeue) {
        this.queue.addRateLimited(key);
      } else {
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      }
    } catch (err) {
      if (this.queue.isShuttingDown) return;
      // A sync that threw an unreachable driver's error is treated as if it had said so.
      const unavailable = driverUnavailable(err);
      if (unavailable !== undefined) {
        const delay = this.queue.addRateLimited(key, UNAVAILABLE_RETRY_MAX_MS);
        this.log.info({ key, reason: unavailable.message, retryInMs: delay, attempts: this.queue.numRequeues(key) }, 'CSI driver unavailable; retrying');
        return;
      }
      const delay = this.queue.addRateLimited(key);
      // A conflict only means another writer got there first: retry quietly.
      if (err instanceof ConflictError) this.log.debug({ key, retryInMs: delay }, 'conflict; retrying');
      // A driver's answer (a pool full, an argument refused) is the object's news, already an
      // event on it: its code and words, not a stack trace at every retry.
      else if (err instanceof CsiError) this.log.warn({ key, code: grpcStatus[err.code], reason: err.message, retryInMs: delay, attempts: this.queue.numRequeues(key) }, 'sync failed; retrying');
      else this.log.warn({ key, err, retryInMs: delay, attempts: this.queue.numRequeues(key) }, 'sync failed; retrying');
    }
  }
}
