// ?watch=1: a chunked response of newline-delimited JSON watch events ({"type":…,"object":…}),
// as the Kubernetes API server streams them. A stream ends when the client goes away, when
// timeoutSeconds elapse, or when the server closes. With ?allowWatchBookmarks=true a quiet stream
// gets a BOOKMARK event every minute: an object carrying only metadata.resourceVersion, up to
// which every event of the watch has been sent, so that a client can resume from there.
//
// The store calls watch handlers before a write is committed (it commits in groups, see
// store.ts); events are held back until store.flushed() says the writes behind them are durable,
// so that a client never sees a change that a crash could take back.
import type { ServerResponse } from 'node:http';
import type { ResourceInfo } from '../api/registry.js';
import type { KubeObject, WatchEvent } from '../api/types/meta.js';
import type { Store, WatchOptions } from '../store/store.js';

/** What a stream sends for an event's object instead of the object (a Table, for as=Table). */
export type WatchTransform = (object: KubeObject, first: boolean) => unknown;

export interface StreamOptions {
  transform?: WatchTransform;
  /** allowWatchBookmarks: the object of a BOOKMARK event at a resourceVersion. */
  bookmark?: (resourceVersion: string) => unknown;
}

/** How often a watch that asked for bookmarks gets one, as kube-apiserver's watch cache (about a minute). */
const BOOKMARK_INTERVAL_MS = 60_000;

export class WatchStreams {
  private readonly open = new Set<() => void>();

  constructor(private readonly bookmarkIntervalMs = BOOKMARK_INTERVAL_MS) {}

  serve(store: Store, resource: ResourceInfo, options: WatchOptions, timeoutSeconds: number | undefined, res: ServerResponse, stream: StreamOptions = {}): void {
    const { transform, bookmark } = stream;
    // The initial events arrive inside store.watch(), before the headers may be sent: subscribing
    // first lets an Expired or BadRequest error still become a plain error response.
    let queued: string[] = [];
    let sending = false;
    let streaming = false;
    let finished = false;
    // Lines queued before flushed() was asked are covered by the commit it waits for; later ones
    // wait for the next.
    const pump = (): void => {
      if (sending || !streaming || finished || queued.length === 0) return;
      sending = true;
      const batch = queued;
      queued = [];
      store.flushed().then(
        () => {
          sending = false;
          if (finished) return;
          res.write(batch.join(''));
          pump();
        },
        () => {
          // The store failed: what it would send may never have been committed.
          sending = false;
          res.destroy();
          finish();
        },
      );
    };
    let first = true;
    const encode = (event: WatchEvent): unknown => {
      if (transform === undefined) return event;
      const object = transform(event.object, first);
      first = false;
      return { type: event.type, object };
    };
    const unsubscribe = store.watch(resource.plural, options, (event) => {
      queued.push(`${JSON.stringify(encode(event))}\n`);
      pump();
    });
    let timer: NodeJS.Timeout | undefined;
    let bookmarks: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (!this.open.delete(finish)) return;
      finished = true;
      unsubscribe();
      clearTimeout(timer);
      clearInterval(bookmarks);
      res.end();
    };
    this.open.add(finish);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    // Clients wait for the headers before reading events; send them even if no event comes.
    res.flushHeaders();
    streaming = true;
    pump();
    res.on('close', finish);
    if (bookmark !== undefined) {
      bookmarks = setInterval(() => {
        // Only when nothing is waiting: then every event of a committed write has been sent.
        if (sending || finished || queued.length > 0) return;
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: bookmark(store.committedResourceVersion) })}\n`);
      }, this.bookmarkIntervalMs);
    }
    // Node's timers hold at most 2^31-1 ms (longer ones fire at once): a longer timeout is as good as none.
    if (timeoutSeconds !== undefined && timeoutSeconds > 0 && timeoutSeconds * 1000 < 2 ** 31) timer = setTimeout(finish, timeoutSeconds * 1000);
  }

  /** Ends every open watch (server shutdown). */
  closeAll(): void {
    for (const finish of [...this.open]) finish();
  }
}
