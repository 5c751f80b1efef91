/**
 * Crash safety of the cephfs backend against a real cluster: kill -9 the driver while creates
 * (plain and restores) and deletes are in flight, restart it, retry every call with the same names
 * / IDs as a CO does, then check the cluster itself: `ceph fs subvolume ls` holds exactly one
 * subvolume per volume the calls say exist, and the omap journal (metadata pool, namespace csi)
 * exactly their names and UUID objects; after the last delete, nothing of the test is left.
 *
 * Kill delays come from a seeded generator (STOWAGE_CRASH_SEED overrides the seed), so a failure
 * can be replayed; the invariants hold whichever point the kill hits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CsiClient } from '../../src/csi/client.js';
import { CsiError } from '../../src/csi/errors.js';
import { MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();
const SEED = Number(process.env['STOWAGE_CRASH_SEED'] ?? 0xcef5);
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

/** Calls fn until it succeeds, retrying what a CO retries (ABORTED: a clone in progress, a busy name; UNAVAILABLE). */
async function retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retryable = e instanceof CsiError && (e.code === status.ABORTED || e.code === status.UNAVAILABLE);
      if (!retryable || Date.now() - started > 90_000) throw new Error(`${what} failed on attempt ${attempt}: ${(e as Error).message}`, { cause: e });
      await sleep(250);
    }
  }
}

const uuidOf = (id: string) => id.slice(-36);

describe('cephfs crash safety: kill -9 mid-create and mid-delete, then retry', { skip: needsRoot, timeout: 300_000 }, () => {
  let drv: TestDriver;
  const next = rng(SEED);
  /** name → ID of what exists according to the calls that succeeded. */
  const volumes = new Map<string, string>();
  let snapshot: { name: string; id: string } | undefined;

  /** Starts every op within 20 ms, SIGKILLs the driver after 0–400 ms, restarts it. */
  async function crashRound(ops: ((c: CsiClient) => Promise<unknown>)[]): Promise<void> {
    const client = drv.rawClient;
    const pending = ops.map(async (op) => {
      await sleep(Math.floor(next() * 21));
      return op(client).then(
        () => true,
        () => false,
      );
    });
    const delay = Math.floor(next() * 401);
    await sleep(delay);
    await drv.kill9();
    const through = (await Promise.all(pending)).filter(Boolean).length;
    process.stdout.write(`# kill after ${delay} ms: ${through}/${ops.length} calls answered\n`);
    await drv.restart();
  }

  /** The cluster holds exactly what `volumes` says, in subvolumes and in the journal. */
  async function checkCluster(): Promise<void> {
    const want = [...volumes.values()].map((id) => `csi-vol-${uuidOf(id)}`).sort();
    const subvolumes = (await ceph.subvolumes()).filter((s) => s.startsWith('csi-vol-'));
    // The snapshot's source was deleted with --retain-snapshots: it stays listed (snapshot-retained) until the snapshot goes.
    const retained = snapshot ? [sourceSubvolume] : [];
    assert.deepEqual(subvolumes.filter((s) => !retained.includes(s)), want, 'exactly one subvolume per volume the calls made');
    assert.deepEqual(await ceph.fsOmapKeys('csi.volumes.default'), [...volumes.keys()].map((n) => `csi.volume.${n}`).sort(), 'volume names in the journal');
    assert.deepEqual(await ceph.fsObjects('csi.volume.'), [...volumes.values()].map((id) => `csi.volume.${uuidOf(id)}`).sort(), 'volume objects in the journal');
    for (const [name, id] of volumes) {
      assert.equal(await ceph.fsOmapValue('csi.volumes.default', `csi.volume.${name}`), uuidOf(id));
      const rec = JSON.parse(await ceph.fsOmapValue(`csi.volume.${uuidOf(id)}`, 'stowage.record')) as { state: string };
      assert.equal(rec.state, 'ready', `volume ${name} is ready`);
    }
  }

  let sourceSubvolume = '';
  const secrets = () => ceph.cephfsSecrets;
  const parameters = () => ceph.cephfsParameters;
  const createReq = (name: string, source?: string) => ({
    name,
    volume_capabilities: [mountCap('', 'MULTI_NODE_MULTI_WRITER')],
    capacity_range: { required_bytes: 16 * MiB },
    parameters: parameters(),
    secrets: secrets(),
    ...(source ? { volume_content_source: { snapshot: { snapshot_id: source } } } : {}),
  });

  before(async () => {
    drv = await startTestDriver({ backend: 'cephfs', ceph, prefix: 'stowage-cfsk-', logLevel: 'warn' });
    // A snapshot to restore from (its source is deleted at once: restores come from a retained snapshot).
    const src = await drv.client.controller.CreateVolume({ name: uniqueName('crash-src'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 16 * MiB } });
    const name = uniqueName('crash-snap');
    const snap = await drv.client.controller.CreateSnapshot({ name, source_volume_id: src.volume!.volume_id });
    snapshot = { name, id: snap.snapshot!.snapshot_id };
    sourceSubvolume = `csi-vol-${uuidOf(src.volume!.volume_id)}`;
    await drv.client.controller.DeleteVolume({ volume_id: src.volume!.volume_id });
  });

  after(async () => {
    if (!drv) return;
    const dir = drv.dir;
    await drv.cleanup();
    assertNoLeftovers(dir);
  });

  it('kill -9 during CreateVolume (plain and restores): retries make exactly one volume per name', async () => {
    for (let round = 0; round < 3; round++) {
      const names = Array.from({ length: CONCURRENT }, (_, i) => uniqueName(`crash-c${round}-${i}`));
      // Every third one is a restore: a clone the mgr copies while the driver dies.
      const source = (i: number) => (i % 3 === 2 ? snapshot!.id : undefined);
      await crashRound(names.map((n, i) => (c) => c.controller.CreateVolume(createReq(n, source(i)))));
      for (const [i, n] of names.entries()) {
        const res = await retry(`create ${n}`, () => drv.rawClient.controller.CreateVolume(createReq(n, source(i))));
        volumes.set(n, res.volume!.volume_id);
      }
      await checkCluster();
    }
  });

  it('kill -9 during DeleteVolume: retried deletes leave no subvolume and no journal key', async () => {
    for (let round = 0; round < 2; round++) {
      const victims = [...volumes.entries()].slice(0, CONCURRENT);
      await crashRound(victims.map(([, id]) => (c) => c.controller.DeleteVolume({ volume_id: id, secrets: secrets() })));
      for (const [n, id] of victims) {
        await retry(`delete ${n}`, () => drv.rawClient.controller.DeleteVolume({ volume_id: id, secrets: secrets() }));
        volumes.delete(n);
      }
      await checkCluster();
    }
    // The rest, and the snapshot: nothing of the test remains.
    for (const [n, id] of [...volumes]) {
      await retry(`delete ${n}`, () => drv.rawClient.controller.DeleteVolume({ volume_id: id, secrets: secrets() }));
      volumes.delete(n);
    }
    await retry('delete snapshot', () => drv.rawClient.controller.DeleteSnapshot({ snapshot_id: snapshot!.id, secrets: secrets() }));
    snapshot = undefined;
    // The retained source is purged by the mgr once its last snapshot is gone (asynchronously).
    for (let i = 0; i < 50 && (await ceph.subvolumes()).includes(sourceSubvolume); i++) await sleep(200);
    await checkCluster();
    assert.deepEqual(await ceph.fsOmapKeys('csi.snaps.default'), [], 'no snapshot name left in the journal');
    assert.deepEqual(await ceph.fsObjects('csi.snap.'), [], 'no snapshot object left in the journal');
  });
});
