// Deployments and ReplicaSets end to end through `stowage up`: seed 004's Deployment YAML applies
// unchanged, its ReplicaSet makes one pod and that pod's claim is published on the node (the
// container itself cannot start: the seed gives nginx no command and images are not pulled); a
// multi-document file with a Service applies everything else and exits non-zero with kubectl's
// words, through both stowage and the real kubectl; a rolling update makes a new ReplicaSet
// (pod-template-hash) and `kubectl rollout status` waits for it; kubectl prints the columns. Also a
// Job that writes into a claim runs to Complete (`kubectl wait`), and a DaemonSet puts one pod on
// the node.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mountAt } from '../support/host-state.js';
import { needsRoot } from '../support/driver-harness.js';
import { SEEDS, startUp, type Up } from '../support/stowage-up.js';

const seed = (file: string): string => readFileSync(join(SEEDS, file), 'utf8');

function rows(table: string): string[][] {
  return table
    .trimEnd()
    .split('\n')
    .map((l) => l.split(/ {3,}/));
}

const WEB = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox:1
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
`;

describe('Deployments, ReplicaSets, Jobs and DaemonSets', { skip: needsRoot, timeout: 600_000 }, () => {
  let up: Up;

  before(async () => {
    // Seed 004's claim asks for 20Gi: a sparse pool larger than that.
    up = await startUp('stowage-deploy-', 'deploy-node', '24Gi');
  });

  after(async () => {
    await up?.cleanup();
  });

  it('applies seed 004\'s claim, Service and Deployment in one file: the Service is refused in kubectl\'s words, the rest applied, exit 1', async () => {
    const file = join(up.dir, 'disk.yaml');
    await writeFile(file, [seed('004-disk-pvc.yaml'), seed('004-disk-attacher-service.yaml'), seed('004-disk-deployment.yaml')].join('---\n'));
    const r = await up.stowage('apply', '-f', file);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, 'persistentvolumeclaim/disk-pvc created\ndeployment.apps/deployment-disk created\n');
    assert.equal(
      r.stderr,
      `error: resource mapping not found for name: "csi-disk-attacher" namespace: "" from "${file}": no matches for kind "Service" in version "v1"\nensure CRDs are installed first\n`,
    );
    // The real kubectl gets the same refusal from this server's discovery, and applies the rest too.
    const k = await up.kubectl('apply', '-f', file);
    assert.equal(k.code, 1);
    assert.equal(k.stdout, 'persistentvolumeclaim/disk-pvc unchanged\ndeployment.apps/deployment-disk unchanged\n');
    assert.equal(
      k.stderr,
      `error: resource mapping not found for name: "csi-disk-attacher" namespace: "" from "${file}": no matches for kind "Service" in version "v1"\nensure CRDs are installed first\n`,
    );
  });

  it('runs seed 004\'s Deployment: one ReplicaSet, one pod, and the pod\'s claim is mounted on the node', async () => {
    await up.until('the claim to bind', async () => (await up.field('pvc', 'disk-pvc', '.status.phase')) === 'Bound');
    let pod = '';
    await up.until('the deployment\'s pod', async () => {
      const names = (await up.ok('get', 'pods', '-o', 'name')).trim().split('\n').filter((n) => n.startsWith('pod/deployment-disk-'));
      pod = names[0]?.slice('pod/'.length) ?? '';
      return pod !== '' && (await up.field('pod', pod, '.spec.nodeName')) !== '';
    });
    const rsName = await up.field('pod', pod, '.metadata.ownerReferences[0].name');
    const hash = await up.field('pod', pod, '.metadata.labels.pod-template-hash');
    assert.equal(rsName, `deployment-disk-${hash}`, 'the pod belongs to the ReplicaSet named after its template hash');
    assert.equal(await up.field('rs', rsName, '.metadata.ownerReferences[0].kind'), 'Deployment');
    assert.equal(JSON.parse(await up.field('rs', rsName, '.metadata.annotations'))['deployment.kubernetes.io/revision'], '1');
    const uid = await up.field('pod', pod, '.metadata.uid');
    const pv = await up.field('pvc', 'disk-pvc', '.spec.volumeName');
    const target = join(up.state, 'nodes', up.node, 'pods', uid, 'volumes/kubernetes.io~csi', pv, 'mount');
    await up.until('the claim to be published into the pod', async () => mountAt(target) !== undefined);
    assert.ok(existsSync(target));
    // The seed's nginx has no command: the runtime says so rather than pretending to run it.
    await up.until('the container to wait with a reason', async () => (await up.field('pod', pod, '.status.containerStatuses[0].state.waiting.reason')) === 'CreateContainerError');
    const [header, row] = rows(await up.ok('get', 'deploy', 'deployment-disk'));
    assert.deepEqual(header, ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']);
    assert.deepEqual(row?.slice(0, 4), ['deployment-disk', '0/1', '1', '0']);
    await up.ok('delete', 'deploy', 'deployment-disk');
    await up.until('the pod to go with its deployment', async () => (await up.stowage('get', 'pod', pod)).code !== 0);
  });

  it('rolls a Deployment to a new template with maxSurge 1, maxUnavailable 0; kubectl rollout status waits for it', async () => {
    const file = join(up.dir, 'web.yaml');
    await writeFile(file, WEB);
    await up.ok('apply', '-f', file);
    const first = await up.kubectl('rollout', 'status', 'deploy/web', '--timeout=90s');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /deployment "web" successfully rolled out\n$/);
    const oldRs = (await up.ok('get', 'rs', '-o', 'name')).trim();
    assert.match(oldRs, /^replicaset\.apps\/web-[a-z0-9]+$/);

    const set = await up.kubectl('set', 'image', 'deploy/web', 'main=busybox:2');
    assert.equal(set.code, 0, set.stderr);
    const second = await up.kubectl('rollout', 'status', 'deploy/web', '--timeout=90s');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /deployment "web" successfully rolled out\n$/);
    const sets = rows((await up.kubectl('get', 'rs')).stdout);
    assert.deepEqual(sets[0]?.slice(0, 4), ['NAME', 'DESIRED', 'CURRENT', 'READY']);
    const byName = new Map(sets.slice(1).map((r) => [r[0], r.slice(1, 4)]));
    assert.deepEqual(byName.get(oldRs.slice('replicaset.apps/'.length)), ['0', '0', '0'], 'the old set is scaled to zero');
    assert.equal([...byName.values()].filter((v) => v.join() === '2,2,2').length, 1, 'one new set with both pods');
    const deploy = rows((await up.kubectl('get', 'deploy', 'web')).stdout);
    assert.deepEqual(deploy[1]?.slice(0, 4), ['web', '2/2', '2', '2']);
    assert.match(await up.ok('get', 'events'), /ScalingReplicaSet\s+.*Scaled down replica set web-[a-z0-9]+ from 1 to 0/);
    // kubectl scale goes through the deployment's scale subresource; the new set follows.
    const scaled = await up.kubectl('scale', 'deploy', 'web', '--replicas=3');
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.equal(scaled.stdout, 'deployment.apps/web scaled\n');
    const third = await up.kubectl('rollout', 'status', 'deploy/web', '--timeout=90s');
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual(rows((await up.kubectl('get', 'deploy', 'web')).stdout)[1]?.slice(0, 4), ['web', '3/3', '3', '3']);
    // Foreground: kubectl returns once the deployment is gone, which is only after its sets and
    // their pods (blockOwnerDeletion) are.
    const gone = await up.kubectl('delete', 'deploy', 'web', '--cascade=foreground', '--timeout=90s');
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal(gone.stdout, 'deployment.apps "web" deleted\n');
    assert.doesNotMatch(await up.ok('get', 'pods', '-o', 'name'), /pod\/web-/, 'no pod of the deployment left');
    assert.doesNotMatch(await up.ok('get', 'rs', '-o', 'name'), /web-/, 'no ReplicaSet left');
  });

  it('runs a Job that writes into a claim to Complete; kubectl waits for the condition and prints its columns', async () => {
    const file = join(up.dir, 'job.yaml');
    await writeFile(
      file,
      `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: results}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 32Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: fill}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "echo run >> /data/runs"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: results}
