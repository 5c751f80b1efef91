/**
 * The CSI Controller service (src/driver/controller.ts) against an in-memory backend
 * (test/support/fake-backend.ts), over a real CSI socket, without root. Table-driven in the manner
 * of csi-driver-host-path's tests: each row is a request, the backend's state before, the status
 * a CO would get (and a fragment of its message), and the state after. Then the in-flight rules:
 * a second call on a volume that is being worked on is ABORTED while other volumes go on.
 */
import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ControllerCallers } from '../../src/csi/client.js';
import { InvalidArgumentError, NotFoundError } from '../../src/csi/errors.js';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { startHarness, outcome, codeName, type Harness } from '../support/csi-call.js';
import { FAKE_TOPOLOGY_KEY, FakeBackend } from '../support/fake-backend.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const mount = (mode = 'SINGLE_NODE_WRITER', fs_type = ''): VolumeCapabilityInput => ({ mount: { fs_type }, access_mode: { mode } }) as VolumeCapabilityInput;
const block = (mode = 'SINGLE_NODE_WRITER'): VolumeCapabilityInput => ({ block: {}, access_mode: { mode } }) as VolumeCapabilityInput;

interface Row {
  name: string;
  before?: (b: FakeBackend) => void;
  call: (c: ControllerCallers) => Promise<unknown>;
  code: status;
  message?: RegExp;
  after?: (b: FakeBackend, response: unknown) => void;
}

/** A volume and a snapshot of it most rows start from. */
function seeded(b: FakeBackend): void {
  b.addVolume({ id: 'vol-a', name: 'pvc-a', capacityBytes: 2 * GiB });
  b.addVolume({ id: 'vol-blk', name: 'pvc-blk', accessType: 'block', capacityBytes: GiB });
  b.addSnapshot({ id: 'snap-a', name: 'snapshot-a', sourceVolumeId: 'vol-a', sizeBytes: 2 * GiB });
}

async function runRows(harness: () => Harness, rows: Row[]): Promise<void> {
  for (const row of rows) {
    await it(row.name, async () => {
      const h = harness();
      const b = new FakeBackend();
      seeded(b);
      row.before?.(b);
      h.use(b);
      const got = await outcome(row.call(h.client.controller));
      assert.equal(codeName(got.code), codeName(row.code), `status (details: ${got.details})`);
      if (row.message) assert.match(got.details, row.message);
      row.after?.(b, got.response);
    });
  }
}

const volumeIdOf = (r: unknown) => (r as { volume: { volume_id: string } }).volume.volume_id;
const capacityOf = (r: unknown) => Number((r as { volume: { capacity_bytes: number } }).volume.capacity_bytes);

describe('driver controller: argument validation (INVALID_ARGUMENT before anything is touched)', async () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.stop());
  const untouched = (b: FakeBackend) => {
    assert.equal(b.volumes.records.size, 2, 'no volume record added or removed');
    assert.deepEqual(
      b.faults.calls.filter((c) => !c.endsWith('.get') && !c.endsWith('.byName')),
      [],
      'no backend work was done',
    );
  };
  await runRows(() => h, [
    { name: 'CreateVolume without a name', call: (c) => c.CreateVolume({ volume_capabilities: [mount()] }), code: status.INVALID_ARGUMENT, message: /name is required/, after: untouched },
    { name: 'CreateVolume without capabilities', call: (c) => c.CreateVolume({ name: 'v' }), code: status.INVALID_ARGUMENT, message: /volume_capabilities/, after: untouched },
    {
      name: 'CreateVolume with a capability without access mode',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [{ mount: {} }] }),
      code: status.INVALID_ARGUMENT,
      message: /access_mode/,
      after: untouched,
    },
    {
      name: 'CreateVolume with a capability without access type',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [{ access_mode: { mode: 'SINGLE_NODE_WRITER' } }] }),
      code: status.INVALID_ARGUMENT,
      message: /access type/,
      after: untouched,
    },
    {
      name: 'CreateVolume mixing block and mount',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [mount(), block()] }),
      code: status.INVALID_ARGUMENT,
      message: /mix block and mount/,
      after: untouched,
    },
    {
      name: 'CreateVolume with an access mode the backend cannot serve',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [mount('MULTI_NODE_MULTI_WRITER')] }),
      code: status.INVALID_ARGUMENT,
      message: /MULTI_NODE_MULTI_WRITER/,
      after: untouched,
    },
    {
      name: 'CreateVolume with an unknown parameter',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [mount()], parameters: { colour: 'blue' } }),
      code: status.INVALID_ARGUMENT,
      message: /colour/,
      after: untouched,
    },
    {
      name: 'CreateVolume with required_bytes above limit_bytes',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [mount()], capacity_range: { required_bytes: 2 * GiB, limit_bytes: GiB } }),
      code: status.INVALID_ARGUMENT,
      message: /more than limit_bytes/,
      after: untouched,
    },
    {
      name: 'CreateVolume with a content source naming nothing',
      call: (c) => c.CreateVolume({ name: 'v', volume_capabilities: [mount()], volume_content_source: {} }),
      code: status.INVALID_ARGUMENT,
      message: /volume_content_source/,
      after: untouched,
    },
    {
      name: 'CreateVolume with a name containing "/"',
      call: (c) => c.CreateVolume({ name: 'a/b', volume_capabilities: [mount()] }),
      code: status.INVALID_ARGUMENT,
      message: /contains "\/"/,
      after: untouched,
    },
    { name: 'DeleteVolume without volume_id', call: (c) => c.DeleteVolume({}), code: status.INVALID_ARGUMENT, message: /volume_id is required/, after: untouched },
    {
      name: 'ValidateVolumeCapabilities without volume_id',
      call: (c) => c.ValidateVolumeCapabilities({ volume_capabilities: [mount()] }),
      code: status.INVALID_ARGUMENT,
      message: /volume_id is required/,
    },
    {
      name: 'ValidateVolumeCapabilities without capabilities',
      call: (c) => c.ValidateVolumeCapabilities({ volume_id: 'vol-a' }),
      code: status.INVALID_ARGUMENT,
      message: /volume_capabilities/,
    },
    { name: 'ControllerGetVolume without volume_id', call: (c) => c.ControllerGetVolume({}), code: status.INVALID_ARGUMENT, message: /volume_id is required/ },
    {
      name: 'ControllerExpandVolume without volume_id',
      call: (c) => c.ControllerExpandVolume({ capacity_range: { required_bytes: GiB } }),
      code: status.INVALID_ARGUMENT,
      message: /volume_id is required/,
      after: untouched,
    },
    {
      name: 'ControllerExpandVolume without capacity_range',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-a' }),
      code: status.INVALID_ARGUMENT,
      message: /capacity_range is required/,
      after: untouched,
    },
    { name: 'CreateSnapshot without a name', call: (c) => c.CreateSnapshot({ source_volume_id: 'vol-a' }), code: status.INVALID_ARGUMENT, message: /name is required/, after: untouched },
    {
      name: 'CreateSnapshot without source_volume_id',
      call: (c) => c.CreateSnapshot({ name: 's' }),
      code: status.INVALID_ARGUMENT,
      message: /source_volume_id is required/,
      after: untouched,
    },
    {
      name: 'CreateSnapshot with an unknown parameter',
      call: (c) => c.CreateSnapshot({ name: 's', source_volume_id: 'vol-a', parameters: { colour: 'red' } }),
      code: status.INVALID_ARGUMENT,
      message: /colour/,
      after: untouched,
    },
    { name: 'DeleteSnapshot without snapshot_id', call: (c) => c.DeleteSnapshot({}), code: status.INVALID_ARGUMENT, message: /snapshot_id is required/, after: untouched },
    { name: 'GetSnapshot without snapshot_id', call: (c) => c.GetSnapshot({}), code: status.INVALID_ARGUMENT, message: /snapshot_id is required/ },
    { name: 'ListVolumes with negative max_entries', call: (c) => c.ListVolumes({ max_entries: -1 }), code: status.INVALID_ARGUMENT, message: /max_entries/ },
    { name: 'ListSnapshots with negative max_entries', call: (c) => c.ListSnapshots({ max_entries: -1 }), code: status.INVALID_ARGUMENT, message: /max_entries/ },
  ]);
});

