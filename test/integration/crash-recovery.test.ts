/**
 * Crash safety of the local backend, against the real driver process: kill -9 it at random points
 * while 20 creates, deletes or snapshots are in flight, restart it on the same pool, retry every
 * operation with the same names / IDs until it succeeds (as a CO does), then prove the pool is
 * exactly what the successful calls say:
 *   - one volume (snapshot) per name, and retries return the ID a call that got through returned;
 *   - every volume and snapshot has its storage (subvolume or image file), and nothing else is in
 *     the pool's volumes/ and snapshots/ dirs (no orphans), no *.tmp file anywhere;
 *   - the journal holds exactly those records, all 'ready';
 *   - deleted volumes and snapshots are gone everywhere;
 *   - recovered volumes (including clones and restores) stage and publish;
 *   - once everything is deleted no mount or loop device of the test remains but the pool's own.
 * A second suite proves a 'creating' record left by a kill is finished by a retry with the same
 * arguments and rolled back by one with different arguments.
 *
 * Kill delays come from a seeded generator (STOWAGE_CRASH_SEED overrides the seed), so a failure
 * can be replayed; the invariants hold whichever point the kill hits, so the test does not flake.
 */
import assert from 'node:assert/strict';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CsiClient } from '../../src/csi/client.js';
import { CsiError } from '../../src/csi/errors.js';
import type { CreateVolumeRequestInput } from '../../src/csi/types.js';
import type { SnapshotRecord, VolumeRecord } from '../../src/driver/backends/backend.js';
import { createSubvolume, qgroupUsage } from '../../src/driver/mount/btrfs.js';
import { RecordStore } from '../../src/driver/records.js';
import { MiB, mountCap, status } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { leftovers } from '../support/host-state.js';

const SEED = Number(process.env['STOWAGE_CRASH_SEED'] ?? 0x5eed);
const CONCURRENT = 20;
const DIR_BYTES = 64 * MiB;
const IMG_BYTES = 32 * MiB;

/** mulberry32: small, seedable, good enough to spread kill points. */
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

type Storage = 'subvolume' | 'image';
interface Known {
  id: string;
  storage: Storage;
}

/** What the successful calls say the pool holds. */
class Expected {
  readonly volumes = new Map<string, Known>();
  readonly snapshots = new Map<string, Known>();
}

/**
 * Calls fn until it succeeds, as a CO would: ABORTED (another call on the same object is still
 * running) and UNAVAILABLE are retried; any other error fails the test.
 */
async function retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retryable = e instanceof CsiError && (e.code === status.ABORTED || e.code === status.UNAVAILABLE);
      if (!retryable || attempt >= 100) throw new Error(`${what} failed on attempt ${attempt}: ${(e as Error).message}`, { cause: e });
      await sleep(20);
    }
  }
}

/**
 * One crash round: starts every op within 20 ms, SIGKILLs the driver after a random 0–50 ms, restarts
 * it, and returns what each op returned if it got through before the kill (else undefined).
 */
async function crashRound<T>(drv: TestDriver, next: () => number, ops: ((c: CsiClient) => Promise<T>)[]): Promise<(T | undefined)[]> {
  const client = drv.client;
  // Starts are spread over 0–20 ms so that the kill finds the calls at different steps.
  const pending = ops.map(async (op) => {
    await sleep(Math.floor(next() * 21));
    return op(client).then((v) => v, () => undefined);
  });
  const delay = Math.floor(next() * 51);
  await sleep(delay);
  await drv.kill9();
  const results = await Promise.all(pending);
  const dirs = poolDirs(drv);
  const onDisk = (await readdir(dirs.volumes)).length + (await readdir(dirs.snapshots)).length;
  const through = results.filter((r) => r !== undefined).length;
  // How far the round got: calls answered before the kill, and storage entries in the pool at the kill.
  process.stdout.write(`# kill after ${delay} ms: ${through}/${ops.length} calls answered; ${onDisk} storage entries in the pool\n`);
  await drv.restart();
  return results;
}

