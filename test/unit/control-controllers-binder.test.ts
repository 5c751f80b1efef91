// The PersistentVolume controller against the store: matching (smallest fit; class, access modes,
// capacity, volume mode, selector, pre-bound volumeName/claimRef), both sides' status and
// annotations, hand-off to a provisioner, WaitForFirstConsumer, reclaim (Retain/Delete/no
// deleter), lost claims, and finishing a half-done binding.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import { Binder, type VolumeDeleter } from '../../src/control/controllers/binder.js';
import { DriverRegistry } from '../../src/control/controllers/driver-registry.js';
import { InformerFactory } from '../../src/control/controllers/informer.js';
import {
  ANN_BIND_COMPLETED,
  ANN_BOUND_BY_CONTROLLER,
  ANN_SELECTED_NODE,
  ANN_STORAGE_PROVISIONER,
  PVC_PROTECTION_FINALIZER,
} from '../../src/control/controllers/volume-util.js';
import { open, type Store } from '../../src/control/store/store.js';
import { claim, csiDriverObject, phaseOf, quiet, RecordingSink, settle, storageClass, volume } from './control-controllers-helpers.js';

class FakeDeleter implements VolumeDeleter {
  deleted: string[] = [];
  verdict: 'yes' | 'unregistered' | 'no' = 'yes';
  failures = 0;

  canDelete(pv: PersistentVolume): 'yes' | 'unregistered' | 'no' {
    return pv.spec.csi === undefined ? 'no' : this.verdict;
  }

  async deleteVolume(pv: PersistentVolume): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('rpc error: code = Internal desc = disk on fire');
    }
    this.deleted.push(pv.spec.csi?.volumeHandle ?? '');
  }
}

