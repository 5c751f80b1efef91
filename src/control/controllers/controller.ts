// The controller loop: workers take keys off a WorkQueue and call a sync function that makes the
// world match the object's current state (level-triggered: it is told only a key, never what
// changed, so running it again is always safe). A sync that throws is retried with per-key
// exponential backoff; one that succeeds resets the backoff.
import type { Logger } from 'pino';
import { ConflictError } from '../store/errors.js';
import { type RateLimiterOptions, WorkQueue } from './work-queue.js';

/** What a sync may return instead of throwing. */
export interface SyncResult {
  /** Retry with backoff, without logging an error (e.g. "waiting for X"). */
  requeue?: boolean;
  /** Check again after this many ms (backoff reset). */
  requeueAfterMs?: number;
}

export type SyncFunction = (key: string, signal: AbortSignal) => Promise<SyncResult | void> | SyncResult | void;

export interface ControllerLoopOptions extends RateLimiterOptions {
  name: string;
  /** Concurrent workers; each works on a different key. Default 1. */
  workers?: number;
  logger: Logger;
  sync: SyncFunction;
}

export class ControllerLoop {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly workers: number;
  private readonly log: Logger;
  private readonly sync: SyncFunction;
  private readonly abort = new AbortController();
  private running: Promise<void>[] = [];
  /** Keys being synced now, for tests and shutdown. */
  private active = 0;

  constructor(options: ControllerLoopOptions) {
    this.name = options.name;
    this.queue = new WorkQueue(options);
    this.workers = Math.max(1, options.workers ?? 1);
    this.log = options.logger.child({ controller: options.name });
    this.sync = options.sync;
  }

  get logger(): Logger {
    return this.log;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Whether nothing is queued or being synced (timers for later retries may still be pending). */
  get idle(): boolean {
    return this.active === 0 && this.queue.length === 0;
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
      try {
        await this.process(key);
      } finally {
        this.active--;
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.sync(key, this.abort.signal);
      if (result?.requeue) {
        this.queue.addRateLimited(key);
      } else {
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      }
    } catch (err) {
      if (this.queue.isShuttingDown) return;
      const delay = this.queue.addRateLimited(key);
      // A conflict only means another writer got there first: retry quietly.
      if (err instanceof ConflictError) this.log.debug({ key, retryInMs: delay }, 'conflict; retrying');
      else this.log.warn({ key, err, retryInMs: delay, attempts: this.queue.numRequeues(key) }, 'sync failed; retrying');
    }
  }
}
