// The volume-aware scheduler with the binder and provisioner, against a fake CSI driver: placement by
// nodeSelector, taints, PV node affinity and CSI volume limits; Kubernetes' FitError messages on the
// PodScheduled condition and FailedScheduling events; WaitForFirstConsumer claims (selected-node,
// then the pod is bound once the claim is Bound; another node once the provisioner gives the
// selected node up (RESOURCE_EXHAUSTED), the same one after a backoff when no other fits); and
// the pods/binding subresource in the store and over HTTP.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Event, Node, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { CSINode } from '../../src/control/api/types/storage.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { ANN_SELECTED_NODE } from '../../src/control/controllers/volume-util.js';
import { startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { ResourceExhaustedError } from '../../src/csi/errors.js';
import type { CreateVolumeRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, pod, quiet, settle, startFakeDriver, storageClass, volume, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';
const ZONE = 'topology.fake.test/zone';

function node(name: string, labels: Record<string, string> = {}, spec: Node['spec'] = {}): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } }, spec };
}

function csiNode(name: string, allocatable?: number): CSINode {
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'CSINode',
    metadata: { name },
    spec: { drivers: [{ name: DRIVER, nodeID: `id-${name}`, topologyKeys: [ZONE], ...(allocatable === undefined ? {} : { allocatable: { count: allocatable } }) }] },
  };
}

