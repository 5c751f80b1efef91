// The control plane end to end with the real local driver (a child process on a sparse pool): the
// driver registered through CSIDriver/CSINode/Node, then dynamic provisioning → Bound, the seeds'
// static hostPath PV/PVC and pre-bound pairs, no match → Pending with an event saying why (and
// the driver's own refusal), Delete removing the backend volume, Retain → Released,
// WaitForFirstConsumer with topology, and a PVC in use by a pod protected until the pod finishes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { parseManifests } from '../../src/control/api/manifest.js';
import type { Event, PersistentVolume, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { registerDriver } from '../../src/control/controllers/driver-registry.js';
import { ANN_SELECTED_NODE } from '../../src/control/controllers/volume-util.js';
import type { CsiClient } from '../../src/csi/client.js';
import { TOPOLOGY_KEY } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const SEEDS = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'seeds');
const DRIVER = 'local.csi.stowage.dev';
const NODE = 'test-node';

function seed(file: string): KubeObject {
  const [obj] = parseManifests(readFileSync(join(SEEDS, file), 'utf8'), file);
  if (obj === undefined) throw new Error(`${file} holds no object`);
  return obj;
}

async function volumeIds(client: CsiClient): Promise<Set<string>> {
  const ids = new Set<string>();
  let token = '';
  do {
    const page = await client.controller.ListVolumes({ starting_token: token });
    for (const e of page.entries) if (e.volume?.volume_id) ids.add(e.volume.volume_id);
    token = page.next_token;
  } while (token);
  return ids;
}

async function until<T>(fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function claim(name: string, className: string | undefined, size = '64Mi', extra: Partial<PersistentVolumeClaim['spec']> = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } }, ...(className === undefined ? {} : { storageClassName: className }), ...extra },
  };
}

function localClass(name: string, extra: Partial<StorageClass> = {}): StorageClass {
  return { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name }, provisioner: DRIVER, reclaimPolicy: 'Delete', ...extra };
}

