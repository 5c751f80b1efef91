// The controllers registry and `--controllers` (kube-controller-manager's syntax): which names a
// value enables, in start order; unknown names refused with the known ones listed; and, in process,
// that `*,-csi-provisioner` leaves a claim Pending with no CreateVolume (for the official sidecar to
// provision) and a released CSI volume undeleted, while the rest of the control plane runs.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { CONTROLLER_NAMES, CONTROLLERS, parseControllers, UnknownControllerError } from '../../src/control/controllers/registry.js';
import { PV_PROTECTION_FINALIZER } from '../../src/control/controllers/volume-util.js';
import { enabledControllers } from '../../src/cli/up.js';
import { CliError } from '../../src/cli/errors.js';
import { open, type Store } from '../../src/control/store/store.js';
import type { CreateVolumeRequest, DeleteVolumeRequest } from '../../src/csi/types.js';
import { runCaptured } from '../support/processes.js';
import { claim, csiDriverObject, type FakeDriver, quiet, settle, startFakeDriver, storageClass, volume, waitFor } from './control-controllers-helpers.js';

const ALL = [
  'csi-provisioner',
  'persistentvolume-binder-controller',
  'persistentvolumeclaim-protection-controller',
  'persistentvolume-protection-controller',
  'ephemeral-volume-controller',
  'scheduler',
  'persistentvolume-attach-detach-controller',
  'csi-attacher',
  'csi-resizer',
  'snapshot-controller',
  'csi-snapshotter',
  'csi-capacity',
  'statefulset-controller',
  'replicaset-controller',
  'deployment-controller',
  'daemonset-controller',
  'job-controller',
  'node-lifecycle-controller',
  'taint-eviction-controller',
  'resourcequota-controller',
  'disruption-controller',
];

