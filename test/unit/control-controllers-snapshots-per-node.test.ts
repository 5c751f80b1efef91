// Snapshots of a driver served per node (local volumes, stowage.dev/controller-per-node), against
// two fake node plugins: CreateSnapshot goes to the node holding the source volume and is recorded
// on the content; a restore and a clone are created there, with that node's topology (so the PV's
// node affinity names it); DeleteSnapshot goes there too.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../src/control/api/types/snapshot.js';
import type { CSINode } from '../../src/control/api/types/storage.js';
import { ANN_SNAPSHOT_NODE } from '../../src/control/controllers/data-source.js';
import { CONTROLLER_PER_NODE_ANNOTATION, NODE_ENDPOINTS_ANNOTATION } from '../../src/control/controllers/driver-registry.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { ANN_SELECTED_NODE } from '../../src/control/controllers/volume-util.js';
import { open, type Store } from '../../src/control/store/store.js';
import { claim, csiDriverObject, type FakeDriver, quiet, startFakeDriver, storageClass, waitFor } from './control-controllers-helpers.js';

const DRIVER = 'local.fake.test';
const KEY = 'topology.fake.test/node';

describe('snapshots of a driver served per node', () => {
  let store: Store;
  let ctl: Controllers;
  const drivers = new Map<string, FakeDriver>();
  /** "node:method:name-or-id" for every call. */
  let calls: string[];

  beforeEach(async () => {
    store = open(':memory:');
    calls = [];
    for (const node of ['n1', 'n2']) {
      drivers.set(
        node,
        await startFakeDriver(DRIVER, {
          controllerCapabilities: ['CREATE_DELETE_VOLUME', 'CREATE_DELETE_SNAPSHOT', 'CLONE_VOLUME'],
          controller: {
            async CreateVolume(req) {
              const source = req.volume_content_source?.snapshot?.snapshot_id ?? req.volume_content_source?.volume?.volume_id ?? '';
              calls.push(`${node}:CreateVolume:${source}`);
              const wanted = req.accessibility_requirements?.requisite[0]?.segments[KEY];
              if (wanted !== undefined && wanted !== node) throw new Error(`asked for ${wanted} on ${node}`);
              return { volume: { volume_id: `${node}-${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [{ segments: { [KEY]: node } }] } };
            },
            async DeleteVolume() {
              return {};
            },
            async CreateSnapshot(req) {
              calls.push(`${node}:CreateSnapshot:${req.source_volume_id}`);
              return { snapshot: { snapshot_id: `${node}-snap-${req.name}`, source_volume_id: req.source_volume_id, size_bytes: 1024 ** 3, creation_time: { seconds: 1, nanos: 0 }, ready_to_use: true } };
            },
            async DeleteSnapshot(req) {
              calls.push(`${node}:DeleteSnapshot:${req.snapshot_id}`);
              return {};
            },
          },
        }),
      );
      store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { [KEY]: node, 'kubernetes.io/hostname': node } } });
      store.create<CSINode>({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSINode',
        metadata: { name: node, annotations: { [NODE_ENDPOINTS_ANNOTATION]: JSON.stringify({ [DRIVER]: drivers.get(node)?.endpoint }) } },
        spec: { drivers: [{ name: DRIVER, nodeID: node, topologyKeys: [KEY] }] },
      });
    }
    // The CSIDriver's own endpoint is n1's: only per-node routing reaches n2.
    const csiDriver = csiDriverObject(DRIVER, drivers.get('n1')?.endpoint ?? '');
    csiDriver.metadata.annotations = { ...csiDriver.metadata.annotations, [CONTROLLER_PER_NODE_ANNOTATION]: 'true' };
    store.create(csiDriver);
    store.create(storageClass('sc', DRIVER));
    store.create({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass', metadata: { name: 'cls' }, driver: DRIVER, deletionPolicy: 'Delete' });
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, csiTimeoutMs: 2_000, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
    for (const d of drivers.values()) await d.stop();
    drivers.clear();
  });

  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const bound = (name: string) => waitFor(() => getClaim(name)?.status?.phase === 'Bound' && getClaim(name), `${name} Bound`);
  const nodeOf = (pvc: PersistentVolumeClaim) =>
    (store.get('persistentvolumes', undefined, pvc.spec.volumeName ?? '') as PersistentVolume | undefined)?.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values?.[0];

  it('snapshots, restores, clones and deletes on the node holding the source', async () => {
    // The source lives on n2 (the scheduler picked it).
    store.create(claim('data', { storageClassName: 'sc' }, { annotations: { [ANN_SELECTED_NODE]: 'n2' } }));
    const data = await bound('data');
    assert.equal(nodeOf(data), 'n2');
    const handle = `n2-pvc-${data.metadata.uid}`;

    store.create<VolumeSnapshot>({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 's', namespace: 'default' }, spec: { source: { persistentVolumeClaimName: 'data' }, volumeSnapshotClassName: 'cls' } });
    const vs = await waitFor(() => {
      const v = store.get('volumesnapshots', 'default', 's') as VolumeSnapshot | undefined;
      return v?.status?.readyToUse === true && v;
    }, 's ready');
    const content = store.get('volumesnapshotcontents', undefined, vs.status?.boundVolumeSnapshotContentName ?? '') as VolumeSnapshotContent;
    assert.equal(content.metadata.annotations?.[ANN_SNAPSHOT_NODE], 'n2');
    assert.ok(calls.includes(`n2:CreateSnapshot:${handle}`), calls.join(' '));

    // Immediate binding, no selected node: still made on n2.
    const snapshotId = content.status?.snapshotHandle ?? '';
    store.create(claim('restored', { storageClassName: 'sc', dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 's' } }));
    store.create(claim('cloned', { storageClassName: 'sc', dataSource: { kind: 'PersistentVolumeClaim', name: 'data' } }));
    const [restored, cloned] = await Promise.all([bound('restored'), bound('cloned')]);
    assert.equal(nodeOf(restored), 'n2');
    assert.equal(nodeOf(cloned), 'n2');
    assert.ok(calls.includes(`n2:CreateVolume:${snapshotId}`), calls.join(' '));
    assert.ok(calls.includes(`n2:CreateVolume:${handle}`), calls.join(' '));

    // A WaitForFirstConsumer restore whose selected node is the other one is refused, saying why.
    store.create(storageClass('late', DRIVER, { volumeBindingMode: 'WaitForFirstConsumer' }));
    store.create(claim('wrong', { storageClassName: 'late', dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 's' } }, { annotations: { [ANN_SELECTED_NODE]: 'n1' } }));
    await waitFor(
      () => store.list('events', { fieldSelector: 'involvedObject.name=wrong' }).items.some((e) => /data source of this claim is on node "n2".*not on the selected node "n1"/.test(e.message ?? '')),
      'a ProvisioningFailed naming the source node',
    );

    // (A Pending claim restoring from it would hold the snapshot: that one goes first.)
    store.delete('persistentvolumeclaims', 'default', 'wrong');
    store.delete('volumesnapshots', 'default', 's');
    await waitFor(() => calls.includes(`n2:DeleteSnapshot:${snapshotId}`), 'DeleteSnapshot on n2');
    assert.ok(!calls.some((c) => c.startsWith('n1:') && c.includes('Snapshot')), calls.join(' '));
  });
});