describe('control plane with the local driver', { skip: needsRoot }, () => {
  let driver: TestDriver;
  let cp: ControlPlane | undefined;

  const store = () => {
    if (cp === undefined) throw new Error('no control plane');
    return cp.store;
  };
  const getClaim = (name: string) => store().get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const getVolume = (name: string) => store().get('persistentvolumes', undefined, name) as PersistentVolume | undefined;
  const bound = (name: string) => until(() => getClaim(name)?.status?.phase === 'Bound' && getClaim(name), `claim ${name} to be Bound`);
  const events = (name: string): Event[] => store().list('events', { fieldSelector: `involvedObject.name=${name}` }).items;
  const deleteClaim = (name: string) => store().delete('persistentvolumeclaims', 'default', name);

  before(async () => {
    driver = await startTestDriver({ prefix: 'stowage-cp-it-', nodeId: NODE });
    try {
      cp = await startControlPlane({
        stateDir: join(driver.dir, 'state'),
        logger: pino({ level: process.env['STOWAGE_TEST_LOG'] ?? 'silent' }),
        controllers: { resyncMs: 2_000, eventMaxDelayMs: 0, maxDelayMs: 2_000 },
      });
      const reg = await registerDriver(cp.store, { endpoint: driver.endpoint });
      assert.deepEqual(reg, { driverName: DRIVER, controller: true, nodeName: NODE, nodeID: NODE, topology: { [TOPOLOGY_KEY]: NODE } });
      cp.store.create(localClass('local'));
      cp.store.create(localClass('local-retain', { reclaimPolicy: 'Retain' }));
      cp.store.create(localClass('local-wffc', { volumeBindingMode: 'WaitForFirstConsumer' }));
      cp.store.create(localClass('local-bad', { parameters: { pool: 'gold' } }));
    } catch (err) {
      await cp?.stop().catch(() => undefined);
      await driver.cleanup();
      throw err;
    }
  });

  after(async () => {
    try {
      await cp?.stop();
    } finally {
      const dir = driver.dir;
      await driver.cleanup();
      assertNoLeftovers(dir);
    }
  });

  it('provisions a volume on the driver and binds the claim to it', async () => {
    const c = store().create(claim('dyn', 'local'));
    const done = await bound('dyn');
    const pv = getVolume(done.spec.volumeName ?? '');
    assert.equal(pv?.metadata.name, `pvc-${c.metadata.uid}`);
    assert.equal(pv?.status?.phase, 'Bound');
    assert.equal(pv?.spec.csi?.driver, DRIVER);
    assert.deepEqual(pv?.spec.capacity, { storage: '64Mi' });
    assert.deepEqual(pv?.spec.nodeAffinity?.required?.nodeSelectorTerms, [{ matchExpressions: [{ key: TOPOLOGY_KEY, operator: 'In', values: [NODE] }] }]);
    assert.ok((await volumeIds(driver.client)).has(pv?.spec.csi?.volumeHandle ?? ''), 'the volume exists on the driver');
    const got = await driver.client.controller.ControllerGetVolume({ volume_id: pv?.spec.csi?.volumeHandle ?? '' });
    assert.equal(Number(got.volume?.capacity_bytes), 64 * 1024 * 1024);
    assert.deepEqual(events('dyn').map((e) => e.reason).sort(), ['Provisioning', 'ProvisioningSucceeded']);
    assert.deepEqual(done.status?.capacity, { storage: '64Mi' });
  });

  it('binds the seed hostPath PV and PVC, and pre-bound pairs', async () => {
    store().create(seed('002-hostpath-pv.yaml'));
    store().create(seed('002-hostpath-pvc.yaml'));
    const c = await bound('task-pv-claim');
    assert.equal(c.spec.volumeName, 'task-pv-volume');
    assert.equal(getVolume('task-pv-volume')?.status?.phase, 'Bound');
    assert.equal(getVolume('task-pv-volume')?.spec.persistentVolumeReclaimPolicy, 'Retain');

    const hostPath = (name: string, spec: Partial<PersistentVolume['spec']> = {}): PersistentVolume => ({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name },
      spec: { storageClassName: 'manual', capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: `/mnt/${name}` }, ...spec },
    });
    store().create(hostPath('for-alice', { claimRef: { namespace: 'default', name: 'alice' } }));
    store().create(hostPath('big-one', { capacity: { storage: '10Gi' } }));
    store().create(claim('alice', 'manual', '100Mi'));
    store().create(claim('bob', 'manual', '100Mi', { volumeName: 'big-one' }));
    assert.equal((await bound('alice')).spec.volumeName, 'for-alice');
    assert.equal((await bound('bob')).spec.volumeName, 'big-one');
  });

  it('leaves a claim nothing can satisfy Pending with an event that says why', async () => {
    store().create(claim('orphan', 'no-such-class', '1Gi'));
    store().create(claim('refused', 'local-bad'));
    const why = await until(() => events('orphan').find((e) => e.reason === 'ProvisioningFailed'), 'an event on orphan');
    assert.match(why.message ?? '', /storageclass\.storage\.k8s\.io "no-such-class" not found/);
    const refused = await until(() => events('refused').find((e) => e.reason === 'ProvisioningFailed'), 'the driver refusal');
    assert.equal(refused.type, 'Warning');
    assert.match(refused.message ?? '', /^failed to provision volume with StorageClass "local-bad": rpc error: code = InvalidArgument desc = parameter "pool" is not known to the local backend/);
    await sleep(300);
    assert.equal(getClaim('orphan')?.status?.phase, 'Pending');
    assert.equal(getClaim('refused')?.status?.phase, 'Pending');
    deleteClaim('orphan');
    deleteClaim('refused');
    await until(() => getClaim('orphan') === undefined && getClaim('refused') === undefined, 'the claims to go');
  });

  it('Delete: deleting the claim deletes the backend volume and the PV', async () => {
    store().create(claim('temp', 'local'));
    const c = await bound('temp');
    const pvName = c.spec.volumeName ?? '';
    const handle = getVolume(pvName)?.spec.csi?.volumeHandle ?? '';
    assert.ok((await volumeIds(driver.client)).has(handle));
    deleteClaim('temp');
    await until(() => getVolume(pvName) === undefined, 'the PV to be deleted');
    assert.equal((await volumeIds(driver.client)).has(handle), false, 'the volume is gone from the driver');
  });

  it('Retain: deleting the claim leaves the volume Released, with its data', async () => {
    store().create(claim('keeper', 'local-retain'));
    const c = await bound('keeper');
    const pvName = c.spec.volumeName ?? '';
    deleteClaim('keeper');
    await until(() => getVolume(pvName)?.status?.phase === 'Released', 'the PV to be Released');
    await sleep(300);
    const pv = getVolume(pvName);
    assert.equal(pv?.status?.phase, 'Released');
    const handle = pv?.spec.csi?.volumeHandle ?? '';
    assert.ok((await volumeIds(driver.client)).has(handle), 'the volume is kept');
    // The administrator's part: delete the PV and the volume.
    store().delete('persistentvolumes', undefined, pvName);
    await until(() => getVolume(pvName) === undefined, 'the PV to go');
    await driver.client.controller.DeleteVolume({ volume_id: handle });
  });

  it('WaitForFirstConsumer: provisions once a node is selected, on that node', async () => {
    store().create(claim('later', 'local-wffc'));
    await until(() => events('later').some((e) => e.reason === 'WaitForFirstConsumer'), 'WaitForFirstConsumer');
    assert.equal(getClaim('later')?.status?.phase, 'Pending');
    const c = getClaim('later');
    if (c === undefined) throw new Error('claim gone');
    store().update({ ...c, metadata: { ...c.metadata, annotations: { ...c.metadata.annotations, [ANN_SELECTED_NODE]: NODE } } });
    const done = await bound('later');
    assert.equal(getVolume(done.spec.volumeName ?? '')?.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values?.[0], NODE);
  });

  it('protects a claim in use by a pod until the pod has finished', async () => {
    store().create(claim('busy', 'local'));
    const c = await bound('busy');
    const pvName = c.spec.volumeName ?? '';
    const handle = getVolume(pvName)?.spec.csi?.volumeHandle ?? '';
    const p = store().create<Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'user', namespace: 'default' },
      spec: { containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'busy' } }] },
    });
    deleteClaim('busy');
    await sleep(500);
    assert.ok(getClaim('busy')?.metadata.deletionTimestamp, 'terminating, not gone');
    assert.equal(getVolume(pvName)?.status?.phase, 'Bound');
    assert.ok((await volumeIds(driver.client)).has(handle));
    // Re-read: the scheduler has written the pod since (PodScheduled).
    store().update({ ...(store().get('pods', 'default', 'user') ?? p), status: { phase: 'Succeeded' } }, { subresource: 'status' });
    await until(() => getClaim('busy') === undefined, 'the claim to go once the pod finished');
    await until(() => getVolume(pvName) === undefined, 'its PV to go');
    assert.equal((await volumeIds(driver.client)).has(handle), false);
  });

  it('leaves no volume behind once every claim is gone', async () => {
    for (const c of store().list('persistentvolumeclaims').items) deleteClaim(c.metadata.name ?? '');
    for (const pv of store().list('persistentvolumes').items) {
      if (pv.spec.csi === undefined) store().delete('persistentvolumes', undefined, pv.metadata.name ?? '');
    }
    await until(() => store().list('persistentvolumes').items.length === 0, 'every PV to go');
    assert.equal((await volumeIds(driver.client)).size, 0);
  });
});