describe('driver controller: CreateVolume idempotency, capacity and sources', async () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.stop());
  const create = (name: string, extra: object = {}) => (c: ControllerCallers) => c.CreateVolume({ name, volume_capabilities: [mount()], ...extra });
  await runRows(() => h, [
    {
      name: 'a new volume gets the default size, the backend topology and storage',
      call: create('new'),
      code: status.OK,
      after: (b, r) => {
        const id = volumeIdOf(r);
        assert.equal(capacityOf(r), GiB);
        assert.equal(b.volumes.records.get(id)?.state, 'ready');
        assert.equal(b.storage.get(id), GiB);
        assert.deepEqual((r as { volume: { accessible_topology: unknown } }).volume.accessible_topology, [{ segments: { [FAKE_TOPOLOGY_KEY]: b.nodeId } }]);
      },
    },
    {
      name: 'the same name with the same arguments returns the same volume',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x', capacityBytes: GiB }),
      call: create('x'),
      code: status.OK,
      after: (b, r) => {
        assert.equal(volumeIdOf(r), 'vol-x');
        assert.equal(b.volumes.records.size, 3);
        assert.ok(!b.faults.calls.includes('createVolume'), 'no second creation');
      },
    },
    {
      name: 'the same name with another size is ALREADY_EXISTS',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x', capacityBytes: GiB }),
      call: create('x', { capacity_range: { required_bytes: 2 * GiB } }),
      code: status.ALREADY_EXISTS,
      message: /"x" already exists \(vol-x\)/,
      after: (b) => assert.equal(b.volumes.records.get('vol-x')?.capacityBytes, GiB),
    },
    {
      name: 'the same name with other parameters is ALREADY_EXISTS',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x', parameters: { type: 'fast' } }),
      call: create('x', { parameters: { type: 'slow' } }),
      code: status.ALREADY_EXISTS,
    },
    {
      name: 'the same name with only the sidecar metadata differing is the same volume',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x', parameters: { type: 'fast', 'csi.storage.k8s.io/pvc/name': 'one' } }),
      call: create('x', { parameters: { type: 'fast', 'csi.storage.k8s.io/pvc/name': 'two' } }),
      code: status.OK,
      after: (_b, r) => assert.equal(volumeIdOf(r), 'vol-x'),
    },
    {
      name: 'the same name as block instead of mount is ALREADY_EXISTS',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x' }),
      call: (c) => c.CreateVolume({ name: 'x', volume_capabilities: [block()] }),
      code: status.ALREADY_EXISTS,
    },
    {
      name: 'the same name with another content source is ALREADY_EXISTS',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x', capacityBytes: 2 * GiB }),
      call: create('x', { volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } }),
      code: status.ALREADY_EXISTS,
    },
    {
      name: 'a half-created record (crash before ready) is finished by a retry, same ID',
      before: (b) => {
        b.addVolume({ id: 'vol-half', name: 'half', state: 'creating' });
        b.storage.delete('vol-half');
      },
      call: create('half'),
      code: status.OK,
      after: (b, r) => {
        assert.equal(volumeIdOf(r), 'vol-half');
        assert.equal(b.volumes.records.get('vol-half')?.state, 'ready');
        assert.ok(b.storage.has('vol-half'));
      },
    },
    {
      name: 'a half-created record retried with another size is rolled back and made anew',
      before: (b) => b.addVolume({ id: 'vol-half', name: 'half', state: 'creating' }),
      call: create('half', { capacity_range: { required_bytes: 3 * GiB } }),
      code: status.OK,
      after: (b, r) => {
        assert.notEqual(volumeIdOf(r), 'vol-half');
        assert.ok(!b.volumes.records.has('vol-half') && !b.storage.has('vol-half'), 'the old reservation is gone');
        assert.equal(capacityOf(r), 3 * GiB);
      },
    },
    {
      name: 'required_bytes is rounded up to the allocation unit',
      call: create('odd', { capacity_range: { required_bytes: GiB + 1 } }),
      code: status.OK,
      after: (_b, r) => assert.equal(capacityOf(r), GiB + MiB),
    },
    {
      name: 'only limit_bytes: the default size, capped by the limit',
      call: create('small', { capacity_range: { limit_bytes: 10 * MiB } }),
      code: status.OK,
      after: (_b, r) => assert.equal(capacityOf(r), 10 * MiB),
    },
    {
      name: 'a limit below the allocation unit is OUT_OF_RANGE',
      call: create('tiny', { capacity_range: { limit_bytes: 1000 } }),
      code: status.OUT_OF_RANGE,
      message: /limit_bytes 1000/,
      after: (b) => assert.equal(b.volumes.records.size, 2),
    },
    {
      name: 'more than the backend maximum is OUT_OF_RANGE',
      call: create('huge', { capacity_range: { required_bytes: 60 * GiB } }),
      code: status.OUT_OF_RANGE,
      message: /largest volume/,
      after: (b) => assert.equal(b.volumes.records.size, 2),
    },
    {
      name: 'more than the pool has free is RESOURCE_EXHAUSTED, and nothing is reserved',
      before: (b) => b.addVolume({ id: 'vol-big', name: 'big', capacityBytes: 96 * GiB }),
      call: create('toomuch', { capacity_range: { required_bytes: 2 * GiB } }),
      code: status.RESOURCE_EXHAUSTED,
      message: /do not fit/,
      after: (b) => assert.equal([...b.volumes.records.values()].find((v) => v.name === 'toomuch'), undefined),
    },
    {
      name: 'a restore from an unknown snapshot is NOT_FOUND',
      call: create('r', { volume_content_source: { snapshot: { snapshot_id: 'snap-nope' } } }),
      code: status.NOT_FOUND,
      message: /snapshot snap-nope does not exist/,
      after: (b) => assert.equal(b.volumes.records.size, 2),
    },
    {
      name: 'a restore from a snapshot still being cut is NOT_FOUND',
      before: (b) => b.addSnapshot({ id: 'snap-half', sourceVolumeId: 'vol-a', state: 'creating' }),
      call: create('r', { volume_content_source: { snapshot: { snapshot_id: 'snap-half' } } }),
      code: status.NOT_FOUND,
    },
    {
      name: 'a clone of an unknown volume is NOT_FOUND',
      call: create('r', { volume_content_source: { volume: { volume_id: 'vol-nope' } } }),
      code: status.NOT_FOUND,
      message: /source volume vol-nope does not exist/,
    },
    {
      name: 'a restore is at least as large as the snapshot',
      call: create('r', { volume_content_source: { snapshot: { snapshot_id: 'snap-a' } }, capacity_range: { required_bytes: GiB } }),
      code: status.OK,
      after: (b, r) => {
        assert.equal(capacityOf(r), 2 * GiB);
        assert.deepEqual(b.volumes.records.get(volumeIdOf(r))?.source, { kind: 'snapshot', id: 'snap-a' });
      },
    },
    {
      name: 'a source larger than limit_bytes is OUT_OF_RANGE',
      call: create('r', { volume_content_source: { volume: { volume_id: 'vol-a' } }, capacity_range: { limit_bytes: GiB } }),
      code: status.OUT_OF_RANGE,
      message: /source holds/,
    },
    {
      name: 'a block volume cannot be cloned as a filesystem',
      call: create('r', { volume_content_source: { volume: { volume_id: 'vol-blk' } } }),
      code: status.INVALID_ARGUMENT,
      message: /raw block/,
    },
    {
      name: 'a restore naming the default fs type of a snapshot made without one is the same filesystem',
      call: (c) => c.CreateVolume({ name: 'r', volume_capabilities: [mount('SINGLE_NODE_WRITER', 'ext4')], volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } }),
      code: status.OK,
    },
    {
      name: 'a clone naming the default fs type of a volume made without one is the same filesystem',
      call: (c) => c.CreateVolume({ name: 'r', volume_capabilities: [mount('SINGLE_NODE_WRITER', 'ext4')], volume_content_source: { volume: { volume_id: 'vol-a' } } }),
      code: status.OK,
    },
    {
      name: 'a restore as another filesystem than the snapshot holds is INVALID_ARGUMENT',
      call: (c) => c.CreateVolume({ name: 'r', volume_capabilities: [mount('SINGLE_NODE_WRITER', 'xfs')], volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } }),
      code: status.INVALID_ARGUMENT,
      message: /holds a ext4 filesystem volume; it cannot be restored as xfs filesystem/,
    },
    {
      name: 'the same name naming the default fs type it was made with is the same volume',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x' }),
      call: (c) => c.CreateVolume({ name: 'x', volume_capabilities: [mount('SINGLE_NODE_WRITER', 'ext4')] }),
      code: status.OK,
      after: (_b, r) => assert.equal(volumeIdOf(r), 'vol-x'),
    },
    {
      name: 'the same name with another fs type is ALREADY_EXISTS',
      before: (b) => b.addVolume({ id: 'vol-x', name: 'x' }),
      call: (c) => c.CreateVolume({ name: 'x', volume_capabilities: [mount('SINGLE_NODE_WRITER', 'xfs')] }),
      code: status.ALREADY_EXISTS,
    },
    {
      name: 'requisite topology the backend does not serve is RESOURCE_EXHAUSTED',
      call: create('far', { accessibility_requirements: { requisite: [{ segments: { [FAKE_TOPOLOGY_KEY]: 'elsewhere' } }] } }),
      code: status.RESOURCE_EXHAUSTED,
    },
    {
      name: 'a backend failure that a retry may fix is passed on and leaves the reservation for the retry',
      before: (b) => b.faults.failNext('createVolume', new Error('disk on fire')),
      call: create('flaky'),
      code: status.INTERNAL,
      message: /disk on fire/,
      after: (b) => assert.equal([...b.volumes.records.values()].find((v) => v.name === 'flaky')?.state, 'creating'),
    },
    {
      name: 'a final backend refusal rolls the reservation back',
      before: (b) => b.faults.failNext('createVolume', new NotFoundError('source snapshot snap-a has no data')),
      call: create('final', { volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } }),
      code: status.NOT_FOUND,
      message: /has no data/,
      after: (b) => {
        assert.equal([...b.volumes.records.values()].find((v) => v.name === 'final'), undefined, 'no record left');
        assert.equal(b.storage.size, 2, 'no storage left');
      },
    },
    {
      // A final code would tell the CO that nothing exists under the name: it may then ask another
      // node, or forget a claim deleted meanwhile, and the record would never be removed.
      name: 'a final refusal whose undoing fails is ABORTED (retry), naming both, and keeps the record for the retry',
      before: (b) => {
        b.faults.failNext('createVolume', new NotFoundError('source snapshot snap-a has no data'));
        b.faults.failNext('deleteVolume', new Error('pool unreachable'));
      },
      call: create('stuck', { volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } }),
      code: status.ABORTED,
      message: /has no data.*pool unreachable/,
      after: (b) => assert.equal([...b.volumes.records.values()].find((v) => v.name === 'stuck')?.state, 'creating'),
    },
    {
      name: 'the retry after an undoing that failed is refused again and undoes it: the refusal, and nothing left',
      before: (b) => {
        b.faults.failNext('createVolume', new NotFoundError('source snapshot snap-a has no data'));
        b.faults.failNext('createVolume', new NotFoundError('source snapshot snap-a has no data'));
        b.faults.failNext('deleteVolume', new Error('pool unreachable'));
      },
      call: async (c) => {
        const req = { name: 'stuck', volume_capabilities: [mount()], volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } };
        assert.equal(codeName((await outcome(c.CreateVolume(req))).code), 'ABORTED');
        return c.CreateVolume(req);
      },
      code: status.NOT_FOUND,
      message: /has no data/,
      after: (b) => {
        assert.equal([...b.volumes.records.values()].find((v) => v.name === 'stuck'), undefined, 'no record left');
        assert.equal(b.storage.size, 2, 'no storage left');
      },
    },
  ]);

  it('a retry after a transient backend failure returns the volume the first call reserved', async () => {
    const b = new FakeBackend();
    h.use(b);
    b.faults.failNext('createVolume', new Error('transient'));
    const first = await outcome(h.client.controller.CreateVolume({ name: 'again', volume_capabilities: [mount()] }));
    assert.equal(codeName(first.code), 'INTERNAL');
    const reserved = [...b.volumes.records.values()][0]!;
    const second = await h.client.controller.CreateVolume({ name: 'again', volume_capabilities: [mount()] });
    assert.equal(second.volume?.volume_id, reserved.id);
    assert.equal(b.volumes.records.size, 1);
  });
});

