/**
 * Which CephFS filesystems a cluster has: name, filesystem ID (fscid, the "location" in volume IDs,
 * as ceph-csi encodes it), metadata pool (where the journal lives) and data pools (what the `pool`
 * parameter may name). Read from the monitors' `fs dump`; an fscid never changes meaning while the
 * filesystem exists, so answers are cached per cluster for a while, and a miss is asked again.
 */
import type { Rados } from '../ceph/rados.js';

export interface CephFilesystem {
  fscid: number;
  name: string;
  metadataPoolId: number;
  dataPoolIds: number[];
}

interface FsDump {
  filesystems?: { id: number; mdsmap: { fs_name: string; metadata_pool: number; data_pools: number[] } }[];
}

const TTL_MS = 60_000;

export class FsMap {
  private readonly cache = new Map<string, { at: number; list: CephFilesystem[] }>();

  /** Every filesystem of the cluster (cached per clusterID). */
  async list(clusterID: string, rados: Rados, fresh = false): Promise<CephFilesystem[]> {
    const hit = this.cache.get(clusterID);
    if (!fresh && hit && Date.now() - hit.at < TTL_MS) return hit.list;
    const { out } = await rados.monCommand({ prefix: 'fs dump', format: 'json' });
    const dump = JSON.parse(out) as FsDump;
    const list = (dump.filesystems ?? []).map((f) => ({
      fscid: f.id,
      name: f.mdsmap.fs_name,
      metadataPoolId: f.mdsmap.metadata_pool,
      dataPoolIds: f.mdsmap.data_pools,
    }));
    this.cache.set(clusterID, { at: Date.now(), list });
    return list;
  }

  async byName(clusterID: string, rados: Rados, name: string): Promise<CephFilesystem | undefined> {
    return (await this.list(clusterID, rados)).find((f) => f.name === name) ?? (await this.list(clusterID, rados, true)).find((f) => f.name === name);
  }

  async byId(clusterID: string, rados: Rados, fscid: number): Promise<CephFilesystem | undefined> {
    return (await this.list(clusterID, rados)).find((f) => f.fscid === fscid) ?? (await this.list(clusterID, rados, true)).find((f) => f.fscid === fscid);
  }
}
