// StatefulSets end to end through `stowage up`, YAML, the stowage CLI and the real kubectl, on
// real mounts of the local backend: three replicas come up in order with a Bound claim each; a
// file written by pod 1 survives `delete pod web-1` (the recreated pod reads it); scaling to 1
// keeps the claims under Retain and deletes them under whenScaled: Delete; kubectl lists the set
// with kubectl's columns, scales it through the scale subresource, waits on `rollout status`, and
// `delete --cascade=orphan` leaves the pods running (a set made again adopts them). And on two nodes, a deleted replica is made
// again on the node its node-local volume lives on.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StatefulSet } from '../../src/control/api/types/apps.js';
import type { PersistentVolume, Pod } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { CLASS, type NodeCluster, podNamed, startNodeCluster, until } from '../support/node-cluster.js';
import { startUp, type Up } from '../support/stowage-up.js';

function statefulSet(name: string, whenScaled: 'Retain' | 'Delete', replicas = 3): string {
  return `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  persistentVolumeClaimRetentionPolicy:
    whenScaled: ${whenScaled}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "trap 'exit 0' TERM; date +%s%N > /data/started; while true; do sleep 0.2; done"]
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 32Mi
`;
}

/** The cells of a table line (columns are separated by at least three spaces). */
function rows(table: string): string[][] {
  return table
    .trimEnd()
    .split('\n')
    .map((l) => l.split(/ {3,}/));
}

describe('StatefulSets with volumeClaimTemplates on the local backend', { skip: needsRoot, timeout: 600_000 }, () => {
  let up: Up;

  before(async () => {
    up = await startUp('stowage-sts-', 'sts-node');
  });

  after(async () => {
    await up?.cleanup();
  });

  const podPhase = (name: string): Promise<string> => up.field('pod', name, '.status.phase');
  const claimPhase = (name: string): Promise<string> => up.field('pvc', name, '.status.phase');
  const ready = (name: string): Promise<boolean> => up.field('sts', name, '.status.readyReplicas').then((n) => n !== '' && n === '3');
  const exists = async (kind: string, name: string): Promise<boolean> => (await up.stowage('get', kind, name)).code === 0;

  it('starts three pods in order, each with its own Bound claim, and prints kubectl\'s columns', async () => {
    const file = join(up.dir, 'web.yaml');
    await writeFile(file, statefulSet('web', 'Retain'));
    assert.equal(await up.ok('apply', '-f', file), 'statefulset.apps/web created\n');
    await up.until('web to have 3 ready replicas', () => ready('web'), 180_000);
    for (const i of [0, 1, 2]) {
      assert.equal(await claimPhase(`data-web-${i}`), 'Bound', `claim data-web-${i}`);
      assert.equal(await podPhase(`web-${i}`), 'Running', `pod web-${i}`);
      assert.equal(await up.field('pod', `web-${i}`, '.spec.volumes[0].persistentVolumeClaim.claimName'), `data-web-${i}`);
      assert.equal(await up.field('pvc', `data-web-${i}`, '.metadata.labels.app'), 'web', 'the claim carries the selector\'s labels');
      assert.equal(await up.field('pod', `web-${i}`, '.metadata.ownerReferences[0].kind'), 'StatefulSet');
    }
    // OrderedReady: each pod started after the one before it was Running and Ready.
    const started = await Promise.all([0, 1, 2].map(async (i) => BigInt((await up.ok('exec', `web-${i}`, '--', 'cat', '/data/started')).trim())));
    assert.ok(started[0]! < started[1]! && started[1]! < started[2]!, `started in order: ${started.join(' < ')}`);
    const created = await Promise.all([0, 1, 2].map((i) => up.field('pod', `web-${i}`, '.metadata.creationTimestamp')));
    assert.deepEqual([...created].sort(), created, 'created in ordinal order');

    const [header, row] = rows(await up.ok('get', 'sts', 'web'));
    assert.deepEqual(header, ['NAME', 'READY', 'AGE']);
    assert.deepEqual(row?.slice(0, 2), ['web', '3/3']);
    const kubectl = await up.kubectl('get', 'sts');
    assert.equal(kubectl.code, 0, kubectl.stderr);
    assert.deepEqual(rows(kubectl.stdout).map((r) => r.slice(0, 2)), [['NAME', 'READY'], ['web', '3/3']]);
  });

  it('recreates a deleted pod under the same name with the same claim, and its data survives', async () => {
    await up.ok('exec', 'web-1', '--', 'sh', '-c', 'echo kept > /data/note');
    const uid = await up.field('pod', 'web-1', '.metadata.uid');
    await up.ok('delete', 'pod', 'web-1');
    await up.until('web-1 to come back', async () => {
      const now = await up.field('pod', 'web-1', '.metadata.uid');
      return now !== '' && now !== uid && (await podPhase('web-1')) === 'Running';
    });
    assert.equal(await up.field('pod', 'web-1', '.spec.volumes[0].persistentVolumeClaim.claimName'), 'data-web-1');
    assert.equal(await up.ok('exec', 'web-1', '--', 'cat', '/data/note'), 'kept\n');
  });

  it('kubectl scales the set to 1 through the scale subresource; under Retain the claims stay', async () => {
    const scaled = await up.kubectl('scale', 'sts', 'web', '--replicas=1');
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.equal(scaled.stdout, 'statefulset.apps/web scaled\n');
    await up.until('web-2 and web-1 to be gone', async () => !(await exists('pod', 'web-2')) && !(await exists('pod', 'web-1')));
    for (const i of [0, 1, 2]) assert.equal(await claimPhase(`data-web-${i}`), 'Bound', `claim data-web-${i} kept`);
    const status = await up.kubectl('rollout', 'status', 'sts/web', '--timeout=60s');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /partitioned roll out complete|roll out complete/);
    // Back to 2: web-1 returns to its old claim and reads what it wrote before.
    const back = await up.kubectl('scale', 'sts', 'web', '--replicas=2');
    assert.equal(back.code, 0, back.stderr);
    await up.until('web-1 to run again', async () => (await podPhase('web-1')) === 'Running');
    assert.equal(await up.ok('exec', 'web-1', '--', 'cat', '/data/note'), 'kept\n');
  });

  it('under whenScaled: Delete, scaling down deletes the condemned pods\' claims', async () => {
    const file = join(up.dir, 'db.yaml');
    await writeFile(file, statefulSet('db', 'Delete', 2));
    await up.ok('apply', '-f', file);
    await up.until('db-1 to run', async () => (await podPhase('db-1')) === 'Running', 180_000);
    const r = await up.kubectl('scale', 'sts', 'db', '--replicas=1');
    assert.equal(r.code, 0, r.stderr);
    await up.until('claim data-db-1 to be deleted', async () => !(await exists('pvc', 'data-db-1')));
    assert.equal(await claimPhase('data-db-0'), 'Bound', 'the claim of the pod that stays is kept');
  });

  it('delete --cascade=orphan keeps the pods, a new set adopts them; a background delete takes them', async () => {
    const orphan = await up.kubectl('delete', 'sts', 'db', '--cascade=orphan');
    assert.equal(orphan.code, 0, orphan.stderr);
    await up.until('db to be gone', async () => !(await exists('sts', 'db')));
    assert.equal(await podPhase('db-0'), 'Running', 'the orphaned pod keeps running');
    assert.equal(await up.field('pod', 'db-0', '.metadata.ownerReferences'), '', 'and has no owner any more');
    // The set made again adopts the pod it left behind instead of replacing it.
    const uid = await up.field('pod', 'db-0', '.metadata.uid');
    await up.ok('apply', '-f', join(up.dir, 'db.yaml'));
    await up.until('db-0 to be adopted', async () => (await up.field('pod', 'db-0', '.metadata.ownerReferences[0].kind')) === 'StatefulSet');
    assert.equal(await up.field('pod', 'db-0', '.metadata.uid'), uid, 'the same pod, not a new one');
    await up.until('db-1 to run again', async () => (await podPhase('db-1')) === 'Running');
    await up.ok('delete', 'sts', 'db');
    await up.until('db\'s pods to go with it', async () => !(await exists('pod', 'db-0')) && !(await exists('pod', 'db-1')));

    await up.ok('delete', 'sts', 'web');
    await up.until('web\'s pods to be gone', async () => !(await exists('pod', 'web-0')) && !(await exists('pod', 'web-1')));
    assert.equal(await claimPhase('data-web-0'), 'Bound', 'whenDeleted: Retain keeps the claims');
  });
});

