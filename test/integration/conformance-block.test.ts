/**
 * Raw block volumes through the real driver: the pod gets a device node at its target path,
 * sized exactly as asked, writable (or not), and it all goes away on unpublish/unstage.
 * Runs against every backend (support/backends.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { blockCap, expectCode, MiB, mountCap, pattern, readAt, status, uniqueName, writeAt } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';
import { loopsUnder, mountAt, mountCount } from '../support/host-state.js';

const run = promisify(execFile);
const backends = testBackends();

// A backend that serves no raw block volumes (cephfs, declared in backends.ts) must refuse them
// as the spec says for an unsupported capability, and create nothing.
for (const backend of backends.filter((b) => !b.block)) describe(`conformance: raw block volumes are refused [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;
  before(async () => {
    drv = await backend.start({ prefix: 'stowage-blkno-' });
  });
  after(async () => {
    await drv?.cleanup();
  });
  it('CreateVolume with a block capability → INVALID_ARGUMENT, nothing created; ValidateVolumeCapabilities does not confirm block', async () => {
    const before = (await backend.volumeIds(drv)).length;
    for (const mode of ['SINGLE_NODE_WRITER', 'MULTI_NODE_MULTI_WRITER'] as const) {
      const e = await expectCode(
        drv.client.controller.CreateVolume({ name: uniqueName('blk'), volume_capabilities: [blockCap(mode)], capacity_range: { required_bytes: 64 * MiB } }),
        status.INVALID_ARGUMENT,
        `block ${mode}`,
      );
      assert.match(e.message, /block/, 'the message says why');
    }
    assert.equal((await backend.volumeIds(drv)).length, before, 'a refused CreateVolume leaves no volume');
    const vol = await drv.client.controller.CreateVolume({ name: uniqueName('fs'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 16 * MiB } });
    const res = await drv.client.controller.ValidateVolumeCapabilities({ volume_id: vol.volume!.volume_id, volume_capabilities: [blockCap()] });
    assert.equal(res.confirmed, null);
    assert.match(res.message, /block/);
    await drv.client.controller.DeleteVolume({ volume_id: vol.volume!.volume_id });
  });
  it('leaves no mount behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});

for (const backend of backends.filter((b) => b.block)) describe(`conformance: raw block volumes [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;
  const node = () => drv.client.node;
  const ctl = () => drv.client.controller;

  async function create(bytes = 64 * MiB, mode: Parameters<typeof blockCap>[0] = 'SINGLE_NODE_WRITER'): Promise<string> {
    const res = await ctl().CreateVolume({
      name: uniqueName('blk'),
      volume_capabilities: [blockCap(mode)],
      capacity_range: { required_bytes: bytes, limit_bytes: bytes },
    });
    assert.equal(res.volume!.capacity_bytes, bytes);
    return res.volume!.volume_id;
  }

  /** Loop devices of volume images (of one volume, when given). */
  function volumeLoops(id?: string) {
    // The backing file is named after the volume (local: its ID; rbd: its image csi-vol-<uuid>).
    return loopsUnder(drv.dir).filter((l) => !l.backingFile.endsWith('/pool.img') && (id === undefined || l.backingFile.includes(id.slice(-36))));
  }

  async function deviceSize(path: string): Promise<number> {
    const { stdout } = await run('blockdev', ['--getsize64', path]);
    return Number(stdout.trim());
  }

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-blk-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('ValidateVolumeCapabilities: block confirmed, mount not', async () => {
    const id = await create();
    const ok = await ctl().ValidateVolumeCapabilities({ volume_id: id, volume_capabilities: [blockCap()] });
    assert.ok(ok.confirmed, ok.message);
    const no = await ctl().ValidateVolumeCapabilities({ volume_id: id, volume_capabilities: [mountCap()] });
    assert.equal(no.confirmed, null);
    assert.ok(no.message.length > 0);
  });

  it('stage + publish 10×: one device node at the target, exactly the volume size, writable', async () => {
    const id = await create(48 * MiB);
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('dev'));
    for (let i = 0; i < 10; i++) await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: blockCap() });
    assert.equal(volumeLoops(id).length, 1, 'one loop device');
    for (let i = 0; i < 10; i++) {
      await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: blockCap() });
    }
    assert.equal(mountCount(target), 1);
    assert.ok(statSync(target).isBlockDevice(), 'the target is the block device');
    assert.equal(await deviceSize(target), 48 * MiB);
    const data = pattern(MiB);
    await writeAt(target, data, 5 * MiB);
    assert.ok((await readAt(target, MiB, 5 * MiB)).equals(data));

    const stats = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
    assert.deepEqual(
      stats.usage.map((u) => [u.unit, u.total]),
      [['BYTES', 48 * MiB]],
      'block stats: bytes total only',
    );
    assert.equal(stats.volume_condition?.abnormal, false);

    for (let i = 0; i < 3; i++) await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
    assert.equal(mountCount(target), 0);
    assert.equal(existsSync(target), false, 'the target file is removed');
    for (let i = 0; i < 3; i++) await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    assert.deepEqual(volumeLoops(id), [], 'the loop device is detached');
    assert.equal(mountCount(staging), 0);
    await ctl().DeleteVolume({ volume_id: id });
  });

  it('readonly publish: the device cannot be opened for writing', async () => {
    const id = await create();
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('ro'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: blockCap() });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: blockCap(), readonly: true });
    try {
      assert.equal(mountAt(target)?.readonly, true);
      await expectCode(
        node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: blockCap(), readonly: false }),
        status.ALREADY_EXISTS,
        'same target read-write',
      );
      // A read-only bind mount does not stop writes through a device node: the device itself must refuse them
      // (the kernel lets a read-only block device be opened read-write, and fails the write with EPERM).
      const writable = await open(target, 'r+').then(
        async (fh) => {
          try {
            await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 0);
            return true;
          } catch {
            return false;
          } finally {
            await fh.close();
          }
        },
        () => false,
      );
      assert.equal(writable, false, 'a readonly publication of a block volume must not be writable');
    } finally {
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    }
    assert.deepEqual(volumeLoops(id), []);
  });

  it('SINGLE_NODE_SINGLE_WRITER block: a second target → FAILED_PRECONDITION, nothing left there', async () => {
    const id = await create(32 * MiB, 'SINGLE_NODE_SINGLE_WRITER');
    const cap = blockCap('SINGLE_NODE_SINGLE_WRITER');
    const staging = drv.stagingDir(uniqueName('stg'));
    const t1 = drv.targetDir(uniqueName('t1'));
    const t2 = drv.targetDir(uniqueName('t2'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: t1, volume_capability: cap });
    await expectCode(node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: t2, volume_capability: cap }), status.FAILED_PRECONDITION, 'second target');
    assert.equal(mountCount(t2), 0);
    assert.equal(existsSync(t2), false, 'the refused target is not created');
    await node().NodeUnpublishVolume({ volume_id: id, target_path: t1 });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
  });

  it('a block volume cannot be staged as a filesystem, nor a filesystem as block', async () => {
    const id = await create();
    const staging = drv.stagingDir(uniqueName('stg'));
    await expectCode(node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap('ext4') }), status.FAILED_PRECONDITION, 'block as ext4');
    assert.deepEqual(volumeLoops(id), [], 'nothing attached by a refused stage');
    const fs = await ctl().CreateVolume({ name: uniqueName('fs'), volume_capabilities: [mountCap('ext4')], capacity_range: { required_bytes: 32 * MiB } });
    await expectCode(
      node().NodeStageVolume({ volume_id: fs.volume!.volume_id, staging_target_path: staging, volume_capability: blockCap() }),
      status.FAILED_PRECONDITION,
      'ext4 as block',
    );
    assert.ok(lstatSync(staging).isDirectory());
    assert.equal(mountCount(staging), 0);
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
