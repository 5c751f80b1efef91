// kill -9 the control plane mid-provisioning, restart it on the same state dir, and it converges:
// every claim Bound, exactly one backend volume per claim (the retried CreateVolume reuses the name
// pvc-<uid>), no volume without a PV. The control plane runs as its own process (as `stowage up`
// would run it) and is reached through its API socket, as the CLI does; the local driver is real.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { KubeList } from '../../src/control/api/types/meta.js';
import { processStartTicks } from '../../src/control/node/runtime/proc.js';
import type { CsiClient } from '../../src/csi/client.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const CLAIMS = 80;
const here = dirname(fileURLToPath(import.meta.url));
/** dist/ holds src/ next to test/. */
const DIST = join(here, '..', '..');
const REPO = join(DIST, '..');

/** The control plane as a process: start, register the driver, say "ready". */
const CHILD = `
const { pino } = await import('pino');
const { startControlPlane } = await import(${JSON.stringify(pathToFileURL(join(DIST, 'src', 'control', 'control-plane.js')).href)});
const { registerDriver } = await import(${JSON.stringify(pathToFileURL(join(DIST, 'src', 'control', 'controllers', 'driver-registry.js')).href)});
const cp = await startControlPlane({ stateDir: process.env.STATE_DIR, logger: pino({ level: 'warn' }, pino.destination(2)), controllers: { resyncMs: 2000, eventMaxDelayMs: 0 } });
await registerDriver(cp.store, { endpoint: process.env.CSI_ENDPOINT });
process.stdout.write('ready\\n');
process.on('SIGTERM', () => cp.stop().then(() => process.exit(0), () => process.exit(1)));
`;

interface Child {
  proc: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

async function startChild(stateDir: string, endpoint: string): Promise<Child> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    cwd: REPO,
    env: { ...process.env, STATE_DIR: stateDir, CSI_ENDPOINT: endpoint },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  proc.stderr?.on('data', (b: Buffer) => chunks.push(b.toString()));
  const orphan = () => proc.kill('SIGKILL');
  process.once('exit', orphan);
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      process.removeListener('exit', orphan);
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`control plane not ready in 30 s:\n${chunks.join('')}`));
    }, 30_000);
    proc.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`control plane exited (${code ?? signal}) before ready:\n${chunks.join('')}`));
    });
  });
  return { proc, exited, output: () => chunks.join('') };
}

/** One API call over the control plane's unix socket, as the CLI makes it. */
function api<T>(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') as T }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function volumeIds(client: CsiClient): Promise<string[]> {
  const ids: string[] = [];
  let token = '';
  do {
    const page = await client.controller.ListVolumes({ starting_token: token });
    for (const e of page.entries) if (e.volume?.volume_id) ids.push(e.volume.volume_id);
    token = page.next_token;
  } while (token);
  return ids;
}

describe('control plane crash during provisioning', { skip: needsRoot }, () => {
  let driver: TestDriver;
  let child: Child | undefined;
  let stateDir: string;
  let socket: string;

  before(async () => {
    driver = await startTestDriver({ prefix: 'stowage-cp-crash-', nodeId: 'test-node' });
    stateDir = join(driver.dir, 'state');
    socket = join(stateDir, 'api.sock');
  });

  after(async () => {
    try {
      if (child !== undefined && child.proc.exitCode === null && child.proc.signalCode === null) {
        child.proc.kill('SIGTERM');
        const timer = setTimeout(() => child?.proc.kill('SIGKILL'), 20_000);
        await child.exited;
        clearTimeout(timer);
      }
    } finally {
      const dir = driver.dir;
      await driver.cleanup();
      assertNoLeftovers(dir);
    }
  });

  const claims = async () => (await api<KubeList<PersistentVolumeClaim>>(socket, 'GET', '/api/v1/namespaces/default/persistentvolumeclaims')).body.items;
  const volumes = async () => (await api<KubeList<PersistentVolume>>(socket, 'GET', '/api/v1/persistentvolumes')).body.items;

  it('converges after kill -9 with exactly one volume per claim', async () => {
    child = await startChild(stateDir, driver.endpoint);
    const info = JSON.parse(readFileSync(join(stateDir, 'server.json'), 'utf8')) as { url: string; pid: number; pidStartTicks?: number };
    assert.deepEqual(info, { url: `unix://${socket}`, urls: [`unix://${socket}`], pid: child.proc.pid, pidStartTicks: processStartTicks(child.proc.pid ?? 0) });

    for (let i = 0; i < CLAIMS; i++) {
      const res = await api(socket, 'POST', '/api/v1/namespaces/default/persistentvolumeclaims', {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: `c${i}` },
        spec: { storageClassName: 'local', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '16Mi' } } },
      });
      assert.equal(res.status, 201);
    }
    // The class last, so that all claims start provisioning at once; kill while some volumes are
    // made and others are still being made.
    const sc = await api(socket, 'POST', '/apis/storage.k8s.io/v1/storageclasses', {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'local' },
      provisioner: 'local.csi.stowage.dev',
      reclaimPolicy: 'Delete',
    });
    assert.equal(sc.status, 201);
    let pvs = 0;
    let backend = 0;
    let volumeWithoutPv = false;
    const deadline = Date.now() + 60_000;
    for (;;) {
      backend = (await volumeIds(driver.client)).length;
      pvs = (await volumes()).length;
      if (backend > pvs) volumeWithoutPv = true;
      if (pvs >= 4 || Date.now() > deadline) break;
      await sleep(2);
    }
    child.proc.kill('SIGKILL');
    await child.exited;
    assert.ok(pvs < CLAIMS, `killed too late: all ${pvs} PVs existed`);
    process.stderr.write(`# killed with ${pvs} PVs, ${backend} backend volumes (a volume without its PV seen: ${volumeWithoutPv})\n`);
    assert.ok(existsSync(join(stateDir, 'server.json')), 'kill -9 leaves server.json behind');

    child = await startChild(stateDir, driver.endpoint);
    const start = Date.now();
    let all: PersistentVolumeClaim[] = [];
    while (Date.now() - start < 60_000) {
      all = await claims();
      if (all.length === CLAIMS && all.every((c) => c.status?.phase === 'Bound')) break;
      await sleep(50);
    }
    assert.equal(all.filter((c) => c.status?.phase === 'Bound').length, CLAIMS, `bound after restart:\n${child.output()}`);
    const pvList = await volumes();
    const ids = await volumeIds(driver.client);
    assert.equal(pvList.length, CLAIMS);
    assert.equal(ids.length, CLAIMS, 'exactly one backend volume per claim');
    assert.deepEqual(new Set(pvList.map((pv) => pv.spec.csi?.volumeHandle)), new Set(ids), 'every volume has its PV');
    for (const c of all) assert.equal(c.spec.volumeName, `pvc-${c.metadata.uid}`);

    // Delete everything through the API: every volume goes.
    for (const c of all) await api(socket, 'DELETE', `/api/v1/namespaces/default/persistentvolumeclaims/${c.metadata.name}`);
    const until = Date.now() + 60_000;
    while (Date.now() < until && ((await volumes()).length > 0 || (await volumeIds(driver.client)).length > 0)) await sleep(50);
    assert.equal((await volumes()).length, 0);
    assert.equal((await volumeIds(driver.client)).length, 0);

    child.proc.kill('SIGTERM');
    await child.exited;
    assert.equal(existsSync(join(stateDir, 'server.json')), false, 'a clean stop removes server.json');
  });
});
