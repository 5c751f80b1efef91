// Inter-pod anti-affinity and topology spread as a user of `stowage up --nodes 3` sees them, through
// YAML, the real kubectl and the stowage CLI: a Deployment of three replicas with required
// podAntiAffinity on kubernetes.io/hostname runs one replica per node; scaled to four, the fourth
// stays Pending with kube-scheduler's "0/3 nodes are available: 3 node(s) didn't match pod
// anti-affinity rules." on its PodScheduled condition and in `kubectl describe`; and a Deployment with
// topologySpreadConstraints maxSkew 1 on the hostname evens its group out around two pods of the
// group placed by hand on the least allocated node. Everything `up` started is stopped and nothing stays mounted or
// attached.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { needsRoot } from '../support/driver-harness.js';
import { killProcessesUnder, leftovers, releaseAllUnder } from '../support/host-state.js';
import { type Ran, runCaptured } from '../support/processes.js';
import { BIN } from '../support/stowage-up.js';

const KUBECTL = '/usr/bin/kubectl';
const NODES = ['node-1', 'node-2', 'node-3'];
const CONTAINER = `      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]`;

const WEB = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: web}
            topologyKey: kubernetes.io/hostname
${CONTAINER}
`;

/** Two pods of the spread group placed by hand on node-1, and a pod taking a CPU on each other node. */
const pinned = (name: string, app: string, node: string, requests = '') => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  labels: {app: ${app}}
spec:
  nodeName: ${node}
${CONTAINER.replace(/^ {4}/gm, '')}${requests === '' ? '' : `\n    resources: {requests: {${requests}}}`}
`;
const EARLY = [pinned('early-1', 'spread', 'node-1'), pinned('early-2', 'spread', 'node-1'), pinned('busy-2', 'busy', 'node-2', 'cpu: "1"'), pinned('busy-3', 'busy', 'node-3', 'cpu: "1"')].join('---\n');

const SPREAD = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: spread
spec:
  replicas: 4
  selector:
    matchLabels: {app: spread}
  template:
    metadata:
      labels: {app: spread}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {app: spread}
${CONTAINER}
`;

describe('`stowage up --nodes 3`: pod anti-affinity and topology spread', { skip: needsRoot, timeout: 600_000 }, () => {
  let dir = '';
  let state = '';
  let up: ChildProcess | undefined;
  let log = '';
  const stowage = (...args: string[]): Promise<Ran> => runCaptured(process.execPath, [BIN, '--state-dir', state, ...args]);
  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await runCaptured(KUBECTL, ['--kubeconfig', join(state, 'kubeconfig'), ...args], { env: { HOME: dir } });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log.slice(-3000)}`);
      await sleep(250);
    }
  };
  const podsOf = async (app: string): Promise<Pod[]> => {
    const r = await stowage('get', 'pods', '-l', `app=${app}`, '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { items: Pod[] }).items;
  };
  const apply = async (name: string, yaml: string): Promise<string> => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, yaml);
    return kubectl('apply', '-f', file);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-affinity-'));
    state = join(dir, 'state');
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--nodes', '3', '--pool-size', '512Mi'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    await until('stowage up to start', async () => {
      if (up?.exitCode !== null) throw new Error(`stowage up exited:\n${log}`);
      return log.includes('stowage is up') ? true : undefined;
    });
  });

  after(async () => {
    if (dir === '') return;
    if (up && up.exitCode === null && up.signalCode === null) {
      for (const kind of ['deployments', 'replicasets']) await stowage('delete', kind, '--all', '--no-wait').catch(() => undefined);
      await stowage('delete', 'pods', '--all', '--no-wait').catch(() => undefined);
      await until('every pod to be gone', async () => {
        const r = await stowage('get', 'pods', '-o', 'name');
        return r.code === 0 && r.stdout.trim() === '' ? true : undefined;
      }, 60_000).catch(() => undefined);
      const exited = new Promise((resolve) => up?.once('exit', resolve));
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await exited;
      clearTimeout(timer);
    }
    await killProcessesUnder(dir);
    await releaseAllUnder(dir);
    for (const n of NODES) await releasePool(join(state, 'nodes', n, 'pool')).catch(() => undefined);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('three replicas with required anti-affinity run one per node; a fourth stays Pending in kube-scheduler\'s words', async () => {
    assert.equal(await apply('web', WEB), 'deployment.apps/web created\n');
    const placed = await until('three web replicas running', async () => {
      const pods = await podsOf('web');
      return pods.length === 3 && pods.every((p) => p.status?.phase === 'Running') ? pods.map((p) => p.spec.nodeName ?? '').sort() : undefined;
    });
    assert.deepEqual(placed, NODES);

    assert.equal(await kubectl('scale', 'deployment', 'web', '--replicas', '4'), 'deployment.apps/web scaled\n');
    const pending = await until('the fourth replica refused', async () => {
      const pods = await podsOf('web');
      return pods.find((p) => !p.spec.nodeName && p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False'));
    });
    const name = pending.metadata.name ?? '';
    const condition = pending.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(condition?.reason, 'Unschedulable');
    // Kubernetes appends its preemption verdict (" preemption: …") when a PostFilter plugin ran.
    assert.match(condition?.message ?? '', /^0\/3 nodes are available: 3 node\(s\) didn't match pod anti-affinity rules\.( preemption: .*)?$/);
    const described = await until('the FailedScheduling event', async () => {
      const out = await kubectl('describe', 'pod', name);
      return out.includes('FailedScheduling') ? out : undefined;
    });
    assert.match(described, /Status:\s+Pending/);
    assert.match(described, /Warning\s+FailedScheduling\s+.*default-scheduler\s+0\/3 nodes are available: 3 node\(s\) didn't match pod anti-affinity rules\./);
    const table = (await stowage('get', 'pods', name)).stdout;
    assert.match(table, new RegExp(`${name}\\s+0/1\\s+Pending`));
  });

  it('maxSkew 1 on the hostname evens the group out around pods placed by hand', async () => {
    // node-1 is the least allocated: without the constraint the replicas would go there first.
    assert.equal(await apply('early', EARLY), 'pod/early-1 created\npod/early-2 created\npod/busy-2 created\npod/busy-3 created\n');
    assert.equal(await apply('spread', SPREAD), 'deployment.apps/spread created\n');
    const perNode = await until('four spread replicas placed', async () => {
      const pods = await podsOf('spread');
      if (pods.length !== 6 || !pods.every((p) => p.spec.nodeName)) return undefined;
      const count: Record<string, number> = {};
      for (const p of pods) count[p.spec.nodeName ?? ''] = (count[p.spec.nodeName ?? ''] ?? 0) + 1;
      return count;
    });
    assert.deepEqual(perNode, { 'node-1': 2, 'node-2': 2, 'node-3': 2 });
    const replicas = (await podsOf('spread')).filter((p) => p.metadata.ownerReferences?.some((r) => r.kind === 'ReplicaSet'));
    assert.deepEqual(replicas.map((p) => p.spec.nodeName).sort(), ['node-2', 'node-2', 'node-3', 'node-3']);
  });
});
