// `stowage down`: everything a state directory's nodes run, stopped, as `kind delete cluster` and
// k3s's kill-all script do — but through the drivers, so volumes are unmounted the way they were
// mounted:
//   1. a running `stowage up` on the directory is stopped (SIGTERM; it leaves pods running);
//   2. each node's driver is started alone (no agent: nobody's pod starts again) and the node is
//      drained (control/node/node-drain.ts): containers stopped within their grace periods, pods'
//      runtime state removed, volumes unpublished and unstaged;
//   3. the drivers stop and the local pools (mount + loop device) are released.
// The objects stay in the store: a later `stowage up` starts the pods again with their volumes.
// `--purge` then deletes every volume and snapshot in the backends and the state directory itself
// (local: the pools are in it; rbd / cephfs: DeleteSnapshot and DeleteVolume through the driver,
// and the directory is kept if any of them fails, so nothing is forgotten while it still exists).
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Pod } from '../control/api/types/core.js';
import type { VolumeSnapshotContent } from '../control/api/types/snapshot.js';
import { type ControlPlane, STORE_FILE, startControlPlane } from '../control/control-plane.js';
import { decodeSecret } from '../control/controllers/provisioner.js';
import { ANN_DELETION_SECRET_NAME as SNAP_SECRET_NAME, ANN_DELETION_SECRET_NAMESPACE as SNAP_SECRET_NAMESPACE } from '../control/controllers/snapshot-controller.js';
import { ANN_DELETION_SECRET_NAME, ANN_DELETION_SECRET_NAMESPACE } from '../control/controllers/volume-util.js';
import { controllerSocket, declaredEmbeddedNodes, DRIVER_NAMES, EmbeddedNodes, nodeRoot, nodeSocket } from '../control/node/embedded-nodes.js';
import { type DrainReport, drainNode } from '../control/node/node-drain.js';
import { PodRuntime } from '../control/node/runtime/pod-runtime.js';
import type { Store } from '../control/store/store.js';
import { CsiClient } from '../csi/client.js';
import { releasePool } from '../driver/backends/local/pool-release.js';
import { ExecRunner } from '../driver/mount/exec.js';
import { Mounter, parseMountInfo } from '../driver/mount/mount.js';
import { type GlobalFlags, readServerInfo, stateDirOf } from './connection.js';
import { CliError } from './errors.js';
import { humanLogger } from './human-log.js';
import { embeddedBackend, poolUsers } from './up.js';

export interface DownFlags {
  backend: string;
  cephConfig?: string;
  gracePeriod?: string;
  purge?: boolean;
  logLevel: string;
}

/** How long a running `up` may take to stop before it is killed. */
const UP_STOP_TIMEOUT_MS = 90_000;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Stops the `up` serving the state directory, if one does: SIGTERM, then SIGKILL after the timeout. */
async function stopUp(stateDir: string, out: NodeJS.WritableStream): Promise<void> {
  const running = await readServerInfo(stateDir);
  if (running === undefined) return;
  out.write(`stopping stowage up (pid ${running.pid})\n`);
  process.kill(running.pid, 'SIGTERM');
  if (await waitForExit(running.pid, UP_STOP_TIMEOUT_MS)) return;
  process.kill(running.pid, 'SIGKILL');
  if (!(await waitForExit(running.pid, 10_000))) throw new CliError(`error: stowage up (pid ${running.pid}) did not stop`);
}

function parseGrace(value: string | undefined): number | undefined {
  if (value === undefined || value === '-1') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`error: --grace-period must be a whole number of seconds (or -1: each pod's own), not ${JSON.stringify(value)}`);
  return n;
}

/** Mounts under dir in this process's mount table, innermost last. */
async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return mounts.map((m) => m.mountPoint).filter((p) => p === dir || p.startsWith(`${dir}/`));
}

function secretsOf(store: Store, name: string | undefined, namespace: string | undefined): Record<string, string> {
  if (!name) return {};
  const secret = store.get('secrets', namespace ?? 'default', name);
  return secret === undefined ? {} : decodeSecret(secret);
}

/** --purge on Ceph: every snapshot, then every volume of the driver, deleted through its Controller service. */
async function deleteCephVolumes(store: Store, stateDir: string, driverName: string, out: NodeJS.WritableStream): Promise<string[]> {
  const failures: string[] = [];
  const client = CsiClient.connect(`unix://${controllerSocket(stateDir, driverName)}`);
  try {
    for (const content of store.list('volumesnapshotcontents').items as VolumeSnapshotContent[]) {
      const handle = content.status?.snapshotHandle ?? content.spec.source.snapshotHandle;
      if (content.spec.driver !== driverName || !handle) continue;
      const secrets = secretsOf(store, content.metadata.annotations?.[SNAP_SECRET_NAME], content.metadata.annotations?.[SNAP_SECRET_NAMESPACE]);
      await client.controller.DeleteSnapshot({ snapshot_id: handle, secrets }, { timeoutMs: 60_000 }).then(
        () => out.write(`deleted snapshot ${handle} (${content.metadata.name ?? ''})\n`),
        (err: unknown) => failures.push(`snapshot ${handle}: ${(err as Error).message}`),
      );
    }
    for (const pv of store.list('persistentvolumes').items) {
      const csi = pv.spec.csi;
      if (csi?.driver !== driverName) continue;
      const secrets = secretsOf(store, pv.metadata.annotations?.[ANN_DELETION_SECRET_NAME], pv.metadata.annotations?.[ANN_DELETION_SECRET_NAMESPACE]);
      await client.controller.DeleteVolume({ volume_id: csi.volumeHandle, secrets }, { timeoutMs: 60_000 }).then(
        () => out.write(`deleted volume ${csi.volumeHandle} (${pv.metadata.name ?? ''})\n`),
        (err: unknown) => failures.push(`volume ${csi.volumeHandle}: ${(err as Error).message}`),
      );
    }
  } finally {
    client.close();
  }
  return failures;
}

