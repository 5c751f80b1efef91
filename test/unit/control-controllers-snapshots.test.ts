// The common snapshot controller and the snapshotter, with the binder and provisioner, against a
// fake CSI driver on a real socket: which content a snapshot gets (class, default class, none,
// pre-provisioned), the CreateSnapshot request (name, parameters, secrets), statuses, finalizers
// and events, polling of a snapshot not yet ready (with backoff), retries with the same name,
// deletion with Delete and Retain, and restores/clones (content source, size refusal, waiting).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Event, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent } from '../../src/control/api/types/snapshot.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import {
  ANN_DEFAULT_CLASS,
  ANN_DELETION_SECRET_NAME,
  PVC_SOURCE_FINALIZER,
  VS_BOUND_FINALIZER,
  VS_SOURCE_FINALIZER,
  VSC_FINALIZER,
} from '../../src/control/controllers/snapshot-controller.js';
import { open, type Store } from '../../src/control/store/store.js';
import { ResourceExhaustedError } from '../../src/csi/errors.js';
import type { CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, quiet, settle, startFakeDriver, storageClass, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';
const GiB = 1024 ** 3;

function snapshotClass(name: string, extra: Partial<VolumeSnapshotClass> = {}): VolumeSnapshotClass {
  return { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass', metadata: { name }, driver: DRIVER, deletionPolicy: 'Delete', ...extra };
}

function volumeSnapshot(name: string, source: VolumeSnapshot['spec']['source'], className?: string): VolumeSnapshot {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: { name, namespace: 'default' },
    spec: { source, ...(className === undefined ? {} : { volumeSnapshotClassName: className }) },
  };
}

type SnapshotBehaviour = (req: CreateSnapshotRequest, n: number) => { ready: boolean } | Promise<{ ready: boolean }>;

describe('snapshots', () => {
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  let snaps: CreateSnapshotRequest[];
  let snapTimes: number[];
  let snapDeletes: DeleteSnapshotRequest[];
  let volumes: CreateVolumeRequest[];
  let behaviour: SnapshotBehaviour;

  beforeEach(async () => {
    store = open(':memory:');
    snaps = [];
    snapTimes = [];
    snapDeletes = [];
    volumes = [];
    behaviour = () => ({ ready: true });
    driver = await startFakeDriver(DRIVER, {
      controllerCapabilities: ['CREATE_DELETE_VOLUME', 'CREATE_DELETE_SNAPSHOT', 'CLONE_VOLUME'],
      controller: {
        async CreateVolume(req) {
          volumes.push(req);
          return { volume: { volume_id: `vol-${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [] } };
        },
        async DeleteVolume() {
          return {};
        },
        async CreateSnapshot(req) {
          snaps.push(req);
          snapTimes.push(Date.now());
          const { ready } = await behaviour(req, snaps.filter((s) => s.name === req.name).length);
          return {
            snapshot: { snapshot_id: `id-${req.name}`, source_volume_id: req.source_volume_id, size_bytes: 2 * GiB, creation_time: { seconds: 1_700_000_000, nanos: 0 }, ready_to_use: ready },
          };
        },
        async DeleteSnapshot(req) {
          snapDeletes.push(req);
          return {};
        },
      },
    });
    store.create(csiDriverObject(DRIVER, driver.endpoint));
    store.create(storageClass('sc', DRIVER));
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  const idle = () => settle(() => ctl.idle());
  const getVs = (name: string) => store.get('volumesnapshots', 'default', name) as VolumeSnapshot | undefined;
  const getContent = (name: string) => store.get('volumesnapshotcontents', undefined, name) as VolumeSnapshotContent | undefined;
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const reasons = (name: string): string[] =>
    (store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items as Event[])
      .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
      .map((e) => e.reason ?? '');
  const messages = (name: string): string[] => (store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items as Event[]).map((e) => e.message ?? '');
  const boundClaim = async (name: string, size = '2Gi', extra: Partial<PersistentVolumeClaim['spec']> = {}) => {
    store.create(claim(name, { storageClassName: 'sc', resources: { requests: { storage: size } }, ...extra }));
    return waitFor(() => getClaim(name)?.status?.phase === 'Bound' && getClaim(name), `${name} Bound`);
  };
  const ready = (name: string) => waitFor(() => getVs(name)?.status?.readyToUse === true && getVs(name), `${name} readyToUse`);

  it('a snapshot of a bound claim: content snapcontent-<uid>, CreateSnapshot snapshot-<uid>, statuses, finalizers, events', async () => {
    store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'snap-creds', namespace: 'default' }, stringData: { user: 'admin' } });
    store.create(
      snapshotClass('cls', {
        parameters: { pool: 'p1', 'csi.storage.k8s.io/snapshotter-secret-name': 'snap-creds', 'csi.storage.k8s.io/snapshotter-secret-namespace': 'default' },
      }),
    );
    const pvc = await boundClaim('data');
    const vs = store.create(volumeSnapshot('snap', { persistentVolumeClaimName: 'data' }, 'cls'));
    const done = await ready('snap');
    await idle();

    assert.equal(snaps.length, 1);
    const req = snaps[0];
    assert.equal(req?.name, `snapshot-${vs.metadata.uid}`);
    assert.equal(req?.source_volume_id, `vol-pvc-${pvc.metadata.uid}`);
    assert.deepEqual(req?.parameters, { pool: 'p1' }, 'csi.storage.k8s.io/ keys are not passed on');
    assert.deepEqual(req?.secrets, { user: 'admin' });

    const contentName = `snapcontent-${vs.metadata.uid}`;
    const content = getContent(contentName);
    assert.ok(content);
    assert.deepEqual(content.spec.volumeSnapshotRef.uid, vs.metadata.uid);
    assert.equal(content.spec.deletionPolicy, 'Delete');
    assert.equal(content.spec.source.volumeHandle, `vol-pvc-${pvc.metadata.uid}`);
    assert.equal(content.spec.volumeSnapshotClassName, 'cls');
    assert.equal(content.metadata.annotations?.[ANN_DELETION_SECRET_NAME], 'snap-creds');
    assert.deepEqual(content.metadata.finalizers, [VSC_FINALIZER]);
    assert.equal(content.status?.snapshotHandle, `id-snapshot-${vs.metadata.uid}`);
    assert.equal(content.status?.restoreSize, 2 * GiB);
    assert.equal(content.status?.creationTime, 1_700_000_000 * 1e9);
    assert.equal(content.status?.readyToUse, true);

    assert.equal(done.status?.boundVolumeSnapshotContentName, contentName);
    assert.equal(done.status?.restoreSize, '2Gi');
    assert.equal(done.status?.creationTime, '2023-11-14T22:13:20Z');
    assert.deepEqual([...(done.metadata.finalizers ?? [])].sort(), [VS_BOUND_FINALIZER, VS_SOURCE_FINALIZER].sort());
    assert.deepEqual(reasons('snap'), ['CreatingSnapshot', 'SnapshotCreated', 'SnapshotReady']);
    // Ready: the source claim is no longer held.
    assert.ok(!(getClaim('data')?.metadata.finalizers ?? []).includes(PVC_SOURCE_FINALIZER));
  });

  const classCases: { name: string; classes: VolumeSnapshotClass[]; className?: string; expect: { class?: string; error?: RegExp } }[] = [
    { name: 'named class', classes: [snapshotClass('a'), snapshotClass('b')], className: 'b', expect: { class: 'b' } },
    {
      name: 'default class of the source driver',
      classes: [snapshotClass('other', { driver: 'other.csi.test', metadata: { name: 'other', annotations: { [ANN_DEFAULT_CLASS]: 'true' } } }), snapshotClass('dflt', { metadata: { name: 'dflt', annotations: { [ANN_DEFAULT_CLASS]: 'true' } } })],
      expect: { class: 'dflt' },
    },
    { name: 'no default class', classes: [snapshotClass('plain')], expect: { error: /cannot find default snapshot class/ } },
    {
      name: 'two default classes',
      classes: ['d1', 'd2'].map((n) => snapshotClass(n, { metadata: { name: n, annotations: { [ANN_DEFAULT_CLASS]: 'true' } } })),
      expect: { error: /2 default snapshot classes were found/ },
    },
    { name: 'missing class', classes: [], className: 'nope', expect: { error: /"nope" not found/ } },
    { name: "another driver's class", classes: [snapshotClass('x', { driver: 'other.csi.test' })], className: 'x', expect: { error: /is for driver other\.csi\.test/ } },
  ];
  for (const tc of classCases) {
    it(`class: ${tc.name}`, async () => {
      for (const c of tc.classes) store.create(c);
      await boundClaim('src');
      store.create(volumeSnapshot('s', { persistentVolumeClaimName: 'src' }, tc.className));
      if (tc.expect.class !== undefined) {
        const vs = await ready('s');
        assert.equal(vs.spec.volumeSnapshotClassName, tc.expect.class);
        assert.equal(getContent(vs.status?.boundVolumeSnapshotContentName ?? '')?.spec.volumeSnapshotClassName, tc.expect.class);
      } else {
        const vs = await waitFor(() => getVs('s')?.status?.error && getVs('s'), 's error');
        assert.match(vs.status?.error?.message ?? '', tc.expect.error ?? /./);
        assert.equal(vs.status?.readyToUse, false);
        assert.ok(reasons('s').includes('SnapshotContentCreationFailed'));
        assert.equal(snaps.length, 0);
      }
    });
  }

  it('a snapshot not ready yet is polled with growing intervals, never busy-looped, with the same name', async () => {
    store.create(snapshotClass('cls'));
    behaviour = (_req, n) => ({ ready: n >= 4 });
    await boundClaim('data');
    store.create(volumeSnapshot('slow', { persistentVolumeClaimName: 'data' }, 'cls'));
    await waitFor(() => getVs('slow')?.status?.boundVolumeSnapshotContentName && getContent(getVs('slow')?.status?.boundVolumeSnapshotContentName ?? '')?.status?.snapshotHandle, 'a handle');
    assert.equal(getVs('slow')?.status?.readyToUse, false);
    // The source claim is held while its snapshot is not ready.
    assert.ok(getClaim('data')?.metadata.finalizers?.includes(PVC_SOURCE_FINALIZER));
    await waitFor(() => getVs('slow')?.status?.readyToUse === true, 'slow readyToUse', 15_000);
    const names = new Set(snaps.map((s) => s.name));
    assert.equal(names.size, 1, 'every call uses the same name');
    assert.ok(snaps.length >= 4 && snaps.length <= 6, `a few calls, not a busy loop: ${snaps.length}`);
    const gaps = snapTimes.slice(1).map((t, i) => t - (snapTimes[i] ?? 0));
    const last = gaps.at(-1) ?? 0;
    assert.ok(last >= 700, `the last wait grew to ≥ 0.8 s (gaps ${gaps.join(', ')})`);
    await idle();
    assert.ok(!(getClaim('data')?.metadata.finalizers ?? []).includes(PVC_SOURCE_FINALIZER), 'released once ready');
  });

  it('a failed CreateSnapshot is reported (content, snapshot) and retried with the same name', async () => {
    store.create(snapshotClass('cls'));
    behaviour = (_req, n) => {
      if (n <= 2) throw new ResourceExhaustedError('quota exceeded');
      return { ready: true };
    };
    await boundClaim('data');
    const vs = store.create(volumeSnapshot('retry', { persistentVolumeClaimName: 'data' }, 'cls'));
    await waitFor(() => getVs('retry')?.status?.error, 'an error on the snapshot');
    assert.match(getVs('retry')?.status?.error?.message ?? '', /failed to take snapshot of the volume .*quota exceeded/);
    assert.ok(reasons(`snapcontent-${vs.metadata.uid}`).includes('SnapshotCreationFailed'));
    await ready('retry');
    assert.equal(new Set(snaps.map((s) => s.name)).size, 1);
    assert.equal(snaps.length, 3);
  });

  for (const policy of ['Delete', 'Retain'] as const) {
    it(`deleting a snapshot with deletionPolicy ${policy}`, async () => {
      store.create(snapshotClass('cls', { deletionPolicy: policy }));
      await boundClaim('data');
      const vs = store.create(volumeSnapshot('gone', { persistentVolumeClaimName: 'data' }, 'cls'));
      await ready('gone');
      store.delete('volumesnapshots', 'default', 'gone');
      await waitFor(() => getVs('gone') === undefined, 'snapshot gone');
      await idle();
      const contentName = `snapcontent-${vs.metadata.uid}`;
      if (policy === 'Delete') {
        assert.equal(getContent(contentName), undefined);
        assert.deepEqual(
          snapDeletes.map((d) => d.snapshot_id),
          [`id-snapshot-${vs.metadata.uid}`],
        );
      } else {
        assert.ok(getContent(contentName), 'content kept');
        assert.equal(snapDeletes.length, 0);
        // Deleting the retained content leaves the backend snapshot too.
        store.delete('volumesnapshotcontents', undefined, contentName);
        await waitFor(() => getContent(contentName) === undefined, 'content gone');
        assert.equal(snapDeletes.length, 0);
      }
    });
  }

  it('pre-provisioned: a content with a snapshotHandle is bound both ways and becomes ready', async () => {
    store.create<VolumeSnapshotContent>({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: { name: 'imported' },
      spec: { driver: DRIVER, deletionPolicy: 'Retain', source: { snapshotHandle: 'existing-1' }, volumeSnapshotRef: { name: 'pre', namespace: 'default' } },
    });
    const vs = store.create(volumeSnapshot('pre', { volumeSnapshotContentName: 'imported' }));
    const done = await ready('pre');
    assert.equal(done.status?.boundVolumeSnapshotContentName, 'imported');
    assert.equal(getContent('imported')?.spec.volumeSnapshotRef.uid, vs.metadata.uid);
    assert.equal(getContent('imported')?.status?.snapshotHandle, 'existing-1');
    assert.equal(snaps.length, 0, 'nothing is created');
    // A snapshot naming a content bound to another snapshot is refused.
    store.create(volumeSnapshot('thief', { volumeSnapshotContentName: 'imported' }));
    await waitFor(() => getVs('thief')?.status?.error, 'thief error');
    assert.match(getVs('thief')?.status?.error?.message ?? '', /bound to a different snapshot/);
    assert.ok(reasons('thief').includes('SnapshotMisbound'));
  });

  it('restore and clone: CreateVolume with the content source; a smaller claim is refused; a snapshot in use waits to be deleted', async () => {
    store.create(snapshotClass('cls'));
    const src = await boundClaim('data');
    store.create(volumeSnapshot('snap', { persistentVolumeClaimName: 'data' }, 'cls'));
    const vs = await ready('snap');
    const snapRef = { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' };

    const restored = await boundClaim('restored', '2Gi', { dataSource: snapRef });
    const clone = await boundClaim('clone', '3Gi', { dataSourceRef: { kind: 'PersistentVolumeClaim', name: 'data' } });
    const byName = (c: PersistentVolumeClaim) => volumes.find((v) => v.name === `pvc-${c.metadata.uid}`);
    assert.equal(byName(restored)?.volume_content_source?.snapshot?.snapshot_id, `id-snapshot-${vs.metadata.uid}`);
    assert.equal(byName(clone)?.volume_content_source?.volume?.volume_id, `vol-pvc-${src.metadata.uid}`);

    store.create(claim('small', { storageClassName: 'sc', resources: { requests: { storage: '1Gi' } }, dataSource: snapRef }));
    await waitFor(() => reasons('small').includes('ProvisioningFailed'), 'small refused');
    assert.ok(messages('small').some((m) => m.includes(`requested volume size ${GiB} is less than the size ${2 * GiB} for the source snapshot snap`)), messages('small').join('\n'));
    assert.equal(getClaim('small')?.status?.phase ?? 'Pending', 'Pending');
    assert.equal(byName(getClaim('small') as PersistentVolumeClaim), undefined, 'no CreateVolume');

    // A Block claim from a Filesystem snapshot needs the content's permission.
    store.create(claim('as-block', { storageClassName: 'sc', volumeMode: 'Block', resources: { requests: { storage: '2Gi' } }, dataSource: snapRef }));
    await waitFor(() => messages('as-block').some((m) => m.includes('modifies the mode of the source volume but does not have permission to do so')), 'as-block refused');
    store.delete('persistentvolumeclaims', 'default', 'as-block');

    // While "small" still waits to restore from it, the snapshot stays.
    store.delete('volumesnapshots', 'default', 'snap');
    await waitFor(() => reasons('snap').includes('SnapshotDeletePending'), 'SnapshotDeletePending');
    assert.ok(getVs('snap'));
    store.delete('persistentvolumeclaims', 'default', 'small');
    await waitFor(() => getVs('snap') === undefined, 'snapshot gone once no claim restores from it');
    await idle();
    assert.equal(snapDeletes.length, 1);
  });

  it('a restore from a snapshot that is not ready yet stays Pending with an event, then is provisioned', async () => {
    store.create(snapshotClass('cls'));
    let release = false;
    behaviour = () => ({ ready: release });
    await boundClaim('data');
    store.create(volumeSnapshot('later', { persistentVolumeClaimName: 'data' }, 'cls'));
    store.create(claim('r', { storageClassName: 'sc', resources: { requests: { storage: '2Gi' } }, dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'later' } }));
    await waitFor(() => messages('r').some((m) => m.includes('snapshot "later" is not ready to use')), 'a not-ready event');
    await sleep(100);
    assert.equal(getClaim('r')?.status?.phase ?? 'Pending', 'Pending');
    release = true;
    await waitFor(() => getClaim('r')?.status?.phase === 'Bound', 'r Bound', 15_000);
  });
  it('a snapshot deleted while CreateSnapshot is in flight: the call finishes, then DeleteSnapshot; nothing is orphaned', async () => {
    store.create(snapshotClass('cls'));
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    behaviour = async () => {
      await held;
      return { ready: true };
    };
    await boundClaim('data');
    const vs = store.create(volumeSnapshot('racy', { persistentVolumeClaimName: 'data' }, 'cls'));
    await waitFor(() => snaps.length === 1, 'CreateSnapshot in flight');
    store.delete('volumesnapshots', 'default', 'racy');
    await waitFor(() => getVs('racy') === undefined, 'snapshot gone');
    release();
    await waitFor(() => getContent(`snapcontent-${vs.metadata.uid}`) === undefined, 'content gone');
    assert.deepEqual(
      snapDeletes.map((d) => d.snapshot_id),
      [`id-snapshot-${vs.metadata.uid}`],
    );
  });

  it('after a crash mid-CreateSnapshot, a restarted control plane finds the snapshot by name and deletes it', async () => {
    store.create(snapshotClass('cls'));
    let calls = 0;
    behaviour = async () => {
      calls++;
      // The first call outlives the controllers (as a call in flight at a kill -9).
      if (calls === 1) await sleep(300);
      return { ready: true };
    };
    await boundClaim('data');
    const vs = store.create(volumeSnapshot('crash', { persistentVolumeClaimName: 'data' }, 'cls'));
    await waitFor(() => snaps.length === 1, 'CreateSnapshot in flight');
    await ctl.stop();
    const content = getContent(`snapcontent-${vs.metadata.uid}`);
    assert.equal(content?.status?.snapshotHandle, undefined, 'no handle was recorded');
    assert.equal(content?.metadata.annotations?.['snapshot.storage.kubernetes.io/volumesnapshot-being-created'], 'yes');
    // While nothing runs, the user deletes the snapshot.
    store.delete('volumesnapshots', 'default', 'crash');
    await sleep(350);
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
    await waitFor(() => getVs('crash') === undefined && getContent(`snapcontent-${vs.metadata.uid}`) === undefined, 'snapshot and content gone');
    assert.deepEqual(
      snapDeletes.map((d) => d.snapshot_id),
      [`id-snapshot-${vs.metadata.uid}`],
    );
    assert.equal(new Set(snaps.map((s) => s.name)).size, 1, 'the same name: one backend snapshot');
  });
  it("another driver's contents are left to its own (official) csi-snapshotter; the common controller still binds them", async () => {
    const OTHER = 'other.csi.test';
    store.create(snapshotClass('other-cls', { driver: OTHER }));
    store.create({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'other-pv' },
      spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: '', csi: { driver: OTHER, volumeHandle: 'other-vol-1' } },
    });
    store.create(claim('other-claim', { storageClassName: '', volumeName: 'other-pv' }));
    await waitFor(() => getClaim('other-claim')?.status?.phase === 'Bound', 'other-claim Bound');
    const vs = store.create(volumeSnapshot('other-snap', { persistentVolumeClaimName: 'other-claim' }, 'other-cls'));
    const name = `snapcontent-${vs.metadata.uid}`;
    await waitFor(() => getContent(name), 'the content');
    await idle();
    const content = getContent(name);
    assert.equal(content?.spec.driver, OTHER);
    assert.equal(content?.spec.source.volumeHandle, 'other-vol-1');
    assert.equal(content?.status, undefined, 'no status from us');
    assert.ok(!(content?.metadata.finalizers ?? []).includes(VSC_FINALIZER), 'no finalizer from us');
    assert.equal(snaps.length, 0);
    // The other driver's sidecar reports the snapshot: the common controller takes it from there.
    store.update({ ...(content as VolumeSnapshotContent), status: { snapshotHandle: 'other-snap-1', readyToUse: true, restoreSize: GiB, creationTime: 1e18 } }, { subresource: 'status' });
    const done = await ready('other-snap');
    assert.equal(done.status?.restoreSize, '1Gi');
    assert.equal(done.status?.creationTime, '2001-09-09T01:46:40Z');
  });
});
