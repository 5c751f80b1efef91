// The web console's live collection (ui/src/collection.ts, the file the browser bundle uses) against
// the real API server: it lists, follows the watch (added, changed, deleted), resumes a watch the
// server ended (timeoutSeconds) from the last version without losing what happened meanwhile, treats
// a kind the server does not serve as empty, and stops when told.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { Api } from '../../ui/src/api.js';
import { Collection } from '../../ui/src/collection.js';

const CONFIGMAPS = '/api/v1/namespaces/default/configmaps';

async function until(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('the console’s live collection', () => {
  let store: Store;
  let server: ApiServer;
  let api: Api;
  const write = async (method: string, path: string, body?: object): Promise<void> => {
    const type = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': type }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.text()}`);
  };
  const configMap = (name: string, value: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: value } });

  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    api = new Api('unused-on-loopback', server.url);
  });
  after(async () => {
    await server.close();
    store.close();
  });

  it('lists, follows the watch, and resumes one the server ended without losing a change', async () => {
    await write('POST', CONFIGMAPS, configMap('a', '1'));
    await write('POST', CONFIGMAPS, configMap('b', '1'));
    let notified = 0;
    const c = new Collection(api, CONFIGMAPS, () => notified++, undefined, 1);
    c.start();
    try {
      await until('the list', () => c.synced && c.items.size === 2);
      assert.ok(notified > 0);
      await write('POST', CONFIGMAPS, configMap('c', '1'));
      await until('c to be added', () => c.items.has('default/c'));
      await write('PATCH', `${CONFIGMAPS}/a`, { data: { v: '2' } });
      await until('a to change', () => (c.items.get('default/a') as { data?: Record<string, string> } | undefined)?.data?.['v'] === '2');
      await write('DELETE', `${CONFIGMAPS}/b`);
      await until('b to go', () => !c.items.has('default/b'));
      // The server ends each watch after a second: what happens across the gap still arrives.
      await sleep(1300);
      await write('POST', CONFIGMAPS, configMap('d', '1'));
      await until('d to be added after the watch was resumed', () => c.items.has('default/d'));
      assert.deepEqual([...c.items.keys()].sort(), ['default/a', 'default/c', 'default/d']);
      assert.equal(c.error, undefined);
      // Stopped: no more changes are taken in.
      c.stop();
      await write('POST', CONFIGMAPS, configMap('e', '1'));
      await sleep(300);
      assert.equal(c.items.has('default/e'), false);
    } finally {
      c.stop();
    }
  });

  it('takes a kind the server does not serve as an empty collection, not an error', async () => {
    const c = new Collection(api, '/apis/example.com/v1/widgets', () => undefined);
    c.start();
    try {
      await until('the collection to settle', () => c.synced);
      assert.equal(c.items.size, 0);
      assert.equal(c.error, undefined);
    } finally {
      c.stop();
    }
  });

  it('polls instead of watching when asked, and a poll in which nothing of its kind changed is no change', async () => {
    let notified = 0;
    const c = new Collection(api, CONFIGMAPS, () => notified++, 100);
    c.start();
    try {
      await until('the list', () => c.synced && c.items.has('default/a'));
      const before = notified;
      const values = c.values();
      // Writes of another kind move the list's resourceVersion, not its objects.
      await write('POST', '/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } });
      await sleep(350);
      assert.equal(notified, before);
      assert.equal(c.values(), values, 'the same array: the views draw nothing again');
      await write('POST', CONFIGMAPS, configMap('polled', '1'));
      await until('the next list to see it', () => c.items.has('default/polled'));
    } finally {
      c.stop();
    }
  });
});
