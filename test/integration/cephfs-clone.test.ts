/**
 * CephFS clones (restore from a snapshot, clone of a volume) as a CO drives them, against a real
 * cluster whose mgr is told to hold every clone pending for a few seconds
 * (mgr/volumes/snapshot_clone_delay), longer than the driver used to wait before answering
 * ABORTED:
 * - a caller with a generous deadline gets OK in one call;
 * - a caller that gives up mid-clone (its deadline passes) leaves a clone that is findable by its
 *   name in the journal and removable: DeleteVolume of that ID cancels and removes it and leaves
 *   no subvolume, no pinned or temporary snapshot and no journal key; or a retry of CreateVolume
 *   with the same name waits for the same clone and returns it.
 * Requests go through the raw client, which does not retry ABORTED as the harness's client does.
 *
 * Then, without the delay, 8 restores at once as external-provisioner makes them (a 15 s deadline
 * per call, retried with doubling backoff on ABORTED, DEADLINE_EXCEEDED and UNAVAILABLE, the same
 * name each time), while Pacific's mgr answers clone commands up to tens of seconds late: every
 * restore ends OK holding its own snapshot's data, exactly 8 clones are made, and after deleting
 * everything nothing is left in group csi.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CsiError } from '../../src/csi/errors.js';
import { MiB, mountCap, status, uniqueName, writeSynced } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();
/** Seconds the mgr holds each clone pending. */
const CLONE_DELAY = 4;
const RWX = mountCap('', 'MULTI_NODE_MULTI_WRITER');
const uuidOf = (id: string) => id.slice(-36);
const prefixOf = (id: string) => id.slice(0, id.length - 36);

