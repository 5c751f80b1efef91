// The main job's first part: seed 003's story on the embedded control plane, the way a user meets
// it. A real `stowage up` (control plane, one node with its driver and agent) runs in a throwaway
// state directory; the story applies a StorageClass and a PVC, then seed 003's pod (its container
// writes `hello world` into the volume unless it finds it there), shows `get pod/pvc/pv` and the
// kubelet's paths as seed 003 does, deletes the pod, recreates it and reads the file back, then
// deletes everything and shows the volume gone — leaving nothing behind (no mounts, no loops).
//
// Two backends tell it: `local` (the default: a btrfs pool, no cluster needed) and `rbd`, which
// first starts `stowage ceph-dev` (a one-node Ceph cluster) and then applies seed 000's objects —
// its Secret, StorageClass csi-rbd-sc and PVC rbd-pvc — against it, showing the image with
// `rbd info` as seed 000 does.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CsiClient } from '../csi/client.js';
import { releasePool } from '../driver/backends/local/pool-release.js';
import type { PersistentVolumeClaim, Pod } from '../control/api/types/core.js';
import { CONTROLLER_ENDPOINT_ANNOTATION } from '../control/controllers/driver-registry.js';
import { DRIVER_NAMES, nodeRoot, nodeSocket } from '../control/node/embedded-nodes.js';
import { ApiClient, resolveResource } from './api-client.js';
import { readServerInfo } from './connection.js';
import type { DevClusterInfo } from '../ceph/dev-cluster.js';

const BIN = fileURLToPath(new URL('../../../bin/stowage.js', import.meta.url));

/** Seed 000's StorageClass, for the local driver. */
const STORAGE_CLASS = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
   name: csi-local-sc
provisioner: ${DRIVER_NAMES.local}
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

/**
 * Seed 000's StorageClass csi-rbd-sc (test/fixtures/seeds/000-storageclass.yaml), for our rbd
 * driver and the dev cluster: the seed names its own ceph-csi build as provisioner and its own
 * cluster's ID; everything else is the seed's.
 */
function rbdStorageClass(clusterID: string, pool: string): string {
  return `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
   name: csi-rbd-sc
provisioner: ${DRIVER_NAMES.rbd}
parameters:
   clusterID: ${clusterID}
   pool: ${pool}
   imageFeatures: layering
   csi.storage.k8s.io/provisioner-secret-name: csi-rbd-secret
   csi.storage.k8s.io/provisioner-secret-namespace: default
   csi.storage.k8s.io/controller-expand-secret-name: csi-rbd-secret
   csi.storage.k8s.io/controller-expand-secret-namespace: default
   csi.storage.k8s.io/node-stage-secret-name: csi-rbd-secret
   csi.storage.k8s.io/node-stage-secret-namespace: default
   csi.storage.k8s.io/fstype: ext4
reclaimPolicy: Delete
allowVolumeExpansion: true
mountOptions:
   - discard
`;
}

/** The Secret seed 000's class names (the seed applies a secret.yaml it does not show). */
function rbdSecret(userID: string, userKey: string): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: csi-rbd-secret
  namespace: default
stringData:
  userID: ${userID}
  userKey: ${userKey}
`;
}

/** Seed 000's pvc.yaml, byte for byte. */
const RBD_PVC = `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: rbd-pvc
spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 1Gi
  storageClassName: csi-rbd-sc