describe('a StatefulSet replica on two nodes', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-a');
    await cluster.addNode('node-b');
  });

  after(async () => {
    await cluster?.cleanup();
  });

  it('comes back on the node of its local volume after its pod is deleted', async () => {
    const { plane } = cluster;
    const set: StatefulSet = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'pinned', namespace: 'default' },
      spec: {
        replicas: 2,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: { app: 'pinned' } },
        template: {
          metadata: { labels: { app: 'pinned' } },
          spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.2; done"], volumeMounts: [{ name: 'data', mountPath: '/data' }] }] },
        },
        volumeClaimTemplates: [{ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: '32Mi' } } } }],
      },
    };
    plane.store.create(set);
    const running = (name: string): Promise<Pod> => until(() => {
      const pod = podNamed(plane, name);
      return pod?.status?.phase === 'Running' ? pod : undefined;
    }, `${name} to run`);
    const homeOf = (ordinal: number): string | undefined => {
      const pvName = plane.store.get('persistentvolumeclaims', 'default', `data-pinned-${ordinal}`)?.spec.volumeName ?? '';
      const pv = plane.store.get('persistentvolumes', undefined, pvName) as PersistentVolume | undefined;
      return pv?.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values?.[0];
    };
    for (const i of [0, 1]) {
      const pod = await running(`pinned-${i}`);
      assert.equal(pod.spec.nodeName, homeOf(i), `pinned-${i} runs where its volume is`);
    }
    for (const i of [0, 1]) {
      const before = podNamed(plane, `pinned-${i}`);
      plane.store.delete('pods', 'default', `pinned-${i}`);
      const again = await until(() => {
        const pod = podNamed(plane, `pinned-${i}`);
        return pod !== undefined && pod.metadata.uid !== before?.metadata.uid && pod.status?.phase === 'Running' ? pod : undefined;
      }, `pinned-${i} to be made again`);
      assert.equal(again.spec.nodeName, homeOf(i), `the new pinned-${i} is back on its volume's node`);
    }
    plane.store.delete('statefulsets', 'default', 'pinned');
    await until(() => podNamed(plane, 'pinned-0') === undefined && podNamed(plane, 'pinned-1') === undefined, 'the set\'s pods to go');
  });
});
