// The nodes `stowage up` runs on this machine. Each embedded node is a Node object carrying the
// annotation stowage.dev/embedded-node=true; for each, the `up` process runs
//   - a CSI node plugin at <root>/plugins/<driver>/csi.sock, registered through CSINode:
//       local backend: the local driver (Controller + Node service) on the node's own pool,
//         <root>/pool, with topology topology.stowage.dev/node=<node>; Controller calls about its
//         volumes are routed to it (external-provisioner's per-node deployment);
//       rbd / cephfs backends: the driver's Node service, with its state in
//         <root>/plugins/<driver>/state; one Controller service for the whole cluster runs beside
//         them at <state>/plugins/<driver>/controller.sock (the provisioner's Deployment);
//   - a pod runtime and a node agent with kubelet root <root> = <state>/nodes/<node>.
// `stowage up --nodes N` creates the objects of N nodes; `stowage node join --name X` creates one
// more and `up` starts it. Because the list is in the store, a restarted `up` brings every node back.
//
// A node starts in this order: its driver listens and answers Probe ready, it is registered
// (CSIDriver, CSINode, Node labels), then its agent runs. startAll() starts several nodes at once
// in two phases — every driver probed and registered, then every agent — as `up` does at start. A
// node that fails to start does not take
// `up` down: it is reported (a Warning event FailedToStart on the Node, its Ready condition False)
// and started again with backoff (1 s doubling to 30 s) until it runs or `up` stops. Every node
// whose start was attempted is remembered (attempted()), so that `up` can release its pool on stop
// even when the start failed after the pool was mounted.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CsiClient } from '../../csi/client.js';
import { DRIVER_NAMES } from '../../driver/defaults.js';
import { startDriver, type DriverOptions, type RunningDriver } from '../../driver/driver.js';
import { ExecRunner } from '../../driver/mount/exec.js';
import { Mounter } from '../../driver/mount/mount.js';
import type { Node } from '../api/types/core.js';
import type { ControlPlane } from '../control-plane.js';
import { registerDriver } from '../controllers/driver-registry.js';
import { rfc3339 } from '../api/time.js';
import { AlreadyExistsError, ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { NodeAgent, type NodeAgentOptions } from './node-agent.js';
import { PodRuntime } from './runtime/pod-runtime.js';
import { nodeRoot } from './layout.js';

export { nodeRoot };

export const EMBEDDED_NODE_ANNOTATION = 'stowage.dev/embedded-node';
export const LOCAL_DRIVER = DRIVER_NAMES.local;
export { DRIVER_NAMES };

/** Which driver the nodes run, and what it needs. */
export type EmbeddedBackend =
  | {
      kind: 'local';
      /** Size of each node's pool.img when created. */
      poolBytes: number;
      /** How many times its usable size each pool may promise (--local-overcommit; default 1). */
      overcommit?: number;
    }
  | { kind: 'rbd' | 'cephfs'; /** ceph-csi's cluster list: [{"clusterID", "monitors"}]. */ cephConfig: string; cephTimeoutSeconds?: number };
/** sun_path holds 107 bytes plus NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** How long a node's driver may take to answer Probe ready once its socket exists. */
const PROBE_TIMEOUT_MS = 60_000;

export interface EmbeddedNodesOptions {
  plane: ControlPlane;
  stateDir: string;
  backend: EmbeddedBackend;
  logLevel: string;
  logger: Logger;
  /** Agent tuning (tests, bench). */
  agent?: Partial<Pick<NodeAgentOptions, 'pollMs' | 'restartBackoffMs' | 'heartbeatMs' | 'baseDelayMs' | 'maxDelayMs' | 'leaseDurationSeconds'>>;
  /** Delay before the first retry of a node that failed to start (doubles per failure). Default 1000 ms. */
  retryBaseMs?: number;
  /** Longest delay between retries of a node's start. Default 30 s. */
  retryMaxMs?: number;
  /**
   * Run node agents (default true). `stowage down` starts the drivers only: it tears down what the
   * agents set up, through the same drivers, without starting anyone's pods.
   */
  agents?: boolean;
}

/** Waits until the plugin at socket answers Probe with ready (unset counts as ready, as the spec says). */
export async function probeReady(socket: string, timeoutMs: number = PROBE_TIMEOUT_MS): Promise<void> {
  const client = new CsiClient(`unix://${socket}`, { timeoutMs: 5_000 });
  const deadline = Date.now() + timeoutMs;
  try {
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      let why: string;
      try {
        const answer = await client.identity.Probe({});
        if (answer.ready?.value !== false) return;
        why = 'the plugin says it is not ready';
      } catch (err) {
        why = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() + delay > deadline) throw new Error(`the CSI plugin at ${socket} is not ready after ${timeoutMs} ms: ${why}`);
      await new Promise((r) => setTimeout(r, delay));
    }
  } finally {
    client.close();
  }
}


