/**
 * The local pool promises no more than it holds (issue 11, finding 4). Before, ten 100Mi volumes on
 * a 300Mi pool were all created, and the third one written hit ENOSPC after 19 MiB. Now, on the
 * real driver with a real 300Mi pool: the creates that fit succeed and the rest are
 * RESOURCE_EXHAUSTED; every admitted volume written full with dd stops at its own quota (EDQUOT),
 * never at the pool's end (ENOSPC); GetCapacity says what a create would get; concurrent creates do
 * not together overshoot; a snapshot's exclusive bytes, a clone's full size and expansions count;
 * --local-overcommit 2 admits double.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { ControllerCallers } from '../../src/csi/client.js';
import { CsiError } from '../../src/csi/errors.js';
import { expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const run = promisify(execFile);
const VOLUME = 100 * MiB;

async function available(client: ControllerCallers): Promise<{ available: number; maximum: number }> {
  const c = await client.GetCapacity({ volume_capabilities: [mountCap()] });
  return { available: Number(c.available_capacity), maximum: Number(c.maximum_volume_size?.value ?? 0) };
}

function create(client: ControllerCallers, name: string, bytes = VOLUME, source?: { volume_id?: string; snapshot_id?: string }) {
  return client.CreateVolume({
    name,
    volume_capabilities: [mountCap()],
    capacity_range: { required_bytes: bytes },
    ...(source?.volume_id ? { volume_content_source: { volume: { volume_id: source.volume_id } } } : {}),
    ...(source?.snapshot_id ? { volume_content_source: { snapshot: { snapshot_id: source.snapshot_id } } } : {}),
  });
}

/** Ten 100Mi creates one after the other: the IDs of those admitted, the errors of the rest. */
async function createTen(client: ControllerCallers, prefix: string): Promise<{ ids: string[]; names: string[]; refused: CsiError[] }> {
  const ids: string[] = [];
  const names: string[] = [];
  const refused: CsiError[] = [];
  for (let i = 0; i < 10; i++) {
    const name = uniqueName(`${prefix}${i}`);
    try {
      ids.push((await create(client, name)).volume!.volume_id);
      names.push(name);
    } catch (e) {
      if (!(e instanceof CsiError)) throw e;
      refused.push(e);
    }
  }
  return { ids, names, refused };
}

/** dd of `mib` MiB of random data into file, synced; the error text when it stopped early. */
async function dd(file: string, mib: number): Promise<string> {
  try {
    await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync'], { timeout: 120_000 });
    return '';
  } catch (e) {
    return (e as { stderr?: string }).stderr ?? String(e);
  }
}

