// The console's capacity per Ceph pool: the rows /ui/api/ceph-pools answers, computed from
// StorageClasses, Secrets and PVs held in memory and a fake stats source standing for the monitors'
// `df` / `fs dump` (classes → cluster + pool, PV sizes summed per pool, used/free from df, errors as
// rows, keys never in the answer), then the endpoint itself on the real HTTPS server under RBAC
// (401 without a token, kube-apiserver's 403 for who may not get storageclasses, the answer cached).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PersistentVolume } from '../../src/control/api/types/core.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { TokenSigner } from '../../src/control/server/service-account-tokens.js';
import { type CephPoolRow, CephPools, type CephStatsSource, type CephView, cephPoolReport, type ClusterStats, type StatsTarget } from '../../src/control/server/ui-ceph-pools.js';
import { ClusterConfig } from '../../src/driver/backends/ceph/cluster-config.js';
import { open, type Store } from '../../src/control/store/store.js';

const RBD = 'rbd.csi.stowage.dev';
const CEPHFS = 'cephfs.csi.stowage.dev';
const KEY = 'AQBk8l9lAAAAABAAxvJ0Zr1f0a5Ez0fXqJ1yTQ==';
const GI = 1024 ** 3;

const secretParams = (name: string) => ({ 'csi.storage.k8s.io/provisioner-secret-name': name, 'csi.storage.k8s.io/provisioner-secret-namespace': 'ceph' });
const sc = (name: string, provisioner: string, parameters: Record<string, string>): StorageClass => ({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name }, provisioner, parameters });
const pv = (name: string, driver: string, size: string, volumeAttributes: Record<string, string>): PersistentVolume => ({
  apiVersion: 'v1',
  kind: 'PersistentVolume',
  metadata: { name },
  spec: { capacity: { storage: size }, accessModes: ['ReadWriteOnce'], csi: { driver, volumeHandle: `h-${name}`, volumeAttributes } },
});

const DF: ClusterStats = {
  pools: [
    { name: 'rbd', id: 1, stored: 300 * 1024 ** 2, bytesUsed: 900 * 1024 ** 2, maxAvail: 20 * GI },
    { name: 'fast', id: 2, stored: 0, bytesUsed: 0, maxAvail: 5 * GI },
    { name: 'cephfs_metadata', id: 3, stored: 1, bytesUsed: 3, maxAvail: 20 * GI },
    { name: 'cephfs_data', id: 4, stored: GI, bytesUsed: 3 * GI, maxAvail: 19 * GI },
  ],
  filesystems: [{ name: 'myfs', dataPoolIds: [4] }],
};

interface Case {
  name: string;
  classes: StorageClass[];
  volumes?: PersistentVolume[];
  secrets?: Record<string, Record<string, string>>;
  source?: CephStatsSource;
  want: CephPoolRow[];
  /** What the source was asked (user, filesystems) per call. */
  asked?: string[];
}

const RBD_SECRET = { userID: 'kube', userKey: KEY };
const FS_SECRET = { adminID: 'admin', adminKey: KEY };
const row = (r: Partial<CephPoolRow> & Pick<CephPoolRow, 'pool' | 'storageClasses' | 'drivers'>): CephPoolRow => ({ clusterID: 'c1', provisionedBytes: 0, volumes: 0, ...r });
const rbdStats = (pool: string): Pick<CephPoolRow, 'usedBytes' | 'rawUsedBytes' | 'freeBytes'> => {
  const p = DF.pools.find((x) => x.name === pool);
  return { usedBytes: p?.stored ?? 0, rawUsedBytes: p?.bytesUsed ?? 0, freeBytes: p?.maxAvail ?? 0 };
};