/** The node plugin's socket, as node-driver-registrar places it under the kubelet root. */
export function nodeSocket(stateDir: string, nodeName: string, driverName: string = LOCAL_DRIVER): string {
  return join(nodeRoot(stateDir, nodeName), 'plugins', driverName, 'csi.sock');
}

/** The Controller service's socket for a driver whose controller serves every node (rbd, cephfs). */
export function controllerSocket(stateDir: string, driverName: string): string {
  return join(stateDir, 'plugins', driverName, 'controller.sock');
}

function checkSocketPath(socket: string): void {
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`socket path ${socket} is longer than a unix socket allows (${MAX_SOCKET_PATH_BYTES} bytes); use a shorter --state-dir`);
  }
}

/** The embedded nodes declared in the store, by name. */
export function declaredEmbeddedNodes(store: Store): string[] {
  return store
    .list('nodes')
    .items.filter((n) => n.metadata.annotations?.[EMBEDDED_NODE_ANNOTATION] === 'true')
    .map((n) => n.metadata.name ?? '');
}

/** Nodes started together: each reports when its driver phase is over; agents wait for all. */
interface StartBatch {
  plugins: Promise<void>[];
  agents: Promise<void>;
}

/** Declares an embedded node (idempotent): `up` starts it. */
export function declareEmbeddedNode(store: Store, nodeName: string): Node {
  const existing = store.get('nodes', undefined, nodeName);
  if (existing !== undefined) {
    if (existing.metadata.annotations?.[EMBEDDED_NODE_ANNOTATION] === 'true') return existing;
    return store.update<Node>({ ...existing, metadata: { ...existing.metadata, annotations: { ...existing.metadata.annotations, [EMBEDDED_NODE_ANNOTATION]: 'true' } } });
  }
  try {
    return store.create<Node>({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName }, annotations: { [EMBEDDED_NODE_ANNOTATION]: 'true' } },
    });
  } catch (err) {
    if (err instanceof AlreadyExistsError) return declareEmbeddedNode(store, nodeName);
    throw err;
  }
}

interface RunningNode {
  name: string;
  driver: RunningDriver;
  /** Undefined when the nodes run without agents (`stowage down`). */
  agent: NodeAgent | undefined;
}

export class EmbeddedNodes {
  private readonly running = new Map<string, Promise<RunningNode | undefined>>();
  /** Nodes whose start failed: failures so far and the timer of the next attempt. */
  private readonly failed = new Map<string, { failures: number; timer: NodeJS.Timeout | undefined }>();
  private readonly tried = new Set<string>();
  private readonly log: Logger;
  private stopped = false;
  /** rbd / cephfs: the one Controller service, started with the first node. */
  private controller: Promise<RunningDriver> | undefined;
  readonly driverName: string;

  constructor(private readonly options: EmbeddedNodesOptions) {
    this.log = options.logger;
    this.driverName = DRIVER_NAMES[options.backend.kind];
  }