function summary(r: DrainReport): string {
  return `node ${r.node}: ${r.pods} pod(s), ${r.containersStopped} container(s) stopped, ${r.unpublished} volume publication(s) and ${r.unstaged} staging(s) undone${r.unmounted > 0 ? `, ${r.unmounted} other mount(s) released` : ''}\n`;
}

export async function runDown(flags: DownFlags, g: GlobalFlags, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const stateDir = stateDirOf(g);
  if (!existsSync(join(stateDir, STORE_FILE))) throw new CliError(`error: ${stateDir} holds no stowage state (no ${STORE_FILE}); nothing to stop`);
  const backend = embeddedBackend({ backend: flags.backend, poolSize: '20Gi', ...(flags.cephConfig === undefined ? {} : { cephConfig: flags.cephConfig }) });
  const graceSeconds = parseGrace(flags.gracePeriod);
  const log: Logger = humanLogger(flags.logLevel);
  const failures: string[] = [];

  await stopUp(stateDir, out);

  let plane: ControlPlane | undefined;
  let nodes: EmbeddedNodes | undefined;
  let names: string[] = [];
  try {
    // The store and the unix socket only: no controllers run, and `up` cannot start meanwhile.
    plane = await startControlPlane({ stateDir, logger: log.child({ component: 'control-plane' }), controllers: { deferLoops: true, controllers: [] } });
    names = declaredEmbeddedNodes(plane.store);
    nodes = new EmbeddedNodes({ plane, stateDir, backend, logLevel: flags.logLevel, logger: log, agents: false, retryBaseMs: 3_600_000 });
    const started = await nodes.startAll(names);
    const pods = plane.store.list('pods').items as Pod[];
    const runner = new ExecRunner(log.child({ component: 'runtime' }));
    const mounter = new Mounter(runner);
    const driverName = DRIVER_NAMES[backend.kind];
    const reports = await Promise.all(
      names.map(async (name) => {
        const root = nodeRoot(stateDir, name);
        const client = started.get(name) === undefined ? undefined : CsiClient.connect(`unix://${nodeSocket(stateDir, name, driverName)}`);
        if (client === undefined) failures.push(`node ${name}: its driver did not start; its volumes stay mounted`);
        try {
          return await drainNode({
            nodeName: name,
            rootDir: root,
            pods: pods.filter((p) => p.spec.nodeName === name),
            runtime: new PodRuntime({ rootDir: root, runner, logger: log.child({ component: 'runtime', node: name }) }),
            nodeClient: (driver) => (driver === driverName ? client : undefined),
            mounter,
            logger: log,
            ...(graceSeconds === undefined ? {} : { graceSeconds }),
          });
        } finally {
          client?.close();
        }
      }),
    );
    for (const r of reports) {
      out.write(summary(r));
      failures.push(...r.failures.map((f) => `node ${r.node}: ${f}`));
    }
    if (flags.purge && backend.kind !== 'local' && failures.length === 0) failures.push(...(await deleteCephVolumes(plane.store, stateDir, driverName, out)));
  } finally {
    await nodes?.stop();
    await plane?.stop().catch((err: unknown) => log.error({ err }, 'control plane stop failed'));
  }

  if (backend.kind === 'local') {
    for (const name of names) {
      const localDir = join(nodeRoot(stateDir, name), 'pool');
      if (!existsSync(localDir)) continue;
      const users = await poolUsers(join(localDir, 'pool')).catch((err: unknown) => [`? (${(err as Error).message})`]);
      if (users.length > 0) {
        failures.push(`node ${name}: the pool stays mounted, still used by ${users.join(', ')}`);
        continue;
      }
      try {
        await releasePool(localDir);
        out.write(`node ${name}: pool released\n`);
      } catch (err) {
        failures.push(`node ${name}: the pool could not be released: ${(err as Error).message}`);
      }
    }
  }

  if (failures.length > 0) {
    throw new CliError([...failures.map((f) => `error: ${f}`), `error: stowage down did not finish${flags.purge ? `; ${stateDir} is kept` : ''}`].join('\n'));
  }
  if (flags.purge) {
    // Never descend into a mount: the pools and every volume are released by now, or we stopped above.
    const left = await mountsUnder(stateDir);
    if (left.length > 0) throw new CliError(`error: ${stateDir} is kept: still mounted: ${left.join(', ')}`);
    await rm(stateDir, { recursive: true, force: true });
    out.write(`removed ${stateDir}\n`);
  }
  out.write('stowage is down\n');
}
