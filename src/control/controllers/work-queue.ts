// A controller work queue in the manner of client-go's workqueue: keys, not events.
//
// - Deduplicating: a key added while it waits is queued once; a key added while it is being
//   processed is queued again only after done(), so one key is never worked on by two workers.
// - Rate-limited retries: addRateLimited(key) re-adds the key after a per-key exponential delay
//   (5 ms, 10 ms, 20 ms … capped at 1000 s, as client-go's ItemExponentialFailureRateLimiter);
//   forget(key) resets it after a success.
// - addAfter(key, ms) for timed re-checks; shutDown() wakes every waiting worker with undefined.

export interface RateLimiterOptions {
  /** First retry delay. Default 5 ms. */
  baseDelayMs?: number;
  /** Largest retry delay. Default 1000 s. */
  maxDelayMs?: number;
}

/** Per-key exponential backoff: baseDelay * 2^failures, capped. */
export class ExponentialRateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly base: number;
  private readonly max: number;

  constructor(options: RateLimiterOptions = {}) {
    this.base = options.baseDelayMs ?? 5;
    this.max = options.maxDelayMs ?? 1_000_000;
  }

  /** The delay before the next retry of key, counting this one as a failure. */
  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity long after the cap is reached; Math.min handles it.
    return Math.min(this.base * 2 ** n, this.max);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private head = 0;
  /** Keys waiting to be processed (in `queue`, or re-added while processing). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private shuttingDown = false;
  readonly limiter: ExponentialRateLimiter;

  constructor(options: RateLimiterOptions = {}) {
    this.limiter = new ExponentialRateLimiter(options);
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  /** Where a key waiting to be worked on is kept (FIFO here; a subclass may order them). */
  protected push(key: string): void {
    this.queue.push(key);
  }

  /** The next waiting key, if any. */
  protected pop(): string | undefined {
    if (this.head >= this.queue.length) return undefined;
    const key = this.queue[this.head++] as string;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return key;
  }

  /** Drops every waiting key (shutDown). */
  protected clearWaiting(): void {
    this.queue.length = 0;
    this.head = 0;
  }

  /** Keys handed out (to a waiting get() or taken by one) and not yet done(). */
  get inFlight(): number {
    return this.processing.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.push(key);
  }

  /** Adds the key after `ms` (keeping the earliest of several pending timers for one key). */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending !== undefined) {
      if (pending.at <= at) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Re-adds the key after its backoff delay (never longer than capMs, when given); returns the delay. */
  addRateLimited(key: string, capMs?: number): number {
    const delay = capMs === undefined ? this.limiter.when(key) : Math.min(this.limiter.when(key), capMs);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.limiter.numRequeues(key);
  }

  /** The next key to work on; undefined once the queue is shutting down. Call done(key) after. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.pop();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      // Re-added while being processed: now it may run again.
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** Stops handing out keys: waiting workers get undefined, timers are cancelled. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
    this.clearWaiting();
    this.dirty.clear();
  }
}
