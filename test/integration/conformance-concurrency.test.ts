/**
 * Concurrent calls, as a CO with retries and parallel workers makes them: the same name twice at
 * once never makes two volumes, a call on a busy volume gets ABORTED (spec: "operation pending"),
 * and calls on different volumes do not get in each other's way.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CsiError } from '../../src/csi/errors.js';
import { blockCap, GiB, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';
import { mountCount } from '../support/host-state.js';

/** The status code of a settled call: 'OK' or the error's name. */
function outcome(r: PromiseSettledResult<unknown>): string {
  if (r.status === 'fulfilled') return 'OK';
  return r.reason instanceof CsiError ? status[r.reason.code] : `untyped: ${String(r.reason)}`;
}

const backends = testBackends();

for (const backend of backends) describe(`conformance: concurrent calls [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;

  async function volumeCount(): Promise<number> {
    return (await backend.volumeIds(drv)).length;
  }

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-conc-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('the same CreateVolume twice at once: one volume, the other call ABORTED or the same volume', async () => {
    const named = mountCap(backend.namedFs);
    for (const cap of [mountCap(), named, ...(backend.block ? [blockCap()] : []), mountCap(), named]) {
      const before = await volumeCount();
      const req = { name: uniqueName('race'), volume_capabilities: [cap], capacity_range: { required_bytes: 64 * MiB } };
      const results = await Promise.allSettled([ctl().CreateVolume(req), ctl().CreateVolume(req), ctl().CreateVolume(req)]);
      const codes = results.map(outcome);
      assert.ok(codes.every((c) => c === 'OK' || c === 'ABORTED'), `only OK or ABORTED: ${codes.join(',')}`);
      const ids = new Set(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.volume!.volume_id] : [])));
      assert.ok(ids.size >= 1, `at least one call succeeds: ${codes.join(',')}`);
      assert.equal(ids.size, 1, 'every success names the same volume');
      assert.equal(await volumeCount(), before + 1, 'exactly one volume was created');
      // The CO's retry after ABORTED gets that same volume.
      const retry = await ctl().CreateVolume(req);
      assert.equal(retry.volume!.volume_id, [...ids][0]);
    }
  });

  it('the same CreateSnapshot twice at once: one snapshot', async () => {
    const vol = await ctl().CreateVolume({ name: uniqueName('snapsrc'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 32 * MiB } });
    const req = { name: uniqueName('snaprace'), source_volume_id: vol.volume!.volume_id };
    const results = await Promise.allSettled([ctl().CreateSnapshot(req), ctl().CreateSnapshot(req)]);
    const codes = results.map(outcome);
    assert.ok(codes.every((c) => c === 'OK' || c === 'ABORTED') && codes.includes('OK'), codes.join(','));
    assert.equal((await backend.snapshots(drv, { source_volume_id: vol.volume!.volume_id })).length, 1);
  });

  it('restores from one snapshot run side by side (none ABORTED), each its own volume', async () => {
    const src = await ctl().CreateVolume({ name: uniqueName('rsrc'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 32 * MiB } });
    const snap = await ctl().CreateSnapshot({ name: uniqueName('rsnap'), source_volume_id: src.volume!.volume_id });
    const snapshotId = snap.snapshot!.snapshot_id;
    const restores = await Promise.allSettled(
      [1, 2, 3].map(() =>
        ctl().CreateVolume({
          name: uniqueName('restore'),
          volume_capabilities: [mountCap()],
          capacity_range: { required_bytes: 32 * MiB },
          volume_content_source: { snapshot: { snapshot_id: snapshotId } },
        }),
      ),
    );
    assert.deepEqual(restores.map(outcome), ['OK', 'OK', 'OK']);
    const ids = restores.flatMap((r) => (r.status === 'fulfilled' ? [r.value.volume!.volume_id] : []));
    assert.equal(new Set(ids).size, 3);
    for (const id of ids) await ctl().DeleteVolume({ volume_id: id });
    await ctl().DeleteSnapshot({ snapshot_id: snapshotId });
    await ctl().DeleteVolume({ volume_id: src.volume!.volume_id });
  });

  it('a call on a volume while another is in flight on it → ABORTED, and the call holding it completes', async () => {
    const cap = mountCap(backend.namedFs);
    const vol = await ctl().CreateVolume({ name: uniqueName('busy'), volume_capabilities: [cap], capacity_range: { required_bytes: 2 * GiB } });
    const id = vol.volume!.volume_id;
    const staging = drv.stagingDir(uniqueName('stg'));
    const stageReq = { volume_id: id, staging_target_path: staging, volume_capability: cap };
    // A stage attaches, finds the image blank and runs mkfs.ext4 on 2 GiB: long enough to collide
    // with. Whichever call the driver takes first holds the volume; any overlapping one must be
    // ABORTED at once (never queued, never a second mkfs). Outcomes are captured as they settle.
    const settle = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'OK',
        (e: unknown) => (e instanceof CsiError ? status[e.code] : `untyped: ${String(e)}`),
      );
    let done = false;
    const stages = [settle(node().NodeStageVolume(stageReq)), settle(node().NodeStageVolume(stageReq))];
    void Promise.all(stages).then(() => (done = true));
    const probes: Promise<string>[] = [];
    const probeTarget = drv.targetDir(uniqueName('probe'));
    // gRPC does not order calls on separate streams: a probe sent in the same tick as the stages
    // can reach the driver first and hold the volume while both stages are refused. Probes start
    // once the stages have had time to arrive (the stage itself runs for far longer).
    await new Promise((r) => setTimeout(r, 30));
    while (!done && probes.length < 500) {
      probes.push(settle(node().NodeUnpublishVolume({ volume_id: id, target_path: probeTarget })));
      await new Promise((r) => setTimeout(r, 2));
    }
    const stageCodes = await Promise.all(stages);
    const codes = [...stageCodes, ...(await Promise.all(probes))];
    assert.ok(stageCodes.includes('OK'), `one of the two stages succeeds: ${stageCodes.join(',')}`);
    assert.ok(codes.includes('ABORTED'), `some call overlapping the stage must be ABORTED: ${[...new Set(codes)].join(',')}`);
    const unexpected = codes.filter((c) => c !== 'OK' && c !== 'ABORTED');
    assert.deepEqual(unexpected, [], 'overlapping calls answer ABORTED (or their normal answer)');
    // The volume survived: still there, staged once, and the CO's retry is idempotent.
    assert.ok(await backend.volume(drv, id), 'the volume is still there');
    await node().NodeStageVolume(stageReq);
    assert.equal(mountCount(staging), 1);
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    await ctl().DeleteVolume({ volume_id: id });
  });

  it('calls on different volumes run side by side without ABORTED', async () => {
    const named = mountCap(backend.namedFs);
    const caps = backend.block ? [mountCap(), named, blockCap(), named, mountCap(), blockCap()] : [mountCap(), named, mountCap(), named, mountCap(), named];
    const created = await Promise.all(
      caps.map((cap) => ctl().CreateVolume({ name: uniqueName('par'), volume_capabilities: [cap], capacity_range: { required_bytes: 64 * MiB } })),
    );
    const ids = created.map((c) => c.volume!.volume_id);
    assert.equal(new Set(ids).size, caps.length);
    const stagings = caps.map(() => drv.stagingDir(uniqueName('pstg')));
    await Promise.all(ids.map((id, i) => node().NodeStageVolume({ volume_id: id, staging_target_path: stagings[i]!, volume_capability: caps[i]! })));
    await Promise.all(ids.map((id, i) => node().NodeUnstageVolume({ volume_id: id, staging_target_path: stagings[i]! })));
    await Promise.all(ids.map((id) => ctl().DeleteVolume({ volume_id: id })));
    const left = await backend.volumeIds(drv);
    assert.ok(ids.every((id) => !left.includes(id)));
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
