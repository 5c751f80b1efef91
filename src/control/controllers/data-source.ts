// Where a claim's data source lives, for drivers whose every node serves its own Controller
// service (local volumes, stowage.dev/controller-per-node): a restore or a clone can only be made
// on the node holding the source snapshot or volume. Shared by the provisioner (which node's
// Controller to call, what topology to ask for), the scheduler (which nodes a WaitForFirstConsumer
// claim with a data source fits) and the snapshotter (which node takes a snapshot).
import type { PersistentVolume, PersistentVolumeClaim } from '../api/types/core.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../api/types/snapshot.js';
import type { Store } from '../store/store.js';
import type { DriverRegistry } from './driver-registry.js';
import { nodeSelectorMatches } from './volume-util.js';

/** What these read objects through: the store, or the scheduler's copy of it on its own thread. */
export type ObjectReader = Pick<Store, 'get'>;

/** On a content: the node whose Controller service made the snapshot (per-node drivers only). */
export const ANN_SNAPSHOT_NODE = 'stowage.dev/snapshot-node';

/** The node a volume of a per-node driver lives on: the registered node its PV's affinity allows. */
export function volumeNodeOf(pv: PersistentVolume, registry: DriverRegistry, store: ObjectReader): string | undefined {
  const driver = pv.spec.csi?.driver ?? '';
  if (!registry.controllerPerNode(driver)) return undefined;
  const required = pv.spec.nodeAffinity?.required;
  if (required === undefined) return undefined;
  for (const csiNode of registry.nodesWithDriver(driver)) {
    const name = csiNode.metadata.name ?? '';
    if (nodeSelectorMatches(required, name, store.get('nodes', undefined, name)?.metadata.labels)) return name;
  }
  return undefined;
}

/**
 * The node holding a claim's data source (the source claim's volume, or the snapshot's content as
 * the snapshotter recorded it), when the driver is served per node; undefined otherwise or when
 * not known yet.
 */
export function dataSourceNode(pvc: PersistentVolumeClaim, driverName: string, registry: DriverRegistry, store: ObjectReader): string | undefined {
  const ref = pvc.spec.dataSourceRef ?? pvc.spec.dataSource;
  if (ref === undefined || !registry.controllerPerNode(driverName)) return undefined;
  const ns = pvc.metadata.namespace ?? 'default';
  if (ref.kind === 'PersistentVolumeClaim' && !ref.apiGroup) {
    const source = store.get('persistentvolumeclaims', ns, ref.name);
    const pv = source?.spec.volumeName ? store.get('persistentvolumes', undefined, source.spec.volumeName) : undefined;
    return pv === undefined ? undefined : volumeNodeOf(pv, registry, store);
  }
  if (ref.kind === 'VolumeSnapshot' && ref.apiGroup === 'snapshot.storage.k8s.io') {
    const snap = store.get('volumesnapshots', ns, ref.name) as VolumeSnapshot | undefined;
    const contentName = snap?.status?.boundVolumeSnapshotContentName;
    const content = contentName ? (store.get('volumesnapshotcontents', undefined, contentName) as VolumeSnapshotContent | undefined) : undefined;
    return content?.metadata.annotations?.[ANN_SNAPSHOT_NODE];
  }
  return undefined;
}
