/**
 * The rbd backend's cheaper clone path against a real cluster: CreateSnapshot and restores no
 * longer open the new image to mark it whole or to find its depth, so this checks what that
 * changed. The marker is written and read with cls_rbd calls on the ID and header objects
 * (header.ts): librbd must see what they write and they must see what librbd (and so every earlier
 * version of this driver) wrote, or an upgrade would remove whole clones as half-made ones. The
 * depth is now walked from the parent: with --rbd-max-clone-depth 1 a restore (depth 2) is
 * flattened while a snapshot image and a clone of a plain volume (depth 1) keep their parent; with
 * 2 nothing is (the depth is counted, not overcounted). Everything made is deleted and checked gone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rados, type IoCtx } from '../../src/driver/backends/ceph/rados.js';
import { cloneImage, createImage, FEATURES, Image, removeImage } from '../../src/driver/backends/rbd/librbd.js';
import { headerMetadataGet, headerMetadataSet, headerParent, headerSize, imageId } from '../../src/driver/backends/rbd/header.js';
import { blockCap, MiB, uniqueName } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();

describe('rbd clone path: the whole-clone marker on the header, depth from the parent', { skip: needsRoot, timeout: 240_000 }, () => {
  let rados: Rados;
  let io: IoCtx;

  before(async () => {
    const { monitors, userID, userKey, pool } = ceph.info;
    rados = await Rados.connect({ monitors, user: userID, key: userKey, timeoutSeconds: 30 });
    io = await rados.ioctx((await rados.poolId(pool))!, pool);
  });

  after(async () => {
    await rados?.shutdown();
  });

  it('the header calls and librbd agree (marker both ways, size, parent); absent images and keys read as undefined', async () => {
    const name = uniqueName('hdr');
    await createImage(io, name, 8 * MiB, { features: FEATURES['layering']!, order: 22 });
    try {
      const id = await imageId(io, name);
      assert.equal(id, await Image.with(io, name, async (img) => img.id(), { readOnly: true }), 'rbd.get_id is the ID librbd reports');
      // Written by librbd (what earlier versions of the driver did), read through the header.
      await Image.with(io, name, (img) => img.metadataSet('stowage.complete', name));
      assert.equal(await headerMetadataGet(io, id!, 'stowage.complete'), name);
      // Written through the header, read by librbd and by the rbd CLI.
      await headerMetadataSet(io, id!, 'stowage.other', 'v');
      assert.equal(await Image.with(io, name, (img) => img.metadataGet('stowage.other'), { readOnly: true }), 'v');
      assert.equal((await ceph.rbd(['image-meta', 'get', `${ceph.info.pool}/${name}`, 'stowage.other'])).trim(), 'v');
      assert.equal(await headerMetadataGet(io, id!, 'stowage.never-set'), undefined);
      // Size and parent as librbd reports them, for a plain image and a clone v2 of it.
      assert.equal(await headerSize(io, id!), 8 * MiB);
      assert.equal(await headerParent(io, id!), undefined, 'a plain image has no parent');
      await Image.with(io, name, (img) => img.snapCreate('s'));
      await cloneImage(io, name, 's', io, `${name}-c`, { features: FEATURES['layering']!, order: 22, cloneFormat: 2 });
      const childId = (await imageId(io, `${name}-c`))!;
      const viaLibrbd = await Image.with(io, `${name}-c`, (img) => img.parent(), { readOnly: true });
      assert.deepEqual(await headerParent(io, childId), { poolId: viaLibrbd!.poolId, imageId: viaLibrbd!.imageId });
      assert.equal(viaLibrbd!.imageId, id);
      assert.equal(await headerSize(io, childId), 8 * MiB);
      await removeImage(io, `${name}-c`);
      await Image.with(io, name, (img) => img.snapRemove('s'));
    } finally {
      await removeImage(io, `${name}-c`).catch(() => undefined);
      await Image.with(io, name, (img) => img.snapRemove('s')).catch(() => undefined);
      await removeImage(io, name);
    }
    assert.equal(await imageId(io, name), undefined, 'a removed image has no ID');
    assert.equal(await headerMetadataGet(io, 'no-such-id', 'stowage.complete'), undefined);
    assert.equal(await headerParent(io, 'no-such-id'), undefined);
    assert.equal(await headerSize(io, 'no-such-id'), undefined);
  });

  const cases = [
    { maxDepth: 1, snapshotFlattened: false, restoreFlattened: true, cloneFlattened: false },
    { maxDepth: 2, snapshotFlattened: false, restoreFlattened: false, cloneFlattened: false },
  ];
  for (const c of cases) {
    it(`--rbd-max-clone-depth ${c.maxDepth}: snapshot image ${c.snapshotFlattened ? '' : 'not '}flattened, restore ${c.restoreFlattened ? '' : 'not '}flattened, clone ${c.cloneFlattened ? '' : 'not '}flattened; all marked whole`, async () => {
      const drv: TestDriver = await startTestDriver({ backend: 'rbd', ceph, nodeId: `depth-${c.maxDepth}`, prefix: 'stowage-rbd-depth-', args: ['--rbd-max-clone-depth', String(c.maxDepth)] });
      const hasParent = async (image: string) => (JSON.parse(await ceph.rbd(['info', '--format', 'json', `${ceph.info.pool}/${image}`])) as { parent?: unknown }).parent !== undefined;
      const marker = async (image: string) => (await ceph.rbd(['image-meta', 'get', `${ceph.info.pool}/${image}`, 'stowage.complete'])).trim();
      const uuid = (id: string) => id.slice(-36);
      const ctl = drv.client.controller;
      const volumes: string[] = [];
      let snapshotId = '';
      try {
        const names = new Map<string, string>();
        const create = async (source?: { snapshot?: { snapshot_id: string }; volume?: { volume_id: string } }, name = uniqueName('dep')) => {
          const v = (await ctl.CreateVolume({ name, volume_capabilities: [blockCap()], capacity_range: { required_bytes: 8 * MiB }, ...(source ? { volume_content_source: source } : {}) })).volume!;
          if (!volumes.includes(v.volume_id)) volumes.push(v.volume_id);
          names.set(`csi-vol-${uuid(v.volume_id)}`, name);
          return `csi-vol-${uuid(v.volume_id)}`;
        };
        const plain = await create();
        const vol = volumes[0]!;
        snapshotId = (await ctl.CreateSnapshot({ name: uniqueName('dep'), source_volume_id: vol })).snapshot!.snapshot_id;
        const snapImage = `csi-snap-${uuid(snapshotId)}`;
        const restore = await create({ snapshot: { snapshot_id: snapshotId } });
        const clone = await create({ volume: { volume_id: vol } });
        assert.equal(await hasParent(plain), false);
        assert.equal(await hasParent(snapImage), !c.snapshotFlattened, 'snapshot image (depth 1)');
        // Depth 2: parent snapshot image, grandparent the volume.
        assert.equal(await hasParent(restore), !c.restoreFlattened, 'restore');
        assert.equal(await hasParent(clone), !c.cloneFlattened, 'clone of a volume (depth 1)');
        for (const image of [snapImage, restore, clone]) assert.equal(await marker(image), image, `${image} carries the whole-clone marker`);
        // A create retried after its clone was made (and flattened) but before the record said
        // ready: the journal record put back to 'creating', the same request again finishes it
        // (the depth is the clone's own now: flattening a flattened image would fail EINVAL).
        const oid = `csi.volume.${restore.slice('csi-vol-'.length)}`;
        const rec = JSON.parse((await io.omapGet(oid, ['stowage.record']))!.get('stowage.record')!) as { state: string };
        await io.write(oid, [{ omapSet: { 'stowage.record': JSON.stringify({ ...rec, state: 'creating' }) } }]);
        assert.equal(await create({ snapshot: { snapshot_id: snapshotId } }, names.get(restore)), restore, 'the same volume, finished');
        assert.equal(await hasParent(restore), !c.restoreFlattened, 'restore, after the retry');
        assert.equal(JSON.parse((await io.omapGet(oid, ['stowage.record']))!.get('stowage.record')!).state, 'ready');
      } finally {
        for (const id of volumes.reverse()) await ctl.DeleteVolume({ volume_id: id });
        if (snapshotId) await ctl.DeleteSnapshot({ snapshot_id: snapshotId });
        await drv.cleanup();
      }
      const { images, trash } = await ceph.images();
      assert.deepEqual([...images.filter((i) => i.startsWith('csi-')), ...trash], [], 'nothing left in the pool or its trash');
    });
  }
});
