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
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DRIVER_NAMES } from '../../driver/defaults.js';
import { startDriver, type DriverOptions, type RunningDriver } from '../../driver/driver.js';
import { ExecRunner } from '../../driver/mount/exec.js';
import { Mounter } from '../../driver/mount/mount.js';
import type { Node } from '../api/types/core.js';
import type { ControlPlane } from '../control-plane.js';
import { registerDriver } from '../controllers/driver-registry.js';
import { AlreadyExistsError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { NodeAgent, type NodeAgentOptions } from './node-agent.js';
import { PodRuntime } from './runtime/pod-runtime.js';

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

export interface EmbeddedNodesOptions {
  plane: ControlPlane;
  stateDir: string;
  backend: EmbeddedBackend;
  logLevel: string;
  logger: Logger;
  /** Agent tuning (tests, bench). */
  agent?: Partial<Pick<NodeAgentOptions, 'pollMs' | 'restartBackoffMs' | 'heartbeatMs' | 'baseDelayMs' | 'maxDelayMs'>>;
}

export function nodeRoot(stateDir: string, nodeName: string): string {
  return join(stateDir, 'nodes', nodeName);
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
  agent: NodeAgent;
}

export class EmbeddedNodes {
  private readonly running = new Map<string, Promise<RunningNode | undefined>>();
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
      if (!this.running.has(name)) void this.ensure(name);
    };
    nodes.addEventHandler({ add: consider, update: (_o, n) => consider(n) });
  }

  /** Starts the node if not running; resolves once its driver is registered and its agent runs. */
  ensure(nodeName: string): Promise<RunningNode | undefined> {
    let started = this.running.get(nodeName);
    if (started === undefined) {
      started = this.start(nodeName).catch((err: unknown) => {
        this.log.error({ err, node: nodeName }, 'embedded node failed to start');
        this.running.delete(nodeName);
        return undefined;
      });
      this.running.set(nodeName, started);
    }
    return started;
  }

  names(): string[] {
    return [...this.running.keys()];
  }

  agent(nodeName: string): Promise<NodeAgent | undefined> {
    return (this.running.get(nodeName) ?? Promise.resolve(undefined)).then((n) => n?.agent);
  }

  private async start(nodeName: string): Promise<RunningNode | undefined> {
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
      await registerDriver(plane.store, {
        endpoint: `unix://${socket}`,
        nodeName,
        ...(controllerEndpoint !== undefined ? { controllerEndpoint } : { controllerPerNode: true }),
      });
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
    const nodes = (await Promise.all(this.running.values())).filter((n): n is RunningNode => n !== undefined);
    await Promise.all(nodes.map((n) => n.agent.stop().catch((err: unknown) => this.log.error({ err, node: n.name }, 'node agent stop failed'))));
    await Promise.all(nodes.map((n) => n.driver.stop().catch((err: unknown) => this.log.error({ err, node: n.name }, 'driver stop failed'))));
    const controller = await this.controller?.catch(() => undefined);
    await controller?.stop().catch((err: unknown) => this.log.error({ err }, 'CSI controller stop failed'));
    return nodes.map((n) => n.driver);
  }
}
