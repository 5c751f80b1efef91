// The provisioner with the binder and protection, against a fake CSI driver on a real socket:
// the CreateVolume request (name, capacity, parameters, secrets and their templates, capabilities,
// topology, content source), the PV it makes, events, retries with the same name after a timeout
// or an error, concurrency, waiting for registration, deletion, and no leak when the claim goes
// away mid-call.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { quantityValue } from '../../src/control/api/quantity.js';
import type { Event, PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { CSINode } from '../../src/control/api/types/storage.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { describeError, expandTemplate, PROVISIONER_IDENTITY_ATTRIBUTE, PROVISIONING_FINALIZER, volumeNameFor } from '../../src/control/controllers/provisioner.js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_PROVISIONED_BY,
  ANN_SELECTED_NODE,
  PV_PROTECTION_FINALIZER,
} from '../../src/control/controllers/volume-util.js';
import { open, type Store } from '../../src/control/store/store.js';
import { DeadlineExceededError, InvalidArgumentError, ResourceExhaustedError } from '../../src/csi/errors.js';
import { parseEndpoint } from '../../src/csi/endpoint.js';
import type { CreateVolumeRequest, DeleteVolumeRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, quiet, settle, startFakeDriver, storageClass, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';
const ZONE = 'topology.fake.test/zone';
const GiB = 1024 ** 3;

type CreateBehaviour = (req: CreateVolumeRequest, n: number) => Promise<'ok' | void>;

describe('provisioner', () => {
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  let creates: CreateVolumeRequest[];
  let deletes: DeleteVolumeRequest[];
  let behaviour: CreateBehaviour;
  let inFlight: number;
  let maxInFlight: number;

  beforeEach(async () => {
    store = open(':memory:');
    creates = [];
    deletes = [];
    inFlight = 0;
    maxInFlight = 0;
    behaviour = async () => undefined;
    driver = await startFakeDriver(DRIVER, {
      controller: {
        async CreateVolume(req) {
          creates.push(req);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            await behaviour(req, creates.filter((c) => c.name === req.name).length);
          } finally {
            inFlight--;
          }
          const zone = req.accessibility_requirements?.requisite[0]?.segments[ZONE];
          return {
            volume: {
              volume_id: `vol-${req.name}`,
              capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0),
              volume_context: { origin: 'fake' },
              accessible_topology: zone ? [{ segments: { [ZONE]: zone } }] : [],
            },
          };
        },
        async DeleteVolume(req) {
          deletes.push(req);
          return {};
        },
      },
    });
    // Two nodes in two zones, both running the driver.
    for (const [node, zone] of [['n1', 'z1'], ['n2', 'z2']] as const) {
      store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { [ZONE]: zone, 'kubernetes.io/hostname': node } } });
      store.create<CSINode>({ apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name: node }, spec: { drivers: [{ name: DRIVER, nodeID: node, topologyKeys: [ZONE] }] } });
    }
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  const idle = () => settle(() => ctl.idle());
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim;
  const eventsAbout = (name: string): Event[] =>
    store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items.sort((a, b) => (a.metadata.resourceVersion ?? '').localeCompare(b.metadata.resourceVersion ?? '', 'en', { numeric: true }));
  const register = () => store.create(csiDriverObject(DRIVER, driver.endpoint));
  const bound = (name: string) => waitFor(() => getClaim(name)?.status?.phase === 'Bound' && getClaim(name), `${name} Bound`);

  it('deferLoops: nothing calls the driver until start(); what was queued meanwhile is then done', async () => {
    const held = open(':memory:');
    const deferred = startControllers(held, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200, deferLoops: true });
    try {
      held.create(csiDriverObject(DRIVER, driver.endpoint));
      held.create(storageClass(DRIVER, DRIVER));
      held.create(claim('queued', { storageClassName: DRIVER }));
      await sleep(200);
      assert.equal(deferred.started, false);
      assert.equal(creates.length, 0, 'no CreateVolume before start()');
      deferred.start();
      await waitFor(() => (held.get('persistentvolumeclaims', 'default', 'queued') as PersistentVolumeClaim | undefined)?.status?.phase === 'Bound', 'queued Bound');
      assert.equal(creates.length, 1);
    } finally {
      await deferred.stop();
      held.close();
    }
  });

  it('a registered driver whose socket does not exist yet: retried, never given up, provisioned once it listens', async () => {
    // As after a restart: the registration (from the last run) names a socket nobody serves yet.
    const dir = mkdtempSync(join(tmpdir(), 'stowage-later-'));
    try {
      const later = join(dir, 'csi.sock');
      store.create(csiDriverObject(DRIVER, `unix://${later}`));
      store.create(storageClass(DRIVER, DRIVER));
      store.create(claim('early', { storageClassName: DRIVER }));
      await waitFor(() => eventsAbout('early').some((e) => e.reason === 'ProvisioningFailed' && /code = Unavailable/.test(e.message ?? '')), 'an Unavailable ProvisioningFailed event');
      await sleep(100);
      assert.equal(creates.length, 0);
      assert.equal(getClaim('early').status?.phase ?? 'Pending', 'Pending');
      // The driver appears at that path (a symlink to the fake driver's socket is as good).
      symlinkSync(parseEndpoint(driver.endpoint), later);
      await bound('early');
      assert.equal(creates.length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('calls CreateVolume as external-provisioner does and creates the PV the binder binds', async () => {
    register();
    store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'data-creds', namespace: 'default' }, stringData: { user: 'admin', key: 's3cret' } });
    store.create(
      storageClass(DRIVER, DRIVER, {
        parameters: {
          pool: 'p1',
          'csi.storage.k8s.io/fstype': 'ext4',
          'csi.storage.k8s.io/provisioner-secret-name': '${pvc.name}-creds',
          'csi.storage.k8s.io/provisioner-secret-namespace': '${pvc.namespace}',
          'csi.storage.k8s.io/node-stage-secret-name': "stage-${pvc.annotations['team']}",
          'csi.storage.k8s.io/node-stage-secret-namespace': 'kube-system',
          'csi.storage.k8s.io/controller-expand-secret-name': 'expand',
          'csi.storage.k8s.io/controller-expand-secret-namespace': 'default',
        },
        reclaimPolicy: 'Retain',
        mountOptions: ['discard'],
      }),
    );
    const c = store.create(claim('data', { storageClassName: DRIVER, resources: { requests: { storage: '3Gi' } } }, { annotations: { team: 'blue' } }));
    await bound('data');
    await idle();

    assert.equal(creates.length, 1);
    const req = creates[0]!;
    assert.equal(req.name, `pvc-${c.metadata.uid}`);
    assert.equal(Number(req.capacity_range?.required_bytes), 3 * GiB);
    assert.deepEqual(req.parameters, { pool: 'p1' }, 'csi.storage.k8s.io/ keys are not passed on');
    assert.deepEqual(req.secrets, { user: 'admin', key: 's3cret' });
    assert.equal(req.volume_capabilities.length, 1);
    assert.deepEqual(req.volume_capabilities[0]?.mount, { fs_type: 'ext4', mount_flags: ['discard'], volume_mount_group: '' });
    assert.equal(req.volume_capabilities[0]?.access_mode?.mode, 'SINGLE_NODE_MULTI_WRITER');
    assert.deepEqual(req.accessibility_requirements?.requisite.map((t) => t.segments[ZONE]).sort(), ['z1', 'z2'], 'Immediate: anywhere the driver runs');

    const pv = store.get('persistentvolumes', undefined, `pvc-${c.metadata.uid}`) as PersistentVolume;
    assert.equal(getClaim('data').spec.volumeName, pv.metadata.name);
    assert.equal(pv.status?.phase, 'Bound');
    assert.deepEqual(pv.metadata.finalizers, [PV_PROTECTION_FINALIZER]);
    assert.equal(pv.metadata.annotations?.[ANN_PROVISIONED_BY], DRIVER);
    assert.equal(pv.metadata.annotations?.[ANN_DELETION_SECRET_NAME], 'data-creds');
    assert.equal(pv.metadata.annotations?.[ANN_DELETION_SECRET_NAMESPACE], 'default');
    assert.deepEqual(pv.spec.capacity, { storage: '3Gi' });
    assert.deepEqual(pv.spec.accessModes, ['ReadWriteOnce']);
    assert.equal(pv.spec.persistentVolumeReclaimPolicy, 'Retain');
    assert.deepEqual(pv.spec.mountOptions, ['discard']);
    assert.equal(pv.spec.storageClassName, DRIVER);
    assert.equal(pv.spec.volumeMode, 'Filesystem');
    assert.equal(pv.spec.claimRef?.uid, c.metadata.uid);
    const csi = pv.spec.csi;
    assert.equal(csi?.driver, DRIVER);
    assert.equal(csi?.volumeHandle, `vol-pvc-${c.metadata.uid}`);
    assert.equal(csi?.fsType, 'ext4');
    assert.equal(csi?.volumeAttributes?.['origin'], 'fake');
    assert.match(csi?.volumeAttributes?.[PROVISIONER_IDENTITY_ATTRIBUTE] ?? '', /^\d+-\d+-stowage$/);
    assert.deepEqual(csi?.nodeStageSecretRef, { name: 'stage-blue', namespace: 'kube-system' });
    assert.deepEqual(csi?.controllerExpandSecretRef, { name: 'expand', namespace: 'default' });
    assert.equal(csi?.nodePublishSecretRef, undefined);
    assert.deepEqual(pv.spec.nodeAffinity?.required?.nodeSelectorTerms, [{ matchExpressions: [{ key: ZONE, operator: 'In', values: ['z1'] }] }]);

    const events = eventsAbout('data');
    assert.deepEqual(events.map((e) => e.reason), ['Provisioning', 'ProvisioningSucceeded']);
    assert.equal(events[0]?.message, 'External provisioner is provisioning volume for claim "default/data"');
    assert.equal(events[1]?.message, `Successfully provisioned volume pvc-${c.metadata.uid}`);
    assert.equal(events[1]?.source?.component, 'stowage-csi-provisioner');
    assert.equal(events[1]?.type, 'Normal');
  });

  it('reports the driver error, retries with the same name after a timeout or a failure, and makes one volume', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    behaviour = async (_req, n) => {
      if (n === 1) await sleep(2_500); // beyond the 2 s deadline
      if (n === 2) throw new ResourceExhaustedError('the pool is full');
    };
    const c = store.create(claim('flaky', { storageClassName: 'fast' }));
    await bound('flaky');
    await idle();
    assert.equal(creates.length, 3);
    assert.deepEqual(new Set(creates.map((r) => r.name)), new Set([volumeNameFor(c)]));
    assert.equal(store.list('persistentvolumes').items.length, 1);
    const failed = eventsAbout('flaky').filter((e) => e.reason === 'ProvisioningFailed');
    assert.ok(failed.some((e) => /^failed to provision volume with StorageClass "fast": rpc error: code = DeadlineExceeded desc = /.test(e.message ?? '')), JSON.stringify(failed));
    assert.ok(failed.some((e) => e.message === 'failed to provision volume with StorageClass "fast": rpc error: code = ResourceExhausted desc = the pool is full'));
    assert.equal(failed.every((e) => e.type === 'Warning'), true);
    const provisioning = eventsAbout('flaky').find((e) => e.reason === 'Provisioning');
    assert.equal(provisioning?.count, 3, 'repeats of one event are aggregated');
  });

  it('keeps up to 16 CreateVolume calls in flight', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    // Each call holds its slot until 16 are in flight (or 1 s passes: well within the 2 s call
    // deadline, so no call is abandoned while the fake still counts it), so a slow machine that
    // finishes a call before the next starts cannot hide the limit; more than 16 would still show.
    behaviour = async () => {
      const began = performance.now();
      while (inFlight < 16 && performance.now() - began < 1_000) await sleep(5);
      await sleep(10);
    };
    for (let i = 0; i < 48; i++) store.create(claim(`c${i}`, { storageClassName: 'fast' }));
    await waitFor(() => store.list('persistentvolumeclaims', { fieldSelector: 'status.phase=Bound' }).items.length === 48, 'all bound');
    assert.equal(maxInFlight, 16);
    assert.equal(new Set(creates.map((r) => r.name)).size, 48);
    assert.equal(creates.length, 48);
  });

  it('waits for the driver to register, and for the secret it needs', async () => {
    store.create(
      storageClass('secure', DRIVER, {
        parameters: { 'csi.storage.k8s.io/provisioner-secret-name': 'creds', 'csi.storage.k8s.io/provisioner-secret-namespace': 'default' },
      }),
    );
    store.create(claim('s', { storageClassName: 'secure' }));
    await idle();
    assert.equal(creates.length, 0);
    assert.equal(eventsAbout('s').at(-1)?.reason, 'ExternalProvisioning');
    register();
    await waitFor(() => eventsAbout('s').some((e) => e.reason === 'ProvisioningFailed'), 'a failure event');
    assert.match(eventsAbout('s').find((e) => e.reason === 'ProvisioningFailed')?.message ?? '', /error getting secret creds in namespace default: secrets "creds" not found/);
    assert.equal(creates.length, 0);
    store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'default' }, stringData: { k: 'v' } });
    await bound('s');
    assert.deepEqual(creates[0]?.secrets, { k: 'v' });
  });

  it('refuses claims with a selector, and asks for the selected node under WaitForFirstConsumer', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    store.create(storageClass('late', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
    store.create(claim('picky', { storageClassName: 'fast', selector: { matchLabels: { a: 'b' } } }));
    store.create(claim('wait', { storageClassName: 'late' }));
    await waitFor(() => eventsAbout('picky').some((e) => e.reason === 'ProvisioningFailed'), 'a failure event');
    assert.match(eventsAbout('picky').find((e) => e.reason === 'ProvisioningFailed')?.message ?? '', /claim Selector is not supported/);
    await idle();
    assert.equal(creates.length, 0);
    assert.equal(eventsAbout('wait').at(-1)?.reason, 'WaitForFirstConsumer');

    const w = getClaim('wait');
    store.update({ ...w, metadata: { ...w.metadata, annotations: { ...w.metadata.annotations, [ANN_SELECTED_NODE]: 'n2' } } });
    const done = await bound('wait');
    assert.equal(creates.length, 1);
    assert.deepEqual(creates[0]?.accessibility_requirements?.requisite.map((t) => t.segments), [{ [ZONE]: 'z2' }]);
    assert.deepEqual(creates[0]?.accessibility_requirements?.preferred.map((t) => t.segments), [{ [ZONE]: 'z2' }]);
    const pv = store.get('persistentvolumes', undefined, done.spec.volumeName ?? '');
    assert.deepEqual(pv?.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values, ['z2']);
  });

  it('deletes a released volume through the driver with the secret recorded at provisioning, then the PV', async () => {
    register();
    store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'default' }, stringData: { k: 'v' } });
    store.create(
      storageClass('fast', DRIVER, {
        parameters: { 'csi.storage.k8s.io/provisioner-secret-name': 'creds', 'csi.storage.k8s.io/provisioner-secret-namespace': 'default' },
      }),
    );
    const c = store.create(claim('gone', { storageClassName: 'fast' }));
    await bound('gone');
    store.delete('persistentvolumeclaims', 'default', 'gone');
    await waitFor(() => store.list('persistentvolumes').items.length === 0, 'the PV to go');
    assert.deepEqual(deletes.map((d) => [d.volume_id, d.secrets]), [[`vol-pvc-${c.metadata.uid}`, { k: 'v' }]]);
  });

  it('calls CreateVolume and DeleteVolume only once the writes they rest on are committed', async () => {
    // The store commits in groups; a volume must never exist for a claim (uid) that a crash could
    // take back, nor be deleted for a claim deletion that a crash could undo. Checked at the
    // moment the controllers make the call, on the client they call through.
    register();
    store.create(storageClass('fast', DRIVER));
    // A first claim warms the provisioner's caches (driver capabilities): then nothing but the
    // wait for the commit separates a claim's hand-over from its CreateVolume.
    store.create(claim('warm', { storageClassName: 'fast' }));
    await bound('warm');
    const client = ctl.registry.controllerClient(DRIVER);
    assert.ok(client);
    const calls: { rpc: string; committed: number }[] = [];
    const { CreateVolume, DeleteVolume } = client.controller;
    client.controller.CreateVolume = (req, options) => {
      calls.push({ rpc: 'CreateVolume', committed: Number(store.committedResourceVersion) });
      return CreateVolume(req, options);
    };
    client.controller.DeleteVolume = (req, options) => {
      calls.push({ rpc: 'DeleteVolume', committed: Number(store.committedResourceVersion) });
      return DeleteVolume(req, options);
    };
    let handedAt = 0;
    let deletedAt = 0;
    const stop = store.watch('persistentvolumeclaims', {}, (e) => {
      if (e.object.metadata.name !== 'durable') return;
      const rv = Number(e.object.metadata.resourceVersion);
      if (handedAt === 0 && e.object.metadata.annotations?.['volume.kubernetes.io/storage-provisioner'] === DRIVER) handedAt = rv;
      if (e.type === 'DELETED') deletedAt = rv;
    });
    store.create(claim('durable', { storageClassName: 'fast' }));
    await bound('durable');
    store.delete('persistentvolumeclaims', 'default', 'durable');
    await waitFor(() => deletes.length === 1, 'DeleteVolume');
    stop();
    const create = calls.find((c) => c.rpc === 'CreateVolume');
    const del = calls.find((c) => c.rpc === 'DeleteVolume');
    assert.ok(create && handedAt > 0 && create.committed >= handedAt, `CreateVolume called with rv ${create?.committed} committed; the claim was handed over at rv ${handedAt}`);
    assert.ok(del && deletedAt > 0 && del.committed >= deletedAt, `DeleteVolume called with rv ${del?.committed} committed; the claim went at rv ${deletedAt}`);
  });

  it('deletes the new volume when its claim went away during CreateVolume', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    behaviour = async () => gate;
    const c = store.create(claim('brief', { storageClassName: 'fast' }));
    await waitFor(() => creates.length === 1, 'CreateVolume to start');
    store.delete('persistentvolumeclaims', 'default', 'brief');
    // It stays (being deleted) while a volume may be being made under its name.
    await sleep(200);
    assert.ok(getClaim('brief')?.metadata.deletionTimestamp, 'the claim waits for the call');
    release();
    await waitFor(() => deletes.length === 1, 'DeleteVolume');
    assert.equal(deletes[0]?.volume_id, `vol-pvc-${c.metadata.uid}`);
    await waitFor(() => getClaim('brief') === undefined, 'the claim to go');
    await idle();
    assert.equal(store.list('persistentvolumes').items.length, 0);
  });

  // Found by the chaos campaign (issue 11): the volume made for a claim deleted while its
  // CreateVolume ran was deleted only from memory, so a control plane stopped before the call's
  // answer was acted on left it with neither claim nor PV, and nothing after a restart deleted it.
  it('deletes the new volume when its claim went away during CreateVolume and the controllers restarted', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    behaviour = async () => gate;
    const c = store.create(claim('brief', { storageClassName: 'fast' }));
    await waitFor(() => creates.length === 1, 'CreateVolume to start');
    assert.ok(getClaim('brief').metadata.finalizers?.includes(PROVISIONING_FINALIZER), 'the claim records the call before it is made');
    // The control plane goes away with the call in flight; the driver finishes it anyway.
    const stopped = ctl.stop();
    store.delete('persistentvolumeclaims', 'default', 'brief');
    release();
    await stopped;
    assert.ok(getClaim('brief') !== undefined, 'the claim stays while a volume may exist under its name');
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
    await waitFor(() => getClaim('brief') === undefined, 'the claim to go');
    await idle();
    assert.deepEqual(
      deletes.map((d) => d.volume_id),
      [`vol-pvc-${c.metadata.uid}`],
      'the volume made for the deleted claim is deleted after the restart',
    );
    assert.equal(store.list('persistentvolumes').items.length, 0);
  });

  it('takes the finalizer off in the write that binds the claim to its new PV, not in a write of its own', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    const states: { finalizer: boolean; volumeName: string | undefined }[] = [];
    const stop = store.watch('persistentvolumeclaims', { fieldSelector: 'metadata.name=one-write' }, (e) => {
      const c = e.object as PersistentVolumeClaim;
      states.push({ finalizer: c.metadata.finalizers?.includes(PROVISIONING_FINALIZER) === true, volumeName: c.spec.volumeName });
    });
    try {
      const c = store.create(claim('one-write', { storageClassName: 'fast' }));
      await bound('one-write');
      await idle();
      const held = states.findIndex((s) => s.finalizer);
      assert.ok(held >= 0, 'the claim held the finalizer before CreateVolume');
      const released = states.findIndex((s, i) => i > held && !s.finalizer);
      assert.ok(released > held, 'and was let go');
      assert.equal(states[released]?.volumeName, `pvc-${c.metadata.uid}`, 'let go by the write that bound it to the PV made for it');
      assert.ok(states.slice(held, released).every((s) => s.volumeName === undefined), 'held until then');
    } finally {
      stop();
    }
  });

  it('lets a provisioned claim go once its PV exists, and a claim the driver refused for good', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    store.create(claim('kept', { storageClassName: 'fast' }));
    await bound('kept');
    await waitFor(() => !getClaim('kept').metadata.finalizers?.includes(PROVISIONING_FINALIZER), 'the finalizer to go once the PV exists');
    behaviour = async () => {
      throw new InvalidArgumentError('no such parameter');
    };
    store.create(claim('refused', { storageClassName: 'fast' }));
    await waitFor(() => eventsAbout('refused').some((e) => e.reason === 'ProvisioningFailed'), 'the refusal');
    store.delete('persistentvolumeclaims', 'default', 'refused');
    await waitFor(() => getClaim('refused') === undefined, 'a claim whose volume was never made to go');
    // A full pool is as final (external-provisioner's checkError): a Pending claim that does not fit goes when deleted.
    behaviour = async () => {
      throw new ResourceExhaustedError('the pool is full');
    };
    store.create(claim('too-big', { storageClassName: 'fast' }));
    await waitFor(() => eventsAbout('too-big').some((e) => e.reason === 'ProvisioningFailed'), 'the refusal');
    store.delete('persistentvolumeclaims', 'default', 'too-big');
    await waitFor(() => getClaim('too-big') === undefined, 'a claim that never fitted to go');
    assert.equal(deletes.length, 0, 'nothing to delete: the driver made nothing');
  });

  it('clones from a bound claim of the same class', async () => {
    register();
    store.create(storageClass('fast', DRIVER));
    const src = store.create(claim('src', { storageClassName: 'fast' }));
    await bound('src');
    store.create(claim('copy', { storageClassName: 'fast', dataSource: { kind: 'PersistentVolumeClaim', name: 'src' } }));
    await bound('copy');
    assert.deepEqual(creates[1]?.volume_content_source?.volume, { volume_id: `vol-pvc-${src.metadata.uid}` });
  });
});

