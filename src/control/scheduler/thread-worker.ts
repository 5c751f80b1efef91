// The scheduler's thread (thread.ts says why): a copy of the objects the scheduler reads, kept by
// the store's changes as the control plane sends them; informers and the driver registry over that
// copy; the Scheduler itself, whose writes go to the control plane's thread (ThreadStore) and whose
// events and log lines go there too.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import type { KubeObject, WatchEvent } from '../api/types/meta.js';
import { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import { type InformerSource, InformerFactory, keyOf } from '../controllers/informer.js';
import { ApiError, type StatusReason } from '../store/errors.js';
import type { WatchHandler } from '../store/watch-hub.js';
import type { SchedulerStore } from './plugin-context.js';
import { DEFAULT_SCHEDULER_NAME, Scheduler } from './scheduler.js';
import { type FromWorker, type RowMessage, SHARED, type ToWorker, type WorkerData, type WriteOp } from './thread.js';

/** The objects the scheduler reads, as of the last change applied. */
export class MirrorStore {
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly handlers = new Map<string, Set<WatchHandler>>();
  private revision: number;

  constructor(objects: Iterable<[string, string[]]>, resourceVersion: number) {
    for (const [resource, texts] of objects) {
      const m = new Map<string, KubeObject>();
      for (const text of texts) {
        const obj = JSON.parse(text) as KubeObject;
        m.set(keyOf(obj), obj);
      }
      this.objects.set(resource, m);
    }
    this.revision = resourceVersion;
  }

  private of(resource: string): Map<string, KubeObject> {
    const m = this.objects.get(resource);
    if (m === undefined) throw new Error(`${resource} are not copied to the scheduler's thread (thread.ts: SCHEDULER_THREAD_RESOURCES)`);
    return m;
  }

  list(resource: string): { items: KubeObject[]; resourceVersion: string } {
    return { items: [...this.of(resource).values()], resourceVersion: String(this.revision) };
  }

  /** Changes from now on (an informer lists, then watches, in one turn: nothing comes between). */
  watch(resource: string, _options: unknown, handler: WatchHandler): () => void {
    this.of(resource);
    let set = this.handlers.get(resource);
    if (set === undefined) this.handlers.set(resource, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.of(resource).get(namespace ? `${namespace}/${name}` : name);
  }

  apply(rows: readonly RowMessage[]): void {
    for (const [rv, resource, type, text] of rows) {
      const m = this.objects.get(resource);
      this.revision = rv;
      if (m === undefined) continue;
      const object = JSON.parse(text) as KubeObject;
      const key = keyOf(object);
      if (type === 'DELETED') m.delete(key);
      else m.set(key, object);
      const set = this.handlers.get(resource);
      if (set === undefined) continue;
      const ev: WatchEvent = { type, object };
      for (const h of set) h(ev);
    }
  }
}

/**
 * The scheduler's writes, sent to the control plane's thread. A write returns at once (the object
 * as sent); its answer comes later, and a failure goes to onFailure with the pod whose attempt made
 * it. afterWrites runs a callback once the current attempt's writes have all succeeded.
 */
export class ThreadStore {
  private nextId = 1;
  /** write id → the pod whose attempt made it */
  private readonly pending = new Map<number, string | undefined>();
  /** pod → its writes not yet answered, and what waits for them */
  private readonly byPod = new Map<string, { writes: number; failed: boolean; onSuccess: (() => void)[]; always: (() => void)[] }>();

  constructor(
    private readonly mirror: MirrorStore,
    private readonly post: (m: FromWorker) => void,
    private readonly current: () => string | undefined,
    private readonly onFailure: (key: string, err: ApiError) => void,
  ) {}

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.mirror.get(resource, namespace, name);
  }

  update<T extends KubeObject>(obj: T, options: { subresource?: 'status' } = {}): T {
    this.send({ op: 'update', obj, ...(options.subresource === undefined ? {} : { subresource: options.subresource }) });
    return obj;
  }

  bindPod(namespace: string | undefined, name: string, nodeName: string, options: { uid?: string } = {}): KubeObject | undefined {
    this.send({ op: 'bindPod', namespace: namespace ?? 'default', name, nodeName, uid: options.uid ?? '' });
    return this.mirror.get('pods', namespace ?? 'default', name);
  }

  delete(resource: string, namespace: string | undefined, name: string, options: { preconditions?: { uid?: string } } = {}): KubeObject | undefined {
    const uid = options.preconditions?.uid;
    this.send({ op: 'delete', resource, namespace, name, ...(uid === undefined ? {} : { uid }) });
    return this.mirror.get(resource, namespace, name);
  }

  afterWrites(fn: () => void): void {
    const key = this.current();
    const w = key === undefined ? undefined : this.byPod.get(key);
    if (w === undefined) fn();
    else w.onSuccess.push(fn);
  }

  /** The control plane's answer to a write. */
  answered(id: number, error: { code: number; reason: string; message: string } | undefined): void {
    if (!this.pending.has(id)) return;
    const key = this.pending.get(id);
    this.pending.delete(id);
    const err = error === undefined ? undefined : new ApiError(error.code, error.reason as StatusReason, error.message);
    if (key === undefined) {
      if (err !== undefined) this.onFailure('', err);
      return;
    }
    const w = this.byPod.get(key);
    if (w === undefined) return;
    w.writes--;
    if (err !== undefined && !w.failed) {
      w.failed = true;
      this.onFailure(key, err);
    }
    if (w.writes > 0) return;
    this.byPod.delete(key);
    if (!w.failed) for (const fn of w.onSuccess) fn();
    for (const fn of w.always) fn();
  }

  whenWritten(key: string, fn: () => void): boolean {
    const w = this.byPod.get(key);
    if (w === undefined) return false;
    w.always.push(fn);
    return true;
  }

  private send(op: WriteOp): void {
    const id = this.nextId++;
    const key = this.current();
    this.pending.set(id, key);
    if (key !== undefined) {
      let w = this.byPod.get(key);
      if (w === undefined) this.byPod.set(key, (w = { writes: 0, failed: false, onSuccess: [], always: [] }));
      w.writes++;
    }
    this.post({ t: 'write', id, ...op });
  }
}

/** The reference an Event needs of its object (events.ts: referenceTo). */
function reference(obj: KubeObject): KubeObject {
  const { namespace, name, uid, resourceVersion } = obj.metadata;
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: { ...(namespace === undefined ? {} : { namespace }), ...(name === undefined ? {} : { name }), ...(uid === undefined ? {} : { uid }), ...(resourceVersion === undefined ? {} : { resourceVersion }) },
  };
}

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('thread-worker.js runs as the scheduler thread (thread.ts)');
  const data = workerData as WorkerData;
  const shared = new Int32Array(data.shared);
  const post = (m: FromWorker): void => {
    Atomics.add(shared, SHARED.posted, 1);
    port.postMessage(m);
  };
  const logger = pino({ level: data.logLevel, base: undefined }, { write: (line: string) => post({ t: 'log', line }) });
  const mirror = new MirrorStore(data.objects, data.resourceVersion);
  const informers = new InformerFactory(mirror as unknown as InformerSource, { resyncMs: data.resyncMs, logger });
  const registry = new DriverRegistry({
    csiDrivers: informers.for('csidrivers'),
    csiNodes: informers.for('csinodes'),
    logger,
    ...(data.csiTimeoutMs === undefined ? {} : { timeoutMs: data.csiTimeoutMs }),
  });
  const recorder = (component: string): EventSink => ({
    event: (obj, type, reason, message) => post({ t: 'event', component, obj: reference(obj), type, reason, message }),
  });
  let scheduler: Scheduler | undefined;
  const store = new ThreadStore(
    mirror,
    post,
    () => scheduler?.attemptingKey,
    (key, err) => {
      if (key === '') logger.warn({ err: err.message }, 'a write of the scheduler failed');
      else scheduler?.writeFailed(key, err);
    },
  );
  scheduler = new Scheduler({ store: store as unknown as SchedulerStore, informers, registry, recorder: recorder(DEFAULT_SCHEDULER_NAME), recorderFor: recorder, logger, ...data.backoff, beforeSync: () => noteBusy(), afterSync: () => noteBusy() });
  const s = scheduler;
  informers.start();

  // busy: whether the loop has work, set before a batch of changes is marked applied, when an
  // answer comes, and before and after every attempt (a retry whose timer puts a pod back starts
  // an attempt).
  function noteBusy(): void {
    Atomics.store(shared, SHARED.busy, s.loop.idle ? 0 : 1);
  }
  let running = false;
  const start = (): void => {
    if (running) return;
    running = true;
    s.start();
  };
  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'rows':
        mirror.apply(m.rows);
        noteBusy();
        Atomics.store(shared, SHARED.applied, m.seq);
        return;
      case 'reply':
        store.answered(m.id, m.error);
        noteBusy();
        return;
      case 'start':
        start();
        return;
      case 'stop':
        informers.stop();
        void s.stop().then(() => {
          registry.close();
          post({ t: 'stopped' });
          port.close();
        });
        return;
    }
  });
  if (data.started) start();
  noteBusy();
}

// Imported elsewhere (tests of MirrorStore and ThreadStore), it only defines them.
if (!isMainThread && (workerData as Partial<WorkerData> | null)?.role === 'scheduler') main();
