// Admission as a user meets it through the real kubectl and `stowage up`, from YAML: a LimitRange
// fills a pod's missing requests and limits (and the pod's QoS class follows), a PriorityClass
// gives the pod its spec.priority, a ResourceQuota of requests.storage refuses the claim that
// would exceed it with Kubernetes' exact message, and kubectl's `get quota` and `describe quota`
// print what the resourcequota-controller counted.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { leftovers, releaseAllUnder } from '../support/host-state.js';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const KUBECTL = '/usr/bin/kubectl';
const NODE = 'admission-node';

const POLICY = `apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: team}
spec:
  limits:
  - type: Container
    default: {cpu: 200m, memory: 128Mi}
    defaultRequest: {cpu: 100m, memory: 64Mi}
    min: {cpu: 50m}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
preemptionPolicy: Never
description: team work that matters
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: storage, namespace: team}
spec:
  hard:
    requests.storage: 1Gi
    persistentvolumeclaims: "5"
`;

// Pods stay Pending on purpose (no node has the label): admission is what is tested here.
const POD = `apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: team}
spec:
  priorityClassName: high
  nodeSelector: {nowhere: "true"}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`;

// Claims of a class that does not exist stay Pending: nothing is provisioned.
const claim = (name: string, size: string): string => `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${name}, namespace: team}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: nowhere
  resources: {requests: {storage: ${size}}}
`;

function rows(table: string): string[][] {
  const lines = table.trimEnd().split('\n');
  const header = lines[0] ?? '';
  const starts = [0, ...[...header.matchAll(/ {3,}(?=\S)/g)].map((m) => (m.index ?? 0) + m[0].length)];
  return lines.map((line) => starts.map((start, i) => line.slice(start, starts[i + 1] ?? line.length).trim()));
}

