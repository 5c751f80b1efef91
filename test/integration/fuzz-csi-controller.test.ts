/**
 * Property-based fuzzing of the Identity and Controller services through the real driver socket
 * (issue 11), beside fuzz-csi-node.test.ts: fast-check sends hostile CreateVolume, DeleteVolume,
 * ValidateVolumeCapabilities, ListVolumes, GetCapacity, ControllerGetVolume, ControllerExpandVolume,
 * ControllerPublish/Unpublish, CreateSnapshot, DeleteSnapshot, ListSnapshots and the Identity calls
 * — names with "/", "..", NUL, control characters, unicode and past 128 bytes; sizes from 0 to past
 * the pool and past 2^53; empty, malformed and contradictory capabilities; parameters, secrets and
 * topology with hostile keys and values; content sources naming real, deleted and forged IDs;
 * forged pagination tokens — and checks after every call that the driver answered with a status it
 * may give (never INTERNAL, UNKNOWN or a dead socket). At the end: the driver still serves; nothing
 * appeared outside its directory; and the pool holds exactly what the journal lists (no volume or
 * snapshot storage without a record, none listed without storage), and once everything listed is
 * deleted, nothing at all.
 *
 * Fixed seed and a bounded budget (FUZZ_RUNS, default 600, at most 45 s in the suite), so a failure
 * reproduces; `npm run fuzz` raises FUZZ_RUNS and picks a FUZZ_SEED.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { checkedCall } from '../support/csi-fuzz.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 0xc5117);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 600);
const TIME_LIMIT_MS = process.env['FUZZ_RUNS'] === undefined ? 45_000 : undefined;

/** What a Controller or Identity RPC may answer to a malformed or hostile request; anything else is a bug. */
const ALLOWED = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.OUT_OF_RANGE,
  status.RESOURCE_EXHAUSTED,
  // ListVolumes/ListSnapshots answer a starting_token they never gave out with ABORTED (the spec's code).
  status.ABORTED,
  // What the local driver does not advertise (ControllerPublish/Unpublish).
  status.UNIMPLEMENTED,
]);

const SYSTEM_PATHS = ['/etc/fuzz', '/root/fuzz', '/tmp/fuzz-x', '/var/lib/fuzz', '/dev/shm/fuzz', '/volumes', '/snapshots'];

/** Entries of the pool's volumes/ or snapshots/ directory, as IDs (image files without ".img"). */
function poolEntries(pool: string, dir: 'volumes' | 'snapshots'): string[] {
  const d = join(pool, dir);
  return existsSync(d) ? readdirSync(d).map((n) => n.replace(/\.img$/, '')).filter((n) => !n.startsWith('.')).sort() : [];
}

