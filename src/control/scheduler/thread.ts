// The scheduler on a thread of its own, as kube-scheduler is a process of its own beside the API
// server. Why: the control plane's event loop runs the store, the API server and every controller;
// with the scheduler on it too, scheduling and everything else took turns on one core while the
// machine's other cores idled (bench/scheduler-bench.ts measured the loop 93-99 % busy at 1.2 of 2
// cores). On its thread the scheduler's filters and scores run beside the store's work.
//
// The thread (thread-worker.ts) has what kube-scheduler has: informers over a copy of the objects it
// reads (SCHEDULER_THREAD_RESOURCES), kept by the store's own feed of its changes (Store.watchRows:
// the stored text, parsed on the scheduler's thread, not here), and a client whose writes (the
// binding, selected-node, PodScheduled, preemption's evictions) are sent here and made on the store,
// answered with their error if they fail. Events are recorded here, by the control plane's
// broadcaster. Its log lines come here and go to the control plane's logger.
//
// The scheduler there works from its copy, which lags the store by a turn of this loop at most: a
// write made from an older copy fails with a conflict and the pod is tried again
// (Scheduler.writeFailed), as kube-scheduler's writes do. idle() is exact: the changes sent have been
// applied there, its queue is empty with no attempt running, and every message it sent was handled.
// A thread that dies is started again (with a fresh copy) after a backoff.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type Logger, levels } from 'pino';
import type { ResourceName } from '../api/registry.js';
import type { KubeObject } from '../api/types/meta.js';
import { ApiError } from '../store/errors.js';
import type { EventRow, Store } from '../store/store.js';
import type { EventBroadcaster, EventType } from '../controllers/events.js';

/** Every resource the scheduler and its plugins read (informers, and the reads of data-source.ts). */
export const SCHEDULER_THREAD_RESOURCES: readonly ResourceName[] = [
  'pods',
  'nodes',
  'persistentvolumeclaims',
  'persistentvolumes',
  'storageclasses',
  'csinodes',
  'csidrivers',
  'namespaces',
  'poddisruptionbudgets',
  'replicasets',
  'statefulsets',
  'volumesnapshots',
  'volumesnapshotcontents',
];

/** Whether the scheduler gets a thread by default: when the machine has a core for it. */
export function schedulerThreadByDefault(): boolean {
  return availableParallelism() > 1;
}

/** Slots of the shared counters. */
export const SHARED = {
  /** Batches of changes sent (written here). */
  sent: 0,
  /** Batches of changes applied there. */
  applied: 1,
  /** 1 while the scheduler there has work queued or an attempt running. */
  busy: 2,
  /** Messages the thread has posted here. */
  posted: 3,
  size: 4,
} as const;

export interface WorkerData {
  role: 'scheduler';
  resources: readonly string[];
  /** The current objects' stored text, per resource, at resourceVersion. */
  objects: [string, string[]][];
  resourceVersion: number;
  shared: SharedArrayBuffer;
  logLevel: string;
  resyncMs: number;
  backoff: { baseDelayMs?: number; maxDelayMs?: number };
  csiTimeoutMs: number | undefined;
  /** Start the scheduling loop at once (the controllers had started before this thread). */
  started: boolean;
}

/** A change as sent: [resourceVersion, resource, type, stored text]. */
export type RowMessage = [number, string, EventRow['type'], string];

export type ToWorker = { t: 'rows'; seq: number; rows: RowMessage[] } | { t: 'reply'; id: number; error?: { code: number; reason: string; message: string } } | { t: 'start' } | { t: 'stop' };

export type WriteOp = { op: 'update'; obj: KubeObject; subresource?: 'status' } | { op: 'bindPod'; namespace: string; name: string; nodeName: string; uid: string } | { op: 'delete'; resource: string; namespace: string | undefined; name: string; uid?: string };