describe('driver controller: delete, expand, validate, get', async () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.stop());
  await runRows(() => h, [
    { name: 'DeleteVolume of an unknown ID is OK', call: (c) => c.DeleteVolume({ volume_id: 'vol-nope' }), code: status.OK, after: (b) => assert.equal(b.volumes.records.size, 2) },
    {
      name: 'DeleteVolume removes the record and the storage',
      call: (c) => c.DeleteVolume({ volume_id: 'vol-a' }),
      code: status.OK,
      after: (b) => assert.ok(!b.volumes.records.has('vol-a') && !b.storage.has('vol-a')),
    },
    {
      name: 'DeleteVolume of a volume the backend says is in use is FAILED_PRECONDITION and keeps it',
      before: (b) => b.inUse.set('vol-a', 'volume vol-a has snapshots in use'),
      call: (c) => c.DeleteVolume({ volume_id: 'vol-a' }),
      code: status.FAILED_PRECONDITION,
      message: /snapshots in use/,
      after: (b) => assert.ok(b.volumes.records.has('vol-a') && b.storage.has('vol-a')),
    },
    {
      name: 'ControllerExpandVolume grows a mount volume and asks for node expansion',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: 3 * GiB + 1 } }),
      code: status.OK,
      after: (b, r) => {
        assert.deepEqual(r, { capacity_bytes: 3 * GiB + MiB, node_expansion_required: true });
        assert.equal(b.volumes.records.get('vol-a')?.capacityBytes, 3 * GiB + MiB);
        assert.equal(b.storage.get('vol-a'), 3 * GiB + MiB);
      },
    },
    {
      name: 'ControllerExpandVolume of a block volume needs no node expansion',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-blk', capacity_range: { required_bytes: 2 * GiB } }),
      code: status.OK,
      after: (_b, r) => assert.equal((r as { node_expansion_required: boolean }).node_expansion_required, false),
    },
    {
      name: 'ControllerExpandVolume to a smaller size keeps the size (never shrinks)',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: GiB } }),
      code: status.OK,
      after: (b, r) => {
        assert.equal(Number((r as { capacity_bytes: number }).capacity_bytes), 2 * GiB);
        assert.ok(!b.faults.calls.includes('expandVolume'));
      },
    },
    {
      name: 'ControllerExpandVolume with a limit below the present size is OUT_OF_RANGE (it would have to shrink)',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: GiB, limit_bytes: GiB + GiB / 2 } }),
      code: status.OUT_OF_RANGE,
      message: /cannot shrink/,
      after: (b) => {
        assert.equal(b.volumes.records.get('vol-a')?.capacityBytes, 2 * GiB);
        assert.ok(!b.faults.calls.includes('expandVolume'));
      },
    },
    {
      name: 'ControllerExpandVolume with limit_bytes alone, above the size, leaves the size (nothing asked to grow)',
      before: (b) => b.addVolume({ id: 'vol-s', name: 's', capacityBytes: 64 * MiB }),
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-s', capacity_range: { limit_bytes: 512 * MiB } }),
      code: status.OK,
      after: (b, r) => {
        assert.equal(Number((r as { capacity_bytes: number }).capacity_bytes), 64 * MiB);
        assert.equal(b.volumes.records.get('vol-s')?.capacityBytes, 64 * MiB);
        assert.ok(!b.faults.calls.includes('expandVolume'));
      },
    },
    {
      name: 'ControllerExpandVolume of an unknown volume is NOT_FOUND',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-nope', capacity_range: { required_bytes: GiB } }),
      code: status.NOT_FOUND,
    },
    {
      name: 'ControllerExpandVolume beyond the free pool is OUT_OF_RANGE and keeps the size',
      before: (b) => b.addVolume({ id: 'vol-big', name: 'big', capacityBytes: 96 * GiB }),
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: 10 * GiB } }),
      code: status.OUT_OF_RANGE,
      after: (b) => assert.equal(b.volumes.records.get('vol-a')?.capacityBytes, 2 * GiB),
    },
    {
      name: 'ControllerExpandVolume with a limit below the allocation is OUT_OF_RANGE',
      call: (c) => c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: 3 * GiB + 1, limit_bytes: 3 * GiB + 2 } }),
      code: status.OUT_OF_RANGE,
    },
    {
      name: 'ValidateVolumeCapabilities of an unknown volume is NOT_FOUND',
      call: (c) => c.ValidateVolumeCapabilities({ volume_id: 'vol-nope', volume_capabilities: [mount()] }),
      code: status.NOT_FOUND,
    },
    {
      name: 'ValidateVolumeCapabilities confirms what the volume was made with',
      call: (c) => c.ValidateVolumeCapabilities({ volume_id: 'vol-a', volume_capabilities: [mount('SINGLE_NODE_WRITER', 'ext4')] }),
      code: status.OK,
      after: (_b, r) => assert.ok((r as { confirmed: unknown }).confirmed),
    },
    {
      name: 'ValidateVolumeCapabilities does not confirm block access to a mount volume',
      call: (c) => c.ValidateVolumeCapabilities({ volume_id: 'vol-a', volume_capabilities: [block()] }),
      code: status.OK,
      after: (_b, r) => {
        assert.equal((r as { confirmed: unknown }).confirmed, null);
        assert.match((r as { message: string }).message, /mount volume, not block/);
      },
    },
    {
      name: 'ValidateVolumeCapabilities does not confirm mutable parameters (no backend modifies volumes)',
      call: (c) => c.ValidateVolumeCapabilities({ volume_id: 'vol-a', volume_capabilities: [mount()], mutable_parameters: { iops: '3000' } }),
      code: status.OK,
      after: (_b, r) => {
        assert.equal((r as { confirmed: unknown }).confirmed, null);
        assert.match((r as { message: string }).message, /no mutable parameters \(iops asked\)/);
      },
    },
    { name: 'ControllerGetVolume of an unknown volume is NOT_FOUND', call: (c) => c.ControllerGetVolume({ volume_id: 'vol-nope' }), code: status.NOT_FOUND },
    {
      name: 'ControllerGetVolume of a volume still being created is NOT_FOUND',
      before: (b) => b.addVolume({ id: 'vol-half', name: 'half', state: 'creating' }),
      call: (c) => c.ControllerGetVolume({ volume_id: 'vol-half' }),
      code: status.NOT_FOUND,
    },
    {
      name: 'ControllerGetVolume reports the backend health of a volume whose storage vanished',
      before: (b) => b.storage.delete('vol-a'),
      call: (c) => c.ControllerGetVolume({ volume_id: 'vol-a' }),
      code: status.OK,
      after: (_b, r) => assert.deepEqual((r as { status: { volume_condition: unknown } }).status.volume_condition, { abnormal: true, message: 'volume vol-a has no data' }),
    },
    {
      name: 'GetCapacity is the pool less what is promised',
      call: (c) => c.GetCapacity({}),
      code: status.OK,
      after: (_b, r) => assert.equal(Number((r as { available_capacity: number }).available_capacity), 97 * GiB),
    },
    {
      name: 'GetCapacity for a topology the backend does not serve is 0',
      call: (c) => c.GetCapacity({ accessible_topology: { segments: { [FAKE_TOPOLOGY_KEY]: 'elsewhere' } } }),
      code: status.OK,
      after: (_b, r) => assert.equal(Number((r as { available_capacity: number }).available_capacity), 0),
    },
  ]);

  it('RPCs of capabilities the backend does not serve are UNIMPLEMENTED', async () => {
    h.use(new FakeBackend({ capabilities: ['CREATE_DELETE_VOLUME'] }));
    const calls: Promise<unknown>[] = [
      h.client.controller.ListVolumes({}),
      h.client.controller.ListSnapshots({}),
      h.client.controller.GetCapacity({}),
      h.client.controller.ControllerGetVolume({ volume_id: 'x' }),
    ];
    for (const got of await Promise.all(calls.map((call) => outcome(call)))) {
      assert.equal(codeName(got.code), 'UNIMPLEMENTED');
    }
    const caps = await h.client.controller.ControllerGetCapabilities({});
    assert.deepEqual(
      caps.capabilities.map((c) => c.rpc?.type),
      ['CREATE_DELETE_VOLUME'],
    );
  });

  it('GetCapacity of a backend without capacity figures (an optional method left out) is UNIMPLEMENTED', async () => {
    const b = new FakeBackend();
    // As rbd and cephfs are: no capacity() at all, not a stub that throws.
    Reflect.defineProperty(b, 'capacity', { value: undefined });
    h.use(b);
    const got = await outcome(h.client.controller.GetCapacity({}));
    assert.equal(codeName(got.code), 'UNIMPLEMENTED');
    assert.match(got.details, /GetCapacity is not supported by the fake backend/);
    assert.ok(!b.faults.calls.includes('capacity'));
  });

  it('ListVolumes and ListSnapshots of journals that cannot list (Journal.list left out) are UNIMPLEMENTED', async () => {
    const b = new FakeBackend();
    // As the Ceph journals are: they cannot be read without the call's secrets.
    Reflect.defineProperty(b.volumes, 'list', { value: undefined });
    Reflect.defineProperty(b.snapshots, 'list', { value: undefined });
    h.use(b);
    const calls: [string, Promise<unknown>][] = [
      ['ListVolumes', h.client.controller.ListVolumes({})],
      ['ListSnapshots', h.client.controller.ListSnapshots({})],
    ];
    for (const [rpc, call] of calls) {
      const got = await outcome(call);
      assert.equal(codeName(got.code), 'UNIMPLEMENTED', rpc);
      assert.match(got.details, new RegExp(`${rpc} is not supported by the fake backend`));
    }
  });
});

