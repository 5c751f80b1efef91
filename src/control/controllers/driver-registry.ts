// Which CSI drivers the control plane can reach, and how. A driver is registered by objects in the
// store, so the control plane drives any CSI driver, not only Stowage's:
//
//   CSIDriver <driver name>                      annotation stowage.dev/controller-endpoint:
//                                                  unix:///path/csi.sock   (Controller calls)
//   CSINode <node name>  spec.drivers[{name, nodeID, topologyKeys, allocatable.count}]
//                                                annotation stowage.dev/endpoints:
//                                                  {"<driver name>": "unix:///node/csi.sock"}  (Node calls)
//   Node <node name>     labels carrying the driver's topology segments (as kubelet sets them
//                        from NodeGetInfo), e.g. topology.stowage.dev/node=<node>
//
// registerDriver() writes all three from the driver's own answers (GetPluginInfo, NodeGetInfo…),
// as node-driver-registrar and kubelet do in a cluster. DriverRegistry reads them and keeps one
// CsiClient per endpoint, dropped when the registration changes.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Node } from '../api/types/core.js';
import type { CSIDriver, CSINode, CSINodeDriver } from '../api/types/storage.js';
import type { CsiCallJournal } from '../../csi/call-journal.js';
import { CsiClient } from '../../csi/client.js';
import { AlreadyExistsError, ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import type { Informer } from './informer.js';

/** On a CSIDriver: the unix socket serving the driver's Controller service. */
export const CONTROLLER_ENDPOINT_ANNOTATION = 'stowage.dev/controller-endpoint';
/** On a CSINode: JSON object {driverName: "unix:///socket"} of the node's Node-service sockets. */
export const NODE_ENDPOINTS_ANNOTATION = 'stowage.dev/endpoints';
/**
 * On a CSIDriver: "true" when every node runs the driver's Controller service for its own storage
 * (external-provisioner's node-deployment, as for local volumes): Controller calls about a volume
 * go to the Node-service socket of the volume's node, from its CSINode.
 */
export const CONTROLLER_PER_NODE_ANNOTATION = 'stowage.dev/controller-per-node';
/** The label every Node carries (kubelet sets it). */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

/** The Controller-service endpoint a CSIDriver object registers, if any. */
export function controllerEndpointOf(driver: CSIDriver | undefined): string | undefined {
  const endpoint = driver?.metadata.annotations?.[CONTROLLER_ENDPOINT_ANNOTATION]?.trim();
  return endpoint ? endpoint : undefined;
}

/** The Node-service endpoints a CSINode object registers: {driverName: endpoint}. Malformed → {}. */
export function nodeEndpointsOf(node: CSINode | undefined): Record<string, string> {
  const text = node?.metadata.annotations?.[NODE_ENDPOINTS_ANNOTATION];
  if (!text) return {};
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return {};
    return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
  } catch {
    return {};
  }
}

/** Thrown when a driver is needed but no CSIDriver object registers its controller endpoint. */
export class DriverNotRegisteredError extends Error {
  constructor(readonly driverName: string) {
    super(`CSI driver "${driverName}" is not registered: no CSIDriver "${driverName}" with annotation ${CONTROLLER_ENDPOINT_ANNOTATION}`);
    this.name = 'DriverNotRegisteredError';
  }
}

export interface DriverRegistryOptions {
  csiDrivers: Informer<CSIDriver>;
  csiNodes: Informer<CSINode>;
  logger: Logger;
  /** Default deadline of calls on the registry's clients. Default 60 s. */
  timeoutMs?: number;
  /** Where every call of the registry's clients is recorded (the web console's journey of a volume). */
  journal?: CsiCallJournal;
}

interface CachedClient {
  client: CsiClient;
  capabilities?: Promise<ReadonlySet<string>>;
}

/** CSINodes by the node plugin endpoints they name. */
const IDX_ENDPOINT = 'registry:endpoint';

export class DriverRegistry {
  private readonly clients = new Map<string, CachedClient>();
  private nodesGeneration = 0;
  private readonly nodeNamesByDriver = new Map<string, { generation: number; names: ReadonlySet<string> }>();
  private readonly listeners: ((driverName: string) => void)[] = [];
  private readonly csiDrivers: Informer<CSIDriver>;
  private readonly csiNodes: Informer<CSINode>;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly journal: CsiCallJournal | undefined;
  private closed = false;

