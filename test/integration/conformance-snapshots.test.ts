/**
 * Snapshots, restores and clones through the real driver (spec: CreateSnapshot, DeleteSnapshot,
 * ListSnapshots, CreateVolume with a content source). Data checks live in data-snapshots.
 * Runs against every backend (support/backends.ts); where a backend does not serve ListSnapshots
 * (rbd), the checks that only look use its own records instead, and ListSnapshots is UNIMPLEMENTED.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { cephOf } from '../support/ceph.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';

const backends = testBackends();

for (const backend of backends) describe(`conformance: snapshots, restores and clones [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;

  async function volume(cap: VolumeCapabilityInput = mountCap(), bytes = 32 * MiB): Promise<string> {
    const res = await ctl().CreateVolume({ name: uniqueName('src'), volume_capabilities: [cap], capacity_range: { required_bytes: bytes, limit_bytes: bytes } });
    return res.volume!.volume_id;
  }

  async function snapshot(sourceId: string, name = uniqueName('snap')) {
    const res = await ctl().CreateSnapshot({ name, source_volume_id: sourceId });
    assert.ok(res.snapshot);
    return res.snapshot;
  }

  /** The snapshots the backend holds (ListSnapshots, or the backend's own records where it is not served). */
  const known = (req: { snapshot_id?: string; source_volume_id?: string } = {}) => backend.snapshots(drv, req);

  async function listAll(req: { snapshot_id?: string; source_volume_id?: string } = {}) {
    const res = await ctl().ListSnapshots(req);
    assert.equal(res.next_token, '');
    return res.entries.map((e) => e.snapshot!);
  }

  before(async () => {
    // Volumes without a capacity range are 1 GiB, and this suite keeps many: a pool that promises
    // them all (the local pool admits no more than it holds, pool-capacity.ts).
    drv = await backend.start({ prefix: 'stowage-snap-', poolSize: '16Gi' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  describe('CreateSnapshot', () => {
    it('returns a ready snapshot with its source, size and creation time', async () => {
      for (const cap of [mountCap(), mountCap(backend.namedFs), ...(backend.block ? [blockCap()] : [])]) {
        const src = await volume(cap);
        const before = Date.now();
        const snap = await snapshot(src);
        assert.ok(snap.snapshot_id.length > 0);
        assert.equal(snap.source_volume_id, src);
        assert.equal(snap.ready_to_use, true, 'csi-sanity waits forever for ready_to_use');
        assert.equal(snap.size_bytes, 32 * MiB);
        assert.ok(snap.creation_time, 'creation_time is required');
        const ms = snap.creation_time.seconds * 1000 + snap.creation_time.nanos / 1e6;
        assert.ok(ms >= before - 2000 && ms <= Date.now() + 2000, `creation_time ${new Date(ms).toISOString()} is now`);
      }
    });

    it('is idempotent by name; the same name for another volume → ALREADY_EXISTS', async () => {
      const a = await volume();
      const b = await volume();
      const name = uniqueName('idem');
      const first = await snapshot(a, name);
      const again = await snapshot(a, name);
      assert.equal(again.snapshot_id, first.snapshot_id);
      assert.deepEqual(again.creation_time, first.creation_time);
      await expectCode(ctl().CreateSnapshot({ name, source_volume_id: b }), status.ALREADY_EXISTS, 'same name, other source');
      assert.equal((await known({ source_volume_id: a })).length, 1);
      assert.equal((await known({ source_volume_id: b })).length, 0);
    });

    it('128-byte names work; missing name or source → INVALID_ARGUMENT; unknown source → NOT_FOUND', async () => {
      const src = await volume();
      const long = `s${'x'.repeat(127)}`;
      const a = await snapshot(src, long);
      const b = await snapshot(src, long);
      assert.equal(a.snapshot_id, b.snapshot_id);
      await expectCode(ctl().CreateSnapshot({ source_volume_id: 'testId' }), status.INVALID_ARGUMENT, 'no name');
      await expectCode(ctl().CreateSnapshot({ name: 'name' }), status.INVALID_ARGUMENT, 'no source');
      await expectCode(ctl().CreateSnapshot({ name: uniqueName('bad'), source_volume_id: src, parameters: { bogus: '1' } }), status.INVALID_ARGUMENT, 'unknown parameter');
      await expectCode(ctl().CreateSnapshot({ name: uniqueName('x'), source_volume_id: 'fake-vol-id-nope' }), status.NOT_FOUND, 'unknown source');
    });
  });

  if (!backend.lists) {
    it('ListSnapshots and GetSnapshot are not served (they carry no secrets to read the journal)', async () => {
      await expectCode(ctl().ListSnapshots({}), status.UNIMPLEMENTED, 'ListSnapshots');
      await expectCode(ctl().GetSnapshot({ snapshot_id: 'x' }), status.UNIMPLEMENTED, 'GetSnapshot');
    });
  }

  if (backend.lists) describe('ListSnapshots', () => {
    it('filters by snapshot id and by source; unknown filters give an empty list', async () => {
      const v1 = await volume();
      const v2 = await volume();
      const s1 = await snapshot(v1);
      const s2 = await snapshot(v1);
      const s3 = await snapshot(v2);
      const all = await listAll();
      for (const s of [s1, s2, s3]) assert.equal(all.filter((e) => e.snapshot_id === s.snapshot_id).length, 1);
      for (const e of all) {
        assert.ok(e.snapshot_id && e.source_volume_id && e.creation_time, 'every entry is complete');
        assert.equal(e.ready_to_use, true);
      }
      const byId = await listAll({ snapshot_id: s3.snapshot_id });
      assert.deepEqual(byId.map((e) => e.snapshot_id), [s3.snapshot_id]);
      assert.equal(byId[0]!.source_volume_id, v2);
      const bySource = await listAll({ source_volume_id: v1 });
      assert.deepEqual(bySource.map((e) => e.snapshot_id).sort(), [s1.snapshot_id, s2.snapshot_id].sort());
      assert.deepEqual(await listAll({ snapshot_id: 'none-exist-id' }), []);
      assert.deepEqual(await listAll({ source_volume_id: 'fake-vol-id-none' }), []);
      assert.deepEqual(await listAll({ snapshot_id: s3.snapshot_id, source_volume_id: v1 }), [], 'both filters apply');
    });

    it('the count moves by exactly one with each create and delete', async () => {
      const v = await volume();
      const n = (await listAll()).length;
      const s = await snapshot(v);
      assert.equal((await listAll()).length, n + 1);
      await ctl().DeleteSnapshot({ snapshot_id: s.snapshot_id });
      assert.equal((await listAll()).length, n);
    });

    it('snapshots and volumes are listed apart', async () => {
      const v = await volume();
      const s = await snapshot(v);
      const volumes = (await ctl().ListVolumes({})).entries.map((e) => e.volume!.volume_id);
      assert.ok(!volumes.includes(s.snapshot_id));
      assert.ok(!(await listAll()).some((e) => e.snapshot_id === v));
    });

    it('pages of max_entries=2 walk every snapshot once; a foreign token → ABORTED', async () => {
      const v = await volume();
      for (let i = 0; i < 5; i++) await snapshot(v);
      const all = (await listAll()).map((e) => e.snapshot_id);
      assert.ok(all.length >= 5);
      const first = await ctl().ListSnapshots({ max_entries: 2 });
      assert.equal(first.entries.length, 2);
      assert.notEqual(first.next_token, '');
      const rest = await ctl().ListSnapshots({ starting_token: first.next_token });
      assert.equal(rest.entries.length, all.length - 2, 'csi-sanity: the rest in one page');
      const seen = [...first.entries, ...rest.entries].map((e) => e.snapshot!.snapshot_id);
      assert.deepEqual([...seen].sort(), [...all].sort());
      const walked: string[] = [];
      let token = '';
      do {
        const page = await ctl().ListSnapshots({ max_entries: 2, starting_token: token });
        assert.ok(page.entries.length <= 2);
        walked.push(...page.entries.map((e) => e.snapshot!.snapshot_id));
        token = page.next_token;
      } while (token !== '');
      assert.deepEqual([...walked].sort(), [...all].sort());
      await expectCode(ctl().ListSnapshots({ starting_token: 'invalid-token' }), status.ABORTED, 'foreign token');
      await expectCode(ctl().ListSnapshots({ max_entries: -2 }), status.INVALID_ARGUMENT, 'negative max_entries');
    });
  });

  describe('DeleteSnapshot', () => {
    it('deletes; again or unknown is OK; no id → INVALID_ARGUMENT', async () => {
      const v = await volume();
      const s = await snapshot(v);
      await ctl().DeleteSnapshot({ snapshot_id: s.snapshot_id });
      assert.deepEqual(await known({ snapshot_id: s.snapshot_id }), []);
      await ctl().DeleteSnapshot({ snapshot_id: s.snapshot_id });
      await ctl().DeleteSnapshot({ snapshot_id: 'reallyfakesnapshotid' });
      await expectCode(ctl().DeleteSnapshot({ snapshot_id: '' }), status.INVALID_ARGUMENT, 'no id');
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('r'), volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: s.snapshot_id } } }),
        status.NOT_FOUND,
        'restore a deleted snapshot',
      );
    });

    it('frees the name for a new snapshot', async () => {
      const v = await volume();
      const name = uniqueName('again');
      const a = await snapshot(v, name);
      await ctl().DeleteSnapshot({ snapshot_id: a.snapshot_id });
      const b = await snapshot(v, name);
      assert.notEqual(b.snapshot_id, a.snapshot_id);
    });
  });

  it('an ID of the other kind, or of something deleted, names nothing: NOT_FOUND where it must exist, OK for deletes, nothing touched', async () => {
    // rbd and cephfs volume and snapshot IDs have one format (ceph-csi's): only the journal tells them apart.
    const vol = await volume();
    const snap = await snapshot(vol);
    const deletedVol = await volume();
    await ctl().DeleteVolume({ volume_id: deletedVol });
    const deletedSnap = await snapshot(vol);
    await ctl().DeleteSnapshot({ snapshot_id: deletedSnap.snapshot_id });
    const staging = drv.stagingDir(uniqueName('stg'));
    for (const [what, id] of [['a snapshot ID as a volume', snap.snapshot_id], ['a deleted volume', deletedVol]] as const) {
      await expectCode(ctl().ValidateVolumeCapabilities({ volume_id: id, volume_capabilities: [mountCap()] }), status.NOT_FOUND, `ValidateVolumeCapabilities of ${what}`);
      await expectCode(ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 64 * MiB } }), status.NOT_FOUND, `ControllerExpandVolume of ${what}`);
      await expectCode(ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: id }), status.NOT_FOUND, `CreateSnapshot of ${what}`);
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('c'), volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id: id } } }),
        status.NOT_FOUND,
        `a clone of ${what}`,
      );
      await expectCode(drv.client.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap() }), status.NOT_FOUND, `NodeStageVolume of ${what}`);
    }
    for (const [what, id] of [['a volume ID as a snapshot', vol], ['a deleted snapshot', deletedSnap.snapshot_id]] as const) {
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('r'), volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: id } } }),
        status.NOT_FOUND,
        `a restore of ${what}`,
      );
    }
    // Deletes of the other kind's ID succeed (nothing of that kind has it) and leave the other alone.
    await ctl().DeleteVolume({ volume_id: snap.snapshot_id });
    await ctl().DeleteSnapshot({ snapshot_id: vol });
    assert.equal((await backend.volume(drv, vol))?.healthy, true, 'the volume is intact');
    assert.equal((await known({ snapshot_id: snap.snapshot_id })).length, 1, 'the snapshot is intact');
    const restored = await ctl().CreateVolume({ name: uniqueName('r'), volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } } });
    assert.equal(restored.volume?.content_source?.snapshot?.snapshot_id, snap.snapshot_id);
  });

  describe('restore and clone', () => {
    it('restore echoes the snapshot as content source, at least the snapshot size', async () => {
      for (const cap of [mountCap(), mountCap(backend.namedFs), ...(backend.block ? [blockCap()] : [])]) {
        const src = await volume(cap, 32 * MiB);
        const snap = await snapshot(src);
        const res = await ctl().CreateVolume({
          name: uniqueName('restored'),
          volume_capabilities: [cap],
          capacity_range: { required_bytes: 32 * MiB },
          volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } },
        });
        assert.equal(res.volume?.content_source?.snapshot?.snapshot_id, snap.snapshot_id);
        assert.ok(res.volume!.capacity_bytes >= 32 * MiB);
        const bigger = await ctl().CreateVolume({
          name: uniqueName('restored-big'),
          volume_capabilities: [cap],
          capacity_range: { required_bytes: 64 * MiB },
          volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } },
        });
        assert.ok(bigger.volume!.capacity_bytes >= 64 * MiB);
        const got = await backend.volume(drv, res.volume!.volume_id);
        assert.deepEqual(got?.source, { kind: 'snapshot', id: snap.snapshot_id }, 'content source kept');
      }
    });

    it('a restore smaller than the snapshot → OUT_OF_RANGE; of another type → INVALID_ARGUMENT', async () => {
      const src = await volume(mountCap(), 64 * MiB);
      const snap = await snapshot(src);
      const from = { snapshot: { snapshot_id: snap.snapshot_id } };
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('small'), volume_capabilities: [mountCap()], capacity_range: { limit_bytes: 32 * MiB }, volume_content_source: from }),
        status.OUT_OF_RANGE,
        'limit below the snapshot size',
      );
      await expectCode(ctl().CreateVolume({ name: uniqueName('blk'), volume_capabilities: [blockCap()], volume_content_source: from }), status.INVALID_ARGUMENT, 'btrfs snapshot as block');
      await expectCode(ctl().CreateVolume({ name: uniqueName('x'), volume_capabilities: [mountCap('xfs')], volume_content_source: from }), status.INVALID_ARGUMENT, 'btrfs snapshot as xfs');
    });

    it('clone echoes the source volume; unknown source → NOT_FOUND; another type → INVALID_ARGUMENT', async () => {
      const src = await volume(mountCap(backend.namedFs), 32 * MiB);
      const clone = await ctl().CreateVolume({
        name: uniqueName('clone'),
        volume_capabilities: [mountCap(backend.namedFs)],
        volume_content_source: { volume: { volume_id: src } },
      });
      assert.equal(clone.volume?.content_source?.volume?.volume_id, src);
      assert.ok(clone.volume!.capacity_bytes >= 32 * MiB);
      assert.notEqual(clone.volume!.volume_id, src);
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('c'), volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id: 'fake-vol-id-xyz' } } }),
        status.NOT_FOUND,
        'clone of nothing',
      );
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('c'), volume_capabilities: [blockCap()], volume_content_source: { volume: { volume_id: src } } }),
        status.INVALID_ARGUMENT,
        'ext4 cloned as block',
      );
    });

    if (backend.name !== 'local') it('the storage holds the size CreateVolume answered: a create, a restore and a clone larger than their source, an expansion', async () => {
      // The rbd image's size, the cephfs subvolume's quota, read from the cluster, not from the driver's record.
      const ceph = cephOf(drv);
      const held = async (v: { volume_context: Record<string, string> }): Promise<number> => {
        const c = v.volume_context;
        if (backend.name === 'rbd') return (JSON.parse(await ceph.rbd(['info', `${c['pool']}/${c['imageName']}`, '--format', 'json'])) as { size: number }).size;
        const info = JSON.parse(await ceph.ceph(['fs', 'subvolume', 'info', c['fsName']!, c['subvolumeName']!, '--group_name', c['subvolumeGroup']!, '--format', 'json']));
        return Number((info as { bytes_quota: number | string }).bytes_quota);
      };
      const cap = mountCap();
      const src = (await ctl().CreateVolume({ name: uniqueName('sz'), volume_capabilities: [cap], capacity_range: { required_bytes: 30 * MiB } })).volume!;
      assert.equal(src.capacity_bytes, 32 * MiB, 'rounded up to the 4 MiB granularity');
      assert.equal(await held(src), src.capacity_bytes, 'create');
      const snap = await snapshot(src.volume_id);
      assert.equal(snap.size_bytes, 32 * MiB);
      const from = (source: object, bytes: number) =>
        ctl().CreateVolume({ name: uniqueName('sz'), volume_capabilities: [cap], capacity_range: { required_bytes: bytes }, volume_content_source: source });
      const restored = (await from({ snapshot: { snapshot_id: snap.snapshot_id } }, 48 * MiB)).volume!;
      assert.equal(restored.capacity_bytes, 48 * MiB);
      assert.equal(await held(restored), 48 * MiB, 'a restore larger than its snapshot');
      const cloned = (await from({ volume: { volume_id: src.volume_id } }, 40 * MiB)).volume!;
      assert.equal(cloned.capacity_bytes, 40 * MiB);
      assert.equal(await held(cloned), 40 * MiB, 'a clone larger than its source');
      const same = (await from({ snapshot: { snapshot_id: snap.snapshot_id } }, 0)).volume!;
      // Without a range the plugin picks the size (spec: implementation-defined): at least the snapshot's.
      assert.ok(same.capacity_bytes >= 32 * MiB);
      assert.equal(await held(same), same.capacity_bytes, 'a restore without a range');
      const grown = await ctl().ControllerExpandVolume({ volume_id: restored.volume_id, capacity_range: { required_bytes: 57 * MiB } });
      assert.equal(grown.capacity_bytes, 60 * MiB);
      assert.equal(await held(restored), 60 * MiB, 'an expansion');
    });

    if (backend.name !== 'local') it('deleted in either order, sources, snapshots, restores and clones leave nothing in the cluster (storage, trash, journal)', async () => {
      // csi-sanity's cleanup deletes what a case made in its own order; so does a user.
      const ceph = cephOf(drv);
      const left = async (ids: string[]): Promise<string[]> => {
        const uuids = ids.map((id) => id.slice(-36));
        const ours = (names: string[]) => names.filter((n) => uuids.some((u) => n.includes(u)));
        if (backend.name === 'rbd') {
          const { images, trash } = await ceph.images();
          return ours([...images, ...trash.map((t) => `trash:${t}`), ...(await ceph.objects('csi.'))]);
        }
        return ours([...(await ceph.subvolumes()), ...(await ceph.fsObjects('csi.'))]);
      };
      // Source first, then its snapshot.
      const a = await volume();
      const sa = await snapshot(a);
      await ctl().DeleteVolume({ volume_id: a });
      await ctl().DeleteSnapshot({ snapshot_id: sa.snapshot_id });
      assert.deepEqual(await left([a, sa.snapshot_id]), [], 'source, then snapshot');
      // The snapshot first while a restore of it lives, then the source, the restore and a clone.
      const b = await volume();
      const sb = await snapshot(b);
      const restored = (await ctl().CreateVolume({ name: uniqueName('r'), volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: sb.snapshot_id } } })).volume!;
      const cloned = (await ctl().CreateVolume({ name: uniqueName('c'), volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id: b } } })).volume!;
      const all = [b, sb.snapshot_id, restored.volume_id, cloned.volume_id];
      await ctl().DeleteSnapshot({ snapshot_id: sb.snapshot_id });
      await ctl().DeleteVolume({ volume_id: b });
      assert.equal((await backend.volume(drv, restored.volume_id))?.healthy, true, 'the restore outlives its snapshot and its source');
      await ctl().DeleteVolume({ volume_id: restored.volume_id });
      await ctl().DeleteVolume({ volume_id: cloned.volume_id });
      assert.deepEqual(await left(all), [], 'snapshot, source, restore, clone');
    });

    it('snapshots outlive their source volume, and still restore', async () => {
      for (const cap of [mountCap(), ...(backend.block ? [blockCap()] : [])]) {
        const src = await volume(cap);
        const snap = await snapshot(src);
        await ctl().DeleteVolume({ volume_id: src });
        assert.equal((await known({ snapshot_id: snap.snapshot_id })).length, 1);
        const restored = await ctl().CreateVolume({
          name: uniqueName('orphan'),
          volume_capabilities: [cap],
          volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } },
        });
        assert.equal(restored.volume?.content_source?.snapshot?.snapshot_id, snap.snapshot_id);
      }
    });

    it('a snapshot whose source is gone still refuses a restore of another type (INVALID_ARGUMENT)', async () => {
      const src = await volume(mountCap());
      const snap = await snapshot(src);
      await ctl().DeleteVolume({ volume_id: src });
      await expectCode(
        ctl().CreateVolume({ name: uniqueName('blk'), volume_capabilities: [blockCap()], volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } } }),
        status.INVALID_ARGUMENT,
        'btrfs snapshot restored as block after its source was deleted',
      );
    });

    it('a clone or restore outlives its source', async () => {
      const src = await volume();
      const snap = await snapshot(src);
      const restored = await ctl().CreateVolume({ name: uniqueName('r'), volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } } });
      const clone = await ctl().CreateVolume({ name: uniqueName('c'), volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id: src } } });
      await ctl().DeleteSnapshot({ snapshot_id: snap.snapshot_id });
      await ctl().DeleteVolume({ volume_id: src });
      for (const v of [restored.volume!, clone.volume!]) {
        const got = await backend.volume(drv, v.volume_id);
        assert.equal(got?.healthy, true, `${v.volume_id} still has its storage`);
      }
    });
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
