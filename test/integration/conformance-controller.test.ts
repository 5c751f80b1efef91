/**
 * CSI Controller service (volumes), written from the spec's error tables and csi-sanity's checks,
 * against the real driver process: CreateVolume, DeleteVolume, ValidateVolumeCapabilities,
 * ListVolumes, ControllerGetVolume, GetCapacity.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { CreateVolumeRequestInput } from '../../src/csi/types.js';
import { blockCap, expectCode, GiB, MiB, mountCap, status, TOPOLOGY_KEY, uniqueName } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';

const run = promisify(execFile);
const backends = testBackends();

for (const backend of backends) describe(`conformance: Controller service (volumes) [${backend.name}]`, { skip: needsRoot }, () => {
  const local = backend.name === 'local';
  let drv: TestDriver;
  const ctl = () => drv.client.controller;

  async function create(req: Partial<CreateVolumeRequestInput> & { name?: string } = {}) {
    const res = await ctl().CreateVolume({
      name: uniqueName('vol'),
      volume_capabilities: [mountCap()],
      capacity_range: { required_bytes: 16 * MiB },
      ...req,
    });
    assert.ok(res.volume, 'CreateVolume must return a volume');
    return res.volume;
  }

  async function allVolumeIds(): Promise<string[]> {
    if (!backend.lists) return backend.volumeIds(drv);
    const res = await ctl().ListVolumes({});
    assert.equal(res.next_token, '', 'ListVolumes without max_entries returns everything in one page');
    return res.entries.map((e) => e.volume!.volume_id);
  }

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-ctl-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('ControllerGetCapabilities lists exactly what is implemented', async () => {
    const { capabilities } = await ctl().ControllerGetCapabilities({});
    const types = capabilities.map((c) => c.rpc?.type).sort();
    if (!local) {
      // ListVolumes, ControllerGetVolume, GetCapacity carry no secrets: rbd cannot read its journal for them.
      assert.deepEqual(types, ['CLONE_VOLUME', 'CREATE_DELETE_SNAPSHOT', 'CREATE_DELETE_VOLUME', 'EXPAND_VOLUME', 'SINGLE_NODE_MULTI_WRITER']);
      for (const [rpc, call] of [
        ['ListVolumes', () => ctl().ListVolumes({})],
        ['ControllerGetVolume', () => ctl().ControllerGetVolume({ volume_id: 'x' })],
        ['GetCapacity', () => ctl().GetCapacity({})],
      ] as const) {
        await expectCode(call(), status.UNIMPLEMENTED, rpc);
      }
    } else assert.deepEqual(types, [
      'CLONE_VOLUME',
      'CREATE_DELETE_SNAPSHOT',
      'CREATE_DELETE_VOLUME',
      'EXPAND_VOLUME',
      'GET_CAPACITY',
      'GET_VOLUME',
      'LIST_SNAPSHOTS',
      'LIST_VOLUMES',
      'SINGLE_NODE_MULTI_WRITER',
      'VOLUME_CONDITION',
    ]);
    // Not advertised, so not served: a CO must not get a half-working answer.
    await expectCode(
      ctl().ControllerPublishVolume({ volume_id: 'fake-vol-id-p', node_id: drv.nodeId, volume_capability: mountCap() }),
      status.UNIMPLEMENTED,
      'ControllerPublishVolume',
    );
    await expectCode(ctl().ControllerModifyVolume({ volume_id: 'fake-vol-id-p' }), status.UNIMPLEMENTED, 'ControllerModifyVolume');
  });

  describe('CreateVolume', () => {
    it('creates a volume of the requested size, accessible from this node only (local) or from anywhere (rbd)', async () => {
      const vol = await create({ capacity_range: { required_bytes: 64 * MiB } });
      assert.ok(vol.volume_id.length > 0);
      assert.ok(vol.capacity_bytes >= 64 * MiB);
      assert.deepEqual(
        vol.accessible_topology.map((t) => t.segments),
        local ? [{ [TOPOLOGY_KEY]: drv.nodeId }] : [],
      );
      assert.equal(vol.content_source, null);
    });

    it('required_bytes == limit_bytes gives exactly that size', async () => {
      for (const size of [16 * MiB, 100 * MiB, GiB]) {
        const vol = await create({ capacity_range: { required_bytes: size, limit_bytes: size } });
        assert.equal(vol.capacity_bytes, size);
      }
    });

    it('honours limit_bytes alone and picks a size when no range is given', async () => {
      const limited = await create({ capacity_range: { limit_bytes: 32 * MiB } });
      assert.ok(limited.capacity_bytes > 0 && limited.capacity_bytes <= 32 * MiB, `got ${limited.capacity_bytes}`);
      const res = await ctl().CreateVolume({ name: uniqueName('norange'), volume_capabilities: [mountCap()] });
      assert.ok(res.volume!.capacity_bytes > 0);
    });

    it('is idempotent by name: the same request returns the same volume', async () => {
      const name = uniqueName('idem');
      const req = { name, volume_capabilities: [mountCap()], capacity_range: { required_bytes: 32 * MiB, limit_bytes: 32 * MiB } };
      const first = await ctl().CreateVolume(req);
      const second = await ctl().CreateVolume(req);
      assert.equal(second.volume!.volume_id, first.volume!.volume_id);
      assert.equal(second.volume!.capacity_bytes, first.volume!.capacity_bytes);
      const ids = await allVolumeIds();
      assert.equal(ids.filter((id) => id === first.volume!.volume_id).length, 1);
    });

    it('accepts csi-sanity style names (uppercase, "+", 128 bytes)', async () => {
      await create({ name: `sanity-max-attach-limit-vol+1-${uniqueName('A')}` });
      const long = `long-${'a'.repeat(123)}`;
      assert.equal(long.length, 128);
      const a = await create({ name: long });
      const b = await create({ name: long });
      assert.equal(a.volume_id, b.volume_id);
    });

    it('same name, incompatible arguments → ALREADY_EXISTS', async () => {
      const name = uniqueName('clash');
      const first = await create({ name, capacity_range: { required_bytes: 32 * MiB, limit_bytes: 32 * MiB } });
      await expectCode(
        create({ name, capacity_range: { required_bytes: 64 * MiB, limit_bytes: 64 * MiB } }),
        status.ALREADY_EXISTS,
        'different size',
      );
      if (backend.block) await expectCode(create({ name, volume_capabilities: [blockCap()], capacity_range: { required_bytes: 32 * MiB } }), status.ALREADY_EXISTS, 'block instead of mount');
      if (backend.namedFs === backend.defaultFs) {
        // Naming the backend's default filesystem is the shape the first call asked for: compatible, the same volume (CSI: OK).
        const same = await create({ name, volume_capabilities: [mountCap(backend.namedFs)], capacity_range: { required_bytes: 32 * MiB, limit_bytes: 32 * MiB } });
        assert.equal(same.volume_id, first.volume_id, 'the default fs named explicitly is the same volume');
      } else {
        await expectCode(
          create({ name, volume_capabilities: [mountCap(backend.namedFs)], capacity_range: { required_bytes: 32 * MiB } }),
          status.ALREADY_EXISTS,
          'another fs type',
        );
      }
      if (backend.deviceFs) await expectCode(create({ name, volume_capabilities: [mountCap('xfs')], capacity_range: { required_bytes: 32 * MiB } }), status.ALREADY_EXISTS, 'xfs instead of the default fs');
      // Parameters count too (local takes none, so there is nothing to differ in).
      const other: Record<string, Record<string, string>> = { rbd: { imageFeatures: 'layering,exclusive-lock' }, cephfs: { subvolumeGroup: 'csi-other' } };
      const parameters = other[backend.name];
      if (parameters) {
        const e = await expectCode(create({ name, capacity_range: { required_bytes: 32 * MiB, limit_bytes: 32 * MiB }, parameters }), status.ALREADY_EXISTS, 'other parameters');
        assert.match(e.message, /parameters/);
      }
      // The sidecars' information (--extra-create-metadata) describes the PVC, not the volume.
      await create({ name, capacity_range: { required_bytes: 32 * MiB, limit_bytes: 32 * MiB }, parameters: { 'csi.storage.k8s.io/pvc/name': 'claim' } });
    });

    it('same name, different content source → ALREADY_EXISTS', async () => {
      const source = await create();
      const snap = await ctl().CreateSnapshot({ name: uniqueName('snap'), source_volume_id: source.volume_id });
      const name = uniqueName('src-clash');
      await create({ name, capacity_range: { required_bytes: 16 * MiB } });
      await expectCode(
        create({ name, capacity_range: { required_bytes: 16 * MiB }, volume_content_source: { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } } }),
        status.ALREADY_EXISTS,
        'now from a snapshot',
      );
      await expectCode(
        create({ name, capacity_range: { required_bytes: 16 * MiB }, volume_content_source: { volume: { volume_id: source.volume_id } } }),
        status.ALREADY_EXISTS,
        'now a clone',
      );
      // And the other way round: created from a snapshot, asked again without one.
      const restored = uniqueName('restored');
      await create({ name: restored, volume_content_source: { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } } });
      await expectCode(create({ name: restored }), status.ALREADY_EXISTS, 'now without a source');
    });

    it('missing or malformed arguments → INVALID_ARGUMENT', async () => {
      const cases: [string, Partial<CreateVolumeRequestInput>][] = [
        ['no name', { name: '' }],
        ['no capabilities', { volume_capabilities: [] }],
        ['capability without access type', { volume_capabilities: [{ access_mode: { mode: 'SINGLE_NODE_WRITER' } }] }],
        ['capability without access mode', { volume_capabilities: [{ mount: {} }] }],
        ['UNKNOWN access mode', { volume_capabilities: [{ mount: {}, access_mode: { mode: 'UNKNOWN' } }] }],
        ['negative required_bytes', { capacity_range: { required_bytes: -1 } }],
        ['negative limit_bytes', { capacity_range: { limit_bytes: -5 * MiB } }],
        ['required_bytes > limit_bytes', { capacity_range: { required_bytes: 64 * MiB, limit_bytes: 32 * MiB } }],
        ['name with "/"', { name: 'a/b' }],
        ['name with ".."', { name: '..' }],
        ['name with "../"', { name: '../../etc' }],
        ['name with NUL', { name: 'a\0b' }],
        ['name longer than 128 bytes', { name: 'n'.repeat(129) }],
        ['unknown parameter', { parameters: { 'no-such-parameter': 'x' } }],
        ['mixed block and mount', { volume_capabilities: [mountCap(), blockCap()] }],
        ['two fs types', { volume_capabilities: [mountCap('ext4'), mountCap('xfs')] }],
        // cephfs serves RWX: a shared filesystem is what it is for.
        ...(backend.multiNodeWriter ? [] : [['MULTI_NODE_MULTI_WRITER', { volume_capabilities: [mountCap('', 'MULTI_NODE_MULTI_WRITER')] }] as [string, Partial<CreateVolumeRequestInput>]]),
        ...(backend.block ? [] : [['block (not served)', { volume_capabilities: [blockCap()] }] as [string, Partial<CreateVolumeRequestInput>]]),
        // A local volume lives on one node; an rbd block volume may be read from many.
        ...(local ? [['MULTI_NODE_READER_ONLY block', { volume_capabilities: [blockCap('MULTI_NODE_READER_ONLY')] }] as [string, Partial<CreateVolumeRequestInput>]] : []),
        ['unsupported fs type', { volume_capabilities: [mountCap('vfat')] }],
        ['content source naming nothing', { volume_content_source: {} }],
      ];
      const before = (await allVolumeIds()).length;
      for (const [what, req] of cases) {
        await expectCode(ctl().CreateVolume({ name: uniqueName('bad'), volume_capabilities: [mountCap()], ...req }), status.INVALID_ARGUMENT, what);
      }
      assert.equal((await allVolumeIds()).length, before, 'a refused CreateVolume must not leave a volume behind');
    });

    it('accepts the parameters external-provisioner adds (csi.storage.k8s.io/*)', async () => {
      await create({ parameters: { 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default' } });
    });

    it('a size larger than the pool → OUT_OF_RANGE, and nothing is created', async () => {
      const before = (await allVolumeIds()).length;
      // local: more than its 4 GiB pool; rbd (thin, may overcommit the cluster): more than a volume can be.
      const tooBig = local ? 1024 * GiB : 2 ** 53;
      await expectCode(create({ capacity_range: { required_bytes: tooBig } }), status.OUT_OF_RANGE, 'beyond the pool');
      if (backend.block) await expectCode(create({ volume_capabilities: [blockCap()], capacity_range: { required_bytes: tooBig } }), status.OUT_OF_RANGE, 'block beyond the pool');
      assert.equal((await allVolumeIds()).length, before);
    });

    it('a range narrower than the size granularity (local 1 MiB, rbd and cephfs 4 MiB) → OUT_OF_RANGE; its multiples are exact', async () => {
      const unit = local ? MiB : 4 * MiB;
      const before = (await allVolumeIds()).length;
      const e = await expectCode(
        create({ capacity_range: { required_bytes: 64 * MiB + 1, limit_bytes: 64 * MiB + unit - 1 } }),
        status.OUT_OF_RANGE,
        'no multiple of the granularity in the range',
      );
      assert.match(e.message, /limit_bytes/);
      assert.equal((await allVolumeIds()).length, before, 'nothing is created');
      const exact = await create({ capacity_range: { required_bytes: 64 * MiB + 1, limit_bytes: 64 * MiB + unit } });
      assert.equal(exact.capacity_bytes, 64 * MiB + unit);
    });

    if (!local) it('without the class parameters the backend needs → INVALID_ARGUMENT naming them, and nothing is created', async () => {
      // What a StorageClass without parameters sends: the secrets, nothing else. ceph-csi requires the same.
      const ceph = drv.ceph!;
      const secrets = backend.name === 'cephfs' ? ceph.cephfsSecrets : ceph.secrets;
      const full = backend.name === 'cephfs' ? ceph.cephfsParameters : ceph.parameters;
      const before = (await allVolumeIds()).length;
      const rawCreate = (parameters: Record<string, string>) =>
        drv.rawClient.controller.CreateVolume({ name: uniqueName('noparams'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 16 * MiB }, secrets, parameters });
      assert.match((await expectCode(rawCreate({}), status.INVALID_ARGUMENT, 'no parameters')).message, /clusterID is required/);
      const second = backend.name === 'cephfs' ? 'fsName' : 'pool';
      const { [second]: _dropped, ...withoutSecond } = full;
      assert.match((await expectCode(rawCreate(withoutSecond), status.INVALID_ARGUMENT, `no ${second}`)).message, new RegExp(`${second} is required`));
      const unknown = await expectCode(rawCreate({ ...full, clusterID: 'no-such-cluster' }), status.INVALID_ARGUMENT, 'an unknown clusterID');
      assert.match(unknown.message, /no-such-cluster/);
      assert.equal((await allVolumeIds()).length, before, 'nothing is created');
      // The same class parameters, sent as they are, work: the refusals were about what was missing.
      const ok = await rawCreate(full);
      await drv.rawClient.controller.DeleteVolume({ volume_id: ok.volume!.volume_id, secrets });
    });

    if (backend.deviceFs) it('a limit below the filesystem minimum → OUT_OF_RANGE (xfs needs 300 MiB)', async () => {
      await expectCode(
        create({ volume_capabilities: [mountCap('xfs')], capacity_range: { required_bytes: 16 * MiB, limit_bytes: 16 * MiB } }),
        status.OUT_OF_RANGE,
        'xfs of 16 MiB',
      );
    });

    if (!local) {
      it('topology: none is advertised, so requirements a CO sends anyway do not constrain the volume', async () => {
        const vol = await create({ accessibility_requirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'some-other-node' } }] } });
        assert.deepEqual(vol.accessible_topology, []);
      });
    }

    if (local) it('topology: a requisite without this node → RESOURCE_EXHAUSTED; one with it → placed here', async () => {
      await expectCode(
        create({ accessibility_requirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'some-other-node' } }] } }),
        status.RESOURCE_EXHAUSTED,
        'requisite elsewhere',
      );
      const here = { segments: { [TOPOLOGY_KEY]: drv.nodeId } };
      const vol = await create({
        accessibility_requirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'other' } }, here], preferred: [here] },
      });
      assert.deepEqual(
        vol.accessible_topology.map((t) => t.segments),
        [{ [TOPOLOGY_KEY]: drv.nodeId }],
      );
    });

    it('a source that does not exist → NOT_FOUND', async () => {
      await expectCode(
        create({ volume_content_source: { snapshot: { snapshot_id: 'non-existing-snapshot-id' } } }),
        status.NOT_FOUND,
        'unknown snapshot',
      );
      await expectCode(create({ volume_content_source: { volume: { volume_id: 'fake-vol-id-0123456789' } } }), status.NOT_FOUND, 'unknown volume');
    });
  });

  describe('DeleteVolume', () => {
    it('deletes; deleting again, or an unknown id, is OK; no id → INVALID_ARGUMENT', async () => {
      const vol = await create();
      await ctl().DeleteVolume({ volume_id: vol.volume_id });
      assert.ok(!(await allVolumeIds()).includes(vol.volume_id));
      assert.equal(await backend.volume(drv, vol.volume_id), undefined, 'gone after delete');
      await ctl().DeleteVolume({ volume_id: vol.volume_id });
      await ctl().DeleteVolume({ volume_id: 'fake-vol-id' });
      await expectCode(ctl().DeleteVolume({ volume_id: '' }), status.INVALID_ARGUMENT, 'no id');
    });

    it('frees the name: creating it again gives a new, empty volume', async () => {
      const name = uniqueName('reuse');
      const first = await create({ name });
      await ctl().DeleteVolume({ volume_id: first.volume_id });
      const second = await create({ name });
      assert.notEqual(second.volume_id, first.volume_id);
    });

    it('a staged volume cannot be deleted (FAILED_PRECONDITION) and is intact afterwards', async () => {
      for (const cap of [mountCap(), mountCap(backend.namedFs), ...(backend.block ? [blockCap()] : [])]) {
        const vol = await create({ volume_capabilities: [cap], capacity_range: { required_bytes: 32 * MiB } });
        const staging = drv.stagingDir(uniqueName('stg'));
        await drv.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: cap });
        await expectCode(ctl().DeleteVolume({ volume_id: vol.volume_id }), status.FAILED_PRECONDITION, `delete staged ${JSON.stringify(cap)}`);
        assert.equal((await backend.volume(drv, vol.volume_id))?.healthy, true, 'intact');
        await drv.client.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging });
        await ctl().DeleteVolume({ volume_id: vol.volume_id });
        assert.ok(!(await allVolumeIds()).includes(vol.volume_id));
      }
    });

    if (backend.name === 'cephfs') {
      it('a subvolume removed behind the driver’s back: DeleteVolume still succeeds and clears the journal', async () => {
        const vol = await create();
        const ceph = (await import('../support/ceph.js')).cephOf(drv);
        await ceph.ceph(['fs', 'subvolume', 'rm', vol.volume_context['fsName']!, vol.volume_context['subvolumeName']!, '--group_name', vol.volume_context['subvolumeGroup']!]);
        assert.equal((await backend.volume(drv, vol.volume_id))?.healthy, false);
        await ctl().DeleteVolume({ volume_id: vol.volume_id });
        assert.ok(!(await allVolumeIds()).includes(vol.volume_id));
      });
    }

    if (backend.name === 'rbd') {
      it('an image removed behind the driver’s back: DeleteVolume still succeeds and clears the journal', async () => {
        const vol = await create();
        const ceph = (await import('../support/ceph.js')).cephOf(drv);
        await ceph.rbd(['rm', `${vol.volume_context['pool']}/${vol.volume_context['imageName']}`]);
        assert.equal((await backend.volume(drv, vol.volume_id))?.healthy, false);
        await ctl().DeleteVolume({ volume_id: vol.volume_id });
        assert.ok(!(await allVolumeIds()).includes(vol.volume_id));
      });
    }

    if (local) it('storage removed behind the driver’s back: condition abnormal, and DeleteVolume still succeeds', async () => {
      const vol = await create();
      await run('btrfs', ['subvolume', 'delete', join(drv.localDir, 'pool', 'volumes', vol.volume_id)]);
      const got = await ctl().ControllerGetVolume({ volume_id: vol.volume_id });
      assert.equal(got.status?.volume_condition?.abnormal, true);
      assert.ok((got.status?.volume_condition?.message ?? '').length > 0);
      await ctl().DeleteVolume({ volume_id: vol.volume_id });
      assert.ok(!(await allVolumeIds()).includes(vol.volume_id));
    });
  });

  describe('ValidateVolumeCapabilities', () => {
    it('confirms the capabilities a volume has', async () => {
      const vol = await create();
      const res = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap()] });
      assert.ok(res.confirmed, `expected confirmed, got message ${res.message}`);
      assert.equal(res.confirmed.volume_capabilities.length, 1);
      assert.equal(res.confirmed.volume_capabilities[0]!.access_mode?.mode, 'SINGLE_NODE_WRITER');
      const named = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap(backend.defaultFs, 'SINGLE_NODE_READER_ONLY')] });
      assert.ok(named.confirmed, `fs_type ${backend.defaultFs} on a ${backend.defaultFs} volume: ${named.message}`);
    });

    it('does not confirm what the volume cannot do, and says why', async () => {
      const vol = await create();
      const cases: [string, ReturnType<typeof mountCap>][] = [
        ['block on a mount volume', blockCap()],
        ['another fs type', mountCap('xfs')],
        ...(backend.multiNodeWriter ? [] : [['MULTI_NODE_MULTI_WRITER', mountCap('', 'MULTI_NODE_MULTI_WRITER')] as [string, ReturnType<typeof mountCap>]]),
      ];
      for (const [what, cap] of cases) {
        const res = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap(), cap] });
        assert.equal(res.confirmed, null, `${what} must not be confirmed`);
        assert.ok(res.message.length > 0, `${what}: a message should say why`);
      }
      // Confirmed means all of the request: parameters and a volume context the volume was not made with are not.
      const others: [string, { parameters?: Record<string, string>; volume_context?: Record<string, string>; mutable_parameters?: Record<string, string> }, RegExp][] = [
        ['a parameter it was not created with', { parameters: { colour: 'blue' } }, /parameter colour null, not "blue"/],
        // MODIFY_VOLUME is not advertised: a volume has no mutable parameters to confirm.
        ['mutable parameters', { mutable_parameters: { iops: '3000' } }, /no mutable parameters/],
        ['a volume context that is not its own', { volume_context: { ...vol.volume_context, colour: 'blue' } }, /volume_context colour "blue"/],
      ];
      for (const [what, extra, re] of others) {
        const res = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap()], ...extra });
        assert.equal(res.confirmed, null, `${what} must not be confirmed`);
        assert.match(res.message, re, what);
      }
      if (!local) {
        // The class parameters it was made with confirm; one of them with another value does not.
        const made = backend.name === 'cephfs' ? drv.ceph!.cephfsParameters : drv.ceph!.parameters;
        const same = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap()], parameters: { ...made, 'csi.storage.k8s.io/pvc/name': 'x' } });
        assert.ok(same.confirmed, `its own class parameters: ${same.message}`);
        const key = backend.name === 'cephfs' ? 'fsName' : 'pool';
        const other = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap()], parameters: { ...made, [key]: 'elsewhere' } });
        assert.equal(other.confirmed, null);
        assert.match(other.message, new RegExp(`parameter ${key} .*"elsewhere"`));
      }
      const own = await ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap()], volume_context: vol.volume_context });
      assert.ok(own.confirmed, `its own volume context: ${own.message}`);
      assert.deepEqual(own.confirmed.volume_context, vol.volume_context);
    });

    it('unknown volume → NOT_FOUND; no id or no capabilities → INVALID_ARGUMENT', async () => {
      await expectCode(ctl().ValidateVolumeCapabilities({ volume_id: 'fake-vol-id-abc', volume_capabilities: [mountCap()] }), status.NOT_FOUND, 'unknown');
      await expectCode(ctl().ValidateVolumeCapabilities({ volume_id: '', volume_capabilities: [mountCap()] }), status.INVALID_ARGUMENT, 'no id');
      const vol = await create();
      await expectCode(ctl().ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [] }), status.INVALID_ARGUMENT, 'no caps');
    });
  });

  if (backend.lists) describe('ListVolumes', () => {
    it('lists every volume once, with size and a normal condition', async () => {
      const made = [];
      for (let i = 0; i < 3; i++) made.push(await create({ capacity_range: { required_bytes: (20 + i) * MiB, limit_bytes: (20 + i) * MiB } }));
      const res = await ctl().ListVolumes({});
      const ids = res.entries.map((e) => e.volume!.volume_id);
      assert.equal(new Set(ids).size, ids.length, 'no duplicates');
      for (const v of made) {
        const entry = res.entries.find((e) => e.volume?.volume_id === v.volume_id);
        assert.ok(entry, `${v.volume_id} listed`);
        assert.equal(entry.volume!.capacity_bytes, v.capacity_bytes);
        assert.equal(entry.status?.volume_condition?.abnormal, false, 'VOLUME_CONDITION is advertised: status must carry it');
      }
    });

    it('the count moves by exactly one with each create and delete (csi-sanity presence check)', async () => {
      const n = (await allVolumeIds()).length;
      const vol = await create({ name: `sanity-${uniqueName('presence')}` });
      assert.equal((await allVolumeIds()).length, n + 1);
      await ctl().DeleteVolume({ volume_id: vol.volume_id });
      assert.equal((await allVolumeIds()).length, n);
    });

    it('pages of max_entries=2 walk every volume exactly once', async () => {
      for (let i = 0; i < 5; i++) await create();
      const all = await allVolumeIds();
      assert.ok(all.length >= 5);
      const seen: string[] = [];
      const sizes: number[] = [];
      let token = '';
      for (let page = 0; page < 1000; page++) {
        const res = await ctl().ListVolumes({ max_entries: 2, starting_token: token });
        sizes.push(res.entries.length);
        seen.push(...res.entries.map((e) => e.volume!.volume_id));
        if (res.next_token === '') break;
        token = res.next_token;
      }
      assert.ok(sizes.slice(0, -1).every((n) => n === 2), `full pages hold exactly 2: ${sizes.join(',')}`);
      assert.ok(sizes.at(-1)! >= 1 && sizes.at(-1)! <= 2, `last page: ${sizes.join(',')}`);
      assert.equal(new Set(seen).size, seen.length, 'no volume twice');
      assert.deepEqual([...seen].sort(), [...all].sort());
    });

    it('a volume deleted between pages neither duplicates nor hides the others', async () => {
      for (let i = 0; i < 4; i++) await create();
      const all = await allVolumeIds();
      const first = await ctl().ListVolumes({ max_entries: 2 });
      assert.equal(first.entries.length, 2);
      assert.notEqual(first.next_token, '');
      const firstIds = first.entries.map((e) => e.volume!.volume_id);
      // Delete one already returned and one not yet returned.
      const unseen = all.filter((id) => !firstIds.includes(id));
      await ctl().DeleteVolume({ volume_id: firstIds[0]! });
      await ctl().DeleteVolume({ volume_id: unseen[0]! });
      const rest: string[] = [];
      let token = first.next_token;
      while (token !== '') {
        const res = await ctl().ListVolumes({ max_entries: 2, starting_token: token });
        rest.push(...res.entries.map((e) => e.volume!.volume_id));
        token = res.next_token;
      }
      assert.ok(!rest.includes(unseen[0]!), 'a volume deleted before its page must not be listed');
      const seen = [...firstIds, ...rest];
      assert.equal(new Set(seen).size, seen.length, 'no duplicates');
      for (const id of unseen.slice(1)) assert.ok(rest.includes(id), `${id} still listed`);
    });

    it('a token it did not issue → ABORTED; negative max_entries → INVALID_ARGUMENT', async () => {
      await expectCode(ctl().ListVolumes({ starting_token: 'invalid-token' }), status.ABORTED, 'invalid-token');
      await expectCode(ctl().ListVolumes({ max_entries: -1 }), status.INVALID_ARGUMENT, 'max_entries -1');
    });
  });

  if (backend.lists) describe('ControllerGetVolume', () => {
    it('returns the volume with a normal condition', async () => {
      const vol = await create({ capacity_range: { required_bytes: 24 * MiB, limit_bytes: 24 * MiB } });
      const got = await ctl().ControllerGetVolume({ volume_id: vol.volume_id });
      assert.equal(got.volume?.volume_id, vol.volume_id);
      assert.equal(got.volume?.capacity_bytes, 24 * MiB);
      assert.equal(got.status?.volume_condition?.abnormal, false);
    });

    it('unknown → NOT_FOUND; no id → INVALID_ARGUMENT', async () => {
      await expectCode(ctl().ControllerGetVolume({ volume_id: 'fake-vol-id-0000000000' }), status.NOT_FOUND, 'unknown');
      await expectCode(ctl().ControllerGetVolume({ volume_id: '' }), status.INVALID_ARGUMENT, 'no id');
    });
  });

  if (backend.lists) describe('GetCapacity', () => {
    it('reports the free space of the pool here, and none on another node', async () => {
      const any = await ctl().GetCapacity({});
      assert.ok(any.available_capacity > 0, 'an empty request must report capacity');
      assert.ok(any.available_capacity <= 4 * GiB, `a 4 GiB pool cannot offer ${any.available_capacity}`);
      const here = await ctl().GetCapacity({ accessible_topology: { segments: { [TOPOLOGY_KEY]: drv.nodeId } }, volume_capabilities: [mountCap()] });
      assert.ok(here.available_capacity > 0);
      assert.ok((here.maximum_volume_size?.value ?? 0) > 0 && (here.maximum_volume_size?.value ?? 0) <= 4 * GiB);
      const elsewhere = await ctl().GetCapacity({ accessible_topology: { segments: { [TOPOLOGY_KEY]: 'another-node' } } });
      assert.equal(elsewhere.available_capacity, 0);
      const unsupported = await ctl().GetCapacity({ volume_capabilities: [mountCap('', 'MULTI_NODE_MULTI_WRITER')] });
      assert.equal(unsupported.available_capacity, 0, 'no capacity for volumes it cannot create');
    });
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