  constructor(options: DriverRegistryOptions) {
    this.csiDrivers = options.csiDrivers;
    this.csiNodes = options.csiNodes;
    this.log = options.logger;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.journal = options.journal;
    this.csiNodes.addIndex('driver', (n) => (n.spec?.drivers ?? []).map((d) => d.name));
    this.csiNodes.addIndex(IDX_ENDPOINT, (n) => [...new Set(Object.values(nodeEndpointsOf(n)))]);
    this.csiDrivers.addEventHandler({
      add: (d) => this.changed(d.metadata.name ?? ''),
      update: (old, d) => {
        if (old === d) return; // resync
        if (controllerEndpointOf(old) !== controllerEndpointOf(d)) this.dropUnused();
        this.changed(d.metadata.name ?? '');
      },
      delete: (d) => {
        this.dropUnused();
        this.changed(d.metadata.name ?? '');
      },
    });
    this.csiNodes.addEventHandler({
      add: (n) => this.nodeChanged(undefined, n),
      update: (old, n) => {
        if (old !== n) this.nodeChanged(old, n);
      },
      delete: (n) => this.nodeChanged(n, undefined),
    });
  }

  /** Changes with every CSINode added, changed or deleted: what was read from them before may be stale. */
  get csiNodesGeneration(): number {
    return this.nodesGeneration;
  }

  /** Called with a driver's name whenever its registration (CSIDriver or a CSINode entry) changes. */
  onChange(listener: (driverName: string) => void): void {
    this.listeners.push(listener);
  }

  /** Whether the driver's controller can be reached (a CSIDriver with an endpoint exists). */
  isRegistered(driverName: string): boolean {
    return this.controllerEndpoint(driverName) !== undefined;
  }

  controllerEndpoint(driverName: string): string | undefined {
    return controllerEndpointOf(this.csiDrivers.get(driverName));
  }

  csiDriver(driverName: string): CSIDriver | undefined {
    return this.csiDrivers.get(driverName);
  }

  /**
   * A client for the driver's Controller service; undefined when the driver is not registered.
   * With `nodeName`, a driver registered per node (CONTROLLER_PER_NODE_ANNOTATION) is reached on
   * that node's socket.
   */
  controllerClient(driverName: string, nodeName?: string): CsiClient | undefined {
    if (nodeName !== undefined && this.controllerPerNode(driverName)) {
      const endpoint = this.nodeEndpoint(driverName, nodeName);
      if (endpoint !== undefined) return this.clientFor(endpoint).client;
    }
    const endpoint = this.controllerEndpoint(driverName);
    return endpoint === undefined ? undefined : this.clientFor(endpoint).client;
  }

  /** Whether each node serves the driver's Controller service for its own volumes. */
  controllerPerNode(driverName: string): boolean {
    return this.csiDrivers.get(driverName)?.metadata.annotations?.[CONTROLLER_PER_NODE_ANNOTATION] === 'true';
  }

  /** The driver's Node-service endpoint on a node, from its CSINode. */
  nodeEndpoint(driverName: string, nodeName: string): string | undefined {
    return nodeEndpointsOf(this.csiNodes.get(nodeName))[driverName];
  }

  nodeClient(driverName: string, nodeName: string): CsiClient | undefined {
    const endpoint = this.nodeEndpoint(driverName, nodeName);
    return endpoint === undefined ? undefined : this.clientFor(endpoint).client;
  }

  /** The driver's entry in a node's CSINode. */
  /** The drivers a node's CSINode lists. */
  nodeDrivers(nodeName: string): readonly CSINodeDriver[] {
    return this.csiNodes.get(nodeName)?.spec?.drivers ?? [];
  }

  nodeDriver(driverName: string, nodeName: string): CSINodeDriver | undefined {
    return this.csiNodes.get(nodeName)?.spec?.drivers?.find((d) => d.name === driverName);
  }

  /** CSINodes that list the driver. */
  nodesWithDriver(driverName: string): CSINode[] {
    return this.csiNodes.byIndex('driver', driverName);
  }

