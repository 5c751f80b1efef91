// The store's dryRun option: every write kind (create, update, /status, delete, pods/binding) runs
// in full and answers what it would store, while the store, its resourceVersion, its watchers, its
// commits and the garbage collector see nothing.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ConfigMap, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject, WatchEvent } from '../../src/control/api/types/meta.js';
import { InvalidError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

function configMap(name: string, extra: Partial<ConfigMap['metadata']> = {}): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', ...extra }, data: { k: 'v' } };
}

describe('store: dryRun', () => {
  let store: Store;
  let events: WatchEvent[];
  let stop: () => void;

  beforeEach(() => {
    store = open(':memory:');
    stop = () => undefined;
  });
  afterEach(() => {
    stop();
    store.close();
  });

  /** Watches and snapshots everything a dry run must leave alone; the returned check compares. */
  function watchEverything(): () => void {
    events = [];
    const unwatch = ['configmaps', 'pods', 'namespaces'].map((r) => store.watch(r, { resourceVersion: store.resourceVersion }, (e) => events.push(e as WatchEvent)));
    stop = () => {
      for (const u of unwatch) u();
    };
    const rv = store.resourceVersion;
    const commits = store.commits;
    const objects = JSON.stringify(['configmaps', 'pods', 'namespaces'].map((r) => store.list(r).items));
    return () => {
      store.flushSync();
      assert.equal(store.resourceVersion, rv, 'no resourceVersion taken');
      assert.equal(store.commits, commits, 'nothing committed');
      assert.deepEqual(events, [], 'no watcher told');
      assert.equal(JSON.stringify(['configmaps', 'pods', 'namespaces'].map((r) => store.list(r).items)), objects, 'nothing stored');
    };
  }

  const cases: { name: string; setup?: (s: Store) => void; run: (s: Store) => KubeObject; check: (o: KubeObject) => void }[] = [
    {
      name: 'create answers the object with a generated name, a uid and no resourceVersion',
      run: (s) => s.create({ ...configMap(''), metadata: { namespace: 'default', generateName: 'cm-' } }, { dryRun: true }),
      check: (o) => {
        assert.match(o.metadata.name ?? '', /^cm-[a-z0-9]{5}$/);
        assert.ok(o.metadata.uid);
        assert.equal(o.metadata.resourceVersion, undefined);
      },
    },
    {
      name: 'update answers the change with the stored resourceVersion',
      setup: (s) => s.create(configMap('a')),
      run: (s) => s.update({ ...(s.get('configmaps', 'default', 'a') as ConfigMap), data: { k: 'changed' } }, { dryRun: true }),
      check: (o) => {
        assert.deepEqual((o as ConfigMap).data, { k: 'changed' });
        assert.equal(o.metadata.resourceVersion, store.get('configmaps', 'default', 'a')?.metadata.resourceVersion);
      },
    },
    {
      name: 'delete of an object finalizers hold answers it terminating',
      setup: (s) => s.create(configMap('held', { finalizers: ['example.com/x'] })),
      run: (s) => s.delete('configmaps', 'default', 'held', { dryRun: true }),
      check: (o) => assert.ok(o.metadata.deletionTimestamp),
    },
    {
      name: 'update that removes the last finalizer of a terminating object answers its removal',
      setup: (s) => {
        s.create(configMap('going', { finalizers: ['example.com/x'] }));
        s.delete('configmaps', 'default', 'going');
      },
      run: (s) => s.update({ ...(s.get('configmaps', 'default', 'going') as ConfigMap), metadata: { ...(s.get('configmaps', 'default', 'going') as ConfigMap).metadata, finalizers: [] } }, { dryRun: true }),
      check: (o) => assert.deepEqual(o.metadata.finalizers, []),
    },
    {
      name: 'delete of an owner collects none of its dependents',
      setup: (s) => {
        const owner = s.create(configMap('owner'));
        s.create(configMap('dependent', { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid ?? '' }] }));
      },
      run: (s) => s.delete('configmaps', 'default', 'owner', { dryRun: true, propagationPolicy: 'Foreground' }),
      check: (o) => assert.ok(o.metadata.finalizers?.includes('foregroundDeletion')),
    },
    {
      name: 'binding a pod answers it bound',
      setup: (s) => {
        s.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } });
        s.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } } as Pod);
      },
      run: (s) => s.bindPod('default', 'p', 'n1', { dryRun: true }),
      check: (o) => assert.equal((o as Pod).spec.nodeName, 'n1'),
    },
    {
      name: 'deleting a namespace leaves it and its objects',
      setup: (s) => {
        s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
        s.create({ ...configMap('in-team'), metadata: { name: 'in-team', namespace: 'team' } });
      },
      run: (s) => s.delete('namespaces', undefined, 'team', { dryRun: true }),
      check: (o) => assert.equal(o.metadata.name, 'team'),
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      c.setup?.(store);
      store.flushSync();
      const unchanged = watchEverything();
      c.check(c.run(store));
      unchanged();
    });
  }

  it('still validates: an invalid object is refused as without dryRun', () => {
    const unchanged = watchEverything();
    assert.throws(() => store.create({ ...configMap('bad'), data: { 'not a key!': 'x' } }, { dryRun: true }), InvalidError);
    unchanged();
  });
});
