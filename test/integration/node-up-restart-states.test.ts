// `stowage up` stopped (kill -9 or SIGTERM) with work in every state the control plane has today,
// then started again on the same state dir: it must come up and stay up, and every object must
// reach the state it was heading for (issue 11, finding 3). Before, a claim left Pending was enough
// to make the restarted `up` exit 1 within a second — its provisioner dialled the node's socket
// before the node's driver listened — leaving the pool mounted and its loop device attached.
//
// One table row per (state, signal): `enter` drives a fresh `up` into the state and names the log
// line at which `up` is stopped (the moment a CSI call of that state starts, so the kill lands
// while it is in flight or just after); `converge` checks the restarted `up`. Every row ends the
// same way: everything deleted, `up` stopped with SIGINT, the pool released, no mount or loop
// device left under the row's state dir. Snapshotting and resizing are not done by the control
// plane yet; when they are, they are rows of STATES like the others.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type { Node, PersistentVolume, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { CSIDriver, VolumeAttachment } from '../../src/control/api/types/storage.js';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { needsRoot } from '../support/driver-harness.js';
import { leftovers, mountCount, mountsUnder, releaseAllUnder } from '../support/host-state.js';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const NODE = 'rs-node';
const DRIVER = 'local.csi.stowage.dev';

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>, detail?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await sleep(100);
  }
}

function claim(name: string, size: string): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${name}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: ${size}
`;
}

function pod(name: string, claimName: string): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo started > /data/started; while true; do sleep 0.2; done"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: ${claimName}
`;
}

/** One state dir and the `up` running on it. */
class Cluster {
  up: ChildProcess | undefined;
  /** Output of every `up` run on this dir, in order. */
  log = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  /** Starts `up` and waits for "stowage is up"; rejects (with its output) if it exits first. */
  async start(): Promise<void> {
    const from = this.log.length;
    const up = spawn(process.execPath, [BIN, 'up', '--state-dir', this.dir, '--pool-size', '300Mi', '--node-name', NODE], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.up = up;
    up.stdout?.on('data', (c: Buffer) => (this.log += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (this.log += c.toString('utf8')));
    this.exited = new Promise((r) => up.once('exit', () => r()));
    await until('stowage up to start', 60_000, async () => {
      if (up.exitCode !== null || up.signalCode !== null) throw new Error(`stowage up exited (${up.exitCode ?? up.signalCode}) before it was up:\n${this.log.slice(from)}`);
      return this.log.slice(from).includes('stowage is up');
    }).catch((err: unknown) => {
      if (up.exitCode !== null) throw new Error(`stowage up exited (${up.exitCode}) before it was up:\n${this.log.slice(from)}`);
      throw err;
    });
  }

  get running(): boolean {
    return this.up !== undefined && this.up.exitCode === null && this.up.signalCode === null;
  }

  /** Sends signal to `up` and waits for it to exit; returns its exit code (null when killed). */
  async stop(signal: NodeJS.Signals): Promise<number | null> {
    const up = this.up;
    if (up === undefined || !this.running) return up?.exitCode ?? null;
    up.kill(signal);
    await this.exited;
    return up.exitCode;
  }

  /** Stops `up` with signal the moment its output since offset `from` of the log matches pattern. */
  async stopAt(pattern: RegExp, signal: NodeJS.Signals, from: number, timeoutMs = 60_000): Promise<void> {
    const up = this.up;
    assert.ok(up !== undefined && this.running, `stowage up is not running:\n${this.log.slice(from)}`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        up.stdout?.off('data', check);
        up.stderr?.off('data', check);
        reject(new Error(`stowage up never logged ${String(pattern)}:\n${this.log.slice(from)}`));
      }, timeoutMs);
      // Checked on every chunk, right after the Cluster's own listener appended it.
      const check = (): void => {
        if (!pattern.test(this.log.slice(from))) return;
        clearTimeout(timer);
        up.kill(signal);
        up.stdout?.off('data', check);
        up.stderr?.off('data', check);
        resolve();
      };
      up.stdout?.on('data', check);
      up.stderr?.on('data', check);
      check();
    });
    await this.exited;
  }

  cli(...args: string[]): Promise<Ran> {
    return runCaptured(process.execPath, [BIN, '--state-dir', this.dir, ...args], { cwd: this.dir });
  }

  async apply(name: string, yaml: string): Promise<void> {
    await writeFile(join(this.dir, `${name}.yaml`), yaml);
    const ran = await this.cli('apply', '-f', `${name}.yaml`);
    assert.equal(ran.code, 0, ran.stderr);
  }

  /** The object as JSON, or undefined when it does not exist. */
  async get<T>(kind: string, name: string): Promise<T | undefined> {
    const ran = await this.cli('get', kind, name, '-o', 'json');
    if (ran.code !== 0) {
      if (/NotFound|not found/.test(ran.stderr)) return undefined;
      throw new Error(ran.stderr);
    }
    return JSON.parse(ran.stdout) as T;
  }

  async list<T>(kind: string): Promise<T[]> {
    const ran = await this.cli('get', kind, '-o', 'json');
    assert.equal(ran.code, 0, ran.stderr);
    return (JSON.parse(ran.stdout) as { items: T[] }).items;
  }

  async podRunning(name: string): Promise<Pod> {
    return until(`pod ${name} to run`, 60_000, async () => {
      const p = await this.get<Pod>('pod', name);
      return p?.status?.phase === 'Running' ? p : undefined;
    });
  }

  async bound(name: string): Promise<PersistentVolumeClaim> {
    return until(`claim ${name} to be Bound`, 60_000, async () => {
      const c = await this.get<PersistentVolumeClaim>('pvc', name);
      return c?.status?.phase === 'Bound' ? c : undefined;
    });
  }

  /** The local driver's volumes in the node's pool (mounted while `up` runs). */
  poolVolumes(): string[] {
    return readdirSync(join(this.dir, 'nodes', NODE, 'pool', 'pool', 'volumes'));
  }

  podDir(p: Pod): string {
    return join(this.dir, 'nodes', NODE, 'pods', p.metadata.uid ?? '');
  }

  stagingPath(pvName: string): string {
    return join(this.dir, 'nodes', NODE, 'plugins/kubernetes.io/csi/pv', pvName, 'globalmount');
  }
}