`,
    );
    await up.ok('apply', '-f', file);
    const waited = await up.kubectl('wait', '--for=condition=complete', 'job/fill', '--timeout=90s');
    assert.equal(waited.code, 0, waited.stderr);
    assert.equal(waited.stdout, 'job.batch/fill condition met\n');
    const [header, row] = rows((await up.kubectl('get', 'job', 'fill')).stdout);
    assert.deepEqual(header, ['NAME', 'STATUS', 'COMPLETIONS', 'DURATION', 'AGE']);
    assert.deepEqual(row?.slice(0, 3), ['fill', 'Complete', '2/2']);
    assert.equal(await up.field('job', 'fill', '.status.succeeded'), '2');
    await up.ok('delete', 'job', 'fill');
    await up.until('the job\'s pods to go with it', async () => !(await up.ok('get', 'pods', '-o', 'name')).includes('pod/fill-'));
  });

  it('puts one DaemonSet pod on the node, bound there by the scheduler', async () => {
    const file = join(up.dir, 'ds.yaml');
    await writeFile(
      file,
      `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
`,
    );
    await up.ok('apply', '-f', file);
    await up.until('the daemon pod to run', async () => (await up.field('ds', 'agent', '.status.numberReady')) === '1');
    const [header, row] = rows((await up.kubectl('get', 'ds', 'agent')).stdout);
    assert.deepEqual(header, ['NAME', 'DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'NODE SELECTOR', 'AGE']);
    assert.deepEqual(row?.slice(0, 7), ['agent', '1', '1', '1', '1', '1', '<none>']);
    const pod = (await up.ok('get', 'pods', '-o', 'name')).trim().split('\n').find((n) => n.startsWith('pod/agent-'))?.slice('pod/'.length) ?? '';
    assert.equal(await up.field('pod', pod, '.spec.nodeName'), up.node);
    await up.ok('delete', 'ds', 'agent');
    await up.until('the daemon pod to go', async () => (await up.stowage('get', 'pod', pod)).code !== 0);
  });
});
