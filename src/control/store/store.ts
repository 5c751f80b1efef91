// The durable object store of the embedded control plane: Kubernetes API semantics over one
// SQLite file. Every write bumps the global resourceVersion, stores the object and appends a watch
// event; watch handlers are called synchronously, in write order, before the write returns.
//
// Group commit. Writes are synchronous calls, but they are not each their own fsync: the first
// write of a turn of the event loop opens a transaction, every write joins it (as a savepoint, so
// a failing write undoes only itself), and the transaction is committed — one fsync — when the
// turn ends (setImmediate), or earlier once it is maxTransactionMs old. A store on a file
// commits without syncing and has the WAL synced off the event loop (wal-sync.ts). A write is
// *acknowledged* once the commit covering it is done and synced: flushed() resolves then.
// Whatever makes a write visible outside the process must wait for it: the API server answers
// (and streams watch events) only after flushed(), and controllers await it before a side effect
// that depends on a write (CreateVolume, DeleteVolume). A write that was never acknowledged may be
// lost by kill -9 or power loss; an acknowledged one never is.
//
// In-process observers (watch handlers, informers) see a write before it is committed. If a
// commit fails, what they saw is no longer true, so the store fails for good: every later
// operation throws StoreFailedError, flushed() rejects, and onFailure listeners are told (the
// control plane stops serving). A restart reopens the file at its last committed state.
//
// A full disk is the one commit failure that can be seen coming: before a write joins the turn's
// transaction, the free space of the store's filesystem is checked (statfs, a few microseconds)
// against what the transaction will need, with a reserve. Too little, and the write is refused
// with DiskFullError (503) before anyone sees it: the store stays healthy, reads are served, and
// writes resume by themselves once space is freed. Only a disk filled by someone else between
// that check and the commit still fails the store.
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseFieldSelector, matchesFields } from '../api/field-selector.js';
import { parseLabelSelector, matchesLabels, SelectorError } from '../api/label-selector.js';
import type { ResourceInfo, ResourceName, ResourceTypeMap } from '../api/registry.js';
import { rfc3339 } from '../api/time.js';
import type { Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota } from '../api/types/core.js';
import type { PriorityClass } from '../api/types/scheduling.js';
import type { KubeObject, WatchEvent } from '../api/types/meta.js';
import {
  admitDefaultStorageClass,
  admitNamespace,
  admitResize,
  decodeInput,
  generateName,
  namespaceOf,
  prepareCreate,
  prepareUpdate,
  type Reader,
  resourceNamed,
  resourceOfObject,
  revalidate,
  sameJson,
} from './admission.js';
import { admitClaimLimits, admitPodLimits, defaultPodLimits } from './admission-limit-range.js';
import { admitPodPriority, admitPriorityClass, admitPriorityClassDelete, systemPriorityClasses } from './admission-priority.js';
import { admitQuota, initialQuotaStatus, QUOTAS, type QuotaCharge } from './admission-quota.js';
import { type BindOptions, boundPod } from './binding.js';
import { compactedContinueError, type ContinueToken, decodeContinue, encodeContinue, keyAfter } from './continue-token.js';
import { Checkpointer, type CheckpointThreadOptions } from './checkpointer.js';
import { type SyncCalls, WalSync } from './wal-sync.js';
import { BrokenTransactionError, Database, type EventRow, type ObjectKey } from './database.js';
import { AlreadyExistsError, BadRequestError, ConflictError, DiskFullError, ExpiredError, ForbiddenError, NotFoundError, StoreFailedError } from './errors.js';
import { cloneData } from './json.js';
import { admitDefaultTolerationSeconds, type DefaultTolerationSeconds } from './default-toleration-seconds.js';
import { admitStorageObjectInUseProtection } from './storage-object-in-use-protection.js';
import { FOREGROUND_FINALIZER, GarbageCollector, ORPHAN_FINALIZER, type PropagationPolicy } from './garbage-collector.js';
import { type WatchFilter, type WatchHandler, WatchHub, translate } from './watch-hub.js';

export type { EventRow } from './database.js';

export type { PropagationPolicy } from './garbage-collector.js';
export type { WatchHandler } from './watch-hub.js';

export interface StoreOptions {
  /** How many write events are kept for watches from a resourceVersion (default 10 000). */
  eventRetention?: number;
  /**
   * A turn that keeps writing (a controller working through a long queue in microtasks) commits
   * once its transaction is this old, instead of only when the turn ends, so that
   * acknowledgements are not held back behind it. Default 50 ms.
   */
  maxTransactionMs?: number;
  /**
   * Free bytes a write must leave on the store's filesystem beyond what the open transaction
   * needs (default 1 MiB); below that it is refused with DiskFullError. 0 turns the check off
   * (the only protection left is then the fail-stop at a failed commit).
   */
  reserveBytes?: number;
  /** DefaultTolerationSeconds admission (kube-apiserver's --default-*-toleration-seconds); default 300 s each. */
  defaultTolerationSeconds?: DefaultTolerationSeconds;
  /**
   * The StorageObjectInUseProtection admission plugin (storage-object-in-use-protection.ts): claims
   * and volumes are created with their protection finalizer. Default false here; the control
   * plane turns it on, as kube-apiserver has it on by default.
   */
  storageObjectInUseProtection?: boolean;
  /** When checkpoints move to a thread of their own (checkpointer.ts); false: never (a store in memory never does). */
  checkpointThread?: CheckpointThreadOptions | false;
  /** The WAL's fdatasync calls (wal-sync.ts), replaced by tests to delay or fail them. */
  syncCalls?: SyncCalls;
}

