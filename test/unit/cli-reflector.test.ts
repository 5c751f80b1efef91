// The client-go-style Reflector (cli/reflector.ts): how a relist replaces the cache (table-driven,
// on a scripted client), then through real HTTPS API servers on one store: the cache follows
// creates, updates and deletes while it watches; a watch from a version older than the store's
// event history (kept to 5 events here) gets 410 Expired and makes it relist and end with the
// server's contents; a server restart makes it back off and relist; BOOKMARK events advance its
// version so that the same history loss does not.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient, ApiStatusError, type ClientWatchEvent, resolveResource, type WatchHandle } from '../../src/cli/api-client.js';
import { cacheKey, Reflector } from '../../src/cli/reflector.js';
import type { KubeList, KubeObject } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { open, type Store } from '../../src/control/store/store.js';

const TOKEN = 'reflector-token';
const cms = resolveResource('configmaps');

function cm(name: string, rv: string, namespace = 'default'): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, resourceVersion: rv } };
}

describe('reflector: cache keys', () => {
  const cases: [KubeObject, string][] = [
    [cm('a', '1'), 'default/a'],
    [cm('a', '1', 'other'), 'other/a'],
    [{ apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'pv-1' } }, 'pv-1'],
  ];
  for (const [obj, key] of cases) it(key, () => assert.equal(cacheKey(obj), key));
});

describe('reflector: a relist replaces the cache', () => {
  const gone = new ApiStatusError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', code: 410, reason: 'Expired', message: 'too old resource version: 1 (9)' });
  /** A client whose lists answer `lists` in turn and whose every watch is refused with 410, so each list follows the previous one. */
  function scripted(lists: KubeObject[][]): ApiClient {
    let n = 0;
    return {
      list: async (): Promise<KubeList> => {
        const items = lists[Math.min(n, lists.length - 1)] ?? [];
        n += 1;
        return { apiVersion: 'v1', kind: 'ConfigMapList', metadata: { resourceVersion: String(10 * n) }, items };
      },
      watch: async (_r: unknown, _o: unknown, _e: (e: ClientWatchEvent) => void): Promise<WatchHandle> => {
        throw gone;
      },
    } as unknown as ApiClient;
  }
  const cases: { name: string; before: KubeObject[]; after: KubeObject[]; changes: string[] }[] = [
    { name: 'new objects are ADDED', before: [], after: [cm('a', '1'), cm('b', '2')], changes: ['ADDED default/a', 'ADDED default/b'] },
    { name: 'vanished objects are DELETED', before: [cm('a', '1'), cm('b', '2')], after: [cm('b', '2')], changes: ['DELETED default/a'] },
    { name: 'a new version is MODIFIED, the same version nothing', before: [cm('a', '1'), cm('b', '2')], after: [cm('a', '5'), cm('b', '2')], changes: ['MODIFIED default/a'] },
    { name: 'all at once', before: [cm('a', '1'), cm('b', '2')], after: [cm('b', '7'), cm('c', '8')], changes: ['DELETED default/a', 'MODIFIED default/b', 'ADDED default/c'] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const changes: string[] = [];
      const r = new Reflector(scripted([c.before, c.after]), cms, { onChange: (type, obj) => changes.push(`${type} ${cacheKey(obj)}`) });
      r.start();
      await r.until((x) => x.lists >= 2);
      await r.stop();
      assert.deepEqual(changes.slice(c.before.length), c.changes);
      assert.deepEqual([...r.cache.values()].sort((x, y) => cacheKey(x).localeCompare(cacheKey(y))), c.after);
      assert.equal(r.resourceVersion, '20');
      assert.ok(r.expired >= 1);
    });
  }
});

