/**
 * Volume expansion through the real driver (spec: ControllerExpandVolume, NodeExpandVolume; the
 * plugin advertises ONLINE expansion). What the pod sees (df, quota) is checked in data-expansion.
 * Runs against every backend (support/backends.ts).
 */
import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, CAP_SYS_RESOURCE, expectCode, GiB, hasCapability, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';

const backends = testBackends();

for (const backend of backends) describe(`conformance: volume expansion [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;

  async function volume(cap: VolumeCapabilityInput, bytes: number): Promise<string> {
    const res = await ctl().CreateVolume({ name: uniqueName('exp'), volume_capabilities: [cap], capacity_range: { required_bytes: bytes, limit_bytes: bytes } });
    assert.equal(res.volume!.capacity_bytes, bytes);
    return res.volume!.volume_id;
  }

  async function stageAndPublish(id: string, cap: VolumeCapabilityInput) {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    return {
      staging,
      target,
      async teardown() {
        await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
        await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      },
    };
  }

  async function statsTotal(id: string, path: string): Promise<number> {
    const stats = await node().NodeGetVolumeStats({ volume_id: id, volume_path: path });
    return stats.usage.find((u) => u.unit === 'BYTES')!.total;
  }

  /** The size the backend records for the volume (ControllerGetVolume where it is served). */
  const sizeOf = async (id: string) => (await backend.volume(drv, id))?.capacity_bytes;

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-exp-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  if (backend.name === 'local') it('btrfs: exactly the requested size, no node step needed, visible in GetVolume/ListVolumes and stats', async () => {
    const id = await volume(mountCap(), 32 * MiB);
    const pub = await stageAndPublish(id, mountCap());
    try {
      const res = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 96 * MiB }, volume_capability: mountCap() });
      assert.equal(res.capacity_bytes, 96 * MiB);
      assert.equal(res.node_expansion_required, false);
      assert.equal((await ctl().ControllerGetVolume({ volume_id: id })).volume?.capacity_bytes, 96 * MiB);
      const listed = (await ctl().ListVolumes({})).entries.find((e) => e.volume?.volume_id === id);
      assert.equal(listed?.volume?.capacity_bytes, 96 * MiB);
      assert.equal(await statsTotal(id, pub.target), 96 * MiB, 'the pod’s quota follows');
      // A CO may still call NodeExpandVolume: harmless.
      const nodeRes = await node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 96 * MiB } });
      assert.ok(nodeRes.capacity_bytes === 0 || nodeRes.capacity_bytes >= 96 * MiB);
    } finally {
      await pub.teardown();
    }
  });

  if (backend.name === 'cephfs') it('online: the quota grows at ControllerExpandVolume, the mount sees it, no node step needed', async () => {
    const id = await volume(mountCap(), 32 * MiB);
    const pub = await stageAndPublish(id, mountCap());
    try {
      assert.equal(await statsTotal(id, pub.target), 32 * MiB);
      const res = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 96 * MiB }, volume_capability: mountCap() });
      assert.equal(res.capacity_bytes, 96 * MiB);
      assert.equal(res.node_expansion_required, false);
      assert.equal(await sizeOf(id), 96 * MiB);
      let seen = 0;
      for (let i = 0; i < 50 && seen !== 96 * MiB; i++) {
        const fs = statfsSync(pub.target);
        seen = fs.blocks * fs.bsize;
        if (seen !== 96 * MiB) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(seen, 96 * MiB, 'statfs inside the mount shows the new quota');
      assert.equal(await statsTotal(id, pub.target), 96 * MiB);
      const nodeRes = await node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 96 * MiB } });
      assert.equal(nodeRes.capacity_bytes, 96 * MiB);
    } finally {
      await pub.teardown();
    }
  });

  if (backend.deviceFs) it('ext4 online: controller then node expansion grow the mounted filesystem', async () => {
    const cap = mountCap('ext4');
    const id = await volume(cap, 64 * MiB);
    let pub = await stageAndPublish(id, cap);
    try {
      const before = statfsSync(pub.target);
      const res = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 128 * MiB } });
      assert.equal(res.capacity_bytes, 128 * MiB);
      assert.equal(res.node_expansion_required, true);
      const expand = node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 128 * MiB } });
      if (hasCapability(CAP_SYS_RESOURCE)) {
        const nodeRes = await expand;
        assert.ok(nodeRes.capacity_bytes >= 128 * MiB, `node reports ${nodeRes.capacity_bytes}`);
        // Idempotent: the same expansion again changes nothing and succeeds.
        await node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 128 * MiB } });
      } else {
        // Without CAP_SYS_RESOURCE the kernel refuses an online ext4 resize: the spec's "volume in
        // use" answer, and the filesystem grows at the next stage instead.
        await expectCode(expand, status.FAILED_PRECONDITION, 'online ext4 growth without CAP_SYS_RESOURCE');
        await pub.teardown();
        pub = await stageAndPublish(id, cap);
      }
      const after = statfsSync(pub.target);
      assert.ok(after.blocks * after.bsize > before.blocks * before.bsize + 48 * MiB, 'the filesystem grew');
      assert.ok((await statsTotal(id, pub.target)) > 100 * MiB);
      assert.equal((await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 128 * MiB } })).capacity_bytes, 128 * MiB);
    } finally {
      await pub.teardown();
    }
  });

  if (backend.deviceFs) it('xfs online: the mounted filesystem grows at NodeExpandVolume', async () => {
    const cap = mountCap('xfs');
    const id = await volume(cap, 320 * MiB);
    const pub = await stageAndPublish(id, cap);
    try {
      const before = statfsSync(pub.target);
      const res = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 480 * MiB } });
      assert.equal(res.capacity_bytes, 480 * MiB);
      assert.equal(res.node_expansion_required, true);
      const nodeRes = await node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 480 * MiB } });
      assert.ok(nodeRes.capacity_bytes >= 480 * MiB);
      const after = statfsSync(pub.target);
      assert.ok(after.blocks * after.bsize > before.blocks * before.bsize + 120 * MiB, `xfs grew from ${before.blocks * before.bsize} to ${after.blocks * after.bsize}`);
    } finally {
      await pub.teardown();
    }
  });

  if (backend.block) it('block online: the published device grows', async () => {
    const id = await volume(blockCap(), 32 * MiB);
    const pub = await stageAndPublish(id, blockCap());
    try {
      const res = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 80 * MiB }, volume_capability: blockCap() });
      assert.equal(res.capacity_bytes, 80 * MiB);
      assert.equal(res.node_expansion_required, true);
      const nodeRes = await node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 80 * MiB } });
      assert.equal(nodeRes.capacity_bytes, 80 * MiB);
      assert.equal(await statsTotal(id, pub.target), 80 * MiB);
    } finally {
      await pub.teardown();
    }
  });

  it('an expansion of a volume that is not staged takes effect at the next stage (csi-sanity order)', async () => {
    const cap = mountCap(backend.namedFs);
    const id = await volume(cap, 64 * MiB);
    assert.equal((await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 160 * MiB } })).capacity_bytes, 160 * MiB);
    const pub = await stageAndPublish(id, cap);
    try {
      await node().NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 160 * MiB } });
      const fs = statfsSync(pub.target);
      assert.ok(fs.blocks * fs.bsize > 140 * MiB, `filesystem is ${(fs.blocks * fs.bsize) / MiB} MiB`);
    } finally {
      await pub.teardown();
    }
  });

  it('as csi-sanity sends them: NodeExpandVolume and NodeGetVolumeStats on the target with no secrets, no capability, no staging path', async () => {
    const cap = mountCap(backend.namedFs);
    const id = await volume(cap, 64 * MiB);
    // csi-sanity's order: controller expansion first, then stage and publish, then the node step.
    const grown = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 128 * MiB }, volume_capability: cap });
    assert.equal(grown.capacity_bytes, 128 * MiB, 'exactly the size asked for (csi-sanity compares)');
    const pub = await stageAndPublish(id, cap);
    const raw = drv.rawClient.node;
    try {
      const res = await raw.NodeExpandVolume({ volume_id: id, volume_path: pub.target, capacity_range: { required_bytes: 128 * MiB } });
      assert.ok(res.capacity_bytes > 100 * MiB && res.capacity_bytes <= 128 * MiB, `NodeExpandVolume answered ${res.capacity_bytes}`);
      const fs = statfsSync(pub.target);
      assert.ok(fs.blocks * fs.bsize > 100 * MiB, `the pod sees ${(fs.blocks * fs.bsize) / MiB} MiB`);
      const stats = await raw.NodeGetVolumeStats({ volume_id: id, volume_path: pub.target });
      assert.ok(stats.usage.find((u) => u.unit === 'BYTES')!.total > 100 * MiB);
      assert.equal(stats.volume_condition?.abnormal, false);
      // csi-sanity's negative cases, secret-less as it sends them.
      await expectCode(raw.NodeExpandVolume({ volume_id: 'fake-vol-id-0a1b2c3d4e', volume_path: 'some/path' }), status.NOT_FOUND, 'unknown volume');
      await expectCode(raw.NodeExpandVolume({ volume_id: id, volume_capability: cap }), status.INVALID_ARGUMENT, 'no volume path');
      await expectCode(raw.NodeGetVolumeStats({ volume_id: 'fake-vol-id-0a1b2c3d4e', volume_path: 'some/path' }), status.NOT_FOUND, 'stats of an unknown volume');
      await expectCode(raw.NodeGetVolumeStats({ volume_id: id, volume_path: 'some/path' }), status.NOT_FOUND, 'stats where the volume is not');
    } finally {
      await pub.teardown();
    }
  });

  it('never shrinks: a smaller request leaves the size (and data) alone', async () => {
    const id = await volume(mountCap(), 64 * MiB);
    const res = await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 32 * MiB } });
    assert.equal(res.capacity_bytes, 64 * MiB);
    assert.equal(await sizeOf(id), 64 * MiB);
    // A limit below the present size could only be met by shrinking: the spec's example of OUT_OF_RANGE
    // (answering OK with 64 MiB would report a size outside the range asked for).
    const e = await expectCode(
      ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 32 * MiB, limit_bytes: 48 * MiB } }),
      status.OUT_OF_RANGE,
      'limit below the present size',
    );
    assert.match(e.message, /cannot shrink/);
    await expectCode(ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { limit_bytes: 32 * MiB } }), status.OUT_OF_RANGE, 'limit alone, below the size');
    assert.equal(await sizeOf(id), 64 * MiB);
    // A range the present size meets is done already; a limit alone asks for no growth.
    assert.equal((await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 32 * MiB, limit_bytes: 64 * MiB } })).capacity_bytes, 64 * MiB);
    assert.equal((await ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { limit_bytes: 512 * MiB } })).capacity_bytes, 64 * MiB);
    assert.equal(await sizeOf(id), 64 * MiB);
  });

  it('errors: too big → OUT_OF_RANGE; unknown → NOT_FOUND; bad arguments → INVALID_ARGUMENT', async () => {
    const id = await volume(mountCap(), 32 * MiB);
    // local: more than its pool; rbd (thin, may overcommit the cluster): more than a volume can be.
    const tooBig = backend.name === 'local' ? 1024 * GiB : 2 ** 53;
    await expectCode(ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: tooBig } }), status.OUT_OF_RANGE, 'beyond the pool');
    assert.equal(await sizeOf(id), 32 * MiB, 'unchanged after a refusal');
    await expectCode(ctl().ControllerExpandVolume({ volume_id: 'fake-vol-id-exp', capacity_range: { required_bytes: 64 * MiB } }), status.NOT_FOUND, 'unknown volume');
    await expectCode(ctl().ControllerExpandVolume({ volume_id: '', capacity_range: { required_bytes: 64 * MiB } }), status.INVALID_ARGUMENT, 'no id');
    await expectCode(ctl().ControllerExpandVolume({ volume_id: '' }), status.INVALID_ARGUMENT, 'no id, no range');
    await expectCode(ctl().ControllerExpandVolume({ volume_id: id }), status.INVALID_ARGUMENT, 'no range');
    await expectCode(ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: -1 } }), status.INVALID_ARGUMENT, 'negative');
    await expectCode(ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 64 * MiB, limit_bytes: 48 * MiB } }), status.INVALID_ARGUMENT, 'required > limit');
    await expectCode(
      ctl().ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 64 * MiB }, volume_capability: blockCap() }),
      status.INVALID_ARGUMENT,
      'block capability for a mount volume',
    );
  });

  it('NodeExpandVolume: arguments, unknown volume, path that is not there', async () => {
    const id = await volume(mountCap(backend.namedFs), 32 * MiB);
    await expectCode(node().NodeExpandVolume({ volume_path: drv.dir, volume_capability: mountCap() }), status.INVALID_ARGUMENT, 'no id');
    await expectCode(node().NodeExpandVolume({ volume_id: id, volume_capability: mountCap(backend.namedFs) }), status.INVALID_ARGUMENT, 'no path');
    await expectCode(node().NodeExpandVolume({ volume_id: 'fake-vol-id-nx', volume_path: 'some/path' }), status.NOT_FOUND, 'unknown volume');
    await expectCode(node().NodeExpandVolume({ volume_id: id, volume_path: join(drv.dir, 'not', 'here') }), status.NOT_FOUND, 'missing path');
    // Spec: a capability the volume does not have "exceeds capabilities"; a limit below its size is a shrink.
    const target = drv.targetDir(uniqueName('tgt'));
    await expectCode(node().NodeExpandVolume({ volume_id: id, volume_path: target, volume_capability: blockCap() }), status.INVALID_ARGUMENT, 'block capability, mount volume');
    await expectCode(node().NodeExpandVolume({ volume_id: id, volume_path: target, capacity_range: { limit_bytes: 16 * MiB } }), status.OUT_OF_RANGE, 'limit below the size');
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
