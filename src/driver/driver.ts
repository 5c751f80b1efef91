import { DEFAULT_CEPHFS_STATE_DIR, DEFAULT_RBD_STATE_DIR } from './defaults.js';
import { pino, type Logger } from 'pino';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { UnavailableError, UnimplementedError } from '../csi/errors.js';
import { startCsiServer, type CallContext, type CallInfo, type GroupControllerService } from '../csi/server.js';
import { BatchedStdout } from '../log/batched-stdout.js';
import { runWithRequestLog } from '../log/request-log.js';
import type { Backend, GroupSnapshots } from './backends/backend.js';
import { DEFAULT_KUBELET_DIR, NodePaths } from './backends/node-paths.js';
import { BACKENDS } from './backends/registry.js';
import { controllerService } from './controller.js';
import { groupControllerService } from './group-controller.js';
import { identityService } from './identity.js';
import { InFlight } from './inflight.js';
import type { DriverMetrics } from './metrics.js';
import { ExecRunner } from './mount/exec.js';
import { LoopDevices } from './mount/loop.js';
import { Mounter } from './mount/mount.js';
import { nodeService } from './node.js';

export const DRIVER_VERSION = '0.1.0';

export interface DriverOptions {
  backend: 'local' | 'rbd' | 'cephfs';
  endpoint: string;
  nodeId: string;
  driverName: string;
  controller: boolean;
  node: boolean;
  /** local backend: the pool directory and the size of pool.img. */
  localDir?: string;
  localPoolSizeBytes?: number;
  /** local backend: how many times its usable size the pool may promise (1 = no overcommit). */
  localOvercommit?: number;
  /** rbd and cephfs backends: ceph-csi's cluster list (JSON file). */
  cephConfig?: string;
  /** rbd backend: node state (stashes, rbd-fuse mounts); cephfs: stashes and ceph-fuse keyfiles. */
  stateDir?: string;
  /** rbd and cephfs backends: seconds a Ceph connection or operation may take. */
  cephTimeoutSeconds?: number;
  /** rbd backend: clones deeper than this are flattened. */
  maxCloneDepth?: number;
  maxVolumesPerNode: number;
  /**
   * Node service: the kubelet directories staging and target paths must lie beneath (default
   * /var/lib/kubelet; `stowage up` gives each embedded node its own root).
   */
  kubeletDirs?: string[];
  metricsAddress?: string;
  logLevel: string;
  logger?: Logger;
}

export interface RunningDriver {
  /** Resolves once the backend is open (Probe turns ready). */
  backendReady: Promise<void>;
  /** Stops taking calls, waits for those in flight, removes the socket. */
  stop(): Promise<void>;
}

/**
 * Assembles and starts one driver process. The socket is served at once; the backend opens in
 * the background (creating and mounting the pool can take a while the first time), and until it
 * is open Probe says not ready and every other call answers UNAVAILABLE.
 */
