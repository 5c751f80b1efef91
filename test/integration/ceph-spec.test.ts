/**
 * The rbd and cephfs controllers as the CSI spec and a Kubernetes snapshotter drive them, against
 * a real cluster: requests carry only what the spec makes them carry. A VolumeSnapshotClass
 * without parameters is legal (the source volume's ID names cluster and pool / filesystem);
 * parameters that repeat the ID must agree with it (INVALID_ARGUMENT naming both values); a clone
 * is refused, not attempted, across clusters; DeleteSnapshot, ControllerExpandVolume and
 * ValidateVolumeCapabilities need nothing but IDs and secrets.
 *
 * Requests go through the raw client (the test harness's client would add the class parameters
 * a test must be able to leave out). The driver's cluster list names the one test cluster twice
 * ("other" has the same monitors), so a mismatched clusterID reaches a real cluster and only the
 * driver's own check can refuse it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { needsRoot, startTestDriver, type TestBackend, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();
const OTHER = 'other';

interface Case {
  backend: 'rbd' | 'cephfs';
  /** StorageClass parameters (the test cluster's). */
  volumeParameters(): Record<string, string>;
  secrets(): Record<string, string>;
  /** The parameter naming where the data lives, and its value for the test cluster. */
  location(): [string, string];
  fsType: string;
}

const CASES: Case[] = [
  {
    backend: 'rbd',
    volumeParameters: () => ceph.parameters,
    secrets: () => ceph.secrets,
    location: () => ['pool', ceph.info.pool],
    fsType: 'ext4',
  },
  {
    backend: 'cephfs',
    volumeParameters: () => ceph.cephfsParameters,
    secrets: () => ceph.cephfsSecrets,
    location: () => ['fsName', ceph.info.fsName],
    fsType: '',
  },
];

/** The cluster-and-location prefix of a ceph-csi ID (everything before the UUID). */
const prefixOf = (id: string) => id.slice(0, id.length - 36);