describe('--controllers', () => {
  it("knows upstream's names, one descriptor each", () => {
    assert.deepEqual(CONTROLLER_NAMES, ALL);
    assert.equal(new Set(CONTROLLERS.map((c) => c.name)).size, CONTROLLERS.length);
    for (const c of CONTROLLERS) assert.ok(c.description.length > 0, c.name);
  });

  it("'*' enables all; '-name' disables one; 'name' alone enables only that one", () => {
    assert.deepEqual(parseControllers('*'), ALL);
    assert.deepEqual(parseControllers('*,-csi-provisioner'), ALL.filter((n) => n !== 'csi-provisioner'));
    assert.deepEqual(parseControllers(' * , -csi-provisioner , -csi-attacher '), ALL.filter((n) => n !== 'csi-provisioner' && n !== 'csi-attacher'));
    assert.deepEqual(parseControllers('scheduler,persistentvolume-binder-controller'), ['persistentvolume-binder-controller', 'scheduler'], 'start order, not the order given');
    assert.deepEqual(parseControllers('csi-attacher,csi-provisioner'), ['csi-provisioner', 'csi-attacher']);
    assert.deepEqual(parseControllers(['*', '-scheduler']), ALL.filter((n) => n !== 'scheduler'), 'repeated flags add up');
    assert.deepEqual(parseControllers(''), [], 'nothing named, no *: nothing runs');
  });

  it("accepts kube-controller-manager's older names as aliases", () => {
    assert.deepEqual(parseControllers('persistentvolume-expander,persistentvolume-expander-controller'), ['csi-resizer'], 'the expand controller is the resizer here');
    assert.deepEqual(parseControllers('persistentvolume-binder,pvc-protection,pv-protection,attachdetach'), [
      'persistentvolume-binder-controller',
      'persistentvolumeclaim-protection-controller',
      'persistentvolume-protection-controller',
      'persistentvolume-attach-detach-controller',
    ]);
    assert.deepEqual(parseControllers('*,-attachdetach'), ALL.filter((n) => n !== 'persistentvolume-attach-detach-controller'));
    assert.deepEqual(parseControllers('-pv-protection,*,persistentvolume-protection-controller'), ALL.filter((n) => n !== 'persistentvolume-protection-controller'), 'an alias is the same controller');
  });

  it('the first mention of a name decides (kube-controller-manager\'s IsControllerEnabled)', () => {
    assert.deepEqual(parseControllers('-scheduler,*,scheduler'), ALL.filter((n) => n !== 'scheduler'));
    assert.deepEqual(parseControllers('scheduler,-scheduler'), ['scheduler']);
  });

  it('refuses unknown names (and -*) listing the known ones', () => {
    assert.throws(() => parseControllers('*,-csi-provisoner'), (err: unknown) => {
      assert.ok(err instanceof UnknownControllerError);
      assert.match(err.message, /"-csi-provisoner" is not in the list of known controllers: csi-provisioner, persistentvolume-binder-controller, persistentvolumeclaim-protection-controller, persistentvolume-protection-controller, ephemeral-volume-controller, scheduler, persistentvolume-attach-detach-controller, csi-attacher, csi-resizer, snapshot-controller, csi-snapshotter, csi-capacity, statefulset-controller, replicaset-controller, deployment-controller, daemonset-controller, job-controller, node-lifecycle-controller, taint-eviction-controller, resourcequota-controller, disruption-controller \(or their older names: persistentvolume-binder, pvc-protection, pv-protection, ephemeral-volume, attachdetach, persistentvolume-expander-controller, persistentvolume-expander, statefulset, replicaset, deployment, daemonset, job, nodelifecycle, resourcequota, disruption; /);
      return true;
    });
    assert.throws(() => parseControllers('-*'), UnknownControllerError);
    assert.throws(() => parseControllers('csi-snapshoter,persistentvolume-expanders'), /"csi-snapshoter", "persistentvolume-expanders" are not in the list/);
    assert.throws(() => parseControllers('attachdetach-controller'), UnknownControllerError);
    assert.throws(() => startControllers(open(':memory:'), quiet, { controllers: 'nope' }), UnknownControllerError);
    // `stowage up` says so as a usage error, before starting anything.
    assert.throws(() => enabledControllers('*,nope'), (err: unknown) => err instanceof CliError && /^error: --controllers: "nope" is not in the list of known controllers: /.test(err.message));
    assert.deepEqual(enabledControllers(undefined), ALL);
  });
});

describe('stowage up --controllers', () => {
  const BIN = join(fileURLToPath(new URL('../../../', import.meta.url)), 'bin/stowage.js');

  it('up --help lists every controller by name', async () => {
    const ran = await runCaptured(process.execPath, [BIN, 'up', '--help']);
    assert.equal(ran.code, 0);
    assert.match(ran.stdout, /--controllers <list>/);
    for (const c of CONTROLLERS) assert.ok(ran.stdout.split('\n').some((l) => l.startsWith(`  ${c.name} `) && l.includes(c.description)), c.name);
    assert.match(ran.stdout, /persistentvolume-attach-detach-controller +VolumeAttachments.* \(also: attachdetach\)$/m);
  });

  it('an unknown name stops up before it starts anything, naming the known ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stowage-controllers-flag-'));
    try {
      const state = join(dir, 'state');
      const ran = await runCaptured(process.execPath, [BIN, 'up', '--state-dir', state, '--controllers', '*,-csi-provisoner']);
      assert.equal(ran.code, 1);
      assert.match(ran.stderr, /error: --controllers: "-csi-provisoner" is not in the list of known controllers: csi-provisioner, persistentvolume-binder-controller, /);
      assert.equal(existsSync(join(state, 'store.db')), false, 'nothing started');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("controllers '*,-csi-provisioner' (the official external-provisioner runs instead)", () => {
  const DRIVER = 'fake.csi.test';
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  let creates: CreateVolumeRequest[];
  let deletes: DeleteVolumeRequest[];

  beforeEach(async () => {
    store = open(':memory:');
    creates = [];
    deletes = [];
    driver = await startFakeDriver(DRIVER, {
      controller: {
        async CreateVolume(req) {
          creates.push(req);
          return { volume: { volume_id: `vol-${req.name}`, capacity_bytes: 0, volume_context: {}, accessible_topology: [] } };
        },
        async DeleteVolume(req) {
          deletes.push(req);
          return {};
        },
      },
    });
    store.create(csiDriverObject(DRIVER, driver.endpoint));
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 100, controllers: '*,-csi-provisioner' });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  it('leaves a claim Pending for the external provisioner: no CreateVolume, the binder says who it waits for', async () => {
    assert.deepEqual(ctl.enabled, ALL.filter((n) => n !== 'csi-provisioner'));
    store.create(storageClass('fast', DRIVER));
    store.create(claim('data', { storageClassName: 'fast' }));
    await waitFor(() => store.list('events', { fieldSelector: 'involvedObject.name=data' }).items.some((e) => e.reason === 'ExternalProvisioning'), 'ExternalProvisioning');
    await sleep(300);
    await settle(() => ctl.idle());
    const pvc = store.get('persistentvolumeclaims', 'default', 'data') as PersistentVolumeClaim;
    assert.equal(pvc.status?.phase ?? 'Pending', 'Pending');
    assert.equal(pvc.metadata.annotations?.['volume.kubernetes.io/storage-provisioner'], DRIVER, 'handed to the provisioner, as upstream');
    assert.equal(creates.length, 0, 'no CreateVolume');
    assert.equal(store.list('persistentvolumes').items.length, 0);
    assert.deepEqual(store.list('events', { fieldSelector: 'involvedObject.name=data' }).items.filter((e) => /^Provisioning/.test(e.reason ?? '')), []);

    // What the sidecar would do: a PV pre-bound to the claim; the binder (still running) binds it.
    store.create<PersistentVolume>(
      volume(`pvc-${pvc.metadata.uid}`, {
        hostPath: undefined,
        csi: { driver: DRIVER, volumeHandle: 'external-1' },
        storageClassName: 'fast',
        persistentVolumeReclaimPolicy: 'Delete',
        claimRef: { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'data', uid: pvc.metadata.uid ?? '' },
      }, { annotations: { 'pv.kubernetes.io/provisioned-by': DRIVER } }),
    );
    await waitFor(() => (store.get('persistentvolumeclaims', 'default', 'data') as PersistentVolumeClaim).status?.phase === 'Bound', 'Bound');
    await waitFor(() => store.get('persistentvolumes', undefined, `pvc-${pvc.metadata.uid}`)?.metadata.finalizers?.includes(PV_PROTECTION_FINALIZER), 'pv-protection finalizer');

    // Released: deleting it is the sidecar's job, not the binder's.
    store.delete('persistentvolumeclaims', 'default', 'data');
    await waitFor(() => store.get('persistentvolumes', undefined, `pvc-${pvc.metadata.uid}`)?.status?.phase === 'Released', 'Released');
    await sleep(300);
    await settle(() => ctl.idle());
    assert.equal(deletes.length, 0, 'no DeleteVolume');
    assert.ok(store.get('persistentvolumes', undefined, `pvc-${pvc.metadata.uid}`), 'the PV stays for the external provisioner');
  });
});
