/**
 * Crash safety of the rbd backend against a real cluster. The controller: kill -9 the driver while
 * creates (plain, restores, clones), snapshots and deletes are in flight, restart it, retry every
 * call with the same names / IDs as a CO does, then check the cluster itself: `rbd ls` holds
 * exactly one image per volume and snapshot the calls say exist (nothing in the trash), and the
 * omap journal exactly their names and UUID objects. The node: a restarted node plugin finds its
 * staged volumes; one whose rbd-fuse died with it (ENOTCONN) is repaired, publications included.
 *
 * Kill delays come from a seeded generator (STOWAGE_CRASH_SEED overrides the seed), so a failure
 * can be replayed; the invariants hold whichever point the kill hits.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CsiClient } from '../../src/csi/client.js';
import { CsiError } from '../../src/csi/errors.js';
import type { CreateVolumeRequestInput } from '../../src/csi/types.js';
import { blockCap, MiB, mountCap, pattern, readAt, sha256, status, uniqueName, writeAt, writeSynced } from '../support/csi-helpers.js';
import { trashList, trashMove, TrashState, trashStateSet } from '../../src/driver/backends/rbd/librbd.js';
import { Rados } from '../../src/driver/backends/ceph/rados.js';
import { useCephCluster } from '../support/ceph.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { hostMounts, mountAt } from '../support/host-state.js';

const ceph = useCephCluster();
const SEED = Number(process.env['STOWAGE_CRASH_SEED'] ?? 0x5eed);
const CONCURRENT = 6;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Calls fn until it succeeds, retrying what a CO retries: ABORTED, UNAVAILABLE, and the "still
 * being used" of an image a killed driver had open (its watch lingers for osd_client_watch_timeout).
 */
async function retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retryable =
        e instanceof CsiError &&
        (e.code === status.ABORTED || e.code === status.UNAVAILABLE || (e.code === status.FAILED_PRECONDITION && /still being used/.test(e.message)));
      if (!retryable || Date.now() - started > 60_000) throw new Error(`${what} failed on attempt ${attempt}: ${(e as Error).message}`, { cause: e });
      await sleep(200);
    }
  }
}

const uuidOf = (id: string) => id.slice(-36);