describe('fuzz: hostile Controller and Identity requests through the driver socket [local]', { skip: needsRoot }, () => {
  let drv: TestDriver;
  let outside: string;
  const ids: string[] = [];
  const snapIds: string[] = [];

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-fuzzc-', poolSize: '1Gi' });
    outside = await mkdtemp(join(tmpdir(), 'stowage-fuzzc-outside-'));
    await writeFile(join(outside, 'precious'), 'not the driver’s');
    const ctl = drv.client.controller;
    for (const cap of [mountCap(), mountCap('ext4'), blockCap()]) {
      ids.push((await ctl.CreateVolume({ name: uniqueName('fzc'), volume_capabilities: [cap], capacity_range: { required_bytes: 16 * MiB } })).volume!.volume_id);
    }
    snapIds.push((await ctl.CreateSnapshot({ name: uniqueName('fzs'), source_volume_id: ids[0]! })).snapshot!.snapshot_id);
  });

  after(async () => {
    await drv?.cleanup();
    if (outside) await rm(outside, { recursive: true, force: true });
  });

  it(`no crash, no INTERNAL/UNKNOWN, the pool holds what the journal lists (seed ${SEED})`, async (t) => {
    const pool = join(drv.localDir, 'pool');
    const sentinel = () => ({ outside: readdirSync(outside).sort(), system: SYSTEM_PATHS.map((p) => `${p}:${existsSync(p)}`), localDir: readdirSync(drv.localDir).sort() });
    const before = sentinel();

    const hostileText = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('a', 'pvc-1', 'Vol_1.x+y', 'x'.repeat(128), 'x'.repeat(129), '', '.', '..', '../etc', 'a/b', '/', 'a\0b', '\n', 'é', '日本語', '💥', ' ', 'volumes', 'meta', '.img') },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 100, maxLength: 200 }) },
    );
    const name = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('fz-a', 'fz-b', 'fz-c', 'fz-d') }, { weight: 2, arbitrary: hostileText });
    const volumeId = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...ids) },
      { weight: 2, arbitrary: hostileText },
      { weight: 1, arbitrary: fc.constantFrom(...ids).map((id) => `${id}x`) },
    );
    const snapshotId = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...snapIds) }, { weight: 2, arbitrary: hostileText });
    const size = fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 0, max: 32 * MiB }) },
      { weight: 1, arbitrary: fc.constantFrom(1, 4095, 512 * MiB, 2 ** 40, Number.MAX_SAFE_INTEGER) },
    );
    const range = fc.option(
      fc.record({ required_bytes: fc.option(size, { nil: undefined }), limit_bytes: fc.option(size, { nil: undefined }) }).map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined))),
      { nil: undefined },
    );
    const capability: fc.Arbitrary<VolumeCapabilityInput> = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom<VolumeCapabilityInput>(mountCap(), mountCap('ext4'), mountCap('xfs'), blockCap(), mountCap('', 'MULTI_NODE_MULTI_WRITER'), mountCap('', 'SINGLE_NODE_READER_ONLY')) },
      {
        weight: 2,
        arbitrary: fc.constantFrom<VolumeCapabilityInput>(
          { mount: { fs_type: '../x' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
          { mount: { fs_type: 'ext4' }, access_mode: { mode: 'UNKNOWN' } },
          { access_mode: { mode: 'SINGLE_NODE_WRITER' } },
          { mount: {}, access_mode: {} },
          { block: {}, mount: { fs_type: 'ext4' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } } as VolumeCapabilityInput,
        ),
      },
      { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 })).map(([fs, flag]) => mountCap(fs, 'SINGLE_NODE_WRITER', [flag])) },
    );
    const capabilities = fc.array(capability, { maxLength: 3 });
    const stringMap = fc.dictionary(fc.oneof(fc.constantFrom('csi.storage.k8s.io/fstype', 'fsType', 'clusterID', 'pool', '__proto__', 'constructor'), hostileText), hostileText, { maxKeys: 4 });
    const topology = fc.option(
      fc.record({
        requisite: fc.array(fc.record({ segments: fc.oneof(fc.constant({ 'topology.stowage.dev/node': 'test-node' }), stringMap) }), { maxLength: 2 }),
        preferred: fc.array(fc.record({ segments: stringMap }), { maxLength: 2 }),
      }),
      { nil: undefined },
    );
    const contentSource = fc.option(
      fc.oneof(fc.record({ snapshot: fc.record({ snapshot_id: snapshotId }) }), fc.record({ volume: fc.record({ volume_id: volumeId }) }), fc.constant({})),
      { nil: undefined },
    );
    const token = fc.oneof(fc.constantFrom('', '0', '1', '2', '-1', '999999'), hostileText);

    type Call = { service: 'controller' | 'identity'; rpc: string; req: Record<string, unknown> };
    const ctl = (rpc: string) => (req: Record<string, unknown>): Call => ({ service: 'controller', rpc, req });
    const call: fc.Arbitrary<Call> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc
          .record({ name, capacity_range: range, volume_capabilities: capabilities, parameters: stringMap, secrets: stringMap, volume_content_source: contentSource, accessibility_requirements: topology })
          .map(ctl('CreateVolume')),
      },
      // Well-formed creates (some from real sources), so that the hostile calls meet real state.
      {
        weight: 3,
        arbitrary: fc
          .record({
            name: fc.constantFrom('fz-a', 'fz-b', 'fz-c', 'fz-d', 'fz-e'),
            capacity_range: fc.record({ required_bytes: fc.integer({ min: 1, max: 24 * MiB }) }),
            volume_capabilities: fc.constantFrom([mountCap()], [mountCap('ext4')], [blockCap()]),
            volume_content_source: fc.option(fc.oneof(fc.record({ snapshot: fc.record({ snapshot_id: fc.constantFrom(...snapIds) }) }), fc.record({ volume: fc.record({ volume_id: fc.constantFrom(...ids) }) })), { nil: undefined, freq: 3 }),
          })
          .map(ctl('CreateVolume')),
      },
      { weight: 1, arbitrary: fc.record({ volume_id: volumeId, secrets: stringMap }).map(ctl('DeleteVolume')) },
      { weight: 1, arbitrary: fc.record({ volume_id: volumeId, volume_capabilities: capabilities, volume_context: stringMap, parameters: stringMap }).map(ctl('ValidateVolumeCapabilities')) },
      { weight: 1, arbitrary: fc.record({ max_entries: fc.integer({ min: 0, max: 5 }), starting_token: token }).map(ctl('ListVolumes')) },
      { weight: 1, arbitrary: fc.record({ volume_capabilities: capabilities, parameters: stringMap, accessible_topology: fc.option(fc.record({ segments: stringMap }), { nil: undefined }) }).map(ctl('GetCapacity')) },
      { weight: 1, arbitrary: fc.record({ volume_id: volumeId }).map(ctl('ControllerGetVolume')) },
      { weight: 1, arbitrary: fc.record({ volume_id: volumeId, capacity_range: range, volume_capability: fc.option(capability, { nil: undefined }) }).map(ctl('ControllerExpandVolume')) },
      { weight: 1, arbitrary: fc.record({ volume_id: volumeId, node_id: hostileText, volume_capability: capability, readonly: fc.boolean() }).map(ctl('ControllerPublishVolume')) },
      { weight: 1, arbitrary: fc.record({ volume_id: volumeId, node_id: hostileText }).map(ctl('ControllerUnpublishVolume')) },
      { weight: 2, arbitrary: fc.record({ source_volume_id: volumeId, name, parameters: stringMap, secrets: stringMap }).map(ctl('CreateSnapshot')) },
      { weight: 1, arbitrary: fc.record({ source_volume_id: fc.constantFrom(...ids), name: fc.constantFrom('fs-a', 'fs-b', 'fs-c') }).map(ctl('CreateSnapshot')) },
      { weight: 1, arbitrary: fc.record({ snapshot_id: snapshotId, secrets: stringMap }).map(ctl('DeleteSnapshot')) },
      { weight: 1, arbitrary: fc.record({ max_entries: fc.integer({ min: 0, max: 5 }), starting_token: token, source_volume_id: fc.option(volumeId, { nil: undefined }), snapshot_id: fc.option(snapshotId, { nil: undefined }) }).map(ctl('ListSnapshots')) },
      { weight: 1, arbitrary: fc.constantFrom('GetPluginInfo', 'GetPluginCapabilities', 'Probe').map((rpc): Call => ({ service: 'identity', rpc, req: {} })) },
      { weight: 1, arbitrary: fc.constant(ctl('ControllerGetCapabilities')({})) },
    );

    const services = drv.rawClient as unknown as Record<'controller' | 'identity', Record<string, (req: unknown, o?: unknown) => Promise<unknown>>>;
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(call, ({ service, rpc, req }) => checkedCall(services[service][rpc]!, rpc, req, ALLOWED, seen, () => drv.pid)),
      { seed: SEED, numRuns: RUNS, ...(TIME_LIMIT_MS === undefined ? {} : { interruptAfterTimeLimit: TIME_LIMIT_MS }), markInterruptAsFailure: false, endOnFailure: true },
    );
    t.diagnostic(`answers: ${[...seen].sort().map(([k, n]) => `${k}×${n}`).join(', ')}`);
    const total = [...seen.values()].reduce((a, b) => a + b, 0);
    assert.ok(total >= 50, `only ${total} requests were sent`);
    assert.ok((seen.get('CreateVolume OK') ?? 0) > 0 && (seen.get('CreateSnapshot OK') ?? 0) > 0, `no create succeeded: ${JSON.stringify([...seen])}`);

    // Still serving; nothing outside its directory.
    assert.equal((await drv.client.identity.Probe({})).ready?.value, true);
    assert.deepEqual(sentinel(), before, 'nothing created or removed outside the driver’s directory');

    // The pool holds exactly what the journal lists.
    const listed = async () => ({
      volumes: ((await drv.client.controller.ListVolumes({})).entries ?? []).map((e) => e.volume!.volume_id).sort(),
      snapshots: ((await drv.client.controller.ListSnapshots({})).entries ?? []).map((e) => e.snapshot!.snapshot_id).sort(),
    });
    const journal = await listed();
    assert.deepEqual(poolEntries(pool, 'volumes'), journal.volumes, 'volume storage == listed volumes');
    assert.deepEqual(poolEntries(pool, 'snapshots'), journal.snapshots, 'snapshot storage == listed snapshots');
    // Deleting everything listed leaves nothing behind.
    for (const id of journal.snapshots) await drv.client.controller.DeleteSnapshot({ snapshot_id: id });
    for (const id of journal.volumes) await drv.client.controller.DeleteVolume({ volume_id: id });
    assert.deepEqual(await listed(), { volumes: [], snapshots: [] });
    assert.deepEqual([...poolEntries(pool, 'volumes'), ...poolEntries(pool, 'snapshots')], [], 'no storage left once everything listed is deleted');
  });
});
