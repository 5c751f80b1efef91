// CSI ephemeral inline volumes (`csi:` in a pod spec), end to end through a node agent with real
// mounts: for a driver whose CSIDriver lists the Ephemeral lifecycle mode, the agent publishes the
// volume without staging, under the kubelet's generated handle and path, with the pod's attributes
// and (podInfoOnMount) the pod's identity and csi.storage.k8s.io/ephemeral "true"; the pod writes
// into it; deleting the pod unpublishes it. A driver that allows only Persistent volumes gets one
// FailedMount event in the kubelet's words, and no call. The drivers here are small test plugins
// (no shipped driver serves inline volumes; ceph-csi does not either) that bind a scratch directory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import type { CSIDriver } from '../../src/control/api/types/storage.js';
import { registerDriver } from '../../src/control/controllers/driver-registry.js';
import { type CsiServer, startCsiServer } from '../../src/csi/server.js';
import type { NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from '../../src/csi/types.js';
import { needsRoot } from '../support/driver-harness.js';
import { mountAt } from '../support/host-state.js';
import { deletePod, eventsFor, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';
import { quiet } from '../unit/control-controllers-helpers.js';

const INLINE = 'inline.csi.test';
const PERSISTENT_ONLY = 'persistent-only.csi.test';

describe('CSI ephemeral inline volumes', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;
  const servers: CsiServer[] = [];
  const publishes: NodePublishVolumeRequest[] = [];
  const unpublishes: NodeUnpublishVolumeRequest[] = [];

  /** A node plugin that serves inline volumes by binding a scratch directory per volume ID onto the target. */
  async function startPlugin(name: string): Promise<void> {
    const dir = join(cluster.dir, name);
    mkdirSync(dir, { recursive: true });
    const server = await startCsiServer({
      endpoint: `unix://${join(dir, 'csi.sock')}`,
      logger: quiet,
      shutdownGraceMs: 1000,
      identity: {
        async GetPluginInfo() {
          return { name, vendor_version: '0.0.1' };
        },
        async GetPluginCapabilities() {
          return { capabilities: [] };
        },
        async Probe() {
          return { ready: { value: true } };
        },
      },
      node: {
        async NodeGetInfo() {
          return { node_id: 'node-a', max_volumes_per_node: 0 };
        },
        async NodeGetCapabilities() {
          return { capabilities: [] };
        },
        async NodePublishVolume(req) {
          publishes.push(req);
          const scratch = join(dir, 'volumes', req.volume_id);
          mkdirSync(scratch, { recursive: true });
          mkdirSync(req.target_path, { recursive: true });
          if (mountAt(req.target_path) === undefined) execFileSync('mount', ['--bind', scratch, req.target_path]);
          return {};
        },
        async NodeUnpublishVolume(req) {
          unpublishes.push(req);
          if (mountAt(req.target_path) !== undefined) execFileSync('umount', [req.target_path]);
          if (existsSync(req.target_path)) rmdirSync(req.target_path);
          return {};
        },
      },
    });
    servers.push(server);
    await registerDriver(cluster.plane.store, { endpoint: server.address, nodeName: 'node-a' });
  }

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-a');
    const { store } = cluster.plane;
    // The drivers' CSIDriver objects, as their deployments ship them (registration keeps their spec).
    store.create<CSIDriver>({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: INLINE }, spec: { attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: ['Ephemeral'] } });
    store.create<CSIDriver>({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: PERSISTENT_ONLY }, spec: { attachRequired: false } });
    await startPlugin(INLINE);
    await startPlugin(PERSISTENT_ONLY);
  });

  after(async () => {
    await cluster?.cleanup().finally(() => Promise.all(servers.map((s) => s.stop())));
  });

  const inlinePod = (name: string, driver: string): Pod => {
    const pod = shellPod(name, 'echo inline > /scratch/note; while true; do sleep 0.2; done', { nodeName: 'node-a', mounts: [{ name: 'scratch', mountPath: '/scratch' }] });
    pod.spec.volumes = [{ name: 'scratch', csi: { driver, volumeAttributes: { color: 'blue', size: '10Mi' } } }];
    return pod;
  };

  it('publishes an inline volume with its attributes and the pod\'s identity, and unpublishes it with the pod', async () => {
    const { plane } = cluster;
    const created = plane.store.create(inlinePod('inline-user', INLINE));
    const uid = created.metadata.uid ?? '';
    await until(() => podNamed(plane, 'inline-user')?.status?.phase === 'Running', 'the pod to run');
    const handle = `csi-${createHash('sha256').update(`${uid}scratch`).digest('hex')}`;
    const req = publishes.find((p) => p.volume_id === handle);
    assert.ok(req, `NodePublishVolume with the kubelet's handle ${handle}`);
    assert.equal(req.staging_target_path, '', 'inline volumes are never staged');
    assert.equal(req.target_path, join(cluster.nodes.get('node-a')!.root, 'pods', uid, 'volumes/kubernetes.io~csi/scratch/mount'));
    assert.deepEqual(req.volume_context, {
      color: 'blue',
      size: '10Mi',
      'csi.storage.k8s.io/pod.name': 'inline-user',
      'csi.storage.k8s.io/pod.namespace': 'default',
      'csi.storage.k8s.io/pod.uid': uid,
      'csi.storage.k8s.io/serviceAccount.name': 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
    });
    assert.equal(req.volume_capability?.access_mode?.mode, 'SINGLE_NODE_WRITER');
    const scratch = join(cluster.dir, INLINE, 'volumes', handle, 'note');
    await until(() => existsSync(scratch), 'the pod to write into its inline volume');
    assert.equal(readFileSync(scratch, 'utf8'), 'inline\n');

    await deletePod(plane, 'inline-user');
    assert.deepEqual(
      unpublishes.filter((u) => u.volume_id === handle).map((u) => u.target_path),
      [req.target_path],
      'unpublished once, at the path it was published to',
    );
    assert.equal(mountAt(req.target_path), undefined);
  });

  it("refuses an inline volume of a driver that allows only persistent volumes, in the kubelet's words", async () => {
    const { plane } = cluster;
    plane.store.create(inlinePod('refused-user', PERSISTENT_ONLY));
    const events = await until(() => {
      const e = eventsFor(plane, 'refused-user').filter((x) => x.reason === 'FailedMount');
      return e.length > 0 ? e : undefined;
    }, 'a FailedMount event');
    assert.equal(events[0]?.message, `MountVolume.NewMounter initialization failed for volume "scratch" : volume mode "Ephemeral" not supported by driver ${PERSISTENT_ONLY} (only supports ["Persistent"])`);
    assert.equal(publishes.filter((p) => p.volume_context['csi.storage.k8s.io/pod.name'] === 'refused-user').length, 0, 'the driver was never called');
    await deletePod(plane, 'refused-user');
  });
});