describe('reflector against https API servers', () => {
  let dir: string;
  let store: Store;
  /** Bookmarks once a minute: none within a test. */
  let quiet: ApiServer;
  /** Bookmarks every 50 ms. */
  let chatty: ApiServer;
  let caPem: string;
  const client = (server: ApiServer): ApiClient => new ApiClient({ server: server.url, caPem, token: TOKEN });
  const reflectors: Reflector[] = [];
  const reflector = (server: ApiServer, options: ConstructorParameters<typeof Reflector>[2]): Reflector => {
    const r = new Reflector(client(server), cms, options);
    reflectors.push(r);
    r.start();
    return r;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-reflector-'));
    store = open(':memory:', { eventRetention: 5 });
    const pki = await ensurePki(dir, ['127.0.0.1']);
    caPem = pki.caPem;
    const tls = { certPem: pki.certPem, keyPem: pki.keyPem };
    quiet = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls });
    chatty = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls, watchBookmarkIntervalMs: 50 });
  });
  after(async () => {
    await Promise.all(reflectors.map((r) => r.stop()));
    await quiet.close();
    await chatty.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Creates `n` ConfigMaps the reflectors under test do not select; resolves with the last one's resourceVersion. */
  async function unselected(prefix: string, n: number): Promise<number> {
    let rv = 0;
    for (let i = 0; i < n; i++) {
      const made = await client(quiet).create<KubeObject>(cms, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${prefix}-${i}`, namespace: 'default' } });
      rv = Number(made.metadata.resourceVersion);
    }
    return rv;
  }

  it('keeps the cache in step with creates, updates and deletes while it watches', async () => {
    const changes: string[] = [];
    const r = reflector(quiet, { namespace: 'live', onChange: (type, obj) => changes.push(`${type} ${obj.metadata.name ?? ''}`) });
    await r.until((x) => x.watches === 1);
    const c = client(quiet);
    await c.create(resolveResource('namespaces'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'live' } });
    await c.create(cms, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'live' }, data: { v: '1' } } as KubeObject);
    await c.create(cms, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b', namespace: 'live' } });
    await c.create(cms, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'elsewhere', namespace: 'default' } });
    const updated = await c.patch(cms, 'live', 'a', { data: { v: '2' } });
    await c.delete(cms, 'live', 'b');
    await r.until((x) => x.resourceVersion === updated.metadata.resourceVersion || Number(x.resourceVersion) > Number(updated.metadata.resourceVersion));
    await r.until((x) => !x.cache.has('live/b'));
    assert.deepEqual(changes, ['ADDED a', 'ADDED b', 'MODIFIED a', 'DELETED b']);
    assert.deepEqual([...r.cache.keys()], ['live/a']);
    assert.deepEqual((r.cache.get('live/a') as unknown as { data: unknown }).data, { v: '2' });
    assert.equal(r.lists, 1, 'no relist while the watch holds');
  });

  it('relists after 410 Expired and ends with the server\'s contents', async () => {
    const errors: unknown[] = [];
    const r = reflector(quiet, { labelSelector: 'app=watched', watchTimeoutSeconds: 1, backoffMs: 50, onError: (e) => errors.push(e) });
    await r.until((x) => x.watches === 1);
    const c = client(quiet);
    await c.create(cms, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kept', namespace: 'default', labels: { app: 'watched' } } });
    await r.until((x) => x.cache.has('default/kept'));
    // Its version stays at "kept"'s: no event it selects, no bookmark. Five events of history are
    // kept, so these push that version out; its next watch (after 1 s) is refused.
    const last = await unselected('flood', 12);
    await r.until((x) => x.lists >= 2, 5000);
    assert.ok(r.expired >= 1);
    const first = errors[0];
    assert.ok(first instanceof ApiStatusError);
    assert.equal(first.code, 410);
    assert.equal(first.reason, 'Expired');
    assert.match(first.message, /^too old resource version: \d+ \(\d+\)$/);
    assert.ok(Number(r.resourceVersion) >= last, `relisted at ${r.resourceVersion}, after ${last}`);
    const server = await c.list(cms, { labelSelector: 'app=watched' });
    assert.deepEqual([...r.cache.keys()].sort(), server.items.map(cacheKey).sort());
    // And it goes on watching from there: a change after the relist reaches the cache.
    await c.create(cms, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-relist', namespace: 'default', labels: { app: 'watched' } } });
    await r.until((x) => x.cache.has('default/after-relist'));
  });

  it('rides out a restart of the API server: backs off, relists, and has what changed while it was down', async () => {
    const pki = await ensurePki(dir, ['127.0.0.1']);
    const tls = { certPem: pki.certPem, keyPem: pki.keyPem };
    let restarting = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls });
    const url = restarting.url;
    const errors: unknown[] = [];
    const r = reflector(restarting, { namespace: 'restart', backoffMs: 50, onError: (e) => errors.push(e) });
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'restart' } });
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'before', namespace: 'restart' } });
    await r.until((x) => x.cache.has('restart/before'));
    await restarting.close();
    store.delete('configmaps', 'restart', 'before');
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'while-down', namespace: 'restart' } });
    await r.until(() => errors.length > 0);
    restarting = await startApiServer({ store, listen: url, token: TOKEN, tls });
    try {
      await r.until((x) => x.lists >= 2 && x.cache.has('restart/while-down') && !x.cache.has('restart/before'));
      assert.deepEqual([...r.cache.keys()], ['restart/while-down']);
    } finally {
      await r.stop();
      await restarting.close();
    }
  });

  it('moves its version with BOOKMARK events, so the same history loss needs no relist', async () => {
    const r = reflector(chatty, { labelSelector: 'app=bookmarked', watchTimeoutSeconds: 2, backoffMs: 50 });
    await r.until((x) => x.watches === 1);
    const start = Number(r.resourceVersion);
    const last = await unselected('quiet', 12);
    await r.until((x) => Number(x.resourceVersion) >= last, 1500);
    assert.ok(last > start);
    assert.equal(r.cache.size, 0, 'a bookmark changes no object');
    // Its watch ends after 2 s and resumes from the bookmark's version: no 410, no relist.
    await r.until((x) => x.watches >= 2, 5000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(r.expired, 0);
    assert.equal(r.lists, 1);
  });
});