describe('driver controller: snapshots', async () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.stop());
  const snapIdOf = (r: unknown) => (r as { snapshot: { snapshot_id: string } }).snapshot.snapshot_id;
  await runRows(() => h, [
    {
      name: 'CreateSnapshot cuts a ready snapshot of the source',
      call: (c) => c.CreateSnapshot({ name: 'new', source_volume_id: 'vol-a' }),
      code: status.OK,
      after: (b, r) => {
        const s = b.snapshots.records.get(snapIdOf(r));
        assert.equal(s?.state, 'ready');
        assert.equal(s?.sourceVolumeId, 'vol-a');
        assert.equal(b.snapshotStorage.get(snapIdOf(r)), 2 * GiB);
        assert.equal((r as { snapshot: { ready_to_use: boolean } }).snapshot.ready_to_use, true);
      },
    },
    {
      name: 'the same name and source again returns the same snapshot without cutting another',
      call: (c) => c.CreateSnapshot({ name: 'snapshot-a', source_volume_id: 'vol-a' }),
      code: status.OK,
      after: (b, r) => {
        assert.equal(snapIdOf(r), 'snap-a');
        assert.equal(b.snapshots.records.size, 1);
        assert.ok(!b.faults.calls.includes('createSnapshot'));
      },
    },
    {
      name: 'the same name for another source is ALREADY_EXISTS',
      call: (c) => c.CreateSnapshot({ name: 'snapshot-a', source_volume_id: 'vol-blk' }),
      code: status.ALREADY_EXISTS,
      message: /another volume \(vol-a\)/,
    },
    {
      name: 'a snapshot left half-cut is finished by a retry, same ID',
      before: (b) => {
        b.addSnapshot({ id: 'snap-half', name: 'half', sourceVolumeId: 'vol-a', state: 'creating' });
        b.snapshotStorage.delete('snap-half');
      },
      call: (c) => c.CreateSnapshot({ name: 'half', source_volume_id: 'vol-a' }),
      code: status.OK,
      after: (b, r) => {
        assert.equal(snapIdOf(r), 'snap-half');
        assert.equal(b.snapshots.records.get('snap-half')?.state, 'ready');
        assert.ok(b.snapshotStorage.has('snap-half'));
      },
    },
    {
      name: 'CreateSnapshot of an unknown volume is NOT_FOUND and records nothing',
      call: (c) => c.CreateSnapshot({ name: 'orphan', source_volume_id: 'vol-nope' }),
      code: status.NOT_FOUND,
      after: (b) => assert.equal(b.snapshots.records.size, 1),
    },
    {
      name: 'a snapshot the backend refuses for good leaves no half-cut record behind',
      before: (b) => b.faults.failNext('createSnapshot', new InvalidArgumentError('the source cannot be snapshotted')),
      call: (c) => c.CreateSnapshot({ name: 'refused', source_volume_id: 'vol-a' }),
      code: status.INVALID_ARGUMENT,
      message: /cannot be snapshotted/,
      after: (b) => {
        assert.deepEqual([...b.snapshots.records.keys()], ['snap-a'], 'no record that no DeleteSnapshot can ever name');
        assert.deepEqual([...b.snapshotStorage.keys()], ['snap-a']);
      },
    },
    {
      name: 'a snapshot refusal whose undoing fails is ABORTED (retry), and the retry answers the refusal with nothing left',
      before: (b) => {
        b.faults.failNext('createSnapshot', new InvalidArgumentError('the source cannot be snapshotted'));
        b.faults.failNext('createSnapshot', new InvalidArgumentError('the source cannot be snapshotted'));
        b.faults.failNext('deleteSnapshot', new Error('pool unreachable'));
      },
      call: async (c) => {
        const first = await outcome(c.CreateSnapshot({ name: 'refused', source_volume_id: 'vol-a' }));
        assert.equal(codeName(first.code), 'ABORTED');
        assert.match(first.details, /cannot be snapshotted.*pool unreachable/);
        return c.CreateSnapshot({ name: 'refused', source_volume_id: 'vol-a' });
      },
      code: status.INVALID_ARGUMENT,
      message: /cannot be snapshotted/,
      after: (b) => assert.deepEqual([...b.snapshots.records.keys()], ['snap-a']),
    },
    {
      name: 'a snapshot that failed for now keeps its record, and the retry finishes it',
      before: (b) => b.faults.failNext('createSnapshot', new Error('cluster busy')),
      call: async (c) => {
        const first = await outcome(c.CreateSnapshot({ name: 'later', source_volume_id: 'vol-a' }));
        assert.equal(codeName(first.code), 'INTERNAL');
        return c.CreateSnapshot({ name: 'later', source_volume_id: 'vol-a' });
      },
      code: status.OK,
      after: (b) => assert.deepEqual([...b.snapshots.records.values()].filter((s) => s.name === 'later').map((s) => s.state), ['ready']),
    },
    {
      name: 'a name freed by a refused snapshot can be used for another volume',
      before: (b) => b.faults.failNext('createSnapshot', new InvalidArgumentError('no')),
      call: async (c) => {
        await outcome(c.CreateSnapshot({ name: 'reuse', source_volume_id: 'vol-a' }));
        return c.CreateSnapshot({ name: 'reuse', source_volume_id: 'vol-blk' });
      },
      code: status.OK,
    },
    { name: 'DeleteSnapshot of an unknown ID is OK', call: (c) => c.DeleteSnapshot({ snapshot_id: 'snap-nope' }), code: status.OK },
    {
      name: 'DeleteSnapshot removes the record and its storage',
      call: (c) => c.DeleteSnapshot({ snapshot_id: 'snap-a' }),
      code: status.OK,
      after: (b) => assert.ok(!b.snapshots.records.has('snap-a') && !b.snapshotStorage.has('snap-a')),
    },
    { name: 'GetSnapshot of an unknown ID is NOT_FOUND', call: (c) => c.GetSnapshot({ snapshot_id: 'snap-nope' }), code: status.NOT_FOUND },
    {
      name: 'ListSnapshots by an unknown snapshot_id is an empty list',
      call: (c) => c.ListSnapshots({ snapshot_id: 'snap-nope' }),
      code: status.OK,
      after: (_b, r) => assert.deepEqual((r as { entries: unknown[] }).entries, []),
    },
    {
      name: 'ListSnapshots by source volume lists only its snapshots',
      before: (b) => b.addSnapshot({ id: 'snap-b', sourceVolumeId: 'vol-blk' }),
      call: (c) => c.ListSnapshots({ source_volume_id: 'vol-blk' }),
      code: status.OK,
      after: (_b, r) => assert.deepEqual((r as { entries: { snapshot: { snapshot_id: string } }[] }).entries.map((e) => e.snapshot.snapshot_id), ['snap-b']),
    },
    { name: 'ListSnapshots with a token we never issued is ABORTED', call: (c) => c.ListSnapshots({ starting_token: 'bogus' }), code: status.ABORTED, message: /starting_token/ },
  ]);
});