  /** Starts every declared node now and any declared later (Node objects with the annotation). */
  watch(): void {
    const nodes = this.options.plane.controllers.informers.for('nodes');
    const consider = (node: Node): void => {
      if (node.metadata.annotations?.[EMBEDDED_NODE_ANNOTATION] !== 'true') return;
      const name = node.metadata.name ?? '';
      // A node waiting for its retry is started by its timer, not by events (its own status among them).
      if (!this.running.has(name) && !this.failed.has(name)) void this.ensure(name);
    };
    nodes.addEventHandler({ add: consider, update: (_o, n) => consider(n) });
  }

  /**
   * Starts the node if not running; resolves once its driver is registered and its agent runs, or
   * with undefined when this attempt failed (the node is then reported and retried with backoff).
   */
  ensure(nodeName: string, batch?: StartBatch): Promise<RunningNode | undefined> {
    let started = this.running.get(nodeName);
    if (started === undefined) {
      const pending = this.failed.get(nodeName);
      if (pending?.timer !== undefined) clearTimeout(pending.timer);
      if (pending !== undefined) pending.timer = undefined;
      if (!this.stopped) this.tried.add(nodeName);
      started = this.start(nodeName, batch).then(
        (node) => {
          if (node !== undefined && this.failed.delete(nodeName)) this.log.info({ node: nodeName }, 'embedded node started after earlier failures');
          return node;
        },
        (err: unknown) => {
          this.running.delete(nodeName);
          this.startFailed(nodeName, err);
          return undefined;
        },
      );
      this.running.set(nodeName, started);
    }
    return started;
  }

  /**
   * Starts several nodes together, in two phases: every node's driver listening, answering Probe
   * and registered first, then every node's agent. Resolves with each node (undefined: its start
   * failed; it is reported and retried as by ensure()). Nodes already starting are left as they are.
   */
  async startAll(names: readonly string[]): Promise<Map<string, RunningNode | undefined>> {
    let openAgents!: () => void;
    const batch: StartBatch = { plugins: [], agents: new Promise<void>((r) => (openAgents = r)) };
    // start() adds its driver phase to the batch before its first await.
    const started = names.map((name) => [name, this.ensure(name, batch)] as const);
    await Promise.all(batch.plugins);
    openAgents();
    return new Map(await Promise.all(started.map(async ([name, node]) => [name, await node] as const)));
  }

  /** Nodes running or starting now. */
  names(): string[] {
    return [...this.running.keys()];
  }

  /** Every node whose start was attempted, whether it runs or failed: what `up` releases on stop. */
  attempted(): string[] {
    return [...this.tried];
  }