export interface ListOptions {
  /** Only this namespace; all namespaces when absent. Ignored for cluster-scoped resources. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface PageOptions {
  /** At most this many items (> 0); the result then carries a continue token if more remain. */
  limit?: number;
  /** The token of the previous page (see continue-token.ts). */
  continue?: string;
  /** The request's resourceVersion: with a continue token, only "" or "0" are allowed. */
  resourceVersion?: string;
}

export interface ListResult<T extends KubeObject = KubeObject> {
  items: T[];
  /** The store's resourceVersion at the time of the list: watch from here to miss nothing. */
  resourceVersion: string;
  /** Set when a limit cut the list short: pass it back to get the next page. */
  continue?: string;
  /** How many items follow this page (only for lists without selectors, as Kubernetes). */
  remainingItemCount?: number;
}

/**
 * dryRun=All: the write runs in full (decoding, defaulting, validation, admission, preconditions)
 * and returns what it would store, but nothing is stored, no resourceVersion is taken and no
 * watcher hears of it. As in kube-apiserver, a dry-run create answers without a resourceVersion
 * and a dry-run update or delete with the stored one.
 */
export interface WriteOptions {
  dryRun?: boolean;
}

export interface CreateOptions extends WriteOptions {
  /** Called with the object about to be stored (and the stored one on update), to set its metadata.managedFields. */
  manageFields?: (next: KubeObject, old: KubeObject | undefined) => void;
}

export interface UpdateOptions extends CreateOptions {
  /** 'status' writes only .status (and ignores everything else), like PUT …/status. */
  subresource?: 'status';
}

export interface DeleteOptions extends WriteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  /** Default Background. */
  propagationPolicy?: PropagationPolicy;
  /**
   * Pods only: how long the node may take to stop it. A running pod bound to a node is deleted
   * gracefully (deletionTimestamp set; the node agent removes it with 0 once its containers stopped
   * and its volumes are released); 0 removes it at once. Default: the pod's
   * terminationGracePeriodSeconds (30).
   */
  gracePeriodSeconds?: number;
}

export interface WatchOptions extends ListOptions {
  /**
   * Absent, "" or "0": an ADDED event for every current object, then changes. "N": every change
   * after N, replayed from the event log (ExpiredError when N is older than the log), then live.
   */
  resourceVersion?: string;
}

const REVISION = 'resourceVersion';
/** The kinds admission reads through its cache (see Store.reader). */
const ADMISSION_CACHED = new Set(['namespaces', 'priorityclasses', 'storageclasses', 'limitranges', 'resourcequotas']);
const DEFAULT_EVENT_RETENTION = 10_000;
/** Events are pruned every this many writes (or every `retention`), inside the write's transaction. */
const PRUNE_INTERVAL = 500;
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
/** Namespaces that always exist, as in a Kubernetes cluster. */
const SYSTEM_NAMESPACES = ['default', 'kube-system'];
const GENERATE_NAME_ATTEMPTS = 8;
const DEFAULT_MAX_TRANSACTION_MS = 50;
const DEFAULT_RESERVE_BYTES = 1024 * 1024;
/**
 * What a write may cost on disk per byte of its object: the object row, its event (the object,
 * and for updates and deletions the previous state too), each as WAL pages, plus index pages.
 */
const DISK_BYTES_PER_OBJECT_BYTE = 4;
const DISK_BYTES_PER_WRITE = 16 * 1024;

function keyOf(resource: ResourceInfo, obj: KubeObject): ObjectKey {
  return { resource: resource.plural, namespace: obj.metadata.namespace ?? '', name: obj.metadata.name ?? '' };
}

function ownerUids(obj: KubeObject | undefined): string[] {
  return (obj?.metadata.ownerReferences ?? []).map((r) => r.uid);
}

function sameOwners(a: KubeObject, b: KubeObject | undefined): boolean {
  const x = a.metadata.ownerReferences ?? [];
  const y = b?.metadata.ownerReferences ?? [];
  return x.length === y.length && x.every((r, i) => r.uid === y[i]?.uid);
}

/**
 * Seconds a pod's deletion waits for its node (0: at once). As in Kubernetes: graceful only for a
 * pod bound to a node that has not finished.
 */
function podGracePeriod(pod: Pod, requested: number | undefined): number {
  if (!pod.spec?.nodeName) return 0;
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return 0;
  const seconds = requested ?? pod.spec.terminationGracePeriodSeconds ?? 30;
  return Math.max(0, Math.floor(seconds));
}

/** Finalized: nothing holds the object any more, so a deletion can complete. */
function isFinalized(resource: ResourceInfo, obj: KubeObject): boolean {
  if ((obj.metadata.finalizers ?? []).length > 0) return false;
  return resource.plural !== 'namespaces' || ((obj as Namespace).spec?.finalizers ?? []).length === 0;
}