export type FromWorker =
  | ({ t: 'write'; id: number } & WriteOp)
  | { t: 'event'; component: string; obj: KubeObject; type: EventType; reason: string; message: string }
  | { t: 'log'; line: string }
  | { t: 'stopped' };

export interface SchedulerThreadOptions {
  store: Store;
  events: EventBroadcaster;
  logger: Logger;
  resyncMs: number;
  backoff: { baseDelayMs?: number; maxDelayMs?: number };
  csiTimeoutMs: number | undefined;
}

const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;

/** The scheduler's thread, seen from the control plane: a RunningController. */
export class SchedulerThread {
  readonly loops = [];
  private readonly log: Logger;
  private worker: Worker | undefined;
  /** Counters shared with the current thread (SHARED); a new one per thread. */
  private shared!: Int32Array;
  private stopFeed: (() => void) | undefined;
  private rows: RowMessage[] = [];
  private flushing: NodeJS.Immediate | undefined;
  private sent = 0;
  private handled = 0;
  private started = false;
  private stopping: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelayMs = RESTART_MIN_MS;
  private stoppedWaiter: (() => void) | undefined;

  constructor(private readonly options: SchedulerThreadOptions) {
    this.log = options.logger.child({ controller: 'scheduler', thread: 'scheduler' });
    this.spawn();
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.worker?.postMessage({ t: 'start' } satisfies ToWorker);
  }

