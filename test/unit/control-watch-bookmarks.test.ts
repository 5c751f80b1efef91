// Watch bookmarks: with allowWatchBookmarks=true a watch gets BOOKMARK events carrying only
// metadata.resourceVersion (the point up to which it has seen every event); without it, none.
// The handler runs behind a plain node:http server whose watches bookmark every 50 ms.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { handleCollection } from '../../src/control/server/resource-handler.js';
import { route } from '../../src/control/server/routes.js';
import { WatchStreams } from '../../src/control/server/watch-stream.js';
import { open, type Store } from '../../src/control/store/store.js';

const CMS = '/api/v1/namespaces/default/configmaps';
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';

interface Event {
  type: string;
  object: { kind: string; apiVersion: string; metadata: { name?: string; resourceVersion?: string }; rows?: unknown[] };
}

describe('watch bookmarks', () => {
  let store: Store;
  let server: Server;
  let base: string;
  const watches = new WatchStreams(50);

  before(async () => {
    store = open(':memory:');
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const r = route(url.pathname);
      if (r.type !== 'collection') throw new Error('collection routes only');
      handleCollection({ store, watches }, r, req, res, url.searchParams).catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    watches.closeAll();
    await new Promise((resolve) => server.close(resolve));
    store.close();
  });

  /** The events of a watch over `ms` milliseconds, while `during` runs. */
  async function watch(query: string, ms: number, accept?: string, during?: () => void): Promise<Event[]> {
    const controller = new AbortController();
    const res = await fetch(`${base}${CMS}?watch=1&${query}`, { signal: controller.signal, ...(accept ? { headers: { accept } } : {}) });
    const reader = res.body?.getReader();
    assert.ok(reader);
    during?.();
    setTimeout(() => controller.abort(), ms);
    let text = '';
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      // aborted: the time is up
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Event);
  }

  it('sends BOOKMARK events with only the resourceVersion, at or after the last event sent', async () => {
    const events = await watch('allowWatchBookmarks=true', 300, undefined, () => {
      store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'default' } } as KubeObject);
    });
    const added = events.find((e) => e.type === 'ADDED');
    assert.ok(added, JSON.stringify(events));
    const bookmarks = events.filter((e) => e.type === 'BOOKMARK');
    assert.ok(bookmarks.length >= 2, `several bookmarks in 300 ms: ${JSON.stringify(events)}`);
    for (const b of bookmarks) {
      assert.deepEqual(Object.keys(b.object.metadata), ['resourceVersion']);
      assert.equal(b.object.kind, 'ConfigMap');
      assert.equal(b.object.apiVersion, 'v1');
    }
    const last = bookmarks.at(-1)?.object.metadata.resourceVersion ?? '';
    assert.ok(Number(last) >= Number(added.object.metadata.resourceVersion), `${last} covers the ADDED event`);
  });

  it('sends none unless asked', async () => {
    const events = await watch('', 250);
    assert.deepEqual(
      events.filter((e) => e.type === 'BOOKMARK'),
      [],
    );
  });

  it('sends empty Tables as bookmarks of a Table watch', async () => {
    const events = await watch('allowWatchBookmarks=1', 200, TABLE);
    const bookmark = events.find((e) => e.type === 'BOOKMARK');
    assert.ok(bookmark);
    assert.equal(bookmark.object.kind, 'Table');
    assert.deepEqual(bookmark.object.rows, []);
    assert.match(bookmark.object.metadata.resourceVersion ?? '', /^\d+$/);
  });
});
