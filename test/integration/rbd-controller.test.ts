/**
 * The rbd backend as a CO and a Ceph admin see it, against a real cluster: what it advertises,
 * ceph-csi's volume IDs, image names and omap journal, idempotency across restarts and controller
 * replicas, StorageClass parameters, and every failure as a clear gRPC status (missing secrets or
 * parameters, wrong key, unreachable monitors, an image still in use, IDs it never issued).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { blockCap, expectCode, expectOkOr, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { generateCephxKey } from '../../src/ceph/keyring.js';
import { useCephCluster } from '../support/ceph.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();
const ID = /^0001-([0-9a-f]{4})-(.+)-([0-9a-f]{16})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

describe('rbd controller: ceph-csi compatibility and errors', { skip: needsRoot, timeout: 240_000 }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const volumes = new Set<string>();

  async function create(name = uniqueName('ctl'), cap = mountCap('ext4'), bytes = 16 * MiB, parameters: Record<string, string> = {}) {
    const res = await ctl().CreateVolume({ name, volume_capabilities: [cap], capacity_range: { required_bytes: bytes }, parameters });
    volumes.add(res.volume!.volume_id);
    return res.volume!;
  }

  const poolId = async (pool: string) => {
    const df = JSON.parse(await ceph.rados(['df', '--format', 'json'])) as { pools: { name: string; id: number }[] };
    return df.pools.find((p) => p.name === pool)!.id;
  };

  before(async () => {
    drv = await startTestDriver({ backend: 'rbd', ceph, prefix: 'stowage-rbdc-' });
  });

  after(async () => {
    for (const id of volumes) await ctl().DeleteVolume({ volume_id: id }).catch(() => undefined);
    await drv?.cleanup();
  });

  it('advertises what it serves: group snapshots, no topology, no list/get/capacity (they carry no secrets)', async () => {
    const info = await drv.client.identity.GetPluginInfo({});
    assert.equal(info.name, 'rbd.csi.stowage.dev');
    const plugin = await drv.client.identity.GetPluginCapabilities({});
    assert.deepEqual(
      plugin.capabilities.map((c) => c.service?.type ?? `expansion:${c.volume_expansion?.type}`).sort(),
      ['CONTROLLER_SERVICE', 'GROUP_CONTROLLER_SERVICE', 'expansion:ONLINE'],
    );
    const caps = (await ctl().ControllerGetCapabilities({})).capabilities.map((c) => c.rpc?.type).sort();
    assert.deepEqual(caps, ['CLONE_VOLUME', 'CREATE_DELETE_SNAPSHOT', 'CREATE_DELETE_VOLUME', 'EXPAND_VOLUME', 'SINGLE_NODE_MULTI_WRITER']);
    await expectCode(ctl().ListVolumes({}), status.UNIMPLEMENTED, 'ListVolumes');
    await expectCode(ctl().GetCapacity({}), status.UNIMPLEMENTED, 'GetCapacity');
    await expectCode(ctl().ControllerGetVolume({ volume_id: 'x' }), status.UNIMPLEMENTED, 'ControllerGetVolume');
    await expectCode(ctl().ListSnapshots({}), status.UNIMPLEMENTED, 'ListSnapshots');
    const nodeInfo = await drv.client.node.NodeGetInfo({});
    assert.equal(nodeInfo.node_id, drv.nodeId);
    assert.equal(nodeInfo.accessible_topology, null, 'no topology: rbd volumes are reachable from every node');
  });

  it('volume IDs, image names and the omap journal are ceph-csi’s', async () => {
    const name = uniqueName('layout');
    const vol = await create(name, blockCap(), 10 * MiB + 1);
    const m = ID.exec(vol.volume_id);
    assert.ok(m, `ceph-csi volume ID: ${vol.volume_id}`);
    assert.equal(parseInt(m[1]!, 16), ceph.info.clusterID.length);
    assert.equal(m[2], ceph.info.clusterID);
    assert.equal(parseInt(m[3]!, 16), await poolId(ceph.info.pool));
    const uuid = m[4]!;
    assert.equal(vol.capacity_bytes, 12 * MiB, 'rounded up to whole 4 MiB objects');
    assert.deepEqual(vol.accessible_topology, []);
    assert.equal(vol.volume_context['imageName'], `csi-vol-${uuid}`);
    assert.equal(vol.volume_context['pool'], ceph.info.pool);
    assert.equal(vol.volume_context['clusterID'], ceph.info.clusterID);

    const image = JSON.parse(await ceph.rbd(['info', '--format', 'json', `${ceph.info.pool}/csi-vol-${uuid}`])) as { size: number; order: number; features: string[] };
    assert.equal(image.size, 12 * MiB);
    assert.equal(image.order, 22);
    assert.deepEqual(image.features, ['layering'], 'imageFeatures defaults to layering');
    assert.equal(await ceph.omapValue('csi.volumes.default', `csi.volume.${name}`), uuid, 'request name → uuid');
    assert.equal(await ceph.omapValue(`csi.volume.${uuid}`, 'csi.volname'), name);
    assert.equal(await ceph.omapValue(`csi.volume.${uuid}`, 'csi.imagename'), `csi-vol-${uuid}`);
    const keys = await ceph.omapKeys(`csi.volume.${uuid}`);
    for (const k of ['csi.imagename', 'csi.volname', 'stowage.record']) assert.ok(keys.includes(k), `csi.volume.${uuid} has ${k}: ${keys.join(', ')}`);

    const ext4 = await create(uniqueName('min'), mountCap(), 1 * MiB);
    assert.equal(ext4.capacity_bytes, 16 * MiB, 'ext4 (the default fs) needs 16 MiB');
  });

  it('idempotent by name across a restart and across two controller replicas', async () => {
    const name = uniqueName('idem');
    const first = await create(name);
    await drv.restart();
    assert.equal((await create(name)).volume_id, first.volume_id, 'after a restart');
    const replica = await startTestDriver({ backend: 'rbd', ceph, prefix: 'stowage-rbdr-', args: ['--controller'] });
    try {
      assert.equal(
        (await replica.client.controller.CreateVolume({ name, volume_capabilities: [mountCap('ext4')], capacity_range: { required_bytes: 16 * MiB } })).volume?.volume_id,
        first.volume_id,
        'on another replica',
      );
      // Both replicas at once for a new name: one volume, whoever wins.
      for (let i = 0; i < 3; i++) {
        const racing = uniqueName('race');
        const req = { name: racing, volume_capabilities: [mountCap('ext4')], capacity_range: { required_bytes: 16 * MiB } };
        const results = await Promise.allSettled([ctl().CreateVolume(req), replica.client.controller.CreateVolume(req)]);
        const ids = new Set<string>();
        for (const r of results) {
          if (r.status === 'fulfilled') ids.add(r.value.volume!.volume_id);
          else assert.equal((r.reason as { code?: number }).code, status.ABORTED, `the loser is ABORTED: ${String(r.reason)}`);
        }
        const again = await ctl().CreateVolume(req);
        ids.add(again.volume!.volume_id);
        volumes.add(again.volume!.volume_id);
        assert.equal(ids.size, 1, `one volume for ${racing}: ${[...ids].join(', ')}`);
      }
    } finally {
      await replica.cleanup();
    }
    const images = (await ceph.images()).images;
    for (const id of volumes) assert.ok(images.includes(`csi-vol-${id.slice(-36)}`), `image of ${id}`);
    assert.equal(images.filter((i) => i.startsWith('csi-vol-')).length, volumes.size, 'exactly one image per volume');
  });

  it('StorageClass parameters: imageFeatures, dataPool, mounter; wrong ones → INVALID_ARGUMENT naming them', async () => {
    const feat = await create(uniqueName('feat'), blockCap(), 8 * MiB, { imageFeatures: 'layering,exclusive-lock,object-map,fast-diff,deep-flatten' });
    const image = JSON.parse(await ceph.rbd(['info', '--format', 'json', `${ceph.info.pool}/${feat.volume_context['imageName']}`])) as { features: string[] };
    assert.deepEqual(image.features.sort(), ['deep-flatten', 'exclusive-lock', 'fast-diff', 'layering', 'object-map']);

    await ceph.ceph(['osd', 'pool', 'create', 'stowage-data', '8']);
    const dp = await create(uniqueName('dp'), blockCap(), 8 * MiB, { dataPool: 'stowage-data', mounter: 'rbd', imageFormat: '2' });
    const dpInfo = JSON.parse(await ceph.rbd(['info', '--format', 'json', `${ceph.info.pool}/${dp.volume_context['imageName']}`])) as { data_pool?: string };
    assert.equal(dpInfo.data_pool, 'stowage-data');

    const cases: [string, Record<string, string>, RegExp][] = [
      ['no clusterID', { clusterID: '' }, /clusterID is required/],
      ['unknown clusterID', { clusterID: 'no-such-cluster' }, /clusterID "no-such-cluster" is not in the ceph config/],
      ['no pool', { pool: '' }, /pool is required/],
      ['a pool that does not exist', { pool: 'no-such-pool' }, /pool "no-such-pool" does not exist/],
      ['a dataPool that does not exist', { dataPool: 'no-such-pool' }, /dataPool "no-such-pool" does not exist/],
      ['an unknown parameter', { colour: 'blue' }, /parameter "colour"/],
      ['an unknown feature', { imageFeatures: 'layering,wings' }, /imageFeatures: unknown feature "wings"/],
      ['a feature without what it needs', { imageFeatures: 'layering,object-map' }, /"object-map" needs "exclusive-lock"/],
      ['imageFormat 1', { imageFormat: '1' }, /imageFormat/],
      ['an unknown mounter', { mounter: 'nfs' }, /mounter "nfs"/],
    ];
    for (const [what, parameters, re] of cases) {
      const e = await expectCode(create(uniqueName('bad'), mountCap('ext4'), 16 * MiB, parameters), status.INVALID_ARGUMENT, what);
      assert.match(e.message, re, what);
    }
    const leftover = (await ceph.images()).images.filter((i) => i.startsWith('csi-vol-'));
    assert.equal(leftover.length, volumes.size, 'refused creates made no image');
  });

  it('secrets: missing → INVALID_ARGUMENT naming them; a wrong key → PERMISSION_DENIED', async () => {
    const raw = drv.rawClient.controller;
    const req = { name: uniqueName('sec'), volume_capabilities: [mountCap('ext4')], parameters: ceph.parameters };
    assert.match((await expectCode(raw.CreateVolume(req), status.INVALID_ARGUMENT, 'no secrets')).message, /userID/);
    assert.match(
      (await expectCode(raw.CreateVolume({ ...req, secrets: { userID: ceph.info.userID } }), status.INVALID_ARGUMENT, 'no key')).message,
      /userKey/,
    );
    const wrong = { userID: ceph.info.userID, userKey: generateCephxKey() };
    const denied = await expectCode(raw.CreateVolume({ ...req, secrets: wrong }), status.PERMISSION_DENIED, 'wrong key');
    assert.match(denied.message, /client\.admin/);
    const garbled = await expectCode(raw.CreateVolume({ ...req, secrets: { ...wrong, userKey: 'not a key' } }), status.INVALID_ARGUMENT, 'not a key');
    assert.match(garbled.message, /userKey/);
    assert.ok(!denied.message.includes(wrong.userKey) && !drv.logs().includes(wrong.userKey) && !drv.logs().includes(ceph.info.userKey), 'keys never in messages or logs');
    const vol = await create();
    await expectCode(
      drv.rawClient.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: drv.stagingDir('nosec'), volume_capability: mountCap('ext4') }),
      status.INVALID_ARGUMENT,
      'NodeStage without node-stage secrets',
    );
  });

  it('unreachable monitors → UNAVAILABLE naming them, within --ceph-timeout', async () => {
    const dead = await startTestDriver({
      backend: 'rbd',
      ceph,
      prefix: 'stowage-rbdu-',
      cephTimeoutSeconds: 2,
      cephConfig: [{ clusterID: ceph.info.clusterID, monitors: ['127.0.0.1:9'] }],
    });
    try {
      const started = Date.now();
      const e = await expectCode(
        dead.client.controller.CreateVolume({ name: uniqueName('dead'), volume_capabilities: [mountCap('ext4')] }),
        status.UNAVAILABLE,
        'no monitor answers',
      );
      assert.match(e.message, /127\.0\.0\.1:9/);
      assert.ok(Date.now() - started < 15_000, `answered in ${Date.now() - started} ms`);
    } finally {
      await dead.cleanup();
    }
  });

  it('IDs it never issued: lookups NOT_FOUND, deletes OK; a well-formed unknown ID too', async () => {
    const unknown = `0001-0024-${ceph.info.clusterID}-${(await poolId(ceph.info.pool)).toString(16).padStart(16, '0')}-00000000-0000-4000-8000-000000000000`;
    for (const id of ['fake-vol-id', 'fake-vol-id-1234567890', unknown]) {
      await ctl().DeleteVolume({ volume_id: id });
      await ctl().DeleteSnapshot({ snapshot_id: id });
      await expectCode(ctl().ValidateVolumeCapabilities({ volume_id: id, volume_capabilities: [mountCap()] }), status.NOT_FOUND, `validate ${id}`);
      await expectCode(
        ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 64 * MiB } }),
        status.NOT_FOUND,
        `expand ${id}`,
      );
      await expectCode(ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: id }), status.NOT_FOUND, `snapshot of ${id}`);
      await expectCode(
        drv.client.node.NodeStageVolume({ volume_id: id, staging_target_path: drv.stagingDir('unk'), volume_capability: mountCap() }),
        status.NOT_FOUND,
        `stage ${id}`,
      );
      await expectOkOr(drv.client.node.NodeUnstageVolume({ volume_id: id, staging_target_path: drv.stagingDir('unk') }), [status.NOT_FOUND], `unstage ${id}`);
      await expectOkOr(drv.client.node.NodeUnpublishVolume({ volume_id: id, target_path: drv.targetDir('unk') }), [status.NOT_FOUND], `unpublish ${id}`);
    }
  });

  it('DeleteVolume of an image still mapped → FAILED_PRECONDITION naming the watcher; fine once unstaged', async () => {
    const vol = await create(uniqueName('busy'), blockCap(), 8 * MiB);
    const staging = drv.stagingDir(uniqueName('busy'));
    await drv.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: blockCap() });
    const e = await expectCode(ctl().DeleteVolume({ volume_id: vol.volume_id }), status.FAILED_PRECONDITION, 'delete while staged');
    assert.match(e.message, /still being used: watched by client\.\d+ at /);
    await drv.client.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging });
    await ctl().DeleteVolume({ volume_id: vol.volume_id });
    volumes.delete(vol.volume_id);
    assert.ok(!(await ceph.images()).images.includes(vol.volume_context['imageName']!));
  });

  it('everything deleted: no image, journal key or object is left', async () => {
    for (const id of volumes) await ctl().DeleteVolume({ volume_id: id });
    volumes.clear();
    const { images, trash } = await ceph.images();
    assert.deepEqual(images.filter((i) => i.startsWith('csi-')), []);
    assert.deepEqual(trash, []);
    assert.deepEqual(await ceph.omapKeys('csi.volumes.default'), []);
    assert.deepEqual(await ceph.objects('csi.volume.'), []);
  });
});
