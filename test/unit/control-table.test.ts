// Server-side printing: meta.k8s.io Tables built from the same column definitions as `stowage
// get`, typed cells, includeObject, and content negotiation on list, get and watch; ?pretty.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tableRows } from '../../src/cli/format/columns.js';
import { buildTable, type Table } from '../../src/control/api/printers/table.js';
import { RESOURCES, resourceForName } from '../../src/control/api/registry.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { acceptedTypes, tableVersion } from '../../src/control/server/http-io.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import type { IncomingMessage } from 'node:http';

const TABLE_V1 = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const KUBECTL_ACCEPT = `${TABLE_V1},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`;
const NOW = Date.parse('2026-01-01T12:00:00Z');

function resource(name: string) {
  const r = resourceForName(name);
  assert.ok(r, name);
  return r;
}

const configMap: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'default', uid: 'u1', creationTimestamp: '2026-01-01T11:55:00Z', labels: { a: 'b' } }, data: { x: '1', y: '2' } } as KubeObject;

describe('Table building', () => {
  for (const r of RESOURCES) {
    it(`${r.kind}: the columns stowage get prints, wide ones at priority 1`, () => {
      const table = buildTable(r, [], { now: NOW });
      const [normal] = tableRows(r, [], { now: NOW });
      const [wide] = tableRows(r, [], { now: NOW, wide: true });
      assert.deepEqual(table.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name.toUpperCase()), normal);
      assert.deepEqual(table.columnDefinitions.map((c) => c.name.toUpperCase()), wide);
      for (const c of table.columnDefinitions) {
        assert.ok(['string', 'integer', 'number', 'boolean', 'date'].includes(c.type), `${c.name}: ${c.type}`);
        assert.ok(c.description.length > 0, c.name);
      }
      assert.equal(table.columnDefinitions.filter((c) => c.format === 'name').length, 1, 'one name column');
    });
  }

  it('puts printed cells in rows, counts as numbers and flags as booleans', () => {
    const table = buildTable(resource('cm'), [configMap], { now: NOW });
    assert.deepEqual(table.rows[0]?.cells, ['cfg', 2, '5m']);
    const driver = { apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: 'd', creationTimestamp: '2026-01-01T11:00:00Z' }, spec: { attachRequired: false } } as KubeObject;
    assert.deepEqual(buildTable(resource('csidriver'), [driver], { now: NOW }).rows[0]?.cells, ['d', false, false, false, '<unset>', false, '<none>', '60m']);
  });

  const includes: [string | undefined, unknown][] = [
    [undefined, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: configMap.metadata }],
    ['Metadata', { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: configMap.metadata }],
    ['Object', configMap],
    ['None', undefined],
  ];
  for (const [include, expected] of includes) {
    it(`includeObject=${include ?? '(default)'}`, () => {
      const table = buildTable(resource('cm'), [configMap], { now: NOW, ...(include ? { includeObject: include as 'None' } : {}) });
      assert.deepEqual(table.rows[0]?.object, expected);
    });
  }
});

describe('Accept negotiation', () => {
  const cases: [string | undefined, string | undefined][] = [
    [undefined, undefined],
    ['application/json', undefined],
    ['*/*', undefined],
    [KUBECTL_ACCEPT, 'meta.k8s.io/v1'],
    ['application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json', 'meta.k8s.io/v1beta1'],
    ['application/json, application/json;as=Table;v=v1;g=meta.k8s.io', undefined],
    ['application/json;as=Table;v=v2;g=meta.k8s.io, application/json', undefined],
    ['application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io', 'meta.k8s.io/v1'],
    ['application/json;as=Table;v=v1;g=meta.k8s.io;q=0, application/json', undefined],
  ];
  for (const [accept, expected] of cases) {
    it(`${accept ?? '(no Accept)'} → ${expected ?? 'plain JSON'}`, () => {
      assert.equal(tableVersion({ headers: accept === undefined ? {} : { accept } } as IncomingMessage), expected);
    });
  }

  it('reads media range parameters', () => {
    assert.deepEqual(acceptedTypes('Application/JSON; as=Table ;v="v1"'), [{ type: 'application/json', params: { as: 'Table', v: 'v1' } }]);
  });
});

