// The store's API semantics: CRUD, resourceVersions and optimistic concurrency, namespaces,
// finalizers, cascading deletion, watches (live, replayed, expired), persistence, and a printed
// write rate.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ConfigMap, Namespace, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { KubeObject, OwnerReference, WatchEvent } from '../../src/control/api/types/meta.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';
import { AlreadyExistsError, BadRequestError, ConflictError, ExpiredError, ForbiddenError, InvalidError, NotFoundError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

function pvc(name: string, extra: Partial<PersistentVolumeClaim['metadata']> = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default', ...extra },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}

function configMap(name: string, ownerReferences?: OwnerReference[], finalizers?: string[]): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'default', ...(ownerReferences ? { ownerReferences } : {}), ...(finalizers ? { finalizers } : {}) },
    data: { k: 'v' },
  };
}

function ownedBy(owner: KubeObject, blockOwnerDeletion = false): OwnerReference {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name ?? '', uid: owner.metadata.uid ?? '', blockOwnerDeletion };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return assert.fail('expected an error');
}

function record(store: Store, resource: string, options = {}): { events: WatchEvent[]; stop: () => void; summary: () => string[] } {
  const events: WatchEvent[] = [];
  const stop = store.watch(resource, options, (e) => events.push(e));
  return { events, stop, summary: () => events.map((e) => `${e.type} ${e.object.metadata.name}@${e.object.metadata.resourceVersion}`) };
}

