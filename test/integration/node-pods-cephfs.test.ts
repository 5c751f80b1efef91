// `stowage up --nodes 2 --backend cephfs`, in-process: the embedded nodes (src/control/node/
// embedded-nodes.ts) run one cephfs Controller service and a cephfs node plugin per node against a
// real one-node Ceph cluster. A ReadWriteMany claim is provisioned as a CephFS subvolume, two pods
// on two nodes mount it at once through ceph-fuse, each sees what the other wrote; when the pods go,
// each node unstages, and deleting the claim removes the subvolume.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { PersistentVolumeClaim, Secret } from '../../src/control/api/types/core.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { controllerSocket, declareEmbeddedNode, EmbeddedNodes, nodeRoot, nodeSocket } from '../../src/control/node/embedded-nodes.js';
import { useCephCluster } from '../support/ceph.js';
import { mountsUnder } from '../support/host-state.js';
import { deletePod, podNamed, shellPod, until } from '../support/node-cluster.js';

const ceph = useCephCluster();
const DRIVER = 'cephfs.csi.stowage.dev';
const NODES = ['node-a', 'node-b'];

describe('embedded nodes on CephFS: one controller, a node plugin per node, RWX across nodes', () => {
  let dir = '';
  let plane: ControlPlane;
  let nodes: EmbeddedNodes;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-fsnodes-'));
    const cephConfig = join(dir, 'ceph-csi-config.json');
    await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
    const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
    plane = await startControlPlane({ stateDir: dir, logger, controllers: { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 20, maxDelayMs: 500 } });
    nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: 'cephfs', cephConfig }, logLevel: 'warn', logger, agent: { pollMs: 200 } });
    for (const n of NODES) declareEmbeddedNode(plane.store, n);
    nodes.watch();
    for (const n of NODES) assert.ok(await nodes.ensure(n), `node ${n} started`);
    plane.store.create<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'csi-cephfs-secret', namespace: 'default' }, stringData: ceph.cephfsSecrets });
    const secretParams = Object.fromEntries(
      ['provisioner', 'controller-expand', 'node-stage'].flatMap((p) => [
        [`csi.storage.k8s.io/${p}-secret-name`, 'csi-cephfs-secret'],
        [`csi.storage.k8s.io/${p}-secret-namespace`, 'default'],
      ]),
    );
    plane.store.create<StorageClass>({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'cephfs' },
      provisioner: DRIVER,
      parameters: { ...ceph.cephfsParameters, ...secretParams },
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
    });
  }, { timeout: 120_000 });

  after(async () => {
    await nodes?.stop();
    await plane?.stop();
    const left = mountsUnder(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing stays mounted under the state directory');
  }, { timeout: 120_000 });

  it('registers one Controller service for the cluster and a node plugin on each node', () => {
    const driver = plane.store.get('csidrivers', undefined, DRIVER);
    assert.equal(driver?.metadata.annotations?.['stowage.dev/controller-endpoint'], `unix://${controllerSocket(dir, DRIVER)}`);
    assert.equal(driver?.metadata.annotations?.['stowage.dev/controller-per-node'], undefined);
    for (const n of NODES) {
      const csiNode = plane.store.get('csinodes', undefined, n);
      assert.deepEqual(csiNode?.spec.drivers.map((d) => [d.name, d.nodeID]), [[DRIVER, n]]);
      assert.equal(JSON.parse(csiNode?.metadata.annotations?.['stowage.dev/endpoints'] ?? '{}')[DRIVER], `unix://${nodeSocket(dir, n, DRIVER)}`);
    }
  });

  it('a ReadWriteMany claim is shared by pods on two nodes, then unstaged and deleted', { timeout: 240_000 }, async () => {
    plane.store.create<PersistentVolumeClaim>({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'shared', namespace: 'default' },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '64Mi' } }, storageClassName: 'cephfs' },
    });
    const bound = await until(() => {
      const c = plane.store.get('persistentvolumeclaims', 'default', 'shared');
      return c?.status?.phase === 'Bound' ? c : undefined;
    }, 'the claim to bind', 60_000);
    const pvName = bound.spec.volumeName ?? '';
    const subvolumesBefore = await ceph.subvolumes();
    assert.equal(subvolumesBefore.length, 1, `one subvolume: ${subvolumesBefore.join(', ')}`);

    const volume = [{ name: 'data', persistentVolumeClaim: { claimName: 'shared' } }];
    const mounts = [{ name: 'data', mountPath: '/data' }];
    // Each writes its own file, then waits until it sees the other's.
    const script = (me: string, other: string) => `echo from-${me} > /data/${me}; until [ -f /data/${other} ]; do sleep 0.2; done; echo "saw $(cat /data/${other})"; while true; do sleep 1; done`;
    plane.store.create(shellPod('writer-a', script('a', 'b'), { nodeName: 'node-a', volumes: volume, mounts }));
    plane.store.create(shellPod('writer-b', script('b', 'a'), { nodeName: 'node-b', volumes: volume, mounts }));
    for (const name of ['writer-a', 'writer-b']) await until(() => podNamed(plane, name)?.status?.phase === 'Running', `${name} to run`, 120_000);

    // Both nodes staged the volume (ceph-fuse) at their own kubelet paths.
    for (const n of NODES) {
      const staged = mountsUnder(join(nodeRoot(dir, n), 'plugins', 'kubernetes.io', 'csi', 'pv', pvName));
      assert.ok(staged.some((m) => m.fsType.startsWith('fuse')), `${n} staged ${pvName} with ceph-fuse: ${JSON.stringify(staged)}`);
    }
    /** What the pod's container printed (the runtime's log files of every attempt). */
    const runtimeLog = async (pod: string, node: string): Promise<string> => {
      const logs = join(nodeRoot(dir, node), 'pods', podNamed(plane, pod)?.metadata.uid ?? '', 'containers', 'main', 'logs');
      const files = await readdir(logs).catch(() => [] as string[]);
      return (await Promise.all(files.map((f) => readFile(join(logs, f), 'utf8')))).join('');
    };
    await until(async () => (await runtimeLog('writer-a', 'node-a')).includes('saw from-b'), 'node-a to see node-b\'s file', 30_000);
    await until(async () => (await runtimeLog('writer-b', 'node-b')).includes('saw from-a'), 'node-b to see node-a\'s file', 30_000);

    await deletePod(plane, 'writer-a');
    await deletePod(plane, 'writer-b');
    for (const n of NODES) assert.deepEqual(mountsUnder(join(nodeRoot(dir, n), 'plugins', 'kubernetes.io')), [], `${n} unstaged`);

    plane.store.delete('persistentvolumeclaims', 'default', 'shared');
    await until(() => plane.store.get('persistentvolumes', undefined, pvName) === undefined, 'the PV to be deleted', 60_000);
    assert.deepEqual(await ceph.subvolumes(), [], 'the subvolume is removed');
  });
});