function badSelector<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SelectorError) throw new BadRequestError(err.message);
    throw err;
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class Store {
  private readonly db: Database;
  private readonly hub = new WatchHub();
  private readonly gc: GarbageCollector;
  private readonly retention: number;
  private readonly maxTransactionMs: number;
  /** The directory whose filesystem holds the file (undefined: in memory). */
  private readonly dir: string | undefined;
  private readonly reserveBytes: number;
  private readonly defaultTolerationSeconds: DefaultTolerationSeconds | undefined;
  private readonly storageProtection: boolean;
  /** What the open transaction's writes will need on disk (estimated). */
  private txBytes = 0;
  /** Free bytes on the store's filesystem when the open transaction began. */
  private txFree: number | undefined;
  private revision: number;
  /** A transaction is open: writes since the last commit are not durable yet. */
  private txOpen = false;
  /** The scheduled end-of-turn commit. */
  private commitTimer: NodeJS.Immediate | undefined;
  /** When the open transaction began (performance.now()). */
  private txStartedAt = 0;
  /** flushed() callers, by the revision each waits for (increasing). */
  private readonly waiters: { rv: number; deferred: Deferred }[] = [];
  /** Syncs the WAL after each commit, off the event loop; undefined in memory (nothing to sync). */
  private walSync: WalSync | undefined;
  private failure: StoreFailedError | undefined;
  private readonly failureListeners: ((err: StoreFailedError) => void)[] = [];
  private closed = false;
  private commitCount = 0;
  /** Checkpoints off the event loop while the store is busy (file stores only). */
  private checkpointer: Checkpointer | undefined;
  private committedRevision: number;
  /** Someone (a flushed() caller or an onFailure listener) was told of the failure. */
  private failureHeard = false;
  /**
   * Admission's view of the store. The kinds it reads on every create and that seldom change
   * (ADMISSION_CACHED: a pod's namespace, priority classes, limit ranges, quotas; a claim's storage
   * classes) are kept parsed, as kube-apiserver's admission plugins read them from informers, and
   * dropped when one of them is written. Admission only reads them.
   */
  private readonly admissionCache = new Map<string, { list: KubeObject[]; byKey: Map<string, KubeObject> }>();
  private readonly reader: Reader = {
    get: (resource, namespace, name) => {
      if (!ADMISSION_CACHED.has(resource.plural)) return this.read(resource, namespace, name);
      return this.admissionCached(resource).byKey.get(`${namespace}/${name}`);
    },
    list: (resource, namespace) => {
      if (!ADMISSION_CACHED.has(resource.plural)) return this.db.list(resource.plural, namespace).map((b) => JSON.parse(b) as KubeObject);
      const all = this.admissionCached(resource).list;
      return namespace === undefined ? all.slice() : all.filter((o) => (o.metadata.namespace ?? '') === namespace);
    },
  };

  private admissionCached(resource: ResourceInfo): { list: KubeObject[]; byKey: Map<string, KubeObject> } {
    let entry = this.admissionCache.get(resource.plural);
    if (entry === undefined) {
      const list = this.db.list(resource.plural, undefined).map((b) => JSON.parse(b) as KubeObject);
      entry = { list, byKey: new Map(list.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`, o])) };
      this.admissionCache.set(resource.plural, entry);
    }
    return entry;
  }

  /** Use open(). */
  constructor(path: string, options: StoreOptions = {}) {
    this.retention = Math.max(1, options.eventRetention ?? DEFAULT_EVENT_RETENTION);
    this.maxTransactionMs = Math.max(0, options.maxTransactionMs ?? DEFAULT_MAX_TRANSACTION_MS);
    this.dir = path === ':memory:' || path === '' ? undefined : dirname(path);
    this.reserveBytes = Math.max(0, options.reserveBytes ?? DEFAULT_RESERVE_BYTES);
    this.defaultTolerationSeconds = options.defaultTolerationSeconds;
    this.storageProtection = options.storageObjectInUseProtection ?? false;
    this.db = new Database(path, { syncOnCommit: this.dir === undefined });
    this.revision = this.db.counter(REVISION);
    this.committedRevision = this.revision;
    if (this.dir !== undefined) {
      this.walSync = new WalSync(`${resolve(path)}-wal`, this.revision, (rv) => this.durable(rv), (err) => this.syncFailed(err), options.syncCalls);
    }
    this.gc = new GarbageCollector(this.db, {
      read: (resource, namespace, name) => this.read(resource, namespace, name),
      deleteObject: (resource, namespace, name, policy) => {
        this.deleteResolved(resource, namespace, name, { propagationPolicy: policy });
      },
      writeInternal: (resource, next, old) => {
        this.commitUpdate(resource, next, old);
      },
    });
    try {
      for (const name of SYSTEM_NAMESPACES) {
        if (this.get('namespaces', '', name) === undefined) this.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
      }
      // As kube-apiserver's post-start hook: the system priority classes always exist.
      for (const pc of systemPriorityClasses()) {
        if (this.get('priorityclasses', '', pc.metadata.name ?? '') === undefined) this.create(pc);
      }
      // Finishes whatever a crash interrupted.
      this.gc.collectAll();
      // Open returns with everything durable.
      this.flushSync();
      if (this.dir !== undefined && options.checkpointThread !== false) this.checkpointer = new Checkpointer(path, this.db, options.checkpointThread);
    } catch (err) {
      this.closed = true;
      if (this.commitTimer !== undefined) clearImmediate(this.commitTimer);
      this.walSync?.close();
      this.db.close();
      throw err;
    }
  }

  /** The resourceVersion of the last write (committed or not: see flushed()). */
  get resourceVersion(): string {
    return String(this.revision);
  }

  /**
   * Resolves once every write made so far is committed and durable; at once when none is pending.
   * Rejects with StoreFailedError if the commit or its sync failed (or the store had already failed).
   */
  flushed(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.committedRevision >= this.revision) return Promise.resolve();
    const last = this.waiters.at(-1);
    if (last !== undefined && last.rv === this.revision) return last.deferred.promise;
    const waiter = { rv: this.revision, deferred: deferred() };
    this.waiters.push(waiter);
    return waiter.deferred.promise;
  }

  /** Commits the writes made so far now, and syncs them on this thread, instead of at the end of the turn. */
  flushSync(): void {
    this.usable();
    this.commitPending(true);
    if (this.failure === undefined) this.syncNow();
    if (this.failure !== undefined) throw this.failure;
  }

  /** The resourceVersion of the last committed (durable) write: writes after it await flushed(). */
  get committedResourceVersion(): string {
    return String(this.committedRevision);
  }

  /** Transactions committed since open (each one fsync): with the resourceVersion, how well writes are grouped. */
  get commits(): number {
    return this.commitCount;
  }

  /** The checkpoint thread's figures (checkpointer.ts): threads started, checkpoints done there, whether one runs now. */
  get checkpointThread(): { started: number; checkpoints: number; running: boolean; lastError: string | undefined } {
    const c = this.checkpointer;
    return { started: c?.threadsStarted ?? 0, checkpoints: c?.checkpoints ?? 0, running: c?.running ?? false, lastError: c?.lastError };
  }

  /** Whether the store has failed (see StoreFailedError); it then refuses everything. */
  get failed(): StoreFailedError | undefined {
    return this.failure;
  }

  /** Called once if a commit fails (the store is then unusable: the process should stop serving). */
  onFailure(listener: (err: StoreFailedError) => void): void {
    if (this.failure !== undefined) listener(this.failure);
    else this.failureListeners.push(listener);
  }

  /** Commits what is pending, then closes. Throws if that last commit fails. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    let failed: StoreFailedError | undefined;
    try {
      if (this.failure === undefined) {
        this.commitPending(true);
        if (this.failure === undefined) this.syncNow();
        failed = this.failure;
      }
    } finally {
      if (this.commitTimer !== undefined) clearImmediate(this.commitTimer);
      this.commitTimer = undefined;
      this.gc.clear();
      this.hub.clear();
      this.walSync?.close();
      try {
        this.checkpointer?.close();
      } finally {
        this.db.close();
      }
    }
    if (failed !== undefined) throw failed;
  }

  // ---------------------------------------------------------------- reads

  get<R extends ResourceName>(resource: R, namespace: string | undefined, name: string): ResourceTypeMap[R] | undefined;
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    this.usable();
    const r = resourceNamed(resource);
    return this.read(r, namespaceOf(r, namespace), name);
  }

  list<R extends ResourceName>(resource: R, options?: ListOptions): ListResult<ResourceTypeMap[R]>;
  list(resource: string, options?: ListOptions): ListResult;
  list(resource: string, options: ListOptions & PageOptions = {}): ListResult {
    this.usable();
    const r = resourceNamed(resource);
    const filter = this.filter(r, options);
    const token = options.continue ? decodeContinue(options.continue) : undefined;
    if (token !== undefined && options.resourceVersion && options.resourceVersion !== '0') {
      throw new BadRequestError('specifying resource version is not allowed when using continue');
    }
    // A continued list reads the snapshot of its first page (token.rv); -1 means "from now on".
    const at = token === undefined || token.rv < 0 ? this.revision : token.rv;
    let bodies = at === this.revision ? this.db.list(r.plural, filter.namespace) : this.bodiesAt(r, filter.namespace, at, token);
    if (token !== undefined) bodies = bodies.filter((b) => keyAfter(r, JSON.parse(b) as KubeObject, token.start));
    const limit = options.limit !== undefined && options.limit > 0 ? options.limit : undefined;
    const items: KubeObject[] = [];
    let i = 0;
    for (; i < bodies.length && (limit === undefined || items.length < limit); i++) {
      const o = JSON.parse(bodies[i] ?? '') as KubeObject;
      if (matchesLabels(filter.labels, o.metadata.labels) && matchesFields(filter.fields, o)) items.push(o);
    }
    const last = items.at(-1);
    const more = limit !== undefined && last !== undefined && i < bodies.length;
    const selecting = filter.labels.length > 0 || filter.fields.length > 0;
    return {
      items,
      resourceVersion: String(at),
      ...(more ? { continue: encodeContinue(r, last, at) } : {}),
      ...(more && !selecting ? { remainingItemCount: bodies.length - i } : {}),
    };
  }

  // ---------------------------------------------------------------- writes

  /**
   * Creates the object; returns it as stored (uid, resourceVersion, defaults…). The result type
   * keeps the input's type and adds full metadata, so object literals need no annotation.
   */
  create<T extends KubeObject>(input: T, options: CreateOptions = {}): T & KubeObject {
    this.usable();
    const resource = resourceOfObject(input);
    const obj = decodeInput(input, resource);
    const generated = !obj.metadata.name && Boolean(obj.metadata.generateName);
    prepareCreate(obj, resource);
    const charges = this.admitCreate(resource, obj);
    options.manageFields?.(obj, undefined);
    for (let attempt = 1; this.db.get(keyOf(resource, obj)) !== undefined; attempt++) {
      if (!generated || attempt >= GENERATE_NAME_ATTEMPTS) throw new AlreadyExistsError(resource, obj.metadata.name ?? '');
      obj.metadata.name = generateName(obj.metadata.generateName ?? '');
    }
    if (!options.dryRun) this.chargeQuotas(charges);
    return this.commit(resource, 'ADDED', obj, undefined, undefined, options.dryRun) as T & KubeObject;
  }

  /**
   * Replaces the object (or only its status). With metadata.resourceVersion set, the write
   * happens only if it is still the stored one (ConflictError otherwise); without, it is
   * unconditional, as Kubernetes allows. An update that changes nothing writes nothing.
   */
  update<T extends KubeObject>(input: T, options: UpdateOptions = {}): T & KubeObject {
    this.usable();
    const resource = resourceOfObject(input);
    if (options.subresource === 'status' && !resource.hasStatus) throw new BadRequestError(`${resource.plural} have no status subresource`);
    const obj = decodeInput(input, resource);
    const name = obj.metadata.name ?? '';
    const oldBody = this.db.get({ resource: resource.plural, namespace: namespaceOf(resource, obj.metadata.namespace), name });
    if (oldBody === undefined) throw new NotFoundError(resource, name);
    // Private: nothing below changes it, so its stored text stands for it in the watch event.
    const old = JSON.parse(oldBody) as KubeObject;
    const expected = obj.metadata.resourceVersion;
    if (expected && expected !== old.metadata.resourceVersion) throw new ConflictError(resource, name);
    const next = prepareUpdate(obj, old, resource, options.subresource);
    const charges = options.subresource === undefined ? this.admitUpdate(resource, next, old) : [];
    options.manageFields?.(next, old);
    if (!options.dryRun) this.chargeQuotas(charges);
    return this.commitUpdate(resource, next, old, oldBody, options.dryRun) as T & KubeObject;
  }

  /**
   * The pods/binding subresource: sets spec.nodeName of a pod that has none (and PodScheduled
   * True), the one spec change a pod allows (see binding.ts). ConflictError if already bound.
   */
  bindPod(namespace: string | undefined, name: string, nodeName: string, options: BindOptions & WriteOptions = {}): Pod {
    this.usable();
    const resource = resourceNamed('pods');
    const oldBody = this.db.get({ resource: resource.plural, namespace: namespaceOf(resource, namespace), name });
    if (oldBody === undefined) throw new NotFoundError(resource, name);
    const old = JSON.parse(oldBody) as KubeObject;
    // The stored text is the event's previous state as it is: not serialized again. A binding
    // always changes the pod (one already bound is refused), so it is not compared with it.
    return this.commitUpdate(resource, boundPod(old, resource, nodeName, options), old, oldBody, options.dryRun, true) as Pod;
  }

  /**
   * Deletes the object. One that has finalizers (or gets one from the propagation policy) is only
   * marked: deletionTimestamp is set and it stays until updates remove its finalizers (a namespace
   * also waits until it is empty). Returns the object's last state; whether it is still stored
   * can be asked with get().
   */
  delete<R extends ResourceName>(resource: R, namespace: string | undefined, name: string, options?: DeleteOptions): ResourceTypeMap[R];
  delete(resource: string, namespace: string | undefined, name: string, options?: DeleteOptions): KubeObject;
  delete(resource: string, namespace: string | undefined, name: string, options: DeleteOptions = {}): KubeObject {
    this.usable();
    const r = resourceNamed(resource);
    if (r.plural === 'priorityclasses') admitPriorityClassDelete(r, name);
    return this.deleteResolved(r, namespaceOf(r, namespace), name, options);
  }

  /** Runs the garbage collector until it has nothing to do (it also runs after every deletion). */
  collectGarbage(): void {
    this.usable();
    this.gc.collectAll();
  }

  // ---------------------------------------------------------------- watch

  /**
   * Calls handler for every matching change, synchronously after each write and in order (before
   * the write is committed: anything seen here that leaves the process waits for flushed()),
   * until the returned function is called. The initial events (current objects or replayed
   * history, see WatchOptions.resourceVersion) are delivered before watch() returns.
   */
  watch<R extends ResourceName>(resource: R, options: WatchOptions, handler: WatchHandler<ResourceTypeMap[R]>): () => void;
  watch(resource: string, options: WatchOptions, handler: WatchHandler): () => void;
  watch(resource: string, options: WatchOptions, handler: WatchHandler): () => void {
    this.usable();
    const r = resourceNamed(resource);
    const filter = this.filter(r, options);
    const from = options.resourceVersion;
    let backlog: WatchEvent[];
    let after = this.revision;
    if (from === undefined || from === '' || from === '0') {
      backlog = this.list(r.plural, options).items.map((object) => ({ type: 'ADDED', object }));
    } else {
      if (!/^\d+$/.test(from)) throw new BadRequestError(`resourceVersion: Invalid value: "${from}": must be a non-negative integer`);
      const requested = Number(from);
      const oldest = this.db.oldestEvent();
      if (oldest !== undefined && requested < oldest - 1) throw new ExpiredError(requested, oldest);
      backlog = this.db.eventsAfter(requested, r.plural).flatMap((row) => translate(filter, row) ?? []);
      after = Math.max(after, requested);
    }
    return this.hub.add(filter, handler, after, backlog);
  }

  /**
   * For a consumer on another thread (the scheduler's: scheduler/thread.ts), which parses there:
   * the stored text of the current objects of these resources, the resourceVersion they are at,
   * and from then on every change to them as stored (EventRow), synchronously after each write and
   * in the order watchers see them, until stop() is called.
   */
  watchRows(resources: readonly string[], handler: (row: EventRow) => void): { objects: Map<string, string[]>; resourceVersion: number; stop: () => void } {
    this.usable();
    const plurals = resources.map((r) => resourceNamed(r).plural);
    const objects = new Map(plurals.map((r) => [r, this.db.list(r, undefined)]));
    const stop = this.hub.addRows(new Set(plurals), handler, this.revision);
    return { objects, resourceVersion: this.revision, stop };
  }

  // ---------------------------------------------------------------- internals

  /**
   * The admission plugins of a create, in kube-apiserver's order: mutating (LimitRanger's
   * defaults, Priority, DefaultStorageClass), then validating (LimitRanger, PriorityClass's one
   * default, ResourceQuota last).
   */
  private admitCreate(resource: ResourceInfo, obj: KubeObject): QuotaCharge[] {
    admitNamespace(this.reader, resource, obj);
    switch (resource.plural) {
      case 'pods': {
        admitDefaultTolerationSeconds(obj as Pod, this.defaultTolerationSeconds);
        const defaulted = defaultPodLimits(this.reader, obj as Pod);
        admitPodPriority(this.reader, resource, obj as Pod);
        // Validation runs after the mutating plugins: a default limit may be below a request.
        if (defaulted) revalidate(obj, resource);
        admitPodLimits(this.reader, resource, obj as Pod);
        break;
      }
      case 'persistentvolumeclaims':
        if (this.storageProtection) admitStorageObjectInUseProtection('persistentvolumeclaims', obj as PersistentVolumeClaim);
        admitDefaultStorageClass(this.reader, obj as PersistentVolumeClaim);
        admitClaimLimits(this.reader, resource, obj as PersistentVolumeClaim);
        break;
      case 'persistentvolumes':
        if (this.storageProtection) admitStorageObjectInUseProtection('persistentvolumes', obj as PersistentVolume);
        break;
      case 'priorityclasses':
        admitPriorityClass(this.reader, resource, obj as PriorityClass, 'create');
        break;
      case 'resourcequotas':
        initialQuotaStatus(this.reader, obj as ResourceQuota);
        break;
    }
    return admitQuota(this.reader, resource, obj);
  }

  /** The admission plugins of a main update (not /status). */
  private admitUpdate(resource: ResourceInfo, next: KubeObject, old: KubeObject): QuotaCharge[] {
    if (resource.plural === 'persistentvolumeclaims') {
      admitResize(this.reader, resource, next as PersistentVolumeClaim, old as PersistentVolumeClaim);
      admitClaimLimits(this.reader, resource, next as PersistentVolumeClaim);
      return admitQuota(this.reader, resource, next, old);
    }
    if (resource.plural === 'priorityclasses') admitPriorityClass(this.reader, resource, next as PriorityClass, 'update');
    return [];
  }

  /** Writes the status.used an admitted write raised (in the same turn, before the write itself). */
  private chargeQuotas(charges: readonly QuotaCharge[]): void {
    for (const c of charges) {
      const old = this.read(QUOTAS, c.namespace, c.name) as ResourceQuota | undefined;
      if (old === undefined) continue;
      const next = cloneData(old);
      next.status = { hard: old.status?.hard ?? { ...(old.spec?.hard ?? {}) }, used: c.used };
      this.commitUpdate(QUOTAS, next, old);
    }
  }

  /** Throws the failure once the store has failed. */
  private usable(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Refuses a write (before anything of it is visible) when the store's filesystem has no room
   * for it and the rest of the open transaction, plus the reserve. The free space is asked once
   * per transaction (one statfs per turn of writes): within a turn only this store writes there.
   */
  private checkSpace(bytes: number): void {
    if (this.dir === undefined || this.reserveBytes === 0) return;
    if (!this.txOpen || this.txFree === undefined) {
      try {
        const fs = statfsSync(this.dir);
        this.txFree = fs.bavail * fs.bsize;
      } catch {
        this.txFree = undefined;
        return; // cannot tell: let the commit find out
      }
    }
    const needed = (this.txOpen ? this.txBytes : 0) + bytes + this.reserveBytes;
    if (this.txFree < needed) throw new DiskFullError(this.dir, this.txFree, needed);
  }

  /** Opens the turn's transaction (and schedules its commit) unless one is open. */
  private openTransaction(): void {
    if (this.txOpen) return;
    this.db.begin();
    this.txBytes = 0;
    this.txOpen = true;
    this.txStartedAt = performance.now();
    this.commitTimer = setImmediate(() => {
      this.commitTimer = undefined;
      this.commitPending();
      // Nobody to tell (no onFailure listener, no flushed() waiter): fail the process, loudly.
      if (this.failure !== undefined && !this.failureHeard) throw this.failure;
    });
  }

  /**
   * Commits the open transaction, if any: one fsync (here or in walSync) for every write since it
   * opened. `syncHere`: the caller syncs on this thread next (syncNow()), so no sync is started.
   */
  private commitPending(syncHere = false): void {
    if (this.commitTimer !== undefined) {
      clearImmediate(this.commitTimer);
      this.commitTimer = undefined;
    }
    if (!this.txOpen || this.failure !== undefined) return;
    try {
      this.db.setCounter(REVISION, this.revision);
      this.db.commit();
      this.txOpen = false;
      this.commitCount++;
    } catch (err) {
      this.fail(err);
      return;
    }
    this.checkpointer?.committed();
    if (this.walSync === undefined) this.durable(this.revision);
    else this.walSync.committed(this.revision, syncHere);
  }

  /** Syncs what is committed on this thread (opening, flushSync(), close()). */
  private syncNow(): void {
    try {
      this.walSync?.syncNow();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Writes up to rv are durable: acknowledged to flushed() callers. */
  private durable(rv: number): void {
    if (this.failure !== undefined || rv <= this.committedRevision) return;
    this.committedRevision = rv;
    let n = 0;
    while (n < this.waiters.length && (this.waiters[n]?.rv ?? Infinity) <= rv) n++;
    for (const w of this.waiters.splice(0, n)) w.deferred.resolve();
  }

  /** The WAL could not be synced: commits since the last sync may not be on disk, so the store fails. */
  private syncFailed(err: Error): void {
    if (this.failure !== undefined || this.closed) return;
    this.fail(err);
    // Nobody to tell (no onFailure listener, no flushed() waiter): fail the process, loudly.
    if (!this.failureHeard) throw this.failure;
  }

  /** Runs one write's statements; a failure that broke the transaction fails the store. */
  private step(fn: () => void): void {
    try {
      this.db.writeStep(fn);
    } catch (err) {
      if (err instanceof BrokenTransactionError) {
        this.fail(err);
        throw this.failure ?? err;
      }
      throw err;
    }
  }

  /** A commit failed: roll back, refuse everything from now on, tell the listeners. */
  private fail(cause: unknown): void {
    const failure = new StoreFailedError(cause);
    this.failure = failure;
    if (this.txOpen) {
      this.txOpen = false;
      try {
        this.db.rollback();
      } catch {
        // SQLite may already have rolled back (e.g. after an I/O error).
      }
    }
    this.gc.clear();
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.deferred.reject(failure);
    this.failureHeard = waiters.length > 0 || this.failureListeners.length > 0;
    for (const listener of this.failureListeners.splice(0)) {
      try {
        listener(failure);
      } catch {
        // a listener's failure must not hide the store's
      }
    }
  }

  /**
   * The stored bodies of a resource as they were at resourceVersion `at`, in list order: the
   * current ones with every later event undone (from the event log, which must still reach back
   * to `at`; otherwise the token is too old, as after an etcd compaction: 410 Expired).
   */
  private bodiesAt(resource: ResourceInfo, namespace: string | undefined, at: number, token: ContinueToken | undefined): string[] {
    if (at > this.revision) throw new BadRequestError(`invalid continue token: continue key is not valid: resourceVersion ${at} is newer than the store's ${this.revision}`);
    const oldest = this.db.oldestEvent();
    if (oldest === undefined || at < oldest - 1) throw compactedContinueError(token);
    const objects = new Map<string, string>();
    const keyOfBody = (ns: string, body: string): string => `${ns}\u0000${(JSON.parse(body) as KubeObject).metadata.name ?? ''}`;
    for (const body of this.db.list(resource.plural, namespace)) {
      const obj = JSON.parse(body) as KubeObject;
      objects.set(`${obj.metadata.namespace ?? ''}\u0000${obj.metadata.name ?? ''}`, body);
    }
    const events = this.db.eventsAfter(at, resource.plural);
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i];
      if (e === undefined || (namespace !== undefined && e.namespace !== namespace)) continue;
      const key = keyOfBody(e.namespace, e.object);
      if (e.type === 'ADDED') objects.delete(key);
      else objects.set(key, e.previous ?? e.object);
    }
    return [...objects.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, body]) => body);
  }

  private read(resource: ResourceInfo, namespace: string, name: string): KubeObject | undefined {
    const body = this.db.get({ resource: resource.plural, namespace, name });
    return body === undefined ? undefined : (JSON.parse(body) as KubeObject);
  }

  private filter(resource: ResourceInfo, options: ListOptions): WatchFilter {
    return {
      resource: resource.plural,
      namespace: resource.namespaced && options.namespace ? options.namespace : undefined,
      labels: badSelector(() => parseLabelSelector(options.labelSelector)),
      fields: badSelector(() => parseFieldSelector(options.fieldSelector, resource)),
    };
  }

  private deleteResolved(resource: ResourceInfo, namespace: string, name: string, options: DeleteOptions): KubeObject {
    const old = this.read(resource, namespace, name);
    if (old === undefined) throw new NotFoundError(resource, name);
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== old.metadata.uid) {
      throw new ConflictError(resource, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid ?? ''}`);
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw new ConflictError(
        resource,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion ?? ''}`,
      );
    }
    if (resource.plural === 'namespaces' && PROTECTED_NAMESPACES.has(name)) throw new ForbiddenError(resource, name, 'this namespace may not be deleted');
    const policy = options.propagationPolicy ?? 'Background';
    if (!['Foreground', 'Background', 'Orphan'].includes(policy)) {
      throw new BadRequestError(`propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
    }
    const graceful = resource.plural === 'pods' ? podGracePeriod(old as Pod, options.gracePeriodSeconds) : 0;
    // Already terminating: nothing more to do until its finalizers go (or the node is done with the pod).
    if (old.metadata.deletionTimestamp !== undefined && !(resource.plural === 'pods' && graceful === 0)) return old;

    const next = cloneData(old);
    if (graceful > 0) {
      // The kubelet's graceful deletion: the pod stays, Terminating, until its node releases it.
      next.metadata.deletionTimestamp = rfc3339(new Date(Date.now() + graceful * 1000));
      next.metadata.deletionGracePeriodSeconds = graceful;
      next.metadata.generation = (next.metadata.generation ?? 0) + 1;
      return this.commit(resource, 'MODIFIED', next, old, undefined, options.dryRun);
    }
    const finalizers = new Set(next.metadata.finalizers ?? []);
    if (policy === 'Foreground') finalizers.add(FOREGROUND_FINALIZER);
    if (policy === 'Orphan') finalizers.add(ORPHAN_FINALIZER);
    if (finalizers.size > 0) next.metadata.finalizers = [...finalizers];
    let result: KubeObject;
    if (isFinalized(resource, next)) {
      result = this.commit(resource, 'DELETED', next, old, undefined, options.dryRun);
    } else {
      next.metadata.deletionTimestamp = rfc3339();
      next.metadata.deletionGracePeriodSeconds = 0;
      next.metadata.generation = (next.metadata.generation ?? 0) + 1;
      if (resource.plural === 'namespaces') (next as Namespace).status = { ...(next as Namespace).status, phase: 'Terminating' };
      result = this.commit(resource, 'MODIFIED', next, old, undefined, options.dryRun);
    }
    if (options.dryRun) return result;
    this.gc.collect();
    // The collector may already have finished the deletion (Orphan, Foreground without dependents).
    const current = this.read(resource, namespace, name);
    return current !== undefined && current.metadata.uid === result.metadata.uid ? current : result;
  }

  /** Writes a prepared update: nothing if unchanged, a removal if it finalizes a terminating object. */
  private commitUpdate(resource: ResourceInfo, next: KubeObject, old: KubeObject, oldBody?: string, dryRun = false, changed = false): KubeObject {
    if (!changed && sameJson(next, old)) return old;
    if (next.metadata.deletionTimestamp !== undefined && isFinalized(resource, next)) {
      const removed = this.commit(resource, 'DELETED', next, old, undefined, dryRun);
      if (!dryRun) this.gc.collect();
      return removed;
    }
    return this.commit(resource, 'MODIFIED', next, old, oldBody, dryRun);
  }

  /**
   * The one write path: the object, its owner index and its event, as one step of the turn's
   * transaction. A dry run stops here, before anything is written or published: the object keeps
   * the resourceVersion it was read with (none for a creation).
   */
  private commit(resource: ResourceInfo, type: EventRow['type'], obj: KubeObject, previous: KubeObject | undefined, previousBody?: string, dryRun = false): KubeObject {
    if (dryRun) {
      if (previous?.metadata.resourceVersion === undefined) delete obj.metadata.resourceVersion;
      else obj.metadata.resourceVersion = previous.metadata.resourceVersion;
      return obj;
    }
    const rv = this.revision + 1;
    const before = obj.metadata.resourceVersion;
    obj.metadata.resourceVersion = String(rv);
    const key = keyOf(resource, obj);
    const body = JSON.stringify(obj);
    const cost = DISK_BYTES_PER_WRITE + DISK_BYTES_PER_OBJECT_BYTE * body.length;
    try {
      // The collector's writes finish a deletion already made (small; the reserve is for them):
      // refusing one would leave the deletion half-done.
      if (!this.gc.busy) this.checkSpace(cost);
    } catch (err) {
      obj.metadata.resourceVersion = before;
      throw err;
    }
    this.openTransaction();
    this.txBytes += cost;
    const event: EventRow = {
      rv,
      resource: resource.plural,
      namespace: key.namespace,
      type,
      object: body,
      // DELETED keeps the state before too, so that a continued list can rebuild its snapshot.
      previous: type !== 'ADDED' && previous !== undefined ? (previousBody ?? JSON.stringify(previous)) : null,
    };
    let ownersChanged = false;
    this.step(() => {
      if (type === 'DELETED') {
        this.db.remove(key);
      } else {
        this.db.put(key, obj.metadata.uid ?? '', obj.metadata.deletionTimestamp !== undefined, body, type === 'MODIFIED' && previous?.metadata.uid === obj.metadata.uid);
        ownersChanged = !sameOwners(obj, previous);
        if (ownersChanged) this.db.setOwners(key, ownerUids(obj));
      }
      this.db.appendEvent(event);
      if (rv % Math.min(PRUNE_INTERVAL, this.retention) === 0) this.db.pruneEventsThrough(rv - this.retention);
    });
    this.revision = rv;
    this.admissionCache.delete(resource.plural);
    this.gc.noteWrite(resource.plural, type, obj, previous, ownersChanged);
    this.hub.publish(event);
    // A long turn: commit what it has written so far (its statements are all done by now).
    if (this.txOpen && performance.now() - this.txStartedAt >= this.maxTransactionMs) {
      this.commitPending();
      if (this.failure !== undefined) throw this.failure;
    }
    return obj;
  }
}

/** Opens (creating if needed) the store in a SQLite file; ":memory:" gives a throwaway store. */
export function open(path: string, options?: StoreOptions): Store {
  return new Store(path, options);
}