  /** Whether the scheduler has nothing to do: every change applied, no pod queued or being tried, every message handled. */
  idle(): boolean {
    if (this.worker === undefined) return this.restartTimer === undefined;
    const s = this.shared;
    return this.flushing === undefined && Atomics.load(s, SHARED.applied) === this.sent && Atomics.load(s, SHARED.busy) === 0 && Atomics.load(s, SHARED.posted) === this.handled;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      const worker = this.worker;
      if (worker === undefined) return;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const stopped = new Promise<void>((resolve) => (this.stoppedWaiter = resolve));
      worker.postMessage({ t: 'stop' } satisfies ToWorker);
      // Its loop stops (the attempt running ends); then the thread goes.
      const timer = setTimeout(() => void worker.terminate(), 10_000);
      await Promise.race([stopped, exited]);
      await worker.terminate();
      await exited;
      clearTimeout(timer);
      this.detach();
    })();
    return this.stopping;
  }

  private spawn(): void {
    const { store } = this.options;
    this.shared = new Int32Array(new SharedArrayBuffer(SHARED.size * 4));
    // Busy until the thread has built its scheduler from the copy (and queued the pods in it).
    Atomics.store(this.shared, SHARED.busy, 1);
    this.sent = 0;
    this.handled = 0;
    this.rows = [];
    const feed = store.watchRows(SCHEDULER_THREAD_RESOURCES, (row) => this.row(row));
    this.stopFeed = feed.stop;
    const data: WorkerData = {
      role: 'scheduler',
      resources: SCHEDULER_THREAD_RESOURCES,
      objects: [...feed.objects],
      resourceVersion: feed.resourceVersion,
      shared: this.shared.buffer as SharedArrayBuffer,
      logLevel: this.options.logger.level,
      resyncMs: this.options.resyncMs,
      backoff: this.options.backoff,
      csiTimeoutMs: this.options.csiTimeoutMs,
      started: this.started,
    };
    // execArgv: [] so that a --cpu-prof or --inspect of the process is not applied to the thread too.
    const worker = new Worker(new URL('./thread-worker.js', import.meta.url), { workerData: data, execArgv: [] });
    this.worker = worker;
    // A thread that is being replaced is not heard any more (its counters are gone with it).
    worker.on('message', (m: FromWorker) => {
      if (this.worker === worker) this.message(m);
    });
    worker.on('error', (err) => this.log.error({ err }, 'the scheduler thread failed'));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.detach();
      if (this.stopping !== undefined) return;
      this.log.error({ code, restartInMs: this.restartDelayMs }, 'the scheduler thread exited; starting it again');
      this.scheduleRestart();
    });
  }

  private respawn(): void {
    this.restartTimer = undefined;
    if (this.stopping !== undefined) return;
    try {
      this.spawn();
    } catch (err) {
      // The store failed meanwhile, or the thread could not be made: tried again later.
      this.detach();
      this.log.error({ err, restartInMs: this.restartDelayMs }, 'the scheduler thread could not be started; trying again');
      this.scheduleRestart();
    }
  }

  /** Another thread after the current backoff (doubled for the next time, up to RESTART_MAX_MS). */
  private scheduleRestart(): void {
    this.restartTimer = setTimeout(() => this.respawn(), this.restartDelayMs);
    this.restartTimer.unref();
    this.restartDelayMs = Math.min(RESTART_MAX_MS, this.restartDelayMs * 2);
  }

  /** The thread is gone: its feed stops and its unsent changes are dropped (a new thread starts from a fresh copy). */
  private detach(): void {
    this.stopFeed?.();
    this.stopFeed = undefined;
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    this.flushing = undefined;
    this.rows = [];
    this.worker = undefined;
  }

  private row(row: EventRow): void {
    this.rows.push([row.rv, row.resource, row.type, row.object]);
    // One message per turn of this loop, with every change of the turn.
    this.flushing ??= setImmediate(() => this.flush());
  }

  /** Sends the changes gathered so far (at the end of the turn, or at once before an answer). */
  private flush(): void {
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    this.flushing = undefined;
    if (this.rows.length === 0 || this.worker === undefined) return;
    const rows = this.rows;
    this.rows = [];
    this.sent++;
    Atomics.store(this.shared, SHARED.sent, this.sent);
    this.worker.postMessage({ t: 'rows', seq: this.sent, rows } satisfies ToWorker);
  }

  private message(m: FromWorker): void {
    this.handled++;
    switch (m.t) {
      case 'write':
        this.write(m);
        return;
      case 'event':
        this.options.events.record(m.component, m.obj, m.type, m.reason, m.message);
        return;
      case 'log':
        this.logLine(m.line);
        return;
      case 'stopped':
        this.stoppedWaiter?.();
        return;
    }
  }

  private write(m: { id: number } & WriteOp): void {
    const { store } = this.options;
    let error: { code: number; reason: string; message: string } | undefined;
    try {
      switch (m.op) {
        case 'update':
          store.update(m.obj, m.subresource === undefined ? {} : { subresource: m.subresource });
          break;
        case 'bindPod':
          store.bindPod(m.namespace, m.name, m.nodeName, { uid: m.uid });
          break;
        case 'delete':
          store.delete(m.resource, m.namespace, m.name, m.uid === undefined ? {} : { preconditions: { uid: m.uid } });
          break;
      }
    } catch (err) {
      if (err instanceof ApiError) error = { code: err.code, reason: err.reason, message: err.message };
      else {
        // The store failed, or a bug: the thread is told, and it is said here too.
        this.log.error({ err, op: m.op }, 'a write of the scheduler failed');
        error = { code: 500, reason: 'InternalError', message: err instanceof Error ? err.message : String(err) };
      }
    }
    // The write's changes go first: when the answer comes, the thread's copy shows the write.
    this.flush();
    this.worker?.postMessage({ t: 'reply', id: m.id, ...(error === undefined ? {} : { error }) } satisfies ToWorker);
  }

  /** A line of the thread's logger, through the control plane's. */
  private logLine(line: string): void {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const { level, time: _time, pid: _pid, hostname: _hostname, msg, ...fields } = rec;
    const name = (typeof level === 'number' ? levels.labels[level] : undefined) ?? 'info';
    const log = this.log as unknown as Record<string, (obj: object, msg?: string) => void>;
    log[name]?.call(this.log, fields, typeof msg === 'string' ? msg : undefined);
  }
}
