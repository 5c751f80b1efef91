// Pool capacity as a user of `stowage up --pool-size 300Mi` sees it (issue 11, finding 4): ten 100Mi
// claims → the ones that fit are Bound, the rest stay Pending with a ProvisioningFailed event carrying
// the driver's RESOURCE_EXHAUSTED; a pod writing the bound volumes full gets EDQUOT, never ENOSPC;
// and with the pool nearly full the node reports DiskPressure as the kubelet words it. With two
// nodes and a WaitForFirstConsumer class, the scheduler places claims only where GetCapacity admits
// them, and a pod whose claim fits nowhere gets kube-scheduler's "did not have enough free storage".
// Whatever happens, the `up` process is stopped and nothing stays mounted or attached.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Event, Node, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { leftovers, releaseAllUnder } from '../support/host-state.js';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const NODE = 'cap-node';

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

function claimYaml(name: string): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${name}
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 100Mi
`;
}

describe('`stowage up --pool-size 300Mi`: claims beyond the pool stay Pending', () => {
  let dir: string;
  let up: ChildProcess | undefined;
  let upLog = '';
  let upExit: Promise<unknown> | undefined;
  const st = (args: string[], stdin?: string): Promise<Ran> =>
    runCaptured(process.execPath, [BIN, '--state-dir', dir, ...args], { cwd: ROOT, ...(stdin !== undefined ? { stdin } : {}) });
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await st([...args, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-upcap-'));
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--pool-size', '300Mi', '--node-name', NODE], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    upExit = new Promise((resolve) => up?.once('exit', resolve));
    let exited = false;
    void upExit.then(() => (exited = true));
    await until('stowage up to start', 90_000, async () => {
      if (exited) throw new Error(`stowage up exited early:\n${upLog}`);
      return upLog.includes('stowage is up') ? true : undefined;
    });
  });

  after(async () => {
    if (dir === undefined) return;
    await st(['delete', 'pod', 'filler', '--grace-period', '1']).catch(() => undefined);
    await until('the pod to go', 60_000, async () => ((await st(['get', 'pod', 'filler'])).code !== 0 ? true : undefined)).catch(() => undefined);
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await upExit;
      clearTimeout(timer);
    }
    await releaseAllUnder(dir);
    await releasePool(join(dir, 'nodes', NODE, 'pool')).catch(() => undefined);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('ten 100Mi claims: two Bound, eight Pending with ProvisioningFailed … ResourceExhausted; writing the two full never ENOSPCs; then DiskPressure', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `cap-${i}`);
    const applied = await st(['apply', '-f', '-'], names.map(claimYaml).join('---\n'));
    assert.equal(applied.code, 0, applied.stderr);

    // Every claim gets an answer: Bound, or a ProvisioningFailed event.
    const failed = (events: Event[], name: string) =>
      events.find((e) => e.involvedObject.name === name && e.reason === 'ProvisioningFailed');
    const { claims, events } = await until('every claim to be Bound or refused', 120_000, async () => {
      const claims = (await json<{ items: PersistentVolumeClaim[] }>(['get', 'pvc'])).items;
      const events = (await json<{ items: Event[] }>(['get', 'events'])).items;
      const settled = claims.length === 10 && claims.every((c) => c.status?.phase === 'Bound' || failed(events, c.metadata.name ?? ''));
      return settled ? { claims, events } : undefined;
    });
    const bound = claims.filter((c) => c.status?.phase === 'Bound').map((c) => c.metadata.name ?? '');
    const pending = claims.filter((c) => c.status?.phase === 'Pending').map((c) => c.metadata.name ?? '');
    // 300Mi of pool holds 219 MiB of data (measured), 216 MiB promised after the 1% headroom.
    assert.equal(bound.length, 2, `bound: ${bound.join(', ')}`);
    assert.equal(pending.length, 8);
    for (const name of pending) {
      const e = failed(events, name);
      assert.ok(e, `claim ${name} has a ProvisioningFailed event`);
      assert.equal(e.type, 'Warning');
      assert.match(e.message ?? '', /^failed to provision volume with StorageClass "local": rpc error: code = ResourceExhausted desc = not enough pool capacity: 104857600 bytes requested/);
    }

    // A pod writes both bound volumes past their size: each stops at its quota (EDQUOT).
    const pod = `apiVersion: v1
kind: Pod
metadata: {name: filler, namespace: default}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "for d in /a /b; do dd if=/dev/urandom of=$d/fill bs=1M count=120 conv=fsync 2>>/tmp-out || true; done; cat /tmp-out; trap 'exit 0' TERM; sleep 600 & wait"]
    volumeMounts: [{name: a, mountPath: /a}, {name: b, mountPath: /b}]
  volumes:
  - {name: a, persistentVolumeClaim: {claimName: ${bound[0]}}}
  - {name: b, persistentVolumeClaim: {claimName: ${bound[1]}}}