describe('Tables over HTTP', () => {
  let store: Store;
  let server: ApiServer;
  const CMS = '/api/v1/namespaces/default/configmaps';
  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace: 'default' }, data: { a: 'b' } } as KubeObject);
  });
  after(async () => {
    await server.close();
    store.close();
  });

  const get = async <T>(path: string, accept?: string): Promise<{ status: number; body: T; text: string }> => {
    const res = await fetch(server.url + path, accept === undefined ? {} : { headers: { accept } });
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text) as T, text };
  };

  it('answers a list as a Table when asked, and as a List otherwise', async () => {
    const table = await get<Table>(CMS, KUBECTL_ACCEPT);
    assert.equal(table.status, 200);
    assert.equal(table.body.kind, 'Table');
    assert.equal(table.body.apiVersion, 'meta.k8s.io/v1');
    assert.match(table.body.metadata.resourceVersion ?? '', /^\d+$/);
    assert.deepEqual(table.body.columnDefinitions.map((c) => c.name), ['Name', 'Data', 'Age']);
    assert.deepEqual(table.body.rows.map((r) => r.cells.slice(0, 2)), [['one', 1]]);
    assert.equal((table.body.rows[0]?.object as { kind?: string } | undefined)?.kind, 'PartialObjectMetadata');
    assert.equal((await get<{ kind: string }>(CMS)).body.kind, 'ConfigMapList');
    assert.equal((await get<{ kind: string }>(CMS, 'application/json')).body.kind, 'ConfigMapList');
    const beta = await get<Table>(`${CMS}?includeObject=Object`, 'application/json;as=Table;v=v1beta1;g=meta.k8s.io');
    assert.equal(beta.body.apiVersion, 'meta.k8s.io/v1beta1');
    assert.equal((beta.body.rows[0]?.object as { kind?: string } | undefined)?.kind, 'ConfigMap');
  });

  it('answers a get as a one-row Table, and refuses an unknown includeObject as kube-apiserver does', async () => {
    const one = await get<Table>(`${CMS}/one?includeObject=None`, KUBECTL_ACCEPT);
    assert.equal(one.body.rows.length, 1);
    assert.equal(one.body.rows[0]?.object, undefined);
    const bad = await get<{ code: number; message: string }>(`${CMS}?includeObject=All`, KUBECTL_ACCEPT);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.message, 'unrecognized includeObject value: "All"');
  });

  it('streams watch events as Tables, the column definitions in the first only', async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}${CMS}?watch=1`, { headers: { accept: KUBECTL_ACCEPT }, signal: controller.signal });
    const reader = res.body?.getReader();
    assert.ok(reader);
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'two', namespace: 'default' } } as KubeObject);
    let text = '';
    const decoder = new TextDecoder();
    while (text.split('\n').length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();
    const [first, second] = text.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: Table });
    assert.equal(first?.type, 'ADDED');
    assert.equal(first?.object.kind, 'Table');
    assert.equal(first?.object.columnDefinitions.length, 3);
    assert.equal(first?.object.rows[0]?.cells[0], 'one');
    assert.equal(second?.object.kind, 'Table');
    assert.deepEqual(second?.object.columnDefinitions, []);
    assert.equal(second?.object.rows[0]?.cells[0], 'two');
  });

  it("answers client-go's metadata client with PartialObjectMetadata, for list, get and watch", async () => {
    const accept = (as: string) => `application/vnd.kubernetes.protobuf;as=${as};g=meta.k8s.io;v=v1,application/json;as=${as};g=meta.k8s.io;v=v1,application/json`;
    type Partial = { kind: string; apiVersion: string; metadata: { name?: string; resourceVersion?: string }; items?: Partial[] };
    const list = await get<Partial>(CMS, accept('PartialObjectMetadataList'));
    assert.equal(list.body.kind, 'PartialObjectMetadataList');
    assert.equal(list.body.apiVersion, 'meta.k8s.io/v1');
    assert.match(list.body.metadata.resourceVersion ?? '', /^\d+$/);
    assert.deepEqual(list.body.items?.map((i) => [i.kind, i.metadata.name]), [
      ['PartialObjectMetadata', 'one'],
      ['PartialObjectMetadata', 'two'],
    ]);
    assert.equal('data' in (list.body.items?.[0] ?? {}), false, 'metadata only');
    const one = await get<Partial>(`${CMS}/one`, accept('PartialObjectMetadata'));
    assert.deepEqual([one.body.kind, one.body.apiVersion, one.body.metadata.name], ['PartialObjectMetadata', 'meta.k8s.io/v1', 'one']);
    // A list cannot be answered as a single object's metadata: the JSON list it also accepts.
    assert.equal((await get<Partial>(CMS, accept('PartialObjectMetadata'))).body.kind, 'ConfigMapList');

    const controller = new AbortController();
    const res = await fetch(`${server.url}${CMS}?watch=1`, { headers: { accept: accept('PartialObjectMetadata') }, signal: controller.signal });
    const reader = res.body?.getReader();
    assert.ok(reader);
    const { value } = await reader.read();
    controller.abort();
    const event = JSON.parse(new TextDecoder().decode(value).split('\n')[0] ?? '') as { type: string; object: Partial };
    assert.deepEqual([event.type, event.object.kind, event.object.metadata.name], ['ADDED', 'PartialObjectMetadata', 'one']);
  });

  it('indents JSON with ?pretty=true', async () => {
    const pretty = await get<unknown>(`${CMS}/one?pretty=true`);
    assert.match(pretty.text, /^\{\n {2}"apiVersion": "v1",\n/);
    assert.doesNotMatch((await get<unknown>(`${CMS}/one`)).text, /\n/);
  });
});
