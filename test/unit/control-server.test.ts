// The HTTP API: CRUD through fetch on Kubernetes paths, Status errors, watch streams, discovery,
// the bearer token and the listen-address rules.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { Status, WatchEvent } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const PVCS = '/api/v1/namespaces/default/persistentvolumeclaims';

function pvc(name: string, labels?: Record<string, string>): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}

interface Reply<T = unknown> {
  status: number;
  body: T;
}

async function call<T = Record<string, unknown>>(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text) as T };
}

/** Reads newline-delimited watch events from a streaming response until `count` have arrived. */
async function readEvents(reader: ReadableStreamDefaultReader<Uint8Array>, count: number, buffer: { text: string }): Promise<WatchEvent[]> {
  const events: WatchEvent[] = [];
  const decoder = new TextDecoder();
  while (events.length < count) {
    const newline = buffer.text.indexOf('\n');
    if (newline >= 0) {
      events.push(JSON.parse(buffer.text.slice(0, newline)) as WatchEvent);
      buffer.text = buffer.text.slice(newline + 1);
      continue;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error('watch stream ended early');
    buffer.text += decoder.decode(value, { stream: true });
  }
  return events;
}

describe('API server: resources', () => {
  let store: Store;
  let server: ApiServer;
  let base: string;
  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    base = server.url;
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  it('binds to the loopback port it reports', () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('creates, reads, lists, updates, patches and deletes', async () => {
    const created = await call<PersistentVolumeClaim>(base, 'POST', PVCS, pvc('data', { app: 'db' }));
    assert.equal(created.status, 201);
    assert.equal(created.body.metadata.namespace, 'default');
    assert.equal(created.body.spec.volumeMode, 'Filesystem');

    const yaml = 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: logs\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 2Gi\n';
    assert.equal((await call(base, 'POST', PVCS, yaml, { 'content-type': 'application/yaml' })).status, 201);

    const got = await call<PersistentVolumeClaim>(base, 'GET', `${PVCS}/data`);
    assert.deepEqual(got.body, created.body);

    const list = await call<{ kind: string; metadata: { resourceVersion: string }; items: PersistentVolumeClaim[] }>(base, 'GET', `${PVCS}?labelSelector=app%3Ddb`);
    assert.equal(list.body.kind, 'PersistentVolumeClaimList');
    assert.deepEqual(list.body.items.map((i) => i.metadata.name), ['data']);
    assert.equal(list.body.metadata.resourceVersion, store.resourceVersion);
    const all = await call<{ items: PersistentVolumeClaim[] }>(base, 'GET', '/api/v1/persistentvolumeclaims?fieldSelector=metadata.name%3Dlogs');
    assert.deepEqual(all.body.items.map((i) => i.metadata.name), ['logs']);

    const labelled = await call<PersistentVolumeClaim>(base, 'PUT', `${PVCS}/data`, { ...got.body, metadata: { ...got.body.metadata, labels: { app: 'db', tier: 'x' } } });
    assert.equal(labelled.status, 200);
    const merged = await call<PersistentVolumeClaim>(base, 'PATCH', `${PVCS}/data`, { metadata: { labels: { tier: null, patched: 'yes' } } }, { 'content-type': 'application/merge-patch+json' });
    assert.deepEqual(merged.body.metadata.labels, { app: 'db', patched: 'yes' });
    const strategic = await call<PersistentVolumeClaim>(base, 'PATCH', `${PVCS}/data`, { metadata: { annotations: { a: 'b' } } }, { 'content-type': 'application/strategic-merge-patch+json' });
    assert.deepEqual(strategic.body.metadata.annotations, { a: 'b' });

    const status = await call<PersistentVolumeClaim>(base, 'PATCH', `${PVCS}/data/status`, { status: { phase: 'Bound' } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(status.body.status?.phase, 'Bound');
    assert.equal((await call<PersistentVolumeClaim>(base, 'GET', `${PVCS}/data/status`)).body.status?.phase, 'Bound');

    const sc = await call(base, 'POST', '/apis/storage.k8s.io/v1/storageclasses', {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'fast' },
      provisioner: 'local.csi.stowage.dev',
    });
    assert.equal(sc.status, 201);
    assert.equal((await call(base, 'GET', '/apis/storage.k8s.io/v1/storageclasses/fast')).status, 200);

    const deleted = await call<PersistentVolumeClaim>(base, 'DELETE', `${PVCS}/data`);
    assert.equal(deleted.status, 200);
    assert.equal(store.get('persistentvolumeclaims', 'default', 'data'), undefined);

    const held = await call<PersistentVolumeClaim>(base, 'POST', PVCS, { ...pvc('held'), metadata: { name: 'held', finalizers: ['kubernetes.io/pvc-protection'] } });
    assert.equal(held.status, 201);
    const pending = await call<PersistentVolumeClaim>(base, 'DELETE', `${PVCS}/held`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
    assert.equal(pending.status, 202);
    assert.ok(pending.body.metadata.deletionTimestamp);
  });

  it('answers errors with Kubernetes Status bodies', async () => {
    const missing = await call<Status>(base, 'GET', `${PVCS}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'persistentvolumeclaims "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'persistentvolumeclaims' },
      code: 404,
    });

    const first = await call<PersistentVolumeClaim>(base, 'POST', PVCS, pvc('a'));
    await call(base, 'PATCH', `${PVCS}/a`, { metadata: { labels: { x: 'y' } } }, { 'content-type': 'application/merge-patch+json' });
    const conflict = await call<Status>(base, 'PUT', `${PVCS}/a`, first.body);
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.reason, 'Conflict');
    assert.equal(
      conflict.body.message,
      'Operation cannot be fulfilled on persistentvolumeclaims "a": the object has been modified; please apply your changes to the latest version and try again',
    );
    const exists = await call<Status>(base, 'POST', PVCS, pvc('a'));
    assert.equal(exists.status, 409);
    assert.equal(exists.body.reason, 'AlreadyExists');

    const typo = { ...pvc('nfs-pvc'), spec: { ...pvc('nfs-pvc').spec, accessModes: ['ReadwriteOnce'] } };
    const invalid = await call<Status>(base, 'POST', PVCS, typo);
    assert.equal(invalid.status, 422);
    assert.equal(invalid.body.reason, 'Invalid');
    assert.deepEqual(invalid.body.details, {
      name: 'nfs-pvc',
      kind: 'PersistentVolumeClaim',
      causes: [
        {
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "ReadwriteOnce": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
          field: 'spec.accessModes[0]',
        },
      ],
    });

    const wrongNamespace = await call<Status>(base, 'POST', PVCS, { ...pvc('b'), metadata: { name: 'b', namespace: 'kube-system' } });
    assert.equal(wrongNamespace.status, 400);
    assert.equal(wrongNamespace.body.message, 'the namespace of the provided object does not match the namespace sent on the request');
    const wrongName = await call<Status>(base, 'PUT', `${PVCS}/other`, first.body);
    assert.equal(wrongName.status, 400);
    assert.equal((await call<Status>(base, 'GET', '/api/v1/widgets')).status, 404);
    assert.equal((await call<Status>(base, 'PATCH', `${PVCS}/a`, [{ op: 'add' }], { 'content-type': 'application/json-patch+json' })).status, 422);
    const directive = await call<Status>(base, 'PATCH', `${PVCS}/a`, { metadata: { $patch: 'explode' } }, { 'content-type': 'application/strategic-merge-patch+json' });
    assert.equal(directive.status, 400);
    assert.equal(directive.body.message, 'unknown patch type: explode in map: map[$patch:explode]');
    const dryRun = await call<Status>(base, 'POST', `${PVCS}?dryRun=Some`, pvc('dry'));
    assert.equal(dryRun.status, 422);
    assert.equal(dryRun.body.message, 'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All"');
    assert.equal((await call<Status>(base, 'POST', `${PVCS}`, 'not json')).status, 400);
    assert.equal((await call<Status>(base, 'DELETE', PVCS)).status, 405);
  });

  it('streams watch events as newline-delimited JSON', async () => {
    const start = store.resourceVersion;
    await call(base, 'POST', PVCS, pvc('before'));
    const controller = new AbortController();
    const res = await fetch(`${base}${PVCS}?watch=1&resourceVersion=${start}`, { signal: controller.signal });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const reader = res.body?.getReader();
    assert.ok(reader);
    const buffer = { text: '' };
    const [replayed] = await readEvents(reader, 1, buffer);
    assert.equal(replayed?.type, 'ADDED');
    assert.equal(replayed?.object.metadata.name, 'before');
    await call(base, 'POST', PVCS, pvc('after'));
    await call(base, 'DELETE', `${PVCS}/before`);
    const live = await readEvents(reader, 2, buffer);
    assert.deepEqual(live.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED after', 'DELETED before']);
    controller.abort();
    await reader.cancel().catch(() => undefined);

    const small = open(':memory:', { eventRetention: 5 });
    const smallServer = await startApiServer({ store: small, listen: 'http://127.0.0.1:0' });
    try {
      for (let i = 0; i < 20; i++) small.create(pvc(`p${i}`));
      const expired = await call<Status>(smallServer.url, 'GET', `${PVCS}?watch=true&resourceVersion=1`);
      assert.equal(expired.status, 410);
      assert.equal(expired.body.reason, 'Expired');
    } finally {
      await smallServer.close();
      small.close();
    }
  });

  it('ends a watch after timeoutSeconds', async () => {
    const res = await fetch(`${base}${PVCS}?watch=1&timeoutSeconds=1`);
    assert.equal(await res.text(), '');
  });

  it('serves discovery for kubectl', async () => {
    const core = await call<{ versions: string[] }>(base, 'GET', '/api');
    assert.deepEqual(core.body.versions, ['v1']);
    const v1 = await call<{ kind: string; groupVersion: string; resources: { name: string; namespaced: boolean; kind: string; shortNames?: string[]; verbs: string[] }[] }>(base, 'GET', '/api/v1');
    assert.equal(v1.body.kind, 'APIResourceList');
    assert.equal(v1.body.groupVersion, 'v1');
    const pvcs = v1.body.resources.find((r) => r.name === 'persistentvolumeclaims');
    assert.deepEqual(pvcs && { namespaced: pvcs.namespaced, kind: pvcs.kind, shortNames: pvcs.shortNames }, { namespaced: true, kind: 'PersistentVolumeClaim', shortNames: ['pvc'] });
    assert.ok(pvcs?.verbs.includes('watch'));
    assert.ok(v1.body.resources.some((r) => r.name === 'persistentvolumeclaims/status'));
    const groups = await call<{ groups: { name: string }[] }>(base, 'GET', '/apis');
    assert.deepEqual(groups.body.groups.map((g) => g.name), ['storage.k8s.io', 'snapshot.storage.k8s.io', 'apps', 'batch', 'scheduling.k8s.io', 'policy', 'coordination.k8s.io', 'rbac.authorization.k8s.io', 'authentication.k8s.io', 'authorization.k8s.io']);
    const storage = await call<{ resources: { name: string; namespaced: boolean; shortNames?: string[] }[] }>(base, 'GET', '/apis/storage.k8s.io/v1');
    assert.deepEqual(storage.body.resources.find((r) => r.name === 'storageclasses'), {
      name: 'storageclasses',
      singularName: 'storageclass',
      namespaced: false,
      kind: 'StorageClass',
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      shortNames: ['sc'],
    });
    assert.equal((await call<{ name: string }>(base, 'GET', '/apis/snapshot.storage.k8s.io')).body.name, 'snapshot.storage.k8s.io');
    assert.match((await call<{ gitVersion: string }>(base, 'GET', '/version')).body.gitVersion, /^v1\.\d+\.\d+/);
    assert.deepEqual(await call(base, 'GET', '/healthz'), { status: 200, body: 'ok' });
    assert.equal((await call(base, 'GET', '/readyz')).status, 200);
  });
});

describe('API server: access', () => {
  let store: Store;
  let dir: string;
  before(() => {
    store = open(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'stowage-api-'));
  });
  after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('requires the bearer token when one is set', async () => {
    const server = await startApiServer({ store, listen: 'http://127.0.0.1:0', token: 's3cret' });
    try {
      const anonymous = await call<Status>(server.url, 'GET', PVCS);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.reason, 'Unauthorized');
      assert.equal((await call(server.url, 'GET', PVCS, undefined, { authorization: 'Bearer wrong' })).status, 401);
      assert.equal((await call(server.url, 'GET', PVCS, undefined, { authorization: 'Bearer s3cret' })).status, 200);
      assert.equal((await call(server.url, 'GET', '/healthz')).status, 200, 'health needs no token');
    } finally {
      await server.close();
    }
  });

  it('refuses plain http beyond loopback, and https beyond loopback without a token', async () => {
    await assert.rejects(startApiServer({ store, listen: 'http://0.0.0.0:0', token: 't' }), /refusing to serve plain http on http:\/\/0\.0\.0\.0:0: only loopback may be unencrypted/);
    await assert.rejects(startApiServer({ store, listen: 'https://0.0.0.0:0' }), /refusing to listen on https:\/\/0\.0\.0\.0:0 without a token/);
    await assert.rejects(startApiServer({ store, listen: 'https://127.0.0.1:0' }), /needs a serving certificate and key/);
    await assert.rejects(startApiServer({ store, listen: 'tcp://127.0.0.1:1' }), /only https:\/\/, http:\/\/ and unix:\/\//);
    const v6 = await startApiServer({ store, listen: 'http://[::1]:0' }).catch(() => undefined);
    if (v6) {
      assert.match(v6.url, /^http:\/\/\[::1\]:\d+$/);
      await v6.close();
    }
  });

  it('serves on a unix socket readable only by its owner', async () => {
    const path = join(dir, 'api.sock');
    const server = await startApiServer({ store, listen: `unix://${path}` });
    try {
      assert.equal(server.url, `unix://${path}`);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: path, path: '/api/v1/namespaces', method: 'GET' }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      const names = (JSON.parse(body) as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name);
      assert.deepEqual(names, ['default', 'kube-system']);
    } finally {
      await server.close();
    }
    assert.equal(existsSync(path), false, 'the socket is removed on close');
    // A stale socket file from a crashed server is replaced.
    const again = await startApiServer({ store, listen: `unix://${path}` });
    await again.close();
  });
});