  /**
   * The names of the nodes whose CSINode lists the driver, kept until a CSINode changes: the
   * scheduler asks it for each of hundreds of nodes per pod, and one set lookup there costs less
   * than following each node's own records.
   */
  nodeNamesWithDriver(driverName: string): ReadonlySet<string> {
    let kept = this.nodeNamesByDriver.get(driverName);
    if (kept === undefined || kept.generation !== this.nodesGeneration) {
      kept = { generation: this.nodesGeneration, names: new Set(this.nodesWithDriver(driverName).map((n) => n.metadata.name ?? '')) };
      this.nodeNamesByDriver.set(driverName, kept);
    }
    return kept.names;
  }

  /** The driver's controller capabilities (ControllerGetCapabilities, cached per endpoint). */
  controllerCapabilities(driverName: string): Promise<ReadonlySet<string>> {
    const endpoint = this.controllerEndpoint(driverName);
    if (endpoint === undefined) return Promise.reject(new DriverNotRegisteredError(driverName));
    const cached = this.clientFor(endpoint);
    if (cached.capabilities === undefined) {
      const asked = cached.client.controller.ControllerGetCapabilities({}, { timeoutMs: Math.min(this.timeoutMs, 10_000) }).then(
        (r) => new Set(r.capabilities.flatMap((c) => (c.rpc ? [String(c.rpc.type)] : []))) as ReadonlySet<string>,
      );
      cached.capabilities = asked;
      // A failure is not cached: the next caller asks again.
      asked.catch(() => {
        if (cached.capabilities === asked) delete cached.capabilities;
      });
    }
    return cached.capabilities;
  }

  close(): void {
    this.closed = true;
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }

  private clientFor(endpoint: string): CachedClient {
    if (this.closed) throw new Error('driver registry closed');
    let cached = this.clients.get(endpoint);
    if (cached === undefined) {
      const journal = this.journal;
      const observer = journal === undefined ? undefined : (call: Parameters<CsiCallJournal['observe']>[0]) => journal.observe({ ...call, ...this.nodeServing(endpoint) });
      cached = { client: new CsiClient(endpoint, { timeoutMs: this.timeoutMs, ...(observer === undefined ? {} : { observer }) }) };
      this.clients.set(endpoint, cached);
      this.log.debug({ endpoint }, 'CSI client created');
    }
    return cached;
  }

  /** The node whose CSINode names the endpoint (a node plugin's socket), if any. */
  private nodeServing(endpoint: string): { node?: string } {
    // An index, not a scan: this runs for every CSI call, and a cluster may have thousands of nodes.
    const names = this.csiNodes.byIndex(IDX_ENDPOINT, endpoint).map((n) => n.metadata.name ?? '');
    return names.length === 0 ? {} : { node: names.length === 1 ? (names[0] as string) : (names.sort()[0] as string) };
  }

  /** Closes the clients of endpoints no registration names any more. */
  private dropUnused(): void {
    const inUse = new Set<string>();
    for (const d of this.csiDrivers.list()) {
      const e = controllerEndpointOf(d);
      if (e !== undefined) inUse.add(e);
    }
    for (const n of this.csiNodes.list()) for (const e of Object.values(nodeEndpointsOf(n))) inUse.add(e);
    for (const [endpoint, cached] of this.clients) {
      if (inUse.has(endpoint)) continue;
      cached.client.close();
      this.clients.delete(endpoint);
      this.log.debug({ endpoint }, 'CSI client dropped');
    }
  }

  private nodeChanged(old: CSINode | undefined, node: CSINode | undefined): void {
    this.nodesGeneration++;
    const before = new Map((old?.spec?.drivers ?? []).map((d) => [d.name, d]));
    const after = new Map((node?.spec?.drivers ?? []).map((d) => [d.name, d]));
    const endpointsBefore = nodeEndpointsOf(old);
    const endpointsAfter = nodeEndpointsOf(node);
    if (!isDeepStrictEqual(endpointsBefore, endpointsAfter)) this.dropUnused();
    for (const name of new Set([...before.keys(), ...after.keys()])) {
      if (!isDeepStrictEqual(before.get(name), after.get(name)) || endpointsBefore[name] !== endpointsAfter[name]) this.changed(name);
    }
  }

  private changed(driverName: string): void {
    for (const listener of this.listeners) {
      try {
        listener(driverName);
      } catch (err) {
        this.log.error({ err, driverName }, 'driver registry listener failed');
      }
    }
  }
}

// ------------------------------------------------------------------ registration

