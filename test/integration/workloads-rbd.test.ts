// A StatefulSet of raw block rbd volumes on a real one-node Ceph cluster (`stowage ceph-dev`), the
// embedded node running the rbd driver: each replica gets its own claim from volumeClaimTemplates
// (Block mode), the image appears as a block device at devicePath in the container, the container
// writes to it with dd, and the pod recreated after its deletion reads the same bytes back from the
// same image. Scaling to one keeps the second claim (retention Retain); deleting the set and its
// claims removes the images.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { PersistentVolumeClaim, Pod, Secret } from '../../src/control/api/types/core.js';
import type { StatefulSet } from '../../src/control/api/types/apps.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { declareEmbeddedNode, EmbeddedNodes, nodeRoot } from '../../src/control/node/embedded-nodes.js';
import { PodRuntime } from '../../src/control/node/runtime/pod-runtime.js';
import { ExecRunner } from '../../src/driver/mount/exec.js';
import { useCephCluster } from '../support/ceph.js';
import { leftovers } from '../support/host-state.js';
import { podNamed, until } from '../support/node-cluster.js';

const ceph = useCephCluster();
const NODE = 'node-a';

describe('a StatefulSet of raw block rbd volumes', () => {
  let dir = '';
  let plane: ControlPlane;
  let nodes: EmbeddedNodes;
  let runtime: PodRuntime;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-sts-rbd-'));
    const cephConfig = join(dir, 'ceph-csi-config.json');
    await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
    const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
    plane = await startControlPlane({ stateDir: dir, logger, controllers: { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 20, maxDelayMs: 500 } });
    nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: 'rbd', cephConfig }, logLevel: 'warn', logger, agent: { pollMs: 200 } });
    declareEmbeddedNode(plane.store, NODE);
    nodes.watch();
    assert.ok(await nodes.ensure(NODE), `node ${NODE} started`);
    runtime = new PodRuntime({ rootDir: nodeRoot(dir, NODE), runner: new ExecRunner(logger), logger });
    plane.store.create<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'csi-rbd-secret', namespace: 'default' }, stringData: ceph.secrets });
    const secretParams = Object.fromEntries(
      ['provisioner', 'controller-expand', 'node-stage'].flatMap((p) => [
        [`csi.storage.k8s.io/${p}-secret-name`, 'csi-rbd-secret'],
        [`csi.storage.k8s.io/${p}-secret-namespace`, 'default'],
      ]),
    );
    plane.store.create<StorageClass>({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'csi-rbd-sc' },
      provisioner: 'rbd.csi.stowage.dev',
      parameters: { ...ceph.parameters, imageFeatures: 'layering', ...secretParams },
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
    });
  }, { timeout: 180_000 });

  after(async () => {
    await nodes?.stop();
    await plane?.stop();
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing stays mounted or attached under the state directory');
  }, { timeout: 120_000 });

  const claim = (name: string) => plane.store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
  const running = (name: string, notUid?: string) =>
    until(() => {
      const p = podNamed(plane, name) as Pod | undefined;
      return p?.status?.phase === 'Running' && p.metadata.uid !== notUid ? p : undefined;
    }, `pod ${name} to run`, 180_000);
  const log = (pod: Pod) => {
    const path = runtime.logPath(pod.metadata.uid ?? '', 'main');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  };

  it('gives each replica its own block image at devicePath, and a recreated pod reads its bytes back', { timeout: 600_000 }, async () => {
    const script = [
      'test -b /dev/xvda && echo "block device"',
      'echo "found: $(dd if=/dev/xvda bs=64 count=1 2>/dev/null | tr -d "\\000")"',
      'printf "written before" | dd of=/dev/xvda conv=notrunc 2>/dev/null && sync',
      'echo wrote',
      'while true; do sleep 0.2; done',
    ].join('; ');
    plane.store.create<StatefulSet>({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'blocks', namespace: 'default' },
      spec: {
        serviceName: 'blocks',
        replicas: 2,
        selector: { matchLabels: { app: 'blocks' } },
        template: {
          metadata: { labels: { app: 'blocks' } },
          spec: {
            terminationGracePeriodSeconds: 2,
            containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', `trap 'exit 0' TERM; ${script}`], volumeDevices: [{ name: 'disk', devicePath: '/dev/xvda' }] }],
          },
        },
        volumeClaimTemplates: [{ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'disk' }, spec: { accessModes: ['ReadWriteOnce'], volumeMode: 'Block', storageClassName: 'csi-rbd-sc', resources: { requests: { storage: '64Mi' } } } }],
      },
    });

    const first = await running('blocks-0');
    const second = await running('blocks-1');
    for (const name of ['disk-blocks-0', 'disk-blocks-1']) assert.equal(claim(name)?.status?.phase, 'Bound', `${name} is Bound`);
    assert.notEqual(claim('disk-blocks-0')?.spec.volumeName, claim('disk-blocks-1')?.spec.volumeName, 'one volume per replica');
    for (const p of [first, second]) await until(() => log(p).includes('wrote'), `${p.metadata.name} to write its device`, 60_000);
    assert.match(log(first), /^block device\nfound: \nwrote\n/, 'a fresh image reads as zeros');
    assert.equal((await ceph.images()).images.length, 2, 'two images in the pool');

    plane.store.delete('pods', 'default', 'blocks-0');
    const again = await running('blocks-0', first.metadata.uid);
    await until(() => log(again).includes('wrote'), 'the recreated pod to start', 60_000);
    assert.match(log(again), /^block device\nfound: written before\nwrote\n/, 'the recreated pod reads what its predecessor wrote');

    // Scale to one: the second pod goes, its claim stays (retention Retain, the default).
    const set = plane.store.get('statefulsets', 'default', 'blocks');
    assert.ok(set);
    plane.store.update({ ...set, spec: { ...set.spec, replicas: 1 } });
    await until(() => podNamed(plane, 'blocks-1') === undefined, 'blocks-1 to go', 120_000);
    assert.equal(claim('disk-blocks-1')?.status?.phase, 'Bound', 'the claim of a scaled-down replica is kept');

    // The set and its claims deleted: the images go (reclaim policy Delete).
    plane.store.delete('statefulsets', 'default', 'blocks');
    await until(() => podNamed(plane, 'blocks-0') === undefined, 'blocks-0 to go with its set', 120_000);
    for (const name of ['disk-blocks-0', 'disk-blocks-1']) plane.store.delete('persistentvolumeclaims', 'default', name);
    await until(async () => (await ceph.images()).images.length === 0, 'the images to be deleted', 120_000);
  });
});
