// The main job's first part: seed 003's story on the embedded control plane, the way a user meets
// it. A real `stowage up` (control plane, one node with its local driver and agent) runs in a
// throwaway state directory; the story applies a StorageClass and a PVC, then seed 003's pod (its
// container writes `hello world` into the volume unless it finds it there), shows `get pod/pvc/pv`
// and the kubelet's paths as seed 003 does, deletes the pod, recreates it and reads the file back,
// then deletes everything and shows the volume gone — leaving nothing behind (no mounts, no loops).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CsiClient } from '../csi/client.js';
import { releasePool } from '../driver/backends/local/pool-release.js';
import type { PersistentVolumeClaim, Pod } from '../control/api/types/core.js';
import { CONTROLLER_ENDPOINT_ANNOTATION } from '../control/controllers/driver-registry.js';
import { nodeRoot, nodeSocket } from '../control/node/embedded-nodes.js';
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

const NODE = 'demo-node';
const MOUNT_PATH = '/usr/share/nginx/html';

/**
 * Seed 003's pod.yaml, with a command: the embedded runtime records images but does not pull
 * them, so the container runs a shell over the node's root filesystem. It writes index.html
 * unless it is already there, and says which.
 */
const POD = `apiVersion: v1
kind: Pod
metadata:
  name: test-volumes
spec:
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: local-pvc
  containers:
  - name: web
    image: nginx
    command:
    - sh
    - -c
    - |
      f=${MOUNT_PATH}/index.html
      if [ -f "$f" ]; then echo "found: $(cat "$f")"; else echo "hello world" > "$f"; echo "wrote: hello world"; fi
      trap 'exit 0' TERM
      while true; do sleep 1; done
    ports:
    - name: web
      containerPort: 80
    volumeMounts:
    - name: data
      subPath: test-volumes
      mountPath: "${MOUNT_PATH}"
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

  /** A host command, printed as the seed prints its own (ls, findmnt). */
  const host = async (cmd: string, args: string[]): Promise<string> => {
    out(`\n$ ${cmd} ${args.join(' ')}\n`);
    const text = await new Promise<string>((resolve) => execFile(cmd, args, (err, stdout, stderr) => resolve(`${stdout}${stderr}${err && !stderr ? `${err.message}\n` : ''}`)));
    out(text);
    return text;
  };

  try {
    out("Part 1 — seed 003's story: a pod writes into its PersistentVolume, is deleted, comes back and finds its data\n");
    out(`\n$ stowage up --state-dir ${dir} --node-name ${NODE} &     (logs: ${logPath})\n`);
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--pool-size', '2Gi', '--node-name', NODE, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => logChunks.push(c));
    up.stderr?.on('data', (c: Buffer) => logChunks.push(c));
    exited = new Promise((resolve) => up?.once('exit', (code) => resolve((exitCode = code))));
    const upFailed = (): string | undefined => (exitCode === undefined ? undefined : `stowage up exited (${exitCode}): ${Buffer.concat(logChunks).toString('utf8').trim().split('\n').slice(-3).join(' | ')}`);

    const info = await until('the control plane', 60_000, () => readServerInfo(dir), upFailed);
    const api = new ApiClient({ server: info.url });
    const csiDrivers = resolveResource('csidrivers');
    await until('the local driver to register', 90_000, async () => (await api.find(csiDrivers, undefined, LOCAL_DRIVER_NAME))?.metadata.annotations?.[CONTROLLER_ENDPOINT_ANNOTATION], upFailed);
    await until('stowage up to finish starting', 60_000, async () => (Buffer.concat(logChunks).toString('utf8').includes('stowage is up') ? true : undefined), upFailed);
    out(`control plane at ${info.url}; node ${NODE} runs the ${LOCAL_DRIVER_NAME} driver and a node agent\n`);
    await run('get', 'nodes');

    await writeFile(join(dir, 'storageclass.yaml'), STORAGE_CLASS);
    await writeFile(join(dir, 'pvc.yaml'), PVC);
    await writeFile(join(dir, 'pod.yaml'), POD);
    await run('apply', '-f', 'storageclass.yaml');
    await run('apply', '-f', 'pvc.yaml');
    const pvcs = resolveResource('pvc');
    const pods = resolveResource('pods');
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

    const runningPod = async (): Promise<Pod> =>
      until(
        'pod test-volumes to be Running',
        120_000,
        async () => {
          const pod = await api.find<Pod>(pods, 'default', 'test-volumes');
          return pod?.status?.phase === 'Running' && (pod.status['containerStatuses'] as { ready?: boolean }[] | undefined)?.[0]?.ready ? pod : undefined;
        },
        upFailed,
      );
    const podLog = async (want: string): Promise<string> => {
      const text = await until(`the pod's log to say "${want}"`, 30_000, async () => {
        const child = spawn(process.execPath, [BIN, '--state-dir', dir, 'logs', 'test-volumes'], { stdio: ['ignore', 'pipe', 'pipe'] });
        const chunks: Buffer[] = [];
        child.stdout.on('data', (c: Buffer) => chunks.push(c));
        await new Promise((r) => child.once('close', r));
        const t = Buffer.concat(chunks).toString('utf8');
        return t.includes(want) ? t : undefined;
      });
      out(`\n$ stowage logs test-volumes\n${text}`);
      return text;
    };

    await run('apply', '-f', 'pod.yaml');
    const first = await runningPod();
    await run('get', 'pod', '-o', 'wide');
    const uid = first.metadata.uid ?? '';
    out(`\nthe pod's uid is ${uid}; the kubelet's volume directory on node ${NODE}:\n`);
    const volumeDir = join(nodeRoot(dir, NODE), 'pods', uid, 'volumes', 'kubernetes.io~csi', pvName);
    await host('ls', [volumeDir]);
    await host('findmnt', ['-o', 'TARGET,SOURCE,FSTYPE,OPTIONS', join(volumeDir, 'mount')]);
    await host('findmnt', ['-o', 'TARGET,SOURCE,FSTYPE', join(nodeRoot(dir, NODE), 'plugins', 'kubernetes.io', 'csi', 'pv', pvName, 'globalmount')]);
    await podLog('wrote: hello world');
    const read = await run('exec', 'test-volumes', '--', 'cat', `${MOUNT_PATH}/index.html`);
    if (read.trim() !== 'hello world') throw new Error(`the pod read ${JSON.stringify(read)} from its volume, not "hello world"`);

    await run('delete', 'pod', 'test-volumes');
    await run('get', 'pod');
    const leftovers = (await readdir(join(nodeRoot(dir, NODE), 'pods')).catch(() => [] as string[])).length;
    out(`\nthe volume is unpublished and unstaged (${leftovers} pod directories left on the node); the claim keeps the data\n`);
    await run('get', 'pvc');

    await run('apply', '-f', 'pod.yaml');
    const second = await runningPod();
    await run('get', 'pod', '-o', 'wide');
    if (second.metadata.uid === uid) throw new Error('the recreated pod has the old uid');
    await podLog('found: hello world');
    await run('describe', 'pvc', 'local-pvc');

    const pvs = resolveResource('pv');
    const pv = await api.get(pvs, undefined, pvName);
    const volumeId = (pv as { spec?: { csi?: { volumeHandle?: string } } }).spec?.csi?.volumeHandle ?? '';
    const csi = new CsiClient(`unix://${nodeSocket(dir, NODE)}`);
    try {
      await run('delete', 'pod', 'test-volumes');
      await run('delete', 'pvc', 'local-pvc');
      await until('the PV to be deleted (reclaim policy Delete)', 60_000, async () => ((await api.find(pvs, undefined, pvName)) === undefined ? true : undefined), upFailed);
      await run('get', 'pod,pvc,pv');
      const left = await csi.controller.ListVolumes({});
      out(`\nthe driver holds ${left.entries.length} volume(s)\n`);
      if (left.entries.some((e) => e.volume?.volume_id === volumeId)) throw new Error(`volume ${volumeId} is still in the driver after its PV was deleted`);
    } finally {
      csi.close();
    }
    out('\npart 1 finished: the pod wrote into its volume, was deleted and recreated, read the same bytes, and everything was reclaimed\n');
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
    await releasePool(join(nodeRoot(dir, NODE), 'pool')).catch(() => undefined);
    if (!options.keep) await rm(dir, { recursive: true, force: true });
    else out(`\nkept ${dir}\n`);
  }
}
