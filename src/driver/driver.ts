import { pino, type Logger } from 'pino';
import type { Server } from 'node:http';
import { UnavailableError } from '../csi/errors.js';
import { startCsiServer, type CallContext, type CallInfo } from '../csi/server.js';
import { runWithRequestLog } from '../log/request-log.js';
import type { Backend } from './backends/backend.js';
import { LocalBackend } from './backends/local/local-backend.js';
import { controllerService } from './controller.js';
import { identityService } from './identity.js';
import { InFlight } from './inflight.js';
import type { DriverMetrics } from './metrics.js';
import { ExecRunner } from './mount/exec.js';
import { LoopDevices } from './mount/loop.js';
import { Mounter } from './mount/mount.js';
import { nodeService } from './node.js';

export const DRIVER_VERSION = '0.1.0';

export interface DriverOptions {
  backend: 'local';
  endpoint: string;
  nodeId: string;
  driverName: string;
  controller: boolean;
  node: boolean;
  localDir: string;
  localPoolSizeBytes: number;
  maxVolumesPerNode: number;
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
  const log = opts.logger ?? pino({ level: opts.logLevel, base: { driver: opts.driverName, node: opts.nodeId } });
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

  let opened: Backend | undefined;
  const backend = lazyBackend(opts.backend, () => opened);

  const server = await startCsiServer({
    endpoint: opts.endpoint,
    logger: log,
    ...(metrics ? { onCall: ({ method, code, seconds }: CallInfo) => metrics.observe(method, code, seconds) } : {}),
    identity: identityService({ driverName: opts.driverName, version: DRIVER_VERSION, backend, servesController: opts.controller }),
    ...(opts.controller ? { controller: withRequestLogs(controllerService({ backend, inflight })) } : {}),
    ...(opts.node ? { node: withRequestLogs(nodeService({ backend, inflight, ownPaths: [opts.localDir] })) } : {}),
  });
  log.info({ endpoint: opts.endpoint, controller: opts.controller, node: opts.node }, 'CSI socket ready');

  let metricsServer: Server | undefined;
  if (metrics && opts.metricsAddress) {
    metricsServer = await metrics.listen(opts.metricsAddress);
    log.info({ address: opts.metricsAddress }, 'metrics served at /metrics');
  }

  const backendReady = LocalBackend.open({
    dir: opts.localDir,
    poolSizeBytes: opts.localPoolSizeBytes,
    nodeId: opts.nodeId,
    maxVolumesPerNode: opts.maxVolumesPerNode,
    runner,
    mounter,
    loops,
    log,
  }).then((b) => {
    opened = b;
    log.info({ root: b.root }, 'local backend ready');
  });

  return {
    backendReady,
    async stop() {
      await server.stop();
      await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
      await opened?.close();
      log.info('driver stopped');
    },
  };
}

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
function lazyBackend(kind: string, get: () => Backend | undefined): Backend {
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
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
    },
  });
}