type State = 'pending' | 'provisioning' | 'attaching' | 'pod starting' | 'deleting a pod' | 'deleting a claim';

interface Row {
  state: State;
  signal: 'SIGKILL' | 'SIGTERM';
  /** Drives the running `up` into the state; returns the log line at which `up` is to be stopped. */
  enter(c: Cluster): Promise<RegExp>;
  /** Run against the restarted `up`: waits for the objects' expected state and checks it. */
  converge(c: Cluster): Promise<void>;
}

/** The CSI call a state is in the middle of, as the driver logs it. */
const call = (method: string): RegExp => new RegExp(`GRPC call .*method=/csi\\.v1\\.\\w+/${method}\\b`);

async function pending(c: Cluster): Promise<RegExp> {
  await c.apply('big', claim('big', '5Gi'));
  // Stopped once the driver has refused it at least once: the claim stays Pending for good.
  return /OUT_OF_RANGE/;
}

async function pendingConverges(c: Cluster): Promise<void> {
  // The provisioner tries again against the restarted driver, and gets its answer, not UNAVAILABLE.
  const from = c.log.length;
  await until('the provisioner to ask the restarted driver', 30_000, async () => /code=OUT_OF_RANGE/.test(c.log.slice(from)), () => c.log.slice(from));
  await sleep(1_500);
  assert.ok(c.running, `stowage up keeps running with a claim it cannot provision:\n${c.log.slice(from)}`);
  assert.equal((await c.get<PersistentVolumeClaim>('pvc', 'big'))?.status?.phase, 'Pending');
  // And the rest works: a claim that fits is provisioned and bound.
  await c.apply('small', claim('small', '32Mi'));
  await c.bound('small');
}

async function provisioning(c: Cluster): Promise<RegExp> {
  await c.apply('many', Array.from({ length: 6 }, (_, i) => claim(`c${i}`, '16Mi')).join('---\n'));
  return call('CreateVolume');
}

async function provisioningConverges(c: Cluster): Promise<void> {
  for (let i = 0; i < 6; i++) await c.bound(`c${i}`);
  const pvs = await c.list<PersistentVolume>('pv');
  assert.equal(pvs.length, 6, 'one PV per claim');
  // The retried CreateVolume reuses the name: exactly one volume per claim, none orphaned.
  assert.equal(c.poolVolumes().length, 6, `volumes in the pool: ${c.poolVolumes().join(' ')}`);
}

/**
 * The local driver needs no attach, so its CSIDriver says attachRequired: false. To have the
 * attach/detach controller and the attacher at work, the CSIDriver is replaced by one that
 * requires attachment (the field is immutable); the registration keeps it on restart.
 */
async function attaching(c: Cluster): Promise<RegExp> {
  const registered = await c.get<CSIDriver>('csidriver', DRIVER);
  assert.ok(registered !== undefined);
  const deleted = await c.cli('delete', 'csidriver', DRIVER);
  assert.equal(deleted.code, 0, deleted.stderr);
  const annotations = JSON.stringify(registered.metadata.annotations ?? {});
  await c.apply('csidriver', `apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: ${DRIVER}\n  annotations: ${annotations}\nspec:\n  attachRequired: true\n  podInfoOnMount: false\n  volumeLifecycleModes: [Persistent]\n`);
  await c.apply('vol', claim('vol', '32Mi') + '---\n' + pod('user', 'vol'));
  return /INFO .*attaching/;
}

async function attachingConverges(c: Cluster): Promise<void> {
  await c.podRunning('user');
  const vas = await c.list<VolumeAttachment>('volumeattachments');
  assert.equal(vas.length, 1, 'one VolumeAttachment');
  assert.equal(vas[0]?.status?.attached, true);
}