const cases: Case[] = [
  {
    name: 'an rbd class: its pool, the PVs on it summed (not those of another pool or cluster), used = stored, free = max_avail',
    classes: [sc('csi-rbd-sc', RBD, { clusterID: 'c1', pool: 'rbd', ...secretParams('rbd-secret') }), sc('local', 'local.csi.stowage.dev', {})],
    volumes: [
      pv('a', RBD, '1Gi', { clusterID: 'c1', pool: 'rbd' }),
      pv('b', RBD, '512Mi', { clusterID: 'c1', pool: 'rbd' }),
      pv('other-pool', RBD, '8Gi', { clusterID: 'c1', pool: 'fast' }),
      pv('other-cluster', RBD, '8Gi', { clusterID: 'c2', pool: 'rbd' }),
      pv('local', 'local.csi.stowage.dev', '8Gi', {}),
    ],
    secrets: { 'rbd-secret': RBD_SECRET },
    want: [row({ pool: 'rbd', storageClasses: ['csi-rbd-sc'], drivers: [RBD], provisionedBytes: 1.5 * GI, volumes: 2, ...rbdStats('rbd') })],
    asked: ['c1 kube fs=false'],
  },
  {
    name: 'two classes on one pool are one row; a class on another pool is its own; one df per cluster',
    classes: [
      sc('gold', RBD, { clusterID: 'c1', pool: 'rbd', ...secretParams('rbd-secret') }),
      sc('silver', RBD, { clusterID: 'c1', pool: 'rbd', ...secretParams('rbd-secret') }),
      sc('fast', RBD, { clusterID: 'c1', pool: 'fast', ...secretParams('rbd-secret') }),
    ],
    volumes: [pv('f', RBD, '2Gi', { clusterID: 'c1', pool: 'fast' })],
    secrets: { 'rbd-secret': RBD_SECRET },
    want: [row({ pool: 'fast', storageClasses: ['fast'], drivers: [RBD], provisionedBytes: 2 * GI, volumes: 1, ...rbdStats('fast') }), row({ pool: 'rbd', storageClasses: ['gold', 'silver'], drivers: [RBD], ...rbdStats('rbd') })],
    asked: ['c1 kube fs=false'],
  },
  {
    name: "a cephfs class without a pool: the filesystem's first data pool (fs dump), its subvolumes' PVs by fsName",
    classes: [sc('cephfs', CEPHFS, { clusterID: 'c1', fsName: 'myfs', ...secretParams('fs-secret') })],
    volumes: [pv('s', CEPHFS, '3Gi', { clusterID: 'c1', fsName: 'myfs', subvolumeName: 'csi-vol-1' }), pv('other-fs', CEPHFS, '3Gi', { clusterID: 'c1', fsName: 'otherfs' })],
    secrets: { 'fs-secret': FS_SECRET },
    want: [row({ pool: 'cephfs_data', filesystem: 'myfs', storageClasses: ['cephfs'], drivers: [CEPHFS], provisionedBytes: 3 * GI, volumes: 1, ...rbdStats('cephfs_data') })],
    asked: ['c1 admin fs=true'],
  },
  {
    name: 'the cluster does not answer: a row saying so (no stats), provisioned still counted, the key never echoed',
    classes: [sc('csi-rbd-sc', RBD, { clusterID: 'c1', pool: 'rbd', ...secretParams('rbd-secret') })],
    volumes: [pv('a', RBD, '1Gi', { clusterID: 'c1', pool: 'rbd' })],
    secrets: { 'rbd-secret': RBD_SECRET },
    source: async (t) => {
      throw new Error(`rados_connect: ETIMEDOUT (Connection timed out) key=${t.key}`);
    },
    want: [row({ pool: 'rbd', storageClasses: ['csi-rbd-sc'], drivers: [RBD], provisionedBytes: GI, volumes: 1, error: 'cluster c1 as client.kube: rados_connect: ETIMEDOUT (Connection timed out) key=***' })],
  },
  {
    name: 'a source that never answers is cut off by the deadline',
    classes: [sc('csi-rbd-sc', RBD, { clusterID: 'c1', pool: 'rbd', ...secretParams('rbd-secret') })],
    secrets: { 'rbd-secret': RBD_SECRET },
    source: () => new Promise<ClusterStats>(() => undefined),
    want: [row({ pool: 'rbd', storageClasses: ['csi-rbd-sc'], drivers: [RBD], error: 'cluster c1 as client.kube: no answer from cluster c1 within 0.2 s' })],
  },
  {
    name: "what a class lacks is its row's error: no Secret, a Secret without the driver's keys, an unknown clusterID, a missing pool",
    classes: [
      sc('no-secret', RBD, { clusterID: 'c1', pool: 'p1', ...secretParams('absent') }),
      sc('wrong-keys', CEPHFS, { clusterID: 'c1', fsName: 'myfs', pool: 'p2', ...secretParams('rbd-only') }),
      sc('unknown-cluster', RBD, { clusterID: 'elsewhere', pool: 'p3', ...secretParams('rbd-secret') }),
      sc('gone', RBD, { clusterID: 'c1', pool: 'gone', ...secretParams('rbd-secret') }),
    ],
    secrets: { 'rbd-secret': RBD_SECRET, 'rbd-only': { userID: '', userKey: '' } },
    want: [
      row({ pool: 'gone', storageClasses: ['gone'], drivers: [RBD], error: 'pool gone does not exist in cluster c1' }),
      row({ pool: 'p1', storageClasses: ['no-secret'], drivers: [RBD], error: 'Secret ceph/absent not found' }),
      row({ pool: 'p2', filesystem: 'myfs', storageClasses: ['wrong-keys'], drivers: [CEPHFS], error: 'Secret ceph/rbd-only has no adminID/adminKey' }),
      row({ clusterID: 'elsewhere', pool: 'p3', storageClasses: ['unknown-cluster'], drivers: [RBD], error: 'clusterID elsewhere is not in the ceph config' }),
    ],
  },
];