describe('capacity: the local pool is not overcommitted', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;
  const poolRoot = () => join(drv.localDir, 'pool');

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-capacity-', poolSize: '300Mi' });
  });
  after(async () => {
    await drv?.cleanup();
  });

  let full = 0;
  async function deleteAll(ids: string[]) {
    for (const id of ids) await ctl().DeleteVolume({ volume_id: id });
  }
  /**
   * Waits until the pool offers all of itself again: a deleted subvolume's data counts until
   * btrfs' cleaner has freed it (a commit, then the cleaner; `btrfs filesystem sync` hurries it).
   */
  async function settled(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      await run('btrfs', ['filesystem', 'sync', poolRoot()]);
      if ((await available(ctl())).available === full) return;
      if (Date.now() > deadline) assert.fail(`the pool still offers ${(await available(ctl())).available} of ${full} bytes a minute after the deletes`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('ten 100Mi on a 300Mi pool: the ones that fit are created, the rest RESOURCE_EXHAUSTED; each written full stops at its quota, never ENOSPC', async () => {
    const before = await available(ctl());
    full = before.available;
    // 216 MiB: 219 MiB of data capacity (measured for mkfs.btrfs defaults) less 1% headroom.
    assert.ok(before.available >= 2 * VOLUME && before.available < 3 * VOLUME, `a 300Mi pool offers ${before.available / MiB} MiB`);
    assert.equal(before.maximum, before.available, 'the largest volume is what is left');
    const fit = Math.floor(before.available / VOLUME);

    const { ids, names, refused } = await createTen(ctl(), 'cap');
    assert.equal(ids.length, fit, `${fit} volumes fit`);
    assert.equal(refused.length, 10 - fit);
    for (const e of refused) {
      assert.equal(e.code, status.RESOURCE_EXHAUSTED, e.message);
      assert.match(e.message, /not enough pool capacity: 104857600 bytes requested/);
    }
    // GetCapacity agrees with the refusals: what is left is less than one more volume.
    const afterCreates = await available(ctl());
    assert.equal(afterCreates.available, before.available - fit * VOLUME);
    assert.ok(afterCreates.available < VOLUME);
    // ...and a create of exactly what is left is admitted (then removed again).
    const exact = await create(ctl(), uniqueName('exact'), afterCreates.available);
    assert.equal((await available(ctl())).available, 0);
    await expectCode(create(ctl(), uniqueName('onemore'), 1 * MiB), status.RESOURCE_EXHAUSTED, 'a create on a full pool');
    // An idempotent retry of an admitted name is not refused, though the pool is full.
    assert.equal((await create(ctl(), names[0]!)).volume!.volume_id, ids[0]);
    await ctl().DeleteVolume({ volume_id: exact.volume!.volume_id });

    // Write every admitted volume full, at once, with dd: each stops at its own quota.
    const cap = mountCap();
    const published: { id: string; staging: string; target: string }[] = [];
    try {
      for (const id of ids) {
        const staging = drv.stagingDir(uniqueName('stg'));
        const target = drv.targetDir(uniqueName('tgt'));
        await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
        await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
        published.push({ id, staging, target });
      }
      const errors = await Promise.all(published.map((p) => dd(join(p.target, 'fill'), 120)));
      for (const err of errors) {
        assert.doesNotMatch(err, /No space left on device/, 'the pool never runs out under admitted volumes');
        assert.match(err, /Disk quota exceeded/, 'a volume written past its size stops at its quota');
      }
      const stats = await Promise.all(published.map((p) => node().NodeGetVolumeStats({ volume_id: p.id, volume_path: p.target })));
      for (const s of stats) {
        const used = Number(s.usage?.find((u) => u.unit === 'BYTES')?.used ?? 0);
        assert.ok(used > 90 * MiB, `each volume took (nearly) its full size: ${used / MiB} MiB`);
      }
    } finally {
      for (const p of published) {
        await node().NodeUnpublishVolume({ volume_id: p.id, target_path: p.target });
        await node().NodeUnstageVolume({ volume_id: p.id, staging_target_path: p.staging });
      }
      await deleteAll(ids);
    }
    // Not at once: until the cleaner has freed the deleted subvolumes, their bytes still count
    // (a volume admitted into them and written at once hit ENOSPC at 19 MiB).
    const right = (await available(ctl())).available;
    assert.ok(right < before.available, `just after the deletes the written bytes still count (${right / MiB} MiB offered)`);
    await settled();
  });

  it('ten concurrent 100Mi creates admit no more than fit', async () => {
    await settled();
    const { available: free } = await available(ctl());
    const fit = Math.floor(free / VOLUME);
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => create(ctl(), uniqueName(`conc${i}`))));
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.volume!.volume_id] : []));
    const codes = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as CsiError).code] : []));
    try {
      assert.equal(ok.length, fit, `exactly ${fit} admitted`);
      // ABORTED cannot happen here (every name differs); only the pool refuses.
      assert.deepEqual([...new Set(codes)], [status.RESOURCE_EXHAUSTED]);
    } finally {
      await deleteAll(ok);
    }
  });

  it('a clone counts its full size; an expansion past the limit is OUT_OF_RANGE, one within it grows', async () => {
    await settled();
    const a = (await create(ctl(), uniqueName('src'))).volume!.volume_id;
    const ids = [a];
    try {
      const clone = (await create(ctl(), uniqueName('clone'), VOLUME, { volume_id: a })).volume!.volume_id;
      ids.push(clone);
      const left = (await available(ctl())).available;
      assert.ok(left < VOLUME, 'source and clone together took two volumes\' worth');
      await expectCode(create(ctl(), uniqueName('clone2'), VOLUME, { volume_id: a }), status.RESOURCE_EXHAUSTED, 'a third 100Mi clone');
      const err = await expectCode(
        ctl().ControllerExpandVolume({ volume_id: a, capacity_range: { required_bytes: VOLUME + left + MiB } }),
        status.OUT_OF_RANGE,
        'an expansion past the pool',
      );
      assert.match(err.message, /not enough pool capacity/);
      const grown = await ctl().ControllerExpandVolume({ volume_id: a, capacity_range: { required_bytes: VOLUME + left } });
      assert.equal(Number(grown.capacity_bytes), VOLUME + left);
      assert.equal((await available(ctl())).available, 0);
    } finally {
      await deleteAll(ids);
    }
  });

  it('a snapshot counts by its exclusive bytes', async () => {
    await settled();
    const cap = mountCap();
    const id = (await create(ctl(), uniqueName('snapsrc'))).volume!.volume_id;
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    let snapshotId: string | undefined;
    try {
      await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
      await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
      assert.equal(await dd(join(target, 'data'), 60), '');
      snapshotId = (await ctl().CreateSnapshot({ name: uniqueName('snap'), source_volume_id: id })).snapshot!.snapshot_id;
      await run('btrfs', ['filesystem', 'sync', poolRoot()]);
      const shared = (await available(ctl())).available;
      // Fresh, the snapshot shares every extent with its source: it costs (almost) nothing.
      assert.ok(shared > (216 - 100 - 2) * MiB, `a fresh snapshot is nearly free: ${shared / MiB} MiB left`);
      // The source drops its copy: the 60 MiB now belong to the snapshot alone.
      await unlink(join(target, 'data'));
      await run('btrfs', ['filesystem', 'sync', poolRoot()]);
      const excl = (await available(ctl())).available;
      assert.ok(shared - excl >= 59 * MiB && shared - excl <= 62 * MiB, `the snapshot's exclusive ~60 MiB counts: ${(shared - excl) / MiB} MiB`);
      await expectCode(create(ctl(), uniqueName('after-snap'), excl + MiB), status.RESOURCE_EXHAUSTED, 'a create past what the snapshot left');
    } finally {
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      if (snapshotId) await ctl().DeleteSnapshot({ snapshot_id: snapshotId });
      await ctl().DeleteVolume({ volume_id: id });
    }
  });
});