export async function startDriver(opts: DriverOptions): Promise<RunningDriver> {
  // Lines logged in one turn of the event loop go out together in one write(2), without a trip
  // through the thread pool (see log/batched-stdout.ts). Flushed at exit.
  const log = opts.logger ?? pino({ level: opts.logLevel, base: { driver: opts.driverName, node: opts.nodeId } }, new BatchedStdout(1));
  const runner = new ExecRunner(log);
  const mounter = new Mounter(runner);
  const loops = new LoopDevices();
  // prom-client costs ~7 MB of resident memory: load it only when metrics are asked for.
  let metrics: DriverMetrics | undefined;
  if (opts.metricsAddress) {
    const { DriverMetrics } = await import('./metrics.js');
    metrics = new DriverMetrics(opts.driverName);
  }
  const inflight = new InFlight();
  const paths = new NodePaths((opts.kubeletDirs?.length ? opts.kubeletDirs : [DEFAULT_KUBELET_DIR]).map((d) => resolve(d)), BACKENDS[opts.backend].ownPaths(opts).map((d) => resolve(d)));

  let opened: Backend | undefined;
  const backend = lazyBackend(opts.backend, () => opened);

  // Group snapshots, where the backend cuts them; asked of the backend once it is open.
  const serveGroups = opts.controller && BACKENDS[opts.backend].groupSnapshots === true;
  const groupsOf = (): GroupSnapshots => {
    const g = backend.groupSnapshots;
    if (g === undefined) throw new UnavailableError('the storage backend serves no group snapshots');
    return g;
  };
  const groups: GroupSnapshots = {
    get journal() {
      return groupsOf().journal;
    },
    newId: (ctx) => groupsOf().newId(ctx),
    create: (group, members, ctx) => groupsOf().create(group, members, ctx),
  };

  const server = await startCsiServer({
    endpoint: opts.endpoint,
    logger: log,
    ...(metrics ? { onCall: ({ method, code, seconds }: CallInfo) => metrics.observe(method, code, seconds) } : {}),
    identity: identityService({
      driverName: opts.driverName,
      version: DRIVER_VERSION,
      backend,
      servesController: opts.controller,
      servesGroupController: serveGroups,
      accessibilityConstraints: BACKENDS[opts.backend].accessibilityConstraints,
    }),
    ...(opts.controller ? { controller: withRequestLogs(controllerService({ backend, inflight })) } : {}),
    ...(opts.node ? { node: withRequestLogs(nodeService({ backend, inflight, paths })) } : {}),
    ...(serveGroups ? { groupController: withRequestLogs(groupControllerService({ backend, groups, inflight })) } : {}),
    ...(!serveGroups && opts.controller && BACKENDS[opts.backend].noGroupSnapshots ? { groupController: unimplementedGroups(BACKENDS[opts.backend].noGroupSnapshots ?? '') } : {}),
  });
  log.info({ endpoint: opts.endpoint, controller: opts.controller, node: opts.node, ...(opts.node ? { kubeletDirs: paths.roots } : {}) }, 'CSI socket ready');

  let metricsServer: Server | undefined;
  if (metrics && opts.metricsAddress) {
    metricsServer = await metrics.listen(opts.metricsAddress);
    log.info({ address: opts.metricsAddress }, 'metrics served at /metrics');
  }

  const stoppers: (() => void)[] = [];
  const backendReady = BACKENDS[opts.backend].open(opts, { runner, mounter, loops, log, paths, stoppers }).then((b) => {
    opened = b;
  });

  return {
    backendReady,
    async stop() {
      for (const stop of stoppers) stop();
      await server.stop();
      await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
      await opened?.close();
      log.info('driver stopped');
    },
  };
}

export { DEFAULT_CEPHFS_STATE_DIR, DEFAULT_RBD_STATE_DIR };

/** Runs every handler of a service with its call's logger as the request log (see log/request-log.ts). */
function withRequestLogs<S extends object>(service: S): S {
  const wrapped: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(service)) {
    const h = handler as (req: unknown, ctx: CallContext) => Promise<unknown>;
    wrapped[name] = (req: unknown, ctx: CallContext) => runWithRequestLog(ctx.log, () => h(req, ctx));
  }
  return wrapped as S;
}

/** A Backend whose every use answers UNAVAILABLE until the real one is open. */
/** A GroupController that says why there is none (not advertised: a CO that asks anyway learns why). */
function unimplementedGroups(why: string): GroupControllerService {
  const refuse = async (): Promise<never> => {
    throw new UnimplementedError(why);
  };
  return { GroupControllerGetCapabilities: refuse, CreateVolumeGroupSnapshot: refuse, DeleteVolumeGroupSnapshot: refuse, GetVolumeGroupSnapshot: refuse };
}

function lazyBackend(kind: string, get: () => Backend | undefined): Backend {
  // Methods are bound once: every RPC reads several, and a fresh bound function per read adds up.
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy({} as Backend, {
    get(_target, prop) {
      const real = get();
      if (!real) {
        if (prop === 'ready') return async () => false;
        // GetPluginInfo names the backend: it must answer while the pool is still being opened
        // (node-driver-registrar calls it first thing and does not expect UNAVAILABLE).
        if (prop === 'kind') return kind;
        throw new UnavailableError('the storage backend is still starting; retry shortly');
      }
      const value = Reflect.get(real, prop, real) as unknown;
      if (typeof value !== 'function') return value;
      let method = bound.get(prop);
      if (method === undefined) {
        method = (value as (...a: unknown[]) => unknown).bind(real);
        bound.set(prop, method);
      }
      return method;
    },
  });
}
