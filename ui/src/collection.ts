// A live collection, as client-go's reflector keeps one: list, then watch from the list's
// resourceVersion with bookmarks; the server ends a watch after timeoutSeconds (5 to 10 minutes,
// chosen at random as client-go does) and it is resumed from the last version seen; an expired
// version (410) relists, and an error retries after a pause. A 404 (a kind this server does not
// serve) is an empty collection. Or, for kinds that change rarely, a list every pollMs.
import { type Api, ApiFailure } from './api.js';
import { type KObject, key } from './types.js';

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KObject & { code?: number };
}

export class Collection {
  readonly items = new Map<string, KObject>();
  /** Listed at least once (an empty collection is then really empty). */
  synced = false;
  /** Why the last list or watch failed, if it did. */
  error: string | undefined;
  private rv = '';
  private snapshot: KObject[] | undefined;
  private stopped = false;
  private abort: AbortController | undefined;

  constructor(
    private readonly api: Api,
    readonly path: string,
    private readonly notify: () => void,
    /** Relist every pollMs instead of watching. */
    private readonly pollMs?: number,
    /** How long the server keeps one watch open; default 300–600 s at random. */
    private readonly watchTimeoutSeconds = Math.floor(300 * (1 + Math.random())),
  ) {}

  /** The items as an array that stays the same object until the collection changes. */
  values(): KObject[] {
    this.snapshot ??= [...this.items.values()];
    return this.snapshot;
  }

  private changed(): void {
    this.snapshot = undefined;
    this.notify();
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async run(): Promise<void> {
    let relist = true;
    while (!this.stopped) {
      try {
        if (this.pollMs !== undefined) {
          await this.list();
          this.error = undefined;
          await new Promise((r) => setTimeout(r, this.pollMs));
          continue;
        }
        if (relist) await this.list();
        relist = await this.watch();
        this.error = undefined;
      } catch (err) {
        if (this.stopped) return;
        // A resource this server does not serve (404) is an empty collection, not an error.
        if (err instanceof ApiFailure && err.status === 404) {
          this.synced = true;
          this.changed();
          return;
        }
        this.error = err instanceof Error ? err.message : String(err);
        this.changed();
        relist = true;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async list(): Promise<void> {
    const list = await this.api.json<{ items: KObject[]; metadata: { resourceVersion?: string } }>(this.path);
    this.rv = list.metadata.resourceVersion ?? '';
    // A relist in which no object changed (the list's version moves with every write anywhere) is
    // no change: the views keep their arrays and draw nothing again.
    const same = this.synced && list.items.length === this.items.size && list.items.every((o) => this.items.get(key(o))?.metadata.resourceVersion === o.metadata.resourceVersion);
    if (same) return;
    this.items.clear();
    for (const o of list.items) this.items.set(key(o), o);
    this.synced = true;
    this.changed();
  }

  /** Follows the watch until it ends; true when the collection must be listed again (410 Gone). */
  private async watch(): Promise<boolean> {
    this.abort = new AbortController();
    const sep = this.path.includes('?') ? '&' : '?';
    const res = await this.api.request(`${this.path}${sep}watch=1&allowWatchBookmarks=true&timeoutSeconds=${this.watchTimeoutSeconds}&resourceVersion=${encodeURIComponent(this.rv)}`, { signal: this.abort.signal });
    const reader = res.body?.getReader();
    if (reader === undefined) return false;
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return false;
      buffer += decoder.decode(value, { stream: true });
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
        if (line === '') continue;
        const event = JSON.parse(line) as WatchEvent;
        if (event.type === 'ERROR') {
          if (event.object.code === 410) return true;
          throw new Error(`watch of ${this.path}: ${(event.object as { message?: string }).message ?? 'error'}`);
        }
        const rv = event.object.metadata?.resourceVersion;
        if (rv !== undefined) this.rv = rv;
        if (event.type === 'BOOKMARK') continue;
        if (event.type === 'DELETED') this.items.delete(key(event.object));
        else this.items.set(key(event.object), event.object);
        this.changed();
      }
    }
  }
}
