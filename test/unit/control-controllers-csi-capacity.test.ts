// csi-capacity publishes CSIStorageCapacity objects (external-provisioner's --enable-capacity):
// one per (node, class) of a driver whose CSIDriver sets storageCapacity, with the driver's
// GetCapacity figures for the node's topology, refreshed when a volume is made, removed with the
// class or the node. Against a fake CSI driver.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Node, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { CSINode, CSIStorageCapacity } from '../../src/control/api/types/storage.js';
import { CAPACITY_NAMESPACE, capacityObjectName } from '../../src/control/controllers/csi-capacity.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { claim, csiDriverObject, type FakeDriver, pod, quiet, startFakeDriver, storageClass, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'cap.csi.test';
const NODE_KEY = 'topology.stowage.dev/node';
const MiB = 1024 * 1024;

function node(name: string): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, [NODE_KEY]: name } } };
}

function csiNode(name: string): CSINode {
  return { apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name }, spec: { drivers: [{ name: DRIVER, nodeID: name, topologyKeys: [NODE_KEY] }] } };
}

describe('csi-capacity: CSIStorageCapacity objects', () => {
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  /** Bytes left per node. */
  let free: Record<string, number>;

  beforeEach(async () => {
    store = open(':memory:');
    free = { n1: 64 * MiB, n2: 1024 * MiB };
    driver = await startFakeDriver(DRIVER, {
      controllerCapabilities: ['CREATE_DELETE_VOLUME', 'GET_CAPACITY'],
      controller: {
        async GetCapacity(req) {
          const left = free[req.accessible_topology?.segments[NODE_KEY] ?? ''] ?? 0;
          return { available_capacity: left, maximum_volume_size: { value: left } };
        },
        async CreateVolume(req) {
          const n = req.accessibility_requirements?.requisite[0]?.segments[NODE_KEY] ?? '';
          free[n] = (free[n] ?? 0) - Number(req.capacity_range?.required_bytes ?? 0);
          return { volume: { volume_id: `vol-${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [{ segments: { [NODE_KEY]: n } }] } };
        },
        async DeleteVolume() {
          return {};
        },
      },
    });
    const csiDriver = csiDriverObject(DRIVER, driver.endpoint);
    csiDriver.spec.storageCapacity = true;
    store.create(csiDriver);
    for (const n of ['n1', 'n2']) {
      store.create(node(n));
      store.create(csiNode(n));
    }
    store.create(storageClass('fast', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
    store.create(storageClass('other', 'other.csi.test'));
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  const capacities = () => store.list('csistoragecapacities', { namespace: CAPACITY_NAMESPACE }).items;
  const capacityOf = (n: string, sc: string) => store.get('csistoragecapacities', CAPACITY_NAMESPACE, capacityObjectName(DRIVER, n, sc)) as CSIStorageCapacity | undefined;

  it('publishes the driver figures per node and class, refreshes them after a volume, removes them with the class', async () => {
    await waitFor(() => capacities().length === 2, 'two CSIStorageCapacity objects');
    const n1 = capacityOf('n1', 'fast');
    assert.equal(n1?.storageClassName, 'fast');
    assert.equal(n1?.capacity, '64Mi');
    assert.equal(n1?.maximumVolumeSize, '64Mi');
    assert.deepEqual(n1?.nodeTopology, { matchLabels: { [NODE_KEY]: 'n1' } });
    assert.equal(capacityOf('n2', 'fast')?.capacity, '1Gi');
    assert.ok(capacities().every((c) => c.storageClassName === 'fast'), 'no object for a class of another driver');

    // 100Mi only fits n2: the scheduler, on the same figures, picks it; the object follows the volume.
    store.create(claim('data', { storageClassName: 'fast', resources: { requests: { storage: '100Mi' } } }));
    store.create(pod('app', ['data']));
    const nodeName = await waitFor(() => (store.get('pods', 'default', 'app') as Pod | undefined)?.spec.nodeName, 'app scheduled');
    assert.equal(nodeName, 'n2');
    await waitFor(() => (store.get('persistentvolumeclaims', 'default', 'data') as PersistentVolumeClaim | undefined)?.status?.phase === 'Bound', 'claim bound');
    await waitFor(() => capacityOf('n2', 'fast')?.capacity === '924Mi', 'n2 capacity after the volume');
    assert.equal(capacityOf('n1', 'fast')?.capacity, '64Mi');

    store.delete('nodes', undefined, 'n1');
    await waitFor(() => capacityOf('n1', 'fast') === undefined, 'n1 object removed with its node');
    store.delete('storageclasses', undefined, 'fast');
    await waitFor(() => capacities().length === 0, 'objects removed with their class');
  });
});