function poolDirs(drv: TestDriver) {
  const pool = join(drv.localDir, 'pool');
  return {
    pool,
    volumes: join(pool, 'volumes'),
    snapshots: join(pool, 'snapshots'),
    // The journals of an image-backed pool live beside pool.img, on the host's filesystem.
    volumeRecords: join(drv.localDir, 'meta', 'volumes'),
    snapshotRecords: join(drv.localDir, 'meta', 'snapshots'),
  };
}

const entryOf = (k: Known) => (k.storage === 'subvolume' ? k.id : `${k.id}.img`);
const sorted = (xs: Iterable<string>) => [...xs].sort();

/** The driver's view (List*) and the pool's directories both match `exp` exactly. */
async function checkPool(drv: TestDriver, exp: Expected): Promise<void> {
  const ctl = drv.client.controller;
  const listed = await ctl.ListVolumes({});
  assert.equal(listed.next_token, '');
  const volumeIds = listed.entries.map((e) => e.volume!.volume_id);
  assert.deepEqual(sorted(volumeIds), sorted([...exp.volumes.values()].map((k) => k.id)), 'ListVolumes: exactly one volume per name');
  const snaps = await ctl.ListSnapshots({});
  assert.deepEqual(
    sorted(snaps.entries.map((e) => e.snapshot!.snapshot_id)),
    sorted([...exp.snapshots.values()].map((k) => k.id)),
    'ListSnapshots: exactly one snapshot per name',
  );
  assert.ok(snaps.entries.every((e) => e.snapshot!.ready_to_use), 'every listed snapshot is ready');

  const dirs = poolDirs(drv);
  assert.deepEqual(sorted(await readdir(dirs.volumes)), sorted([...exp.volumes.values()].map(entryOf)), 'volumes/ holds exactly the volumes\' storage');
  assert.deepEqual(sorted(await readdir(dirs.snapshots)), sorted([...exp.snapshots.values()].map(entryOf)), 'snapshots/ holds exactly the snapshots\' storage');
  for (const k of exp.volumes.values()) {
    const st = await stat(join(dirs.volumes, entryOf(k)));
    if (k.storage === 'subvolume') assert.equal(st.ino, 256, `volume ${k.id} is a subvolume root`);
    else assert.ok(st.isFile(), `volume ${k.id} has its image file`);
  }
  for (const dir of [dirs.volumes, dirs.snapshots, dirs.volumeRecords, dirs.snapshotRecords]) {
    const tmp = (await readdir(dir)).filter((f) => f.includes('.tmp'));
    assert.deepEqual(tmp, [], `no temp files in ${dir}`);
  }
}

/** With the driver stopped: the journals hold exactly the expected records, all ready. */
async function checkRecords(drv: TestDriver, exp: Expected): Promise<void> {
  const dirs = poolDirs(drv);
  const volumes = await RecordStore.open<VolumeRecord>(dirs.volumeRecords);
  const snapshots = await RecordStore.open<SnapshotRecord>(dirs.snapshotRecords);
  try {
    const v = volumes.list();
    assert.deepEqual(
      v.filter((r) => r.state !== 'ready').map((r) => `${r.name} ${r.id} ${r.state}`),
      [],
      'no half-created volume record is left',
    );
    assert.deepEqual(sorted(v.map((r) => `${r.name}=${r.id}`)), sorted([...exp.volumes].map(([n, k]) => `${n}=${k.id}`)));
    const s = snapshots.list();
    assert.deepEqual(s.filter((r) => r.state !== 'ready').map((r) => `${r.name} ${r.id}`), [], 'no half-created snapshot record is left');
    assert.deepEqual(sorted(s.map((r) => `${r.name}=${r.id}`)), sorted([...exp.snapshots].map(([n, k]) => `${n}=${k.id}`)));
  } finally {
    await volumes.close();
    await snapshots.close();
  }
}

/** The only mount and loop device under the test dir are the pool's own. */
function assertOnlyPool(drv: TestDriver): void {
  const poolRoot = join(drv.localDir, 'pool');
  const poolImage = join(drv.localDir, 'pool.img');
  const left = leftovers(drv.dir).filter((l) => !l.startsWith(`mount ${poolRoot} `) && !l.endsWith(`-> ${poolImage}`));
  assert.deepEqual(left, [], 'no volume mount or loop device remains');
}

