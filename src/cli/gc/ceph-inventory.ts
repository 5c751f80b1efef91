// What the rbd and cephfs drivers hold, for gc. They do not advertise ListVolumes (a list call
// carries no secrets, and their journal is in the cluster), so gc reads the journal itself: for
// each StorageClass of those drivers, with its provisioner Secret and the cluster list
// (--ceph-config), the omap directories ceph-csi's layout keeps in the pool (rbd) or in the
// filesystem's metadata pool, namespace csi (cephfs): every name → UUID → record. Only records
// carrying our `stowage.record` are ours (a ceph-csi sharing the pool writes none); a record still
// `creating` is a CreateVolume / CreateSnapshot in flight, listed as such and never touched. A
// driver's listing covers only the pools (or filesystems) it read: a PV elsewhere is never called
// dangling.
import { DRIVER_NAMES } from '../../driver/defaults.js';
import { ClusterConfig } from '../../driver/backends/ceph/cluster-config.js';
import { credentialsOf } from '../../driver/backends/ceph/credentials.js';
import { type JournalLayout, RECORD_KEY, SNAPSHOT_LAYOUT, VOLUME_LAYOUT } from '../../driver/backends/ceph/journal.js';
import { type IoCtx, Rados } from '../../driver/backends/ceph/rados.js';
import { decodeId } from '../../driver/backends/ceph/volume-id.js';
import { JOURNAL_NAMESPACE } from '../../driver/backends/cephfs/cephfs-backend.js';
import { FsMap } from '../../driver/backends/cephfs/fs-map.js';
import type { BackendItem, Inventory } from './find.js';
import { type BackendLister, PROVISIONER_SECRET_NAME, PROVISIONER_SECRET_NAMESPACE } from './run.js';

const TIMEOUT_SECONDS = 15;

interface Place {
  driver: string;
  clusterID: string;
  /** rbd: the pool; cephfs: the filesystem. */
  name: string;
  secretRef: { name: string; namespace: string };
}

async function readJournal(io: IoCtx, layout: JournalLayout, where: string, secretRef: Place['secretRef']): Promise<BackendItem[]> {
  const names = (await io.omapList(layout.directory, layout.nameKeyPrefix)) ?? new Map<string, string>();
  const items: BackendItem[] = [];
  for (const uuid of new Set(names.values())) {
    const record = (await io.omapGet(layout.objectPrefix + uuid, [RECORD_KEY]))?.get(RECORD_KEY);
    // No record: ceph-csi's (not ours), or a reservation whose object was never written (the next lookup drops it).
    if (record === undefined) continue;
    let rec: { id?: string; state?: string; createdAt?: string; groupSnapshotId?: string };
    try {
      rec = JSON.parse(record) as typeof rec;
    } catch {
      continue;
    }
    if (typeof rec.id !== 'string') continue;
    items.push({ id: rec.id, where, secretRef, ...(rec.createdAt ? { createdAt: rec.createdAt } : {}), ...(rec.state === 'ready' ? {} : { inFlight: true }), ...(rec.groupSnapshotId ? { groupSnapshotId: rec.groupSnapshotId } : {}) });
  }
  return items.sort((a, b) => a.id.localeCompare(b.id));
}

export function cephLister(configFile: string): BackendLister {
  return async (view, readSecret) => {
    const config = await ClusterConfig.load(configFile);
    const warnings: string[] = [];
    const places = new Map<string, Place>();
    for (const sc of view.storageClasses) {
      if (sc.provisioner !== DRIVER_NAMES.rbd && sc.provisioner !== DRIVER_NAMES.cephfs) continue;
      const p = sc.parameters ?? {};
      const name = sc.provisioner === DRIVER_NAMES.rbd ? p['pool'] : p['fsName'];
      const secretName = p[PROVISIONER_SECRET_NAME];
      const secretNamespace = p[PROVISIONER_SECRET_NAMESPACE];
      if (!p['clusterID'] || !name || !secretName || !secretNamespace || secretName.includes('${')) {
        warnings.push(`StorageClass ${sc.metadata.name ?? ''}: no clusterID, ${sc.provisioner === DRIVER_NAMES.rbd ? 'pool' : 'fsName'} or fixed provisioner secret: its volumes are not listed`);
        continue;
      }
      places.set(`${sc.provisioner}|${p['clusterID']}|${name}`, { driver: sc.provisioner, clusterID: p['clusterID'], name, secretRef: { name: secretName, namespace: secretNamespace } });
    }
    const byDriver = new Map<string, { inv: Inventory; covered: Set<string> }>();
    const failed = new Set<string>();
    const fsMap = new FsMap();
    for (const place of places.values()) {
      let entry = byDriver.get(place.driver);
      if (entry === undefined) {
        const covered = new Set<string>();
        const covers = (id: string): boolean => {
          const parsed = decodeId(id);
          return parsed !== undefined && covered.has(`${parsed.clusterID}|${parsed.poolId}`);
        };
        entry = { inv: { driver: place.driver, volumes: [], snapshots: [], volumesComplete: true, snapshotsComplete: true, covers }, covered };
        byDriver.set(place.driver, entry);
      }
      const where = `${place.clusterID}/${place.name}`;
      const cluster = config.get(place.clusterID);
      try {
        if (cluster === undefined) throw new Error(`clusterID ${place.clusterID} is not in ${configFile}`);
        const creds = credentialsOf(place.driver, await readSecret(place.secretRef.name, place.secretRef.namespace));
        if (creds === undefined) throw new Error(`Secret ${place.secretRef.namespace}/${place.secretRef.name} has no ${place.driver === DRIVER_NAMES.cephfs ? 'adminID/adminKey' : 'userID/userKey'}`);
        const rados = await Rados.connect({ monitors: cluster.monitors, user: creds.user, key: creds.key, timeoutSeconds: TIMEOUT_SECONDS });
        try {
          let io: IoCtx;
          let location: number;
          if (place.driver === DRIVER_NAMES.rbd) {
            const poolId = await rados.poolId(place.name);
            if (poolId === undefined) throw new Error(`pool ${place.name} does not exist`);
            io = await rados.ioctx(poolId, place.name);
            location = poolId;
          } else {
            const fs = await fsMap.byName(place.clusterID, rados, place.name);
            if (fs === undefined) throw new Error(`filesystem ${place.name} does not exist`);
            const pool = await rados.poolName(fs.metadataPoolId);
            if (pool === undefined) throw new Error(`the metadata pool of ${place.name} does not exist`);
            io = await rados.ioctx(fs.metadataPoolId, pool, JOURNAL_NAMESPACE);
            location = fs.fscid;
          }
          entry.inv.volumes.push(...(await readJournal(io, VOLUME_LAYOUT, where, place.secretRef)));
          entry.inv.snapshots.push(...(await readJournal(io, SNAPSHOT_LAYOUT, where, place.secretRef)));
          entry.covered.add(`${place.clusterID}|${location}`);
        } finally {
          await rados.shutdown();
        }
      } catch (err) {
        warnings.push(`${place.driver} ${where}: ${(err as Error).message}; its volumes are not listed`);
        failed.add(place.driver);
      }
    }
    const inventories = [...byDriver.values()].map(({ inv }) => ({ ...inv, volumesComplete: !failed.has(inv.driver), snapshotsComplete: !failed.has(inv.driver) }));
    return { inventories, warnings };
  };
}

export { credentialsOf };