describe('store: objects', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('creates with server-set metadata and one global resourceVersion sequence', () => {
    const before = Number(store.resourceVersion);
    const a = store.create(pvc('a'));
    const sc = store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'fast' }, provisioner: 'x.csi.dev' });
    assert.match(a.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(a.metadata.resourceVersion, String(before + 1));
    assert.equal(sc.metadata.resourceVersion, String(before + 2));
    assert.equal(store.resourceVersion, String(before + 2));
    assert.equal(a.metadata.generation, 1);
    assert.match(a.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(store.get('persistentvolumeclaims', 'default', 'a'), a);
    assert.equal(store.get('persistentvolumeclaims', 'default', 'missing'), undefined);
    assert.equal(store.get('pvc', 'default', 'a')?.metadata.uid, a.metadata.uid, 'short names work');
    assert.equal(store.get('storageclasses.storage.k8s.io', undefined, 'fast')?.metadata.uid, sc.metadata.uid);
  });

  it('defaults the namespace, generates names and refuses duplicates', () => {
    const noNamespace = pvc('a');
    delete noNamespace.metadata.namespace;
    assert.equal(store.create(noNamespace).metadata.namespace, 'default');
    const err = thrown(() => store.create(pvc('a')));
    assert.ok(err instanceof AlreadyExistsError);
    assert.equal(err.message, 'persistentvolumeclaims "a" already exists');
    assert.equal(err.code, 409);

    const generated = [1, 2, 3].map(() => store.create({ ...pvc(''), metadata: { generateName: 'data-', namespace: 'default' } }).metadata.name ?? '');
    for (const name of generated) assert.match(name, /^data-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.equal(new Set(generated).size, 3);

    assert.throws(() => store.create(pvc('b', { resourceVersion: '7' })), BadRequestError);
    assert.throws(() => store.get('widgets', 'default', 'x'), { message: 'the server doesn\'t have a resource type "widgets"' });
  });

  it('creates namespaced objects only in live namespaces', () => {
    assert.ok(store.get('namespaces', undefined, 'default'));
    assert.ok(store.get('namespaces', undefined, 'kube-system'));
    const missing = thrown(() => store.create({ ...pvc('a'), metadata: { name: 'a', namespace: 'nope' } }));
    assert.ok(missing instanceof NotFoundError);
    assert.equal(missing.message, 'namespaces "nope" not found');
    const protectedNs = thrown(() => store.delete('namespaces', undefined, 'default'));
    assert.ok(protectedNs instanceof ForbiddenError);
    assert.equal(protectedNs.message, 'namespaces "default" is forbidden: this namespace may not be deleted');
  });

  it('lists by namespace, labels and fields', () => {
    store.create<Namespace>({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
    store.create(pvc('a', { labels: { tier: 'db', env: 'prod' } }));
    store.create(pvc('b', { labels: { tier: 'web' } }));
    store.create({ ...pvc('c'), metadata: { name: 'c', namespace: 'team', labels: { tier: 'db' } } });
    const names = (options: object): string[] => store.list('persistentvolumeclaims', options).items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`);
    assert.deepEqual(names({}), ['default/a', 'default/b', 'team/c']);
    assert.deepEqual(names({ namespace: 'team' }), ['team/c']);
    assert.deepEqual(names({ labelSelector: 'tier=db' }), ['default/a', 'team/c']);
    assert.deepEqual(names({ labelSelector: 'tier in (db,web),!env' }), ['default/b', 'team/c']);
    assert.deepEqual(names({ labelSelector: 'env' }), ['default/a']);
    assert.deepEqual(names({ fieldSelector: 'metadata.name=b' }), ['default/b']);
    assert.deepEqual(names({ fieldSelector: 'status.phase=Pending,metadata.namespace!=default' }), ['team/c']);
    assert.equal(store.list('persistentvolumeclaims').resourceVersion, store.resourceVersion);
    assert.throws(() => store.list('persistentvolumeclaims', { fieldSelector: 'spec.nodeName=x' }), BadRequestError);
    assert.throws(() => store.list('persistentvolumeclaims', { labelSelector: 'a in (b' }), BadRequestError);
    const pod = store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'nginx' }] } });
    assert.deepEqual(store.list('pods', { fieldSelector: 'spec.nodeName=node-1' }).items.map((p) => p.metadata.uid), [pod.metadata.uid]);
    assert.equal(store.list('pods', { fieldSelector: 'spec.nodeName=' }).items.length, 0);
  });
});

describe('store: updates', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('refuses a stale resourceVersion with a Conflict', () => {
    const a = store.create(pvc('a'));
    const b = store.update({ ...a, metadata: { ...a.metadata, labels: { x: '1' } } });
    assert.notEqual(b.metadata.resourceVersion, a.metadata.resourceVersion);
    const err = thrown(() => store.update({ ...a, metadata: { ...a.metadata, labels: { x: '2' } } }));
    assert.ok(err instanceof ConflictError);
    assert.equal(err.code, 409);
    assert.equal(
      err.message,
      'Operation cannot be fulfilled on persistentvolumeclaims "a": the object has been modified; please apply your changes to the latest version and try again',
    );
    // Without a resourceVersion the update is unconditional, as Kubernetes allows.
    const { resourceVersion: _, ...meta } = a.metadata;
    assert.deepEqual(store.update({ ...a, metadata: { ...meta, labels: { x: '3' } } }).metadata.labels, { x: '3' });
    assert.throws(() => store.update(pvc('missing')), NotFoundError);
  });

  it('separates the main resource from status and bumps generation on spec changes only', () => {
    const a = store.create(pvc('a'));
    const labelled = store.update({ ...a, metadata: { ...a.metadata, labels: { x: '1' } }, status: { phase: 'Bound' } });
    assert.equal(labelled.status?.phase, 'Pending', 'a main update ignores status');
    assert.equal(labelled.metadata.generation, 1, 'metadata changes do not bump generation');
    const bound = store.update({ ...labelled, metadata: { ...labelled.metadata, labels: {} }, spec: { ...labelled.spec, volumeName: 'pv-1' }, status: { phase: 'Bound' } }, { subresource: 'status' });
    assert.equal(bound.status?.phase, 'Bound');
    assert.deepEqual(bound.metadata.labels, { x: '1' }, 'a status update ignores metadata');
    assert.equal(bound.spec.volumeName, undefined, 'a status update ignores spec');
    const named = store.update({ ...bound, spec: { ...bound.spec, volumeName: 'pv-1' } });
    assert.equal(named.metadata.generation, 2);
    const cm = store.create(configMap('cm'));
    assert.throws(() => store.update(cm, { subresource: 'status' }), { message: 'configmaps have no status subresource' });
  });

  it('writes nothing for an update that changes nothing', () => {
    const a = store.create(pvc('a'));
    const watch = record(store, 'persistentvolumeclaims', { resourceVersion: store.resourceVersion });
    const same = store.update({ ...a });
    assert.equal(same.metadata.resourceVersion, a.metadata.resourceVersion);
    assert.equal(store.resourceVersion, a.metadata.resourceVersion);
    assert.deepEqual(watch.events, []);
  });
});

describe('store: deletion', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('holds an object with finalizers until the last one is removed', () => {
    const a = store.create(pvc('a', { finalizers: ['kubernetes.io/pvc-protection', 'example.com/other'] }));
    const watch = record(store, 'persistentvolumeclaims', { resourceVersion: store.resourceVersion });
    const marked = store.delete('persistentvolumeclaims', 'default', 'a');
    assert.ok(marked.metadata.deletionTimestamp);
    assert.equal(marked.metadata.deletionGracePeriodSeconds, 0);
    assert.equal(marked.metadata.generation, 2);
    assert.deepEqual(store.get('persistentvolumeclaims', 'default', 'a'), marked);
    assert.deepEqual(store.delete('persistentvolumeclaims', 'default', 'a'), marked, 'deleting again changes nothing');

    const cause = thrown(() => store.update({ ...marked, metadata: { ...marked.metadata, finalizers: [...(marked.metadata.finalizers ?? []), 'example.com/new'] } }));
    assert.ok(cause instanceof InvalidError);
    assert.deepEqual(cause.causes.map(errorMessage), ['metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ["example.com/new"]']);

    const one = store.update({ ...marked, metadata: { ...marked.metadata, finalizers: ['example.com/other'] } });
    assert.ok(store.get('persistentvolumeclaims', 'default', 'a'));
    const gone = store.update({ ...one, metadata: { ...one.metadata, finalizers: [] } });
    assert.equal(store.get('persistentvolumeclaims', 'default', 'a'), undefined);
    assert.equal(gone.metadata.uid, a.metadata.uid);
    assert.deepEqual(
      watch.events.map((e) => e.type),
      ['MODIFIED', 'MODIFIED', 'DELETED'],
    );
    assert.equal(watch.events[2]?.object.metadata.resourceVersion, store.resourceVersion, 'DELETED carries the deletion resourceVersion');
  });

  it('checks delete preconditions', () => {
    const a = store.create(pvc('a'));
    assert.throws(() => store.delete('persistentvolumeclaims', 'default', 'a', { preconditions: { uid: 'other' } }), {
      message: `Operation cannot be fulfilled on persistentvolumeclaims "a": Precondition failed: UID in precondition: other, UID in object meta: ${a.metadata.uid}`,
    });
    assert.throws(() => store.delete('persistentvolumeclaims', 'default', 'a', { preconditions: { resourceVersion: '1' } }), ConflictError);
    store.delete('persistentvolumeclaims', 'default', 'a', { preconditions: { uid: a.metadata.uid ?? '', resourceVersion: a.metadata.resourceVersion ?? '' } });
    assert.throws(() => store.delete('persistentvolumeclaims', 'default', 'a'), NotFoundError);
  });

  it('deletes dependents in the background once all their owners are gone', () => {
    const owner = store.create(configMap('owner'));
    const other = store.create(configMap('other'));
    const child = store.create(configMap('child', [ownedBy(owner)]));
    store.create(configMap('grandchild', [ownedBy(child)]));
    store.create(configMap('shared', [ownedBy(owner), ownedBy(other)]));
    store.delete('configmaps', 'default', 'owner');
    const left = store.list('configmaps').items.map((o) => o.metadata.name);
    assert.deepEqual(left, ['other', 'shared'], 'child and grandchild collected; shared still has an owner');
  });

  it('deletes dependents first in the foreground', () => {
    const owner = store.create(configMap('owner'));
    store.create(configMap('blocking', [ownedBy(owner, true)], ['example.com/hold']));
    store.create(configMap('plain', [ownedBy(owner)]));
    const marked = store.delete('configmaps', 'default', 'owner', { propagationPolicy: 'Foreground' });
    assert.ok(marked.metadata.finalizers?.includes('foregroundDeletion'));
    assert.equal(store.get('configmaps', 'default', 'plain'), undefined);
    const blocking = store.get('configmaps', 'default', 'blocking');
    assert.ok(blocking?.metadata.deletionTimestamp, 'the blocking dependent is terminating');
    assert.ok(store.get('configmaps', 'default', 'owner'), 'the owner waits for it');
    store.update({ ...blocking, metadata: { ...blocking.metadata, finalizers: [] } });
    assert.equal(store.get('configmaps', 'default', 'blocking'), undefined);
    assert.equal(store.get('configmaps', 'default', 'owner'), undefined, 'then the owner goes');
  });

  it('orphans dependents when asked', () => {
    const owner = store.create(configMap('owner'));
    store.create(configMap('child', [ownedBy(owner)]));
    store.delete('configmaps', 'default', 'owner', { propagationPolicy: 'Orphan' });
    assert.equal(store.get('configmaps', 'default', 'owner'), undefined);
    assert.equal(store.get('configmaps', 'default', 'child')?.metadata.ownerReferences, undefined);
  });

  it('collects objects whose owner never existed', () => {
    store.create(configMap('dangling', [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'ghost', uid: 'no-such-uid' }]));
    store.collectGarbage();
    assert.equal(store.get('configmaps', 'default', 'dangling'), undefined);
  });

  it('empties a deleted namespace before removing it', () => {
    store.create<Namespace>({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
    store.create({ ...pvc('free'), metadata: { name: 'free', namespace: 'team' } });
    const held = store.create({ ...pvc('held'), metadata: { name: 'held', namespace: 'team', finalizers: ['kubernetes.io/pvc-protection'] } });
    const ns = store.delete('namespaces', undefined, 'team');
    assert.equal(ns.status?.phase, 'Terminating');
    assert.equal(store.get('persistentvolumeclaims', 'team', 'free'), undefined);
    assert.ok(store.get('persistentvolumeclaims', 'team', 'held')?.metadata.deletionTimestamp);
    const refused = thrown(() => store.create({ ...pvc('new'), metadata: { name: 'new', namespace: 'team' } }));
    assert.ok(refused instanceof ForbiddenError);
    assert.equal(refused.message, 'persistentvolumeclaims "new" is forbidden: unable to create new content in namespace team because it is being terminated');
    const current = store.get('persistentvolumeclaims', 'team', 'held');
    assert.ok(current);
    store.update({ ...current, metadata: { ...current.metadata, finalizers: [] } });
    assert.equal(store.get('namespaces', undefined, 'team'), undefined);
    assert.equal(held.metadata.namespace, 'team');
  });
});

describe('store: watch', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('sends the current objects, then every change in order', () => {
    store.create(pvc('a'));
    const watch = record(store, 'persistentvolumeclaims', { namespace: 'default' });
    const b = store.create(pvc('b'));
    store.create({ ...pvc('elsewhere'), metadata: { name: 'elsewhere', namespace: 'kube-system' } });
    const b2 = store.update({ ...b, metadata: { ...b.metadata, labels: { x: 'y' } } });
    store.delete('persistentvolumeclaims', 'default', 'a');
    watch.stop();
    store.delete('persistentvolumeclaims', 'default', 'b');
    assert.deepEqual(watch.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED a', 'ADDED b', 'MODIFIED b', 'DELETED a']);
    assert.equal(watch.events[2]?.object.metadata.resourceVersion, b2.metadata.resourceVersion);
  });

  it('replays history after a resourceVersion, then continues live', () => {
    const start = store.resourceVersion;
    const a = store.create(pvc('a'));
    store.update({ ...a, metadata: { ...a.metadata, labels: { x: '1' } } });
    const middle = store.resourceVersion;
    store.create(pvc('b'));
    const fromStart = record(store, 'persistentvolumeclaims', { resourceVersion: start });
    const fromMiddle = record(store, 'pvc', { resourceVersion: middle });
    store.delete('persistentvolumeclaims', 'default', 'b');
    assert.deepEqual(fromStart.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED a', 'MODIFIED a', 'ADDED b', 'DELETED b']);
    assert.deepEqual(fromMiddle.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED b', 'DELETED b']);
    const rvs = fromStart.events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual(rvs, [...rvs].sort((x, y) => x - y));
  });

  it('turns selector transitions into ADDED and DELETED', () => {
    const a = store.create(pvc('a'));
    const watch = record(store, 'persistentvolumeclaims', { labelSelector: 'app=db', resourceVersion: store.resourceVersion });
    const labelled = store.update({ ...a, metadata: { ...a.metadata, labels: { app: 'db' } } });
    const relabelled = store.update({ ...labelled, metadata: { ...labelled.metadata, labels: { app: 'db', v: '2' } } });
    store.update({ ...relabelled, metadata: { ...relabelled.metadata, labels: {} } });
    assert.deepEqual(watch.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED']);
    assert.deepEqual(watch.events[2]?.object.metadata.labels, { app: 'db', v: '2' }, 'DELETED shows the last matching state');
  });

  it('refuses a resourceVersion older than the event log with Expired (410)', () => {
    const small = open(':memory:', { eventRetention: 10 });
    try {
      for (let i = 0; i < 30; i++) small.create(pvc(`p${i}`));
      const err = thrown(() => small.watch('persistentvolumeclaims', { resourceVersion: '1' }, () => undefined));
      assert.ok(err instanceof ExpiredError);
      assert.equal(err.code, 410);
      assert.match(err.message, /^too old resource version: 1 \(\d+\)$/);
      const recent = String(Number(small.resourceVersion) - 5);
      const watch = record(small, 'persistentvolumeclaims', { resourceVersion: recent });
      assert.equal(watch.events.length, 5);
    } finally {
      small.close();
    }
  });

  it('keeps commit order when a handler writes to the store', () => {
    const seen: string[] = [];
    store.watch('persistentvolumeclaims', { resourceVersion: store.resourceVersion }, (e) => {
      // A controller reacting to a claim by labelling it.
      if (e.type === 'ADDED') store.update({ ...e.object, metadata: { ...e.object.metadata, labels: { seen: 'yes' } } });
    });
    store.watch('persistentvolumeclaims', { resourceVersion: store.resourceVersion }, (e) => seen.push(`${e.type}@${e.object.metadata.resourceVersion}`));
    store.create(pvc('a'));
    const rvs = seen.map((s) => Number(s.split('@')[1]));
    assert.deepEqual(seen.map((s) => s.split('@')[0]), ['ADDED', 'MODIFIED']);
    assert.ok((rvs[0] ?? 0) < (rvs[1] ?? 0));
    assert.equal(store.get('persistentvolumeclaims', 'default', 'a')?.metadata.labels?.['seen'], 'yes');
  });
});

describe('store: persistence', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'stowage-store-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps objects, resourceVersions and the event log across reopening', () => {
    const path = join(dir, 'store.db');
    const first = open(path);
    const a = first.create(pvc('a'));
    const rv = first.resourceVersion;
    first.close();
    const second = open(path);
    try {
      assert.deepEqual(second.get('persistentvolumeclaims', 'default', 'a'), a);
      assert.equal(second.resourceVersion, rv);
      const b = second.create(pvc('b'));
      assert.equal(Number(b.metadata.resourceVersion), Number(rv) + 1);
      const watch = record(second, 'persistentvolumeclaims', { resourceVersion: String(Number(a.metadata.resourceVersion) - 1) });
      assert.deepEqual(watch.events.map((e) => e.object.metadata.name), ['a', 'b']);
      assert.throws(() => open(path), /in use by another process/);
    } finally {
      second.close();
    }
  });

  it('measures durable writes per second', async (t) => {
    const store = open(join(dir, 'rate.db'));
    try {
      const count = 1000;
      // Grouped: every write of a turn shares one commit (one fsync), as under load.
      let start = performance.now();
      const created: PersistentVolumeClaim[] = [];
      for (let i = 0; i < count; i++) created.push(store.create(pvc(`claim-${i}`)));
      await store.flushed();
      const createRate = count / ((performance.now() - start) / 1000);
      start = performance.now();
      for (const c of created) store.update({ ...c, status: { phase: 'Bound' } }, { subresource: 'status' });
      await store.flushed();
      const updateRate = count / ((performance.now() - start) / 1000);
      // One at a time: each write waits for its own commit (one fsync each).
      const single = 200;
      start = performance.now();
      for (let i = 0; i < single; i++) {
        store.create(pvc(`single-${i}`));
        await store.flushed();
      }
      const singleRate = single / ((performance.now() - start) / 1000);
      t.diagnostic(
        `store: ${createRate.toFixed(0)} PVC creates/s, ${updateRate.toFixed(0)} status updates/s (${count} each in one turn, commits grouped), ` +
          `${singleRate.toFixed(0)} creates/s each awaiting its own commit (WAL + synchronous=FULL)`,
      );
      assert.equal(store.list('persistentvolumeclaims', { fieldSelector: 'status.phase=Bound' }).items.length, count);
    } finally {
      store.close();
    }
  });
});
