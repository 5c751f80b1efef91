// When may a WaitForFirstConsumer claim move to another node after CreateVolume failed? As in
// external-provisioner: only when the failure is final for that node (RESOURCE_EXHAUSTED: "unable
// to provision in accessible_topology", or the selected node is gone). A timeout, UNAVAILABLE,
// ABORTED or a cancelled call means the volume may still be being made there: the provisioner asks
// the same node again with the same name and the claim stays. Here with one Controller service per
// node (as `stowage up --nodes N --backend local`), where moving a claim whose CreateVolume was
// still running on node-1 left `pvc-<uid>` orphaned on node-1 once node-2 had made its own. An
// Immediate claim there has no scheduler to choose its node: the provisioner chooses it once and
// writes it on the claim, so that a retry after a timeout or a restart asks the same node.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Event, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { CSIDriver, CSINode } from '../../src/control/api/types/storage.js';
import { CONTROLLER_PER_NODE_ANNOTATION, NODE_ENDPOINTS_ANNOTATION } from '../../src/control/controllers/driver-registry.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { provisioningState } from '../../src/control/controllers/provisioner.js';
import { ANN_SELECTED_NODE } from '../../src/control/controllers/volume-util.js';
import { open, type Store } from '../../src/control/store/store.js';
import {
  AbortedError,
  CsiError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
} from '../../src/csi/errors.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { CreateVolumeRequest } from '../../src/csi/types.js';
import { claim, type FakeDriver, pod, quiet, settle, startFakeDriver, storageClass, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';
const KEY = 'topology.fake.test/node';
const TIMEOUT_MS = 300;

/** One node's Controller service: its own volumes, a per-name in-flight lock (ABORTED), a scripted CreateVolume. */
interface NodeStorage {
  driver: FakeDriver;
  /** Volumes that exist on this node, by name. */
  volumes: Set<string>;
  creates: CreateVolumeRequest[];
  /** Called before the volume is made; may throw (refusal) or take its time. */
  behaviour: (req: CreateVolumeRequest, n: number) => Promise<void>;
}

async function nodeStorage(node: string): Promise<NodeStorage> {
  const inFlight = new Set<string>();
  const s: NodeStorage = { driver: undefined as unknown as FakeDriver, volumes: new Set(), creates: [], behaviour: async () => undefined };
  s.driver = await startFakeDriver(DRIVER, {
    controller: {
      async CreateVolume(req) {
        s.creates.push(req);
        // As the real driver (inflight.ts): a second call on a name being created is ABORTED.
        if (inFlight.has(req.name)) throw new AbortedError(`an operation on volume ${req.name} is already in progress`);
        if (!s.volumes.has(req.name)) {
          inFlight.add(req.name);
          try {
            await s.behaviour(req, s.creates.filter((c) => c.name === req.name).length);
            s.volumes.add(req.name);
          } finally {
            inFlight.delete(req.name);
          }
        }
        return {
          volume: { volume_id: `${node}/${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [{ segments: { [KEY]: node } }] },
        };
      },
      async DeleteVolume(req) {
        s.volumes.delete(req.volume_id.split('/')[1] ?? '');
        return {};
      },
    },
  });
  return s;
}

describe('provisioning failures and rescheduling (one Controller service per node)', () => {
  let store: Store;
  let ctl: Controllers;
  let nodes: Record<'n1' | 'n2', NodeStorage>;

  beforeEach(async () => {
    store = open(':memory:');
    nodes = { n1: await nodeStorage('n1'), n2: await nodeStorage('n2') };
    store.create<CSIDriver>({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'CSIDriver',
      metadata: { name: DRIVER, annotations: { [CONTROLLER_PER_NODE_ANNOTATION]: 'true', 'stowage.dev/controller-endpoint': nodes.n1.driver.endpoint } },
      spec: { attachRequired: false },
    });
    for (const name of ['n1', 'n2'] as const) {
      store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [KEY]: name, 'kubernetes.io/hostname': name } } });
      store.create<CSINode>({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSINode',
        metadata: { name, annotations: { [NODE_ENDPOINTS_ANNOTATION]: JSON.stringify({ [DRIVER]: nodes[name].driver.endpoint }) } },
        spec: { drivers: [{ name: DRIVER, nodeID: name, topologyKeys: [KEY] }] },
      });
    }
    store.create(storageClass('local', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: TIMEOUT_MS, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await nodes.n1.driver.stop();
    await nodes.n2.driver.stop();
  });

  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
  const eventsAbout = (name: string): Event[] => store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items;
  const allVolumes = () => [...[...nodes.n1.volumes].map((v) => `n1/${v}`), ...[...nodes.n2.volumes].map((v) => `n2/${v}`)];

  it('a CreateVolume that timed out on node-1 but completes there later: the claim stays on node-1, one volume in all', async () => {
    // node-1 takes three deadlines to make the volume; retries meanwhile are ABORTED (in progress).
    let done = false;
    nodes.n1.behaviour = async (_req, n) => {
      if (n === 1) {
        await sleep(3 * TIMEOUT_MS);
        done = true;
      }
    };
    // The pod prefers n1 (name order; both empty).
    const c = store.create(claim('data', { storageClassName: 'local' }));
    store.create(pod('app', ['data']));
    await waitFor(() => getPod('app')?.spec.nodeName, 'the pod scheduled', 20_000);
    await waitFor(() => done, 'node-1 to finish its CreateVolume');
    await settle(() => ctl.idle());
    await sleep(2 * TIMEOUT_MS);
    await settle(() => ctl.idle());

    assert.deepEqual(allVolumes(), [`n1/pvc-${c.metadata.uid}`], 'one volume, on node-1, none orphaned');
    assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n1');
    assert.equal(getPod('app')?.spec.nodeName, 'n1');
    assert.equal(nodes.n2.creates.length, 0, 'node-2 was never asked');
    const failed = eventsAbout('data').filter((e) => e.reason === 'ProvisioningFailed');
    assert.ok(failed.some((e) => /rpc error: code = DeadlineExceeded/.test(e.message ?? '')), JSON.stringify(failed));
  });

  it('a claim deleted while its CreateVolume may still run: the call is finished with the same name, then the volume deleted', async () => {
    let done = false;
    nodes.n1.behaviour = async (_req, n) => {
      if (n === 1) {
        await sleep(3 * TIMEOUT_MS);
        done = true;
      }
    };
    const c = store.create(claim('brief', { storageClassName: 'local' }, { annotations: { [ANN_SELECTED_NODE]: 'n1' } }));
    await waitFor(() => eventsAbout('brief').some((e) => e.reason === 'ProvisioningFailed' && /DeadlineExceeded/.test(e.message ?? '')), 'the timeout');
    store.delete('persistentvolumeclaims', 'default', 'brief');
    await waitFor(() => getClaim('brief') === undefined, 'the claim to go');
    await waitFor(() => done, 'node-1 to finish its CreateVolume');
    await waitFor(() => nodes.n1.volumes.size === 0, 'the volume made in background to be deleted', 10_000);
    assert.ok(nodes.n1.creates.length >= 2 && nodes.n1.creates.every((r) => r.name === `pvc-${c.metadata.uid}`));
    await settle(() => ctl.idle());
    assert.deepEqual(allVolumes(), []);
    assert.equal(store.list('persistentvolumes').items.length, 0);
  });

  it('a selected node whose CSINode is gone is given up (selected-node removed), and the claim goes elsewhere', async () => {
    store.delete('csinodes', undefined, 'n1');
    const c = store.create(claim('data', { storageClassName: 'local' }, { annotations: { [ANN_SELECTED_NODE]: 'n1' } }));
    await waitFor(() => getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE] === undefined, 'selected-node removed');
    assert.match(eventsAbout('data').find((e) => e.reason === 'ProvisioningFailed')?.message ?? '', /csinodes.storage.k8s.io "n1" not found/);
    store.create(pod('app', ['data']));
    assert.equal(await waitFor(() => getPod('app')?.spec.nodeName, 'the pod scheduled', 20_000), 'n2');
    assert.deepEqual(allVolumes(), [`n2/pvc-${c.metadata.uid}`]);
  });

  it('RESOURCE_EXHAUSTED on node-1 is final there: the selected node is given up and node-2 provisions', async () => {
    nodes.n1.behaviour = async () => {
      throw new ResourceExhaustedError('not enough pool capacity');
    };
    const c = store.create(claim('data', { storageClassName: 'local' }));
    store.create(pod('app', ['data']));
    assert.equal(await waitFor(() => getPod('app')?.spec.nodeName, 'the pod scheduled', 20_000), 'n2');
    await settle(() => ctl.idle());
    assert.deepEqual(allVolumes(), [`n2/pvc-${c.metadata.uid}`]);
    assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n2');
    const failed = eventsAbout('data').find((e) => e.reason === 'ProvisioningFailed');
    assert.equal(failed?.message, 'failed to provision volume with StorageClass "local": rpc error: code = ResourceExhausted desc = not enough pool capacity');
  });

  it('a final error other than RESOURCE_EXHAUSTED is retried on the same node, never rescheduled', async () => {
    nodes.n1.behaviour = async (_req, n) => {
      if (n <= 2) throw new InternalError('disk hiccup');
    };
    const c = store.create(claim('data', { storageClassName: 'local' }));
    store.create(pod('app', ['data']));
    assert.equal(await waitFor(() => getPod('app')?.spec.nodeName, 'the pod scheduled', 20_000), 'n1');
    await settle(() => ctl.idle());
    assert.deepEqual(allVolumes(), [`n1/pvc-${c.metadata.uid}`]);
    assert.equal(nodes.n2.creates.length, 0);
  });
});

describe('Immediate claims on a driver whose nodes serve their own volumes: the node is chosen once, durably', () => {
  // Without a selected node, CreateVolume went to the driver's controller endpoint: the socket of
  // whichever node registered last, which a restart of `up` (nodes register side by side) or a
  // node joining changes. A call cut short on node-1 (kill -9, or a timeout) was then asked again
  // of node-2: a second volume, and node-1's `pvc-<uid>` had no PV (the chaos campaign, seed 11).
  let store: Store;
  let ctl: Controllers;
  let nodes: Record<'n1' | 'n2', NodeStorage>;
  const start = () => startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: TIMEOUT_MS, maxDelayMs: 200 });
  /** As registerDriver() does for the node that registers last. */
  const controllerEndpointOn = (node: 'n1' | 'n2') => {
    const d = store.get('csidrivers', undefined, DRIVER) as CSIDriver;
    store.update<CSIDriver>({ ...d, metadata: { ...d.metadata, annotations: { ...d.metadata.annotations, 'stowage.dev/controller-endpoint': nodes[node].driver.endpoint } } });
  };

  beforeEach(async () => {
    store = open(':memory:');
    nodes = { n1: await nodeStorage('n1'), n2: await nodeStorage('n2') };
    store.create<CSIDriver>({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'CSIDriver',
      metadata: { name: DRIVER, annotations: { [CONTROLLER_PER_NODE_ANNOTATION]: 'true', 'stowage.dev/controller-endpoint': nodes.n1.driver.endpoint } },
      spec: { attachRequired: false },
    });
    for (const name of ['n1', 'n2'] as const) {
      store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [KEY]: name, 'kubernetes.io/hostname': name } } });
      store.create<CSINode>({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSINode',
        metadata: { name, annotations: { [NODE_ENDPOINTS_ANNOTATION]: JSON.stringify({ [DRIVER]: nodes[name].driver.endpoint }) } },
        spec: { drivers: [{ name: DRIVER, nodeID: name, topologyKeys: [KEY] }] },
      });
    }
    store.create(storageClass('now', DRIVER, { volumeBindingMode: 'Immediate' }));
    ctl = start();
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await nodes.n1.driver.stop();
    await nodes.n2.driver.stop();
  });

  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const eventsAbout = (name: string): Event[] => store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items;
  const allVolumes = () => [...[...nodes.n1.volumes].map((v) => `n1/${v}`), ...[...nodes.n2.volumes].map((v) => `n2/${v}`)];
  const pvHandles = () => store.list('persistentvolumes').items.map((pv) => (pv as { spec: { csi?: { volumeHandle: string } } }).spec.csi?.volumeHandle);

  it('the control plane killed during CreateVolume and restarted with the controller endpoint on another node: the same node is asked again, one volume in all', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    nodes.n1.behaviour = async (_req, n) => {
      if (n === 1) await held;
    };
    const c = store.create(claim('data', { storageClassName: 'now' }));
    await waitFor(() => nodes.n1.creates.length === 1, 'CreateVolume on node-1');
    // The crash: the provisioner and what it remembered are gone; node-1 finishes what it started.
    await ctl.stop();
    controllerEndpointOn('n2');
    release();
    await waitFor(() => nodes.n1.volumes.size === 1, 'node-1 to make the volume');
    ctl = start();
    await waitFor(() => getClaim('data')?.status?.phase === 'Bound', 'the claim bound');
    await settle(() => ctl.idle());

    assert.deepEqual(allVolumes(), [`n1/pvc-${c.metadata.uid}`], 'one volume, on node-1, none orphaned');
    assert.deepEqual(pvHandles(), [`n1/pvc-${c.metadata.uid}`]);
    assert.equal(nodes.n2.creates.length, 0, 'node-2 was never asked');
    assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n1', 'the node chosen is on the claim');
  });

  it('a CreateVolume timed out on node-1 while node-2 registered last: asked again of node-1, one volume in all', async () => {
    let done = false;
    nodes.n1.behaviour = async (_req, n) => {
      if (n === 1) {
        await sleep(3 * TIMEOUT_MS);
        done = true;
      }
    };
    const c = store.create(claim('data', { storageClassName: 'now' }));
    await waitFor(() => eventsAbout('data').some((e) => e.reason === 'ProvisioningFailed' && /DeadlineExceeded/.test(e.message ?? '')), 'the timeout');
    controllerEndpointOn('n2');
    await waitFor(() => done, 'node-1 to finish its CreateVolume');
    await waitFor(() => getClaim('data')?.status?.phase === 'Bound', 'the claim bound');
    await settle(() => ctl.idle());

    assert.deepEqual(allVolumes(), [`n1/pvc-${c.metadata.uid}`]);
    assert.deepEqual(pvHandles(), [`n1/pvc-${c.metadata.uid}`]);
    assert.equal(nodes.n2.creates.length, 0);
  });

  it('a claim deleted while its CreateVolume ran, the control plane restarted with the endpoint elsewhere: the volume made on node-1 is found and deleted', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    nodes.n1.behaviour = async (_req, n) => {
      if (n === 1) await held;
    };
    store.create(claim('brief', { storageClassName: 'now' }));
    await waitFor(() => nodes.n1.creates.length === 1, 'CreateVolume on node-1');
    await ctl.stop();
    store.delete('persistentvolumeclaims', 'default', 'brief');
    controllerEndpointOn('n2');
    release();
    await waitFor(() => nodes.n1.volumes.size === 1, 'node-1 to make the volume');
    ctl = start();
    await waitFor(() => getClaim('brief') === undefined, 'the claim to go');
    await settle(() => ctl.idle());

    assert.deepEqual(allVolumes(), []);
    assert.equal(store.list('persistentvolumes').items.length, 0);
  });

  it('RESOURCE_EXHAUSTED on the node chosen for an Immediate claim: retried there with backoff, as before (no scheduler moves it)', async () => {
    nodes.n1.behaviour = async (_req, n) => {
      if (n <= 2) throw new ResourceExhaustedError('not enough pool capacity');
    };
    const c = store.create(claim('data', { storageClassName: 'now' }));
    await waitFor(() => getClaim('data')?.status?.phase === 'Bound', 'the claim bound');
    await settle(() => ctl.idle());
    assert.deepEqual(allVolumes(), [`n1/pvc-${c.metadata.uid}`]);
    assert.equal(nodes.n1.creates.length, 3);
    assert.equal(nodes.n2.creates.length, 0);
    assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n1');
  });
});

describe('provisioningState (external-provisioner classification of CreateVolume errors)', () => {
  it('in background: the volume may still be being made', () => {
    for (const err of [new DeadlineExceededError('t'), new UnavailableError('u'), new AbortedError('a'), new CsiError(grpcStatus.CANCELLED, 'c'), new Error('not a gRPC error')]) {
      assert.equal(provisioningState(err, true), 'inBackground', err.message);
      assert.equal(provisioningState(err, false), 'inBackground', err.message);
    }
  });
  it('RESOURCE_EXHAUSTED: reschedule when the claim has a selected node and the driver has topology, else final (nothing is in progress, as in external-provisioner checkError)', () => {
    assert.equal(provisioningState(new ResourceExhaustedError('full'), true), 'reschedule');
    assert.equal(provisioningState(new ResourceExhaustedError('full'), false), 'finished');
  });
  it('finished: any other answer of the driver', () => {
    for (const err of [new InvalidArgumentError('i'), new InternalError('x'), new FailedPreconditionError('f')]) assert.equal(provisioningState(err, true), 'finished');
  });
});
