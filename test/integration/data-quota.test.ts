/**
 * A volume holds no more than its size: the btrfs qgroup limit refuses writes with EDQUOT, an
 * ext4 image fills with ENOSPC, a raw block device ends where it should. What a pod would hit.
 */
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, fill, MiB, mountCap, uniqueName } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

describe('data: volumes are limited to their size', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;

  async function published(cap: VolumeCapabilityInput, bytes: number) {
    const res = await ctl().CreateVolume({ name: uniqueName('q'), volume_capabilities: [cap], capacity_range: { required_bytes: bytes, limit_bytes: bytes } });
    const id = res.volume!.volume_id;
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    return {
      id,
      target,
      async teardown() {
        await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
        await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
        await ctl().DeleteVolume({ volume_id: id });
      },
    };
  }

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-quota-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('btrfs 10 MiB volume: a 20 MiB write stops with EDQUOT near 10 MiB', async () => {
    const vol = await published(mountCap(), 10 * MiB);
    try {
      const { written, code } = await fill(join(vol.target, 'big'), 20 * MiB);
      assert.equal(code, 'EDQUOT', `the write must fail with EDQUOT (wrote ${written / MiB} MiB)`);
      assert.ok(written <= 10 * MiB, `no more than the quota gets in: ${written / MiB} MiB`);
      assert.ok(written >= 6 * MiB, `most of the quota is usable: ${written / MiB} MiB`);
    } finally {
      await vol.teardown();
    }
  });

  it('ext4 32 MiB volume: filling it ends with ENOSPC below 32 MiB', async () => {
    const vol = await published(mountCap('ext4'), 32 * MiB);
    try {
      const { written, code } = await fill(join(vol.target, 'big'), 64 * MiB);
      assert.equal(code, 'ENOSPC', `wrote ${written / MiB} MiB`);
      assert.ok(written < 32 * MiB && written >= 16 * MiB, `${written / MiB} MiB written`);
    } finally {
      await vol.teardown();
    }
  });

  it('xfs 300 MiB volume: filling it ends with ENOSPC below 300 MiB', async () => {
    const vol = await published(mountCap('xfs'), 300 * MiB);
    try {
      const { written, code } = await fill(join(vol.target, 'big'), 400 * MiB);
      assert.equal(code, 'ENOSPC', `wrote ${written / MiB} MiB`);
      assert.ok(written < 300 * MiB && written >= 200 * MiB, `${written / MiB} MiB written`);
    } finally {
      await vol.teardown();
    }
  });

  it('raw block 16 MiB: the device ends at 16 MiB', async () => {
    const vol = await published(blockCap(), 16 * MiB);
    try {
      const fh = await open(vol.target, 'r+');
      try {
        const last = await fh.write(Buffer.alloc(4096, 1), 0, 4096, 16 * MiB - 4096);
        assert.equal(last.bytesWritten, 4096, 'the last 4 KiB are writable');
        const beyond = await fh.write(Buffer.alloc(4096, 1), 0, 4096, 16 * MiB).then(
          (r) => `wrote ${r.bytesWritten}`,
          (e: NodeJS.ErrnoException) => e.code,
        );
        assert.equal(beyond, 'ENOSPC', 'nothing past the end');
      } finally {
        await fh.close();
      }
    } finally {
      await vol.teardown();
    }
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