`;

const NODE = 'demo-node';
const MOUNT_PATH = '/usr/share/nginx/html';

/**
 * Seed 003's pod.yaml, with a command: the embedded runtime records images but does not pull
 * them, so the container runs a shell over the node's root filesystem. It writes index.html
 * unless it is already there, and says which.
 */
const pod = (claimName: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: test-volumes
spec:
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: ${claimName}
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

export type StoryBackend = 'local' | 'rbd';

export interface StoryOptions {
  /** local (default) or rbd (starts a ceph-dev cluster in the story's directory). */
  backend?: StoryBackend;
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

/** A command's output with the admin key hidden: the story prints what it runs, never a secret. */
function stripKey(text: string, key: string): string {
  return key ? text.split(key).join('***stripped***') : text;
}

export async function controlPlaneStory(options: StoryOptions = {}): Promise<void> {
  const backend = options.backend ?? 'local';
  const print = options.out ?? ((t: string) => process.stdout.write(t));
  let secretKey = '';
  const out = (t: string): void => print(stripKey(t, secretKey));
  const dir = await mkdtemp(join(tmpdir(), 'stowage-story-'));
  const cephDir = join(dir, 'ceph');
  const logPath = join(dir, 'up.log');
  const logChunks: Buffer[] = [];
  let up: ChildProcess | undefined;
  let exited: Promise<number | null> | undefined;
  let exitCode: number | null | undefined;
  let cephStarted = false;

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

  /** A host command, printed as the seed prints its own (ls, findmnt, rbd). */
  const host = async (cmd: string, args: string[], shown: string[] = args): Promise<string> => {
    out(`\n$ ${cmd} ${shown.join(' ')}\n`);
    const text = await new Promise<string>((resolve) => execFile(cmd, args, (err, stdout, stderr) => resolve(`${stdout}${stderr}${err && !stderr ? `${err.message}\n` : ''}`)));
    out(text);
    return text;
  };

  const driverName = DRIVER_NAMES[backend];
  const claimName = backend === 'rbd' ? 'rbd-pvc' : 'local-pvc';
  let ceph: DevClusterInfo | undefined;
  /** `rbd` against the dev cluster as its admin (the conf names the admin keyring). */
  const rbd = (args: string[]): Promise<string> => host('rbd', ['-c', ceph?.conf ?? '', ...args], args);

  try {
    out(`Part 1 — seed 003's story${backend === 'rbd' ? ' on Ceph RBD (seed 000)' : ''}: a pod writes into its PersistentVolume, is deleted, comes back and finds its data\n`);
    const upArgs = ['--node-name', NODE, '--log-level', 'info'];
    if (backend === 'rbd') {
      out(`\n$ stowage ceph-dev up --dir ${cephDir}     (a one-node Ceph cluster: mon, mgr, memstore OSD, MDS)\n`);
      cephStarted = true;
      const text = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [BIN, 'ceph-dev', 'up', '--dir', cephDir, '--memstore-size', '2Gi'], { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
          err ? reject(new Error(`stowage ceph-dev up failed: ${stderr.trim().split('\n').slice(-3).join(' | ') || err.message}`)) : resolve(stdout),
        ),
      );
      ceph = JSON.parse(text) as DevClusterInfo;
      secretKey = ceph.userKey;
      out(text);
      // The driver's cluster list: seed 000's ConfigMap ceph-csi-config, for this cluster.
      const config = JSON.stringify([{ clusterID: ceph.clusterID, monitors: ceph.monitors }], null, 2);
      await writeFile(join(dir, 'ceph-csi-config.json'), `${config}\n`);
      out(`\n$ cat ceph-csi-config.json     (seed 000's ceph-csi-config: clusterID → monitors)\n${config}\n`);
      upArgs.unshift('--backend', 'rbd', '--ceph-config', join(dir, 'ceph-csi-config.json'));
    } else {
      upArgs.unshift('--pool-size', '2Gi');
    }
    out(`\n$ stowage up --state-dir ${dir} ${upArgs.join(' ')} &     (logs: ${logPath})\n`);
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, ...upArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => logChunks.push(c));
    up.stderr?.on('data', (c: Buffer) => logChunks.push(c));
    exited = new Promise((resolve) => up?.once('exit', (code) => resolve((exitCode = code))));
    const upFailed = (): string | undefined => (exitCode === undefined ? undefined : `stowage up exited (${exitCode}): ${Buffer.concat(logChunks).toString('utf8').trim().split('\n').slice(-3).join(' | ')}`);

    const info = await until('the control plane', 60_000, () => readServerInfo(dir), upFailed);
    const api = new ApiClient({ server: info.url });
    const csiDrivers = resolveResource('csidrivers');
    await until(`the ${driverName} driver to register`, 90_000, async () => (await api.find(csiDrivers, undefined, driverName))?.metadata.annotations?.[CONTROLLER_ENDPOINT_ANNOTATION], upFailed);
    await until('stowage up to finish starting', 60_000, async () => (Buffer.concat(logChunks).toString('utf8').includes('stowage is up') ? true : undefined), upFailed);
    out(`control plane at ${info.url}; node ${NODE} runs the ${driverName} driver and a node agent\n`);
    await run('get', 'nodes');

    if (ceph !== undefined) {
      await writeFile(join(dir, 'secret.yaml'), rbdSecret(ceph.userID, ceph.userKey));
      await writeFile(join(dir, 'storageclass.yaml'), rbdStorageClass(ceph.clusterID, ceph.pool));
      await writeFile(join(dir, 'pvc.yaml'), RBD_PVC);
      await run('apply', '-f', 'secret.yaml');
    } else {
      await writeFile(join(dir, 'storageclass.yaml'), STORAGE_CLASS);
      await writeFile(join(dir, 'pvc.yaml'), PVC);
    }
    await writeFile(join(dir, 'pod.yaml'), pod(claimName));
    await run('apply', '-f', 'storageclass.yaml');
    await run('apply', '-f', 'pvc.yaml');
    const pvcs = resolveResource('pvc');
    const pods = resolveResource('pods');
    const pvs = resolveResource('pv');
    const bound = await until(
      `${claimName} to be Bound`,
      60_000,
      async () => {
        const claim = await api.find<PersistentVolumeClaim>(pvcs, 'default', claimName);
        return claim?.status?.phase === 'Bound' ? claim : undefined;
      },
      upFailed,
    );
    const pvName = bound.spec.volumeName ?? '';
    await run('get', 'pvc');
    await run('get', 'pv');
    const pv = (await api.get(pvs, undefined, pvName)) as { spec?: { csi?: { volumeHandle?: string; volumeAttributes?: Record<string, string> } } };
    const volumeId = pv.spec?.csi?.volumeHandle ?? '';
    const image = pv.spec?.csi?.volumeAttributes?.['imageName'] ?? '';
    if (ceph !== undefined) {
      out(`\nthe PV's image in pool ${ceph.pool}, as seed 000 shows it:\n`);
      await rbd(['info', `${ceph.pool}/${image}`]);
    }

    const runningPod = async (): Promise<Pod> =>
      until(
        'pod test-volumes to be Running',
        120_000,
        async () => {
          const p = await api.find<Pod>(pods, 'default', 'test-volumes');
          return p?.status?.phase === 'Running' && (p.status['containerStatuses'] as { ready?: boolean }[] | undefined)?.[0]?.ready ? p : undefined;
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
    await run('describe', 'pvc', claimName);

    await run('delete', 'pod', 'test-volumes');
    await run('delete', 'pvc', claimName);
    await until('the PV to be deleted (reclaim policy Delete)', 60_000, async () => ((await api.find(pvs, undefined, pvName)) === undefined ? true : undefined), upFailed);
    await run('get', 'pod,pvc,pv');
    if (ceph !== undefined) {
      // The rbd driver keeps no list of its own (no LIST_VOLUMES): the pool is the truth.
      const images = await rbd(['ls', ceph.pool]);
      out(`\nthe pool ${ceph.pool} holds ${images.split('\n').filter(Boolean).length} image(s)\n`);
      if (images.split('\n').includes(image)) throw new Error(`image ${image} is still in pool ${ceph.pool} after its PV was deleted`);
    } else {
      const csi = new CsiClient(`unix://${nodeSocket(dir, NODE)}`);
      try {
        const left = await csi.controller.ListVolumes({});
        out(`\nthe driver holds ${left.entries.length} volume(s)\n`);
        if (left.entries.some((e) => e.volume?.volume_id === volumeId)) throw new Error(`volume ${volumeId} is still in the driver after its PV was deleted`);
      } finally {
        csi.close();
      }
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
    if (backend === 'local') await releasePool(join(nodeRoot(dir, NODE), 'pool')).catch(() => undefined);
    if (cephStarted) {
      out(`\n$ stowage ceph-dev down --dir ${cephDir}\n`);
      await new Promise<void>((resolve) =>
        execFile(process.execPath, [BIN, 'ceph-dev', 'down', '--dir', cephDir], (err, _stdout, stderr) => {
          if (err) out(`ceph-dev down failed: ${stderr || err.message}\n`);
          resolve();
        }),
      );
    }
    if (!options.keep) await rm(dir, { recursive: true, force: true });
    else out(`\nkept ${dir}\n`);
  }
}
