// A client-go-style reflector over ApiClient: list a resource, then watch from the list's
// resourceVersion with allowWatchBookmarks, keeping an in-memory cache (namespace/name → object)
// in step through ADDED/MODIFIED/DELETED. BOOKMARK events only advance its resourceVersion. When a
// stream ends it re-watches from where it got to; when the server answers 410 Gone/Expired (the
// version is older than its event history, on opening or as an ERROR event) it relists and
// re-watches, reporting objects that vanished meanwhile as DELETED, as client-go's Replace does.
// Any other failure backs off, then relists (client-go's ListAndWatch is retried whole).
import type { ResourceInfo } from '../control/api/registry.js';
import type { KubeObject } from '../control/api/types/meta.js';
import { type ApiClient, ApiStatusError, type ClientWatchEvent, type WatchHandle } from './api-client.js';

export interface ReflectorOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Each watch asks the server to end it after this long (then it re-watches); default 300 s. */
  watchTimeoutSeconds?: number;
  /** Wait after a failure before relisting; default 1 s. */
  backoffMs?: number;
  /** Told of every change to the cache, in order. */
  onChange?: (type: 'ADDED' | 'MODIFIED' | 'DELETED', object: KubeObject) => void;
  /** Told of failures it recovers from (410 included). */
  onError?: (err: unknown) => void;
}

/** A watch's resourceVersion is older than the server's event history (kube: 410 Gone, reason Expired or Gone). */
export function isGone(err: unknown): boolean {
  return err instanceof ApiStatusError && err.code === 410;
}

export function cacheKey(obj: KubeObject): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name ?? ''}` : (obj.metadata.name ?? '');
}

export class Reflector<T extends KubeObject = KubeObject> {
  /** namespace/name (or name) → the object as last seen. */
  readonly cache = new Map<string, T>();
  /** The version the cache is at: the list's, then each event's (bookmarks included). */
  resourceVersion = '';
  /** How many lists it has done (1 after the first sync). */
  lists = 0;
  /** How many watches it opened. */
  watches = 0;
  /** How many times the server said 410 (each one made it relist). */
  expired = 0;
  private stopped = false;
  private current: WatchHandle | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly client: ApiClient,
    private readonly resource: ResourceInfo,
    private readonly options: ReflectorOptions = {},
  ) {}

  /** Starts listing and watching in the background; stop() ends it. */
  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.stop();
    this.wake?.();
    await this.running;
  }

  /** Resolves once `check` holds (checked now and after every change); rejects after timeoutMs. */
  until(check: (r: this) => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const probe = (): void => {
        if (!check(this)) return;
        clearTimeout(timer);
        this.waiters.delete(probe);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(probe);
        reject(new Error(`reflector: condition not met within ${timeoutMs} ms (rv ${this.resourceVersion}, ${this.cache.size} objects, ${this.lists} lists)`));
      }, timeoutMs);
      this.waiters.add(probe);
      probe();
    });
  }

  private notify(): void {
    for (const probe of [...this.waiters]) probe();
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        await this.watchOnce();
      } catch (err) {
        if (this.stopped) break;
        this.options.onError?.(err);
        needList = true;
        const gone = isGone(err);
        if (gone) this.expired += 1;
        this.notify();
        if (!gone) await this.sleep(this.options.backoffMs ?? 1000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private change(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void {
    const key = cacheKey(obj);
    if (type === 'DELETED') this.cache.delete(key);
    else this.cache.set(key, obj);
    this.options.onChange?.(type, obj);
  }

  /** Lists and replaces the cache with the answer: what is gone is DELETED, what is new ADDED, what changed MODIFIED. */
  private async list(): Promise<void> {
    const { namespace, labelSelector, fieldSelector } = this.options;
    const list = await this.client.list<T>(this.resource, {
      ...(namespace === undefined ? {} : { namespace }),
      ...(labelSelector === undefined ? {} : { labelSelector }),
      ...(fieldSelector === undefined ? {} : { fieldSelector }),
    });
    if (this.stopped) return;
    const fresh = new Map(list.items.map((o) => [cacheKey(o), o]));
    for (const [key, old] of [...this.cache]) if (!fresh.has(key)) this.change('DELETED', old);
    for (const [key, obj] of fresh) {
      const old = this.cache.get(key);
      if (old === undefined) this.change('ADDED', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.change('MODIFIED', obj);
    }
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    this.lists += 1;
    this.notify();
  }

  /** One watch from resourceVersion until the server ends it; throws the 410 (or any failure). */
  private async watchOnce(): Promise<void> {
    const { namespace, labelSelector, fieldSelector } = this.options;
    let failed: ApiStatusError | undefined;
    const onEvent = (event: ClientWatchEvent<T>): void => {
      if (this.stopped || failed !== undefined) return;
      if (event.type === 'ERROR') {
        failed = new ApiStatusError(event.object);
        this.current?.stop();
        return;
      }
      const rv = event.object.metadata.resourceVersion;
      if (event.type !== 'BOOKMARK') this.change(event.type, event.object);
      if (rv) this.resourceVersion = rv;
      this.notify();
    };
    this.current = await this.client.watch<T>(
      this.resource,
      {
        ...(namespace === undefined ? {} : { namespace }),
        ...(labelSelector === undefined ? {} : { labelSelector }),
        ...(fieldSelector === undefined ? {} : { fieldSelector }),
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
      },
      onEvent,
    );
    this.watches += 1;
    this.notify();
    if (this.stopped) this.current.stop();
    await this.current.done;
    if (failed !== undefined) throw failed;
  }
}
