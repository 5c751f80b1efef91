// `stowage gc --ceph-config` on a real `stowage up --backend rbd` against `stowage ceph-dev`: the rbd
// driver does not advertise ListVolumes, so gc reads the pool's journal with the StorageClass's
// provisioner Secret. An orphaned image (its Retain PV deleted), a snapshot cut straight through
// CSI and a dangling PV (its image deleted behind it) are listed; a reservation still `creating`
// (a CreateVolume in flight) and a ceph-csi record (not ours) are not; `--delete --yes` removes
// exactly the orphans through the driver, and the Bound claim's image stays.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { controllerSocket } from '../../src/control/node/embedded-nodes.js';
import { CsiClient } from '../../src/csi/client.js';
import { decodeId, encodeId } from '../../src/driver/backends/ceph/volume-id.js';
import { useCephCluster } from '../support/ceph.js';
import { killProcessesUnder, leftovers, releaseAllUnder } from '../support/host-state.js';
import { type Ran, runCaptured } from '../support/processes.js';
import { BIN } from '../support/stowage-up.js';

const ceph = useCephCluster();
const DRIVER = 'rbd.csi.stowage.dev';

const manifests = (secrets: Record<string, string>, params: Record<string, string>): string => {
  const secretParams = ['provisioner', 'node-stage', 'controller-expand'].map((p) => `    csi.storage.k8s.io/${p}-secret-name: csi-rbd-secret\n    csi.storage.k8s.io/${p}-secret-namespace: default\n`).join('');
  const cls = (name: string, reclaim: string) => `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: ${name}}
provisioner: ${DRIVER}
reclaimPolicy: ${reclaim}
volumeBindingMode: Immediate
parameters:
    clusterID: ${params['clusterID']}
    pool: ${params['pool']}
    imageFeatures: layering
${secretParams}`;
  const claim = (name: string, cls: string) => `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${name}}
spec:
  storageClassName: ${cls}
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 8Mi}}
`;
  return [
    `apiVersion: v1\nkind: Secret\nmetadata: {name: csi-rbd-secret, namespace: default}\nstringData: {userID: ${secrets['userID']}, userKey: "${secrets['userKey']}"}\n`,
    cls('rbd-delete', 'Delete'),
    cls('rbd-retain', 'Retain'),
    claim('keep', 'rbd-delete'),
    claim('retained', 'rbd-retain'),
    claim('dangling', 'rbd-retain'),
  ].join('---\n');
};