describe('capacity: --local-overcommit 2 admits double', { skip: needsRoot }, () => {
  let drv: TestDriver;
  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-overcommit-', poolSize: '300Mi', args: ['--local-overcommit', '2'] });
  });
  after(async () => {
    await drv?.cleanup();
  });

  it('ten 100Mi on a 300Mi pool with overcommit 2: twice as many fit, and GetCapacity says so', async () => {
    const { available: free } = await available(drv.client.controller);
    assert.ok(free >= 4 * VOLUME && free < 5 * VOLUME, `overcommit 2 offers ${free / MiB} MiB`);
    const { ids, refused } = await createTen(drv.client.controller, 'oc');
    try {
      assert.equal(ids.length, 4);
      assert.ok(refused.every((e) => e.code === status.RESOURCE_EXHAUSTED));
      assert.match(refused[0]!.message, /× overcommit 2/);
    } finally {
      for (const id of ids) await drv.client.controller.DeleteVolume({ volume_id: id });
    }
  });

  it('a bad --local-overcommit is refused at start', async () => {
    const bad = await startTestDriver({ prefix: 'stowage-overcommit-bad-', poolSize: '300Mi', args: ['--local-overcommit', '0.5'], readyTimeoutMs: 10_000 }).then(
      async (d) => {
        await d.cleanup();
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(bad, 'the driver must not start');
    assert.match(bad.message, /--local-overcommit must be a number ≥ 1/);
  });
});
