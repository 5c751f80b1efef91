// `stowage up` killed with SIGKILL while a pod runs: the container keeps running with its volume
// mounted, and a restarted `up` adopts both (same process, no restart), serves logs and exec, and
// cleans up when the pod is deleted. Then `up` stops cleanly and nothing stays mounted.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { needsRoot } from '../support/driver-harness.js';
import { leftovers, mountAt, mountsUnder, releaseAllUnder } from '../support/host-state.js';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const NODE = 'restart-node';

type Run = Ran;

function cli(dir: string, ...args: string[]): Promise<Run> {
  return runCaptured(process.execPath, [BIN, '--state-dir', dir, ...args], { cwd: dir });
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const MANIFEST = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: keep
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo started; while true; do date +%s >> /data/ticks; sleep 0.2; done"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: keep
`;

describe('a pod outlives a killed `stowage up`', { skip: needsRoot, timeout: 300_000 }, () => {
  let dir = '';
  let up: ChildProcess | undefined;
  let log = '';

  const start = async (): Promise<void> => {
    log = '';
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--pool-size', '2Gi', '--node-name', NODE], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    await until('stowage up to start', 90_000, async () => log.includes('stowage is up'));
  };

  const pod = async (): Promise<Pod> => JSON.parse((await cli(dir, 'get', 'pod', 'ticker', '-o', 'json')).stdout) as Pod;

  after(async () => {
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill('SIGINT');
      await new Promise((r) => up?.once('exit', r));
    }
    await releaseAllUnder(dir);
    await releasePool(join(dir, 'nodes', NODE, 'pool')).catch(() => undefined);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('keeps the container and its volume, and a new `up` adopts them', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-restart-'));
    await start();
    await writeFile(join(dir, 'ticker.yaml'), MANIFEST);
    const applied = await cli(dir, 'apply', '-f', 'ticker.yaml');
    assert.equal(applied.code, 0, applied.stderr);
    const first = await until('the pod to run', 90_000, async () => {
      const p = await pod();
      return p.status?.phase === 'Running' ? p : undefined;
    });
    const uid = first.metadata.uid ?? '';
    const containerId = ((first.status?.['containerStatuses'] ?? []) as { containerID: string }[])[0]?.containerID;
    const pvName = JSON.parse((await cli(dir, 'get', 'pvc', 'keep', '-o', 'json')).stdout).spec.volumeName as string;
    const target = join(dir, 'nodes', NODE, 'pods', uid, 'volumes/kubernetes.io~csi', pvName, 'mount');
    await until('ticks to be written', 30_000, async () => readFileSync(join(target, 'ticks'), 'utf8').length > 0);

    up?.kill('SIGKILL');
    await new Promise((r) => up?.once('exit', r));
    const ticks = readFileSync(join(target, 'ticks'), 'utf8').length;
    await sleep(1_000);
    assert.ok(readFileSync(join(target, 'ticks'), 'utf8').length > ticks, 'the container keeps writing while `up` is dead');
    assert.ok(mountAt(target), 'the volume stays published');

    await start();
    await sleep(2_000);
    const after = await pod();
    assert.equal(after.status?.phase, 'Running');
    const status = ((after.status?.['containerStatuses'] ?? []) as { containerID: string; restartCount: number }[])[0];
    assert.equal(status?.containerID, containerId, 'the same container');
    assert.equal(status?.restartCount, 0, 'not restarted');
    const exec = await cli(dir, 'exec', 'ticker', '--', 'sh', '-c', 'test -s /data/ticks && echo ok');
    assert.equal(exec.stdout, 'ok\n', exec.stderr);
    const logs = await cli(dir, 'logs', 'ticker');
    assert.equal(logs.stdout, 'started\n');

    const deleted = await cli(dir, 'delete', 'pod', 'ticker');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(mountAt(target), undefined, 'unpublished when the pod is gone');
    const gone = await cli(dir, 'delete', 'pvc', 'keep');
    assert.equal(gone.code, 0, gone.stderr);
    up?.kill('SIGINT');
    await new Promise((r) => up?.once('exit', r));
    assert.match(log, /pool released/);
    assert.deepEqual(mountsUnder(dir), [], 'no mount left after `up` stopped');
  });
});