describe('rbd crash safety: kill -9 mid-create and mid-delete; node plugin restarts', { skip: needsRoot, timeout: 240_000 }, () => {
  let drv: TestDriver;
  const next = rng(SEED);
  /** name → ID of what exists according to the calls that succeeded. */
  const volumes = new Map<string, string>();
  const snapshots = new Map<string, string>();

  /** Starts every op within 20 ms, SIGKILLs the driver after 0–300 ms, restarts it. */
  async function crashRound<T>(ops: ((c: CsiClient) => Promise<T>)[]): Promise<void> {
    const client = drv.client;
    const pending = ops.map(async (op) => {
      await sleep(Math.floor(next() * 21));
      return op(client).then(
        () => true,
        () => false,
      );
    });
    const delay = Math.floor(next() * 301);
    await sleep(delay);
    await drv.kill9();
    const through = (await Promise.all(pending)).filter(Boolean).length;
    process.stdout.write(`# kill after ${delay} ms: ${through}/${ops.length} calls answered\n`);
    await drv.restart();
  }

  /** The cluster holds exactly what `volumes` and `snapshots` say, in images and in the journal. */
  async function checkCluster(): Promise<void> {
    const { images, trash } = await ceph.images();
    const wantImages = [...[...volumes.values()].map((id) => `csi-vol-${uuidOf(id)}`), ...[...snapshots.values()].map((id) => `csi-snap-${uuidOf(id)}`)];
    assert.deepEqual(images.filter((i) => i.startsWith('csi-') && !wantImages.includes(i)), [], 'no image beyond the calls’ volumes and snapshots');
    // A deleted image whose clones still live rests in the trash until they go (checked empty at the end).
    for (const t of trash) assert.ok(!wantImages.includes(t), `${t} is in the trash but should exist`);
    for (const want of wantImages) assert.ok(images.includes(want), `image ${want} exists`);
    assert.deepEqual(await ceph.omapKeys('csi.volumes.default'), [...volumes.keys()].map((n) => `csi.volume.${n}`).sort(), 'volume names in the journal');
    assert.deepEqual(await ceph.omapKeys('csi.snaps.default'), [...snapshots.keys()].map((n) => `csi.snap.${n}`).sort(), 'snapshot names in the journal');
    assert.deepEqual(await ceph.objects('csi.volume.'), [...volumes.values()].map((id) => `csi.volume.${uuidOf(id)}`).sort(), 'volume objects in the journal');
    assert.deepEqual(await ceph.objects('csi.snap.'), [...snapshots.values()].map((id) => `csi.snap.${uuidOf(id)}`).sort(), 'snapshot objects in the journal');
    for (const [name, id] of volumes) {
      assert.equal(await ceph.omapValue('csi.volumes.default', `csi.volume.${name}`), uuidOf(id));
      const rec = JSON.parse(await ceph.omapValue(`csi.volume.${uuidOf(id)}`, 'stowage.record')) as { state: string };
      assert.equal(rec.state, 'ready', `volume ${name} is ready`);
    }
  }

  before(async () => {
    // A killed client's watches (an image the driver or an rbd-fuse had open) outlive it by this long
    // (30 s by default): until then deletes say "still being used" and notifications to the image's
    // watchers wait for it. Clients read the value from the mons when they connect.
    await ceph.ceph(['config', 'set', 'global', 'osd_client_watch_timeout', '5']);
    drv = await startTestDriver({ backend: 'rbd', ceph, prefix: 'stowage-rbdk-', logLevel: 'warn' });
  });

  after(async () => {
    if (!drv) return;
    const dir = drv.dir;
    await drv.cleanup();
    assertNoLeftovers(dir);
  });

  it('kill -9 during creates: retries give one volume per name, and exactly their images and journal entries', async () => {
    for (let round = 0; round < 2; round++) {
      const reqs = Array.from({ length: CONCURRENT }, (_, i): CreateVolumeRequestInput => ({
        name: `crash-${round}-${i}-${uniqueName('v')}`,
        volume_capabilities: [i % 2 ? blockCap() : mountCap('ext4')],
        capacity_range: { required_bytes: 16 * MiB },
      }));
      await crashRound(reqs.map((r) => (c) => c.controller.CreateVolume(r)));
      for (const r of reqs) {
        const res = await retry(`create ${r.name}`, () => drv.client.controller.CreateVolume(r));
        const again = await drv.client.controller.CreateVolume(r);
        assert.equal(again.volume!.volume_id, res.volume!.volume_id, 'idempotent after the crash');
        volumes.set(r.name!, res.volume!.volume_id);
      }
      await checkCluster();
    }
  });

  it('kill -9 during snapshots, restores and clones: the same', async () => {
    const sources = [...volumes.entries()].slice(0, CONCURRENT);
    for (let round = 0; round < 1; round++) {
      const snaps = sources.map(([n, id]) => ({ name: `snap-${round}-${n}`.slice(0, 120), source_volume_id: id }));
      await crashRound(snaps.map((s) => (c) => c.controller.CreateSnapshot(s)));
      for (const s of snaps) {
        const res = await retry(`snapshot ${s.name}`, () => drv.client.controller.CreateSnapshot(s));
        assert.equal(res.snapshot!.ready_to_use, true);
        snapshots.set(s.name, res.snapshot!.snapshot_id);
      }
      await checkCluster();
      const copies = sources.map(([n, id], i): CreateVolumeRequestInput => ({
        name: `copy-${round}-${n}`.slice(0, 120),
        volume_capabilities: [i % 2 ? blockCap() : mountCap('ext4')],
        capacity_range: { required_bytes: 16 * MiB },
        volume_content_source: i % 3 === 0 ? { volume: { volume_id: id } } : { snapshot: { snapshot_id: snapshots.get(snaps[i]!.name)! } },
      }));
      await crashRound(copies.map((r) => (c) => c.controller.CreateVolume(r)));
      for (const r of copies) {
        const res = await retry(`copy ${r.name}`, () => drv.client.controller.CreateVolume(r));
        volumes.set(r.name!, res.volume!.volume_id);
      }
      await checkCluster();
      // Every copy is a whole clone: none was left parent-less by a kill in rbd_clone3.
      for (const r of copies) {
        const image = `csi-vol-${uuidOf(volumes.get(r.name!)!)}`;
        const info = JSON.parse(await ceph.rbd(['info', '--format', 'json', `${ceph.info.pool}/${image}`])) as { parent?: unknown };
        assert.ok(info.parent, `${image} is a clone`);
      }
    }
  });

  it('kill -9 during deletes: retried deletes leave nothing, not even in the trash', async () => {
    const all: [string, () => Promise<unknown>][] = [
      ...[...snapshots].map(([n, id]): [string, () => Promise<unknown>] => [n, () => drv.client.controller.DeleteSnapshot({ snapshot_id: id })]),
      ...[...volumes].map(([n, id]): [string, () => Promise<unknown>] => [n, () => drv.client.controller.DeleteVolume({ volume_id: id })]),
    ];
    // Deleted in three crash rounds; sources and clones mixed in any order.
    const size = Math.ceil(all.length / 3);
    for (let i = 0; i < all.length; i += size) {
      const batch = all.slice(i, i + size);
      await crashRound(batch.map(([, op]) => () => op()));
      for (const [name, op] of batch) {
        await retry(`delete ${name}`, op);
        volumes.delete(name);
        snapshots.delete(name);
      }
      await checkCluster();
    }
    const { images, trash } = await ceph.images();
    assert.deepEqual(images.filter((i) => i.startsWith('csi-')), []);
    assert.deepEqual(trash, []);
  });

  it('a trash move cut short (entry left MOVING, rbd_trash_remove says EUCLEAN) is finished by the next delete', async () => {
    const vol = (await drv.client.controller.CreateVolume({ name: uniqueName('stuck'), volume_capabilities: [blockCap()], capacity_range: { required_bytes: 8 * MiB } })).volume!;
    const image = `csi-vol-${uuidOf(vol.volume_id)}`;
    const { monitors, userID, userKey, pool } = ceph.info;
    const rados = await Rados.connect({ monitors, user: userID, key: userKey, timeoutSeconds: 30 });
    try {
      const io = await rados.ioctx((await rados.poolId(pool))!, pool);
      // What a driver killed inside rbd_trash_move leaves: out of the directory, the trash entry MOVING.
      await trashMove(io, image);
      const entry = (await trashList(io)).find((t) => t.name === image)!;
      await trashStateSet(io, entry.id, TrashState.MOVING, TrashState.NORMAL);
      await assert.rejects(trashStateSet(io, entry.id, TrashState.RESTORING, TrashState.NORMAL), 'the entry is MOVING, not NORMAL');
    } finally {
      await rados.shutdown();
    }
    await drv.client.controller.DeleteVolume({ volume_id: vol.volume_id });
    const { images, trash } = await ceph.images();
    assert.deepEqual([...images.filter((i) => i.startsWith('csi-')), ...trash], []);
  });

  it('a node plugin restart keeps staged volumes; one whose rbd-fuse died is repaired, publications too', async () => {
    const node = () => drv.client.node;
    const ext4 = mountCap('ext4');
    const fsVol = (await drv.client.controller.CreateVolume({ name: uniqueName('rep'), volume_capabilities: [ext4], capacity_range: { required_bytes: 32 * MiB } })).volume!;
    const blkVol = (await drv.client.controller.CreateVolume({ name: uniqueName('repb'), volume_capabilities: [blockCap()], capacity_range: { required_bytes: 8 * MiB } })).volume!;
    const fsStage = drv.stagingDir(uniqueName('s'));
    const fsTarget = drv.targetDir(uniqueName('t'));
    const blkStage = drv.stagingDir(uniqueName('sb'));
    const blkTarget = drv.targetDir(uniqueName('tb'));
    await node().NodeStageVolume({ volume_id: fsVol.volume_id, staging_target_path: fsStage, volume_capability: ext4 });
    await node().NodePublishVolume({ volume_id: fsVol.volume_id, staging_target_path: fsStage, target_path: fsTarget, volume_capability: ext4 });
    await node().NodeStageVolume({ volume_id: blkVol.volume_id, staging_target_path: blkStage, volume_capability: blockCap() });
    await node().NodePublishVolume({ volume_id: blkVol.volume_id, staging_target_path: blkStage, target_path: blkTarget, volume_capability: blockCap() });
    const x = pattern(MiB);
    const y = pattern(MiB);
    await writeSynced(join(fsTarget, 'x.bin'), x);
    await writeAt(blkTarget, y, MiB);

    // 1. The driver alone dies: rbd-fuse (its own process) keeps serving; nothing needs repair.
    await drv.kill9();
    assert.equal(sha256(await readAt(join(fsTarget, 'x.bin'), 2 * MiB, 0)), sha256(x), 'readable while the driver is down');
    await drv.restart();
    const stats = await node().NodeGetVolumeStats({ volume_id: fsVol.volume_id, volume_path: fsTarget });
    assert.equal(stats.volume_condition?.abnormal, false, stats.volume_condition?.message);

    // 2. The driver and its rbd-fuse processes die (a node plugin container restarting).
    await drv.kill9();
    const fuse = await rbdFusePids(drv.stateDir!);
    assert.equal(fuse.length, 2, 'one rbd-fuse per staged image');
    for (const pid of fuse) process.kill(pid, 'SIGKILL');
    await sleep(200);
    const fuseMounts = hostMounts().filter((m) => m.fsType.startsWith('fuse') && m.mountPoint.startsWith(drv.dir));
    assert.equal(fuseMounts.length, 2);
    for (const m of fuseMounts) {
      await assert.rejects(stat(m.mountPoint), (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN', `${m.mountPoint} is broken while nobody repairs it`);
    }
    await drv.restart();
    assert.equal(sha256(await readAt(join(fsTarget, 'x.bin'), 2 * MiB, 0)), sha256(x), 'the publication reads again after the repair');
    assert.equal(sha256(await readAt(blkTarget, MiB, MiB)), sha256(y), 'the block publication too');
    assert.equal(mountAt(fsStage)?.fsType, 'ext4');
    const after = await node().NodeGetVolumeStats({ volume_id: fsVol.volume_id, volume_path: fsTarget });
    assert.equal(after.volume_condition?.abnormal, false, after.volume_condition?.message);
    assert.equal((await rbdFusePids(drv.stateDir!)).length, 2, 'new rbd-fuse processes');

    // And everything still comes apart cleanly.
    await node().NodeUnpublishVolume({ volume_id: fsVol.volume_id, target_path: fsTarget });
    await node().NodeUnstageVolume({ volume_id: fsVol.volume_id, staging_target_path: fsStage });
    await node().NodeUnpublishVolume({ volume_id: blkVol.volume_id, target_path: blkTarget });
    await node().NodeUnstageVolume({ volume_id: blkVol.volume_id, staging_target_path: blkStage });
    assert.deepEqual(hostMounts().filter((m) => m.mountPoint.startsWith(drv.dir)), [], 'no mount left');
    // The killed rbd-fuse processes' watches expire after osd_client_watch_timeout; deletes retry until then.
    for (const v of [fsVol, blkVol]) await retry(`delete ${v.volume_id}`, () => drv.client.controller.DeleteVolume({ volume_id: v.volume_id }));
    const { images, trash } = await ceph.images();
    assert.deepEqual([...images.filter((i) => i.startsWith('csi-')), ...trash], []);
  });
});

/** rbd-fuse processes serving mounts under dir. */
async function rbdFusePids(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const st = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    if ((argv[0] ?? '').endsWith('rbd-fuse') && argv.some((a) => a.startsWith(dir)) && !/\) Z /.test(st)) out.push(Number(e));
  }
  return out;
}