describe('admission through kubectl and `stowage up`: LimitRange, PriorityClass, ResourceQuota', () => {
  let dir = '';
  let state = '';
  let up: ChildProcess | undefined;
  let upLog = '';
  const kubectl = (...args: string[]): Promise<Ran> => runCaptured(KUBECTL, ['--kubeconfig', join(state, 'kubeconfig'), ...args], { env: { HOME: dir } });
  const ok = async (...args: string[]): Promise<string> => {
    const r = await kubectl(...args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const stowage = async (...args: string[]): Promise<string> => {
    const r = await runCaptured(process.execPath, [BIN, '--state-dir', state, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const file = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const until = async (what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${upLog.slice(-3000)}`);
      await sleep(200);
    }
  };

  before(async () => {
    assert.ok((await runCaptured(KUBECTL, ['version', '--client'])).code === 0, `${KUBECTL} must be installed for this test`);
    dir = await mkdtemp(join(tmpdir(), 'stowage-kubectl-admission-'));
    state = join(dir, 'state');
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--pool-size', '256Mi', '--node-name', NODE], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    await until('stowage up to start', async () => {
      if (up?.exitCode !== null) throw new Error(`stowage up exited:\n${upLog}`);
      return upLog.includes('stowage is up');
    }, 90_000);
    assert.equal(
      await ok('apply', '-f', await file('policy.yaml', POLICY)),
      'namespace/team created\nlimitrange/defaults created\npriorityclass.scheduling.k8s.io/high created\nresourcequota/storage created\n',
    );
  });

  after(async () => {
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = new Promise((resolve) => up?.once('exit', resolve));
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await exited;
      clearTimeout(timer);
    }
    await releaseAllUnder(dir);
    await releasePool(join(state, 'nodes', NODE, 'pool')).catch(() => undefined);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('a pod without requests gets the LimitRange defaults, its priority from the class, and its QoS class', async () => {
    assert.equal(await ok('apply', '-f', await file('pod.yaml', POD)), 'pod/worker created\n');
    const pod = JSON.parse(await ok('get', 'pod', 'worker', '-n', 'team', '-o', 'json')) as {
      metadata: { annotations?: Record<string, string> };
      spec: { priority?: number; preemptionPolicy?: string; priorityClassName?: string; containers: { resources?: unknown }[] };
      status: { qosClass?: string };
    };
    assert.deepEqual(pod.spec.containers[0]?.resources, { limits: { cpu: '200m', memory: '128Mi' }, requests: { cpu: '100m', memory: '64Mi' } });
    assert.equal(pod.metadata.annotations?.['kubernetes.io/limit-ranger'], 'LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit for container main');
    assert.equal(pod.spec.priority, 1000);
    assert.equal(pod.spec.preemptionPolicy, 'Never');
    assert.equal(pod.status.qosClass, 'Burstable');
    // And as `-o yaml` shows it.
    const yaml = await ok('get', 'pod', 'worker', '-n', 'team', '-o', 'yaml');
    assert.match(yaml, /\n {4}resources:\n {6}limits:\n {8}cpu: 200m\n {8}memory: 128Mi\n {6}requests:\n {8}cpu: 100m\n {8}memory: 64Mi\n/);
    assert.match(yaml, /\n {2}priority: 1000\n/);
    assert.match(yaml, /\n {2}qosClass: Burstable\n/);
  });

  it('refuses pods as Kubernetes does: below the LimitRange minimum, or naming a class that does not exist', async () => {
    const low = await kubectl('apply', '-f', await file('low.yaml', POD.replace('worker', 'low').replace('command: [sleep, "3600"]', 'command: [sleep, "3600"], resources: {requests: {cpu: 10m}}')));
    assert.notEqual(low.code, 0);
    assert.match(low.stderr, /Error from server \(Forbidden\): error when creating ".*low\.yaml": pods "low" is forbidden: minimum cpu usage per Container is 50m, but request is 10m\n/);
    const unknown = await kubectl('apply', '-f', await file('unknown.yaml', POD.replace('worker', 'stray').replace('priorityClassName: high', 'priorityClassName: urgent')));
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /Error from server \(Forbidden\): error when creating ".*unknown\.yaml": pods "stray" is forbidden: no PriorityClass with name urgent was found\n/);
    const pinned = await kubectl('run', 'pinned', '-n', 'team', '--image', 'busybox', '--overrides', '{"spec":{"priority":7}}');
    assert.notEqual(pinned.code, 0);
    assert.match(pinned.stderr, /pods "pinned" is forbidden: the integer value of priority \(7\) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name/);
  });

  it('kubectl get priorityclass lists the system classes beside ours, which cannot be deleted', async () => {
    const table = rows(await ok('get', 'priorityclass'));
    assert.deepEqual(table[0], ['NAME', 'VALUE', 'GLOBAL-DEFAULT', 'AGE', 'PREEMPTIONPOLICY']);
    const byName = new Map(table.slice(1).map((r) => [r[0], r]));
    assert.deepEqual(byName.get('system-node-critical')?.slice(0, 3), ['system-node-critical', '2000001000', 'false']);
    assert.deepEqual(byName.get('system-cluster-critical')?.slice(0, 3), ['system-cluster-critical', '2000000000', 'false']);
    assert.deepEqual([byName.get('high')?.[1], byName.get('high')?.[4]], ['1000', 'Never']);
    const del = await kubectl('delete', 'priorityclass', 'system-node-critical');
    assert.notEqual(del.code, 0);
    assert.equal(del.stderr, 'Error from server (Forbidden): priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system priority class and cannot be deleted\n');
  });

  it('a quota of requests.storage refuses the claim that would exceed it, with the exact message', async () => {
    assert.equal(await ok('apply', '-f', await file('first.yaml', claim('first', '600Mi'))), 'persistentvolumeclaim/first created\n');
    const second = await kubectl('apply', '-f', await file('second.yaml', claim('second', '500Mi')));
    assert.notEqual(second.code, 0);
    assert.match(
      second.stderr,
      /Error from server \(Forbidden\): error when creating ".*second\.yaml": persistentvolumeclaims "second" is forbidden: exceeded quota: storage, requested: requests.storage=500Mi, used: requests.storage=600Mi, limited: requests.storage=1Gi\n/,
    );
    assert.equal((await kubectl('get', 'pvc', 'second', '-n', 'team')).code, 1, 'not created');
    assert.equal(await ok('apply', '-f', await file('third.yaml', claim('third', '424Mi'))), 'persistentvolumeclaim/third created\n', 'what still fits is admitted');
  });

  it('kubectl create quota (a protobuf body) makes a count quota that refuses the next ConfigMap', async () => {
    const existing = (await ok('get', 'configmaps', '-n', 'team', '-o', 'name')).split('\n').filter((l) => l !== '').length;
    assert.equal(await ok('create', 'quota', 'objects', '-n', 'team', `--hard=count/configmaps=${existing + 1}`), 'resourcequota/objects created\n');
    assert.equal(await ok('create', 'configmap', 'one', '-n', 'team'), 'configmap/one created\n');
    const two = await kubectl('create', 'configmap', 'two', '-n', 'team');
    assert.notEqual(two.code, 0);
    assert.match(
      two.stderr,
      new RegExp(`configmaps "two" is forbidden: exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=${existing + 1}, limited: count/configmaps=${existing + 1}\n$`),
    );
    await ok('delete', 'quota', 'objects', '-n', 'team');
  });

  it('kubectl get quota and describe quota show what the controller counted, as upstream prints them', async () => {
    await until('the quota to count both claims', async () => (await ok('get', 'quota', 'storage', '-n', 'team', '-o', 'jsonpath={.status.used.persistentvolumeclaims}')) === '2');
    const table = rows(await ok('get', 'quota', '-n', 'team'));
    assert.deepEqual(table[0], ['NAME', 'AGE', 'REQUEST', 'LIMIT']);
    assert.deepEqual([table[1]?.[0], table[1]?.[2], table[1]?.[3]], ['storage', 'persistentvolumeclaims: 2/5, requests.storage: 1Gi/1Gi', '']);
    const ours = rows(await stowage('get', 'quota', '-n', 'team'));
    assert.deepEqual(ours[1]?.[2], table[1]?.[2], 'stowage get prints the same cells');
    const described = await ok('describe', 'quota', 'storage', '-n', 'team');
    assert.equal(await stowage('describe', 'quota', 'storage', '-n', 'team'), described, 'stowage describe prints what kubectl prints');
    assert.match(await ok('explain', 'resourcequota.spec.hard'), /KIND: +ResourceQuota[\s\S]*FIELD: +hard <map\[string\][^>]*>[\s\S]*requests\.storage: 100Gi/);
    assert.equal(
      described,
      [
        'Name:                   storage',
        'Namespace:              team',
        'Resource                Used  Hard',
        '--------                ----  ----',
        'persistentvolumeclaims  2     5',
        'requests.storage        1Gi   1Gi',
        '',
      ].join('\n'),
    );
  });

  it('a Deployment under a pod quota gets what fits, and its ReplicaSet says why not the rest', async () => {
    assert.equal(await ok('create', 'quota', 'pods', '-n', 'team', '--hard=pods=3'), 'resourcequota/pods created\n');
    const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {nowhere: "true"}
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
`;
    assert.equal(await ok('apply', '-f', await file('web.yaml', deployment)), 'deployment.apps/web created\n');
    const events = async (): Promise<string> => ok('get', 'events', '-n', 'team', '--field-selector', 'reason=FailedCreate', '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}');
    await until('a FailedCreate event', async () => (await events()).includes('exceeded quota'));
    assert.match(await events(), /Error creating: pods "web-[a-z0-9]+-[a-z0-9]+" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=3, limited: pods=3/);
    assert.equal((await ok('get', 'pods', '-n', 'team', '-l', 'app=web', '-o', 'name')).trim().split('\n').length, 2, 'the worker pod and two of web fill the quota of 3');
    await until('the ReplicaFailure condition', async () => (await ok('get', 'rs', '-n', 'team', '-l', 'app=web', '-o', 'jsonpath={.items[0].status.conditions[0].reason}')) === 'FailedCreate');
  });
});
