// csi-capacity: publishes CSIStorageCapacity objects, as external-provisioner does with
// --enable-capacity. For every driver whose CSIDriver says `storageCapacity: true`, every
// StorageClass it provisions and every node whose CSINode lists the driver, it asks the driver's
// GetCapacity (class parameters, the node's topology segments: the CSINode's topologyKeys read from
// the Node's labels, e.g. topology.stowage.dev/node) and keeps one object per (node, class):
//   name              csisc-<hash of driver, node, class> (external-provisioner uses csisc-<random>)
//   namespace         `default`: external-provisioner writes to its own namespace (POD_NAMESPACE);
//                     the embedded control plane has no such namespace, and `default` always exists
//   nodeTopology      matchLabels = the node's segments
//   capacity          available_capacity; maximumVolumeSize: maximum_volume_size when reported
//   labels            csi.storage.k8s.io/drivername, csi.storage.k8s.io/managed-by (as upstream)
// It refreshes when a CSI volume is created, grown or deleted (a create or delete also voids the
// figures the scheduler caches, storage-capacity.ts), when nodes, CSINodes, classes or CSIDrivers change,
// and every pollMs (60 s: external-provisioner's --capacity-poll-interval default). Objects of a
// node or class that went (or of a driver that stopped tracking capacity) are deleted. A driver
// that cannot answer leaves the object as it was (upstream does the same), and is asked again at
// the next poll. The scheduler's filter asks the same driver, with the same parameters and
// segments, so the objects say what it decides on.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { bytesToQuantity } from '../api/quantity.js';
import type { Node, PersistentVolume } from '../api/types/core.js';
import type { CSIDriver, CSINode, CSIStorageCapacity, StorageClass } from '../api/types/storage.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { DriverRegistry } from './driver-registry.js';
import type { Informer, InformerFactory } from './informer.js';
import type { ControllerDescriptor } from './registry.js';

export const CAPACITY_NAMESPACE = 'default';
export const LABEL_DRIVER = 'csi.storage.k8s.io/drivername';
export const LABEL_MANAGED_BY = 'csi.storage.k8s.io/managed-by';
export const MANAGED_BY = 'stowage-csi-capacity';
const KEY = 'all';

export interface CsiCapacityOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  logger: Logger;
  /** How often every figure is asked again. Default 60 000 ms. */
  pollMs?: number;
  timeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** The object's name for (driver, node, class): stable, so a refresh updates it in place. */
export function capacityObjectName(driver: string, node: string, storageClass: string): string {
  return `csisc-${createHash('sha256').update(`${driver}\u0000${node}\u0000${storageClass}`).digest('hex').slice(0, 16)}`;
}

export class CsiCapacityController {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly registry: DriverRegistry;
  private readonly pollMs: number;
  private readonly timeoutMs: number;
  private readonly nodes: Informer<Node>;
  private readonly csiNodes: Informer<CSINode>;
  private readonly classes: Informer<StorageClass>;
  private readonly drivers: Informer<CSIDriver>;
  private readonly capacities: Informer<CSIStorageCapacity>;

