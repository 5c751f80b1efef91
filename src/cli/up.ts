// `stowage up` (see up-command.ts): the control plane and the embedded nodes in one foreground
// process, with readable logs, until SIGINT/SIGTERM. State lives in --state-dir:
//   store.db, api.sock, server.json   the control plane (clients find it through server.json)
//   pki/, admin.token, kubeconfig      TLS for https:// listeners, the admin's token, and the
//                                     kubeconfig for kubectl (all 0600)
//   nodes/<node>/                     each node's kubelet root: plugins/<driver>/csi.sock, pods/,
//                                     and for the local backend its pool (pool/pool.img on pool/pool)
//   plugins/<driver>/controller.sock  rbd, cephfs: the one Controller service
//
// Start order: the store, the API server, then the nodes — every node's driver listening,
// answering Probe ready and registered, then every node's agent — and only then the controllers'
// loops, so that no controller dials a node's socket before the node serves it (a claim left
// Pending by the last run would otherwise be provisioned against a socket nobody listens on yet).
// A node that fails to start does not stop `up`: it is reported NotReady and retried
// (embedded-nodes.ts). A start that fails as a whole (or is interrupted) stops what it started
// and releases the pools it mounted.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { StorageClass } from '../control/api/types/storage.js';
import { type ControlPlane, defaultListen, startControlPlane } from '../control/control-plane.js';
import { parseControllers, UnknownControllerError } from '../control/controllers/registry.js';
import { declareEmbeddedNode, declaredEmbeddedNodes, DRIVER_NAMES, EmbeddedNodes, nodeRoot, type EmbeddedBackend } from '../control/node/embedded-nodes.js';
import type { Store } from '../control/store/store.js';
import { releasePool } from '../driver/backends/local/pool-release.js';
import { parseMountInfo } from '../driver/mount/mount.js';
import { ensureAdminToken } from '../control/server/admin-token.js';
import type { AuthorizationMode } from '../control/server/rbac-authorizer.js';
import { type GlobalFlags, readServerInfo, stateDirOf } from './connection.js';
import { CliError } from './errors.js';
import { DEFAULT_CLASS_ANNOTATION } from './format/columns.js';
import { humanLogger } from './human-log.js';
import { kubeconfigServer, writeKubeconfig } from './kubeconfig.js';
import { parseQuantity } from './quantity.js';
import { parseOvercommit } from './driver-command.js';
import { parseDuration } from './delete-command.js';
import { ensureNamespace, NODE_LEASE_NAMESPACE } from '../control/node/node-lease.js';
import { DEFAULT_HTTPS_LISTEN, DEFAULT_STORAGE_CLASS, type UpFlags } from './up-command.js';

/** The nodes' driver, from --backend, --ceph-config and --pool-size. */
export function embeddedBackend(flags: Pick<UpFlags, 'backend' | 'cephConfig' | 'poolSize'> & Partial<Pick<UpFlags, 'localOvercommit'>>): EmbeddedBackend {
  const kind = flags.backend ?? 'local';
  if (kind === 'local') {
    let overcommit: number;
    try {
      overcommit = parseOvercommit(flags.localOvercommit ?? '1');
    } catch (e) {
      throw new CliError(`error: ${(e as Error).message}`);
    }
    return { kind, poolBytes: parseQuantity(flags.poolSize), overcommit };
  }
  if (kind !== 'rbd' && kind !== 'cephfs') throw new CliError(`error: --backend must be one of ${Object.keys(DRIVER_NAMES).join(', ')}, not ${JSON.stringify(kind)}`);
  if (!flags.cephConfig) throw new CliError(`error: --backend ${kind} needs --ceph-config FILE (ceph-csi's cluster list: [{"clusterID": ..., "monitors": [...]}])`);
  return { kind, cephConfig: resolve(flags.cephConfig) };
}

/**
 * The StorageClass `local` (default class unless another one is), created only when absent:
 * Immediate binding (no scheduler yet), Delete, expandable.
 */
