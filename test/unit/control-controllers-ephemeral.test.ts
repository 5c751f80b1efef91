// Generic ephemeral volumes and ReadWriteOncePod through the controllers, against a fake CSI
// driver: the ephemeral-volume controller makes claim "<pod>-<volume>" from the template, owned by
// the pod, and the garbage collector deletes it with the pod; a same-named claim the pod does not
// own is never taken over (the pod stays Pending, with the scheduler's words); a ReadWriteOncePod
// claim used by one placed pod keeps a second pod Pending with kube-scheduler's reason until the
// first is gone.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Node, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import type { CreateVolumeRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, pod, quiet, settle, startFakeDriver, storageClass, volume, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';

function node(name: string): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } } };
}

function ephemeralPod(name: string, template: Record<string, unknown>): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { containers: [{ name: 'c', image: 'busybox', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] }], volumes: [{ name: 'scratch', ephemeral: { volumeClaimTemplate: template as never } }] },
  };
}

const TEMPLATE = {
  metadata: { labels: { type: 'scratch' }, annotations: { note: 'made for the pod' } },
  spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'fast', resources: { requests: { storage: '1Gi' } } },
};

describe('generic ephemeral volumes and ReadWriteOncePod', () => {
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  let creates: CreateVolumeRequest[];

  beforeEach(async () => {
    store = open(':memory:');
    creates = [];
    driver = await startFakeDriver(DRIVER, {
      controller: {
        async CreateVolume(req) {
          creates.push(req);
          return { volume: { volume_id: `vol-${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [] } };
        },
        async DeleteVolume() {
          return {};
        },
      },
    });
    store.create(csiDriverObject(DRIVER, driver.endpoint));
    store.create(storageClass('fast', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
    for (const n of ['n1', 'n2', 'n3']) {
      store.create(node(n));
      store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name: n }, spec: { drivers: [{ name: DRIVER, nodeID: `id-${n}`, topologyKeys: [] }] } });
    }
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  const idle = () => settle(() => ctl.idle());
  const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const condition = (name: string) => getPod(name)?.status?.conditions?.find((c) => c.type === 'PodScheduled');

  it('makes claim "<pod>-<volume>" from the template, owned by the pod, provisions it, and deletes it with the pod', async () => {
    const created = store.create(ephemeralPod('worker', TEMPLATE));
    const pvc = await waitFor(() => getClaim('worker-scratch'), 'the ephemeral claim');
    assert.deepEqual(pvc.metadata.labels, { type: 'scratch' });
    assert.equal(pvc.metadata.annotations?.note, 'made for the pod');
    assert.deepEqual(pvc.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Pod', name: 'worker', uid: created.metadata.uid, controller: true, blockOwnerDeletion: true }]);
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteOnce']);
    assert.equal(pvc.spec.storageClassName, 'fast');

    // WaitForFirstConsumer: the scheduler picks a node, the claim is provisioned there, the pod is bound.
    const nodeName = await waitFor(() => getPod('worker')?.spec.nodeName, 'the pod scheduled');
    assert.ok(['n1', 'n2', 'n3'].includes(nodeName));
    assert.equal(getClaim('worker-scratch')?.status?.phase, 'Bound');
    assert.equal(creates.length, 1);

    // The pod goes (no kubelet here: at once), and its claim with it.
    store.delete('pods', 'default', 'worker', { gracePeriodSeconds: 0 });
    await waitFor(() => getClaim('worker-scratch') === undefined || getClaim('worker-scratch')?.metadata.deletionTimestamp !== undefined || undefined, 'the claim deleted with its pod');
    await idle();
    assert.equal(getClaim('worker-scratch'), undefined, 'the claim is gone once its pod is');
  });

  it('never takes over a same-named claim the pod does not own: the pod stays Pending and says why', async () => {
    store.create(claim('worker-scratch', { storageClassName: 'fast' }, { labels: { mine: 'yes' } }));
    store.create(ephemeralPod('worker', TEMPLATE));
    await waitFor(() => condition('worker')?.status === 'False' || undefined, 'PodScheduled=False');
    await idle();
    assert.equal(condition('worker')?.message, '0/3 nodes are available: PVC default/worker-scratch was not created for pod default/worker (pod is not owner). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');
    const foreign = getClaim('worker-scratch');
    assert.deepEqual(foreign?.metadata.labels, { mine: 'yes' }, 'the user\'s claim is untouched');
    assert.equal(foreign?.metadata.ownerReferences, undefined);
    assert.equal(getPod('worker')?.spec.nodeName, undefined);

    // The user removes their claim: the pod gets its own and runs.
    store.delete('persistentvolumeclaims', 'default', 'worker-scratch');
    await waitFor(() => getPod('worker')?.spec.nodeName, 'the pod scheduled with its own claim');
    assert.equal(getClaim('worker-scratch')?.metadata.ownerReferences?.[0]?.name, 'worker');
  });

  it('refuses a pod whose ephemeral volume has no template', () => {
    assert.throws(() => store.create({ ...ephemeralPod('bad', TEMPLATE), spec: { containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 'scratch', ephemeral: {} }] } }), /spec\.volumes\[0\]\.ephemeral\.volumeClaimTemplate: Required value/);
  });

  it('keeps a second pod of a ReadWriteOncePod claim Pending with kube-scheduler\'s reason, until the first is gone', async () => {
    store.create(volume('solo-pv', { storageClassName: '', accessModes: ['ReadWriteOncePod'] }));
    store.create(claim('solo', { storageClassName: '', volumeName: 'solo-pv', accessModes: ['ReadWriteOncePod'] }));
    await waitFor(() => getClaim('solo')?.status?.phase === 'Bound' || undefined, 'claim Bound');
    store.create(pod('first', ['solo']));
    await waitFor(() => getPod('first')?.spec.nodeName, 'first scheduled');
    store.create(pod('second', ['solo']));
    await waitFor(() => condition('second')?.status === 'False' || undefined, 'second unschedulable');
    await idle();
    assert.equal(condition('second')?.message, '0/3 nodes are available: 3 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.');
    assert.equal(getPod('second')?.spec.nodeName, undefined);

    // An ordinary ReadWriteOnce claim is not restricted this way.
    store.create(volume('shared-pv', { storageClassName: '' }));
    store.create(claim('shared', { storageClassName: '', volumeName: 'shared-pv' }));
    store.create(pod('a', ['shared']));
    store.create(pod('b', ['shared']));
    await waitFor(() => getPod('b')?.spec.nodeName, 'b scheduled beside a');

    store.delete('pods', 'default', 'first', { gracePeriodSeconds: 0 });
    await waitFor(() => getPod('second')?.spec.nodeName, 'second scheduled once first is gone');
  });
});
