// Checkpoints off the event loop. SQLite's WAL holds committed transactions until a checkpoint
// copies them into the database file; by default the committing connection does that itself
// every 1000 pages, and with synchronous=FULL each such checkpoint fsyncs the WAL and then the
// database. On the store's one thread those syncs stalled every write behind them: at 5000
// hollow nodes they were a quarter of the scheduler bench's main thread (bench/scheduler-bench.ts).
//
// A store that keeps writing (more than `commitsPerSecond` commits within a second) starts a
// worker thread with its own connection (checkpoint-worker.ts) and asks it for a PASSIVE
// checkpoint at most every `intervalMs` while there are new commits. The store's own automatic
// checkpoint then only runs past BACKSTOP_PAGES (a worker that falls behind, or whose
// checkpoints never catch up with the writer so the WAL cannot start over): that one copies
// whatever the worker has not, and lets the WAL be reused. After `idleMs` without a commit the
// thread is closed and the store checkpoints on its own again: an idle control plane keeps no
// second V8 isolate.
//
// Durability is unchanged: a commit is durable once the WAL has been fsynced after it (wal-sync.ts
// for a store on a file), whoever copies it later; the checkpointing connection syncs with FULL.
import { Worker } from 'node:worker_threads';
import type { CheckpointReport } from './checkpoint-worker.js';

/** Pages in the WAL past which the store's connection checkpoints by itself even with a worker. */
export const BACKSTOP_PAGES = 10_000;
/** SQLite's default: the store's connection checkpoints by itself every this many pages. */
export const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

export interface CheckpointThreadOptions {
  /** Commits within one second that start the thread (default 32). */
  commitsPerSecond?: number;
  /** Least time between two checkpoints asked of the thread (default 50 ms). */
  intervalMs?: number;
  /** Time without commits after which the thread is closed (default 30 s). */
  idleMs?: number;
}

/** The store's side: what the checkpointer changes on the store's own connection. */
export interface CheckpointHost {
  /** Sets the page count at which the store's connection checkpoints by itself. */
  setAutoCheckpoint(pages: number): void;
}

const CLOSE_WAIT_MS = 10_000;
const RESTART_AFTER_FAILURE_MS = 60_000;

export class Checkpointer {
  private readonly commitsPerSecond: number;
  private readonly intervalMs: number;
  private readonly idleMs: number;
  private windowStart = 0;
  private windowCommits = 0;
  private thread: CheckpointThread | undefined;
  /** A thread closed for idleness that may still have its connection open. */
  private retiring: CheckpointThread | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** No thread is started before this time (performance.now()): one failed lately. */
  private notBefore = 0;
  /** Checkpoints done by threads so far, and threads started: for tests and the bench. */
  checkpoints = 0;
  threadsStarted = 0;
  /** The last checkpoint error a thread reported (it tries again at the next commit). */
  lastError: string | undefined;

  constructor(
    private readonly path: string,
    private readonly host: CheckpointHost,
    options: CheckpointThreadOptions = {},
  ) {
    this.commitsPerSecond = Math.max(1, options.commitsPerSecond ?? 32);
    this.intervalMs = Math.max(0, options.intervalMs ?? 50);
    this.idleMs = Math.max(1, options.idleMs ?? 30_000);
  }

  /** Whether a checkpoint thread is running. */
  get running(): boolean {
    return this.thread !== undefined;
  }

  /** A transaction was committed on the store's connection. */
  committed(): void {
    if (this.closed) return;
    if (this.thread === undefined) {
      const now = performance.now();
      if (now < this.notBefore) return;
      if (now - this.windowStart >= 1000) {
        this.windowStart = now;
        this.windowCommits = 0;
      }
      if (++this.windowCommits < this.commitsPerSecond) return;
      this.start();
    }
    this.idleTimer?.refresh();
    this.thread?.dirty();
  }

  private start(): void {
    const thread = new CheckpointThread(this.path, this.intervalMs, (report) => {
      if (report.error !== undefined) this.lastError = report.error;
      else if (report.log >= 0) this.checkpoints++;
    });
    this.thread = thread;
    this.threadsStarted++;
    this.host.setAutoCheckpoint(BACKSTOP_PAGES);
    this.idleTimer = setTimeout(() => this.stopIdle(), this.idleMs);
    this.idleTimer.unref();
    thread.onExit = () => {
      // Gone without being asked (it failed): the store checkpoints by itself again.
      if (this.thread !== thread) return;
      this.thread = undefined;
      this.clearIdle();
      // Not again for a while: a thread that cannot run would otherwise be started every second.
      this.notBefore = performance.now() + RESTART_AFTER_FAILURE_MS;
      if (!this.closed) this.host.setAutoCheckpoint(DEFAULT_AUTOCHECKPOINT_PAGES);
    };
  }

  private stopIdle(): void {
    this.idleTimer = undefined;
    const thread = this.thread;
    if (thread === undefined || this.closed) return;
    this.thread = undefined;
    this.host.setAutoCheckpoint(DEFAULT_AUTOCHECKPOINT_PAGES);
    thread.close();
    this.retiring = thread;
    this.windowCommits = 0;
  }

  private clearIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /**
   * Closes the thread's connection and waits (synchronously, a bounded time) until it is closed,
   * so that the store's connection, closed next, is the last one: it then checkpoints everything
   * and removes the WAL and shared-memory files.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearIdle();
    for (const thread of [this.thread, this.retiring]) {
      thread?.close();
      thread?.waitClosed(CLOSE_WAIT_MS);
    }
    this.thread = undefined;
    this.retiring = undefined;
  }
}

/** One worker thread and the state of its requests. */
class CheckpointThread {
  private readonly worker: Worker;
  private readonly state = new Int32Array(new SharedArrayBuffer(4));
  private asked = false;
  private pending = false;
  private lastAsked = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  onExit: (() => void) | undefined;

  constructor(
    path: string,
    private readonly intervalMs: number,
    private readonly onReport: (report: CheckpointReport) => void,
  ) {
    // No inherited flags: the process's own (--input-type with -e, say) may not suit a worker,
    // and this one needs none.
    this.worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData: { path, state: this.state }, execArgv: [] });
    this.worker.unref();
    this.worker.on('message', (report: CheckpointReport) => {
      this.asked = false;
      this.onReport(report);
      this.ask();
    });
    // A thread that fails is not the store's failure: its commits are durable, the store's own
    // connection checkpoints them (onExit).
    this.worker.on('error', (err) => this.onReport({ log: -1, checkpointed: -1, error: err.message }));
    this.worker.on('exit', () => {
      Atomics.store(this.state, 0, 1);
      this.onExit?.();
    });
  }

  /** There are commits the database file does not have yet. */
  dirty(): void {
    this.pending = true;
    this.ask();
  }

  private ask(): void {
    if (this.closing || this.asked || !this.pending || this.timer !== undefined) return;
    const wait = this.lastAsked + this.intervalMs - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.ask();
      }, wait);
      this.timer.unref();
      return;
    }
    this.pending = false;
    this.asked = true;
    this.lastAsked = performance.now();
    this.worker.postMessage('checkpoint');
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.worker.postMessage('close');
  }

  /** Blocks until the thread has closed its connection (or exited), at most timeoutMs. */
  waitClosed(timeoutMs: number): void {
    if (Atomics.wait(this.state, 0, 0, timeoutMs) === 'timed-out') void this.worker.terminate();
  }
}
