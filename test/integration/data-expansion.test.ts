/**
 * Expanding a volume that a pod is using: the pod sees the larger filesystem (df), or a raised
 * quota, or a longer device, and its data is untouched.
 */
import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import {
  blockCap,
  CAP_SYS_RESOURCE,
  expectCode,
  fill,
  hasCapability,
  MiB,
  mountCap,
  pattern,
  readAt,
  sha256,
  status,
  uniqueName,
  writeAt,
  writeSynced,
} from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

describe('data: online expansion as the pod sees it', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;

  async function published(cap: VolumeCapabilityInput, bytes: number) {
    const res = await ctl().CreateVolume({ name: uniqueName('x'), volume_capabilities: [cap], capacity_range: { required_bytes: bytes, limit_bytes: bytes } });
    const id = res.volume!.volume_id;
    const vol = {
      id,
      staging: '',
      target: '',
      async publish() {
        vol.staging = drv.stagingDir(uniqueName('stg'));
        vol.target = drv.targetDir(uniqueName('tgt'));
        await node().NodeStageVolume({ volume_id: id, staging_target_path: vol.staging, volume_capability: cap });
        await node().NodePublishVolume({ volume_id: id, staging_target_path: vol.staging, target_path: vol.target, volume_capability: cap });
      },
      async unpublish() {
        await node().NodeUnpublishVolume({ volume_id: id, target_path: vol.target });
        await node().NodeUnstageVolume({ volume_id: id, staging_target_path: vol.staging });
      },
    };
    await vol.publish();
    return vol;
  }

  const dfBytes = (path: string) => {
    const s = statfsSync(path);
    return s.blocks * s.bsize;
  };

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-dexp-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  for (const [fs, from, to] of [
    ['ext4', 48 * MiB, 160 * MiB],
    ['xfs', 300 * MiB, 512 * MiB],
  ] as const) {
    it(`${fs}: df in the pod's mount shows the new size; data intact; the new space is usable`, async () => {
      const vol = await published(mountCap(fs), from);
      try {
        const data = pattern(4 * MiB);
        await writeSynced(join(vol.target, 'keep.bin'), data);
        const before = dfBytes(vol.target);
        assert.ok(before <= from, `df ${before} before`);
        const res = await ctl().ControllerExpandVolume({ volume_id: vol.id, capacity_range: { required_bytes: to } });
        assert.equal(res.capacity_bytes, to);
        const expand = node().NodeExpandVolume({ volume_id: vol.id, volume_path: vol.target, capacity_range: { required_bytes: to } });
        if (fs === 'ext4' && !hasCapability(CAP_SYS_RESOURCE)) {
          // This machine can't resize a mounted ext4 (no CAP_SYS_RESOURCE): the driver must say so
          // (FAILED_PRECONDITION) and grow it at the next stage.
          await expectCode(expand, status.FAILED_PRECONDITION, 'online ext4 resize without CAP_SYS_RESOURCE');
          await vol.unpublish();
          await vol.publish();
        } else {
          await expand;
        }
        const after = dfBytes(vol.target);
        assert.ok(after >= before + (to - from) * 0.9, `df grew from ${before / MiB} to ${after / MiB} MiB`);
        assert.equal(sha256(await readAt(join(vol.target, 'keep.bin'), 8 * MiB, 0)), sha256(data));
        // More than the old size now fits.
        const { written, code } = await fill(join(vol.target, 'more'), from);
        assert.equal(code, undefined, `writing ${from / MiB} MiB more failed after ${written / MiB} MiB`);
      } finally {
        await vol.unpublish();
      }
    });
  }

  it('btrfs: a write refused by the quota succeeds once the volume is expanded', async () => {
    const vol = await published(mountCap(), 10 * MiB);
    try {
      const refused = await fill(join(vol.target, 'first'), 15 * MiB);
      assert.equal(refused.code, 'EDQUOT', `15 MiB into 10 MiB: wrote ${refused.written / MiB} MiB`);
      const res = await ctl().ControllerExpandVolume({ volume_id: vol.id, capacity_range: { required_bytes: 48 * MiB } });
      assert.equal(res.capacity_bytes, 48 * MiB);
      if (res.node_expansion_required) await node().NodeExpandVolume({ volume_id: vol.id, volume_path: vol.target });
      const accepted = await fill(join(vol.target, 'second'), 15 * MiB);
      assert.equal(accepted.code, undefined, `15 MiB after expanding to 48 MiB: stopped at ${accepted.written / MiB} MiB`);
      const stats = await node().NodeGetVolumeStats({ volume_id: vol.id, volume_path: vol.target });
      assert.equal(stats.usage.find((u) => u.unit === 'BYTES')?.total, 48 * MiB);
    } finally {
      await vol.unpublish();
    }
  });

  it('raw block: the pod can write past the old end once expanded', async () => {
    const vol = await published(blockCap(), 16 * MiB);
    try {
      const data = pattern(MiB);
      await writeAt(vol.target, data, 0);
      const past = async () => {
        const fh = await open(vol.target, 'r+');
        try {
          return await fh.write(Buffer.alloc(4096, 9), 0, 4096, 20 * MiB).then(
            (r) => r.bytesWritten,
            (e: NodeJS.ErrnoException) => e.code,
          );
        } finally {
          await fh.close();
        }
      };
      assert.equal(await past(), 'ENOSPC');
      await ctl().ControllerExpandVolume({ volume_id: vol.id, capacity_range: { required_bytes: 32 * MiB } });
      await node().NodeExpandVolume({ volume_id: vol.id, volume_path: vol.target, capacity_range: { required_bytes: 32 * MiB } });
      assert.equal(await past(), 4096);
      assert.ok((await readAt(vol.target, MiB, 0)).equals(data));
    } finally {
      await vol.unpublish();
    }
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