export function ensureDefaultStorageClass(store: Store, log: Logger): void {
  if (store.get('storageclasses', undefined, DEFAULT_STORAGE_CLASS) !== undefined) return;
  const otherDefault = store.list('storageclasses').items.some((sc) => sc.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  store.create<StorageClass>({
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: DEFAULT_STORAGE_CLASS, ...(otherDefault ? {} : { annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } }) },
    provisioner: DRIVER_NAMES.local,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
    allowVolumeExpansion: true,
  });
  log.info({ storageClass: DEFAULT_STORAGE_CLASS, default: !otherDefault }, 'created StorageClass');
}

/**
 * What still uses the pool besides its own mount: mounts of the same filesystem elsewhere
 * (staged or published volumes) and loop devices backed by its image files. The pool can be
 * released only when there is none.
 */
export async function poolUsers(poolRoot: string): Promise<string[]> {
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const root = mounts.findLast((m) => m.mountPoint === poolRoot);
  if (root === undefined) return [];
  const users = mounts.filter((m) => m.majorMinor === root.majorMinor && m.mountPoint !== poolRoot).map((m) => m.mountPoint);
  for (const name of await readdir('/sys/block').catch(() => [] as string[])) {
    if (!/^loop\d+$/.test(name)) continue;
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
    if (backing.startsWith(`${poolRoot}/`)) users.push(`/dev/${name}`);
  }
  return users;
}

/** --authorization, as kube-apiserver's --authorization-mode names it (any case). */
export function authorizationMode(value: string | undefined): AuthorizationMode {
  const v = (value ?? 'AlwaysAllow').toLowerCase();
  if (v === 'rbac') return 'RBAC';
  if (v === 'alwaysallow') return 'AlwaysAllow';
  throw new CliError(`error: --authorization must be AlwaysAllow or RBAC, not ${JSON.stringify(value)}`);
}

/** The nodes `up` declares: --nodes N gives node-1…node-N; one node is named by --node-name. */
export function embeddedNodeNames(flags: Pick<UpFlags, 'nodes' | 'nodeName'>): string[] {
  const count = Number(flags.nodes ?? '1');
  if (!Number.isSafeInteger(count) || count < 1 || count > 64) throw new CliError(`error: --nodes must be a whole number from 1 to 64, not ${JSON.stringify(flags.nodes)}`);
  if (count === 1) return [flags.nodeName ?? 'node-1'];
  return Array.from({ length: count }, (_, i) => `node-${i + 1}`);
}

/** A whole number of seconds from a flag (at least `min`). */
function seconds(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new CliError(`error: ${flag} must be a whole number of seconds, at least ${min}, not ${JSON.stringify(value)}`);
  return n;
}

/** The node lifecycle flags: grace period (ms), lease duration and the default tolerations (s). */
export function lifecycleFlags(flags: Partial<Pick<UpFlags, 'nodeMonitorGracePeriod' | 'nodeLeaseDurationSeconds' | 'defaultNotReadyTolerationSeconds' | 'defaultUnreachableTolerationSeconds'>>): {
  gracePeriodMs: number;
  leaseDurationSeconds: number;
  notReady: number;
  unreachable: number;
} {
  const gracePeriodMs = parseDuration(flags.nodeMonitorGracePeriod ?? '40s');
  if (!(gracePeriodMs >= 1000)) throw new CliError(`error: --node-monitor-grace-period must be at least 1s, not ${JSON.stringify(flags.nodeMonitorGracePeriod)}`);
  return {
    gracePeriodMs,
    leaseDurationSeconds: seconds('--node-lease-duration-seconds', flags.nodeLeaseDurationSeconds ?? '40', 1),
    notReady: seconds('--default-not-ready-toleration-seconds', flags.defaultNotReadyTolerationSeconds ?? '300', 0),
    unreachable: seconds('--default-unreachable-toleration-seconds', flags.defaultUnreachableTolerationSeconds ?? '300', 0),
  };
}