describe('crash safety: kill -9 during creates, deletes and snapshots', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const exp = new Expected();
  const next = rng(SEED);
  const dirCap = mountCap('');
  const extCap = mountCap('ext4');

  before(async () => {
    // Many rounds of creates stay in the journal: a pool that promises them all (the local pool
    // admits no more than it holds, pool-capacity.ts). Sparse: it costs nothing until written.
    drv = await startTestDriver({ prefix: 'stowage-crash-', logLevel: 'warn', poolSize: '16Gi' });
  });

  after(async () => {
    if (!drv) return;
    const dir = drv.dir;
    await drv.cleanup();
    assertNoLeftovers(dir);
  });

  /**
   * Crash rounds of CreateVolume: 20 distinct names at once, kill, restart, retry each name with
   * the same request. A name whose first call got through must get the same ID back.
   */
  async function createRounds(label: string, rounds: number, request: (name: string, i: number) => CreateVolumeRequestInput, storage: Storage) {
    for (let round = 0; round < rounds; round++) {
      const names = Array.from({ length: CONCURRENT }, (_, i) => `${label}-r${round}-${i}`);
      const first = await crashRound(
        drv,
        next,
        names.map((name, i) => (c: CsiClient) => c.controller.CreateVolume(request(name, i))),
      );
      await Promise.all(
        names.map(async (name, i) => {
          const res = await retry(`CreateVolume ${name}`, () => drv.client.controller.CreateVolume(request(name, i)));
          const id = res.volume!.volume_id;
          const before = first[i]?.volume?.volume_id;
          if (before !== undefined) assert.equal(id, before, `${name}: the retry returns the ID the first call returned`);
          exp.volumes.set(name, { id, storage });
        }),
      );
      await checkPool(drv, exp);
    }
  }

  it('CreateVolume of directory (subvolume) volumes', async () => {
    await createRounds('dir', 3, (name) => ({ name, capacity_range: { required_bytes: DIR_BYTES }, volume_capabilities: [dirCap] }), 'subvolume');
    // Each recovered volume carries its quota.
    for (const k of [...exp.volumes.values()].slice(0, 5)) {
      const q = await qgroupUsage(join(poolDirs(drv).volumes, k.id));
      assert.equal(q?.limitBytes, DIR_BYTES, `volume ${k.id} has its qgroup limit`);
    }
  });

  it('CreateVolume of ext4 image volumes', async () => {
    await createRounds('img', 2, (name) => ({ name, capacity_range: { required_bytes: IMG_BYTES }, volume_capabilities: [extCap] }), 'image');
    for (const [name, k] of exp.volumes) {
      if (k.storage === 'image') assert.equal((await stat(join(poolDirs(drv).volumes, `${k.id}.img`))).size, IMG_BYTES, `${name} image size`);
    }
  });

  it('CreateSnapshot of directory and image volumes', async () => {
    const dirSources = [...exp.volumes].filter(([, k]) => k.storage === 'subvolume');
    const imgSources = [...exp.volumes].filter(([, k]) => k.storage === 'image');
    for (let round = 0; round < 2; round++) {
      const jobs = Array.from({ length: CONCURRENT }, (_, i) => {
        const [, src] = (i % 2 === 0 ? dirSources : imgSources)[(round * CONCURRENT + i) % 20]!;
        return { name: `snap-r${round}-${i}`, source: src };
      });
      const first = await crashRound(
        drv,
        next,
        jobs.map((j) => (c: CsiClient) => c.controller.CreateSnapshot({ name: j.name, source_volume_id: j.source.id })),
      );
      await Promise.all(
        jobs.map(async (j, i) => {
          const res = await retry(`CreateSnapshot ${j.name}`, () => drv.client.controller.CreateSnapshot({ name: j.name, source_volume_id: j.source.id }));
          const snap = res.snapshot!;
          assert.equal(snap.source_volume_id, j.source.id);
          assert.ok(snap.ready_to_use);
          const before = first[i]?.snapshot?.snapshot_id;
          if (before !== undefined) assert.equal(snap.snapshot_id, before, `${j.name}: the retry returns the first call's ID`);
          exp.snapshots.set(j.name, { id: snap.snapshot_id, storage: j.source.storage });
        }),
      );
      await checkPool(drv, exp);
    }
  });

  it('CreateVolume from snapshots and clones of volumes', async () => {
    const snaps = [...exp.snapshots.values()];
    const vols = [...exp.volumes.values()];
    const dirSnaps = snaps.filter((s) => s.storage === 'subvolume');
    const imgSnaps = snaps.filter((s) => s.storage === 'image');
    const dirVols = vols.filter((v) => v.storage === 'subvolume');
    const imgVols = vols.filter((v) => v.storage === 'image');
    const plan = (name: string, i: number): { req: CreateVolumeRequestInput; storage: Storage } => {
      const kind = i % 4;
      const pick = <X>(xs: X[]) => xs[Math.floor(i / 4) % xs.length]!;
      if (kind === 0) return { storage: 'subvolume', req: { name, capacity_range: { required_bytes: DIR_BYTES }, volume_capabilities: [dirCap], volume_content_source: { snapshot: { snapshot_id: pick(dirSnaps).id } } } };
      if (kind === 1) return { storage: 'image', req: { name, capacity_range: { required_bytes: IMG_BYTES }, volume_capabilities: [extCap], volume_content_source: { snapshot: { snapshot_id: pick(imgSnaps).id } } } };
      if (kind === 2) return { storage: 'subvolume', req: { name, capacity_range: { required_bytes: DIR_BYTES }, volume_capabilities: [dirCap], volume_content_source: { volume: { volume_id: pick(dirVols).id } } } };
      return { storage: 'image', req: { name, capacity_range: { required_bytes: IMG_BYTES }, volume_capabilities: [extCap], volume_content_source: { volume: { volume_id: pick(imgVols).id } } } };
    };
    for (let round = 0; round < 2; round++) {
      const jobs = Array.from({ length: CONCURRENT }, (_, i) => ({ name: `clone-r${round}-${i}`, ...plan(`clone-r${round}-${i}`, round * CONCURRENT + i) }));
      const first = await crashRound(drv, next, jobs.map((j) => (c: CsiClient) => c.controller.CreateVolume(j.req)));
      await Promise.all(
        jobs.map(async (j, i) => {
          const res = await retry(`CreateVolume ${j.name}`, () => drv.client.controller.CreateVolume(j.req));
          const id = res.volume!.volume_id;
          const before = first[i]?.volume?.volume_id;
          if (before !== undefined) assert.equal(id, before, `${j.name}: the retry returns the first call's ID`);
          exp.volumes.set(j.name, { id, storage: j.storage });
        }),
      );
      await checkPool(drv, exp);
    }
  });

  it('recovered volumes, clones and restores stage, publish and hold data', async () => {
    const picks = [...exp.volumes].filter(([name]) => /^(dir-r0-[0-2]|img-r0-[0-2]|clone-r0-[0-3]|clone-r1-[0-3])$/.test(name));
    assert.equal(picks.length, 14);
    for (const [name, k] of picks) {
      const cap = k.storage === 'subvolume' ? dirCap : extCap;
      const staging = drv.stagingDir(name);
      const target = drv.targetDir(name);
      const node = drv.client.node;
      await node.NodeStageVolume({ volume_id: k.id, staging_target_path: staging, volume_capability: cap });
      await node.NodePublishVolume({ volume_id: k.id, staging_target_path: staging, target_path: target, volume_capability: cap });
      const fh = await open(join(target, 'probe.txt'), 'w');
      await fh.writeFile(name);
      await fh.sync();
      await fh.close();
      await node.NodeUnpublishVolume({ volume_id: k.id, target_path: target });
      await node.NodeUnstageVolume({ volume_id: k.id, staging_target_path: staging });
    }
    assertOnlyPool(drv);
  });

  it('DeleteSnapshot', async () => {
    const all = [...exp.snapshots];
    while (all.length > 0) {
      const batch = all.splice(0, CONCURRENT);
      await crashRound(drv, next, batch.map(([, k]) => (c: CsiClient) => c.controller.DeleteSnapshot({ snapshot_id: k.id })));
      for (const [name, k] of batch) {
        await retry(`DeleteSnapshot ${name}`, () => drv.client.controller.DeleteSnapshot({ snapshot_id: k.id }));
        exp.snapshots.delete(name);
        await assert.rejects(drv.client.controller.GetSnapshot({ snapshot_id: k.id }), (e: CsiError) => e.code === status.NOT_FOUND);
      }
      await checkPool(drv, exp);
    }
  });

  it('DeleteVolume', async () => {
    const all = [...exp.volumes];
    while (all.length > 0) {
      const batch = all.splice(0, CONCURRENT + 10);
      await crashRound(drv, next, batch.map(([, k]) => (c: CsiClient) => c.controller.DeleteVolume({ volume_id: k.id })));
      await Promise.all(
        batch.map(async ([name, k]) => {
          await retry(`DeleteVolume ${name}`, () => drv.client.controller.DeleteVolume({ volume_id: k.id }));
          exp.volumes.delete(name);
          await assert.rejects(drv.client.controller.ControllerGetVolume({ volume_id: k.id }), (e: CsiError) => e.code === status.NOT_FOUND);
          // Deleting again is fine (the CO may retry after a lost response).
          await drv.client.controller.DeleteVolume({ volume_id: k.id });
        }),
      );
      await checkPool(drv, exp);
    }
  });

  it('leaves an empty pool: no records, no storage, no mount or loop device but the pool', async () => {
    await checkPool(drv, exp);
    assert.equal(exp.volumes.size + exp.snapshots.size, 0);
    assertOnlyPool(drv);
    await drv.stop();
    await checkRecords(drv, exp);
  });
});

