/**
 * Snapshots hold the data of their moment; restores and clones are independent copies. Checked
 * through the pod's view (published mounts and devices), for btrfs, ext4, xfs and raw block.
 */
import assert from 'node:assert/strict';
import { existsSync, statfsSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VolumeCapabilityInput, VolumeContentSourceInput } from '../../src/csi/types.js';
import { blockCap, MiB, mountCap, pattern, readAt, sha256, uniqueName, writeAt, writeSynced } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

describe('data: snapshots, restores and clones hold the right bytes', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;
  const teardowns: (() => Promise<void>)[] = [];

  async function published(cap: VolumeCapabilityInput, bytes: number, source?: VolumeContentSourceInput) {
    const res = await ctl().CreateVolume({
      name: uniqueName('d'),
      volume_capabilities: [cap],
      capacity_range: { required_bytes: bytes },
      ...(source ? { volume_content_source: source } : {}),
    });
    const id = res.volume!.volume_id;
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    const teardown = async () => {
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    };
    teardowns.push(teardown);
    return { id, target, capacity: res.volume!.capacity_bytes };
  }

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-dsnap-' });
  });

  after(async () => {
    // Unpublish/unstage in reverse (harmless if a test already did); the harness removes the rest.
    for (const t of teardowns.reverse()) await t().catch(() => undefined);
    await drv?.cleanup();
  });

  const fsKinds: [string, VolumeCapabilityInput, number][] = [
    ['btrfs', mountCap(), 64 * MiB],
    ['ext4', mountCap('ext4'), 64 * MiB],
    ['xfs', mountCap('xfs'), 320 * MiB],
  ];
  for (const [kind, cap, size] of fsKinds) {
    it(`${kind}: restore = the snapshot's moment; clone = now; both independent of the source`, async () => {
      const src = await published(cap, size);
      const before = pattern(4 * MiB);
      const later = pattern(4 * MiB);
      await writeSynced(join(src.target, 'a.bin'), before);
      // The snapshot is taken while the pod has the volume mounted, as a CO would.
      const snap = await ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: src.id });
      await writeSynced(join(src.target, 'a.bin'), later);
      await writeSynced(join(src.target, 'after.txt'), Buffer.from('written after the snapshot'));

      const restored = await published(cap, size, { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } });
      assert.equal(sha256(await readAt(join(restored.target, 'a.bin'), 8 * MiB, 0)), sha256(before), 'restore holds the snapshot’s bytes');
      assert.equal(existsSync(join(restored.target, 'after.txt')), false, 'a write after the snapshot is not in the restore');

      const clone = await published(cap, size, { volume: { volume_id: src.id } });
      assert.equal(sha256(await readAt(join(clone.target, 'a.bin'), 8 * MiB, 0)), sha256(later), 'a clone holds the source’s current bytes');
      assert.ok(existsSync(join(clone.target, 'after.txt')));

      // Copies are independent: writing to them leaves the source alone.
      await writeSynced(join(restored.target, 'a.bin'), pattern(MiB));
      await writeSynced(join(clone.target, 'a.bin'), pattern(MiB));
      assert.equal(sha256(await readAt(join(src.target, 'a.bin'), 8 * MiB, 0)), sha256(later), 'the source is untouched');
    });
  }

  it('ext4: a restore into a larger volume keeps the data and gets the larger filesystem', async () => {
    const src = await published(mountCap('ext4'), 64 * MiB);
    const data = pattern(4 * MiB);
    await writeSynced(join(src.target, 'a.bin'), data);
    const snap = await ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: src.id });
    const big = await published(mountCap('ext4'), 192 * MiB, { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } });
    assert.ok(big.capacity >= 192 * MiB);
    assert.equal(sha256(await readAt(join(big.target, 'a.bin'), 8 * MiB, 0)), sha256(data));
    const fs = statfsSync(big.target);
    assert.ok(fs.blocks * fs.bsize > 160 * MiB, `restored filesystem is ${(fs.blocks * fs.bsize) / MiB} MiB`);
  });

  it('raw block: restore = the snapshot’s bytes; clone = current bytes', async () => {
    const src = await published(blockCap(), 32 * MiB);
    const before = pattern(4 * MiB);
    const later = pattern(4 * MiB);
    await writeAt(src.target, before, 3 * MiB);
    const snap = await ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: src.id });
    await writeAt(src.target, later, 3 * MiB);
    const restored = await published(blockCap(), 32 * MiB, { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } });
    assert.equal(sha256(await readAt(restored.target, 4 * MiB, 3 * MiB)), sha256(before));
    const clone = await published(blockCap(), 32 * MiB, { volume: { volume_id: src.id } });
    assert.equal(sha256(await readAt(clone.target, 4 * MiB, 3 * MiB)), sha256(later));
    await writeAt(clone.target, pattern(4 * MiB), 3 * MiB);
    assert.equal(sha256(await readAt(src.target, 4 * MiB, 3 * MiB)), sha256(later), 'the source is untouched');
  });

  // A pod's write the kernel has not yet written back (no fsync; writeback waits up to 30 s) is
  // in the snapshot and the clone: the driver flushes the image's filesystem (or raw device) before
  // it copies the image. Without that, the copy holds the file's state of the last writeback.
  const unsynced: [string, VolumeCapabilityInput, number][] = [
    ['ext4', mountCap('ext4'), 64 * MiB],
    ['xfs', mountCap('xfs'), 320 * MiB],
  ];
  for (const [kind, cap, size] of unsynced) {
    it(`${kind}: what a pod wrote without fsync just before is in the snapshot and in the clone`, async () => {
      const src = await published(cap, size);
      const first = pattern(2 * MiB);
      await writeFile(join(src.target, 'unsynced.bin'), first);
      const snap = await ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: src.id });
      const second = pattern(2 * MiB);
      await writeFile(join(src.target, 'unsynced.bin'), second);
      const clone = await published(cap, size, { volume: { volume_id: src.id } });
      const restored = await published(cap, size, { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } });
      assert.equal(sha256(await readFile(join(restored.target, 'unsynced.bin'))), sha256(first), 'the snapshot holds the unsynced write made before it');
      assert.equal(sha256(await readFile(join(clone.target, 'unsynced.bin'))), sha256(second), 'the clone holds the unsynced write made before it');
    });
  }

  it('raw block: what a pod wrote to the device without fsync just before is in the snapshot', async () => {
    const src = await published(blockCap(), 32 * MiB);
    const bytes = pattern(4 * MiB);
    // Held open across the snapshot: the last close of a block device writes it back by itself.
    const fh = await open(src.target, 'r+');
    let snap: Awaited<ReturnType<ReturnType<typeof ctl>['CreateSnapshot']>>;
    try {
      await fh.write(bytes, 0, bytes.length, MiB);
      snap = await ctl().CreateSnapshot({ name: uniqueName('s'), source_volume_id: src.id });
    } finally {
      await fh.close();
    }
    const restored = await published(blockCap(), 32 * MiB, { snapshot: { snapshot_id: snap.snapshot!.snapshot_id } });
    assert.equal(sha256(await readAt(restored.target, 4 * MiB, MiB)), sha256(bytes));
  });

  it('leaves no mount or loop device behind', async () => {
    for (const t of teardowns.splice(0).reverse()) await t();
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