describe('driver controller: pagination', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.stop());

  it('ListVolumes pages by max_entries and its tokens walk every ready volume once', async () => {
    const b = new FakeBackend();
    for (const i of [5, 1, 4, 2, 3]) b.addVolume({ id: `vol-${i}` });
    b.addVolume({ id: 'vol-0-creating', state: 'creating' });
    h.use(b);
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const r = await h.client.controller.ListVolumes({ max_entries: 2, starting_token: token });
      assert.ok(r.entries.length <= 2);
      seen.push(...r.entries.map((e) => e.volume!.volume_id));
      token = r.next_token;
      pages++;
    } while (token !== '' && pages < 10);
    assert.deepEqual(seen, ['vol-1', 'vol-2', 'vol-3', 'vol-4', 'vol-5']);
    assert.equal(pages, 3);
  });

  it('a page stays right when entries before it are deleted between calls', async () => {
    const b = new FakeBackend();
    for (const i of [1, 2, 3, 4]) b.addVolume({ id: `vol-${i}` });
    h.use(b);
    const first = await h.client.controller.ListVolumes({ max_entries: 2 });
    await h.client.controller.DeleteVolume({ volume_id: 'vol-1' });
    const second = await h.client.controller.ListVolumes({ max_entries: 2, starting_token: first.next_token });
    assert.deepEqual(
      second.entries.map((e) => e.volume!.volume_id),
      ['vol-3', 'vol-4'],
    );
  });

  it('ListVolumes with a token we never issued is ABORTED', async () => {
    h.use(new FakeBackend());
    const got = await outcome(h.client.controller.ListVolumes({ starting_token: 'page-7' }));
    assert.equal(codeName(got.code), 'ABORTED');
  });

  it('ListSnapshots pages the same way', async () => {
    const b = new FakeBackend();
    b.addVolume({ id: 'vol-a' });
    for (const i of [3, 1, 2]) b.addSnapshot({ id: `snap-${i}`, sourceVolumeId: 'vol-a' });
    h.use(b);
    const p1 = await h.client.controller.ListSnapshots({ max_entries: 2 });
    const p2 = await h.client.controller.ListSnapshots({ max_entries: 2, starting_token: p1.next_token });
    assert.deepEqual([...p1.entries, ...p2.entries].map((e) => e.snapshot!.snapshot_id), ['snap-1', 'snap-2', 'snap-3']);
    assert.equal(p2.next_token, '');
  });
});

