// The web console's capacity per Ceph pool (/ui/api/ceph-pools). The rbd and cephfs drivers do not
// implement GetCapacity (as ceph-csi: that RPC carries no secrets), so what a pool still holds is
// asked of Ceph itself: for each StorageClass of those drivers, its clusterID gives the monitors
// (the `--ceph-config` cluster list) and its provisioner Secret the cephx user, and the monitors'
// `df` gives each pool's stored bytes and max_avail (cephfs: the filesystem's data pool, from
// `fs dump`, unless the class names a `pool`). Provisioned is the sum of the sizes of the PVs whose
// volume attributes name that cluster and pool. Answers are cached a few seconds; a cluster that
// cannot be asked is a row with the error text, never a failed request; keys are never returned.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PersistentVolume, Secret } from '../api/types/core.js';
import type { StorageClass } from '../api/types/storage.js';
import { ClusterConfig } from '../../driver/backends/ceph/cluster-config.js';
import { Connections } from '../../driver/backends/ceph/connections.js';
import { credentialKeys, credentialsOf } from '../../driver/backends/ceph/credentials.js';
import { DRIVER_NAMES } from '../../driver/defaults.js';
import { decodeSecret } from '../controllers/provisioner.js';
import { bytesOf } from '../controllers/resizer.js';
import { ApiError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import type { RequestAttributes } from './request-attributes.js';

export const CEPH_POOLS_PATH = '/ui/api/ceph-pools';
const PROVISIONER_SECRET_NAME = 'csi.storage.k8s.io/provisioner-secret-name';
const PROVISIONER_SECRET_NAMESPACE = 'csi.storage.k8s.io/provisioner-secret-namespace';

/** Authorized as reading StorageClasses: the rows are the classes' pools. */
export function cephPoolsAttributes(): RequestAttributes {
  return { resourceRequest: true, verb: 'get', path: CEPH_POOLS_PATH, apiGroup: 'storage.k8s.io', apiVersion: 'v1', namespace: '', resource: 'storageclasses', subresource: '', name: '' };
}

/** One pool as the monitors' `df` reports it. */
export interface PoolDf {
  name: string;
  id: number;
  /** What clients stored (before replication). */
  stored: number;
  /** Raw bytes used on the OSDs (replicas included). */
  bytesUsed: number;
  /** What may still be written to the pool (after replication), as Ceph estimates it. */
  maxAvail: number;
}

export interface ClusterStats {
  pools: PoolDf[];
  /** Only when asked for (cephfs classes): each filesystem's data pools, by ID. */
  filesystems?: { name: string; dataPoolIds: number[] }[];
}

export interface StatsTarget {
  clusterID: string;
  monitors: string[];
  user: string;
  key: string;
  /** Whether the filesystems are needed (`fs dump` needs mds caps, an rbd user may lack them). */
  filesystems: boolean;
}

/** Asks one cluster for its pools' stats (the real one: librados; tests: a fake). */
export type CephStatsSource = (target: StatsTarget) => Promise<ClusterStats>;

export interface CephPoolRow {
  clusterID: string;
  /** The Ceph pool; '' when it could not be learnt (a cephfs class's data pool, cluster unreachable). */
  pool: string;
  /** cephfs: the filesystem whose data pool this is. */
  filesystem?: string;
  storageClasses: string[];
  drivers: string[];
  /** Sum of the PVs' capacities on this pool, and how many. */
  provisionedBytes: number;
  volumes: number;
  /** The pool's stored bytes (`df`: stored), what its images or files hold. */
  usedBytes?: number;
  /** Raw bytes on the OSDs (`df`: bytes_used, with replication). */
  rawUsedBytes?: number;
  /** `df`: max_avail. */
  freeBytes?: number;
  /** Why the stats are missing (no such cluster, Secret, pool; the cluster did not answer). */
  error?: string;
}

export interface CephPoolList {
  kind: 'CephPoolList';
  /** When the stats were read (RFC 3339). */
  readAt: string;
  items: CephPoolRow[];
}

/** What the report reads of the API's objects. */
export interface CephView {
  storageClasses: StorageClass[];
  persistentVolumes: PersistentVolume[];
  secret(namespace: string, name: string): Record<string, string> | undefined;
  /** The monitors of a clusterID from the cluster list, or undefined. */
  monitors(clusterID: string): string[] | undefined;
}

interface Place {
  driver: string;
  className: string;
  clusterID: string;
  /** rbd: the class's pool; cephfs: the class's `pool` if any. */
  pool?: string;
  fsName?: string;
  error?: string;
  creds?: { user: string; key: string };
}

const isCeph = (driver: string | undefined): boolean => driver === DRIVER_NAMES.rbd || driver === DRIVER_NAMES.cephfs;

function placeOf(sc: StorageClass, view: CephView): Place {
  const p = sc.parameters ?? {};
  const place: Place = { driver: sc.provisioner, className: sc.metadata.name ?? '', clusterID: p['clusterID'] ?? '' };
  if (sc.provisioner === DRIVER_NAMES.rbd) {
    if (p['pool']) place.pool = p['pool'];
  } else {
    if (p['fsName']) place.fsName = p['fsName'];
    if (p['pool']) place.pool = p['pool'];
  }
  const secretName = p[PROVISIONER_SECRET_NAME];
  const secretNamespace = p[PROVISIONER_SECRET_NAMESPACE];
  if (!place.clusterID) place.error = 'the class names no clusterID';
  else if (sc.provisioner === DRIVER_NAMES.rbd && !place.pool) place.error = 'the class names no pool';
  else if (sc.provisioner === DRIVER_NAMES.cephfs && !place.fsName) place.error = 'the class names no fsName';
  else if (view.monitors(place.clusterID) === undefined) place.error = `clusterID ${place.clusterID} is not in the ceph config`;
  else if (!secretName || !secretNamespace || secretName.includes('${') || secretNamespace.includes('${')) place.error = 'the class has no fixed provisioner secret to read the pool with';
  else {
    const secret = view.secret(secretNamespace, secretName);
    const creds = secret === undefined ? undefined : credentialsOf(sc.provisioner, secret);
    if (secret === undefined) place.error = `Secret ${secretNamespace}/${secretName} not found`;
    else if (creds === undefined) place.error = `Secret ${secretNamespace}/${secretName} has no ${credentialKeys(sc.provisioner)}`;
    else place.creds = creds;
  }
  return place;
}

/** A message with every key it might echo taken out (librados does not, but nothing may leak). */
function scrub(message: string, keys: string[]): string {
  let out = message;
  for (const k of keys) if (k !== '') out = out.split(k).join('***');
  return out;
}

/**
 * The rows: one per cluster and pool that a Ceph StorageClass provisions into, with the classes,
 * the PVs' provisioned sizes, and the pool's stats (or why there are none).
 */
export async function cephPoolReport(view: CephView, source: CephStatsSource, timeoutMs = 10_000): Promise<CephPoolRow[]> {
  const places = view.storageClasses.filter((sc) => isCeph(sc.provisioner)).map((sc) => placeOf(sc, view));
  // One `df` per cluster, with the first class's credentials that work.
  const clusters = new Map<string, Place[]>();
  for (const p of places) if (p.creds !== undefined) clusters.set(p.clusterID, [...(clusters.get(p.clusterID) ?? []), p]);
  const stats = new Map<string, ClusterStats | Error>();
  await Promise.all(
    [...clusters].map(async ([clusterID, ps]) => {
      const keys = ps.map((p) => p.creds?.key ?? '');
      const filesystems = ps.some((p) => p.driver === DRIVER_NAMES.cephfs && p.pool === undefined);
      let last: Error = new Error('no credentials');
      const tried = new Set<string>();
      for (const p of ps) {
        const creds = p.creds;
        if (creds === undefined || tried.has(`${creds.user}\n${creds.key}`)) continue;
        tried.add(`${creds.user}\n${creds.key}`);
        let timer: NodeJS.Timeout | undefined;
        try {
          const answer = source({ clusterID, monitors: view.monitors(clusterID) ?? [], user: creds.user, key: creds.key, filesystems });
          const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer from cluster ${clusterID} within ${timeoutMs / 1000} s`)), timeoutMs);
          });
          answer.catch(() => undefined);
          stats.set(clusterID, await Promise.race([answer, deadline]));
          return;
        } catch (e) {
          last = new Error(scrub(`cluster ${clusterID} as client.${creds.user}: ${(e as Error).message}`, keys));
        } finally {
          clearTimeout(timer);
        }
      }
      stats.set(clusterID, last);
    }),
  );

  const rows = new Map<string, CephPoolRow>();
  const clusterStats = (clusterID: string): ClusterStats | undefined => {
    const s = stats.get(clusterID);
    return s instanceof Error ? undefined : s;
  };
  const fsDataPool = (clusterID: string, fsName: string): string | undefined => {
    const s = clusterStats(clusterID);
    const id = s?.filesystems?.find((f) => f.name === fsName)?.dataPoolIds[0];
    return s?.pools.find((p) => p.id === id)?.name;
  };
  /** The row's key: cluster + pool, or cluster + filesystem while its data pool is unknown. */
  const keyOf = (clusterID: string, pool: string | undefined, fsName: string | undefined): string => (pool ? `${clusterID}\npool\n${pool}` : `${clusterID}\nfs\n${fsName ?? ''}`);
  for (const p of places) {
    const pool = p.pool ?? (p.fsName === undefined ? undefined : fsDataPool(p.clusterID, p.fsName));
    const key = keyOf(p.clusterID, pool, p.fsName);
    let row = rows.get(key);
    if (row === undefined) {
      row = { clusterID: p.clusterID, pool: pool ?? '', ...(p.fsName === undefined ? {} : { filesystem: p.fsName }), storageClasses: [], drivers: [], provisionedBytes: 0, volumes: 0 };
      rows.set(key, row);
    }
    if (!row.storageClasses.includes(p.className)) row.storageClasses.push(p.className);
    if (!row.drivers.includes(p.driver)) row.drivers.push(p.driver);
    if (row.filesystem === undefined && p.fsName !== undefined) row.filesystem = p.fsName;
    const s = stats.get(p.clusterID);
    const df = s instanceof Error || s === undefined ? undefined : s.pools.find((x) => x.name === pool);
    if (df !== undefined) Object.assign(row, { usedBytes: df.stored, rawUsedBytes: df.bytesUsed, freeBytes: df.maxAvail });
    else if (row.error === undefined) {
      row.error =
        p.error ??
        (s instanceof Error ? s.message : s === undefined ? 'not asked' : pool ? `pool ${pool} does not exist in cluster ${p.clusterID}` : `filesystem ${p.fsName ?? ''} does not exist in cluster ${p.clusterID}`);
    }
  }
  for (const row of rows.values()) if (row.freeBytes !== undefined) delete row.error;

  for (const pv of view.persistentVolumes) {
    const csi = pv.spec?.csi;
    if (!isCeph(csi?.driver)) continue;
    const attrs = csi?.volumeAttributes ?? {};
    const clusterID = attrs['clusterID'];
    if (!clusterID) continue;
    const fsName = csi?.driver === DRIVER_NAMES.cephfs ? attrs['fsName'] : undefined;
    const pool = attrs['pool'] ?? (fsName === undefined ? undefined : fsDataPool(clusterID, fsName));
    const row = rows.get(keyOf(clusterID, pool, fsName));
    if (row === undefined) continue;
    row.provisionedBytes += bytesOf(pv.spec?.capacity?.['storage']) ?? 0;
    row.volumes += 1;
  }
  return [...rows.values()].sort((a, b) => `${a.clusterID}\n${a.pool}\n${a.filesystem ?? ''}`.localeCompare(`${b.clusterID}\n${b.pool}\n${b.filesystem ?? ''}`));
}

interface DfJson {
  pools?: { name: string; id: number; stats?: { stored?: number; bytes_used?: number; max_avail?: number } }[];
}

/** The real source: the monitors' `df` (and `fs dump`), over cached librados connections. */
export function radosStatsSource(connections: Connections): CephStatsSource {
  return (t) =>
    connections.with(t.monitors, t.user, t.key, async (rados) => {
      const df = JSON.parse((await rados.monCommand({ prefix: 'df', format: 'json' })).out) as DfJson;
      const pools = (df.pools ?? []).map((p) => ({ name: p.name, id: p.id, stored: p.stats?.stored ?? 0, bytesUsed: p.stats?.bytes_used ?? 0, maxAvail: p.stats?.max_avail ?? 0 }));
      if (!t.filesystems) return { pools };
      const dump = JSON.parse((await rados.monCommand({ prefix: 'fs dump', format: 'json' })).out) as { filesystems?: { mdsmap: { fs_name: string; data_pools: number[] } }[] };
      return { pools, filesystems: (dump.filesystems ?? []).map((f) => ({ name: f.mdsmap.fs_name, dataPoolIds: f.mdsmap.data_pools })) };
    });
}

/** The endpoint's state in `up`: the cluster list it follows, the connections, the cached answer. */
export class CephPools {
  /** at: when the answer came (undefined while it is being read: callers share that one). */
  private cached: { at: number | undefined; list: Promise<CephPoolList> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly config: ClusterConfig,
    private readonly source: CephStatsSource,
    private readonly ttlMs = 5_000,
    private readonly onStop: () => Promise<unknown> = async () => undefined,
  ) {}

  /** For `stowage up --backend rbd|cephfs --ceph-config FILE`: follows the file, asks with librados. */
  static async forConfigFile(store: Store, file: string, log: { info(o: object, m: string): void; error(o: object, m: string): void }, timeoutSeconds = 5): Promise<CephPools> {
    const config = await ClusterConfig.load(file);
    const unfollow = config.follow(file, log);
    const connections = new Connections(timeoutSeconds, 30_000);
    return new CephPools(store, config, radosStatsSource(connections), 5_000, async () => {
      unfollow();
      await connections.close();
    });
  }

  list(): Promise<CephPoolList> {
    const at = this.cached?.at;
    if (this.cached === undefined || (at !== undefined && Date.now() - at > this.ttlMs)) {
      const view: CephView = {
        storageClasses: this.store.list('storageclasses').items,
        persistentVolumes: this.store.list('persistentvolumes').items,
        secret: (namespace, name) => {
          const s = this.store.get('secrets', namespace, name) as Secret | undefined;
          return s === undefined ? undefined : decodeSecret(s);
        },
        monitors: (clusterID) => this.config.get(clusterID)?.monitors,
      };
      const list = cephPoolReport(view, this.source).then((items): CephPoolList => ({ kind: 'CephPoolList', readAt: new Date().toISOString(), items }));
      const entry: { at: number | undefined; list: Promise<CephPoolList> } = { at: undefined, list };
      this.cached = entry;
      list.then(
        () => (entry.at = Date.now()),
        () => this.cached === entry && (this.cached = undefined),
      );
    }
    return this.cached.list;
  }

  stop(): Promise<unknown> {
    return this.onStop();
  }
}

class MethodNotAllowed extends ApiError {
  constructor(method: string) {
    super(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method} on the web console)`);
  }
}

/** GET /ui/api/ceph-pools: {kind: CephPoolList, readAt, items: […]}. */
export async function serveCephPools(req: IncomingMessage, res: ServerResponse, pools: CephPools): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET') throw new MethodNotAllowed(method);
  const body = JSON.stringify(await pools.list());
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  });
  res.end(body);
}
