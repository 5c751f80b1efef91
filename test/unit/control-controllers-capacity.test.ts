// The scheduler consults storage capacity (storage-capacity.ts) for WaitForFirstConsumer claims of a
// driver whose CSIDriver sets storageCapacity: GetCapacity per node (with the node's topology and
// the class parameters), a node without room filtered out with kube-scheduler's "did not have
// enough free storage", figures refreshed after volumes are made; drivers without storageCapacity,
// or that cannot answer, are scheduled as before. Against a fake CSI driver.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Node, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { CSINode } from '../../src/control/api/types/storage.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { ANN_SELECTED_NODE } from '../../src/control/controllers/volume-util.js';
import { capacityAdmits } from '../../src/control/controllers/storage-capacity.js';
import { open, type Store } from '../../src/control/store/store.js';
import { UnavailableError } from '../../src/csi/errors.js';
import type { GetCapacityRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, pod, quiet, startFakeDriver, storageClass, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'cap.csi.test';
const ZONE = 'topology.cap.test/zone';
const MiB = 1024 * 1024;

function node(name: string, zone: string): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, [ZONE]: zone } } };
}

function csiNode(name: string): CSINode {
  return { apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name }, spec: { drivers: [{ name: DRIVER, nodeID: name, topologyKeys: [ZONE] }] } };
}

describe('capacity figures', () => {
  const cases: [string, { available: number; maximum: number | undefined }, number, boolean][] = [
    ['fits the available bytes', { available: 200 * MiB, maximum: undefined }, 100 * MiB, true],
    ['does not', { available: 16 * MiB, maximum: undefined }, 100 * MiB, false],
    ['maximum_volume_size decides when given', { available: 1024 * MiB, maximum: 50 * MiB }, 100 * MiB, false],
    ['exactly the maximum fits', { available: 1024 * MiB, maximum: 100 * MiB }, 100 * MiB, true],
  ];
  for (const [what, figure, bytes, want] of cases) it(what, () => assert.equal(capacityAdmits(figure, bytes), want));
});

describe('scheduler: storage capacity', () => {
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  let asked: GetCapacityRequest[];
  /** Bytes left per zone; a missing zone answers UNAVAILABLE. */
  let free: Record<string, number>;

  beforeEach(async () => {
    store = open(':memory:');
    asked = [];
    free = { z1: 16 * MiB, z2: 1024 * MiB };
    driver = await startFakeDriver(DRIVER, {
      controllerCapabilities: ['CREATE_DELETE_VOLUME', 'GET_CAPACITY'],
      controller: {
        async GetCapacity(req) {
          asked.push(req);
          const zone = req.accessible_topology?.segments[ZONE] ?? '';
          const left = free[zone];
          if (left === undefined) throw new UnavailableError(`zone ${zone} is not answering`);
          return { available_capacity: left, maximum_volume_size: { value: left } };
        },
        async CreateVolume(req) {
          const zone = req.accessibility_requirements?.requisite[0]?.segments[ZONE] ?? '';
          free[zone] = (free[zone] ?? 0) - Number(req.capacity_range?.required_bytes ?? 0);
          return { volume: { volume_id: `vol-${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [{ segments: { [ZONE]: zone } }] } };
        },
        async DeleteVolume() {
          return {};
        },
      },
    });
    const csiDriver = csiDriverObject(DRIVER, driver.endpoint);
    csiDriver.spec.storageCapacity = true;
    store.create(csiDriver);
    store.create(node('n1', 'z1'));
    store.create(node('n2', 'z2'));
    store.create(csiNode('n1'));
    store.create(csiNode('n2'));
    store.create(storageClass('wffc', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer', parameters: { tier: 'gold' } }));
    // Without the publisher (csi-capacity): these tests count what the scheduler asks.
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200, controllers: ['*', '-csi-capacity'] });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const scheduled = (name: string) => waitFor(() => getPod(name)?.spec.nodeName, `${name} scheduled`);

  it('skips the node without room: the claim is provisioned on the one with room', async () => {
    store.create(claim('data', { storageClassName: 'wffc', resources: { requests: { storage: '100Mi' } } }));
    store.create(pod('app', ['data']));
    assert.equal(await scheduled('app'), 'n2');
    assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n2');
    const zones = new Set(asked.map((r) => r.accessible_topology?.segments[ZONE]));
    assert.deepEqual([...zones].sort(), ['z1', 'z2'], 'each node was asked with its topology');
    assert.ok(asked.every((r) => r.parameters['tier'] === 'gold'), 'with the class parameters');
  });

  it('no node with room: FailedScheduling "did not have enough free storage", no node selected', async () => {
    free = { z1: 16 * MiB, z2: 16 * MiB };
    store.create(claim('big', { storageClassName: 'wffc', resources: { requests: { storage: '100Mi' } } }));
    store.create(pod('big-app', ['big']));
    const cond = await waitFor(() => {
      const c = getPod('big-app')?.status?.conditions?.find((x) => x.type === 'PodScheduled');
      return c?.status === 'False' ? c : undefined;
    }, 'PodScheduled=False');
    assert.equal(cond.message, '0/2 nodes are available: 2 node(s) did not have enough free storage. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.');
    assert.equal(getClaim('big')?.metadata.annotations?.[ANN_SELECTED_NODE], undefined, 'no node was selected for the claim');
  });

  it('a driver that cannot say its capacity does not keep pods off its nodes', async () => {
    free = {};
    store.create(claim('any', { storageClassName: 'wffc', resources: { requests: { storage: '100Mi' } } }));
    store.create(pod('any-app', ['any']));
    assert.ok(['n1', 'n2'].includes(await scheduled('any-app')));
  });

  it('drivers whose CSIDriver does not set storageCapacity are not asked', async () => {
    const d = store.get('csidrivers', undefined, DRIVER)!;
    store.update({ ...d, spec: { ...d.spec, storageCapacity: false } });
    free = { z1: 0, z2: 0 };
    store.create(claim('plain', { storageClassName: 'wffc', resources: { requests: { storage: '100Mi' } } }));
    store.create(pod('plain-app', ['plain']));
    await scheduled('plain-app');
    assert.equal(asked.length, 0);
  });
});