describe('cephfs clones: one call while the caller waits, nothing left when it gives up', { skip: needsRoot, timeout: 300_000 }, () => {
  let drv: TestDriver;
  const ctl = () => drv.rawClient.controller;
  let source = '';
  let snapshot = '';
  const timings: Record<string, number> = {};

  const request = (name: string, content: { snapshot?: { snapshot_id: string }; volume?: { volume_id: string } }) => ({
    name,
    volume_capabilities: [RWX],
    capacity_range: { required_bytes: 16 * MiB },
    volume_content_source: content,
    parameters: ceph.cephfsParameters,
    secrets: ceph.cephfsSecrets,
  });

  /** What a CO does not know after giving up, but the journal does: the ID reserved for a name. */
  async function idReservedFor(name: string): Promise<string> {
    const uuid = (await ceph.fsOmapValue('csi.volumes.default', `csi.volume.${name}`)).trim();
    assert.match(uuid, /^[0-9a-f-]{36}$/, `the journal holds the name ${name}`);
    return `${prefixOf(source)}${uuid}`;
  }

  /** DeleteVolume as a CO sends it, retried while the driver still finishes the abandoned call. */
  async function deleteVolume(id: string): Promise<void> {
    const until = Date.now() + 15_000;
    for (;;) {
      try {
        await ctl().DeleteVolume({ volume_id: id, secrets: ceph.cephfsSecrets });
        return;
      } catch (e) {
        if (!(e instanceof CsiError) || e.code !== status.ABORTED || Date.now() > until) throw e;
        await sleep(250);
      }
    }
  }

  async function pendingClones(sub: string, snap: string): Promise<string> {
    const out = JSON.parse(
      await ceph.ceph(['fs', 'subvolume', 'snapshot', 'info', ceph.info.fsName, sub, snap, '--group_name', 'csi', '-f', 'json']),
    ) as { has_pending_clones?: string };
    return out.has_pending_clones ?? '';
  }

  before(async () => {
    drv = await startTestDriver({ backend: 'cephfs', ceph, prefix: 'stowage-cfsclone-' });
    source = (await drv.client.controller.CreateVolume({ name: uniqueName('src'), volume_capabilities: [RWX], capacity_range: { required_bytes: 16 * MiB } })).volume!.volume_id;
    snapshot = (await drv.client.controller.CreateSnapshot({ name: uniqueName('snap'), source_volume_id: source })).snapshot!.snapshot_id;
    await ceph.ceph(['config', 'set', 'mgr', 'mgr/volumes/snapshot_clone_delay', String(CLONE_DELAY)]);
  });

  after(async () => {
    await ceph.ceph(['config', 'rm', 'mgr', 'mgr/volumes/snapshot_clone_delay']).catch(() => undefined);
    if (timings['snapshot'] !== undefined) console.log(`# one-call CreateVolume with a ${CLONE_DELAY} s clone delay: ${JSON.stringify(timings)} (seconds)`);
    await drv?.cleanup();
  });

  for (const kind of ['snapshot', 'volume'] as const) {
    it(`CreateVolume from a ${kind} with a generous deadline: OK in one call, the source unpinned`, async () => {
      const content = kind === 'snapshot' ? { snapshot: { snapshot_id: snapshot } } : { volume: { volume_id: source } };
      const started = Date.now();
      const vol = (await ctl().CreateVolume(request(uniqueName(`one-${kind}`), content), { timeoutMs: 120_000 })).volume!;
      timings[kind] = (Date.now() - started) / 1000;
      assert.ok(timings[kind] >= CLONE_DELAY - 1, `the clone was held ${CLONE_DELAY} s, yet the call took ${timings[kind]} s`);
      assert.equal(Number(vol.capacity_bytes), 16 * MiB);
      assert.ok(vol.volume_context['subvolumePath'], 'a usable volume (its path known)');
      const sub = `csi-vol-${uuidOf(source)}`;
      assert.deepEqual(await ceph.subvolumeSnapshots(sub), [`csi-snap-${uuidOf(snapshot)}`], 'no temporary snapshot left on the source');
      assert.equal(await pendingClones(sub, `csi-snap-${uuidOf(snapshot)}`), 'no');
      await ctl().DeleteVolume({ volume_id: vol.volume_id, secrets: ceph.cephfsSecrets });
    });
  }

  for (const kind of ['snapshot', 'volume'] as const) {
    it(`a caller that gives up mid-clone (from a ${kind}), then DeleteVolume of the name's ID: no subvolume, pinned snapshot or journal key left`, async () => {
      const content = kind === 'snapshot' ? { snapshot: { snapshot_id: snapshot } } : { volume: { volume_id: source } };
      const name = uniqueName(`gone-${kind}`);
      await expectGaveUp(ctl().CreateVolume(request(name, content), { timeoutMs: 1_500 }));
      const id = await idReservedFor(name);
      const clone = `csi-vol-${uuidOf(id)}`;
      assert.ok((await ceph.subvolumes()).includes(clone), 'the clone was started and is still there');

      await deleteVolume(id);
      assert.ok(!(await ceph.subvolumes()).includes(clone), 'the clone subvolume is gone');
      const sub = `csi-vol-${uuidOf(source)}`;
      assert.deepEqual(await ceph.subvolumeSnapshots(sub), [`csi-snap-${uuidOf(snapshot)}`], 'no temporary snapshot left on the source');
      assert.equal(await pendingClones(sub, `csi-snap-${uuidOf(snapshot)}`), 'no', 'the snapshot is not pinned by a clone');
      assert.ok(!(await ceph.fsOmapKeys('csi.volumes.default')).includes(`csi.volume.${name}`), 'the name is free');
      assert.deepEqual(await ceph.fsObjects(`csi.volume.${uuidOf(id)}`), [], 'no journal object for the ID');
      // Deleting again is still OK.
      await ctl().DeleteVolume({ volume_id: id, secrets: ceph.cephfsSecrets });
    });
  }

  it('a caller that gives up mid-clone, then retries the same name: the same clone, waited for, OK', async () => {
    const name = uniqueName('retry');
    const req = request(name, { snapshot: { snapshot_id: snapshot } });
    await expectGaveUp(ctl().CreateVolume(req, { timeoutMs: 1_500 }));
    const id = await idReservedFor(name);
    const until = Date.now() + 30_000;
    let volumeId = '';
    for (;;) {
      try {
        volumeId = (await ctl().CreateVolume(req, { timeoutMs: 120_000 })).volume!.volume_id;
        break;
      } catch (e) {
        // Only while the abandoned call is still being wound up.
        if (!(e instanceof CsiError) || e.code !== status.ABORTED || Date.now() > until) throw e;
        await sleep(250);
      }
    }
    assert.equal(volumeId, id, 'the retry finished the clone the first call started');
    const clones = (await ceph.subvolumes()).filter((s) => s !== `csi-vol-${uuidOf(source)}`);
    assert.deepEqual(clones, [`csi-vol-${uuidOf(id)}`], 'one clone, not two');
    await ctl().DeleteVolume({ volume_id: id, secrets: ceph.cephfsSecrets });
  });

  it('everything deleted: no subvolume, snapshot or journal key is left', async () => {
    await ctl().DeleteSnapshot({ snapshot_id: snapshot, secrets: ceph.cephfsSecrets });
    await ctl().DeleteVolume({ volume_id: source, secrets: ceph.cephfsSecrets });
    assert.deepEqual(await ceph.subvolumes(), []);
    assert.deepEqual(await ceph.fsOmapKeys('csi.volumes.default'), []);
    assert.deepEqual(await ceph.fsOmapKeys('csi.snaps.default'), []);
    assert.deepEqual(await ceph.fsObjects('csi.volume.'), []);
    assert.deepEqual(await ceph.fsObjects('csi.snap.'), []);
  });
});

