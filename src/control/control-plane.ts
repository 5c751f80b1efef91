// The embedded control plane: the store (<stateDir>/store.db), the Kubernetes API server and the
// storage controllers, in one process. It announces itself in <stateDir>/server.json ({url, pid})
// so that the CLI finds it through --state-dir; the file is removed on stop.
//
// Listening: by default on the unix socket <stateDir>/api.sock (owner-only, so the file mode is the
// authentication). Pass `listen` for anything else: "http://127.0.0.1:PORT" (PORT 0: any free
// port), "unix:///path", or several addresses at once (e.g. the socket plus loopback HTTP for
// kubectl). `url` is the first. An https:// address is served with the serving certificate of
// <stateDir>/pki/ (pki.ts), made for the hosts of every https address.
import { VolumeStatsCache } from './node/volume-stats.js';
import { nodeRoot, safeComponent } from './node/layout.js';
import { containerDir, logFile } from './node/runtime/files.js';
import type { Pod } from './api/types/core.js';
import type { PodLogLocator } from './server/pod-log.js';
import { ContainerUnavailableError, type PodExecutor } from './server/pod-exec.js';
import { ContainerNotFoundError, ContainerNotRunningError, PodRuntime } from './node/runtime/pod-runtime.js';
import { processStartTicks } from './node/runtime/proc.js';
import { ExecRunner } from '../driver/mount/exec.js';
import { CsiCallJournal } from '../csi/call-journal.js';
import { CephPools } from './server/ui-ceph-pools.js';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type ApiServer, startApiServer } from './server/api-server.js';
import { parseListenAddress } from './server/listen-address.js';
import { ensurePki } from './server/pki.js';
import type { AuthorizationMode } from './server/rbac-authorizer.js';
import { TokenSigner } from './server/service-account-tokens.js';
import { open, type Store, type StoreOptions } from './store/store.js';
import { type ControllerOptions, type Controllers, startControllers } from './controllers/index.js';
import { schedulerThreadByDefault } from './scheduler/thread.js';

export interface ControlPlaneOptions {
  stateDir: string;
  /** Default `unix://<stateDir>/api.sock` (or http://127.0.0.1:0 when that path is too long for a socket). */
  listen?: string | readonly string[];
  /** The admin's bearer token, which every TCP request must carry (required for non-loopback TCP). */
  token?: string;
  /** Who may do what besides the admin (default AlwaysAllow); RBAC: what their bindings grant. */
  authorization?: AuthorizationMode;
  logger: Logger;
  /** Tuning of the controllers (tests and the bench). */
  controllers?: ControllerOptions;
  /** Tuning of the store (tests). */
  store?: StoreOptions;
  /** The nodes run a Ceph backend with this cluster list: the console shows its pools' capacity. */
  cephConfig?: string;
}

export interface ControlPlane {
  /** The API server's (first) address, e.g. "unix:///state/api.sock" or "http://127.0.0.1:41234". */
  url: string;
  /** Every address served. */
  urls: string[];
  /** The CA (PEM) that signed the serving certificate of the https:// addresses, if any. */
  caPem?: string;
  store: Store;
  controllers: Controllers;
  /** The node agents' volume stats, served as the kubelets' metrics (/metrics, nodes/{n}/proxy/metrics). */
  volumeStats: VolumeStatsCache;
  /** Every CSI call of the controllers and node agents, the latest few thousand (the web console's /ui/api/csi-calls). */
  csiCalls: CsiCallJournal;
  stop(): Promise<void>;
}

/** What <stateDir>/server.json holds while the control plane runs. */
export interface ServerInfo {
  url: string;
  urls: string[];
  pid: number;
  /** The process's start time (clock ticks since boot): with pid, it names the process (PIDs are reused). */
  pidStartTicks?: number;
}

