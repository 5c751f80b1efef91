// Snapshots, restores and clones on Ceph through the embedded control plane, for rbd and cephfs
// alike (one Controller service, a node plugin per node, one real one-node Ceph cluster): a pod
// writes; a VolumeSnapshot (class with the snapshotter secret) becomes readyToUse as the backend's
// snapshot (a csi-snap image; a subvolume snapshot); the pod overwrites; a claim restored from the
// snapshot shows the old bytes in a pod on the other node (cephfs: the mgr clones in the
// background, the driver answers ABORTED until done, and the provisioner retries the same name), a
// clone the current ones; deleting the snapshot (Delete) removes the backend snapshot, and deleting
// the claims every image or subvolume. What differs per backend is the table below.
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
import { type CephFixture, useCephCluster } from '../support/ceph.js';
import { mountsUnder } from '../support/host-state.js';
import { deletePod, podNamed, shellPod, until } from '../support/node-cluster.js';

const ceph = useCephCluster();
const NODES = ['node-a', 'node-b'];

/** What the story needs to know of a backend. */
interface CephBackend {
  kind: 'rbd' | 'cephfs';
  title: string;
  driver: string;
  secrets: (c: CephFixture) => Record<string, string>;
  classParameters: (c: CephFixture) => Record<string, string>;
  accessMode: 'ReadWriteOnce' | 'ReadWriteMany';
  /** The backend's snapshots of the source volume, once it is Bound. */
  snapshots: (c: CephFixture) => Promise<() => Promise<string[]>>;
  /** Backend volumes left (every one must go with the claims). */
  volumes: (c: CephFixture) => Promise<string[]>;
  snapshotWhat: string;
}

const BACKENDS: CephBackend[] = [
  {
    kind: 'rbd',
    title: 'Ceph RBD',
    driver: 'rbd.csi.stowage.dev',
    secrets: (c) => c.secrets,
    classParameters: (c) => ({ ...c.parameters, 'csi.storage.k8s.io/fstype': 'ext4' }),
    accessMode: 'ReadWriteOnce',
    snapshots: async (c) => async () => (await c.images()).images.filter((i) => i.startsWith('csi-snap-')),
    volumes: async (c) => (await c.images()).images,
    snapshotWhat: 'the csi-snap image',
  },
  {
    kind: 'cephfs',
    title: 'CephFS',
    driver: 'cephfs.csi.stowage.dev',
    secrets: (c) => c.cephfsSecrets,
    classParameters: (c) => c.cephfsParameters,
    accessMode: 'ReadWriteMany',
    snapshots: async (c) => {
      const subvolume = (await c.subvolumes())[0] ?? '';
      assert.ok(subvolume, 'the source subvolume');
      return () => c.subvolumeSnapshots(subvolume);
    },
    volumes: (c) => c.subvolumes(),
    snapshotWhat: 'the subvolume snapshot',
  },
];