/** What external-provisioner retries (its non-final codes a driver answers), the same request each time. */
/**
 * A caller whose deadline passes mid-clone: its own DEADLINE_EXCEEDED, or, when the driver notices
 * the deadline first and its answer arrives before the caller's timer fires, the driver's ABORTED
 * ("still being cloned … after the caller stopped waiting"). Both say "retry"; CI has seen each.
 */
async function expectGaveUp(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (e) {
    assert.ok(e instanceof CsiError, `a caller that waits 1.5 s: expected a CsiError, got ${String(e)}`);
    assert.ok(e.code === status.DEADLINE_EXCEEDED || e.code === status.ABORTED, `a caller that waits 1.5 s: expected DEADLINE_EXCEEDED or ABORTED, got ${status[e.code]}: ${e.message}`);
    return;
  }
  assert.fail('a caller that waits 1.5 s: the call succeeded');
}

const RETRIED = new Set<number>([status.ABORTED, status.DEADLINE_EXCEEDED, status.UNAVAILABLE]);
/** external-provisioner's default --timeout (15 s) and --retry-interval-start (1 s, doubling; its 5 min cap shortened to 8 s). */
const CO_TIMEOUT_MS = 15_000;
const CO_BACKOFF_MS = { first: 1_000, max: 8_000 };

/** Calls until OK or a code a CO does not retry; how many retries it took. */
async function asCoDoes<T>(call: () => Promise<T>, giveUpMs = 240_000): Promise<{ value: T; retries: number; codes: string[] }> {
  const until = Date.now() + giveUpMs;
  const codes: string[] = [];
  let backoff = CO_BACKOFF_MS.first;
  for (;;) {
    try {
      return { value: await call(), retries: codes.length, codes };
    } catch (e) {
      if (!(e instanceof CsiError) || !RETRIED.has(e.code) || Date.now() > until) throw e;
      codes.push(status[e.code]);
      await sleep(backoff);
      backoff = Math.min(CO_BACKOFF_MS.max, backoff * 2);
    }
  }
}