`;
    const created = await st(['apply', '-f', '-'], pod);
    assert.equal(created.code, 0, created.stderr);
    const logs = await until('both volumes written', 120_000, async () => {
      const r = await st(['logs', 'filler']);
      return (r.stdout.match(/records out/g) ?? []).length >= 2 ? r.stdout : undefined;
    });
    assert.doesNotMatch(logs, /No space left on device/, logs);
    assert.equal((logs.match(/Disk quota exceeded/g) ?? []).length, 2, logs);

    // 2 × ~100 MiB written of 219: less than 10% of the pool is available → DiskPressure.
    const condition = await until('DiskPressure on the node', 60_000, async () => {
      const node = await json<Node>(['get', 'node', NODE]);
      const c = node.status?.conditions?.find((x) => x.type === 'DiskPressure');
      return c?.status === 'True' ? c : undefined;
    });
    assert.equal(condition.reason, 'KubeletHasDiskPressure');
    assert.equal(condition.message, 'kubelet has disk pressure');
    const nodeEvents = (await json<{ items: Event[] }>(['get', 'events', '-A'])).items.filter((e) => e.involvedObject.kind === 'Node');
    assert.ok(
      nodeEvents.some((e) => e.reason === 'NodeHasDiskPressure' && e.message === `Node ${NODE} status is now: NodeHasDiskPressure`),
      JSON.stringify(nodeEvents.map((e) => [e.reason, e.message])),
    );
    const running = await json<Pod>(['get', 'pod', 'filler']);
    assert.equal(running.status?.phase, 'Running');
  });
});

describe('`stowage up --nodes 2 --pool-size 300Mi`: the scheduler places claims where they fit', () => {
  let dir: string;
  let up: ChildProcess | undefined;
  let upLog = '';
  let upExit: Promise<unknown> | undefined;
  const st = (args: string[], stdin?: string): Promise<Ran> =>
    runCaptured(process.execPath, [BIN, '--state-dir', dir, ...args], { cwd: ROOT, ...(stdin !== undefined ? { stdin } : {}) });
  const pods = Array.from({ length: 5 }, (_, i) => `wpod-${i}`);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-upcap2-'));
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--nodes', '2', '--pool-size', '300Mi'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    upExit = new Promise((resolve) => up?.once('exit', resolve));
    let exited = false;
    void upExit.then(() => (exited = true));
    await until('stowage up to start', 90_000, async () => {
      if (exited) throw new Error(`stowage up exited early:\n${upLog}`);
      return upLog.includes('stowage is up') ? true : undefined;
    });
  });

  after(async () => {
    if (dir === undefined) return;
    for (const p of pods) await st(['delete', 'pod', p, '--grace-period', '1']).catch(() => undefined);
    await until('the pods to go', 60_000, async () => ((await st(['get', 'pods', '-o', 'json'])).stdout.includes('wpod-') ? undefined : true)).catch(() => undefined);
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await upExit;
      clearTimeout(timer);
    }
    await releaseAllUnder(dir);
    for (const n of ['node-1', 'node-2']) await releasePool(join(dir, 'nodes', n, 'pool')).catch(() => undefined);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('five pods with a 100Mi WaitForFirstConsumer claim each: two per node run, the fifth is unschedulable for want of storage', async () => {
    const sc = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: wffc}
provisioner: local.csi.stowage.dev
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
`;
    assert.equal((await st(['apply', '-f', '-'], sc)).code, 0);
    const claimAndPod = (p: string) =>
      [
        claimYaml(`${p}-data`).replace('  accessModes: [ReadWriteOnce]', '  storageClassName: wffc\n  accessModes: [ReadWriteOnce]'),
        `apiVersion: v1
kind: Pod
metadata: {name: ${p}, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; sleep 600 & wait"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: ${p}-data}}
`,
      ].join('---\n');
    const listPods = async () => (JSON.parse((await st(['get', 'pods', '-o', 'json'])).stdout) as { items: Pod[] }).items;
    // One at a time, as users arrive: capacity is not reserved between placing a claim and making
    // its volume (kube-scheduler's race too), so pods applied at once could still meet a refusal.
    for (const p of pods.slice(0, 4)) {
      const applied = await st(['apply', '-f', '-'], claimAndPod(p));
      assert.equal(applied.code, 0, applied.stderr);
      await until(`${p} Running`, 90_000, async () => ((await listPods()).find((x) => x.metadata.name === p)?.status?.phase === 'Running' ? true : undefined));
    }
    assert.equal((await st(['apply', '-f', '-'], claimAndPod(pods[4]!))).code, 0);
    const { placed, waiting } = await until('one pod unschedulable', 90_000, async () => {
      const items = await listPods();
      const placed = items.filter((p) => p.status?.phase === 'Running');
      const waiting = items.filter((p) => p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False'));
      return placed.length === 4 && waiting.length === 1 ? { placed, waiting } : undefined;
    });
    const perNode = new Map<string, number>();
    for (const p of placed) perNode.set(p.spec.nodeName ?? '', (perNode.get(p.spec.nodeName ?? '') ?? 0) + 1);
    assert.deepEqual([...perNode.entries()].sort(), [['node-1', 2], ['node-2', 2]]);
    const condition = waiting[0]!.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(condition?.message, '0/2 nodes are available: 2 node(s) did not have enough free storage. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.');
    // Its claim was never sent to a node, so no CreateVolume was refused: no ProvisioningFailed.
    const events = (JSON.parse((await st(['get', 'events', '-o', 'json'])).stdout) as { items: Event[] }).items;
    assert.ok(!events.some((e) => e.reason === 'ProvisioningFailed'), 'nothing was provisioned where it did not fit');
  });
});