describe('driver controller: in-flight calls', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.stop());

  it('while a CreateVolume works, the same name is ABORTED and another name proceeds', async () => {
    const b = new FakeBackend();
    h.use(b);
    const c = h.client.controller;
    const hold = b.faults.blockNext('createVolume');
    const first = c.CreateVolume({ name: 'slow', volume_capabilities: [mount()] });
    await hold.reached;
    const same = await outcome(c.CreateVolume({ name: 'slow', volume_capabilities: [mount()] }));
    assert.equal(codeName(same.code), 'ABORTED');
    assert.match(same.details, /volume name "slow".*in progress/);
    const reserved = [...b.volumes.records.values()].find((v) => v.name === 'slow')!;
    const del = await outcome(c.DeleteVolume({ volume_id: reserved.id }));
    assert.equal(codeName(del.code), 'ABORTED', 'deleting the volume being created waits for no one');
    const other = await c.CreateVolume({ name: 'quick', volume_capabilities: [mount()] });
    assert.equal(b.volumes.records.get(other.volume!.volume_id)?.state, 'ready');
    hold.release();
    const done = await first;
    assert.equal(done.volume?.volume_id, reserved.id);
    assert.equal(b.volumes.records.get(reserved.id)?.state, 'ready');
    const after = await c.CreateVolume({ name: 'slow', volume_capabilities: [mount()] });
    assert.equal(after.volume?.volume_id, reserved.id, 'once it is done, the same name is the same volume');
  });

  it('while a volume expands, delete, snapshot and a clone of it are ABORTED; other volumes go on', async () => {
    const b = new FakeBackend();
    b.addVolume({ id: 'vol-a', capacityBytes: GiB });
    b.addVolume({ id: 'vol-b', capacityBytes: GiB });
    h.use(b);
    const c = h.client.controller;
    const hold = b.faults.blockNext('expandVolume');
    const expand = c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: 2 * GiB } });
    await hold.reached;
    const calls: Promise<unknown>[] = [
      c.DeleteVolume({ volume_id: 'vol-a' }),
      c.CreateSnapshot({ name: 's', source_volume_id: 'vol-a' }),
      c.CreateVolume({ name: 'clone', volume_capabilities: [mount()], volume_content_source: { volume: { volume_id: 'vol-a' } } }),
      c.ControllerExpandVolume({ volume_id: 'vol-a', capacity_range: { required_bytes: 3 * GiB } }),
    ];
    // Each outcome is attached at once: a refusal arrives before the previous one is awaited.
    for (const got of await Promise.all(calls.map((call) => outcome(call)))) {
      assert.equal(codeName(got.code), 'ABORTED', got.details);
      assert.match(got.details, /volume vol-a/);
    }
    const other = await c.ControllerExpandVolume({ volume_id: 'vol-b', capacity_range: { required_bytes: 2 * GiB } });
    assert.equal(Number(other.capacity_bytes), 2 * GiB);
    hold.release();
    assert.equal(Number((await expand).capacity_bytes), 2 * GiB);
    assert.ok(b.volumes.records.has('vol-a'), 'the refused delete did nothing');
    await c.DeleteVolume({ volume_id: 'vol-a' });
    assert.ok(!b.volumes.records.has('vol-a'), 'the lock was released');
  });

  it('while a volume is restored from a snapshot, that snapshot cannot be deleted; others can', async () => {
    const b = new FakeBackend();
    seeded(b);
    b.addSnapshot({ id: 'snap-b', sourceVolumeId: 'vol-a' });
    h.use(b);
    const c = h.client.controller;
    const hold = b.faults.blockNext('createVolume');
    const restore = c.CreateVolume({ name: 'restored', volume_capabilities: [mount()], volume_content_source: { snapshot: { snapshot_id: 'snap-a' } } });
    await hold.reached;
    const refused = await outcome(c.DeleteSnapshot({ snapshot_id: 'snap-a' }));
    assert.equal(codeName(refused.code), 'ABORTED', refused.details);
    assert.match(refused.details, /snapshot snap-a/);
    await c.DeleteSnapshot({ snapshot_id: 'snap-b' });
    hold.release();
    await restore;
    assert.ok(b.snapshots.records.has('snap-a') && !b.snapshots.records.has('snap-b'));
  });

  it('a failed call releases its locks', async () => {
    const b = new FakeBackend();
    b.addVolume({ id: 'vol-a' });
    h.use(b);
    b.faults.failNext('deleteVolume', new Error('io error'));
    assert.equal(codeName((await outcome(h.client.controller.DeleteVolume({ volume_id: 'vol-a' }))).code), 'INTERNAL');
    await h.client.controller.DeleteVolume({ volume_id: 'vol-a' });
    assert.ok(!b.volumes.records.has('vol-a'));
  });

  it('two snapshots of one volume at once: the second is ABORTED, then succeeds on retry', async () => {
    const b = new FakeBackend();
    b.addVolume({ id: 'vol-a' });
    h.use(b);
    const c = h.client.controller;
    const hold = b.faults.blockNext('createSnapshot');
    const first = c.CreateSnapshot({ name: 's1', source_volume_id: 'vol-a' });
    await hold.reached;
    assert.equal(codeName((await outcome(c.CreateSnapshot({ name: 's2', source_volume_id: 'vol-a' }))).code), 'ABORTED');
    assert.equal(codeName((await outcome(c.CreateSnapshot({ name: 's1', source_volume_id: 'vol-a' }))).code), 'ABORTED');
    hold.release();
    const s1 = await first;
    const s2 = await c.CreateSnapshot({ name: 's2', source_volume_id: 'vol-a' });
    assert.notEqual(s1.snapshot?.snapshot_id, s2.snapshot?.snapshot_id);
    assert.equal(b.snapshots.records.size, 2);
  });
});
