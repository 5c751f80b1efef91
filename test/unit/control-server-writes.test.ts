// Writes as kubectl and client-go send them, through the real HTTP server: ?dryRun=All (the answer
// is what would be stored; nothing is stored, watched or versioned), the three patch types
// (strategic merge for built-in kinds, 415 for the snapshot custom resources; JSON patch adding a
// finalizer as the snapshot controllers do) and ?fieldValidation.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { KubeObject, Status, WatchEvent } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const PVCS = '/api/v1/namespaces/default/persistentvolumeclaims';
const PODS = '/api/v1/namespaces/default/pods';
const SNAPSHOTS = '/apis/snapshot.storage.k8s.io/v1/namespaces/default/volumesnapshots';
const SMP = { 'content-type': 'application/strategic-merge-patch+json' };
const JSON_PATCH = { 'content-type': 'application/json-patch+json' };
const MERGE = { 'content-type': 'application/merge-patch+json' };

// biome-ignore lint/suspicious/noExplicitAny: test bodies are read loosely
type Body = any;

function pvc(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, ...extra },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}

interface Reply {
  status: number;
  body: Body;
  headers: Headers;
}

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

describe('API server: writes', () => {
  let store: Store;
  let server: ApiServer;
  let base: string;
  let events: WatchEvent[];
  let stopWatch: () => void;
  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    base = server.url;
    events = [];
    stopWatch = () => undefined;
  });
  afterEach(async () => {
    stopWatch();
    await server.close();
    store.close();
  });

  /** Watches PVCs from now on: a dry run must add nothing here. */
  function watchClaims(): void {
    stopWatch = store.watch('persistentvolumeclaims', { resourceVersion: store.resourceVersion }, (e) => {
      events.push(e as WatchEvent);
    });
  }

  describe('dryRun=All', () => {
    it('creates nothing, but answers what would be created (generated name, uid, defaults, no resourceVersion)', async () => {
      watchClaims();
      const rv = store.resourceVersion;
      const res = await call(base, 'POST', `${PVCS}?dryRun=All`, { ...pvc(''), metadata: { generateName: 'data-' } });
      assert.equal(res.status, 201);
      assert.match(res.body.metadata.name, /^data-[a-z0-9]{5}$/);
      assert.ok(res.body.metadata.uid);
      assert.ok(res.body.metadata.creationTimestamp);
      assert.equal(res.body.metadata.resourceVersion, undefined);
      assert.equal(res.body.spec.volumeMode, 'Filesystem');
      assert.equal(res.body.status.phase, 'Pending');
      assert.equal(store.get('persistentvolumeclaims', 'default', res.body.metadata.name), undefined);
      assert.equal(store.resourceVersion, rv);
      assert.deepEqual(events, []);
    });

    it('still validates and still refuses a name that exists', async () => {
      const invalid = await call(base, 'POST', `${PVCS}?dryRun=All`, { ...pvc('bad'), spec: { accessModes: [] } });
      assert.equal(invalid.status, 422);
      await call(base, 'POST', PVCS, pvc('taken'));
      assert.equal((await call(base, 'POST', `${PVCS}?dryRun=All`, pvc('taken'))).status, 409);
    });

    it('updates and patches nothing, answering the result with the stored resourceVersion', async () => {
      const created = (await call(base, 'POST', PVCS, pvc('data'))).body;
      watchClaims();
      const rv = store.resourceVersion;
      const put = await call(base, 'PUT', `${PVCS}/data?dryRun=All`, { ...created, metadata: { ...created.metadata, labels: { a: 'b' } } });
      assert.equal(put.status, 200);
      assert.deepEqual(put.body.metadata.labels, { a: 'b' });
      assert.equal(put.body.metadata.resourceVersion, created.metadata.resourceVersion);
      for (const [headers, patch] of [
        [SMP, { metadata: { labels: { x: 'y' } } }],
        [MERGE, { metadata: { labels: { x: 'y' } } }],
        [JSON_PATCH, [{ op: 'add', path: '/metadata/labels', value: { x: 'y' } }]],
      ] as const) {
        const res = await call(base, 'PATCH', `${PVCS}/data?dryRun=All`, patch, headers);
        assert.equal(res.status, 200, headers['content-type']);
        assert.deepEqual(res.body.metadata.labels, { x: 'y' });
      }
      const status = await call(base, 'PATCH', `${PVCS}/data/status?dryRun=All`, { status: { phase: 'Lost' } }, MERGE);
      assert.equal(status.body.status.phase, 'Lost');
      const stored = store.get('persistentvolumeclaims', 'default', 'data');
      assert.equal(stored?.metadata.labels, undefined);
      assert.equal(stored?.status?.phase, 'Pending');
      assert.equal(store.resourceVersion, rv);
      assert.deepEqual(events, []);
    });

    it('deletes nothing: 200 for an object that would go, 202 with a deletionTimestamp for one that finalizers would hold', async () => {
      await call(base, 'POST', PVCS, pvc('plain'));
      await call(base, 'POST', PVCS, pvc('held', { finalizers: ['example.com/hold'] }));
      watchClaims();
      const plain = await call(base, 'DELETE', `${PVCS}/plain?dryRun=All`);
      assert.equal(plain.status, 200);
      assert.equal(plain.body.metadata.name, 'plain');
      const held = await call(base, 'DELETE', `${PVCS}/held`, { kind: 'DeleteOptions', apiVersion: 'v1', dryRun: ['All'] });
      assert.equal(held.status, 202);
      assert.ok(held.body.metadata.deletionTimestamp);
      assert.ok(store.get('persistentvolumeclaims', 'default', 'plain'));
      assert.equal(store.get('persistentvolumeclaims', 'default', 'held')?.metadata.deletionTimestamp, undefined);
      assert.deepEqual(events, []);
    });

    it('refuses any other value as kube-apiserver does (422 on the options kind)', async () => {
      const res = await call(base, 'DELETE', `${PVCS}/x?dryRun=Yes`);
      assert.equal(res.status, 422);
      assert.equal(res.body.reason, 'Invalid');
      assert.equal(res.body.message, 'DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Yes"}: supported values: "All"');
      assert.deepEqual(res.body.details, {
        group: 'meta.k8s.io',
        kind: 'DeleteOptions',
        causes: [{ reason: 'FieldValueNotSupported', message: 'Unsupported value: []string{"Yes"}: supported values: "All"', field: 'dryRun' }],
      });
      const patch = await call(base, 'PATCH', `${PVCS}/x?dryRun=`, {}, MERGE);
      assert.equal(patch.status, 422);
    });
  });

  describe('patch types', () => {
    it('strategic merge patch merges containers by name and keeps the others', async () => {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p' },
        spec: {
          containers: [
            { name: 'a', image: 'a:1' },
            { name: 'b', image: 'b:1' },
          ],
        },
      };
      assert.equal((await call(base, 'POST', PODS, pod)).status, 201);
      const res = await call(base, 'PATCH', `${PODS}/p`, { spec: { containers: [{ name: 'b', image: 'b:2' }] } }, SMP);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(
        res.body.spec.containers.map((c: { name: string; image: string }) => `${c.name}=${c.image}`),
        ['a=a:1', 'b=b:2'],
      );
      const merge = await call(base, 'PATCH', `${PVCS}/none`, {}, MERGE);
      assert.equal(merge.status, 404);
    });

    it('strategic merge patch merges finalizers as a set; merge patch replaces them', async () => {
      await call(base, 'POST', PVCS, pvc('f', { finalizers: ['a.example.com/x'] }));
      const smp = await call(base, 'PATCH', `${PVCS}/f`, { metadata: { finalizers: ['b.example.com/y'] } }, SMP);
      assert.deepEqual(smp.body.metadata.finalizers, ['a.example.com/x', 'b.example.com/y']);
      const removed = await call(base, 'PATCH', `${PVCS}/f`, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a.example.com/x'] } }, SMP);
      assert.deepEqual(removed.body.metadata.finalizers, ['b.example.com/y']);
      const merge = await call(base, 'PATCH', `${PVCS}/f`, { metadata: { finalizers: ['c.example.com/z'] } }, MERGE);
      assert.deepEqual(merge.body.metadata.finalizers, ['c.example.com/z']);
    });

    it('JSON patch adds a finalizer to a snapshot as the snapshot controller does; strategic merge is 415 for it', async () => {
      const vs = { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 's' }, spec: { source: { persistentVolumeClaimName: 'c' } } };
      assert.equal((await call(base, 'POST', SNAPSHOTS, vs)).status, 201);
      const add = await call(base, 'PATCH', `${SNAPSHOTS}/s`, [{ op: 'add', path: '/metadata/finalizers', value: ['snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection'] }], JSON_PATCH);
      assert.equal(add.status, 200);
      assert.deepEqual(add.body.metadata.finalizers, ['snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection']);
      const append = await call(base, 'PATCH', `${SNAPSHOTS}/s`, [{ op: 'add', path: '/metadata/finalizers/-', value: 'snapshot.storage.kubernetes.io/volumesnapshot-bound-protection' }], JSON_PATCH);
      assert.equal(append.body.metadata.finalizers.length, 2);
      const smp = await call(base, 'PATCH', `${SNAPSHOTS}/s`, { metadata: { labels: { a: 'b' } } }, SMP);
      assert.equal(smp.status, 415);
      assert.equal(smp.body.reason, 'UnsupportedMediaType');
      assert.match(smp.body.message, /accepted media types include: application\/json-patch\+json, application\/merge-patch\+json/);
    });

    it('a JSON patch whose test fails changes nothing (422); a stale resourceVersion in it conflicts (409)', async () => {
      const created = (await call(base, 'POST', PVCS, pvc('t', { labels: { a: '1' } }))).body;
      const failed = await call(base, 'PATCH', `${PVCS}/t`, [{ op: 'test', path: '/metadata/labels/a', value: '2' }, { op: 'replace', path: '/metadata/labels/a', value: '3' }], JSON_PATCH);
      assert.equal(failed.status, 422);
      assert.equal((failed.body as Status).message, 'the server rejected our request due to an error in our request');
      assert.deepEqual(store.get('persistentvolumeclaims', 'default', 't')?.metadata.labels, { a: '1' });
      await call(base, 'PATCH', `${PVCS}/t`, { metadata: { labels: { b: '1' } } }, MERGE);
      const stale = await call(base, 'PATCH', `${PVCS}/t`, [{ op: 'replace', path: '/metadata/resourceVersion', value: created.metadata.resourceVersion }, { op: 'add', path: '/metadata/labels/c', value: '1' }], JSON_PATCH);
      assert.equal(stale.status, 409);
      const malformed = await call(base, 'PATCH', `${PVCS}/t`, { op: 'add' }, JSON_PATCH);
      assert.equal(malformed.status, 400);
    });

    it('refuses a patch that makes the object another one (name, namespace, kind), as kube-apiserver', async () => {
      await call(base, 'POST', PVCS, pvc('n'));
      const cases: [unknown, Record<string, string>, string][] = [
        [{ metadata: { name: 'other' } }, MERGE, 'the name of the object (other) does not match the name on the URL (n)'],
        [[{ op: 'copy', from: '/metadata/name', path: '/metadata/namespace' }], JSON_PATCH, 'the namespace of the object (n) does not match the namespace on the request (default)'],
        [{ $patch: 'delete' }, SMP, 'the name of the object () does not match the name on the URL (n)'],
      ];
      for (const [patch, headers, message] of cases) {
        const res = await call(base, 'PATCH', `${PVCS}/n`, patch, headers);
        assert.equal(res.status, 400, message);
        assert.equal(res.body.message, message);
      }
      const kind = await call(base, 'PATCH', `${PVCS}/n`, { kind: 'ConfigMap' }, MERGE);
      assert.equal(kind.status, 400);
      assert.ok(store.get('persistentvolumeclaims', 'default', 'n'));
    });
  });

  describe('fieldValidation', () => {
    const unknown = { ...pvc('u'), spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, foo: 'bar' } };

    it('Strict refuses an unknown field with kube-apiserver\'s message', async () => {
      const res = await call(base, 'POST', `${PVCS}?fieldValidation=Strict`, unknown);
      assert.equal(res.status, 400);
      assert.equal(res.body.message, 'PersistentVolumeClaim in version "v1" cannot be handled as a PersistentVolumeClaim: strict decoding error: unknown field "spec.foo"');
      const patch = await call(base, 'PATCH', `${PVCS}/u?fieldValidation=Strict`, { spec: { foo: 'bar' } }, MERGE);
      assert.equal(patch.status, 404);
      assert.equal(store.get('persistentvolumeclaims', 'default', 'u'), undefined);
    });

    it('Warn (also the default) drops the field and warns in a Warning header; Ignore drops it silently', async () => {
      const res = await call(base, 'POST', `${PVCS}?fieldValidation=Warn`, unknown);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('warning'), '299 - "unknown field \\"spec.foo\\""');
      assert.equal(res.body.spec.foo, undefined);
      assert.equal((store.get('persistentvolumeclaims', 'default', 'u')?.spec as Record<string, unknown> | undefined)?.foo, undefined);
      assert.ok(store.get('persistentvolumeclaims', 'default', 'u'));
      const patch = await call(base, 'PATCH', `${PVCS}/u`, { metadata: { labelz: { a: 'b' } } }, MERGE);
      assert.equal(patch.status, 200);
      assert.equal(patch.headers.get('warning'), '299 - "unknown field \\"metadata.labelz\\""');
      const ignored = await call(base, 'PUT', `${PVCS}/u?fieldValidation=Ignore`, { ...patch.body, spec: { ...patch.body.spec, bar: 1 } });
      assert.equal(ignored.status, 200);
      assert.equal(ignored.headers.get('warning'), null);
      const stored = store.get('persistentvolumeclaims', 'default', 'u') as unknown as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
      assert.equal(stored.metadata.labelz, undefined);
      assert.equal(stored.spec.bar, undefined);
    });

    it('Strict passes an object read back from the server (kubectl edit / apply round trips)', async () => {
      await call(base, 'POST', PVCS, pvc('r'));
      const current = (await call(base, 'GET', `${PVCS}/r`)).body as KubeObject;
      const res = await call(base, 'PUT', `${PVCS}/r?fieldValidation=Strict`, current);
      assert.equal(res.status, 200, JSON.stringify(res.body));
    });

    it('knows every pod spec and container field: a typo is refused, a pod read back passes', async () => {
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a:1', imagePullPolicy: 'Always' }], hostNetwork: false } };
      const typo = await call(base, 'POST', `${PODS}?fieldValidation=Strict`, { ...pod, spec: { ...pod.spec, containers: [{ name: 'a', image: 'a:1', imagPullPolicy: 'Always' }], restartPolicyy: 'Never' } });
      assert.equal(typo.status, 400);
      assert.equal(typo.body.message, 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagPullPolicy", unknown field "spec.restartPolicyy"');
      assert.equal((await call(base, 'POST', `${PODS}?fieldValidation=Strict`, pod)).status, 201);
      const current = (await call(base, 'GET', `${PODS}/p`)).body;
      const res = await call(base, 'PUT', `${PODS}/p?fieldValidation=Strict`, current);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const patched = await call(base, 'PATCH', `${PODS}/p?fieldValidation=Strict`, { spec: { containers: [{ name: 'a', imagPullPolicy: 'Never' }] } }, SMP);
      assert.equal(patched.status, 400);
      assert.equal(patched.body.message, 'strict decoding error: unknown field "spec.containers[0].imagPullPolicy"');
    });

    it('warns of a field given twice, and keeps the last', async () => {
      const text = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"twice"},"data":{"k":"first","k":"last"}}';
      const res = await fetch(`${base}/api/v1/namespaces/default/configmaps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('warning'), '299 - "duplicate field \\"data.k\\""');
      assert.deepEqual(store.get('configmaps', 'default', 'twice')?.data, { k: 'last' });
      const strict = await fetch(`${base}/api/v1/namespaces/default/configmaps?fieldValidation=Strict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text.replace('twice', 'strict') });
      assert.equal(strict.status, 400);
    });

    it('knows a VolumeSnapshot spec in full (a custom resource upstream, whose schema prunes unknown fields)', async () => {
      const vs = { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 'v' }, spec: { source: { persistentVolumeClaimName: 'c', pvcName: 'x' }, volumeSnapshotClassName: 'k' } };
      const res = await call(base, 'POST', `${SNAPSHOTS}?fieldValidation=Strict`, vs);
      assert.equal(res.status, 400);
      assert.equal(res.body.message, 'VolumeSnapshot in version "v1" cannot be handled as a VolumeSnapshot: strict decoding error: unknown field "spec.source.pvcName"');
    });

    it('refuses an unknown directive (422)', async () => {
      const res = await call(base, 'POST', `${PVCS}?fieldValidation=Loud`, pvc('l'));
      assert.equal(res.status, 422);
      assert.equal(res.body.message, 'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loud": supported values: "", "Ignore", "Strict", "Warn"');
    });
  });
});
