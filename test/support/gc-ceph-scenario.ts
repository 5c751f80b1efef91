// The scenario `stowage gc --ceph-config` is tested with on both Ceph backends (cli-gc-rbd,
// cli-gc-cephfs), against a real `stowage up --backend B` on `stowage ceph-dev`: an orphan (its
// Retain PV deleted), a snapshot cut straight through CSI, a dangling PV (its volume deleted behind
// it) are listed from the journal; a reservation still `creating` (a CreateVolume in flight or
// abandoned) is listed as never touched, a ceph-csi record (no stowage.record: not ours) not at all;
// `--delete --yes` removes exactly the orphans through the driver and the Bound claim's storage stays;
// where the driver cuts group snapshots (rbd), a member is listed but never deleted alone.
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
import type { CephFixture } from './ceph.js';
import { killProcessesUnder, leftovers, releaseAllUnder } from './host-state.js';
import { type Ran, runCaptured } from './processes.js';
import { BIN } from './stowage-up.js';

export interface GcCephBackend {
  backend: 'rbd' | 'cephfs';
  driver: string;
  /** The class's parameters naming the cluster and pool / filesystem. */
  parameters(ceph: CephFixture): Record<string, string>;
  secrets(ceph: CephFixture): Record<string, string>;
  /** rados arguments selecting the journal's pool (and namespace). */
  journal(ceph: CephFixture): string[];
  /** The WHERE column: cluster/pool or cluster/filesystem. */
  where(ceph: CephFixture): string;
  /** Names of the volumes' storage (images, subvolumes). */
  volumes(ceph: CephFixture): Promise<string[]>;
  /** Names of the snapshots' storage, given the volume they were cut from. */
  snapshots(ceph: CephFixture, sourceStorage: string): Promise<string[]>;
  /** The driver cuts group snapshots: their members are listed but never deleted alone. */
  groupSnapshots?: boolean;
}

