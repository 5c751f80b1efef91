// Expansion without real storage: the resizer's and the node's decisions as tables over claim and
// volume objects (pure functions), the admission of a grown claim, and the resizer against a fake
// CSI driver on a real socket — a controller-only expansion, one that needs the node, a driver
// without EXPAND_VOLUME, OUT_OF_RANGE answered as VolumeResizeFailed and retried with backoff, a
// crash between the PV and the claim write finished from the objects — with what it sends
// (handle, required_bytes, the class's controller-expand secret) and the binder leaving a bound
// claim's capacity alone.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Event, PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { CONDITION, RESIZE_STATUS, resizeDecision, resizeStatus } from '../../src/control/controllers/resizer.js';
import { ANN_PRE_RESIZE_CAPACITY } from '../../src/control/controllers/volume-util.js';
import { nodeExpansionFor } from '../../src/control/node/node-expansion.js';
import { ForbiddenError, InvalidError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';
import { OutOfRangeError } from '../../src/csi/errors.js';
import type { ControllerExpandVolumeRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, quiet, settle, startFakeDriver, storageClass, volume, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';
const GiB = 1024 ** 3;

function boundClaim(request: string, status: PersistentVolumeClaim['status'] = {}): PersistentVolumeClaim {
  return {
    ...claim('c', { resources: { requests: { storage: request } }, volumeName: 'pv-c', storageClassName: 'exp' }, { uid: 'uid-c' }),
    status: { phase: 'Bound', capacity: { storage: '1Gi' }, ...status },
  };
}

function csiVolume(capacity: string, annotations: Record<string, string> = {}): PersistentVolume {
  return volume(
    'pv-c',
    { capacity: { storage: capacity }, hostPath: undefined, csi: { driver: DRIVER, volumeHandle: 'vol-c' }, claimRef: { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'c', uid: 'uid-c' } },
    { annotations },
  );
}

describe('expansion decisions', () => {
  const cases: { name: string; pvc: PersistentVolumeClaim; pv: PersistentVolume; resizer: ReturnType<typeof resizeDecision>; node: number | undefined }[] = [
    { name: 'nothing asked', pvc: boundClaim('1Gi'), pv: csiVolume('1Gi'), resizer: { action: 'none' }, node: undefined },
    { name: 'request raised', pvc: boundClaim('2Gi'), pv: csiVolume('1Gi'), resizer: { action: 'expand', bytes: 2 * GiB }, node: undefined },
    {
      name: 'controller in progress, PV not grown yet',
      pvc: boundClaim('2Gi', { allocatedResourceStatuses: { storage: RESIZE_STATUS.controllerInProgress } }),
      pv: csiVolume('1Gi'),
      resizer: { action: 'expand', bytes: 2 * GiB },
      node: undefined,
    },
    {
      name: 'crash after the PV write, node expansion needed',
      pvc: boundClaim('2Gi', { allocatedResourceStatuses: { storage: RESIZE_STATUS.controllerInProgress } }),
      pv: csiVolume('2Gi', { [ANN_PRE_RESIZE_CAPACITY]: '1Gi' }),
      resizer: { action: 'finish', nodeExpansion: true },
      node: undefined,
    },
    {
      name: 'crash after the PV write, controller only',
      pvc: boundClaim('2Gi', { allocatedResourceStatuses: { storage: RESIZE_STATUS.controllerInProgress } }),
      pv: csiVolume('2Gi'),
      resizer: { action: 'finish', nodeExpansion: false },
      node: undefined,
    },
    {
      name: 'waiting for the node',
      pvc: boundClaim('2Gi', { allocatedResourceStatuses: { storage: RESIZE_STATUS.nodePending } }),
      pv: csiVolume('2Gi', { [ANN_PRE_RESIZE_CAPACITY]: '1Gi' }),
      resizer: { action: 'none' },
      node: 2 * GiB,
    },
    {
      name: 'node expansion interrupted (agent killed mid-call)',
      pvc: boundClaim('2Gi', { allocatedResourceStatuses: { storage: RESIZE_STATUS.nodeInProgress } }),
      pv: csiVolume('2Gi', { [ANN_PRE_RESIZE_CAPACITY]: '1Gi' }),
      resizer: { action: 'none' },
      node: 2 * GiB,
    },
    {
      name: 'node done, annotation left by a crash',
      pvc: boundClaim('2Gi', { capacity: { storage: '2Gi' } }),
      pv: csiVolume('2Gi', { [ANN_PRE_RESIZE_CAPACITY]: '1Gi' }),
      resizer: { action: 'none' },
      node: undefined,
    },
    { name: 'PV larger but nobody asked the node (static PV)', pvc: boundClaim('1Gi'), pv: csiVolume('2Gi'), resizer: { action: 'none' }, node: undefined },
    { name: 'claim not bound', pvc: { ...boundClaim('2Gi'), status: { phase: 'Pending' } }, pv: csiVolume('1Gi'), resizer: { action: 'none' }, node: undefined },
    {
      name: 'PV bound to another claim',
      pvc: boundClaim('2Gi', { allocatedResourceStatuses: { storage: RESIZE_STATUS.nodePending } }),
      pv: { ...csiVolume('1Gi'), spec: { ...csiVolume('1Gi').spec, claimRef: { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'other', uid: 'x' } } },
      resizer: { action: 'none' },
      node: undefined,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: resizer ${c.resizer.action}, node ${c.node ?? 'nothing'}`, () => {
      assert.deepEqual(resizeDecision(c.pvc, c.pv), c.resizer);
      assert.equal(nodeExpansionFor(c.pvc, c.pv), c.node);
    });
  }

  it('writes expansion conditions and statuses, keeping other conditions and transition times', () => {
    const pvc = boundClaim('2Gi', {
      conditions: [
        { type: 'Other', status: 'True' },
        { type: CONDITION.resizing, status: 'True', lastTransitionTime: '2020-01-01T00:00:00Z' },
      ],
      allocatedResourceStatuses: { storage: RESIZE_STATUS.controllerInProgress, other: 'x' },
    });
    const s = resizeStatus(pvc, { conditions: [{ type: CONDITION.resizing }], state: RESIZE_STATUS.controllerInProgress, allocated: '2Gi' });
    assert.deepEqual(s.conditions?.map((c) => c.type), ['Other', CONDITION.resizing]);
    assert.equal(s.conditions?.[1]?.lastTransitionTime, '2020-01-01T00:00:00Z');
    assert.deepEqual(s.allocatedResources, { storage: '2Gi' });
    const done = resizeStatus({ ...pvc, status: s }, { conditions: [], state: undefined, capacity: '2Gi' });
    assert.deepEqual(done.conditions?.map((c) => c.type), ['Other']);
    assert.deepEqual(done.allocatedResourceStatuses, { other: 'x' });
    assert.deepEqual(done.capacity, { storage: '2Gi' });
  });
});

describe('admission of a grown claim', () => {
  it('allows growth only through a class that allows it, the same class before and after', () => {
    const store = open(':memory:');
    try {
      store.create(storageClass('exp', DRIVER, { allowVolumeExpansion: true }));
      store.create(storageClass('fixed', DRIVER));
      const table: { name: string; cls: string; beta?: string; grow: boolean }[] = [
        { name: 'a', cls: 'exp', grow: true },
        { name: 'b', cls: 'fixed', grow: false },
        { name: 'c', cls: 'exp', beta: 'fixed', grow: false },
        { name: 'd', cls: 'fixed', beta: 'exp', grow: true },
        { name: 'e', cls: 'missing', grow: false },
      ];
      for (const t of table) {
        const created = store.create(claim(t.name, { storageClassName: t.cls, volumeName: `pv-${t.name}` }, t.beta ? { annotations: { 'volume.beta.kubernetes.io/storage-class': t.beta } } : {}));
        const c = store.update({ ...created, status: { phase: 'Bound' } }, { subresource: 'status' });
        const update = (): unknown => store.update({ ...c, spec: { ...c.spec, resources: { requests: { storage: '2Gi' } } } });
        if (t.grow) assert.equal((update() as PersistentVolumeClaim).spec.resources?.requests?.['storage'], '2Gi', t.name);
        else assert.throws(update, (err: unknown) => err instanceof ForbiddenError && err.code === 403, t.name);
      }
    } finally {
      store.close();
    }
  });
});

describe('validation of a claim\'s resize status', () => {
  it('takes only Kubernetes\' ClaimResourceStatus values', () => {
    const store = open(':memory:');
    try {
      const c = store.create(claim('v'));
      const ok = store.update({ ...c, status: { phase: 'Pending', allocatedResources: { storage: '2Gi' }, allocatedResourceStatuses: { storage: 'NodeResizePending' } } }, { subresource: 'status' });
      assert.equal(ok.status?.allocatedResourceStatuses?.['storage'], 'NodeResizePending');
      assert.throws(
        () => store.update({ ...ok, status: { ...ok.status, allocatedResourceStatuses: { storage: 'Resizing' } } }, { subresource: 'status' }),
        (err: unknown) => err instanceof InvalidError && err.message.includes('status.allocatedResourceStatuses[storage]: Unsupported value: "Resizing"'),
      );
    } finally {
      store.close();
    }
  });
});

type Behaviour = (req: ControllerExpandVolumeRequest, n: number) => Promise<{ capacity_bytes: number; node_expansion_required: boolean }>;

describe('resizer', () => {
  let store: Store | undefined;
  let ctl: Controllers | undefined;
  let driver: FakeDriver | undefined;
  let calls: ControllerExpandVolumeRequest[];

  afterEach(async () => {
    await ctl?.stop();
    store?.close();
    await driver?.stop();
    ctl = undefined;
    store = undefined;
    driver = undefined;
  });

  async function setup(behaviour: Behaviour, capabilities = ['CREATE_DELETE_VOLUME', 'EXPAND_VOLUME'], pvAnnotations: Record<string, string> = {}, pvCapacity = '1Gi'): Promise<Store> {
    calls = [];
    driver = await startFakeDriver(DRIVER, {
      controllerCapabilities: capabilities,
      controller: {
        async ControllerExpandVolume(req) {
          calls.push(req);
          return behaviour(req, calls.length);
        },
      },
    });
    const s = open(':memory:');
    store = s;
    s.create(csiDriverObject(DRIVER, driver.endpoint));
    s.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'expand-creds', namespace: 'kube-system' }, stringData: { key: 's3cret' } });
    s.create(storageClass('exp', DRIVER, { allowVolumeExpansion: true }));
    const pvc = s.create(claim('c', { storageClassName: 'exp', volumeName: 'pv-c' }));
    s.create<PersistentVolume>({
      ...volume('pv-c', {
        capacity: { storage: pvCapacity },
        hostPath: undefined,
        storageClassName: 'exp',
        csi: { driver: DRIVER, volumeHandle: 'vol-c', controllerExpandSecretRef: { name: 'expand-creds', namespace: 'kube-system' } },
        claimRef: { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'c', uid: pvc.metadata.uid ?? '' },
      }),
      metadata: { name: 'pv-c', annotations: pvAnnotations },
    });
    ctl = startControllers(s, quiet, { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 5, maxDelayMs: 50, scheduler: false });
    await waitFor(() => s.get('persistentvolumeclaims', 'default', 'c')?.status?.phase === 'Bound', 'the claim to be bound');
    return s;
  }

  function grow(s: Store, size: string): void {
    const c = s.get('persistentvolumeclaims', 'default', 'c');
    assert.ok(c);
    s.update({ ...c, spec: { ...c.spec, resources: { requests: { storage: size } } } });
  }

  const claimOf = (s: Store): PersistentVolumeClaim | undefined => s.get('persistentvolumeclaims', 'default', 'c');
  const pvOf = (s: Store): PersistentVolume | undefined => s.get('persistentvolumes', undefined, 'pv-c');
  const events = (s: Store): Event[] => s.list('events', { namespace: 'default' }).items.filter((e) => e.involvedObject.name === 'c');
  const reasons = (s: Store): string[] => events(s).map((e) => e.reason ?? '');
  // ExternalExpanding (expand controller) and Resizing (resizer) come from two recorders in the same
  // sync: either may be listed first; what follows them is ordered.
  const resizeReasons = (s: Store): string[] => {
    const r = reasons(s);
    return [...r.slice(0, 2).sort(), ...r.slice(2)];
  };

  it('expands on the controller and finishes when the driver needs no node expansion', async () => {
    const s = await setup(async (req) => ({ capacity_bytes: Number(req.capacity_range?.required_bytes), node_expansion_required: false }));
    grow(s, '2Gi');
    await waitFor(() => claimOf(s)?.status?.capacity?.['storage'] === '2Gi', 'the claim to be expanded');
    await settle(() => ctl?.idle() ?? true);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.volume_id, 'vol-c');
    assert.equal(Number(calls[0]?.capacity_range?.required_bytes), 2 * GiB);
    assert.deepEqual(calls[0]?.secrets, { key: 's3cret' });
    assert.equal(calls[0]?.volume_capability?.mount?.fs_type, 'ext4');
    const c = claimOf(s);
    assert.equal(c?.status?.conditions, undefined);
    assert.equal(c?.status?.allocatedResourceStatuses, undefined);
    assert.deepEqual(c?.status?.allocatedResources, { storage: '2Gi' });
    assert.equal(pvOf(s)?.spec.capacity?.['storage'], '2Gi');
    assert.equal(pvOf(s)?.metadata.annotations?.[ANN_PRE_RESIZE_CAPACITY], undefined);
    assert.deepEqual(resizeReasons(s), ['ExternalExpanding', 'Resizing', 'VolumeResizeSuccessful']);
    assert.deepEqual(
      events(s).map((e) => [e.source?.component, e.message]),
      [
        ['volume_expand', 'waiting for an external controller to expand this PVC'],
        ['external-resizer', 'External resizer is resizing volume pv-c'],
        ['external-resizer', 'Resize volume succeeded'],
      ],
    );
    assert.equal(c?.metadata.annotations?.['volume.kubernetes.io/storage-resizer'], DRIVER);
  });

  it('leaves the claim waiting for the node when the driver says so; the binder keeps its capacity', async () => {
    const s = await setup(async () => ({ capacity_bytes: 3 * GiB, node_expansion_required: true }));
    grow(s, '2Gi');
    await waitFor(() => claimOf(s)?.status?.allocatedResourceStatuses?.['storage'] === RESIZE_STATUS.nodePending, 'the claim to wait for a node');
    await settle(() => ctl?.idle() ?? true);
    const c = claimOf(s);
    assert.equal(c?.status?.capacity?.['storage'], '1Gi');
    assert.deepEqual(c?.status?.conditions?.map((x) => [x.type, x.status, x.message]), [[CONDITION.fsResizePending, 'True', 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.']]);
    // The driver's larger answer is the PV's size.
    assert.equal(pvOf(s)?.spec.capacity?.['storage'], '3Gi');
    assert.equal(pvOf(s)?.metadata.annotations?.[ANN_PRE_RESIZE_CAPACITY], '1Gi');
    assert.deepEqual(resizeReasons(s), ['ExternalExpanding', 'Resizing', 'FileSystemResizeRequired']);
    assert.equal(nodeExpansionFor(c as PersistentVolumeClaim, pvOf(s) as PersistentVolume), 3 * GiB);
  });

  it('skips the controller call for a driver without EXPAND_VOLUME (node expansion only)', async () => {
    const s = await setup(async () => assert.fail('ControllerExpandVolume must not be called'), ['CREATE_DELETE_VOLUME']);
    grow(s, '2Gi');
    await waitFor(() => claimOf(s)?.status?.allocatedResourceStatuses?.['storage'] === RESIZE_STATUS.nodePending, 'the claim to wait for a node');
    assert.equal(calls.length, 0);
    assert.equal(pvOf(s)?.spec.capacity?.['storage'], '2Gi');
    assert.equal(claimOf(s)?.status?.capacity?.['storage'], '1Gi');
  });

  it('reports OUT_OF_RANGE as VolumeResizeFailed with the driver message, and retries with backoff until it fits', async () => {
    const message = 'not enough pool capacity: 1073741824 bytes requested, 10 left';
    let failing = true;
    const s = await setup(async (req) => {
      if (failing) throw new OutOfRangeError(message);
      return { capacity_bytes: Number(req.capacity_range?.required_bytes), node_expansion_required: false };
    });
    grow(s, '2Gi');
    const failed = await waitFor(() => events(s).find((e) => e.reason === 'VolumeResizeFailed' && (e.count ?? 1) >= 3), 'VolumeResizeFailed, retried');
    assert.equal(failed.type, 'Warning');
    assert.equal(failed.message, `resize volume "pv-c" by resizer "${DRIVER}" failed: rpc error: code = OutOfRange desc = ${message}`);
    const c = claimOf(s);
    assert.equal(c?.status?.allocatedResourceStatuses?.['storage'], RESIZE_STATUS.controllerInfeasible);
    assert.ok(c?.status?.conditions?.some((x) => x.type === CONDITION.controllerError && x.message === failed.message));
    assert.equal(c?.status?.capacity?.['storage'], '1Gi');
    assert.equal(pvOf(s)?.spec.capacity?.['storage'], '1Gi');
    // Retried with backoff (base 5 ms, capped at 50 ms), not in a busy loop.
    const attempts = calls.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(calls.length - attempts <= 8, `${calls.length - attempts} attempts in 200 ms`);
    failing = false;
    await waitFor(() => claimOf(s)?.status?.capacity?.['storage'] === '2Gi', 'the claim to be expanded once it fits', 5_000);
    assert.equal(claimOf(s)?.status?.conditions, undefined);
  });

  it('finishes from the objects after a crash between the PV and the claim write', async () => {
    // The PV already grown (and marked for the node); the claim still says the controller is at it.
    const s = await setup(async () => assert.fail('ControllerExpandVolume must not be called again'), undefined, { [ANN_PRE_RESIZE_CAPACITY]: '1Gi' }, '2Gi');
    await ctl?.stop();
    const c = claimOf(s);
    assert.ok(c);
    // Bound through the PV's annotation: the claim's capacity is the pre-resize one.
    assert.equal(c.status?.capacity?.['storage'], '1Gi');
    s.update({ ...c, spec: { ...c.spec, resources: { requests: { storage: '2Gi' } } } });
    const grown = claimOf(s);
    assert.ok(grown);
    s.update({ ...grown, status: resizeStatus(grown, { conditions: [{ type: CONDITION.resizing }], state: RESIZE_STATUS.controllerInProgress, allocated: '2Gi' }) }, { subresource: 'status' });
    ctl = startControllers(s, quiet, { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 5, maxDelayMs: 50, scheduler: false });
    await waitFor(() => claimOf(s)?.status?.allocatedResourceStatuses?.['storage'] === RESIZE_STATUS.nodePending, 'the claim to wait for a node');
    assert.equal(calls.length, 0);
    assert.equal(claimOf(s)?.status?.capacity?.['storage'], '1Gi');
  });
});