  constructor(options: CsiCapacityOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.pollMs = options.pollMs ?? 60_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.loop = new ControllerLoop({
      name: 'csi-capacity',
      logger: options.logger,
      sync: () => this.sync(),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    const changed = (): void => this.loop.enqueue(KEY);
    const handlers = { add: changed, update: changed, delete: changed };
    this.nodes = options.informers.for('nodes');
    this.csiNodes = options.informers.for('csinodes');
    this.classes = options.informers.for('storageclasses');
    this.drivers = options.informers.for('csidrivers');
    this.capacities = options.informers.for('csistoragecapacities');
    this.nodes.addEventHandler({ add: changed, update: (old, n) => JSON.stringify(old.metadata.labels) !== JSON.stringify(n.metadata.labels) && changed(), delete: changed });
    this.csiNodes.addEventHandler(handlers);
    this.classes.addEventHandler(handlers);
    this.drivers.addEventHandler({ add: changed, update: (old, d) => old.spec?.storageCapacity !== d.spec?.storageCapacity && changed(), delete: changed });
    // A volume made, grown or deleted changes the room left.
    const volume = (pv: PersistentVolume): void => {
      if (pv.spec.csi?.driver !== undefined) changed();
    };
    options.informers.for('persistentvolumes').addEventHandler({ add: volume, update: (old, pv) => old.spec.capacity?.['storage'] !== pv.spec.capacity?.['storage'] && volume(pv), delete: volume });
  }

  start(): void {
    this.loop.start();
    this.loop.enqueue(KEY);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async sync(): Promise<SyncResult> {
    /** Names of the objects to keep (published now, or kept while their driver does not answer). */
    const keep = new Set<string>();
    const asks: Promise<void>[] = [];
    for (const driver of this.drivers.list()) {
      const driverName = driver.metadata.name ?? '';
      if (driver.spec?.storageCapacity !== true) continue;
      const classes = this.classes.list().filter((sc) => sc.provisioner === driverName);
      for (const csiNode of this.csiNodes.list()) {
        const nodeName = csiNode.metadata.name ?? '';
        const entry = csiNode.spec.drivers.find((d) => d.name === driverName);
        const node = this.nodes.getByName(undefined, nodeName);
        if (entry === undefined || node === undefined) continue;
        const labels = node.metadata.labels ?? {};
        // As the scheduler builds them (scheduler.ts claimFitsNode).
        const segments = Object.fromEntries((entry.topologyKeys ?? []).flatMap((k) => (labels[k] !== undefined ? [[k, labels[k]]] : [])));
        for (const sc of classes) {
          const scName = sc.metadata.name ?? '';
          const name = capacityObjectName(driverName, nodeName, scName);
          keep.add(name);
          asks.push(this.publish(name, driverName, nodeName, sc, segments));
        }
      }
    }
    await Promise.all(asks);
    for (const obj of this.capacities.list()) {
      if (obj.metadata.namespace !== CAPACITY_NAMESPACE || obj.metadata.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY) continue;
      if (keep.has(obj.metadata.name ?? '')) continue;
      try {
        this.store.delete('csistoragecapacities', CAPACITY_NAMESPACE, obj.metadata.name ?? '');
        this.loop.logger.info({ name: obj.metadata.name, storageClass: obj.storageClassName }, 'CSIStorageCapacity deleted: its node, class or driver is gone');
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    return { requeueAfterMs: this.pollMs };
  }

  private async publish(name: string, driver: string, nodeName: string, sc: StorageClass, segments: Record<string, string>): Promise<void> {
    const client = this.registry.controllerClient(driver, nodeName);
    if (client === undefined) return;
    let figures: { capacity: string; maximumVolumeSize?: string };
    try {
      const res = await client.controller.GetCapacity(
        { parameters: sc.parameters ?? {}, accessible_topology: Object.keys(segments).length > 0 ? { segments } : null },
        { timeoutMs: this.timeoutMs },
      );
      figures = {
        capacity: bytesToQuantity(Number(res.available_capacity ?? 0)),
        ...(res.maximum_volume_size ? { maximumVolumeSize: bytesToQuantity(Number(res.maximum_volume_size.value)) } : {}),
      };
    } catch (err) {
      this.loop.logger.warn({ err, driver, node: nodeName, storageClass: sc.metadata.name }, 'GetCapacity failed; CSIStorageCapacity left as it was');
      return;
    }
    const existing = this.capacities.getByName(CAPACITY_NAMESPACE, name);
    const desired: CSIStorageCapacity = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'CSIStorageCapacity',
      metadata: { ...(existing?.metadata ?? {}), name, namespace: CAPACITY_NAMESPACE, labels: { ...existing?.metadata.labels, [LABEL_DRIVER]: driver, [LABEL_MANAGED_BY]: MANAGED_BY } },
      nodeTopology: { matchLabels: segments },
      storageClassName: sc.metadata.name ?? '',
      ...figures,
    };
    if (existing === undefined) {
      this.store.create(desired);
      return;
    }
    if (existing.capacity === desired.capacity && existing.maximumVolumeSize === desired.maximumVolumeSize && JSON.stringify(existing.nodeTopology) === JSON.stringify(desired.nodeTopology)) return;
    if (JSON.stringify(existing.nodeTopology) !== JSON.stringify(desired.nodeTopology)) {
      // nodeTopology is immutable: the node's segments changed, so the object is made again.
      this.store.delete('csistoragecapacities', CAPACITY_NAMESPACE, name);
      const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...meta } = desired.metadata;
      this.store.create({ ...desired, metadata: meta });
      return;
    }
    this.store.update(desired);
  }
}

export const CSI_CAPACITY: ControllerDescriptor = {
  name: 'csi-capacity',
  description: "external-provisioner's capacity feature (--enable-capacity): CSIStorageCapacity objects from each node's GetCapacity",
  init(ctx) {
    const c = new CsiCapacityController({
      store: ctx.store,
      informers: ctx.informers,
      registry: ctx.registry,
      logger: ctx.logger,
      ...(ctx.csiTimeoutMs === undefined ? {} : { timeoutMs: ctx.csiTimeoutMs }),
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