async function podStarting(c: Cluster): Promise<RegExp> {
  await c.apply('vol', claim('vol', '32Mi') + '---\n' + pod('user', 'vol'));
  return call('NodeStageVolume');
}

async function podStartingConverges(c: Cluster): Promise<void> {
  const p = await c.podRunning('user');
  const pvName = (await c.bound('vol')).spec.volumeName ?? '';
  assert.equal(mountCount(c.stagingPath(pvName)), 1, 'staged once');
  assert.equal(mountCount(join(c.podDir(p), 'volumes/kubernetes.io~csi', pvName, 'mount')), 1, 'published once');
  const exec = await c.cli('exec', 'user', '--', 'cat', '/data/started');
  assert.equal(exec.stdout, 'started\n', exec.stderr);
}

let deletedPodDir = '';
async function deletingPod(c: Cluster): Promise<RegExp> {
  await c.apply('vol', claim('vol', '32Mi') + '---\n' + pod('user', 'vol'));
  const p = await c.podRunning('user');
  deletedPodDir = c.podDir(p);
  const ran = await c.cli('delete', 'pod', 'user', '--no-wait');
  assert.equal(ran.code, 0, ran.stderr);
  return call('NodeUnpublishVolume');
}

async function deletingPodConverges(c: Cluster): Promise<void> {
  await until('the pod to be gone', 60_000, async () => (await c.get<Pod>('pod', 'user')) === undefined);
  assert.deepEqual(mountsUnder(deletedPodDir), [], 'unpublished');
  const pvName = (await c.bound('vol')).spec.volumeName ?? '';
  await until('the volume to be unstaged', 30_000, async () => mountCount(c.stagingPath(pvName)) === 0);
}

async function deletingClaim(c: Cluster): Promise<RegExp> {
  await c.apply('vol', claim('vol', '32Mi'));
  await c.bound('vol');
  const ran = await c.cli('delete', 'pvc', 'vol', '--no-wait');
  assert.equal(ran.code, 0, ran.stderr);
  return call('DeleteVolume');
}

async function deletingClaimConverges(c: Cluster): Promise<void> {
  await until('the claim and its volume to be gone', 60_000, async () => (await c.get('pvc', 'vol')) === undefined && (await c.list('pv')).length === 0);
  assert.deepEqual(c.poolVolumes(), [], 'the storage is deleted too');
}

const STATES: Row[] = [
  { state: 'pending', signal: 'SIGKILL', enter: pending, converge: pendingConverges },
  { state: 'pending', signal: 'SIGTERM', enter: pending, converge: pendingConverges },
  { state: 'provisioning', signal: 'SIGKILL', enter: provisioning, converge: provisioningConverges },
  { state: 'provisioning', signal: 'SIGTERM', enter: provisioning, converge: provisioningConverges },
  { state: 'attaching', signal: 'SIGKILL', enter: attaching, converge: attachingConverges },
  { state: 'pod starting', signal: 'SIGKILL', enter: podStarting, converge: podStartingConverges },
  { state: 'pod starting', signal: 'SIGTERM', enter: podStarting, converge: podStartingConverges },
  { state: 'deleting a pod', signal: 'SIGKILL', enter: deletingPod, converge: deletingPodConverges },
  { state: 'deleting a claim', signal: 'SIGKILL', enter: deletingClaim, converge: deletingClaimConverges },
  // 'snapshotting', 'resizing': once the control plane takes snapshots and resizes claims.
];

/** Deletes every pod and claim, stops `up` with SIGINT, and checks that the node let go of everything. */
async function finish(c: Cluster): Promise<void> {
  for (const kind of ['pods', 'pvc']) {
    const ran = await c.cli('delete', kind, '--all', '--timeout', '60s');
    assert.equal(ran.code, 0, `delete ${kind}: ${ran.stderr}`);
  }
  await until('every PV to be gone', 60_000, async () => (await c.list('pv')).length === 0);
  const code = await c.stop('SIGINT');
  assert.equal(code, 0, c.log);
  assert.match(c.log, /pool released/);
  assert.deepEqual(leftovers(c.dir), [], 'nothing may stay mounted or attached');
}

describe('`stowage up` restarts with work in every state', { skip: needsRoot, timeout: 600_000 }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) {
      await releaseAllUnder(dir);
      await releasePool(join(dir, 'nodes', NODE, 'pool')).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const row of STATES) {
    it(`${row.state}, stopped by ${row.signal}`, async () => {
      const c = new Cluster(await mkdtemp(join(tmpdir(), 'stowage-rs-')));
      dirs.push(c.dir);
      try {
        await c.start();
        // The log line may come before enter() returns.
        const from = c.log.length;
        const at = await row.enter(c);
        await c.stopAt(at, row.signal, from);
        await c.start();
        await row.converge(c);
        assert.ok(c.running, 'stowage up still runs');
        const node = await c.get<Node>('node', NODE);
        assert.equal(node?.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'True', 'the node is Ready');
        await finish(c);
      } finally {
        if (c.running) await c.stop('SIGKILL');
      }
    });
  }
});