describe('crash safety: a half-created volume is finished or rolled back by the retry', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const dirCap = mountCap('');
  const extCap = mountCap('ext4');
  /** Records a kill left in state 'creating', with the storage it had got to. */
  const half: Record<string, VolumeRecord> = {};

  function creating(name: string, capacityBytes: number, fsType: string): VolumeRecord {
    return {
      id: crypto.randomUUID(),
      name,
      state: 'creating',
      capacityBytes,
      accessType: 'mount',
      fsType,
      accessModes: ['SINGLE_NODE_WRITER'],
      parameters: {},
      accessibleTopology: [{ 'topology.stowage.dev/node': drv.nodeId }],
      volumeContext: {},
      publishedNodes: [],
      createdAt: new Date().toISOString(),
    };
  }

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-half-', logLevel: 'warn' });
    // The driver is stopped, as after a kill, while the on-disk state of four interrupted creates is laid down.
    await drv.stop({ signal: 'SIGKILL' });
    const dirs = poolDirs(drv);
    const store = await RecordStore.open<VolumeRecord>(dirs.volumeRecords);
    try {
      half['dir-same'] = creating('dir-same', DIR_BYTES, ''); // killed after the subvolume was made, before its limit
      half['dir-other'] = creating('dir-other', DIR_BYTES, ''); // same, retried with another size
      half['img-same'] = creating('img-same', IMG_BYTES, 'ext4'); // killed with the image still a temp file
      half['img-other'] = creating('img-other', IMG_BYTES, 'ext4'); // killed after the rename, before the truncate
      half['none'] = creating('none', DIR_BYTES, ''); // killed right after the record was written
      for (const rec of Object.values(half)) await store.put(rec);
    } finally {
      await store.close();
    }
    await createSubvolume(dirs.volumes, half['dir-same']!.id);
    await createSubvolume(dirs.volumes, half['dir-other']!.id);
    await (await open(join(dirs.volumes, `${half['img-same']!.id}.img.tmp`), 'w')).close();
    await (await open(join(dirs.volumes, `${half['img-other']!.id}.img`), 'w')).close();
    await drv.restart();
  });

  after(async () => {
    if (!drv) return;
    const dir = drv.dir;
    await drv.cleanup();
    assertNoLeftovers(dir);
  });

  it('a half-created volume is invisible until finished', async () => {
    const listed = await drv.client.controller.ListVolumes({});
    assert.deepEqual(listed.entries, []);
    for (const rec of Object.values(half)) {
      await assert.rejects(drv.client.controller.ControllerGetVolume({ volume_id: rec.id }), (e: CsiError) => e.code === status.NOT_FOUND);
    }
  });

  it('a retry with the same arguments finishes it under the same ID', async () => {
    const dirs = poolDirs(drv);
    for (const [name, cap, bytes] of [['dir-same', dirCap, DIR_BYTES], ['img-same', extCap, IMG_BYTES], ['none', dirCap, DIR_BYTES]] as const) {
      const res = await drv.client.controller.CreateVolume({ name, capacity_range: { required_bytes: bytes }, volume_capabilities: [cap] });
      assert.equal(res.volume!.volume_id, half[name]!.id, `${name} keeps its ID`);
      assert.equal(Number(res.volume!.capacity_bytes), bytes);
    }
    assert.equal((await qgroupUsage(join(dirs.volumes, half['dir-same']!.id)))?.limitBytes, DIR_BYTES, 'the finished subvolume has its limit');
    assert.equal((await qgroupUsage(join(dirs.volumes, half['none']!.id)))?.limitBytes, DIR_BYTES);
    assert.equal((await stat(join(dirs.volumes, `${half['img-same']!.id}.img`))).size, IMG_BYTES, 'the finished image has its size');
  });

  it('a retry with different arguments rolls it back and creates the volume anew', async () => {
    const dirs = poolDirs(drv);
    const dirRes = await drv.client.controller.CreateVolume({ name: 'dir-other', capacity_range: { required_bytes: 2 * DIR_BYTES }, volume_capabilities: [dirCap] });
    const imgRes = await drv.client.controller.CreateVolume({ name: 'img-other', capacity_range: { required_bytes: 2 * IMG_BYTES }, volume_capabilities: [extCap] });
    const dirId = dirRes.volume!.volume_id;
    const imgId = imgRes.volume!.volume_id;
    assert.notEqual(dirId, half['dir-other']!.id, 'a new ID');
    assert.notEqual(imgId, half['img-other']!.id, 'a new ID');
    assert.equal(Number(dirRes.volume!.capacity_bytes), 2 * DIR_BYTES);
    assert.equal(Number(imgRes.volume!.capacity_bytes), 2 * IMG_BYTES);
    assert.equal((await qgroupUsage(join(dirs.volumes, dirId)))?.limitBytes, 2 * DIR_BYTES);
    assert.equal((await stat(join(dirs.volumes, `${imgId}.img`))).size, 2 * IMG_BYTES);

    const exp = new Expected();
    for (const name of ['dir-same', 'none']) exp.volumes.set(name, { id: half[name]!.id, storage: 'subvolume' });
    exp.volumes.set('img-same', { id: half['img-same']!.id, storage: 'image' });
    exp.volumes.set('dir-other', { id: dirId, storage: 'subvolume' });
    exp.volumes.set('img-other', { id: imgId, storage: 'image' });
    // The rolled-back storage is gone: checkPool compares volumes/ with exactly these.
    await checkPool(drv, exp);

    for (const [name, k] of exp.volumes) {
      const staging = drv.stagingDir(name);
      await drv.client.node.NodeStageVolume({ volume_id: k.id, staging_target_path: staging, volume_capability: k.storage === 'image' ? extCap : dirCap });
      await drv.client.node.NodeUnstageVolume({ volume_id: k.id, staging_target_path: staging });
      await drv.client.controller.DeleteVolume({ volume_id: k.id });
      exp.volumes.delete(name);
    }
    await checkPool(drv, exp);
    assertOnlyPool(drv);
    await drv.stop();
    await checkRecords(drv, exp);
  });
});
