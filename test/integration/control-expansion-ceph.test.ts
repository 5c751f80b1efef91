// Volume expansion through the control plane on a real one-node Ceph cluster: the embedded nodes of
// `stowage up --backend rbd|cephfs` (one cluster-wide Controller service, a node plugin per node).
// A running pod's claim is grown; the resizer calls ControllerExpandVolume with the class's
// controller-expand secret, and the node agent NodeExpandVolume where the driver asks for it (rbd
// xfs: the image grows, then xfs_growfs online; cephfs: the subvolume's quota, no node step). The
// pod's mount shows the new size (statfs of the publish path, what df in the pod reads).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { PersistentVolumeClaim, Secret } from '../../src/control/api/types/core.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { declareEmbeddedNode, EmbeddedNodes, nodeRoot } from '../../src/control/node/embedded-nodes.js';
import { filesystemStats } from '../../src/driver/mount/filesystem.js';
import { useCephCluster } from '../support/ceph.js';
import { mountsUnder } from '../support/host-state.js';
import { deletePod, podNamed, shellPod, until } from '../support/node-cluster.js';

const ceph = useCephCluster();
const NODE = 'node-a';
const MiB = 1024 * 1024;

interface Case {
  backend: 'rbd' | 'cephfs';
  driver: string;
  accessMode: 'ReadWriteOnce' | 'ReadWriteMany';
  from: string;
  to: string;
  /** Whether the driver asks for node expansion (FileSystemResizeSuccessful from the node). */
  node: boolean;
  parameters: () => Record<string, string>;
  secrets: () => Record<string, string>;
}

const CASES: Case[] = [
  {
    backend: 'rbd',
    driver: 'rbd.csi.stowage.dev',
    accessMode: 'ReadWriteOnce',
    from: '320Mi',
    to: '448Mi',
    node: true,
    parameters: () => ({ ...ceph.parameters, 'csi.storage.k8s.io/fstype': 'xfs' }),
    secrets: () => ceph.secrets,
  },
  { backend: 'cephfs', driver: 'cephfs.csi.stowage.dev', accessMode: 'ReadWriteMany', from: '64Mi', to: '128Mi', node: false, parameters: () => ceph.cephfsParameters, secrets: () => ceph.cephfsSecrets },
];

for (const c of CASES) {
  describe(`expansion on ${c.backend}`, () => {
    let dir = '';
    let plane: ControlPlane;
    let nodes: EmbeddedNodes;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `stowage-exp-${c.backend}-`));
      const cephConfig = join(dir, 'ceph-csi-config.json');
      await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
      const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
      plane = await startControlPlane({ stateDir: dir, logger, controllers: { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 20, maxDelayMs: 500 } });
      nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: c.backend, cephConfig }, logLevel: 'warn', logger, agent: { pollMs: 200 } });
      declareEmbeddedNode(plane.store, NODE);
      nodes.watch();
      assert.ok(await nodes.ensure(NODE), `node ${NODE} started`);
      plane.store.create<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ceph-secret', namespace: 'default' }, stringData: c.secrets() });
      const secretParams = Object.fromEntries(
        ['provisioner', 'controller-expand', 'node-stage'].flatMap((p) => [
          [`csi.storage.k8s.io/${p}-secret-name`, 'ceph-secret'],
          [`csi.storage.k8s.io/${p}-secret-namespace`, 'default'],
        ]),
      );
      plane.store.create<StorageClass>({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name: c.backend },
        provisioner: c.driver,
        parameters: { ...c.parameters(), ...secretParams },
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'Immediate',
        allowVolumeExpansion: true,
      });
    }, { timeout: 120_000 });

    after(async () => {
      await nodes?.stop();
      await plane?.stop();
      const left = mountsUnder(dir);
      await rm(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], 'nothing stays mounted under the state directory');
    }, { timeout: 120_000 });

    it(`grows a ${c.backend} claim while its pod runs, and the pod's mount shows the new size`, { timeout: 240_000 }, async () => {
      plane.store.create<PersistentVolumeClaim>({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data', namespace: 'default' },
        spec: { accessModes: [c.accessMode], resources: { requests: { storage: c.from } }, storageClassName: c.backend },
      });
      const bound = await until(() => {
        const x = plane.store.get('persistentvolumeclaims', 'default', 'data');
        return x?.status?.phase === 'Bound' ? x : undefined;
      }, 'the claim to bind', 60_000);
      const pvName = bound.spec.volumeName ?? '';
      plane.store.create(shellPod('user', 'while true; do sleep 0.2; done', { nodeName: NODE, volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }], mounts: [{ name: 'data', mountPath: '/data' }] }));
      await until(() => podNamed(plane, 'user')?.status?.phase === 'Running', 'the pod to run', 120_000);
      const target = join(nodeRoot(dir, NODE), 'pods', podNamed(plane, 'user')?.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
      const before = (await filesystemStats(target)).totalBytes;
      assert.ok(before <= Number.parseInt(c.from, 10) * MiB, `df ${before} before`);

      const claim = plane.store.get('persistentvolumeclaims', 'default', 'data');
      assert.ok(claim);
      plane.store.update({ ...claim, spec: { ...claim.spec, resources: { requests: { storage: c.to } } } });
      const grown = await until(() => {
        const x = plane.store.get('persistentvolumeclaims', 'default', 'data');
        return x?.status?.capacity?.['storage'] === c.to && x.status.conditions === undefined && x.status.allocatedResourceStatuses === undefined ? x : undefined;
      }, 'the claim to be expanded', 120_000);
      assert.equal(plane.store.get('persistentvolumes', undefined, pvName)?.spec.capacity?.['storage'], c.to);
      const reasons = plane.store
        .list('events', { namespace: 'default' })
        .items.filter((e) => e.involvedObject.name === 'data')
        .map((e) => e.reason);
      assert.ok(reasons.includes('Resizing'), reasons.join(', '));
      assert.ok(reasons.includes(c.node ? 'FileSystemResizeSuccessful' : 'VolumeResizeSuccessful'), reasons.join(', '));
      const after = (await filesystemStats(target)).totalBytes;
      const added = (Number.parseInt(c.to, 10) - Number.parseInt(c.from, 10)) * MiB;
      assert.ok(after - before >= 0.9 * added && after <= Number.parseInt(c.to, 10) * MiB, `df ${before} → ${after} for ${added} added (${JSON.stringify(grown.status)})`);

      await deletePod(plane, 'user');
      plane.store.delete('persistentvolumeclaims', 'default', 'data');
      await until(() => plane.store.get('persistentvolumes', undefined, pvName) === undefined, 'the PV to be deleted', 60_000);
    });
  });
}
