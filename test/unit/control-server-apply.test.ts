// Server-side apply and managedFields through the real HTTP server: PATCH with
// application/apply-patch+yaml creates and applies, with kube-apiserver's 409 on conflicts and
// its 422 on a missing fieldManager; every create, update and patch leaves a managedFields entry
// naming its manager (?fieldManager, else the User-Agent's program).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ManagedFieldsEntry, Status } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const CMS = '/api/v1/namespaces/default/configmaps';
const PVCS = '/api/v1/namespaces/default/persistentvolumeclaims';
const APPLY = 'application/apply-patch+yaml';

interface Obj {
  metadata: { name: string; labels?: Record<string, string>; managedFields?: ManagedFieldsEntry[]; resourceVersion?: string };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

interface Reply<T> {
  status: number;
  body: T;
}

describe('API server: server-side apply and managedFields', () => {
  let store: Store;
  let server: ApiServer;
  const call = async <T = Obj>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> => {
    const res = await fetch(server.url + path, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  const apply = <T = Obj>(path: string, query: string, yaml: string): Promise<Reply<T>> => call<T>('PATCH', `${path}?${query}`, yaml, { 'content-type': APPLY });
  /** The entries' managers, sorted (their order depends on the second each write fell in). */
  const owners = (obj: Obj): string[] => (obj.metadata.managedFields ?? []).map((e) => `${e.manager}/${e.operation}${e.subresource ? `/${e.subresource}` : ''}`).sort();
  const cm = (data: string, extra = ''): string => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n${extra}data:\n${data}`;

  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  it('creates with 201, applies with 200, removes what the manager stopped applying', async () => {
    const created = await apply(`${CMS}/c`, 'fieldManager=tool', cm('  a: "1"\n  b: "2"\n', '  labels:\n    app: web\n'));
    assert.equal(created.status, 201);
    assert.deepEqual(created.body.data, { a: '1', b: '2' });
    const [entry] = created.body.metadata.managedFields ?? [];
    assert.deepEqual({ ...entry, time: undefined }, {
      manager: 'tool',
      operation: 'Apply',
      apiVersion: 'v1',
      time: undefined,
      fieldsType: 'FieldsV1',
      fieldsV1: { 'f:data': { 'f:a': {}, 'f:b': {} }, 'f:metadata': { 'f:labels': { 'f:app': {} } } },
    });
    assert.match(entry?.time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // JSON is YAML too: client-go sends apply configurations as JSON.
    const again = await apply(`${CMS}/c`, 'fieldManager=tool', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' } }));
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.data, { a: '1' });
    assert.equal(again.body.metadata.labels, undefined);
    const got = await call('GET', `${CMS}/c`);
    assert.deepEqual(got.body.metadata.managedFields, again.body.metadata.managedFields, 'stored as answered');

    const same = await apply(`${CMS}/c`, 'fieldManager=tool', cm('  a: "1"\n'));
    assert.equal(same.status, 200);
    assert.equal(same.body.metadata.resourceVersion, again.body.metadata.resourceVersion, 'an apply that changes nothing writes nothing');
  });

  it('answers a conflict with kube-apiserver\'s Status, and takes the field with force=true', async () => {
    await apply(`${CMS}/c`, 'fieldManager=tool', cm('  a: "1"\n', '  labels:\n    app: web\n'));
    const label = await call('PATCH', `${CMS}/c?fieldManager=kubectl-label`, { metadata: { labels: { app: 'db' } } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(label.status, 200);
    assert.deepEqual(owners(label.body), ['kubectl-label/Update', 'tool/Apply']);

    const conflict = await apply<Status>(`${CMS}/c`, 'fieldManager=tool', cm('  a: "1"\n', '  labels:\n    app: web\n'));
    assert.equal(conflict.status, 409);
    assert.deepEqual(conflict.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Apply failed with 1 conflict: conflict with "kubectl-label" using v1: .metadata.labels.app',
      reason: 'Conflict',
      details: { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "kubectl-label" using v1', field: '.metadata.labels.app' }] },
      code: 409,
    });
    assert.equal((await call('GET', `${CMS}/c`)).body.metadata.labels?.app, 'db', 'a refused apply writes nothing');

    const forced = await apply(`${CMS}/c`, 'fieldManager=tool&force=true', cm('  a: "1"\n', '  labels:\n    app: web\n'));
    assert.equal(forced.status, 200);
    assert.equal(forced.body.metadata.labels?.app, 'web');
    assert.deepEqual(owners(forced.body), ['tool/Apply'], 'the label left kubectl-label, which owned nothing else');
  });

  const refusals: { name: string; query: string; body: string; type?: string; code: number; message: string }[] = [
    { name: 'an apply without fieldManager', query: '', body: cm('  a: "1"\n'), code: 422, message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch' },
    {
      name: 'a fieldManager with a control character',
      query: 'fieldManager=a%0Ab',
      body: cm('  a: "1"\n'),
      code: 422,
      message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Invalid value: "a\\nb": invalid character U+000A (at position 1)',
    },
    {
      name: 'force on a merge patch',
      query: 'force=true',
      body: '{"data":{"a":"2"}}',
      type: 'application/merge-patch+json',
      code: 422,
      message: 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
    },
    { name: 'managedFields in an apply configuration', query: 'fieldManager=m', body: cm('  a: "1"\n', '  managedFields: [{manager: x}]\n'), code: 400, message: 'metadata.managedFields must be nil' },
    {
      name: 'an apply configuration of another version',
      query: 'fieldManager=m',
      body: 'apiVersion: v2\nkind: ConfigMap\nmetadata:\n  name: c\n',
      code: 400,
      message: 'Incorrect version specified in apply patch. Specified patch version: v2, expected: v1',
    },
    {
      name: 'an apply configuration naming another object',
      query: 'fieldManager=m',
      body: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n',
      code: 400,
      message: 'the name of the object (other) does not match the name on the URL (c)',
    },
  ];
  it('refuses an apply configuration that repeats a list key (400)', async () => {
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - {name: c, image: a}\n  - {name: c, image: b}\n';
    const res = await apply<Status>('/api/v1/namespaces/default/pods/p', 'fieldManager=m', pod);
    assert.equal(res.status, 400);
    assert.equal(res.body.message, 'failed to create typed patch object (/v1, Kind=Pod): .spec.containers: duplicate entries for key [name="c"]');
  });

  it('re-applies a pod whose port leaves its protocol to the default without doubling the port', async () => {
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: a\n    ports:\n    - containerPort: 80\n';
    assert.equal((await apply('/api/v1/namespaces/default/pods/p', 'fieldManager=m', pod)).status, 201);
    const again = await apply<Obj & { spec: { containers: { ports: unknown[] }[] } }>('/api/v1/namespaces/default/pods/p', 'fieldManager=m', pod);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.spec.containers[0]?.ports, [{ containerPort: 80, protocol: 'TCP' }]);
  });

  for (const r of refusals) {
    it(`refuses ${r.name} (${r.code})`, async () => {
      await apply(`${CMS}/c`, 'fieldManager=tool', cm('  a: "1"\n'));
      const res = await call<Status>('PATCH', `${CMS}/c?${r.query}`, r.body, { 'content-type': r.type ?? APPLY });
      assert.equal(res.status, r.code);
      assert.equal(res.body.message, r.message);
    });
  }

  it('records creates, updates and patches under ?fieldManager or the User-Agent\'s program name', async () => {
    const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' } };
    const created = await call('POST', CMS, body, { 'user-agent': 'kubectl/v1.32.4 (linux/amd64) kubernetes/abc' });
    assert.deepEqual(
      created.body.metadata.managedFields?.map((e) => [e.manager, e.operation, e.fieldsV1]),
      [['kubectl', 'Update', { 'f:data': { '.': {}, 'f:a': {} } }]],
    );
    const updated = await call('PUT', `${CMS}/c?fieldManager=editor`, { ...created.body, data: { a: '2', b: '3' } });
    assert.deepEqual(
      updated.body.metadata.managedFields?.map((e) => [e.manager, e.fieldsV1]).sort(([a], [b]) => String(a).localeCompare(String(b))),
      [
        ['editor', { 'f:data': { 'f:a': {}, 'f:b': {} } }],
        ['kubectl', { 'f:data': {} }],
      ],
      'the map stays kubectl\'s, its changed keys are the editor\'s',
    );
    const reset = await call('PUT', `${CMS}/c`, { ...updated.body, metadata: { ...updated.body.metadata, managedFields: [] } }, { 'user-agent': 'curl/8.5' });
    assert.equal(reset.body.metadata.managedFields, undefined, 'managedFields: [] clears ownership, and an update that changes nothing owns nothing');

    const given: ManagedFieldsEntry[] = [{ manager: 'importer', operation: 'Update', apiVersion: 'v1', time: '2024-01-02T03:04:05Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { 'f:a': {} } } }];
    const replaced = await call('PUT', `${CMS}/c`, { ...reset.body, metadata: { ...reset.body.metadata, managedFields: given } });
    assert.deepEqual(replaced.body.metadata.managedFields, given, 'valid managedFields in an update replace the stored ones');
  });

  it('ignores managedFields that do not decode, on create and on update', async () => {
    // Not a list at all does not decode into ObjectMeta: refused, as kube-apiserver's decoder refuses it.
    for (const notAList of [{ x: { y: 1 } }, 'text']) {
      const refused = await call('POST', `${CMS}?fieldManager=maker`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'g', managedFields: notAList }, data: { k: 'v' } });
      assert.ok(refused.status >= 400 && refused.status < 500, `a managedFields of ${JSON.stringify(notAList)} is a 4xx, got ${refused.status}`);
    }
    for (const garbage of [[{ manager: 'x', operation: 'Bogus', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: {} }], [{ fieldsV1: 'f:data' }]]) {
      await call('DELETE', `${CMS}/g`);
      const created = await call('POST', `${CMS}?fieldManager=maker`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'g', managedFields: garbage }, data: { k: 'v' } });
      assert.equal(created.status, 201);
      assert.deepEqual(created.body.metadata.managedFields?.map((e) => [e.manager, e.fieldsV1]), [['maker', { 'f:data': { '.': {}, 'f:k': {} } }]]);
      const updated = await call('PUT', `${CMS}/g?fieldManager=editor`, { ...created.body, metadata: { ...created.body.metadata, managedFields: garbage }, data: { k: 'w' } });
      assert.equal(updated.status, 200);
      assert.deepEqual(updated.body.metadata.managedFields?.map((e) => e.manager).sort(), ['editor', 'maker'], 'the stored entries stand, plus the update');
    }
  });

  it('keeps status out of the main resource\'s ownership and applies /status with subresource "status"', async () => {
    const pvc = 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: d\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\nstatus:\n  phase: Bound\n';
    const created = await apply(`${PVCS}/d`, 'fieldManager=tool', pvc);
    assert.equal(created.status, 201);
    assert.notEqual(created.body.status?.phase, 'Bound', 'status is ignored on the main resource');
    assert.deepEqual(created.body.metadata.managedFields?.[0]?.fieldsV1, { 'f:spec': { 'f:accessModes': {}, 'f:resources': { 'f:requests': { 'f:storage': {} } } } });

    const status = await apply(`${PVCS}/d/status`, 'fieldManager=agent', 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: d\nstatus:\n  phase: Bound\n');
    assert.equal(status.status, 200);
    assert.equal(status.body.status?.phase, 'Bound');
    assert.deepEqual(owners(status.body), ['agent/Apply/status', 'tool/Apply']);
    assert.deepEqual(status.body.metadata.managedFields?.find((e) => e.manager === 'agent')?.fieldsV1, { 'f:status': { 'f:phase': {} } });
    const patched = await call('PATCH', `${PVCS}/d/status?fieldManager=binder`, { status: { phase: 'Lost' } }, { 'content-type': 'application/merge-patch+json' });
    assert.deepEqual(owners(patched.body), ['binder/Update/status', 'tool/Apply'], 'the Update through /status took the phase, all the agent owned');
    assert.deepEqual(patched.body.metadata.managedFields?.find((e) => e.manager === 'binder')?.fieldsV1, { 'f:status': { 'f:phase': {} } });
    assert.equal((await apply(`${PVCS}/none/status`, 'fieldManager=agent', 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: none\n')).status, 404);
  });
});