describe('provisioner helpers', () => {
  it('expands name templates and refuses the ones a secret kind does not allow', () => {
    const pvc = claim('db', {}, { namespace: 'team-a', uid: 'u1', annotations: { owner: 'ann' } });
    const vars = { pvName: 'pvc-u1', pvc };
    assert.equal(expandTemplate('${pvc.namespace}-${pvc.name}-${pv.name}', vars, { pvcName: true, annotations: false }, 'x'), 'team-a-db-pvc-u1');
    assert.equal(expandTemplate("s-${pvc.annotations['owner']}", vars, { pvcName: true, annotations: true }, 'x'), 's-ann');
    assert.throws(() => expandTemplate("${pvc.annotations['owner']}", vars, { pvcName: true, annotations: false }, 'x'), /not supported here/);
    assert.throws(() => expandTemplate('${pvc.name}', vars, { pvcName: false, annotations: false }, 'ns'), /not supported here/);
    assert.throws(() => expandTemplate('${pvc.uid}', vars, { pvcName: true, annotations: true }, 'x'), /not supported/);
  });

  it('prints gRPC failures as Kubernetes does', () => {
    assert.equal(describeError(new DeadlineExceededError('slow')), 'rpc error: code = DeadlineExceeded desc = slow');
    assert.equal(describeError(new ResourceExhaustedError('full')), 'rpc error: code = ResourceExhausted desc = full');
    assert.equal(describeError(new Error('plain')), 'plain');
    assert.equal(quantityValue('1Gi'), GiB);
  });
});