for (const b of BACKENDS) {
  describe(`snapshots, restores and clones on ${b.title} through the control plane`, () => {
    let dir = '';
    let plane: ControlPlane;
    let nodes: EmbeddedNodes;
    const secretName = `csi-${b.kind}-secret`;
    const secretParams = (kinds: string[]) =>
      Object.fromEntries(
        kinds.flatMap((p) => [
          [`csi.storage.k8s.io/${p}-secret-name`, secretName],
          [`csi.storage.k8s.io/${p}-secret-namespace`, 'default'],
        ]),
      );

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `stowage-${b.kind}snap-`));
      const cephConfig = join(dir, 'ceph-csi-config.json');
      await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
      const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
      plane = await startControlPlane({ stateDir: dir, logger, controllers: { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 20, maxDelayMs: 1_000 } });
      nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: b.kind, cephConfig }, logLevel: 'warn', logger, agent: { pollMs: 200 } });
      for (const n of NODES) declareEmbeddedNode(plane.store, n);
      nodes.watch();
      for (const n of NODES) assert.ok(await nodes.ensure(n), `node ${n} started`);
      plane.store.create<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: secretName, namespace: 'default' }, stringData: b.secrets(ceph) });
      plane.store.create<StorageClass>({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name: b.kind },
        provisioner: b.driver,
        parameters: { ...b.classParameters(ceph), ...secretParams(['provisioner', 'controller-expand', 'node-stage']) },
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'Immediate',
      });
      plane.store.create<VolumeSnapshotClass>({
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotClass',
        metadata: { name: `${b.kind}-snapshots` },
        driver: b.driver,
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

    it(`snapshot → overwrite → restore (old bytes, other node) and clone (new bytes); Delete removes ${b.snapshotWhat}`, { timeout: 300_000 }, async () => {
      const store = plane.store;
      const claim = (name: string, dataSource?: PersistentVolumeClaim['spec']['dataSource']): PersistentVolumeClaim => ({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name, namespace: 'default' },
        spec: { accessModes: [b.accessMode], resources: { requests: { storage: '64Mi' } }, storageClassName: b.kind, ...(dataSource === undefined ? {} : { dataSource }) },
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
      const backendSnapshots = await b.snapshots(ceph);
      store.create(
        shellPod('writer', 'echo old-bytes > /data/f; sync; echo wrote-old; while [ ! -e /data/.overwrite ]; do sleep 0.2; done; echo new-bytes > /data/f; sync; echo wrote-new; while true; do sleep 1; done', {
          nodeName: 'node-a',
          volumes: volume('source'),
          mounts,
        }),
      );
      await until(async () => (await runtimeLog('writer', 'node-a')).includes('wrote-old'), 'the old bytes written', 120_000);

      store.create<VolumeSnapshot>({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 'before', namespace: 'default' }, spec: { source: { persistentVolumeClaimName: 'source' }, volumeSnapshotClassName: `${b.kind}-snapshots` } });
      const snap = await until(() => {
        const v = store.get('volumesnapshots', 'default', 'before') as VolumeSnapshot | undefined;
        return v?.status?.readyToUse === true ? v : undefined;
      }, 'the snapshot readyToUse', 120_000);
      const content = store.get('volumesnapshotcontents', undefined, snap.status?.boundVolumeSnapshotContentName ?? '') as VolumeSnapshotContent;
      assert.match(content.status?.snapshotHandle ?? '', /^0001-/, 'a ceph-csi snapshot ID');
      assert.equal((await backendSnapshots()).length, 1, `one backend snapshot (${b.snapshotWhat})`);

      // The pod overwrites: the trigger is dropped into its volume — at the kubelet's path for a
      // single-node volume, by a second pod on the other node for a shared (RWX) one.
      const pods = ['writer', 'read-restored', 'read-cloned'];
      if (b.accessMode === 'ReadWriteMany') {
        store.create(shellPod('trigger', 'touch /data/.overwrite; while true; do sleep 1; done', { nodeName: 'node-b', volumes: volume('source'), mounts }));
        pods.push('trigger');
      } else {
        const writer = podNamed(plane, 'writer');
        await writeFile(join(nodeRoot(dir, 'node-a'), 'pods', writer?.metadata.uid ?? '', 'volumes/kubernetes.io~csi', source.spec.volumeName ?? '', 'mount', '.overwrite'), '');
      }
      await until(async () => (await runtimeLog('writer', 'node-a')).includes('wrote-new'), 'the new bytes written', 120_000);

      store.create(claim('restored', { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'before' }));
      store.create(claim('cloned', { kind: 'PersistentVolumeClaim', name: 'source' }));
      await Promise.all([bound('restored'), bound('cloned')]);
      store.create(shellPod('read-restored', 'cat /data/f; while true; do sleep 1; done', { nodeName: 'node-b', volumes: volume('restored'), mounts }));
      store.create(shellPod('read-cloned', 'cat /data/f; while true; do sleep 1; done', { nodeName: 'node-b', volumes: volume('cloned'), mounts }));
      await until(async () => (await runtimeLog('read-restored', 'node-b')).includes('old-bytes'), 'the restore to show the old bytes', 120_000);
      await until(async () => (await runtimeLog('read-cloned', 'node-b')).includes('new-bytes'), 'the clone to show the new bytes', 120_000);

      for (const name of pods) await deletePod(plane, name);
      store.delete('volumesnapshots', 'default', 'before');
      await until(async () => (await backendSnapshots()).length === 0, `${b.snapshotWhat} removed`, 120_000);
      assert.equal(store.get('volumesnapshotcontents', undefined, content.metadata.name ?? ''), undefined);

      for (const name of ['restored', 'cloned', 'source']) store.delete('persistentvolumeclaims', 'default', name);
      await until(() => store.list('persistentvolumes').items.length === 0, 'the PVs deleted', 120_000);
      await until(async () => (await b.volumes(ceph)).length === 0, 'every backend volume removed', 120_000);
      assert.ok(source.spec.volumeName);
    });
  });
}