export function gcCephScenario(ceph: CephFixture, b: GcCephBackend): void {
  describe(`stowage gc (${b.backend} on ceph-dev)`, { timeout: 900_000 }, () => {
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
    const manifests = (): string => {
      const secrets = b.secrets(ceph);
      const secretParams = ['provisioner', 'node-stage', 'controller-expand'].map((p) => `  csi.storage.k8s.io/${p}-secret-name: gc-secret\n  csi.storage.k8s.io/${p}-secret-namespace: default\n`).join('');
      const params = Object.entries(b.parameters(ceph)).map(([k, v]) => `  ${k}: "${v}"\n`).join('');
      const cls = (name: string, reclaim: string) => `apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: ${name}}\nprovisioner: ${b.driver}\nreclaimPolicy: ${reclaim}\nvolumeBindingMode: Immediate\nparameters:\n${params}${secretParams}`;
      const claim = (name: string, cls: string) => `apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: ${name}}\nspec:\n  storageClassName: ${cls}\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 8Mi}}\n`;
      const data = Object.entries(secrets).map(([k, v]) => `  ${k}: "${v}"\n`).join('');
      return [`apiVersion: v1\nkind: Secret\nmetadata: {name: gc-secret, namespace: default}\nstringData:\n${data}`, cls('gc-delete', 'Delete'), cls('gc-retain', 'Retain'), claim('keep', 'gc-delete'), claim('retained', 'gc-retain'), claim('dangling', 'gc-retain')].join('---\n');
    };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `stowage-gc-${b.backend}-`));
      state = join(dir, 'state');
      cephConfig = join(dir, 'ceph-csi-config.json');
      await writeFile(cephConfig, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
      up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--backend', b.backend, '--ceph-config', cephConfig, '--node-name', `gc-${b.backend}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      up.stdout?.on('data', (c: Buffer) => (log += c.toString('utf8')));
      up.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
      await until('stowage up to start', async () => {
        if (up?.exitCode !== null) throw new Error(`stowage up exited:\n${log}`);
        return log.includes('stowage is up');
      });
      csi = CsiClient.connect(`unix://${controllerSocket(state, b.driver)}`);
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
      await writeFile(file, manifests());
      await ok('apply', '-f', file);
      await until('the claims to bind', async () => {
        for (const c of ['keep', 'retained', 'dangling']) if ((await field('pvc', c, 'status.phase')) !== 'Bound') return false;
        return true;
      });
      const handle = async (claim: string) => field('pv', await field('pvc', claim, 'spec.volumeName'), 'spec.csi.volumeHandle');
      const keep = await handle('keep');
      const keepPv = await field('pvc', 'keep', 'spec.volumeName');
      const orphan = await handle('retained');
      const retainedPv = await field('pvc', 'retained', 'spec.volumeName');
      const danglingPv = await field('pvc', 'dangling', 'spec.volumeName');
      const dangling = await handle('dangling');
      const storage = (id: string) => `csi-vol-${decodeId(id)?.uuid ?? ''}`;
      const secrets = b.secrets(ceph);

      await ok('delete', 'pvc', 'retained', 'dangling');
      await until('both Retain PVs to be Released', async () => (await field('pv', retainedPv, 'status.phase')) === 'Released' && (await field('pv', danglingPv, 'status.phase')) === 'Released');
      await ok('delete', 'pv', retainedPv);
      await csi?.controller.DeleteVolume({ volume_id: dangling, secrets });
      const snapshot = (await csi?.controller.CreateSnapshot({ name: 'snap-by-hand', source_volume_id: keep, secrets }))?.snapshot?.snapshot_id ?? '';
      assert.ok(snapshot);
      assert.deepEqual(await b.snapshots(ceph, storage(keep)), [`csi-snap-${decodeId(snapshot)?.uuid ?? ''}`]);

      // A CreateVolume in flight (its name reserved, its record `creating`, long ago) and a ceph-csi volume (no stowage.record).
      const journal = b.journal(ceph);
      const location = decodeId(keep)?.poolId ?? -1;
      const inflightUuid = randomUUID();
      const inflight = encodeId({ clusterID: ceph.info.clusterID, poolId: location, uuid: inflightUuid });
      const record = { id: inflight, name: 'in-flight', state: 'creating', capacityBytes: 8 << 20, createdAt: new Date(Date.now() - 7_200_000).toISOString() };
      await ceph.rados([...journal, 'setomapval', 'csi.volumes.default', 'csi.volume.in-flight', inflightUuid]);
      await ceph.rados([...journal, 'setomapval', `csi.volume.${inflightUuid}`, 'stowage.record', JSON.stringify(record)]);
      const foreignUuid = randomUUID();
      await ceph.rados([...journal, 'setomapval', 'csi.volumes.default', 'csi.volume.pvc-foreign', foreignUuid]);
      await ceph.rados([...journal, 'setomapval', `csi.volume.${foreignUuid}`, 'csi.volname', 'pvc-foreign']);

      const listed = await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0');
      const lines = listed.trimEnd().split('\n');
      assert.match(lines[0] ?? '', /^KIND\s+DRIVER\s+ID\/NAME\s+WHERE\s+AGE\s+WHY$/);
      const rows = lines.slice(1);
      assert.equal(rows.length, 4, `three orphans and the reservation in flight:\n${listed}`);
      const where = b.where(ceph).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const driver = b.driver.replace(/\./g, '\\.');
      assert.match(rows[0] ?? '', new RegExp(`^Snapshot\\s+${driver}\\s+${snapshot}\\s+${where}\\s+\\S+\\s+no VolumeSnapshotContent refers to it$`));
      const volumeRows = [rows[1] ?? '', rows[2] ?? ''];
      assert.ok(volumeRows.some((r) => new RegExp(`^Volume\\s+${driver}\\s+${orphan}\\s+${where}\\s+\\S+\\s+no PersistentVolume refers to it$`).test(r)), listed);
      assert.ok(volumeRows.some((r) => new RegExp(`^Volume\\s+${driver}\\s+${inflight}\\s+${where}\\s+(119|120)m\\s+reserved in the driver's journal, not complete \\(a CreateVolume in flight or abandoned\\): never touched$`).test(r)), listed);
      assert.match(rows[3] ?? '', new RegExp(`^PersistentVolume\\s+${driver}\\s+${danglingPv}\\s+api\\s+\\S+\\s+volume ${dangling} does not exist in the driver$`));
      assert.ok(!listed.includes(keep) && !listed.includes('pvc-foreign') && !listed.includes(foreignUuid), 'neither the bound volume nor the one that is not ours');

      // Without --ceph-config the driver cannot be listed: nothing of it is called an orphan.
      assert.equal(await ok('gc'), 'No orphans found.\n');

      const r = await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0', '--delete', '--yes');
      assert.match(r, new RegExp(`^snapshot ${snapshot} deleted through ${driver}$`, 'm'));
      assert.match(r, new RegExp(`^volume ${orphan} deleted through ${driver}$`, 'm'));
      assert.match(r, new RegExp(`^persistentvolume ${danglingPv} deleted$`, 'm'));
      assert.ok(!new RegExp(`^volume ${inflight}`, 'm').test(r), 'the reservation in flight is not deleted');
      const volumes = await b.volumes(ceph);
      assert.ok(volumes.includes(storage(keep)), `the bound claim's storage stays: ${volumes.join(' ')}`);
      assert.ok(!volumes.includes(storage(orphan)), 'the orphan is gone');
      assert.deepEqual(await b.snapshots(ceph, storage(keep)), [], 'the snapshot is gone');
      const names = (await ceph.rados([...journal, 'listomapkeys', 'csi.volumes.default'])).split('\n').filter(Boolean).sort();
      assert.deepEqual(names, ['csi.volume.in-flight', 'csi.volume.pvc-foreign', `csi.volume.${keepPv}`].sort(), 'the journal keeps the bound, in-flight and foreign names');
      assert.equal(await field('pvc', 'keep', 'status.phase'), 'Bound');
      const remaining = (await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0')).trimEnd().split('\n');
      assert.equal(remaining.length, 2, `only the reservation in flight is left:\n${remaining.join('\n')}`);
      assert.match(remaining[1] ?? '', new RegExp(`^Volume\\s+${driver}\\s+${inflight}\\s.*never touched$`));

      // Clean up: the fake reservations, then the bound claim (reclaim Delete removes its storage).
      for (const key of ['csi.volume.in-flight', 'csi.volume.pvc-foreign']) await ceph.rados([...journal, 'rmomapkey', 'csi.volumes.default', key]);
      for (const uuid of [inflightUuid, foreignUuid]) await ceph.rados([...journal, 'rm', `csi.volume.${uuid}`]);

      if (b.groupSnapshots) {
        // A group snapshot's member goes with its group: listed, never deleted alone.
        const group = (await csi?.groupController.CreateVolumeGroupSnapshot({ name: 'group-by-hand', source_volume_ids: [keep], secrets }))?.group_snapshot;
        const member = group?.snapshots[0]?.snapshot_id ?? '';
        assert.ok(group?.group_snapshot_id && member);
        const members = (await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0', '--delete', '--yes')).trimEnd().split('\n');
        assert.match(members[1] ?? '', new RegExp(`^Snapshot\\s+${driver}\\s+${member}\\s.*member of group snapshot ${group.group_snapshot_id} \\(DeleteVolumeGroupSnapshot removes it\\): never touched$`));
        assert.match(members.join('\n'), /nothing to delete/);
        assert.deepEqual(await b.snapshots(ceph, storage(keep)), [`csi-snap-${decodeId(member)?.uuid ?? ''}`], 'the member stays');
        await csi?.groupController.DeleteVolumeGroupSnapshot({ group_snapshot_id: group.group_snapshot_id, snapshot_ids: [member], secrets });
        assert.equal(await ok('gc', '--ceph-config', cephConfig, '--grace-period', '0'), 'No orphans found.\n');
      }
      await ok('delete', 'pvc', 'keep');
      await until('the bound volume to be deleted', async () => !(await b.volumes(ceph)).includes(storage(keep)));
    });
  });
}