for (const c of CASES) {
  describe(`${c.backend}: the spec's minimal requests`, { skip: needsRoot, timeout: 240_000 }, () => {
    let drv: TestDriver;
    const ctl = () => drv.rawClient.controller;
    const volumes = new Set<string>();
    const snapshots = new Set<string>();
    let source: string;

    async function createVolume(parameters: Record<string, string>, bytes = 16 * MiB) {
      const res = await ctl().CreateVolume({
        name: uniqueName('spec'),
        volume_capabilities: [mountCap(c.fsType)],
        capacity_range: { required_bytes: bytes },
        parameters,
        secrets: c.secrets(),
      });
      volumes.add(res.volume!.volume_id);
      return res.volume!;
    }

    before(async () => {
      const clusters = [ceph.info.clusterID, OTHER].map((clusterID) => ({ clusterID, monitors: ceph.info.monitors }));
      drv = await startTestDriver({ backend: c.backend as TestBackend, ceph, cephConfig: clusters, prefix: `stowage-spec-${c.backend}-` });
      source = (await createVolume(c.volumeParameters())).volume_id;
    });

    after(async () => {
      for (const id of snapshots) await ctl().DeleteSnapshot({ snapshot_id: id, secrets: c.secrets() }).catch(() => undefined);
      for (const id of volumes) await ctl().DeleteVolume({ volume_id: id, secrets: c.secrets() }).catch(() => undefined);
      await drv?.cleanup();
    });

    it('CreateSnapshot without parameters: the snapshot is made beside its source, and a retry finds it', async () => {
      const name = uniqueName('nop');
      const first = await ctl().CreateSnapshot({ name, source_volume_id: source, secrets: c.secrets() });
      const snap = first.snapshot!;
      snapshots.add(snap.snapshot_id);
      assert.equal(snap.ready_to_use, true);
      assert.equal(snap.source_volume_id, source);
      assert.equal(prefixOf(snap.snapshot_id), prefixOf(source), 'same cluster and pool / filesystem as the source');
      const again = await ctl().CreateSnapshot({ name, source_volume_id: source, secrets: c.secrets() });
      assert.equal(again.snapshot!.snapshot_id, snap.snapshot_id);
      // A class that names the same cluster and location is the same request.
      const [key, value] = c.location();
      const agreeing = await ctl().CreateSnapshot({ name, source_volume_id: source, parameters: { clusterID: ceph.info.clusterID, [key]: value }, secrets: c.secrets() });
      assert.equal(agreeing.snapshot!.snapshot_id, snap.snapshot_id);
    });

    it('CreateSnapshot with parameters that contradict the source ID: INVALID_ARGUMENT naming both values', async () => {
      const [key, value] = c.location();
      const table: [Record<string, string>, string, string][] = [
        [{ clusterID: OTHER }, OTHER, ceph.info.clusterID],
        [{ clusterID: 'nowhere' }, 'nowhere', ceph.info.clusterID],
        [{ [key]: 'elsewhere' }, 'elsewhere', value],
        [{ clusterID: ceph.info.clusterID, [key]: 'elsewhere' }, 'elsewhere', value],
      ];
      for (const [parameters, given, actual] of table) {
        const e = await expectCode(
          ctl().CreateSnapshot({ name: uniqueName('bad'), source_volume_id: source, parameters, secrets: c.secrets() }),
          status.INVALID_ARGUMENT,
          JSON.stringify(parameters),
        );
        assert.ok(e.message.includes(`"${given}"`) && e.message.includes(`"${actual}"`), `${JSON.stringify(parameters)}: ${e.message}`);
      }
    });

    it('CreateVolume from a snapshot or a volume of another cluster: INVALID_ARGUMENT naming both, nothing left behind', async () => {
      const snap = (await ctl().CreateSnapshot({ name: uniqueName('x'), source_volume_id: source, secrets: c.secrets() })).snapshot!;
      snapshots.add(snap.snapshot_id);
      const elsewhere = { ...c.volumeParameters(), clusterID: OTHER };
      for (const content of [{ snapshot: { snapshot_id: snap.snapshot_id } }, { volume: { volume_id: source } }]) {
        const name = uniqueName('xc');
        const req = {
          name,
          volume_capabilities: [mountCap(c.fsType)],
          capacity_range: { required_bytes: 16 * MiB },
          parameters: elsewhere,
          volume_content_source: content,
          secrets: c.secrets(),
        };
        const e = await expectCode(ctl().CreateVolume(req), status.INVALID_ARGUMENT, JSON.stringify(content));
        assert.ok(e.message.includes(`"${OTHER}"`) && e.message.includes(`"${ceph.info.clusterID}"`), e.message);
        // Refused for good: the name is free again (a retry is refused the same way, not ABORTED).
        await expectCode(ctl().CreateVolume(req), status.INVALID_ARGUMENT, `retry ${JSON.stringify(content)}`);
      }
    });

    it('DeleteSnapshot, ControllerExpandVolume and ValidateVolumeCapabilities need only IDs and secrets', async () => {
      const vol = await createVolume(c.volumeParameters());
      const snap = (await ctl().CreateSnapshot({ name: uniqueName('d'), source_volume_id: vol.volume_id, secrets: c.secrets() })).snapshot!;
      const valid = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap(c.fsType)], secrets: c.secrets() });
      assert.ok(valid.confirmed, `not confirmed: ${valid.message}`);
      const grown = await ctl().ControllerExpandVolume({ volume_id: vol.volume_id, capacity_range: { required_bytes: 32 * MiB }, secrets: c.secrets() });
      assert.equal(Number(grown.capacity_bytes), 32 * MiB);
      await ctl().DeleteSnapshot({ snapshot_id: snap.snapshot_id, secrets: c.secrets() });
      await ctl().DeleteSnapshot({ snapshot_id: snap.snapshot_id, secrets: c.secrets() });
    });

    it('everything deleted: no journal key, image or subvolume of the test is left', async () => {
      for (const id of snapshots) await ctl().DeleteSnapshot({ snapshot_id: id, secrets: c.secrets() });
      snapshots.clear();
      for (const id of volumes) await ctl().DeleteVolume({ volume_id: id, secrets: c.secrets() });
      volumes.clear();
      if (c.backend === 'rbd') {
        const { images, trash } = await ceph.images();
        assert.deepEqual(images.filter((i) => i.startsWith('csi-')), []);
        assert.deepEqual(trash, []);
        assert.deepEqual(await ceph.omapKeys('csi.volumes.default'), []);
        assert.deepEqual(await ceph.omapKeys('csi.snaps.default'), []);
      } else {
        assert.deepEqual(await ceph.subvolumes(), []);
        assert.deepEqual(await ceph.fsOmapKeys('csi.volumes.default'), []);
        assert.deepEqual(await ceph.fsOmapKeys('csi.snaps.default'), []);
      }
    });
  });
}
