// The attach/detach controller and the attacher, against a fake CSI driver with
// PUBLISH_UNPUBLISH_VOLUME: a VolumeAttachment per (volume, node) a pod needs, ControllerPublishVolume
// with what the PV says (capability, secrets, context) and its publish_context on the attachment,
// finalizers, Multi-Attach refused for ReadWriteOnce, detach only once the node no longer lists the
// volume in volumesInUse (or the node is gone), attach/detach errors with backoff, and drivers that
// need no attaching.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Event, Node, PersistentVolume, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { CSIDriver, CSINode, VolumeAttachment } from '../../src/control/api/types/storage.js';
import { findVolumeAttachment, uniqueVolumeName, volumeAttachmentName } from '../../src/control/controllers/attach-detach.js';
import { ANN_NODE_ID, attacherFinalizer, csiAccessModeOf, volumeCapabilityOf } from '../../src/control/controllers/attacher.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { FailedPreconditionError, NotFoundError } from '../../src/csi/errors.js';
import type { ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest } from '../../src/csi/types.js';
import { claim, csiDriverObject, type FakeDriver, pod, quiet, settle, startFakeDriver, volume, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'fake.csi.test';
const HANDLE = 'vol-1';

describe('attach/detach and attacher', () => {
  let store: Store;
  let ctl: Controllers;
  let driver: FakeDriver;
  let publishes: ControllerPublishVolumeRequest[];
  let unpublishes: ControllerUnpublishVolumeRequest[];
  let publishBehaviour: (req: ControllerPublishVolumeRequest) => Promise<void>;
  let unpublishBehaviour: (req: ControllerUnpublishVolumeRequest) => Promise<void>;

  async function setup(options: { capabilities?: string[]; attachRequired?: boolean } = {}): Promise<void> {
    store = open(':memory:');
    publishes = [];
    unpublishes = [];
    publishBehaviour = async () => undefined;
    unpublishBehaviour = async () => undefined;
    driver = await startFakeDriver(DRIVER, {
      controllerCapabilities: options.capabilities ?? ['CREATE_DELETE_VOLUME', 'PUBLISH_UNPUBLISH_VOLUME'],
      controller: {
        async ControllerPublishVolume(req) {
          publishes.push(req);
          await publishBehaviour(req);
          return { publish_context: { devicePath: `/dev/fake/${req.volume_id}`, node: req.node_id } };
        },
        async ControllerUnpublishVolume(req) {
          unpublishes.push(req);
          await unpublishBehaviour(req);
          return {};
        },
      },
    });
    const registration: CSIDriver = csiDriverObject(DRIVER, driver.endpoint);
    store.create({ ...registration, spec: { attachRequired: options.attachRequired ?? true } });
    for (const n of ['n1', 'n2']) {
      store.create<Node>({ apiVersion: 'v1', kind: 'Node', metadata: { name: n, labels: { 'kubernetes.io/hostname': n } } });
      store.create<CSINode>({ apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name: n }, spec: { drivers: [{ name: DRIVER, nodeID: `id-${n}` }] } });
    }
    store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'publish-creds', namespace: 'kube-system' }, stringData: { key: 's3cret' } });
    store.create(
      volume('pv1', {
        storageClassName: '',
        hostPath: undefined,
        mountOptions: ['noatime'],
        csi: {
          driver: DRIVER,
          volumeHandle: HANDLE,
          fsType: 'xfs',
          volumeAttributes: { pool: 'p1' },
          controllerPublishSecretRef: { name: 'publish-creds', namespace: 'kube-system' },
        },
      } as Partial<PersistentVolume['spec']>),
    );
    store.create(claim('data', { storageClassName: '', volumeName: 'pv1' }));
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 100, scheduler: false });
    await waitFor(() => getClaim('data')?.status?.phase === 'Bound', 'claim Bound');
  }

  afterEach(async () => {
    await ctl.stop();
    store.close();
    await driver.stop();
  });

  const idle = () => settle(() => ctl.idle());
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const getPv = () => store.get('persistentvolumes', undefined, 'pv1') as PersistentVolume;
  const vaName = (n: string) => volumeAttachmentName('pv1', DRIVER, n);
  const getVa = (n: string) => store.get('volumeattachments', undefined, vaName(n)) as VolumeAttachment | undefined;
  const podOn = (name: string, n: string): Pod => ({ ...pod(name, ['data']), spec: { ...pod(name, ['data']).spec, nodeName: n } });
  const eventsAbout = (name: string): Event[] =>
    store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  const setInUse = (n: string, names: string[]) => {
    const node = store.get('nodes', undefined, n) as Node;
    store.update({ ...node, status: { ...node.status, volumesInUse: names } } as Node, { subresource: 'status' });
  };
  // As the node agent finishes a pod's deletion once its containers are gone.
  const deletePod = (name: string) => store.delete('pods', 'default', name, { gracePeriodSeconds: 0 });

  it('attaches a volume a pod needs: VolumeAttachment, ControllerPublishVolume, publish_context, finalizers', async () => {
    await setup();
    store.create(podOn('app', 'n1'));
    const va = await waitFor(() => getVa('n1')?.status?.attached && getVa('n1'), 'attached');
    assert.match(va.metadata.name ?? '', /^csi-[0-9a-f]{64}$/);
    assert.deepEqual(va.spec, { attacher: DRIVER, nodeName: 'n1', source: { persistentVolumeName: 'pv1' } });
    assert.deepEqual(va.status?.attachmentMetadata, { devicePath: `/dev/fake/${HANDLE}`, node: 'id-n1' });
    assert.deepEqual(va.metadata.finalizers, ['external-attacher/fake-csi-test']);
    assert.equal(va.metadata.annotations?.[ANN_NODE_ID], 'id-n1');
    assert.ok(getPv().metadata.finalizers?.includes('external-attacher/fake-csi-test'), 'the PV is held while attached');
    assert.equal(findVolumeAttachment(store, getPv(), 'n1')?.metadata.name, va.metadata.name);
    assert.equal(findVolumeAttachment(store, getPv(), 'n2'), undefined);

    assert.equal(publishes.length, 1);
    const req = publishes[0];
    assert.equal(req?.volume_id, HANDLE);
    assert.equal(req?.node_id, 'id-n1');
    assert.equal(req?.readonly, false);
    assert.deepEqual(req?.secrets, { key: 's3cret' });
    assert.deepEqual(req?.volume_context, { pool: 'p1' });
    assert.equal(req?.volume_capability?.mount?.fs_type, 'xfs');
    assert.deepEqual(req?.volume_capability?.mount?.mount_flags, ['noatime']);
    assert.equal(req?.volume_capability?.access_mode?.mode, 'SINGLE_NODE_WRITER');

    // A second pod on the same node shares the attachment.
    store.create(podOn('app2', 'n1'));
    await idle();
    assert.equal(store.list('volumeattachments').items.length, 1);
    assert.equal(publishes.length, 1);
  });

  it('refuses a second node for a ReadWriteOnce volume (Multi-Attach), and attaches there once the first lets go', async () => {
    await setup();
    store.create(podOn('first', 'n1'));
    await waitFor(() => getVa('n1')?.status?.attached, 'attached to n1');
    store.create(podOn('second', 'n2'));
    await waitFor(() => eventsAbout('second').some((e) => e.reason === 'FailedAttachVolume'), 'Multi-Attach event');
    const ev = eventsAbout('second').find((e) => e.reason === 'FailedAttachVolume');
    assert.equal(ev?.type, 'Warning');
    assert.equal(ev?.message, 'Multi-Attach error for volume "pv1" Volume is already used by pod(s) first');
    assert.equal(getVa('n2'), undefined);

    deletePod('first');
    await waitFor(() => getVa('n1') === undefined, 'n1 detached');
    assert.deepEqual(unpublishes.map((u) => [u.volume_id, u.node_id, u.secrets['key']]), [[HANDLE, 'id-n1', 's3cret']]);
    await waitFor(() => getVa('n2')?.status?.attached, 'attached to n2');
    assert.equal(publishes.at(-1)?.node_id, 'id-n2');
  });

  it('attaches a ReadWriteMany volume to several nodes', async () => {
    await setup();
    store.update({ ...getPv(), spec: { ...getPv().spec, accessModes: ['ReadWriteMany'] } });
    store.create(podOn('a', 'n1'));
    store.create(podOn('b', 'n2'));
    await waitFor(() => getVa('n1')?.status?.attached && getVa('n2')?.status?.attached, 'attached to both');
    assert.deepEqual(publishes.map((p) => p.volume_capability?.access_mode?.mode), ['MULTI_NODE_MULTI_WRITER', 'MULTI_NODE_MULTI_WRITER']);
  });

  it('detaches only once the node no longer reports the volume in use', async () => {
    await setup();
    store.create(podOn('app', 'n1'));
    await waitFor(() => getVa('n1')?.status?.attached, 'attached');
    setInUse('n1', [uniqueVolumeName(DRIVER, HANDLE)]);
    // Terminating (graceful deletion): its containers may still run, so the volume stays wanted.
    store.delete('pods', 'default', 'app');
    await idle();
    assert.ok(store.get('pods', 'default', 'app')?.metadata.deletionTimestamp);
    assert.equal(getVa('n1')?.metadata.deletionTimestamp, undefined);
    deletePod('app');
    await idle();
    await sleep(100);
    const va = getVa('n1');
    assert.ok(va, 'still attached while staged');
    assert.equal(va.metadata.deletionTimestamp, undefined);
    assert.equal(unpublishes.length, 0);

    setInUse('n1', []);
    await waitFor(() => getVa('n1') === undefined, 'detached');
    assert.equal(unpublishes.length, 1);
    // The PV keeps its attacher finalizer only while an attachment names it and it is being deleted.
    assert.ok(getPv().metadata.finalizers?.includes(attacherFinalizer(DRIVER)));
  });

  it('detaches from a node that is gone, whatever it last reported', async () => {
    await setup();
    store.create(podOn('app', 'n1'));
    await waitFor(() => getVa('n1')?.status?.attached, 'attached');
    setInUse('n1', [uniqueVolumeName(DRIVER, HANDLE)]);
    store.delete('nodes', undefined, 'n1');
    await waitFor(() => getVa('n1') === undefined, 'detached');
    // The CSINode is still there, but the node ID comes from the attachment's annotation anyway.
    assert.equal(unpublishes[0]?.node_id, 'id-n1');
  });

  it('records attachError with the driver message, tells the pod, and retries with backoff until attached', async () => {
    await setup();
    let failures = 3;
    publishBehaviour = async () => {
      if (failures-- > 0) throw new FailedPreconditionError('volume vol-1 is still attached elsewhere');
    };
    store.create(podOn('app', 'n1'));
    const failed = await waitFor(() => getVa('n1')?.status?.attachError && getVa('n1'), 'attachError');
    assert.equal(failed.status?.attached, false);
    assert.equal(failed.status?.attachError?.message, 'rpc error: code = FailedPrecondition desc = volume vol-1 is still attached elsewhere');
    assert.match(failed.status?.attachError?.time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await waitFor(() => eventsAbout('app').some((e) => e.reason === 'FailedAttachVolume'), 'event on the pod');
    assert.equal(
      eventsAbout('app').find((e) => e.reason === 'FailedAttachVolume')?.message,
      'AttachVolume.Attach failed for volume "pv1" : rpc error: code = FailedPrecondition desc = volume vol-1 is still attached elsewhere',
    );
    assert.equal(eventsAbout(vaName('n1')).find((e) => e.reason === 'FailedAttachVolume')?.type, 'Warning');

    const va = await waitFor(() => getVa('n1')?.status?.attached && getVa('n1'), 'attached after retries');
    assert.equal(va.status?.attachError, undefined);
    assert.equal(publishes.length, 4);
  });

  it('unpublishes on deletion, records detachError on failure and retries; NotFound counts as detached', async () => {
    await setup();
    store.create(podOn('app', 'n1'));
    await waitFor(() => getVa('n1')?.status?.attached, 'attached');
    let failures = 2;
    unpublishBehaviour = async () => {
      if (failures-- > 0) throw new FailedPreconditionError('device busy');
      throw new NotFoundError('volume vol-1 is not published to id-n1');
    };
    deletePod('app');
    const failing = await waitFor(() => getVa('n1')?.status?.detachError && getVa('n1'), 'detachError');
    assert.equal(failing.status?.detachError?.message, 'rpc error: code = FailedPrecondition desc = device busy');
    assert.ok(failing.metadata.deletionTimestamp, 'terminating, held by the finalizer');
    await waitFor(() => getVa('n1') === undefined, 'detached after retries');
    assert.equal(unpublishes.length, 3);

    // The PV, deleted once its claim is gone, loses the attacher finalizer as no attachment names it.
    store.delete('persistentvolumeclaims', 'default', 'data');
    store.delete('persistentvolumes', undefined, 'pv1');
    await waitFor(() => store.get('persistentvolumes', undefined, 'pv1') === undefined || !getPv().metadata.finalizers?.includes(attacherFinalizer(DRIVER)), 'PV finalizer dropped');
  });

  it('marks attachments of a driver without PUBLISH_UNPUBLISH_VOLUME attached at once', async () => {
    await setup({ capabilities: ['CREATE_DELETE_VOLUME'] });
    store.create(podOn('app', 'n1'));
    const va = await waitFor(() => getVa('n1')?.status?.attached && getVa('n1'), 'attached');
    assert.equal(publishes.length, 0);
    assert.deepEqual(va.metadata.finalizers ?? [], []);
    deletePod('app');
    await waitFor(() => getVa('n1') === undefined, 'gone');
    assert.equal(unpublishes.length, 0);
  });

  it('makes no attachment when the CSIDriver says attachRequired: false, nor for finished pods', async () => {
    await setup({ attachRequired: false });
    store.create(podOn('app', 'n1'));
    await idle();
    assert.equal(store.list('volumeattachments').items.length, 0);
    await ctl.stop();
    store.close();
    await driver.stop();

    await setup();
    const p = store.create(podOn('done', 'n1'));
    store.update({ ...p, status: { phase: 'Succeeded' } }, { subresource: 'status' });
    await idle();
    assert.equal(store.list('volumeattachments').items.length, 0);
  });
});