export interface RegisterDriverOptions {
  /** The plugin's socket (unix:///path/csi.sock): asked for its name, capabilities and node info. */
  endpoint: string;
  /** Where its Controller service is, if not at `endpoint`. */
  controllerEndpoint?: string;
  /** The Node (and CSINode) name; default the node_id NodeGetInfo returns. */
  nodeName?: string;
  /** Deadline of each registration call. Default 10 s. */
  timeoutMs?: number;
  /** Each node serves the Controller service for its own storage (see CONTROLLER_PER_NODE_ANNOTATION). */
  controllerPerNode?: boolean;
  /**
   * The CSIDriver's fsGroupPolicy when registration creates it (its deployment's choice: Stowage's
   * manifests say File for all three drivers, as ceph-csi's do). Default: the API's default,
   * ReadWriteOnceWithFSType. An existing CSIDriver keeps its own (the field is immutable).
   */
  fsGroupPolicy?: 'File' | 'ReadWriteOnceWithFSType' | 'None';
}

export interface RegisteredDriver {
  driverName: string;
  /** Whether a Controller service was registered (CSIDriver annotation set). */
  controller: boolean;
  /** Undefined when the plugin serves no Node service. */
  nodeName: string | undefined;
  nodeID: string | undefined;
  topology: Record<string, string>;
}

/** Retries a read-modify-write on conflicts (another writer in between). */
function upsert<T>(attempt: () => T): T {
  for (let i = 0; ; i++) {
    try {
      return attempt();
    } catch (err) {
      if (i >= 5 || !(err instanceof ConflictError || err instanceof AlreadyExistsError)) throw err;
    }
  }
}

/**
 * Registers the CSI driver serving `endpoint`, as node-driver-registrar + kubelet would: a CSIDriver
 * (controller endpoint annotation; attachRequired only if it can ControllerPublish), and for its
 * Node service a Node labelled with its topology and a CSINode entry (node endpoint annotation).
 * Idempotent; re-registering updates what changed. Resolves once the registration is committed.
 */