describe('the Ceph pools report', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const asked: string[] = [];
      const fake: CephStatsSource = async (t: StatsTarget) => {
        asked.push(`${t.clusterID} ${t.user} fs=${t.filesystems}`);
        assert.deepEqual(t.monitors, ['10.0.0.1:6789']);
        return DF;
      };
      const view: CephView = {
        storageClasses: c.classes,
        persistentVolumes: c.volumes ?? [],
        secret: (namespace, name) => (namespace === 'ceph' ? c.secrets?.[name] : undefined),
        monitors: (id) => (id === 'c1' ? ['10.0.0.1:6789'] : undefined),
      };
      const rows = await cephPoolReport(view, c.source ?? fake, 200);
      assert.deepEqual(rows, c.want);
      assert.ok(!JSON.stringify(rows).includes(KEY), 'the key is never in the answer');
      if (c.asked) assert.deepEqual(asked, c.asked);
    });
  }
});

describe('GET /ui/api/ceph-pools on the API server', () => {
  const ADMIN = 'admin-token';
  let store: Store;
  let dir: string;
  let server: ApiServer;
  let plain: ApiServer;
  let ca: string;
  let calls = 0;

  const call = (base: ApiServer, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(`${base.url}${path}`, { method, ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const admin = { authorization: `Bearer ${ADMIN}` };
  const accountToken = async (name: string, rules: object[]): Promise<string> => {
    await call(server, 'POST', '/api/v1/namespaces/default/serviceaccounts', admin, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } });
    if (rules.length > 0) {
      await call(server, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', admin, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
      await call(server, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', admin, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: 'default' }],
      });
    }
    const tr = await call(server, 'POST', `/api/v1/namespaces/default/serviceaccounts/${name}/token`, admin, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} });
    assert.equal(tr.status, 201, tr.text);
    return (JSON.parse(tr.text) as { status: { token: string } }).status.token;
  };

  before(async () => {
    store = open(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'stowage-ceph-pools-'));
    const pki = await ensurePki(dir, ['127.0.0.1']);
    ca = pki.caPem;
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ceph' } });
    store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'rbd-secret', namespace: 'ceph' }, stringData: RBD_SECRET });
    store.create(sc('csi-rbd-sc', RBD, { clusterID: 'c1', pool: 'rbd', ...secretParams('rbd-secret') }));
    store.create(pv('a', RBD, '1Gi', { clusterID: 'c1', pool: 'rbd' }));
    const source: CephStatsSource = async () => {
      calls++;
      return DF;
    };
    const pools = new CephPools(store, new ClusterConfig([{ clusterID: 'c1', monitors: ['10.0.0.1:6789'] }]), source, 60_000);
    const common = { store, token: ADMIN, tls: { certPem: pki.certPem, keyPem: pki.keyPem }, tokenSigner: await TokenSigner.forStateDir(dir), authorization: 'RBAC' as const };
    server = await startApiServer({ ...common, listen: 'https://127.0.0.1:0', cephPools: pools });
    plain = await startApiServer({ ...common, listen: 'https://127.0.0.1:0' });
  });
  after(async () => {
    await server.close();
    await plain.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the rows to the admin, without the key, and asks the cluster once within the cache time', async () => {
    const first = await call(server, 'GET', '/ui/api/ceph-pools', admin);
    assert.equal(first.status, 200, first.text);
    const body = JSON.parse(first.text) as { kind: string; items: CephPoolRow[] };
    assert.equal(body.kind, 'CephPoolList');
    assert.deepEqual(body.items, [row({ pool: 'rbd', storageClasses: ['csi-rbd-sc'], drivers: [RBD], provisionedBytes: GI, volumes: 1, ...rbdStats('rbd') })]);
    assert.ok(!first.text.includes(KEY));
    assert.equal((await call(server, 'GET', '/ui/api/ceph-pools', admin)).status, 200);
    assert.equal(calls, 1, 'the second request within the cache time is answered from it');
  });

  it('requests while the cluster is being asked share that one question', async () => {
    let asked = 0;
    let answer: (s: ClusterStats) => void = () => undefined;
    const slow: CephStatsSource = () => {
      asked++;
      return new Promise((resolve) => (answer = resolve));
    };
    const pools = new CephPools(store, new ClusterConfig([{ clusterID: 'c1', monitors: ['10.0.0.1:6789'] }]), slow, 0);
    const first = pools.list();
    await new Promise((r) => setTimeout(r, 10));
    const second = pools.list();
    await new Promise((r) => setTimeout(r, 20));
    answer(DF);
    assert.deepEqual(await first, await second);
    assert.equal(asked, 1);
    await new Promise((r) => setTimeout(r, 5));
    const third = pools.list();
    await new Promise((r) => setTimeout(r, 5));
    answer(DF);
    await third;
    assert.equal(asked, 2, 'past the cache time, the cluster is asked again');
  });

  it('401 without a token; 405 for a write', async () => {
    assert.equal((await call(server, 'GET', '/ui/api/ceph-pools')).status, 401);
    assert.equal((await call(server, 'POST', '/ui/api/ceph-pools', admin, {})).status, 405);
  });

  it('under RBAC: 403 for an account that may not get storageclasses, 200 for one that may', async () => {
    const nobody = await accountToken('nobody', []);
    const denied = await call(server, 'GET', '/ui/api/ceph-pools', { authorization: `Bearer ${nobody}` });
    assert.equal(denied.status, 403);
    assert.equal((JSON.parse(denied.text) as { message: string }).message, 'storageclasses.storage.k8s.io is forbidden: User "system:serviceaccount:default:nobody" cannot get resource "storageclasses" in API group "storage.k8s.io" at the cluster scope');
    const viewer = await accountToken('class-viewer', [{ apiGroups: ['storage.k8s.io'], resources: ['storageclasses'], verbs: ['get'] }]);
    assert.equal((await call(server, 'GET', '/ui/api/ceph-pools', { authorization: `Bearer ${viewer}` })).status, 200);
  });

  it('is not served without a Ceph backend (404)', async () => {
    assert.equal((await call(plain, 'GET', '/ui/api/ceph-pools', admin)).status, 404);
  });
});
