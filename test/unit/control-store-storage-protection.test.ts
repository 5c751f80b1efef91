// The StorageObjectInUseProtection admission plugin: claims and volumes are created with their
// protection finalizer, in the create itself, as kube-apiserver does by default (and as the
// control plane's store is opened). A claim waiting for a consumer then costs the binder no
// write, and a claim deleted before any controller saw it is still held while a pod uses it.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ConfigMap, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { claim, pod, quiet, settle, storageClass, volume, waitFor } from './control-controllers-helpers.js';

describe('admission: StorageObjectInUseProtection', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:', { storageObjectInUseProtection: true });
  });
  afterEach(() => store.close());

  it('creates claims with kubernetes.io/pvc-protection and volumes with kubernetes.io/pv-protection', () => {
    assert.deepEqual(store.create(claim('a')).metadata.finalizers, ['kubernetes.io/pvc-protection']);
    assert.deepEqual(store.create(claim('b', {}, { finalizers: ['example.com/keep', 'kubernetes.io/pvc-protection'] })).metadata.finalizers, ['example.com/keep', 'kubernetes.io/pvc-protection'], 'not added twice');
    assert.deepEqual(store.create(volume('pv-a')).metadata.finalizers, ['kubernetes.io/pv-protection']);
    assert.deepEqual(store.create(claim('dry'), { dryRun: true }).metadata.finalizers, ['kubernetes.io/pvc-protection'], 'a dry run shows it too');
    const cm: ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'default' }, data: {} };
    assert.equal(store.create(cm).metadata.finalizers, undefined, 'other kinds are left alone');
    // A finalizer removed later by an update is not put back: only creates are admitted so.
    const a = store.get('persistentvolumeclaims', 'default', 'a') as PersistentVolumeClaim;
    assert.deepEqual(store.update({ ...a, metadata: { ...a.metadata, finalizers: [] } }).metadata.finalizers ?? [], []);
    // Deleted with no controller running: held by its finalizer.
    store.delete('persistentvolumeclaims', 'default', 'b');
    assert.ok(store.get('persistentvolumeclaims', 'default', 'b')?.metadata.deletionTimestamp);
  });

  it('is off for a store opened without it', () => {
    const bare = open(':memory:');
    try {
      assert.equal(bare.create(claim('a')).metadata.finalizers, undefined);
    } finally {
      bare.close();
    }
  });

  it('with the controllers: a claim waiting for its consumer is not written again; one in use is held, then released', async () => {
    let ctl: Controllers | undefined;
    try {
      store.create(storageClass('wffc', 'nobody.csi.test', { volumeBindingMode: 'WaitForFirstConsumer' }));
      const created = store.create(claim('data', { storageClassName: 'wffc' }));
      ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0 });
      const running = ctl;
      await settle(() => running.idle());
      assert.equal(store.get('persistentvolumeclaims', 'default', 'data')?.metadata.resourceVersion, created.metadata.resourceVersion, 'nothing to write on a claim that waits for a consumer');
      // A pod (not yet scheduled: no nodes) uses the claim: deleting the claim leaves it Terminating.
      store.create(pod('app', ['data']));
      store.delete('persistentvolumeclaims', 'default', 'data');
      await settle(() => running.idle());
      assert.ok(store.get('persistentvolumeclaims', 'default', 'data')?.metadata.deletionTimestamp, 'held while a pod uses it');
      store.delete('pods', 'default', 'app', { gracePeriodSeconds: 0 });
      await waitFor(() => store.get('persistentvolumeclaims', 'default', 'data') === undefined, 'claim removed once unused');
    } finally {
      await ctl?.stop();
    }
  });
});