export async function registerDriver(store: Store, options: RegisterDriverOptions): Promise<RegisteredDriver> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const client = new CsiClient(options.endpoint, { timeoutMs });
  const controllerClient = options.controllerEndpoint ? new CsiClient(options.controllerEndpoint, { timeoutMs }) : client;
  try {
    const info = await client.identity.GetPluginInfo({});
    const driverName = info.name;
    const plugin = await controllerClient.identity.GetPluginCapabilities({});
    const hasController = plugin.capabilities.some((c) => c.service?.type === 'CONTROLLER_SERVICE');
    let attachRequired = false;
    let storageCapacity = false;
    if (hasController) {
      const caps = await controllerClient.controller.ControllerGetCapabilities({});
      attachRequired = caps.capabilities.some((c) => c.rpc?.type === 'PUBLISH_UNPUBLISH_VOLUME');
      // A driver that answers GetCapacity has its capacity consulted by the scheduler (storage-capacity.ts),
      // as external-provisioner's capacity feature and CSIStorageCapacity objects would.
      storageCapacity = caps.capabilities.some((c) => c.rpc?.type === 'GET_CAPACITY');
    }
    const controllerEndpoint = hasController ? (options.controllerEndpoint ?? options.endpoint) : undefined;

    upsert(() => {
      const existing = store.get('csidrivers', undefined, driverName);
      const annotations = { ...existing?.metadata.annotations };
      if (controllerEndpoint) annotations[CONTROLLER_ENDPOINT_ANNOTATION] = controllerEndpoint;
      else delete annotations[CONTROLLER_ENDPOINT_ANNOTATION];
      if (options.controllerPerNode && controllerEndpoint) annotations[CONTROLLER_PER_NODE_ANNOTATION] = 'true';
      if (existing === undefined) {
        store.create<CSIDriver>({
          apiVersion: 'storage.k8s.io/v1',
          kind: 'CSIDriver',
          metadata: { name: driverName, annotations },
          spec: { attachRequired, podInfoOnMount: false, storageCapacity, volumeLifecycleModes: ['Persistent'], ...(options.fsGroupPolicy ? { fsGroupPolicy: options.fsGroupPolicy } : {}) },
        });
      } else {
        // storageCapacity is mutable (attachRequired is not): a driver that learnt GetCapacity gets it.
        store.update({ ...existing, metadata: { ...existing.metadata, annotations }, spec: { ...existing.spec, storageCapacity } });
      }
    });

    // The Node service: only when the plugin has one (NodeGetInfo answers).
    let nodeInfo: Awaited<ReturnType<typeof client.node.NodeGetInfo>>;
    try {
      nodeInfo = await client.node.NodeGetInfo({});
    } catch {
      await store.flushed();
      return { driverName, controller: hasController, nodeName: undefined, nodeID: undefined, topology: {} };
    }
    const nodeID = nodeInfo.node_id;
    const nodeName = options.nodeName ?? nodeID;
    const topology = nodeInfo.accessible_topology?.segments ?? {};

    upsert(() => {
      const node = store.get('nodes', undefined, nodeName);
      const labels = { ...node?.metadata.labels, [HOSTNAME_LABEL]: node?.metadata.labels?.[HOSTNAME_LABEL] ?? nodeName, ...topology };
      if (node === undefined) store.create<Node>({ apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName, labels } });
      else if (!isDeepStrictEqual(labels, node.metadata.labels)) store.update({ ...node, metadata: { ...node.metadata, labels } });
    });

    const entry: CSINodeDriver = {
      name: driverName,
      nodeID,
      topologyKeys: Object.keys(topology).sort(),
      ...(nodeInfo.max_volumes_per_node > 0 ? { allocatable: { count: nodeInfo.max_volumes_per_node } } : {}),
    };
    upsert(() => {
      const csiNode = store.get('csinodes', undefined, nodeName);
      const endpoints = { ...nodeEndpointsOf(csiNode), [driverName]: options.endpoint };
      const annotations = { ...csiNode?.metadata.annotations, [NODE_ENDPOINTS_ANNOTATION]: JSON.stringify(endpoints) };
      if (csiNode === undefined) {
        store.create<CSINode>({ apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name: nodeName, annotations }, spec: { drivers: [entry] } });
        return;
      }
      const others = csiNode.spec.drivers.filter((d) => d.name !== driverName);
      const current = csiNode.spec.drivers.find((d) => d.name === driverName);
      if (current !== undefined && !isDeepStrictEqual(current, entry)) {
        // nodeID, topologyKeys and allocatable are immutable while registered: unregister first.
        store.update({ ...csiNode, spec: { drivers: others } });
      }
      const latest = store.get('csinodes', undefined, nodeName) ?? csiNode;
      store.update({ ...latest, metadata: { ...latest.metadata, annotations }, spec: { drivers: [...others, entry] } });
    });
    // Registered means durably registered (the store commits in groups).
    await store.flushed();
    return { driverName, controller: hasController, nodeName, nodeID, topology };
  } finally {
    if (controllerClient !== client) controllerClient.close();
    client.close();
  }
}

/** Removes a driver's registration: its CSINode entry (on one node or all) and its CSIDriver. */
export function unregisterDriver(store: Store, driverName: string, options: { nodeName?: string; keepCsiDriver?: boolean } = {}): void {
  const nodes = options.nodeName === undefined ? store.list('csinodes').items : [store.get('csinodes', undefined, options.nodeName)].filter((n) => n !== undefined);
  for (const n of nodes) {
    upsert(() => {
      const csiNode = store.get('csinodes', undefined, n.metadata.name ?? '');
      if (csiNode === undefined) return;
      const endpoints = nodeEndpointsOf(csiNode);
      if (!csiNode.spec.drivers.some((d) => d.name === driverName) && endpoints[driverName] === undefined) return;
      delete endpoints[driverName];
      store.update({
        ...csiNode,
        metadata: { ...csiNode.metadata, annotations: { ...csiNode.metadata.annotations, [NODE_ENDPOINTS_ANNOTATION]: JSON.stringify(endpoints) } },
        spec: { drivers: csiNode.spec.drivers.filter((d) => d.name !== driverName) },
      });
    });
  }
  if (!options.keepCsiDriver && store.get('csidrivers', undefined, driverName) !== undefined) store.delete('csidrivers', undefined, driverName);
}

/** The driver's controller client, or DriverNotRegisteredError: for callers that cannot wait. */
export function resolveControllerClient(registry: DriverRegistry, driverName: string): CsiClient {
  const client = registry.controllerClient(driverName);
  if (client === undefined) throw new DriverNotRegisteredError(driverName);
  return client;
}
