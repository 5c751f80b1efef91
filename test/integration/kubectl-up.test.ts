// A new user's first hour with kubectl and `stowage up`, nothing but the kubeconfig `up` wrote: the
// API's resources are listed, a claim and a pod that mounts it are applied (kubectl's own
// validation, no flags), the claim binds on the local driver and kubectl prints the server's
// columns for it and its volume, describe shows the provisioning events, the pod writes into the
// volume, `delete --wait` returns once the pod is gone and then once the claim is, and the
// volume goes with it (reclaim policy Delete).
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
const NODE = 'kubectl-node';

const MANIFESTS = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  labels: {app: notes}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: writer
  labels: {app: notes}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; echo hello > /data/note; while true; do sleep 1; done"]
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
`;

/** The cells of a table line (columns are separated by at least three spaces). */
function rows(table: string): string[][] {
  return table
    .trimEnd()
    .split('\n')
    .map((l) => l.split(/ {3,}/));
}

/** The table without its AGE column (wherever it is: a node's AGE comes before VERSION), which ticks between two reads. */
function withoutAge(table: string[][]): string[][] {
  const at = table[0]?.indexOf('AGE') ?? -1;
  assert.ok(at >= 0, `a table with an AGE column: ${JSON.stringify(table[0])}`);
  return table.map((r) => r.filter((_, i) => i !== at));
}

describe('kubectl drives `stowage up` with the kubeconfig it wrote', () => {
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
  const until = async (what: string, probe: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${upLog.slice(-3000)}`);
      await sleep(250);
    }
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-kubectl-up-'));
    state = join(dir, 'state');
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--pool-size', '1Gi', '--node-name', NODE], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    await until('stowage up to start', async () => {
      if (up?.exitCode !== null) throw new Error(`stowage up exited:\n${upLog}`);
      return upLog.includes('stowage is up');
    });
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

  it('lists the storage resources the API serves, with short names and verbs', async () => {
    const out = await ok('api-resources', '-o', 'wide');
    const byName = new Map(rows(out).map((r) => [r[0], r]));
    assert.deepEqual(byName.get('persistentvolumeclaims')?.slice(0, 5), ['persistentvolumeclaims', 'pvc', 'v1', 'true', 'PersistentVolumeClaim']);
    assert.deepEqual(byName.get('storageclasses')?.slice(0, 5), ['storageclasses', 'sc', 'storage.k8s.io/v1', 'false', 'StorageClass']);
    assert.deepEqual(byName.get('volumesnapshots')?.slice(0, 5), ['volumesnapshots', 'vs', 'snapshot.storage.k8s.io/v1', 'true', 'VolumeSnapshot']);
    assert.match(byName.get('persistentvolumeclaims')?.[5] ?? '', /create,delete,get,list,patch,update,watch/);
  });

  it('applies a claim and its pod; the claim binds and kubectl prints the same table as stowage get', async () => {
    const file = join(dir, 'notes.yaml');
    await writeFile(file, MANIFESTS);
    assert.equal(await ok('apply', '-f', file), 'persistentvolumeclaim/data created\npod/writer created\n');
    await until('the claim to bind', async () => (await ok('get', 'pvc', 'data', '-o', 'jsonpath={.status.phase}')) === 'Bound');
    await until('the pod to run', async () => (await ok('get', 'pod', 'writer', '-o', 'jsonpath={.status.phase}')) === 'Running');
    const pv = await ok('get', 'pvc', 'data', '-o', 'jsonpath={.spec.volumeName}');
    for (const what of [['pvc', 'data'], ['pv', pv], ['pod', 'writer'], ['sc'], ['node']]) {
      const theirs = withoutAge(rows(await ok('get', ...what)));
      const ours = withoutAge(rows(await stowage('get', ...what)));
      assert.deepEqual(theirs, ours, `kubectl get ${what.join(' ')} (AGE aside)`);
    }
    const [header, row] = rows(await ok('get', 'pvc', 'data'));
    assert.deepEqual(header, ['NAME', 'STATUS', 'VOLUME', 'CAPACITY', 'ACCESS MODES', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS', 'AGE']);
    assert.deepEqual(row?.slice(0, 6), ['data', 'Bound', pv, '64Mi', 'RWO', 'local']);
    assert.equal(await ok('apply', '-f', file), 'persistentvolumeclaim/data unchanged\npod/writer unchanged\n');
  });

  it('describe shows the claim, who uses it and the provisioning events', async () => {
    const out = await ok('describe', 'pvc', 'data');
    assert.match(out, /^Name:\s+data$/m);
    assert.match(out, /^Status:\s+Bound$/m);
    assert.match(out, /^Used By:\s+writer$/m);
    assert.match(out, /Normal\s+ProvisioningSucceeded\s+.*Successfully provisioned volume/);
  });

  it('the pod wrote into the volume (read back through the node agent: kubectl exec is not served)', async () => {
    let note = '';
    await until('the note in the volume', async () => {
      const r = await runCaptured(process.execPath, [BIN, '--state-dir', state, 'exec', 'writer', '--', 'cat', '/data/note']);
      note = r.stdout;
      return r.code === 0;
    });
    assert.equal(note, 'hello\n');
  });

  it('delete --wait returns once each object is gone, and the volume goes with the claim', async () => {
    const pv = await ok('get', 'pvc', 'data', '-o', 'jsonpath={.spec.volumeName}');
    assert.equal(await ok('delete', 'pod', 'writer', '--wait', '--timeout=90s'), 'pod "writer" deleted\n');
    assert.equal((await kubectl('get', 'pod', 'writer')).code, 1, 'the pod is gone when delete returns');
    assert.equal(await ok('delete', 'pvc', 'data', '--wait', '--timeout=90s'), 'persistentvolumeclaim "data" deleted\n');
    const gone = await kubectl('get', 'pvc', 'data');
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, 'Error from server (NotFound): persistentvolumeclaims "data" not found\n');
    await until('the volume to be deleted', async () => (await kubectl('get', 'pv', pv)).code === 1);
  });
});
