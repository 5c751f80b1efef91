// `stowage down` on a real `stowage up` with two nodes: pods whose PID 1 ignores SIGTERM are stopped
// within their grace period, every volume is unpublished and unstaged through the driver, the
// drivers stop and the pools are released — nothing of the state directory stays mounted, attached
// or running; a second `up` on the same directory resumes the pods with their data; `down --purge`
// then removes the volumes and the directory.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { killProcessesUnder, leftovers, processesUnder, releaseAllUnder, settledLeftovers } from '../support/host-state.js';
import { runCaptured } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');

// Two claims on two nodes' pools; the pods' PID 1 ignores SIGTERM, so only the grace period's SIGKILL stops them.
const MANIFESTS = ['a', 'b']
  .map(
    (n) => `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-${n}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 32Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: keeper-${n}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "trap '' TERM; date +%s%N >> /data/starts; while true; do sleep 1; done"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data-${n}}}]
`,
  )
  .join('---\n');

describe('stowage down', { skip: needsRoot, timeout: 600_000 }, () => {
  let dir = '';
  let state = '';
  let up: ChildProcess | undefined;
  let upLog = '';

  const stowage = (...args: string[]) => runCaptured(process.execPath, [BIN, '--state-dir', state, ...args]);
  const ok = async (...args: string[]): Promise<string> => {
    const r = await stowage(...args);
    assert.equal(r.code, 0, `stowage ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const until = async (what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${upLog.slice(-3000)}`);
      await sleep(250);
    }
  };
  const startUp = async (): Promise<void> => {
    upLog = '';
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--nodes', '2', '--pool-size', '512Mi', '--listen', `unix://${join(state, 'api.sock')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    await until('stowage up to start', async () => {
      if (up?.exitCode !== null) throw new Error(`stowage up exited:\n${upLog}`);
      return upLog.includes('stowage is up');
    });
  };
  const podJson = async (pod: string) => JSON.parse((await ok('get', 'pod', pod, '-o', 'json')) || '{}') as { status?: { phase?: string }; spec?: { nodeName?: string } };
  const phase = async (pod: string) => (await podJson(pod)).status?.phase;
  const starts = async (pod: string) => (await ok('exec', pod, '--', 'cat', '/data/starts')).trim().split('\n').length;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-down-'));
    state = join(dir, 'state');
    await startUp();
  });

  after(async () => {
    if (up && up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
    await killProcessesUnder(dir);
    await releaseAllUnder(dir);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('stops up, the pods (SIGKILL after their grace period) and every mount; up resumes them with their data', async () => {
    const file = join(dir, 'keepers.yaml');
    await writeFile(file, MANIFESTS);
    await ok('apply', '-f', file);
    await until('both pods to run', async () => (await phase('keeper-a')) === 'Running' && (await phase('keeper-b')) === 'Running');
    await until('both pods to write', async () => (await stowage('exec', 'keeper-a', '--', 'cat', '/data/starts')).code === 0 && (await stowage('exec', 'keeper-b', '--', 'cat', '/data/starts')).code === 0);
    assert.ok(leftovers(state).length > 0, 'volumes and pools are mounted while up runs');

    const began = Date.now();
    const down = await stowage('down');
    const took = Date.now() - began;
    assert.equal(down.code, 0, `stowage down: ${down.stdout}${down.stderr}`);
    await until('up to exit', async () => up?.exitCode !== null || up?.signalCode !== null);
    assert.equal(up?.exitCode, 0, 'up stopped cleanly when asked');
    assert.match(down.stdout, /stopping stowage up \(pid \d+\)/);
    // Per node: "node N: P pod(s), C container(s) stopped, U volume publication(s) and S staging(s) undone".
    const totals = [...down.stdout.matchAll(/^node (node-\d): (\d+) pod\(s\), (\d+) container\(s\) stopped, (\d+) volume publication\(s\) and (\d+) staging\(s\) undone$/gm)].reduce(
      (t, m) => t.map((v, i) => v + Number(m[i + 2])),
      [0, 0, 0, 0],
    );
    assert.deepEqual(totals, [2, 2, 2, 2], `two pods, two containers, two volumes published and staged:\n${down.stdout}`);
    assert.equal(down.stdout.match(/^node node-\d: pool released$/gm)?.length, 2, 'both pools released');
    assert.match(down.stdout, /stowage is down\n$/);
    // Both pods ignored SIGTERM: each waited its 2 s grace period, at the same time, not one after the other.
    assert.ok(took >= 2_000, `the grace period was honoured (${took} ms)`);
    assert.deepEqual(await settledLeftovers(state), [], 'nothing of the state dir is mounted or attached');
    assert.deepEqual(processesUnder(state), [], 'no container, shim or driver of the state dir runs');
    // The objects stay.
    assert.ok(existsSync(join(state, 'store.db')));

    await startUp();
    await until('the pods to run again', async () => (await phase('keeper-a')) === 'Running' && (await phase('keeper-b')) === 'Running');
    await until('the pods to start again on their data', async () => (await starts('keeper-a')) === 2 && (await starts('keeper-b')) === 2);
  });

  it('--purge also deletes the volumes and the state directory', async () => {
    const down = await stowage('down', '--purge', '--grace-period', '0');
    assert.equal(down.code, 0, `stowage down --purge: ${down.stdout}${down.stderr}`);
    await until('up to exit', async () => up?.exitCode !== null || up?.signalCode !== null);
    assert.match(down.stdout, new RegExp(`removed ${state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`));
    assert.equal(existsSync(state), false, 'the state directory is gone');
    assert.deepEqual(await settledLeftovers(dir), []);
    assert.deepEqual(processesUnder(dir), []);
    const again = await stowage('down');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /holds no stowage state/);
  });
});