/** --controllers, validated before anything starts: the names it enables, in start order. */
export function enabledControllers(value: string | undefined): string[] {
  try {
    return parseControllers(value ?? '*');
  } catch (err) {
    if (err instanceof UnknownControllerError) throw new CliError(`error: --controllers: ${err.message}`);
    throw err;
  }
}

/**
 * What `up` listens on: --listen as given, else the unix socket (the CLI's) and https on
 * 127.0.0.1:6443 (kubectl's, through the kubeconfig).
 */
export function upListen(flags: Pick<UpFlags, 'listen'>, stateDir: string): { listen: string[]; defaulted: boolean } {
  if (flags.listen && flags.listen.length > 0) return { listen: flags.listen, defaulted: false };
  return { listen: [defaultListen(stateDir), DEFAULT_HTTPS_LISTEN], defaulted: true };
}

function isAddressInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

class Interrupted extends Error {
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** Starts everything and returns; the servers keep the process alive until a signal stops them. */
export async function runUp(flags: UpFlags, g: GlobalFlags): Promise<void> {
  const stateDir = stateDirOf(g);
  const running = await readServerInfo(stateDir);
  if (running !== undefined) throw new CliError(`error: a control plane is already running in ${stateDir} (pid ${running.pid}, ${running.url})`);
  const backend = embeddedBackend(flags);
  const controllers = enabledControllers(flags.controllers);
  const authorization = authorizationMode(flags.authorization);
  const lifecycle = lifecycleFlags(flags);
  const log = humanLogger(flags.logLevel);
  const upLog = log.child({ component: 'up' });
  // The admin's: --token (or $STOWAGE_TOKEN) when given, else the state directory's own.
  const token = g.token ?? (process.env['STOWAGE_TOKEN'] || undefined) ?? (await ensureAdminToken(stateDir));
  const { listen, defaulted } = upListen(flags, stateDir);

  let plane: ControlPlane | undefined;
  let nodes: EmbeddedNodes | undefined;
  const nodeNames = flags.localDriver ? embeddedNodeNames(flags) : [];

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      // Every node whose start was attempted: one that failed may have mounted its pool first.
      const started = nodes?.attempted() ?? [];
      await nodes?.stop();
      await plane?.stop().catch((err: unknown) => log.error({ err }, 'control plane stop failed'));
      if (flags.keepPool || backend.kind !== 'local') return;
      for (const name of started) {
        const localDir = join(nodeRoot(stateDir, name), 'pool');
        const users = await poolUsers(join(localDir, 'pool')).catch(() => ['?']);
        if (users.length === 0) {
          await releasePool(localDir).then(
            () => upLog.info({ node: name, pool: localDir }, 'pool released'),
            (err: unknown) => upLog.error({ err, node: name }, 'could not release the pool'),
          );
        } else {
          upLog.warn({ node: name, pool: localDir, inUse: users.length }, 'pool stays mounted: volumes are still staged or published (pods keep running; the next `stowage up` picks them up)');
        }
      }
    })());

  // A signal during start-up is acted on between steps, so that nothing half-started is left.
  let starting = true;
  let interrupted: NodeJS.Signals | undefined;
  const checkInterrupted = (): void => {
    if (interrupted) throw new Interrupted(interrupted);
  };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      process.stderr.write(`${signal} again: exiting without finishing the shutdown\n`);
      process.exit(130);
    }
    upLog.info({ signal }, 'stopping');
    if (starting) {
      interrupted = signal;
      return;
    }
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const startPlane = (addresses: string[]): Promise<ControlPlane> =>
      startControlPlane({
        stateDir,
        logger: log.child({ component: 'control-plane' }),
        listen: addresses,
        token,
        authorization,
        ...(backend.kind === 'local' ? {} : { cephConfig: backend.cephConfig }),
        // Started below, once the nodes' drivers serve.
        controllers: { deferLoops: true, controllers, leaderElection: true, nodeMonitorGracePeriodMs: lifecycle.gracePeriodMs },
        store: { defaultTolerationSeconds: { notReady: lifecycle.notReady, unreachable: lifecycle.unreachable } },
      });
    try {
      plane = await startPlane(listen);
    } catch (err) {
      // The default port taken (another cluster on this machine): any free one; the kubeconfig names it.
      if (!defaulted || !isAddressInUse(err)) throw err;
      upLog.warn({ listen: DEFAULT_HTTPS_LISTEN }, 'the default API port is in use: serving https on another port (see the kubeconfig)');
      plane = await startPlane(listen.map((l) => (l === DEFAULT_HTTPS_LISTEN ? 'https://127.0.0.1:0' : l)));
    }
    checkInterrupted();
    const server = kubeconfigServer(plane.urls);
    if (server !== undefined) {
      const path = await writeKubeconfig(stateDir, { server, token, ...(plane.caPem === undefined ? {} : { caPem: plane.caPem }) });
      upLog.info({ kubeconfig: path, server, token: '***stripped***' }, 'wrote the admin kubeconfig (kubectl --kubeconfig FILE, or `stowage kubeconfig`)');
    }
    // The control plane stops serving when a commit fails; `up` must not linger half-alive.
    plane.store.onFailure(() => {
      upLog.error('the control plane stopped after a failed store commit; exiting');
      stop().finally(() => process.exit(1));
    });
    // The default class needs no parameters only for the local driver (Ceph's name a cluster).
    if (flags.defaultStorageClass && backend.kind === 'local') ensureDefaultStorageClass(plane.store, upLog);
    // Where the nodes' Leases live; kube-apiserver keeps it as it keeps kube-system.
    ensureNamespace(plane.store, NODE_LEASE_NAMESPACE);
    if (flags.localDriver) {
      nodes = new EmbeddedNodes({ plane, stateDir, backend, logLevel: flags.logLevel, logger: log, agent: { leaseDurationSeconds: lifecycle.leaseDurationSeconds } });
      const embedded = nodes;
      // Test hook (STOWAGE_TEST_HOOKS=1 only): SIGUSR2 freezes the agents named in
      // <state-dir>/paused-agents (one per line) and thaws the others, as a hung kubelet.
      if (process.env['STOWAGE_TEST_HOOKS'] === '1') {
        process.on('SIGUSR2', () => {
          void readFile(join(stateDir, 'paused-agents'), 'utf8')
            .catch(() => '')
            .then((text) => embedded.pauseAgents(new Set(text.split('\n').map((l) => l.trim()).filter((l) => l !== ''))))
            .then((paused) => upLog.warn({ paused }, 'test hook: node agents paused'));
        });
      }
      for (const name of nodeNames) declareEmbeddedNode(plane.store, name);
      await plane.store.flushed();
      // Every declared node (--nodes, and those joined in earlier runs): all drivers, then all agents.
      const declared = [...new Set([...nodeNames, ...declaredEmbeddedNodes(plane.store)])];
      const started = await nodes.startAll(declared);
      checkInterrupted();
      for (const [name, node] of started) {
        if (node === undefined) upLog.warn({ node: name }, 'node not ready: it is retried in the background (see the error above)');
        else upLog.info({ node: name, driver: nodes.driverName }, 'node ready');
      }
      // Nodes joined from now on.
      nodes.watch();
    }
    checkInterrupted();
    plane.controllers.start();
    starting = false;
    upLog.info({ api: plane.url, stateDir }, 'stowage is up (Ctrl-C to stop)');
  } catch (err) {
    if (!(err instanceof Interrupted)) upLog.error({ err }, 'start failed');
    await stop();
    if (err instanceof Interrupted) process.exit(0);
    throw new CliError(`error: stowage up failed: ${(err as Error).message}`);
  }
}