describe('attacher helpers', () => {
  it("maps a PV's access modes as csi-lib-utils does", () => {
    assert.equal(csiAccessModeOf(['ReadWriteOnce'], false), 'SINGLE_NODE_WRITER');
    assert.equal(csiAccessModeOf(['ReadWriteOnce'], true), 'SINGLE_NODE_MULTI_WRITER');
    assert.equal(csiAccessModeOf(['ReadWriteOncePod'], true), 'SINGLE_NODE_SINGLE_WRITER');
    assert.equal(csiAccessModeOf(['ReadWriteOncePod'], false), 'SINGLE_NODE_WRITER');
    assert.equal(csiAccessModeOf(['ReadOnlyMany'], false), 'MULTI_NODE_READER_ONLY');
    assert.equal(csiAccessModeOf(['ReadWriteMany', 'ReadWriteOnce'], false), 'MULTI_NODE_MULTI_WRITER');
    assert.throws(() => csiAccessModeOf(['ReadOnlyMany', 'ReadWriteOnce'], false), /CSI does not support ReadOnlyMany and ReadWriteOnce/);
    assert.throws(() => csiAccessModeOf(['ReadWriteOncePod', 'ReadWriteOnce'], false), /ReadWriteOncePod with other access modes/);
    assert.throws(() => csiAccessModeOf([], false), /unsupported AccessMode combination/);
  });

  it('builds block and mount capabilities (ext4 when the PV names no fsType)', () => {
    const pv = volume('x', { hostPath: undefined, csi: { driver: DRIVER, volumeHandle: 'h' } } as Partial<PersistentVolume['spec']>);
    assert.deepEqual(volumeCapabilityOf(pv, false), { mount: { fs_type: 'ext4', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } });
    assert.deepEqual(volumeCapabilityOf({ ...pv, spec: { ...pv.spec, volumeMode: 'Block' } }, false), { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } });
  });

  it('names attachments and finalizers as Kubernetes does', () => {
    assert.match(volumeAttachmentName('pv1', DRIVER, 'n1'), /^csi-[0-9a-f]{64}$/);
    assert.notEqual(volumeAttachmentName('pv1', DRIVER, 'n1'), volumeAttachmentName('pv1', DRIVER, 'n2'));
    assert.equal(attacherFinalizer('rbd.csi.ceph.com'), 'external-attacher/rbd-csi-ceph-com');
    assert.equal(attacherFinalizer('example.com/driver'), 'external-attacher/example-com-driver');
    assert.equal(uniqueVolumeName('rbd.csi.ceph.com', '0001-abcd'), 'kubernetes.io/csi/rbd.csi.ceph.com^0001-abcd');
  });
});