  /** Reports a failed start (log, event, Ready=False) and schedules the next attempt. */
  private startFailed(nodeName: string, err: unknown): void {
    if (this.stopped) {
      this.log.warn({ err, node: nodeName }, 'embedded node start abandoned: stopping');
      return;
    }
    const entry = this.failed.get(nodeName) ?? { failures: 0, timer: undefined };
    entry.failures += 1;
    this.failed.set(nodeName, entry);
    const base = this.options.retryBaseMs ?? 1_000;
    const delay = Math.min(base * 2 ** (entry.failures - 1), this.options.retryMaxMs ?? 30_000);
    const message = err instanceof Error ? err.message : String(err);
    this.log.error({ err, node: nodeName, attempts: entry.failures, retryInMs: delay }, 'embedded node failed to start; retrying');
    try {
      this.reportNotReady(nodeName, message);
    } catch (e) {
      this.log.warn({ err: e, node: nodeName }, 'could not report the node NotReady');
    }
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (!this.stopped && this.failed.get(nodeName) === entry) void this.ensure(nodeName);
    }, delay);
    entry.timer.unref();
  }

  /** The Node's Ready condition False (as a kubelet that cannot run would leave it) and a Warning event. */
  private reportNotReady(nodeName: string, message: string): void {
    const { store } = this.options.plane;
    let node: Node | undefined;
    for (let i = 0; i < 5; i++) {
      node = store.get('nodes', undefined, nodeName);
      if (node === undefined) return;
      const before = (node.status?.conditions ?? []).find((c) => c.type === 'Ready');
      const now = rfc3339();
      const ready = {
        type: 'Ready',
        status: 'False' as const,
        reason: 'KubeletNotReady',
        message: `stowage could not start the node: ${message}`,
        lastHeartbeatTime: now,
        lastTransitionTime: before?.status === 'False' && before.lastTransitionTime ? before.lastTransitionTime : now,
      };
      try {
        node = store.update<Node>(
          { ...node, status: { ...node.status, conditions: [...(node.status?.conditions ?? []).filter((c) => c.type !== 'Ready'), ready] } },
          { subresource: 'status' },
        );
        break;
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
    if (node !== undefined) this.options.plane.controllers.events.recorder('stowage-up').event(node, 'Warning', 'FailedToStart', `embedded node failed to start: ${message}; retrying`);
  }

  /** Freezes the agents of the named nodes and thaws the others (tests: a hung kubelet); the names paused. */
  async pauseAgents(names: ReadonlySet<string>): Promise<string[]> {
    const nodes = (await Promise.all(this.running.values())).filter((n): n is RunningNode => n !== undefined);
    for (const n of nodes) {
      if (names.has(n.name)) n.agent?.pause();
      else n.agent?.resume();
    }
    return nodes.filter((n) => names.has(n.name)).map((n) => n.name);
  }

  agent(nodeName: string): Promise<NodeAgent | undefined> {
    return (this.running.get(nodeName) ?? Promise.resolve(undefined)).then((n) => n?.agent);
  }

  /** Starts a node; in a batch, its agent waits until every driver of the batch is done. */
  private async start(nodeName: string, batch?: StartBatch): Promise<RunningNode | undefined> {
    let driverPhaseOver = (): void => undefined;
    batch?.plugins.push(new Promise<void>((r) => (driverPhaseOver = r)));
    try {
      return await this.startNode(nodeName, () => {
        driverPhaseOver();
        return batch?.agents;
      });
    } finally {
      // A start that failed before its driver was registered.
      driverPhaseOver();
    }
  }

  /** The node's driver (probed, registered), then, once mayStartAgent() resolves, its agent. */
  private async startNode(nodeName: string, mayStartAgent: () => Promise<void> | undefined): Promise<RunningNode | undefined> {
    if (this.stopped) return undefined;
    const { plane, stateDir, backend } = this.options;
    const driverName = this.driverName;
    const root = nodeRoot(stateDir, nodeName);
    const socket = nodeSocket(stateDir, nodeName, driverName);
    checkSocketPath(socket);
    await mkdir(join(root, 'plugins', driverName), { recursive: true, mode: 0o750 });
    const log = this.log.child({ node: nodeName });
    const controllerEndpoint = backend.kind === 'local' ? undefined : `unix://${controllerSocket(stateDir, driverName)}`;
    if (controllerEndpoint !== undefined) await this.startController();
    const driver = await startDriver({
      ...this.driverOptions(),
      endpoint: `unix://${socket}`,
      nodeId: nodeName,
      // local: each node is its own storage, so it serves its own Controller calls too.
      controller: backend.kind === 'local',
      node: true,
      // The node's kubelet root: its staging and publish paths are there, and only there.
      kubeletDirs: [root],
      ...(backend.kind === 'local'
        ? { localDir: join(root, 'pool'), localPoolSizeBytes: backend.poolBytes, localOvercommit: backend.overcommit ?? 1 }
        : { stateDir: join(root, 'plugins', driverName, 'state') }),
      logger: log.child({ component: 'driver' }),
    });
    try {
      await driver.backendReady;
      // Serving, and saying so over its socket, before anyone is told where it is.
      await probeReady(socket);
      if (this.stopped) throw new Error('stopping');
      await registerDriver(plane.store, {
        endpoint: `unix://${socket}`,
        nodeName,
        // As deploy/'s CSIDriver manifests say: fsGroup applies to every volume (btrfs subvolumes have no fsType).
        fsGroupPolicy: 'File',
        ...(controllerEndpoint !== undefined ? { controllerEndpoint } : { controllerPerNode: true }),
      });
      await mayStartAgent();
      if (this.stopped) throw new Error('stopping');
      if (this.options.agents === false) {
        log.info({ root, endpoint: `unix://${socket}`, driver: driverName }, 'node driver started (no agent)');
        return { name: nodeName, driver, agent: undefined };
      }
      const runner = new ExecRunner(log.child({ component: 'runtime' }));
      const runtime = new PodRuntime({ rootDir: root, runner, logger: log.child({ component: 'runtime' }) });
      const agent = new NodeAgent({
        store: plane.store,
        informers: plane.controllers.informers,
        registry: plane.controllers.registry,
        recorder: plane.controllers.events.recorder('kubelet'),
        nodeName,
        rootDir: root,
        runtime,
        mounter: new Mounter(runner),
        // DiskPressure watches what fills up: the node's pool (local), else its kubelet root.
        ...(backend.kind === 'local' ? { nodefsPath: join(root, 'pool', 'pool') } : {}),
        logger: log.child({ component: 'node-agent' }),
        volumeStats: plane.volumeStats,
        ...this.options.agent,
      });
      await agent.start();
      log.info({ root, endpoint: `unix://${socket}`, driver: driverName }, 'node started');
      return { name: nodeName, driver, agent };
    } catch (err) {
      await driver.stop().catch(() => undefined);
      throw err;
    }
  }

  /** What every driver this process starts shares. */
  private driverOptions(): Pick<DriverOptions, 'backend' | 'driverName' | 'maxVolumesPerNode' | 'logLevel' | 'cephConfig' | 'cephTimeoutSeconds'> {
    const { backend } = this.options;
    return {
      backend: backend.kind,
      driverName: this.driverName,
      maxVolumesPerNode: 256,
      logLevel: this.options.logLevel,
      ...(backend.kind === 'local' ? {} : { cephConfig: backend.cephConfig, ...(backend.cephTimeoutSeconds ? { cephTimeoutSeconds: backend.cephTimeoutSeconds } : {}) }),
    };
  }

  /** rbd / cephfs: the cluster-wide Controller service (once; a failed start is retried by the next node). */
  private startController(): Promise<RunningDriver> {
    if (this.controller === undefined) {
      const socket = controllerSocket(this.options.stateDir, this.driverName);
      const started = (async () => {
        checkSocketPath(socket);
        await mkdir(join(this.options.stateDir, 'plugins', this.driverName), { recursive: true, mode: 0o750 });
        const driver = await startDriver({
          ...this.driverOptions(),
          endpoint: `unix://${socket}`,
          nodeId: 'controller',
          controller: true,
          node: false,
          logger: this.log.child({ component: 'controller-driver' }),
        });
        try {
          await driver.backendReady;
        } catch (err) {
          await driver.stop().catch(() => undefined);
          throw err;
        }
        this.log.info({ endpoint: `unix://${socket}`, driver: this.driverName }, 'CSI controller started');
        return driver;
      })();
      this.controller = started;
      started.catch(() => {
        if (this.controller === started) this.controller = undefined;
      });
    }
    return this.controller;
  }

  /**
   * Stops the agents and drivers. Containers keep running and volumes stay mounted, as when a
   * kubelet stops: the next `up` picks them up again.
   */
  async stop(): Promise<RunningDriver[]> {
    this.stopped = true;
    for (const entry of this.failed.values()) if (entry.timer !== undefined) clearTimeout(entry.timer);
    const nodes = (await Promise.all(this.running.values())).filter((n): n is RunningNode => n !== undefined);
    await Promise.all(nodes.map((n) => n.agent?.stop().catch((err: unknown) => this.log.error({ err, node: n.name }, 'node agent stop failed'))));
    await Promise.all(nodes.map((n) => n.driver.stop().catch((err: unknown) => this.log.error({ err, node: n.name }, 'driver stop failed'))));
    const controller = await this.controller?.catch(() => undefined);
    await controller?.stop().catch((err: unknown) => this.log.error({ err }, 'CSI controller stop failed'));
    return nodes.map((n) => n.driver);
  }
}