export const SERVER_INFO_FILE = 'server.json';
export const STORE_FILE = 'store.db';
export const API_SOCKET_FILE = 'api.sock';
/** sun_path holds 107 bytes plus NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export function defaultListen(stateDir: string): string {
  const path = join(stateDir, API_SOCKET_FILE);
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES ? `unix://${path}` : 'http://127.0.0.1:0';
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.logger;
  const stateDir = options.stateDir;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // kube-apiserver's default admission plugins include StorageObjectInUseProtection.
  const store = open(join(stateDir, STORE_FILE), { storageObjectInUseProtection: true, ...options.store });
  const servers: ApiServer[] = [];
  const volumeStats = new VolumeStatsCache();
  const csiCalls = new CsiCallJournal();
  let controllers: Controllers | undefined;
  let cephPools: CephPools | undefined;
  const infoPath = join(stateDir, SERVER_INFO_FILE);
  try {
    const listen = options.listen === undefined ? [defaultListen(stateDir)] : typeof options.listen === 'string' ? [options.listen] : [...options.listen];
    if (listen.length === 0) throw new Error('startControlPlane: listen names no address');
    const httpsHosts = listen.map(parseListenAddress).flatMap((a) => (a.kind === 'tcp' && a.secure ? [a.host] : []));
    const pki = httpsHosts.length === 0 ? undefined : await ensurePki(stateDir, httpsHosts);
    if (pki?.renewed) log.info({ pki: join(stateDir, 'pki') }, 'made a new serving certificate');
    // ServiceAccount tokens are bearer tokens too: only where the admin's token is required.
    const tokenSigner = options.token === undefined ? undefined : await TokenSigner.forStateDir(stateDir);
    // The embedded nodes keep their runtime state under <stateDir>/nodes/<node> (as `stowage logs` reads it).
    const podLogs: PodLogLocator = (pod, container, attempt) => {
      try {
        const root = nodeRoot(stateDir, safeComponent('node name', pod.spec.nodeName ?? ''));
        return logFile(containerDir(root, safeComponent('pod UID', pod.metadata.uid ?? ''), safeComponent('container name', container)), attempt);
      } catch {
        return undefined;
      }
    };
    // `kubectl exec`: the command runs in the container on its node, through the node's runtime.
    const runtimeOf = (pod: Pod): PodRuntime => new PodRuntime({ rootDir: nodeRoot(stateDir, safeComponent('node name', pod.spec.nodeName ?? '')), runner: new ExecRunner(log), logger: log });
    const unavailable = (err: unknown, container: string): unknown =>
      err instanceof ContainerNotFoundError || err instanceof ContainerNotRunningError ? new ContainerUnavailableError(container, { cause: err }) : err;
    const podExec: PodExecutor = (pod, container, command, stdin) => {
      let child: ReturnType<PodRuntime['exec']>;
      try {
        child = runtimeOf(pod).exec(pod.metadata.uid ?? '', container, command, 'pipe');
      } catch (err) {
        throw unavailable(err, container);
      }
      if (!stdin) child.stdin?.end();
      return child;
    };
    podExec.check = (pod, container) => {
      try {
        runtimeOf(pod).execCheck(pod.metadata.uid ?? '', container);
      } catch (err) {
        throw unavailable(err, container);
      }
    };
    if (options.cephConfig !== undefined) cephPools = await CephPools.forConfigFile(store, options.cephConfig, log.child({ component: 'ceph-pools' }));
    for (const address of listen) {
      servers.push(
        await startApiServer({
          store,
          listen: address,
          ...(options.token === undefined ? {} : { token: options.token }),
          ...(pki === undefined ? {} : { tls: { certPem: pki.certPem, keyPem: pki.keyPem } }),
          ...(tokenSigner === undefined ? {} : { tokenSigner }),
          ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
          metrics: (node) => volumeStats.render(node).then((text) => text ?? ''),
          csiCalls,
          ...(cephPools === undefined ? {} : { cephPools }),
          podLogs,
          podExec,
          logger: log,
        }),
      );
    }
    // The scheduler on a thread of its own where there is a core for it (scheduler/thread.ts).
    controllers = startControllers(store, log, { schedulerThread: schedulerThreadByDefault(), ...options.controllers, csiCalls });
    const urls = servers.map((s) => s.url);
    const startTicks = processStartTicks(process.pid);
    const info: ServerInfo = { url: urls[0] ?? '', urls, pid: process.pid, ...(startTicks === undefined ? {} : { pidStartTicks: startTicks }) };
    const tmp = `${infoPath}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, infoPath);
    log.info({ stateDir, urls }, 'control plane started');

    const running = controllers;
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        await rm(infoPath, { force: true });
        await running.stop();
        await Promise.all(servers.map((s) => s.close()));
        await cephPools?.stop();
        store.close();
        log.info({ stateDir }, 'control plane stopped');
      })());
    // A failed commit: controllers and clients may have seen writes that are now lost. Stop
    // serving; a restart resumes from what is on disk.
    store.onFailure((err) => {
      log.fatal({ err }, 'the store failed to commit; the control plane stops serving (restart it to recover)');
      void stop().catch((e: unknown) => log.error({ err: e }, 'control plane stop after store failure failed'));
    });
    return { url: info.url, urls, ...(pki === undefined ? {} : { caPem: pki.caPem }), store, controllers: running, volumeStats, csiCalls, stop };
  } catch (err) {
    await controllers?.stop().catch(() => undefined);
    await Promise.all(servers.map((s) => s.close().catch(() => undefined)));
    await cephPools?.stop().catch(() => undefined);
    store.close();
    throw err;
  }
}
