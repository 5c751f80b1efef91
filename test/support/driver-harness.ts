/**
 * Runs the real driver (`node bin/stowage.js driver --backend local|rbd ...`) as a child process on
 * a private temp dir, the way a CO would: a unix socket, a node ID, a small sparse pool (local) or
 * a ceph-csi cluster list naming a test cluster (rbd, see ceph.ts). Tests talk to it only through
 * CsiClient, and see the kernel's state only through /proc and /sys.
 *
 * With the rbd backend the client plays the CO's part for credentials and classes: every call
 * that carries secrets gets the cluster's userID/userKey (merged under any the test passes), and
 * CreateVolume gets the StorageClass parameters clusterID and pool (same merge). CreateSnapshot
 * gets none, as from a VolumeSnapshotClass without parameters: the source volume's ID says where.
 * `rawClient` sends requests exactly as written.
 *
 * cleanup() leaves nothing behind even after a failed test: it stops the process, unmounts
 * everything under the temp dir, detaches the loop devices whose backing files are in it (never
 * anyone else's), releases the pool and removes the dir.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { writeFile } from 'node:fs/promises';
import { CsiClient, type ControllerCallers, type NodeCallers } from '../../src/csi/client.js';
import { CsiError } from '../../src/csi/errors.js';
import { status } from '@grpc/grpc-js';
import type { CephFixture } from './ceph.js';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { detachIfOurs, isUnder, leftovers, loopsUnder, mountsUnder, unmount } from './host-state.js';

export type TestBackend = 'local' | 'rbd' | 'cephfs';

export interface TestDriverOptions {
  /** Default 'local'. 'rbd' and 'cephfs' need `ceph` (useCephCluster()). */
  backend?: TestBackend;
  /** The test cluster, for backend 'rbd'. */
  ceph?: CephFixture;
  /** rbd: --ceph-timeout (seconds). */
  cephTimeoutSeconds?: number;
  /** rbd, cephfs: replaces the cluster list written for the driver (e.g. wrong monitors). */
  cephConfig?: unknown;
  /** Default 'test-node'. */
  nodeId?: string;
  /** --local-pool-size; default 4Gi (sparse: costs nothing until written). */
  poolSize?: string;
  /** --log-level; default 'info'. */
  logLevel?: string;
  /** Serve Prometheus metrics on a free 127.0.0.1 port. */
  metrics?: boolean;
  /** Extra command-line arguments (e.g. ['--controller']). */
  args?: string[];
  /** How long to wait for Probe to say ready. Default 60 s. */
  readyTimeoutMs?: number;
  /** Prefix of the temp dir name. */
  prefix?: string;
  /**
   * Called as soon as the socket exists, before the pool is (necessarily) ready: to watch what a
   * CO sees while the driver starts. The harness then waits for Probe to say ready as usual.
   * `dir` is the temp dir (the driver's --kubelet-dir: node paths must be beneath it).
   */
  duringStartup?: (client: CsiClient, dir: string) => Promise<void>;
}

