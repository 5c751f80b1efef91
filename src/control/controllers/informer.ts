// Shared informers over the in-process store: one list + watch per resource, an always-current
// cache of its objects with secondary indexes, and event handlers that controllers use only to
// enqueue keys. As in client-go, the cache is shared: objects handed out must not be mutated.
//
// The store calls watch handlers synchronously after each write, so the cache is up to date as
// soon as a write returns: a controller that reads the cache, then writes without awaiting in
// between, never works from a stale object. (The cache may hold writes not yet committed: a
// controller awaits store.flushed() before an external side effect that depends on them.)
import type { Logger } from 'pino';
import type { ResourceName, ResourceTypeMap } from '../api/registry.js';
import type { KubeObject, WatchEvent } from '../api/types/meta.js';
import { ExpiredError } from '../store/errors.js';
import type { Store } from '../store/store.js';

export interface EventHandlers<T extends KubeObject> {
  add?(obj: T): void;
  /** Also called on resync with old === obj. */
  update?(old: T, obj: T): void;
  delete?(obj: T): void;
}

export type IndexFunc<T extends KubeObject> = (obj: T) => readonly string[];

/** "namespace/name", or "name" for cluster-scoped objects (client-go's MetaNamespaceKeyFunc). */
export function keyOf(obj: KubeObject): string {
  const ns = obj.metadata.namespace;
  return ns ? `${ns}/${obj.metadata.name ?? ''}` : (obj.metadata.name ?? '');
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** What informers list and watch: the store, or a copy of some of it on another thread (scheduler/thread-worker.ts). */
export type InformerSource = Pick<Store, 'list' | 'watch'>;

export interface InformerOptions {
  /** Every this many ms, every cached object is handed to update handlers again. 0: never. */
  resyncMs?: number;
  logger?: Logger;
}

export class Informer<T extends KubeObject = KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: EventHandlers<T>[] = [];
  private readonly indexers = new Map<string, IndexFunc<T>>();
  /** index name → value → keys */
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  private stopWatch: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private stopped = false;
  private lastResourceVersion = '';

  constructor(
    private readonly store: InformerSource,
    readonly resource: ResourceName,
    private readonly options: InformerOptions = {},
  ) {}

  get hasSynced(): boolean {
    return this.synced;
  }

  addEventHandler(handlers: EventHandlers<T>): void {
    this.handlers.push(handlers);
    // A handler added after start sees the current objects as adds, as in client-go.
    if (this.synced) for (const obj of this.cache.values()) handlers.add?.(obj);
  }

  /** Declares a secondary index; must be called before start(). */
  addIndex(name: string, fn: IndexFunc<T>): void {
    if (this.synced) throw new Error(`index ${name} added to the ${this.resource} informer after it started`);
    this.indexers.set(name, fn);
    this.indices.set(name, new Map());
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get size(): number {
    return this.cache.size;
  }

  /** Keys of the objects whose index function gave `value`. */
  indexKeys(index: string, value: string): string[] {
    const keys = this.indices.get(index)?.get(value);
    return keys === undefined ? [] : [...keys];
  }

  byIndex(index: string, value: string): T[] {
    const keys = this.indices.get(index)?.get(value);
    if (keys === undefined) return [];
    const out: T[] = [];
    for (const k of keys) {
      const obj = this.cache.get(k);
      if (obj !== undefined) out.push(obj);
    }
    return out;
  }

  /** Lists, then watches from the list's resourceVersion. Synchronous: the cache is filled on return. */
  start(): void {
    if (this.stopped) throw new Error('informer already stopped');
    this.listAndWatch();
    this.synced = true;
    const resync = this.options.resyncMs ?? 0;
    if (resync > 0) {
      this.resyncTimer = setInterval(() => this.resync(), resync);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
    this.stopWatch = undefined;
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
  }

  /** Hands every cached object to the update handlers (level-triggered safety net). */
  resync(): void {
    if (this.stopped) return;
    for (const obj of [...this.cache.values()]) this.dispatch((h) => h.update?.(obj, obj));
  }

  private listAndWatch(): void {
    for (;;) {
      const listed = this.store.list(this.resource);
      this.replace(listed.items as T[]);
      this.lastResourceVersion = listed.resourceVersion;
      try {
        this.stopWatch = this.store.watch(this.resource, { resourceVersion: listed.resourceVersion }, (ev) => this.onEvent(ev as WatchEvent<T>));
        return;
      } catch (err) {
        // The list is older than the event log (only if writes raced the list): list again.
        if (!(err instanceof ExpiredError)) throw err;
        this.options.logger?.info({ resource: this.resource, resourceVersion: listed.resourceVersion }, 'watch expired; relisting');
      }
    }
  }

  /** Makes the cache equal to a fresh list, with add/update/delete for the differences. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const obj of items) {
      const key = keyOf(obj);
      seen.add(key);
      this.apply({ type: this.cache.has(key) ? 'MODIFIED' : 'ADDED', object: obj });
    }
    for (const [key, obj] of [...this.cache]) if (!seen.has(key)) this.apply({ type: 'DELETED', object: obj });
  }

  private onEvent(ev: WatchEvent<T>): void {
    if (this.stopped) return;
    this.lastResourceVersion = ev.object.metadata.resourceVersion ?? this.lastResourceVersion;
    this.apply(ev);
  }

  private apply(ev: WatchEvent<T>): void {
    const obj = ev.object;
    const key = keyOf(obj);
    const old = this.cache.get(key);
    if (ev.type === 'DELETED') {
      if (old === undefined) return;
      this.cache.delete(key);
      this.unindex(key, old);
      this.dispatch((h) => h.delete?.(obj));
      return;
    }
    this.cache.set(key, obj);
    if (old !== undefined) this.unindex(key, old);
    this.index(key, obj);
    if (old === undefined) this.dispatch((h) => h.add?.(obj));
    else this.dispatch((h) => h.update?.(old, obj));
  }

  private index(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const idx = this.indices.get(name);
      if (idx === undefined) continue;
      for (const value of fn(obj)) {
        let keys = idx.get(value);
        if (keys === undefined) idx.set(value, (keys = new Set()));
        keys.add(key);
      }
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const idx = this.indices.get(name);
      if (idx === undefined) continue;
      for (const value of fn(obj)) {
        const keys = idx.get(value);
        if (keys === undefined) continue;
        keys.delete(key);
        if (keys.size === 0) idx.delete(value);
      }
    }
  }

  private dispatch(call: (h: EventHandlers<T>) => void): void {
    for (const h of this.handlers) {
      try {
        call(h);
      } catch (err) {
        this.options.logger?.error({ err, resource: this.resource }, 'informer event handler failed');
      }
    }
  }
}

/** One informer per resource, shared by every controller (client-go's SharedInformerFactory). */
export class InformerFactory {
  private readonly informers = new Map<ResourceName, Informer>();
  private started = false;

  constructor(
    private readonly store: InformerSource,
    private readonly options: InformerOptions = {},
  ) {}

  for<R extends ResourceName>(resource: R): Informer<ResourceTypeMap[R]> {
    let inf = this.informers.get(resource);
    if (inf === undefined) {
      inf = new Informer(this.store, resource, this.options);
      this.informers.set(resource, inf);
      if (this.started) inf.start();
    }
    return inf as unknown as Informer<ResourceTypeMap[R]>;
  }

  /** Starts every informer asked for so far (and any asked for later, at once). */
  start(): void {
    this.started = true;
    for (const inf of this.informers.values()) if (!inf.hasSynced) inf.start();
  }

  stop(): void {
    for (const inf of this.informers.values()) inf.stop();
  }
}
