// ?resourceVersionMatch on lists: kube-apiserver's ListOptions rules (422 for meta.k8s.io
// ListOptions), Exact reading the snapshot at a resourceVersion (410 once the event log no longer
// reaches it), NotOlderThan reading now, and a version the store has not reached a 504 Timeout.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubeObject, Status } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const CMS = '/api/v1/namespaces/default/configmaps';

function configMap(name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' } } as KubeObject;
}

interface List {
  metadata: { resourceVersion: string };
  items: KubeObject[];
}

describe('resourceVersionMatch', () => {
  let store: Store;
  let server: ApiServer;
  before(async () => {
    store = open(':memory:', { eventRetention: 20 });
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  after(async () => {
    await server.close();
    store.close();
  });

  const get = async <T>(query: string): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${server.url}${CMS}?${query}`);
    return { status: res.status, body: (await res.json()) as T };
  };

  const invalid: [string, string][] = [
    ['resourceVersionMatch=Exact', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided'],
    ['resourceVersion=0&resourceVersionMatch=Exact', 'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'],
    ['resourceVersion=1&resourceVersionMatch=Newest', 'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""'],
    ['resourceVersion=1&resourceVersionMatch=Exact&continue=abc', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided'],
    ['sendInitialEvents=true', 'sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list'],
    ['watch=1&resourceVersionMatch=NotOlderThan', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided'],
  ];
  for (const [query, cause] of invalid) {
    it(`refuses ?${query}`, async () => {
      const r = await get<Status>(query);
      assert.equal(r.status, 422);
      assert.equal(r.body.reason, 'Invalid');
      assert.equal(r.body.message, `ListOptions.meta.k8s.io "" is invalid: ${cause}`);
      assert.deepEqual([r.body.details?.kind, r.body.details?.group], ['ListOptions', 'meta.k8s.io']);
    });
  }

  it('reads the snapshot at an Exact resourceVersion, and now for NotOlderThan', async () => {
    store.create(configMap('a'));
    const first = await get<List>('');
    store.create(configMap('b'));
    store.delete('configmaps', 'default', 'a');
    const rv = first.body.metadata.resourceVersion;
    const exact = await get<List>(`resourceVersion=${rv}&resourceVersionMatch=Exact`);
    assert.equal(exact.status, 200);
    assert.equal(exact.body.metadata.resourceVersion, rv);
    assert.deepEqual(exact.body.items.map((i) => i.metadata.name), ['a']);
    const newer = await get<List>(`resourceVersion=${rv}&resourceVersionMatch=NotOlderThan`);
    assert.deepEqual(newer.body.items.map((i) => i.metadata.name), ['b']);
    assert.ok(Number(newer.body.metadata.resourceVersion) > Number(rv));
  });

  it('answers 410 Expired for an Exact version the event log no longer reaches', async () => {
    for (let i = 0; i < 60; i++) store.create(configMap(`many-${i}`));
    const r = await get<Status>('resourceVersion=1&resourceVersionMatch=Exact');
    assert.equal(r.status, 410);
    assert.equal(r.body.reason, 'Expired');
    assert.equal(r.body.message, 'The resourceVersion for the provided list is too old.');
  });

  it('waits for a version the store has not reached, then answers 504 Too large resource version', async () => {
    const now = Number((await get<List>('')).body.metadata.resourceVersion);
    const started = Date.now();
    const r = await get<Status>(`resourceVersion=${now + 100}&resourceVersionMatch=NotOlderThan`);
    assert.ok(Date.now() - started >= 2900, 'waited about 3 s');
    assert.equal(r.status, 504);
    assert.equal(r.body.reason, 'Timeout');
    assert.equal(r.body.message, `Too large resource version: ${now + 100}, current: ${now}`);
    assert.equal(r.body.details?.retryAfterSeconds, 1);
    // Reached while waiting: answered as soon as it is.
    const soon = get<List>(`resourceVersion=${now + 1}&resourceVersionMatch=NotOlderThan`);
    setTimeout(() => store.create(configMap('late')), 200);
    const reached = await soon;
    assert.equal(reached.status, 200);
    assert.ok(reached.body.items.some((i) => i.metadata.name === 'late'));
  });
});