describe('binder', () => {
  let store: Store;
  let factory: InformerFactory;
  let binder: Binder;
  let sink: RecordingSink;
  let deleter: FakeDeleter;
  let registry: DriverRegistry;

  beforeEach(() => {
    store = open(':memory:');
    factory = new InformerFactory(store);
    sink = new RecordingSink();
    deleter = new FakeDeleter();
    registry = new DriverRegistry({ csiDrivers: factory.for('csidrivers'), csiNodes: factory.for('csinodes'), logger: quiet });
    binder = new Binder({ store, informers: factory, registry, recorder: sink, deleter, logger: quiet });
    factory.start();
    binder.start();
  });

  afterEach(async () => {
    await binder.stop();
    factory.stop();
    registry.close();
    store.close();
  });

  const idle = () => settle(() => binder.claims.idle && binder.volumes.idle);
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim;
  const getVolume = (name: string) => store.get('persistentvolumes', undefined, name) as PersistentVolume;

  it('makes new volumes Available and binds a claim to the smallest one that fits', async () => {
    store.create(volume('big', { capacity: { storage: '10Gi' }, storageClassName: 'manual' }));
    store.create(volume('small', { capacity: { storage: '500Mi' }, storageClassName: 'manual' }));
    store.create(volume('fits', { capacity: { storage: '2Gi' }, storageClassName: 'manual' }));
    store.create(volume('fits-too', { capacity: { storage: '5Gi' }, storageClassName: 'manual' }));
    await idle();
    assert.deepEqual(['big', 'small', 'fits', 'fits-too'].map((n) => phaseOf(store, 'persistentvolumes', n)), ['Available', 'Available', 'Available', 'Available']);

    const c = store.create(claim('data', { storageClassName: 'manual' }));
    await idle();
    const bound = getClaim('data');
    assert.equal(bound.spec.volumeName, 'fits');
    assert.equal(bound.status?.phase, 'Bound');
    assert.deepEqual(bound.status?.capacity, { storage: '2Gi' });
    assert.deepEqual(bound.status?.accessModes, ['ReadWriteOnce']);
    assert.equal(bound.metadata.annotations?.[ANN_BIND_COMPLETED], 'yes');
    assert.equal(bound.metadata.annotations?.[ANN_BOUND_BY_CONTROLLER], 'yes');
    assert.deepEqual(bound.metadata.finalizers, [PVC_PROTECTION_FINALIZER], 'the binding write carries the protection finalizer');
    const pv = getVolume('fits');
    assert.equal(pv.status?.phase, 'Bound');
    assert.deepEqual(
      { kind: pv.spec.claimRef?.kind, namespace: pv.spec.claimRef?.namespace, name: pv.spec.claimRef?.name, uid: pv.spec.claimRef?.uid },
      { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'data', uid: c.metadata.uid },
    );
    assert.equal(pv.metadata.annotations?.[ANN_BOUND_BY_CONTROLLER], 'yes');
    assert.equal(phaseOf(store, 'persistentvolumes', 'fits-too'), 'Available');

    // Level-triggered: syncing again changes nothing.
    const rv = store.resourceVersion;
    binder.claims.enqueue('default/data');
    binder.volumes.enqueue('fits');
    await idle();
    assert.equal(store.resourceVersion, rv);
  });

  it('matches class, access modes, volume mode and selector, and says why nothing matched', async () => {
    store.create(volume('rwo', { storageClassName: 'manual', capacity: { storage: '5Gi' } }));
    store.create(volume('block', { storageClassName: 'manual', volumeMode: 'Block', accessModes: ['ReadWriteMany'], capacity: { storage: '5Gi' } }));
    store.create(volume('other-class', { storageClassName: 'fast', accessModes: ['ReadWriteMany'], capacity: { storage: '5Gi' } }));
    store.create(volume('labelled', { storageClassName: 'manual', accessModes: ['ReadWriteMany'], capacity: { storage: '50Gi' } }, { labels: { tier: 'gold' } }));
    await idle();
    store.create(claim('rwx', { storageClassName: 'manual', accessModes: ['ReadWriteMany'], selector: { matchLabels: { tier: 'silver' } } }));
    store.create(claim('gold', { storageClassName: 'manual', accessModes: ['ReadWriteMany'], selector: { matchLabels: { tier: 'gold' } } }));
    store.create(claim('blockish', { storageClassName: 'manual', volumeMode: 'Block', accessModes: ['ReadWriteMany'] }));
    await idle();
    assert.equal(getClaim('gold').spec.volumeName, 'labelled');
    assert.equal(getClaim('blockish').spec.volumeName, 'block');
    assert.equal(phaseOf(store, 'persistentvolumeclaims', 'rwx'), 'Pending');
    assert.equal(phaseOf(store, 'persistentvolumes', 'rwo'), 'Available');
    const why = sink.about('rwx').at(-1);
    assert.equal(why?.reason, 'ProvisioningFailed');
    assert.match(why?.message ?? '', /storageclass\.storage\.k8s\.io "manual" not found/);
    assert.match(why?.message ?? '', /volume rwo: lacks access mode ReadWriteMany/);
    assert.deepEqual(getClaim('rwx').metadata.finalizers, [PVC_PROTECTION_FINALIZER], 'a pending claim is protected too');

    store.create(claim('classless', { accessModes: ['ReadWriteOnce'] }));
    await idle();
    assert.match(sink.about('classless').at(-1)?.message ?? '', /^no persistent volumes available for this claim and no storage class is set/);

    // A matching volume created later is picked up without waiting for a resync.
    store.create(volume('silver', { storageClassName: 'manual', accessModes: ['ReadWriteMany', 'ReadWriteOnce'], capacity: { storage: '1Gi' } }, { labels: { tier: 'silver' } }));
    await idle();
    assert.equal(getClaim('rwx').spec.volumeName, 'silver');
  });

  it('honours a claim that names its volume and a volume pre-bound to a claim', async () => {
    store.create(volume('small', { storageClassName: 'manual' }));
    store.create(volume('named', { storageClassName: 'manual', capacity: { storage: '8Gi' } }));
    store.create(volume('reserved', { storageClassName: 'manual', capacity: { storage: '4Gi' }, claimRef: { namespace: 'default', name: 'vip' } }));
    await idle();
    assert.equal(phaseOf(store, 'persistentvolumes', 'reserved'), 'Available');
    store.create(claim('picky', { storageClassName: 'manual', volumeName: 'named' }));
    store.create(claim('vip', { storageClassName: 'manual' }));
    store.create(claim('anyone', { storageClassName: 'manual' }));
    await idle();
    assert.equal(getClaim('picky').spec.volumeName, 'named');
    assert.equal(getClaim('picky').metadata.annotations?.[ANN_BOUND_BY_CONTROLLER], undefined, 'the user chose the volume');
    assert.equal(getVolume('named').metadata.annotations?.[ANN_BOUND_BY_CONTROLLER], 'yes');
    assert.equal(getClaim('vip').spec.volumeName, 'reserved');
    assert.equal(getVolume('reserved').metadata.annotations?.[ANN_BOUND_BY_CONTROLLER], undefined, 'the user pre-bound the volume');
    assert.equal(getVolume('reserved').spec.claimRef?.uid, getClaim('vip').metadata.uid);
    assert.equal(getClaim('anyone').spec.volumeName, 'small', 'a pre-bound volume is not available to others');

    // Named volume too small, or missing: the claim waits and says why.
    store.create(claim('greedy', { storageClassName: 'manual', volumeName: 'tiny', resources: { requests: { storage: '2Gi' } } }));
    await idle();
    assert.match(sink.about('greedy').at(-1)?.message ?? '', /volume "tiny" requested by the claim does not exist/);
    store.create(volume('tiny', { storageClassName: 'manual', capacity: { storage: '1Gi' } }));
    await idle();
    assert.equal(sink.about('greedy').at(-1)?.reason, 'VolumeMismatch');
    assert.match(sink.about('greedy').at(-1)?.message ?? '', /capacity 1Gi is less than the requested 2Gi/);
    assert.equal(phaseOf(store, 'persistentvolumeclaims', 'greedy'), 'Pending');
    // A volume already bound to someone else.
    store.create(claim('thief', { storageClassName: 'manual', volumeName: 'small' }));
    await idle();
    assert.equal(sink.about('thief').at(-1)?.message, 'volume "small" already bound to a different claim.');
  });

  it('hands a claim nothing matches to its class provisioner, and says when that is not registered', async () => {
    store.create(storageClass('fast', 'fake.csi.test'));
    store.create(claim('dyn', { storageClassName: 'fast' }));
    await idle();
    const c = getClaim('dyn');
    assert.equal(c.metadata.annotations?.[ANN_STORAGE_PROVISIONER], 'fake.csi.test');
    assert.equal(c.metadata.annotations?.['volume.beta.kubernetes.io/storage-provisioner'], 'fake.csi.test');
    assert.deepEqual(c.metadata.finalizers, [PVC_PROTECTION_FINALIZER], 'annotation and finalizer in one write');
    const ev = sink.about('dyn').at(-1);
    assert.equal(ev?.reason, 'ExternalProvisioning');
    assert.match(ev?.message ?? '', /external provisioner 'fake\.csi\.test'.*no CSIDriver "fake\.csi\.test"/);

    // Registered: no more "waiting for the external provisioner".
    store.create(csiDriverObject('fake.csi.test', 'unix:///nonexistent/csi.sock'));
    const before = sink.events.length;
    binder.claims.enqueue('default/dyn');
    await idle();
    assert.equal(sink.events.slice(before).filter((e) => e.reason === 'ExternalProvisioning').length, 0);

    // Class with no provisioner.
    store.create(storageClass('local', 'kubernetes.io/no-provisioner'));
    store.create(claim('static', { storageClassName: 'local' }));
    await idle();
    assert.match(sink.about('static').at(-1)?.message ?? '', /storage class "local" has no provisioner/);
    assert.equal(getClaim('static').metadata.annotations?.[ANN_STORAGE_PROVISIONER], undefined);
  });

  it('gives a claim that names no class the default class created after it', async () => {
    store.create(claim('early'));
    await idle();
    assert.equal(getClaim('early').spec.storageClassName, undefined);
    assert.match(sink.about('early').at(-1)?.message ?? '', /no storage class is set/);
    store.create(storageClass('std', 'fake.csi.test', { metadata: { name: 'std', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } }));
    await idle();
    assert.equal(getClaim('early').spec.storageClassName, 'std');
    assert.equal(getClaim('early').metadata.annotations?.[ANN_STORAGE_PROVISIONER], 'fake.csi.test');
  });

  it('waits for a selected node under WaitForFirstConsumer, then binds a volume reachable from it', async () => {
    store.create(storageClass('wffc', 'kubernetes.io/no-provisioner', { volumeBindingMode: 'WaitForFirstConsumer' }));
    store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'kubernetes.io/hostname': 'n1' } } });
    const onNode = (node: string) => ({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In' as const, values: [node] }] }] } });
    store.create(volume('on-n2', { storageClassName: 'wffc', nodeAffinity: onNode('n2'), local: { path: '/d' }, hostPath: undefined }));
    store.create(volume('on-n1', { storageClassName: 'wffc', nodeAffinity: onNode('n1'), capacity: { storage: '3Gi' }, local: { path: '/d' }, hostPath: undefined }));
    store.create(claim('late', { storageClassName: 'wffc' }));
    await idle();
    assert.equal(phaseOf(store, 'persistentvolumeclaims', 'late'), 'Pending');
    assert.equal(sink.about('late').at(-1)?.reason, 'WaitForFirstConsumer');
    const c = getClaim('late');
    store.update({ ...c, metadata: { ...c.metadata, annotations: { ...c.metadata.annotations, [ANN_SELECTED_NODE]: 'n1' } } });
    await idle();
    assert.equal(getClaim('late').spec.volumeName, 'on-n1', 'the smaller volume is on another node');
  });

  it('reclaims released volumes: Retain keeps them, Delete deletes storage then the PV, Failed when nothing can delete', async () => {
    store.create(csiDriverObject('fake.csi.test', 'unix:///nonexistent/csi.sock'));
    const csi = (handle: string) => ({ hostPath: undefined, csi: { driver: 'fake.csi.test', volumeHandle: handle } });
    store.create(volume('keep', { storageClassName: 'm', persistentVolumeReclaimPolicy: 'Retain', ...csi('h-keep') }));
    store.create(volume('drop', { storageClassName: 'm', persistentVolumeReclaimPolicy: 'Delete', capacity: { storage: '2Gi' }, ...csi('h-drop') }));
    store.create(volume('hostpath', { storageClassName: 'm', persistentVolumeReclaimPolicy: 'Delete', capacity: { storage: '3Gi' } }));
    await idle();
    for (const name of ['a', 'b', 'c']) store.create(claim(name, { storageClassName: 'm' }));
    await idle();
    assert.deepEqual(['a', 'b', 'c'].map((n) => getClaim(n).spec.volumeName), ['keep', 'drop', 'hostpath']);

    deleter.failures = 1;
    for (const name of ['a', 'b', 'c']) {
      const c = getClaim(name);
      store.update({ ...c, metadata: { ...c.metadata, finalizers: [] } });
      store.delete('persistentvolumeclaims', 'default', name);
    }
    await idle();
    await settle(() => getVolume('drop') === undefined && binder.volumes.idle);
    assert.equal(phaseOf(store, 'persistentvolumes', 'keep'), 'Released');
    assert.deepEqual(deleter.deleted, ['h-drop'], 'deleted once, after a failed attempt');
    assert.ok(sink.about('drop').some((e) => e.reason === 'VolumeFailedDelete' && /disk on fire/.test(e.message)));
    assert.equal(getVolume('drop'), undefined);
    assert.equal(phaseOf(store, 'persistentvolumes', 'hostpath'), 'Failed');
    assert.match(getVolume('hostpath').status?.message ?? '', /no deletable volume plugin matched/);
  });

  it('waits for an unregistered driver before deleting, and marks claims whose volume vanished Lost', async () => {
    deleter.verdict = 'unregistered';
    store.create(volume('v', { storageClassName: 'm', persistentVolumeReclaimPolicy: 'Delete', hostPath: undefined, csi: { driver: 'gone.csi.test', volumeHandle: 'h' } }));
    store.create(volume('w', { storageClassName: 'm', capacity: { storage: '2Gi' } }));
    await idle();
    store.create(claim('x', { storageClassName: 'm' }));
    store.create(claim('y', { storageClassName: 'm' }));
    await idle();
    assert.equal(getClaim('x').spec.volumeName, 'v');
    store.delete('persistentvolumeclaims', 'default', 'x');
    store.update({ ...getClaim('x'), metadata: { ...getClaim('x').metadata, finalizers: [] } });
    await idle();
    assert.equal(phaseOf(store, 'persistentvolumes', 'v'), 'Released');
    assert.match(sink.about('v').at(-1)?.message ?? '', /not registered; the volume will be deleted when it is/);

    store.delete('persistentvolumes', undefined, 'w');
    await idle();
    assert.equal(phaseOf(store, 'persistentvolumeclaims', 'y'), 'Lost');
    assert.equal(sink.about('y').at(-1)?.reason, 'ClaimLost');
  });

  it('finishes a binding interrupted half-way', async () => {
    const c = store.create(claim('half', { storageClassName: 'm' }));
    // As if the controller died after the first of its four writes.
    store.create(
      volume('v', {
        storageClassName: 'm',
        claimRef: { kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: 'default', name: 'half', uid: c.metadata.uid ?? '' },
      }, { annotations: { [ANN_BOUND_BY_CONTROLLER]: 'yes' } }),
    );
    await idle();
    assert.equal(getClaim('half').spec.volumeName, 'v');
    assert.equal(phaseOf(store, 'persistentvolumeclaims', 'half'), 'Bound');
    assert.equal(phaseOf(store, 'persistentvolumes', 'v'), 'Bound');
  });

  it('unbinds a volume it bound to a claim that ended up bound elsewhere', async () => {
    store.create(volume('a', { storageClassName: 'm' }));
    store.create(volume('b', { storageClassName: 'm' }));
    await idle();
    const c = store.create(claim('c', { storageClassName: 'm', volumeName: 'a' }));
    await idle();
    assert.equal(getClaim('c').spec.volumeName, 'a');
    // A stale binding of 'b' to the same claim, made by the controller.
    const b = getVolume('b');
    store.update({
      ...b,
      metadata: { ...b.metadata, annotations: { [ANN_BOUND_BY_CONTROLLER]: 'yes' } },
      spec: { ...b.spec, claimRef: { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'c', uid: c.metadata.uid ?? '' } },
    });
    await idle();
    assert.equal(getVolume('b').spec.claimRef, undefined);
    assert.equal(phaseOf(store, 'persistentvolumes', 'b'), 'Available');
  });
});