describe('cephfs: 8 restores at once, retried as external-provisioner retries them', { skip: needsRoot, timeout: 600_000 }, () => {
  const N = 8;
  let drv: TestDriver;
  const ctl = () => drv.rawClient.controller;
  let source = '';
  const snapshots: string[] = [];
  const restored: string[] = [];
  const staged: { id: string; staging: string; target: string }[] = [];

  const retried = <T>(call: (deadline: { timeoutMs: number }) => Promise<T>) => asCoDoes(() => call({ timeoutMs: CO_TIMEOUT_MS }));

  async function publish(id: string): Promise<string> {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    staged.push({ id, staging, target });
    await drv.client.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWX });
    await drv.client.node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: RWX, readonly: false });
    return target;
  }

  async function unpublishAll(): Promise<void> {
    for (const p of staged.splice(0).reverse()) {
      await drv.client.node.NodeUnpublishVolume({ volume_id: p.id, target_path: p.target });
      await drv.client.node.NodeUnstageVolume({ volume_id: p.id, staging_target_path: p.staging });
    }
  }

  before(async () => {
    drv = await startTestDriver({ backend: 'cephfs', ceph, prefix: 'stowage-cfsclone8-' });
    source = (await drv.client.controller.CreateVolume({ name: uniqueName('src8'), volume_capabilities: [RWX], capacity_range: { required_bytes: 16 * MiB } })).volume!.volume_id;
    // Snapshot i holds "generation i": each restore must hold its own snapshot's data.
    const target = await publish(source);
    for (let i = 0; i < N; i++) {
      await writeSynced(join(target, 'data'), Buffer.from(`generation ${i}\n`));
      snapshots.push((await drv.client.controller.CreateSnapshot({ name: uniqueName(`snap8-${i}`), source_volume_id: source })).snapshot!.snapshot_id);
    }
    await unpublishAll();
  });

  after(async () => {
    await unpublishAll().catch(() => undefined);
    await drv?.cleanup();
  });

  it(`${N} CreateVolume from ${N} snapshots at once: all OK in the end, each with its snapshot's data, exactly ${N} clones`, async () => {
    const started = Date.now();
    const results = await Promise.all(
      snapshots.map((snap, i) => {
        const req = {
          name: uniqueName(`restore8-${i}`),
          volume_capabilities: [RWX],
          capacity_range: { required_bytes: 16 * MiB },
          volume_content_source: { snapshot: { snapshot_id: snap } },
          parameters: ceph.cephfsParameters,
          secrets: ceph.cephfsSecrets,
        };
        return retried((o) => ctl().CreateVolume(req, o));
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    for (const r of results) restored.push(r.value.volume!.volume_id);
    console.log(`# ${N} concurrent cephfs restores: ${seconds.toFixed(1)} s; retries per restore ${JSON.stringify(results.map((r) => r.codes))}`);

    assert.equal(new Set(restored).size, N, 'eight distinct volumes');
    const clones = (await ceph.subvolumes()).filter((s) => s !== `csi-vol-${uuidOf(source)}`);
    assert.deepEqual(clones, restored.map((id) => `csi-vol-${uuidOf(id)}`).sort(), 'one subvolume per volume: no second clone of a retried name, none unnamed');
    // The source keeps its own snapshots and nothing else (restores make no temporary snapshot).
    assert.deepEqual(await ceph.subvolumeSnapshots(`csi-vol-${uuidOf(source)}`), snapshots.map((id) => `csi-snap-${uuidOf(id)}`).sort());
    for (const i of [0, N - 1]) {
      const target = await publish(restored[i]!);
      assert.equal(await readFile(join(target, 'data'), 'utf8'), `generation ${i}\n`, `restore ${i} holds snapshot ${i}'s data`);
    }
    await unpublishAll();
  });

  it('everything deleted (as the CO retries deletes): nothing left in group csi, no journal key', async () => {
    await Promise.all(restored.map((id) => retried((o) => ctl().DeleteVolume({ volume_id: id, secrets: ceph.cephfsSecrets }, o))));
    await Promise.all(snapshots.map((id) => retried((o) => ctl().DeleteSnapshot({ snapshot_id: id, secrets: ceph.cephfsSecrets }, o))));
    await retried((o) => ctl().DeleteVolume({ volume_id: source, secrets: ceph.cephfsSecrets }, o));
    assert.deepEqual(await ceph.subvolumes(), [], 'no subvolume, no orphan clone');
    assert.deepEqual(await ceph.subvolumeSnapshots(`csi-vol-${uuidOf(source)}`), [], 'no snapshot left (the source was purged with them)');
    assert.deepEqual(await ceph.fsOmapKeys('csi.volumes.default'), []);
    assert.deepEqual(await ceph.fsOmapKeys('csi.snaps.default'), []);
    assert.deepEqual(await ceph.fsObjects('csi.volume.'), []);
    assert.deepEqual(await ceph.fsObjects('csi.snap.'), []);
  });
});
