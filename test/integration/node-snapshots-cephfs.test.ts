// Snapshots, restores and clones on CephFS through the embedded control plane (one cephfs
// Controller service, a node plugin per node, a real one-node Ceph cluster): a pod writes; a
// VolumeSnapshot (class with the snapshotter secret) becomes readyToUse as a subvolume snapshot;
// the pod overwrites; a claim restored from the snapshot (the mgr clones in the background: the
// driver answers ABORTED until done, and the provisioner retries the same name) shows the old bytes
// in a pod on the other node, a clone the current ones; deleting the snapshot (Delete) removes the
// subvolume snapshot.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { PersistentVolumeClaim, Pod, Secret } from '../../src/control/api/types/core.js';
import type { VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent } from '../../src/control/api/types/snapshot.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { declareEmbeddedNode, EmbeddedNodes, nodeRoot } from '../../src/control/node/embedded-nodes.js';
import { useCephCluster } from '../support/ceph.js';
import { mountsUnder } from '../support/host-state.js';
import { deletePod, podNamed, shellPod, until } from '../support/node-cluster.js';

const ceph = useCephCluster();
const DRIVER = 'cephfs.csi.stowage.dev';
const NODES = ['node-a', 'node-b'];

describe('snapshots, restores and clones on CephFS through the control plane', () => {
  let dir = '';
  let plane: ControlPlane;
  let nodes: EmbeddedNodes;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-fssnap-'));
    const cephConfig = join(dir, 'ceph-csi-config.json');
    await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
    const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
    plane = await startControlPlane({ stateDir: dir, logger, controllers: { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 20, maxDelayMs: 1_000 } });
    nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: 'cephfs', cephConfig }, logLevel: 'warn', logger, agent: { pollMs: 200 } });
    for (const n of NODES) declareEmbeddedNode(plane.store, n);
    nodes.watch();
    for (const n of NODES) assert.ok(await nodes.ensure(n), `node ${n} started`);
    plane.store.create<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'csi-cephfs-secret', namespace: 'default' }, stringData: ceph.cephfsSecrets });
    const secretParams = (kinds: string[]) =>
      Object.fromEntries(
        kinds.flatMap((p) => [
          [`csi.storage.k8s.io/${p}-secret-name`, 'csi-cephfs-secret'],
          [`csi.storage.k8s.io/${p}-secret-namespace`, 'default'],
        ]),
      );
    plane.store.create<StorageClass>({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'cephfs' },
      provisioner: DRIVER,
      parameters: { ...ceph.cephfsParameters, ...secretParams(['provisioner', 'controller-expand', 'node-stage']) },
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
    });
    plane.store.create<VolumeSnapshotClass>({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotClass',
      metadata: { name: 'cephfs-snapshots' },
      driver: DRIVER,
      deletionPolicy: 'Delete',
      parameters: { clusterID: ceph.info.clusterID, ...secretParams(['snapshotter']) },
    });
  }, { timeout: 180_000 });

  after(async () => {
    await nodes?.stop();
    await plane?.stop();
    const left = mountsUnder(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing stays mounted under the state directory');
  }, { timeout: 120_000 });

  it('snapshot → overwrite → restore (old bytes, other node) and clone (new bytes); Delete removes the subvolume snapshot', { timeout: 300_000 }, async () => {
    const store = plane.store;
    const claim = (name: string, dataSource?: PersistentVolumeClaim['spec']['dataSource']): PersistentVolumeClaim => ({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: 'default' },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '64Mi' } }, storageClassName: 'cephfs', ...(dataSource === undefined ? {} : { dataSource }) },
    });
    const bound = (name: string) =>
      until(() => {
        const c = store.get('persistentvolumeclaims', 'default', name);
        return c?.status?.phase === 'Bound' ? c : undefined;
      }, `claim ${name} Bound`, 120_000);
    const volume = (claimName: string): NonNullable<Pod['spec']['volumes']> => [{ name: 'data', persistentVolumeClaim: { claimName } }];
    const mounts = [{ name: 'data', mountPath: '/data' }];
    const runtimeLog = async (pod: string, node: string): Promise<string> => {
      const logs = join(nodeRoot(dir, node), 'pods', podNamed(plane, pod)?.metadata.uid ?? '', 'containers', 'main', 'logs');
      const files = await readdir(logs).catch(() => [] as string[]);
      return (await Promise.all(files.map((f) => readFile(join(logs, f), 'utf8')))).join('');
    };

    store.create(claim('source'));
    const source = await bound('source');
    const subvolume = (await ceph.subvolumes())[0] ?? '';
    assert.ok(subvolume, 'the source subvolume');
    store.create(
      shellPod('writer', 'echo old-bytes > /data/f; sync; echo wrote-old; while [ ! -e /data/.overwrite ]; do sleep 0.2; done; echo new-bytes > /data/f; sync; echo wrote-new; while true; do sleep 1; done', {
        nodeName: 'node-a',
        volumes: volume('source'),
        mounts,
      }),
    );
    await until(async () => (await runtimeLog('writer', 'node-a')).includes('wrote-old'), 'the old bytes written', 120_000);

    store.create<VolumeSnapshot>({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 'before', namespace: 'default' }, spec: { source: { persistentVolumeClaimName: 'source' }, volumeSnapshotClassName: 'cephfs-snapshots' } });
    const snap = await until(() => {
      const v = store.get('volumesnapshots', 'default', 'before') as VolumeSnapshot | undefined;
      return v?.status?.readyToUse === true ? v : undefined;
    }, 'the snapshot readyToUse', 120_000);
    const content = store.get('volumesnapshotcontents', undefined, snap.status?.boundVolumeSnapshotContentName ?? '') as VolumeSnapshotContent;
    assert.match(content.status?.snapshotHandle ?? '', /^0001-/, 'a ceph-csi snapshot ID');
    assert.equal((await ceph.subvolumeSnapshots(subvolume)).length, 1, 'one subvolume snapshot');

    // The pod overwrites (a second pod on the same RWX volume drops the trigger).
    store.create(shellPod('trigger', 'touch /data/.overwrite; while true; do sleep 1; done', { nodeName: 'node-b', volumes: volume('source'), mounts }));
    await until(async () => (await runtimeLog('writer', 'node-a')).includes('wrote-new'), 'the new bytes written', 120_000);

    store.create(claim('restored', { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'before' }));
    store.create(claim('cloned', { kind: 'PersistentVolumeClaim', name: 'source' }));
    await Promise.all([bound('restored'), bound('cloned')]);
    store.create(shellPod('read-restored', 'cat /data/f; while true; do sleep 1; done', { nodeName: 'node-b', volumes: volume('restored'), mounts }));
    store.create(shellPod('read-cloned', 'cat /data/f; while true; do sleep 1; done', { nodeName: 'node-b', volumes: volume('cloned'), mounts }));
    await until(async () => (await runtimeLog('read-restored', 'node-b')).includes('old-bytes'), 'the restore to show the old bytes', 120_000);
    await until(async () => (await runtimeLog('read-cloned', 'node-b')).includes('new-bytes'), 'the clone to show the new bytes', 120_000);

    for (const name of ['writer', 'trigger', 'read-restored', 'read-cloned']) await deletePod(plane, name);
    store.delete('volumesnapshots', 'default', 'before');
    await until(async () => (await ceph.subvolumeSnapshots(subvolume)).length === 0, 'the subvolume snapshot removed', 120_000);
    assert.equal(store.get('volumesnapshotcontents', undefined, content.metadata.name ?? ''), undefined);

    for (const name of ['restored', 'cloned', 'source']) store.delete('persistentvolumeclaims', 'default', name);
    await until(() => store.list('persistentvolumes').items.length === 0, 'the PVs deleted', 120_000);
    await until(async () => (await ceph.subvolumes()).length === 0, 'every subvolume removed', 120_000);
    assert.ok(source.spec.volumeName);
  });
});