describe('stowage gc (rbd on ceph-dev)', { timeout: 900_000 }, () => {
  let dir = '';
  let state = '';
  let cephConfig = '';
  let up: ChildProcess | undefined;
  let log = '';
  let csi: CsiClient | undefined;

  const stowage = (...args: string[]): Promise<Ran> => runCaptured(process.execPath, [BIN, '--state-dir', state, ...args]);
  const ok = async (...args: string[]): Promise<string> => {
    const r = await stowage(...args);
    assert.equal(r.code, 0, `stowage ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const until = async (what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log.slice(-3000)}`);
      await sleep(250);
    }
  };
  const field = async (kind: string, name: string, path: string): Promise<string> => {
    const r = await stowage('get', kind, name, '-o', 'json');
    if (r.code !== 0) return '';
    let v: unknown = JSON.parse(r.stdout);
    for (const part of path.split('.').filter(Boolean)) v = v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>)[part];
    return v === undefined || v === null ? '' : String(v);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-gc-rbd-'));
    state = join(dir, 'state');
    cephConfig = join(dir, 'ceph-csi-config.json');
    await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--backend', 'rbd', '--ceph-config', cephConfig, '--node-name', 'gc-rbd'], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    await until('stowage up to start', async () => {
      if (up?.exitCode !== null) throw new Error(`stowage up exited:\n${log}`);
      return log.includes('stowage is up');
    });
    csi = CsiClient.connect(`unix://${controllerSocket(state, DRIVER)}`);
  }, { timeout: 180_000 });

  after(async () => {
    csi?.close();
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = new Promise((resolve) => up?.once('exit', resolve));
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await exited;
      clearTimeout(timer);
    }
    await killProcessesUnder(dir);
    await releaseAllUnder(dir);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  }, { timeout: 120_000 });

  it('lists the orphans from the journal, skips what is in flight or not ours, and --delete removes exactly them', async () => {
    const file = join(dir, 'gc.yaml');
    await writeFile(file, manifests(ceph.secrets, ceph.parameters));
    await ok('apply', '-f', file);
    await until('the claims to bind', async () => {
      for (const c of ['keep', 'retained', 'dangling']) if ((await field('pvc', c, 'status.phase')) !== 'Bound') return false;
      return true;
    });
    const handle = async (claim: string) => field('pv', await field('pvc', claim, 'spec.volumeName'), 'spec.csi.volumeHandle');
    const keep = await handle('keep');
    const orphan = await handle('retained');
    const danglingPv = await field('pvc', 'dangling', 'spec.volumeName');
    const dangling = await handle('dangling');
    const retainedPv = await field('pvc', 'retained', 'spec.volumeName');
    const image = (id: string) => `csi-vol-${decodeId(id)?.uuid ?? ''}`;

    await ok('delete', 'pvc', 'retained', 'dangling');
    await until('both Retain PVs to be Released', async () => (await field('pv', retainedPv, 'status.phase')) === 'Released' && (await field('pv', danglingPv, 'status.phase')) === 'Released');
    await ok('delete', 'pv', retainedPv);
    await csi?.controller.DeleteVolume({ volume_id: dangling, secrets: ceph.secrets });
    const snapshot = (await csi?.controller.CreateSnapshot({ name: 'snap-by-hand', source_volume_id: keep, secrets: ceph.secrets }))?.snapshot?.snapshot_id ?? '';
    assert.ok(snapshot);

    // A CreateVolume in flight: its name reserved and its record `creating`; and a ceph-csi volume (no stowage.record).
    const pool = ceph.parameters['pool'] ?? '';
    const poolId = decodeId(keep)?.poolId ?? -1;
    const inflightUuid = randomUUID();
    const inflight = encodeId({ clusterID: ceph.info.clusterID, poolId, uuid: inflightUuid });
    const record = { id: inflight, name: 'in-flight', state: 'creating', capacityBytes: 8 << 20, createdAt: new Date(Date.now() - 7_200_000).toISOString() };
    await ceph.rados(['-p', pool, 'setomapval', 'csi.volumes.default', 'csi.volume.in-flight', inflightUuid]);
    await ceph.rados(['-p', pool, 'setomapval', `csi.volume.${inflightUuid}`, 'stowage.record', JSON.stringify(record)]);
    const foreignUuid = randomUUID();
    await ceph.rados(['-p', pool, 'setomapval', 'csi.volumes.default', 'csi.volume.pvc-foreign', foreignUuid]);
    await ceph.rados(['-p', pool, 'setomapval', `csi.volume.${foreignUuid}`, 'csi.volname', 'pvc-foreign']);

    const listed = await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0');
    const lines = listed.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^KIND\s+DRIVER\s+ID\/NAME\s+WHERE\s+AGE\s+WHY$/);
    const rows = lines.slice(1);
    assert.equal(rows.length, 3, `exactly three orphans:\n${listed}`);
    const where = `${ceph.info.clusterID}/${pool}`;
    assert.match(rows[0] ?? '', new RegExp(`^Snapshot\\s+${DRIVER.replace(/\./g, '\\.')}\\s+${snapshot}\\s+${where}\\s+\\S+\\s+no VolumeSnapshotContent refers to it$`));
    assert.match(rows[1] ?? '', new RegExp(`^Volume\\s+\\S+\\s+${orphan}\\s+${where}\\s+\\S+\\s+no PersistentVolume refers to it$`));
    assert.match(rows[2] ?? '', new RegExp(`^PersistentVolume\\s+\\S+\\s+${danglingPv}\\s+api\\s+\\S+\\s+volume ${dangling} does not exist in the driver$`));
    assert.ok(!listed.includes(inflight) && !listed.includes(keep), 'neither the volume in flight nor the bound one');

    // Without --ceph-config the rbd driver cannot be listed: nothing of it is called an orphan.
    assert.equal(await ok('gc'), 'No orphans found.\n');

    const r = await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0', '--delete', '--yes');
    assert.match(r, new RegExp(`^snapshot ${snapshot} deleted through ${DRIVER}$`, 'm'));
    assert.match(r, new RegExp(`^volume ${orphan} deleted through ${DRIVER}$`, 'm'));
    assert.match(r, new RegExp(`^persistentvolume ${danglingPv} deleted$`, 'm'));
    const { images } = await ceph.images();
    assert.ok(images.includes(image(keep)), `the bound claim's image stays: ${images.join(' ')}`);
    assert.ok(!images.includes(image(orphan)), 'the orphaned image is gone');
    assert.ok(!images.some((i) => i.startsWith('csi-snap-')), 'the snapshot is gone');
    assert.deepEqual((await ceph.omapKeys('csi.volumes.default')).sort(), ['csi.volume.in-flight', 'csi.volume.pvc-foreign', `csi.volume.${await field('pvc', 'keep', 'spec.volumeName')}`].sort(), 'the journal keeps the bound, in-flight and foreign names');
    assert.equal(await field('pvc', 'keep', 'status.phase'), 'Bound');
    assert.equal(await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0'), 'No orphans found.\n');

    // Clean up: the fake reservations, then the bound claim (reclaim Delete removes its image).
    await ceph.rados(['-p', pool, 'rmomapkey', 'csi.volumes.default', 'csi.volume.in-flight']);
    await ceph.rados(['-p', pool, 'rmomapkey', 'csi.volumes.default', 'csi.volume.pvc-foreign']);
    await ceph.rados(['-p', pool, 'rm', `csi.volume.${inflightUuid}`]);
    await ceph.rados(['-p', pool, 'rm', `csi.volume.${foreignUuid}`]);
    await ok('delete', 'pvc', 'keep');
    await until('the bound image to be deleted', async () => !(await ceph.images()).images.includes(image(keep)));
  });
});
