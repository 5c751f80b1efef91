// The main job's first part: the storage control plane at work, the way a user meets it. A real
// `stowage up` (control plane + local driver) runs in a throwaway state directory; the story then
// applies a seed-like StorageClass and PVC with `stowage apply`, waits until the claim is Bound,
// shows `get pvc` / `get pv` / `describe pvc` as seed 000 does, deletes the claim and shows the PV
// and the driver's volume gone — and leaves nothing behind (pool released, no mounts, no loops).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CsiClient } from '../csi/client.js';
import { releasePool } from '../driver/backends/local/pool-release.js';
import type { PersistentVolumeClaim } from '../control/api/types/core.js';
import { CONTROLLER_ENDPOINT_ANNOTATION } from '../control/controllers/driver-registry.js';
import { ApiClient, resolveResource } from './api-client.js';
import { readServerInfo } from './connection.js';
import { LOCAL_DRIVER_NAME } from './up-command.js';

const BIN = fileURLToPath(new URL('../../../bin/stowage.js', import.meta.url));

/** Seed 000's StorageClass, for the local driver. */
const STORAGE_CLASS = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
   name: csi-local-sc
provisioner: ${LOCAL_DRIVER_NAME}
parameters:
   csi.storage.k8s.io/fstype: ext4
reclaimPolicy: Delete
allowVolumeExpansion: true
mountOptions:
   - discard
`;

/** Seed 000's PVC, on that class. */
const PVC = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: local-pvc
spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 1Gi
  storageClassName: csi-local-sc
`;

export interface StoryOptions {
  keep?: boolean;
  out?: (text: string) => void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, failed?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed?.();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(200);
  }
}

export async function controlPlaneStory(options: StoryOptions = {}): Promise<void> {
  const out = options.out ?? ((t: string) => process.stdout.write(t));
  const dir = await mkdtemp(join(tmpdir(), 'stowage-story-'));
  const logPath = join(dir, 'up.log');
  const logChunks: Buffer[] = [];
  let up: ChildProcess | undefined;
  let exited: Promise<number | null> | undefined;
  let exitCode: number | null | undefined;

  /** Runs a CLI command as a user would, printing it and what it prints. */
  const run = async (...args: string[]): Promise<string> => {
    out(`\n$ stowage ${args.join(' ')}\n`);
    const child = spawn(process.execPath, [BIN, '--state-dir', dir, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    const text = Buffer.concat(chunks).toString('utf8');
    out(text);
    if (code !== 0) throw new Error(`stowage ${args.join(' ')} failed (exit ${code})`);
    return text;
  };

  try {
    out('Part 1 — the control plane: a PVC provisioned, bound and deleted through the API\n');
    out(`\n$ stowage up --state-dir ${dir} &     (logs: ${logPath})\n`);
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--pool-size', '2Gi', '--node-name', 'demo-node', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => logChunks.push(c));
    up.stderr?.on('data', (c: Buffer) => logChunks.push(c));
    exited = new Promise((resolve) => up?.once('exit', (code) => resolve((exitCode = code))));
    const upFailed = (): string | undefined => (exitCode === undefined ? undefined : `stowage up exited (${exitCode}): ${Buffer.concat(logChunks).toString('utf8').trim().split('\n').slice(-3).join(' | ')}`);

    const info = await until('the control plane', 60_000, () => readServerInfo(dir), upFailed);
    const api = new ApiClient({ server: info.url });
    const csiDrivers = resolveResource('csidrivers');
    await until('the local driver to register', 90_000, async () => (await api.find(csiDrivers, undefined, LOCAL_DRIVER_NAME))?.metadata.annotations?.[CONTROLLER_ENDPOINT_ANNOTATION], upFailed);
    await until('stowage up to finish starting', 30_000, async () => (Buffer.concat(logChunks).toString('utf8').includes('stowage is up') ? true : undefined), upFailed);
    out(`control plane at ${info.url}, driver ${LOCAL_DRIVER_NAME} registered on node demo-node\n`);

    await writeFile(join(dir, 'storageclass.yaml'), STORAGE_CLASS);
    await writeFile(join(dir, 'pvc.yaml'), PVC);
    await run('get', 'sc');
    await run('apply', '-f', 'storageclass.yaml');
    await run('apply', '-f', 'pvc.yaml');
    const pvcs = resolveResource('pvc');
    const bound = await until(
      'local-pvc to be Bound',
      60_000,
      async () => {
        const claim = await api.find<PersistentVolumeClaim>(pvcs, 'default', 'local-pvc');
        return claim?.status?.phase === 'Bound' ? claim : undefined;
      },
      upFailed,
    );
    const pvName = bound.spec.volumeName ?? '';
    await run('get', 'pvc');
    await run('get', 'pv');
    await run('describe', 'pvc', 'local-pvc');

    const pvs = resolveResource('pv');
    const pv = await api.get(pvs, undefined, pvName);
    const volumeId = (pv as { spec?: { csi?: { volumeHandle?: string } } }).spec?.csi?.volumeHandle ?? '';
    const csi = new CsiClient(`unix://${join(dir, 'csi.sock')}`);
    try {
      const before = await csi.controller.ListVolumes({});
      out(`\nthe driver holds ${before.entries.length} volume(s): ${before.entries.map((e) => e.volume?.volume_id).join(', ')} (the PV's volumeHandle is ${volumeId})\n`);

      await run('delete', 'pvc', 'local-pvc');
      await until('the PV to be deleted (reclaim policy Delete)', 60_000, async () => ((await api.find(pvs, undefined, pvName)) === undefined ? true : undefined), upFailed);
      await run('get', 'pv');
      const left = await csi.controller.ListVolumes({});
      out(`\nthe driver holds ${left.entries.length} volume(s)\n`);
      if (left.entries.some((e) => e.volume?.volume_id === volumeId)) throw new Error(`volume ${volumeId} is still in the driver after its PV was deleted`);
    } finally {
      csi.close();
    }
    out('\npart 1 finished: the claim was provisioned, bound, and reclaimed through the control plane\n');
  } catch (err) {
    const log = Buffer.concat(logChunks).toString('utf8');
    if (log) out(`\n--- stowage up log (last lines) ---\n${log.trim().split('\n').slice(-30).join('\n')}\n`);
    throw err;
  } finally {
    if (up && exitCode === undefined) {
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await exited;
      clearTimeout(timer);
    }
    await writeFile(logPath, Buffer.concat(logChunks)).catch(() => undefined);
    // `up` releases the pool itself when it stops cleanly; this covers a crash.
    await releasePool(join(dir, 'pool')).catch(() => undefined);
    if (!options.keep) await rm(dir, { recursive: true, force: true });
    else out(`\nkept ${dir}\n`);
  }
}