export interface TestDriver {
  readonly backend: TestBackend;
  /** The test cluster (rbd), as given to startTestDriver. */
  readonly ceph: CephFixture | undefined;
  /** A client on the driver's socket (a fresh one after restart()); rbd: secrets and parameters added. */
  readonly client: CsiClient;
  /** A client that adds nothing to requests (a fresh one after restart()). */
  readonly rawClient: CsiClient;
  /** rbd: --rbd-state-dir (stashes and rbd-fuse mounts); cephfs: --cephfs-state-dir; local: undefined. */
  readonly stateDir: string | undefined;
  /** unix:///.../csi.sock */
  readonly endpoint: string;
  readonly socketPath: string;
  /** The private temp dir holding everything of this driver. */
  readonly dir: string;
  /** --local-dir (the pool: dir/local/pool.img mounted on dir/local/pool); rbd: the state dir. */
  readonly localDir: string;
  readonly nodeId: string;
  /** host:port of the metrics endpoint, when asked for. */
  readonly metricsAddress: string | undefined;
  /** pid of the running driver process (undefined when stopped). */
  readonly pid: number | undefined;
  /** A directory for staging (created, as the CO must). */
  stagingDir(name: string): string;
  /** A publish target path; its parent exists, the path itself does not (the SP creates it). */
  targetDir(name: string): string;
  /** Everything the driver printed on stdout and stderr so far, across restarts. */
  logs(): string;
  /** Sends signal (default SIGTERM) and waits for the process to exit; SIGKILL after 40 s. */
  stop(opts?: { signal?: NodeJS.Signals }): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL, as a crash would. */
  kill9(): Promise<void>;
  /** Stops the process if it runs, starts it again with the same arguments, waits for ready. */
  restart(): Promise<void>;
  /** Stops, unmounts, detaches, releases the pool, removes the dir. Idempotent. */
  cleanup(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The checkout root: the directory holding bin/stowage.js (from src or from dist/test/support). */
function repoRoot(): string {
  for (let dir = here; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'stowage.js')) && existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`cannot find bin/stowage.js above ${here}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Whether the tests can do what they need: root (mounts, loop devices). */
export const needsRoot = process.getuid?.() !== 0 ? 'needs root (loop devices, mounts)' : false;

/** Methods whose requests carry secrets, and those that take class parameters. */
const WITH_SECRETS = new Set([
  'CreateVolume',
  'DeleteVolume',
  'CreateSnapshot',
  'DeleteSnapshot',
  'ControllerExpandVolume',
  'ValidateVolumeCapabilities',
  'ListSnapshots',
  'NodeStageVolume',
  'NodeExpandVolume',
]);

/**
 * A client whose controller and node calls carry the test cluster's secrets and parameters.
 * cephfs: the ceph-csi cephfs secrets (adminID/adminKey and userID/userKey) and class (clusterID,
 * fsName); and, as external-provisioner does, a CreateVolume from a content source is retried
 * while the driver answers ABORTED (a CephFS clone is copied in the background).
 */
function coClient(raw: CsiClient, ceph: CephFixture, backend: TestBackend = 'rbd'): CsiClient {
  const cephfs = backend === 'cephfs';
  const secrets = () => (cephfs ? ceph.cephfsSecrets : ceph.secrets);
  const wrap = <T extends object>(callers: T): T => {
    const out: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(callers)) {
      const call = fn as (req: Record<string, unknown>, o?: unknown) => Promise<unknown>;
      out[name] = (req: Record<string, unknown>, o?: unknown) => {
        const r = { ...req };
        if (WITH_SECRETS.has(name)) r['secrets'] = { ...secrets(), ...((req['secrets'] as object | undefined) ?? {}) };
        if (name === 'CreateVolume') r['parameters'] = { ...(cephfs ? ceph.cephfsParameters : ceph.parameters), ...((req['parameters'] as object | undefined) ?? {}) };
        if (cephfs && name === 'CreateVolume' && req['volume_content_source']) return retryAborted(() => call(r, o));
        return call(r, o);
      };
    }
    return out as T;
  };
  const client = Object.create(raw) as CsiClient;
  Object.defineProperty(client, 'controller', { value: wrap<ControllerCallers>(raw.controller) });
  Object.defineProperty(client, 'node', { value: wrap<NodeCallers>(raw.node) });
  return client;
}

/** Retries while the answer is ABORTED (a CO's backoff, shortened), for up to two minutes. */
async function retryAborted<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof CsiError) || e.code !== status.ABORTED || Date.now() > deadline) throw e;
      await sleep(500);
    }
  }
}

export async function startTestDriver(opts: TestDriverOptions = {}): Promise<TestDriver> {
  const backend = opts.backend ?? 'local';
  if ((backend === 'rbd' || backend === 'cephfs') && !opts.ceph) throw new Error(`startTestDriver: the ${backend} backend needs a ceph fixture (useCephCluster())`);
  const dir = await mkdtemp(join(tmpdir(), opts.prefix ?? 'stowage-t-'));
  const localDir = join(dir, 'local');
  const stateDir = backend === 'rbd' ? join(dir, 'rbd-state') : backend === 'cephfs' ? join(dir, 'cephfs-state') : undefined;
  const socketPath = join(dir, 'csi.sock');
  const endpoint = `unix://${socketPath}`;
  const nodeId = opts.nodeId ?? 'test-node';
  const metricsAddress = opts.metrics ? `127.0.0.1:${await freePort()}` : undefined;
  const bin = join(repoRoot(), 'bin', 'stowage.js');
  let backendArgs: string[];
  if (backend === 'rbd') {
    const cephConfig = join(dir, 'ceph-config.json');
    const clusters = opts.cephConfig ?? [{ clusterID: opts.ceph!.info.clusterID, monitors: opts.ceph!.info.monitors }];
    await writeFile(cephConfig, JSON.stringify(clusters));
    backendArgs = ['--backend', 'rbd', '--ceph-config', cephConfig, '--rbd-state-dir', stateDir!, '--ceph-timeout', String(opts.cephTimeoutSeconds ?? 10)];
  } else if (backend === 'cephfs') {
    const cephConfig = join(dir, 'ceph-config.json');
    const clusters = opts.cephConfig ?? [{ clusterID: opts.ceph!.info.clusterID, monitors: opts.ceph!.info.monitors }];
    await writeFile(cephConfig, JSON.stringify(clusters));
    backendArgs = ['--backend', 'cephfs', '--ceph-config', cephConfig, '--cephfs-state-dir', stateDir!, '--ceph-timeout', String(opts.cephTimeoutSeconds ?? 10)];
  } else {
    backendArgs = ['--backend', 'local', '--local-dir', localDir, '--local-pool-size', opts.poolSize ?? '4Gi'];
  }
  const args = [
    bin,
    'driver',
    '--endpoint',
    endpoint,
    '--node-id',
    nodeId,
    ...backendArgs,
    // The temp dir plays the kubelet's root: staging and target paths are beneath it (stagingDir,
    // targetDir), the pool and state dirs too, which the driver refuses as its own.
    '--kubelet-dir',
    dir,
    '--log-level',
    opts.logLevel ?? 'info',
    ...(metricsAddress ? ['--metrics-address', metricsAddress] : []),
    ...(opts.args ?? []),
  ];
  const output: string[] = [];
  const echo = process.env['STOWAGE_TEST_DRIVER_LOGS'] === '1';
  let child: ChildProcess | undefined;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  let client: CsiClient | undefined;
  let rawClient: CsiClient | undefined;
  let cleanedUp = false;

  function spawnDriver(): void {
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const keep = (chunk: Buffer) => {
      output.push(chunk.toString('utf8'));
      if (echo) process.stderr.write(chunk);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    // If the test process dies without cleanup, don't leave a driver running behind it.
    const orphan = () => proc.kill('SIGKILL');
    process.once('exit', orphan);
    exited = new Promise((resolveExit) => {
      proc.once('exit', (code, signal) => {
        process.removeListener('exit', orphan);
        if (child === proc) child = undefined;
        resolveExit({ code, signal });
      });
    });
  }

  async function waitReady(): Promise<void> {
    const timeoutMs = opts.readyTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    rawClient?.close();
    rawClient = new CsiClient(endpoint, { timeoutMs: 120_000 });
    client = backend === 'rbd' || backend === 'cephfs' ? coClient(rawClient, opts.ceph!, backend) : rawClient;
    let lastError = '';
    while (Date.now() < deadline) {
      if (!child) throw new Error(`the driver exited before it was ready:\n${tail()}`);
      if (existsSync(socketPath)) {
        try {
          const probe = await client.identity.Probe({}, { timeoutMs: 5_000 });
          if (probe.ready?.value === true) return;
          lastError = 'Probe: ready=false';
        } catch (e) {
          lastError = (e as Error).message;
        }
      }
      await sleep(100);
    }
    throw new Error(`the driver was not ready within ${timeoutMs} ms (${lastError}):\n${tail()}`);
  }

  function tail(): string {
    return output.join('').split('\n').slice(-40).join('\n');
  }

  async function stop(o: { signal?: NodeJS.Signals } = {}) {
    const proc = child;
    if (!proc) return exited;
    proc.kill(o.signal ?? 'SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 40_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async function cleanup(): Promise<void> {
    if (cleanedUp) return;
    cleanedUp = true;
    rawClient?.close();
    await stop().catch(() => undefined);
    // cephfs: ceph-fuse mounts at the staging paths and binds of them; the same order works.
    if (backend === 'rbd' || backend === 'cephfs') return cleanupRbd();
    const poolRoot = join(localDir, 'pool');
    const problems: string[] = [];
    const note = (what: string) => (e: unknown) => problems.push(`${what}: ${(e as Error).message}`);
    for (let round = 0; round < 3; round++) {
      // 1. Everything mounted under dir except the pool itself, deepest and newest first.
      const mounts = mountsUnder(dir)
        .filter((m) => m.mountPoint !== poolRoot && isUnder(m.mountPoint, dir))
        .sort((a, b) => b.mountPoint.split('/').length - a.mountPoint.split('/').length || b.mountId - a.mountId);
      for (const m of mounts) await unmount(m.mountPoint).catch(note(`umount ${m.mountPoint}`));
      // 2. Volume loop devices (their files live in the pool, which can't be unmounted while they're bound).
      for (const l of loopsUnder(dir).filter((l) => l.backingFile !== join(localDir, 'pool.img'))) {
        await detachIfOurs(l.device, dir).catch(note(`detach ${l.device}`));
      }
      // 3. The pool: unmount it and detach its loop device.
      if (existsSync(localDir)) await releasePool(localDir).catch(note('releasePool'));
      for (const l of loopsUnder(dir)) await detachIfOurs(l.device, dir).catch(note(`detach ${l.device}`));
      if (leftovers(dir).length === 0) break;
      await sleep(200 * (round + 1));
    }
    const left = leftovers(dir);
    if (left.length > 0) {
      // Never rm -rf through a mount: it would delete data that is not ours to delete.
      throw new Error(`cleanup of ${dir} left ${left.join('; ')}${problems.length ? ` (${problems.join('; ')})` : ''}`);
    }
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * rbd: the loop devices sit on files inside rbd-fuse mounts, so the order is filesystems and
   * binds first, then loop devices, then the rbd-fuse mounts (whose processes then exit).
   */
  async function cleanupRbd(): Promise<void> {
    const problems: string[] = [];
    const note = (what: string) => (e: unknown) => problems.push(`${what}: ${(e as Error).message}`);
    const byDepth = (a: { mountPoint: string; mountId: number }, b: { mountPoint: string; mountId: number }) =>
      b.mountPoint.split('/').length - a.mountPoint.split('/').length || b.mountId - a.mountId;
    for (let round = 0; round < 3; round++) {
      const all = mountsUnder(dir).filter((m) => isUnder(m.mountPoint, dir));
      for (const m of all.filter((x) => !x.fsType.startsWith('fuse')).sort(byDepth)) await unmount(m.mountPoint).catch(note(`umount ${m.mountPoint}`));
      for (const l of loopsUnder(dir)) await detachIfOurs(l.device, dir).catch(note(`detach ${l.device}`));
      for (const m of all.filter((x) => x.fsType.startsWith('fuse')).sort(byDepth)) await unmount(m.mountPoint).catch(note(`umount ${m.mountPoint}`));
      if (leftovers(dir).length === 0) break;
      await sleep(200 * (round + 1));
    }
    const left = leftovers(dir);
    if (left.length > 0) throw new Error(`cleanup of ${dir} left ${left.join('; ')}${problems.length ? ` (${problems.join('; ')})` : ''}`);
    await rm(dir, { recursive: true, force: true });
  }

  spawnDriver();
  try {
    if (opts.duringStartup) {
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
      while (!existsSync(socketPath)) {
        if (!child || Date.now() > deadline) throw new Error(`the driver never created its socket:\n${tail()}`);
        await sleep(2);
      }
      const early = new CsiClient(endpoint, { timeoutMs: 10_000 });
      try {
        await opts.duringStartup(early, dir);
      } finally {
        early.close();
      }
    }
    await waitReady();
  } catch (e) {
    await cleanup().catch(() => undefined);
    throw e;
  }

  return {
    backend,
    ceph: opts.ceph,
    get client() {
      if (!client) throw new Error('driver client is closed');
      return client;
    },
    get rawClient() {
      if (!rawClient) throw new Error('driver client is closed');
      return rawClient;
    },
    stateDir,
    endpoint,
    socketPath,
    dir,
    localDir: stateDir ?? localDir,
    nodeId,
    metricsAddress,
    get pid() {
      return child?.pid;
    },
    stagingDir(name: string) {
      const p = join(dir, 'staging', name);
      mkdirSync(p, { recursive: true });
      return p;
    },
    targetDir(name: string) {
      const parent = join(dir, 'target');
      mkdirSync(parent, { recursive: true });
      return join(parent, name);
    },
    logs: () => output.join(''),
    stop,
    async kill9() {
      await stop({ signal: 'SIGKILL' });
    },
    async restart() {
      await stop();
      spawnDriver();
      await waitReady();
    },
    cleanup,
  };
}

/** Fails if any mount or loop device still refers to dir. */
export function assertNoLeftovers(dir: string): void {
  const left = leftovers(resolve(dir));
  assert.deepEqual(left, [], `mounts or loop devices of ${dir} remain`);
}