for (const thread of [false, true]) {
  describe(thread ? 'scheduler (on its own thread)' : 'scheduler', () => {
    let store: Store;
    let ctl: Controllers;
    let driver: FakeDriver;
    let creates: CreateVolumeRequest[];
    let createBehaviour: (req: CreateVolumeRequest) => Promise<void>;

    beforeEach(async () => {
      store = open(':memory:');
      creates = [];
      createBehaviour = async () => undefined;
      driver = await startFakeDriver(DRIVER, {
        controller: {
          async CreateVolume(req) {
            creates.push(req);
            await createBehaviour(req);
            const zone = req.accessibility_requirements?.requisite[0]?.segments[ZONE];
            return {
              volume: {
                volume_id: `vol-${req.name}`,
                capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0),
                volume_context: {},
                accessible_topology: zone ? [{ segments: { [ZONE]: zone } }] : [],
              },
            };
          },
          async DeleteVolume() {
            return {};
          },
        },
      });
      store.create(csiDriverObject(DRIVER, driver.endpoint));
      // n1 and n2 run the driver (zones z1, z2); n3 does not.
      store.create(node('n1', { [ZONE]: 'z1', disk: 'hdd' }));
      store.create(node('n2', { [ZONE]: 'z2', disk: 'ssd' }));
      store.create(node('n3', { disk: 'hdd' }));
      store.create(csiNode('n1'));
      store.create(csiNode('n2'));
      ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200, schedulerThread: thread });
    });

    afterEach(async () => {
      await ctl.stop();
      store.close();
      await driver.stop();
    });

    const idle = () => settle(() => ctl.idle());
    const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
    const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
    const scheduled = (name: string) => waitFor(() => getPod(name)?.spec.nodeName, `${name} scheduled`);
    const eventsAbout = (name: string): Event[] =>
      store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
    const condition = (name: string) => getPod(name)?.status?.conditions?.find((c) => c.type === 'PodScheduled');
    const withVolumes = (p: Pod, spec: Partial<Pod['spec']>): Pod => ({ ...p, spec: { ...p.spec, ...spec } });

    it('places a pod by nodeSelector, binds it through the binding subresource and says so', async () => {
      store.create(withVolumes(pod('web', []), { nodeSelector: { disk: 'ssd' } }));
      assert.equal(await scheduled('web'), 'n2');
      const cond = condition('web');
      assert.equal(cond?.status, 'True');
      // Recorded once the binding is made (on the scheduler's thread: once it is told so).
      const ev = await waitFor(() => eventsAbout('web').find((e) => e.reason === 'Scheduled'), 'the Scheduled event');
      assert.equal(ev?.type, 'Normal');
      assert.equal(ev?.message, 'Successfully assigned default/web to n2');
      assert.equal(ev?.source?.component, 'default-scheduler');
    });

    it('spreads pods: fewest pods on the node, then the name', async () => {
      for (const name of ['a', 'b', 'c', 'd']) {
        store.create(pod(name, []));
        await scheduled(name);
      }
      assert.deepEqual(['a', 'b', 'c', 'd'].map((n) => getPod(n)?.spec.nodeName), ['n1', 'n2', 'n3', 'n1']);
    });

    it('leaves pods of other schedulers alone', async () => {
      store.create(withVolumes(pod('other', []), { schedulerName: 'my-scheduler' }));
      await idle();
      assert.equal(getPod('other')?.spec.nodeName, undefined);
      assert.equal(condition('other'), undefined);
    });

    it("reports why no node fits, in Kubernetes' words, and schedules once the pod tolerates the taint", async () => {
      const n1 = store.get('nodes', undefined, 'n1') as Node;
      store.update({ ...n1, spec: { unschedulable: true } });
      const n2 = store.get('nodes', undefined, 'n2') as Node;
      store.update({ ...n2, metadata: { ...n2.metadata, labels: { ...n2.metadata.labels, disk: 'hdd' } }, spec: { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] } });
      store.create(withVolumes(pod('db', []), { nodeSelector: { disk: 'hdd' }, affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: ZONE, operator: 'Exists' }] }] } } } }));
      await waitFor(() => condition('db')?.status === 'False', 'PodScheduled=False');
      await idle();
      const expected = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
      const cond = condition('db');
      assert.equal(cond?.reason, 'Unschedulable');
      assert.equal(cond?.message, expected);
      const failed = eventsAbout('db').filter((e) => e.reason === 'FailedScheduling');
      assert.equal(failed.length, 1, 'one event, aggregated');
      assert.equal(failed[0]?.type, 'Warning');
      assert.equal(failed[0]?.message, expected);
      assert.equal(getPod('db')?.spec.nodeName, undefined);

      // Tolerations may be added to a pod (only added: it carries DefaultTolerationSeconds' two): now n2 fits.
      const p = getPod('db') as Pod;
      store.update({ ...p, spec: { ...p.spec, tolerations: [...(p.spec.tolerations ?? []), { key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }] } });
      assert.equal(await scheduled('db'), 'n2');
      assert.equal(condition('db')?.status, 'True');
    });

    it("follows a bound claim's PV node affinity", async () => {
      store.create(
        volume('local-n3', {
          storageClassName: '',
          nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['n3'] }] }] } },
        }),
      );
      store.create(claim('data', { storageClassName: '', volumeName: 'local-n3' }));
      await waitFor(() => getClaim('data')?.status?.phase === 'Bound', 'claim Bound');
      store.create(pod('user', ['data']));
      assert.equal(await scheduled('user'), 'n3');

      // A second pod that must be elsewhere cannot use it.
      store.create(withVolumes(pod('elsewhere', ['data']), { nodeSelector: { disk: 'ssd' } }));
      await waitFor(() => condition('elsewhere')?.status === 'False', 'PodScheduled=False');
      assert.equal(condition('elsewhere')?.message, "0/3 nodes are available: 1 node(s) had volume node affinity conflict, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.");
    });

    it('waits for unbound Immediate claims and missing claims, then schedules', async () => {
      store.create(storageClass('nowhere', 'not-registered.csi.test'));
      store.create(claim('later', { storageClassName: 'nowhere' }));
      store.create(pod('waits', ['later']));
      store.create(pod('orphan', ['nope']));
      await waitFor(() => condition('waits')?.status === 'False' && condition('orphan')?.status === 'False', 'both unschedulable');
      assert.equal(condition('waits')?.message, '0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');
      assert.equal(condition('orphan')?.message, '0/3 nodes are available: persistentvolumeclaim "nope" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');
      assert.equal(eventsAbout('orphan').find((e) => e.reason === 'FailedScheduling')?.message, '0/3 nodes are available: persistentvolumeclaim "nope" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');

      // The claims appear / get bound: both pods go.
      store.create(volume('pv-later', { storageClassName: 'nowhere', claimRef: { namespace: 'default', name: 'later' } }));
      store.create(claim('nope', { storageClassName: '', volumeName: 'pv-nope' }));
      store.create(volume('pv-nope', { storageClassName: '' }));
      await scheduled('waits');
      await scheduled('orphan');
    });

    it('WaitForFirstConsumer: selects a node for the claim, then binds the pod once the claim is Bound', async () => {
      store.create(storageClass('wffc', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer', allowedTopologies: [{ matchLabelExpressions: [{ key: ZONE, values: ['z2'] }] }] }));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      createBehaviour = () => gate;
      store.create(claim('data', { storageClassName: 'wffc' }));
      await idle();
      assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], undefined, 'no consumer yet');
      store.create(pod('app', ['data']));
      // n1 has fewer pods by name order, but the class allows only z2; n3 lacks the driver.
      await waitFor(() => getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'selected-node');
      assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n2');
      await waitFor(() => creates.length > 0, 'CreateVolume');
      await sleep(50);
      assert.equal(getPod('app')?.spec.nodeName, undefined, 'not bound while its claim is not');
      release();
      assert.equal(await scheduled('app'), 'n2');
      assert.equal(getClaim('data')?.status?.phase, 'Bound');
      assert.deepEqual(creates[0]?.accessibility_requirements?.requisite.map((t) => t.segments), [{ [ZONE]: 'z2' }]);
      assert.equal(eventsAbout('app').filter((e) => e.reason === 'FailedScheduling').length, 0);
    });

    it('WaitForFirstConsumer: a node whose CSINode comes to list the driver becomes a place for the claim', async () => {
      // Only n3 is allowed, and it does not run the driver yet.
      store.create(storageClass('wffc', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer', allowedTopologies: [{ matchLabelExpressions: [{ key: 'disk', values: ['hdd'] }] }] }));
      store.update({ ...(store.get('nodes', undefined, 'n1') as Node), spec: { unschedulable: true } });
      store.create(claim('data', { storageClassName: 'wffc' }));
      store.create(pod('app', ['data']));
      await waitFor(() => getPod('app')?.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status === 'False', 'unschedulable');
      // n2 is not allowed (ssd), n3 lacks the driver, n1 is cordoned.
      assert.equal(
        getPod('app')?.status?.conditions?.find((c) => c.type === 'PodScheduled')?.message,
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't find available persistent volumes to bind. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
      );
      // The driver registers on n3 (which gets its topology label): the scheduler's view of which
      // nodes run the driver is read again.
      const n3 = store.get('nodes', undefined, 'n3') as Node;
      store.update({ ...n3, metadata: { ...n3.metadata, labels: { ...n3.metadata.labels, [ZONE]: 'z3' } } });
      store.create(csiNode('n3'));
      await waitFor(() => getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'selected-node');
      assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n3');
      assert.equal(await scheduled('app'), 'n3');
    });

    it('WaitForFirstConsumer: tries another node after provisioning fails on the selected one', async () => {
      store.create(storageClass('wffc', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
      createBehaviour = async (req) => {
        if (req.accessibility_requirements?.requisite[0]?.segments[ZONE] === 'z1') throw new ResourceExhaustedError('no space left in z1');
      };
      store.create(claim('data', { storageClassName: 'wffc' }));
      store.create(pod('app', ['data']));
      assert.equal(await scheduled('app'), 'n2');
      assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n2');
      assert.deepEqual(
        creates.map((c) => c.accessibility_requirements?.requisite[0]?.segments[ZONE]).filter((z, i, all) => all.indexOf(z) === i),
        ['z1', 'z2'],
      );
    });

    it('WaitForFirstConsumer: with no other node, the node that gave the claim up is selected again after a backoff', async () => {
      store.create(storageClass('wffc', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer', allowedTopologies: [{ matchLabelExpressions: [{ key: ZONE, values: ['z1'] }] }] }));
      let failures = 2;
      createBehaviour = async () => {
        if (failures-- > 0) throw new ResourceExhaustedError('transient');
      };
      store.create(claim('data', { storageClassName: 'wffc' }));
      store.create(pod('app', ['data']));
      const began = Date.now();
      assert.equal(await scheduled('app'), 'n1');
      assert.equal(creates.length, 3, 'one CreateVolume per selection, not a tight loop');
      assert.ok(Date.now() - began >= 2_500, 'reselected after 1 s, then 2 s');
    });

    it('WaitForFirstConsumer: a claim whose selected node is gone gets another', async () => {
      store.create(storageClass('wffc', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
      store.create(claim('data', { storageClassName: 'wffc' }, { annotations: { [ANN_SELECTED_NODE]: 'gone' } }));
      store.create(pod('app', ['data']));
      assert.equal(await scheduled('app'), 'n1');
      assert.equal(getClaim('data')?.metadata.annotations?.[ANN_SELECTED_NODE], 'n1');
    });

    it('respects CSI volume limits (CSINode allocatable.count)', async () => {
      const n3 = store.get('nodes', undefined, 'n3') as Node;
      store.update({ ...n3, spec: { unschedulable: true } });
      for (const n of ['n1', 'n2']) {
        const cn = store.get('csinodes', undefined, n) as CSINode;
        store.delete('csinodes', undefined, n);
        store.create({ ...csiNode(n, 1), metadata: { name: n, annotations: cn.metadata.annotations ?? {} } });
      }
      for (const name of ['a', 'b']) {
        store.create(volume(`pv-${name}`, { storageClassName: '', hostPath: undefined, csi: { driver: DRIVER, volumeHandle: `h-${name}` } } as never));
        store.create(claim(name, { storageClassName: '', volumeName: `pv-${name}` }));
      }
      await waitFor(() => getClaim('a')?.status?.phase === 'Bound' && getClaim('b')?.status?.phase === 'Bound', 'claims Bound');
      // n1 already has one volume of the driver; n2 has more pods (so scoring alone would pick n1).
      store.create(withVolumes(pod('first', ['a']), { nodeName: 'n1' }));
      store.create(withVolumes(pod('busy1', []), { nodeName: 'n2' }));
      store.create(withVolumes(pod('busy2', []), { nodeName: 'n2' }));
      store.create(pod('second', ['b']));
      assert.equal(await scheduled('second'), 'n2');
      // A pod sharing the volume already on n1 adds nothing there.
      store.create(pod('sharer', ['a']));
      assert.equal(await scheduled('sharer'), 'n1');
      // Both nodes full: a third volume fits nowhere.
      store.create(volume('pv-c', { storageClassName: '', hostPath: undefined, csi: { driver: DRIVER, volumeHandle: 'h-c' } } as never));
      store.create(claim('c', { storageClassName: '', volumeName: 'pv-c' }));
      store.create(pod('third', ['c']));
      await waitFor(() => condition('third')?.status === 'False', 'third unschedulable');
      assert.equal(condition('third')?.message, '0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) exceed max volume count. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.');
      // n1's driver re-registers taking three volumes (allocatable is immutable: a new CSINode): the
      // waiting pod goes there, the node's limit read again though nothing else about n1 changed.
      const cn1 = store.get('csinodes', undefined, 'n1') as CSINode;
      store.delete('csinodes', undefined, 'n1');
      store.create({ ...csiNode('n1', 3), metadata: { name: 'n1', annotations: cn1.metadata.annotations ?? {} } });
      assert.equal(await scheduled('third'), 'n1');
    });
  });
}

describe('pods/binding', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  it('sets nodeName once, with PodScheduled True; a second binding or a wrong uid conflicts', () => {
    const created = store.create(pod('p', []));
    assert.throws(() => store.bindPod('default', 'p', 'n1', { uid: 'not-the-uid' }), { code: 409, message: /Precondition failed: UID in precondition: not-the-uid/ });
    const bound = store.bindPod('default', 'p', 'n1', { uid: created.metadata.uid ?? '' });
    assert.equal(bound.spec.nodeName, 'n1');
    assert.equal(bound.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status, 'True');
    assert.throws(() => store.bindPod('default', 'p', 'n2'), { code: 409, message: 'Operation cannot be fulfilled on pods "p": pod p is already assigned to node "n1"' });
    assert.throws(() => store.bindPod('default', 'missing', 'n1'), { code: 404 });
    assert.throws(() => store.bindPod('default', 'p', 'Not_A_Name'), { code: 422 });
    // Still immutable through an ordinary update.
    const current = store.get('pods', 'default', 'p') as Pod;
    assert.throws(() => store.update({ ...current, spec: { ...current.spec, nodeName: 'n2' } }), { code: 422 });
  });

  it('is served as POST …/pods/{name}/binding with a v1 Binding', async () => {
    const server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    try {
      store.create(pod('p', []));
      const path = `${server.url}/api/v1/namespaces/default/pods/p/binding`;
      const post = (body: unknown) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const res = await post({ apiVersion: 'v1', kind: 'Binding', metadata: { name: 'p' }, target: { apiVersion: 'v1', kind: 'Node', name: 'n1' } });
      assert.equal(res.status, 201);
      assert.equal(((await res.json()) as { status: string }).status, 'Success');
      assert.equal((store.get('pods', 'default', 'p') as Pod).spec.nodeName, 'n1');
      const again = await post({ apiVersion: 'v1', kind: 'Binding', metadata: { name: 'p' }, target: { kind: 'Node', name: 'n2' } });
      assert.equal(again.status, 409);
      const bad = await post({ apiVersion: 'v1', kind: 'Binding', metadata: { name: 'p' }, target: { kind: 'Pod', name: 'n2' } });
      assert.equal(bad.status, 422);
      const get = await fetch(path);
      assert.equal(get.status, 405);
      const notPods = await fetch(`${server.url}/api/v1/namespaces/default/persistentvolumeclaims/x/binding`, { method: 'POST', body: '{}' });
      assert.equal(notPods.status, 404);
    } finally {
      await server.close();
    }
  });
});
