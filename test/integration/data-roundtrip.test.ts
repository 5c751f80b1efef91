/**
 * Data written through a published volume is still there after the volume is unpublished,
 * unstaged, and staged and published again elsewhere, for every kind of volume the driver makes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, MiB, mountCap, pattern, readAt, sha256, uniqueName, writeAt, writeSynced } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { loopsUnder, mountAt } from '../support/host-state.js';

const run = promisify(execFile);

describe('data: write, unstage, restage elsewhere, read back', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;

  async function stagePublish(id: string, cap: VolumeCapabilityInput) {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    return {
      staging,
      target,
      async unpublishUnstage() {
        await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
        await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      },
    };
  }

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-data-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  const kinds: [string, VolumeCapabilityInput, number][] = [
    ['btrfs (no fs_type)', mountCap(), 64 * MiB],
    ['btrfs (fs_type btrfs)', mountCap('btrfs'), 64 * MiB],
    ['ext4', mountCap('ext4'), 64 * MiB],
    ['xfs', mountCap('xfs'), 320 * MiB],
  ];
  for (const [kind, cap, size] of kinds) {
    it(`${kind}: a 4 MiB file survives unstage and a restage at another path`, async () => {
      const res = await ctl().CreateVolume({ name: uniqueName('rt'), volume_capabilities: [cap], capacity_range: { required_bytes: size } });
      const id = res.volume!.volume_id;
      const data = pattern(4 * MiB);
      const first = await stagePublish(id, cap);
      const fsType = mountAt(first.staging)?.fsType;
      assert.equal(fsType, cap.mount?.fs_type || 'btrfs', 'the staged filesystem is the one asked for');
      await writeSynced(join(first.target, 'payload.bin'), data);
      await first.unpublishUnstage();

      const second = await stagePublish(id, cap);
      assert.notEqual(second.staging, first.staging);
      const back = await readAt(join(second.target, 'payload.bin'), 8 * MiB, 0);
      assert.equal(back.length, data.length);
      assert.equal(sha256(back), sha256(data), 'the same bytes come back');
      await second.unpublishUnstage();
      await ctl().DeleteVolume({ volume_id: id });
    });
  }

  it('raw block: 4 MiB written to the device survive detach and a restage at another path', async () => {
    const res = await ctl().CreateVolume({ name: uniqueName('rtb'), volume_capabilities: [blockCap()], capacity_range: { required_bytes: 32 * MiB } });
    const id = res.volume!.volume_id;
    const data = pattern(4 * MiB);
    const first = await stagePublish(id, blockCap());
    await writeAt(first.target, data, 7 * MiB);
    await first.unpublishUnstage();
    assert.deepEqual(
      loopsUnder(drv.dir).filter((l) => l.backingFile.includes(id)),
      [],
      'the loop device is detached between the two stages',
    );
    const second = await stagePublish(id, blockCap());
    assert.equal(sha256(await readAt(second.target, 4 * MiB, 7 * MiB)), sha256(data));
    // And nothing else was written: the first MiB is still zeros.
    assert.ok((await readAt(second.target, MiB, 0)).equals(Buffer.alloc(MiB)));
    await second.unpublishUnstage();
    await ctl().DeleteVolume({ volume_id: id });
  });

  it('ext4 is never reformatted: stage, write, unstage, stage again at the same path', async () => {
    const cap = mountCap('ext4');
    const res = await ctl().CreateVolume({ name: uniqueName('blank'), volume_capabilities: [cap], capacity_range: { required_bytes: 64 * MiB } });
    const id = res.volume!.volume_id;
    const staging = drv.stagingDir(uniqueName('same'));
    const stage = () => node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await stage();
    const uuid = async () => (await run('findmnt', ['-n', '-o', 'UUID', staging])).stdout.trim();
    const uuidBefore = await uuid();
    assert.ok(uuidBefore.length > 0);
    const data = pattern(MiB);
    await writeSynced(join(staging, 'keep.bin'), data);
    for (let round = 0; round < 3; round++) {
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      assert.equal(mountAt(staging), undefined);
      await stage();
      assert.equal(await uuid(), uuidBefore, 'same filesystem (not a fresh mkfs)');
      assert.equal(sha256(await readAt(join(staging, 'keep.bin'), 2 * MiB, 0)), sha256(data));
    }
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    await ctl().DeleteVolume({ volume_id: id });
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
