/**
 * The rbd backend's data paths against a real Ceph cluster (ceph.ts brings one up for this file):
 * bytes written through a staged ext4 (mounted with ceph-csi's `discard`) and through a raw block
 * volume survive unstage and a restage on another node; a snapshot restores the old bytes after
 * the volume moved on; a clone copies; online expansion shows inside; a chain of restores is
 * flattened past the depth limit. Two driver processes play two nodes (own node ID, own state
 * directory), as ceph-csi's node plugins would on two machines.
 *
 * Every volume and snapshot is deleted through the driver, and the file ends by checking the
 * cluster: no image, no trashed image, no journal key or object, no rbd-fuse mount, no loop device.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import {
  blockCap,
  CAP_SYS_RESOURCE,
  expectCode,
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
import { useCephCluster } from '../support/ceph.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { hostMounts, loopsUnder, mountAt } from '../support/host-state.js';

const run = promisify(execFile);
const ceph = useCephCluster();

describe('rbd data: write, unstage, restage on another node, snapshots, clones, expansion', { skip: needsRoot, timeout: 240_000 }, () => {
  let a: TestDriver;
  let b: TestDriver;
  const created = { volumes: new Set<string>(), snapshots: new Set<string>() };

  async function create(drv: TestDriver, cap: VolumeCapabilityInput, bytes: number, source?: { snapshot?: string; volume?: string }) {
    const res = await drv.client.controller.CreateVolume({
      name: uniqueName('data'),
      volume_capabilities: [cap],
      capacity_range: { required_bytes: bytes },
      ...(source?.snapshot ? { volume_content_source: { snapshot: { snapshot_id: source.snapshot } } } : {}),
      ...(source?.volume ? { volume_content_source: { volume: { volume_id: source.volume } } } : {}),
    });
    created.volumes.add(res.volume!.volume_id);
    return res.volume!;
  }

  async function snapshot(drv: TestDriver, volumeId: string) {
    const res = await drv.client.controller.CreateSnapshot({ name: uniqueName('snap'), source_volume_id: volumeId });
    created.snapshots.add(res.snapshot!.snapshot_id);
    return res.snapshot!;
  }

  /** Stage and publish as a CO does, with the volume context CreateVolume returned. */
  async function stagePublish(drv: TestDriver, id: string, cap: VolumeCapabilityInput, context: Record<string, string> = {}) {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    const node = drv.client.node;
    await node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap, volume_context: context });
    await node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap, volume_context: context });
    return {
      staging,
      target,
      async done() {
        await node.NodeUnpublishVolume({ volume_id: id, target_path: target });
        await node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      },
    };
  }

  before(async () => {
    [a, b] = await Promise.all([
      startTestDriver({ backend: 'rbd', ceph, nodeId: 'node-a', prefix: 'stowage-rbd-a-' }),
      startTestDriver({ backend: 'rbd', ceph, nodeId: 'node-b', prefix: 'stowage-rbd-b-' }),
    ]);
  });

  after(async () => {
    await Promise.all([a?.cleanup(), b?.cleanup()]);
  });

  it('ext4 with discard: 4 MiB survive unstage on node A and a restage on node B; never reformatted', async () => {
    const cap = mountCap('ext4', 'SINGLE_NODE_WRITER', ['discard']);
    const vol = await create(a, cap, 64 * MiB);
    const data = pattern(4 * MiB);
    const first = await stagePublish(a, vol.volume_id, cap, vol.volume_context);
    const staged = mountAt(first.staging);
    assert.equal(staged?.fsType, 'ext4');
    assert.ok(staged?.superOptions.includes('discard'), `mounted with discard: ${staged?.superOptions.join(',')}`);
    assert.match(staged?.source ?? '', /^\/dev\/loop\d+$/, 'an ext4 on a loop device');
    const uuid = (await run('blkid', ['-s', 'UUID', '-o', 'value', staged!.source])).stdout.trim();
    await writeSynced(join(first.target, 'payload.bin'), data);
    await first.done();
    assert.deepEqual(loopsUnder(a.dir), [], 'node A released its loop device');
    assert.deepEqual(hostMounts().filter((m) => m.mountPoint.startsWith(a.dir)), [], 'and its rbd-fuse mount');

    const second = await stagePublish(b, vol.volume_id, cap, vol.volume_context);
    assert.equal(sha256(await readAt(join(second.target, 'payload.bin'), 8 * MiB, 0)), sha256(data), 'the same bytes on node B');
    const source = mountAt(second.staging)!.source;
    assert.equal((await run('blkid', ['-s', 'UUID', '-o', 'value', source])).stdout.trim(), uuid, 'the same filesystem, not a new one');
    await second.done();
  });

  it('raw block: bytes written on node A are read back on node B', async () => {
    const vol = await create(a, blockCap(), 32 * MiB);
    const data = pattern(4 * MiB);
    const first = await stagePublish(a, vol.volume_id, blockCap());
    await writeAt(first.target, data, 7 * MiB);
    await first.done();
    const second = await stagePublish(b, vol.volume_id, blockCap());
    assert.equal(sha256(await readAt(second.target, 4 * MiB, 7 * MiB)), sha256(data));
    assert.ok((await readAt(second.target, MiB, 0)).equals(Buffer.alloc(MiB)), 'the rest is still zeros');
    await second.done();
  });

  it('MULTI_NODE_MULTI_WRITER block: published on both nodes at once, each sees the other’s writes', async () => {
    const cap = blockCap('MULTI_NODE_MULTI_WRITER');
    const vol = await create(a, cap, 16 * MiB);
    const onA = await stagePublish(a, vol.volume_id, cap);
    const onB = await stagePublish(b, vol.volume_id, cap);
    const x = pattern(MiB);
    await writeAt(onA.target, x, 0);
    // O_DIRECT-free reads go through each node's page cache: read past it with a fresh fd after fsync.
    assert.equal(sha256(await readAt(onB.target, MiB, 0)), sha256(x), 'node B reads what node A wrote');
    await onA.done();
    await onB.done();
    await expectCode(
      a.client.controller.CreateVolume({ name: uniqueName('mnmw'), volume_capabilities: [mountCap('ext4', 'MULTI_NODE_MULTI_WRITER')] }),
      status.INVALID_ARGUMENT,
      'multi-node writers on a filesystem',
    );
  });

  it('snapshot → the volume moves on → restore gives the old bytes; the source can go first', async () => {
    const cap = mountCap('ext4');
    const vol = await create(a, cap, 64 * MiB);
    const v1 = pattern(2 * MiB);
    const v2 = pattern(2 * MiB);
    const pub = await stagePublish(a, vol.volume_id, cap);
    await writeSynced(join(pub.target, 'f.bin'), v1);
    const snap = await snapshot(a, vol.volume_id);
    assert.equal(snap.size_bytes, vol.capacity_bytes);
    await writeSynced(join(pub.target, 'f.bin'), v2);
    await pub.done();

    const restored = await create(a, cap, 64 * MiB, { snapshot: snap.snapshot_id });
    assert.equal(restored.content_source?.snapshot?.snapshot_id, snap.snapshot_id);
    const r = await stagePublish(b, restored.volume_id, cap);
    assert.equal(sha256(await readAt(join(r.target, 'f.bin'), 4 * MiB, 0)), sha256(v1), 'the restore has the old bytes');
    await r.done();
    // Deleting the source first must not hurt the snapshot or the restore (they are clones of it).
    await a.client.controller.DeleteVolume({ volume_id: vol.volume_id });
    created.volumes.delete(vol.volume_id);
    const again = await create(b, cap, 64 * MiB, { snapshot: snap.snapshot_id });
    const r2 = await stagePublish(b, again.volume_id, cap);
    assert.equal(sha256(await readAt(join(r2.target, 'f.bin'), 4 * MiB, 0)), sha256(v1), 'restorable after its source is gone');
    await r2.done();
  });

  it('clone: a copy of the source at clone time, independent afterwards', async () => {
    const vol = await create(a, blockCap(), 16 * MiB);
    const x = pattern(MiB);
    const src = await stagePublish(a, vol.volume_id, blockCap());
    await writeAt(src.target, x, 3 * MiB);
    await src.done();
    const clone = await create(a, blockCap(), 16 * MiB, { volume: vol.volume_id });
    assert.equal(clone.content_source?.volume?.volume_id, vol.volume_id);
    const c = await stagePublish(b, clone.volume_id, blockCap());
    assert.equal(sha256(await readAt(c.target, MiB, 3 * MiB)), sha256(x), 'the clone has the source’s bytes');
    await writeAt(c.target, pattern(MiB), 3 * MiB);
    await c.done();
    const again = await stagePublish(a, vol.volume_id, blockCap());
    assert.equal(sha256(await readAt(again.target, MiB, 3 * MiB)), sha256(x), 'writing the clone left the source alone');
    await again.done();
    // The temporary snapshot the clone was made through is gone from the source.
    const snaps = JSON.parse(await ceph.rbd(['snap', 'ls', '--all', '--format', 'json', `${ceph.info.pool}/${vol.volume_context['imageName']}`])) as { namespace?: { type?: string } }[];
    assert.ok(snaps.every((s) => s.namespace?.type === 'trash'), `only trash-namespace snapshots remain: ${JSON.stringify(snaps)}`);
  });

  it('expansion online: xfs and block grow while published; ext4 grows online or at the next stage', async () => {
    const xfs = mountCap('xfs');
    const vx = await create(a, xfs, 320 * MiB);
    const px = await stagePublish(a, vx.volume_id, xfs);
    const before = (await statfs(px.target)).blocks;
    const ce = await a.client.controller.ControllerExpandVolume({ volume_id: vx.volume_id, capacity_range: { required_bytes: 512 * MiB }, volume_capability: xfs });
    assert.equal(ce.capacity_bytes, 512 * MiB);
    assert.equal(ce.node_expansion_required, true);
    const ne = await a.client.node.NodeExpandVolume({ volume_id: vx.volume_id, volume_path: px.target, staging_target_path: px.staging });
    assert.equal(ne.capacity_bytes, 512 * MiB);
    const s = await statfs(px.target);
    const grown = (s.blocks - before) * s.bsize;
    assert.ok(grown >= 180 * MiB, `xfs sees the 192 MiB more inside (it grew by ${grown} bytes)`);
    await px.done();

    const vb = await create(a, blockCap(), 16 * MiB);
    const pb = await stagePublish(a, vb.volume_id, blockCap());
    await a.client.controller.ControllerExpandVolume({ volume_id: vb.volume_id, capacity_range: { required_bytes: 40 * MiB } });
    const nb = await a.client.node.NodeExpandVolume({ volume_id: vb.volume_id, volume_path: pb.target });
    assert.equal(nb.capacity_bytes, 40 * MiB);
    assert.equal((await run('blockdev', ['--getsize64', pb.target])).stdout.trim(), String(40 * MiB), 'the published device is 40 MiB');
    await pb.done();

    const ext4 = mountCap('ext4');
    const ve = await create(a, ext4, 32 * MiB);
    const pe = await stagePublish(a, ve.volume_id, ext4);
    await a.client.controller.ControllerExpandVolume({ volume_id: ve.volume_id, capacity_range: { required_bytes: 96 * MiB } });
    const grow = a.client.node.NodeExpandVolume({ volume_id: ve.volume_id, volume_path: pe.target, staging_target_path: pe.staging });
    if (hasCapability(CAP_SYS_RESOURCE)) await grow;
    else await expectCode(grow, status.FAILED_PRECONDITION, 'online ext4 growth without CAP_SYS_RESOURCE');
    await pe.done();
    const again = await stagePublish(b, ve.volume_id, ext4);
    const e = await statfs(again.target);
    assert.ok(e.blocks * e.bsize > 80 * MiB, `ext4 has grown by the next stage at the latest (${e.blocks * e.bsize} bytes)`);
    await again.done();
  });

  it('a chain of snapshots and restores is flattened past the clone depth limit (4)', async () => {
    let vol = await create(a, blockCap(), 8 * MiB);
    const info = async (image: string) => JSON.parse(await ceph.rbd(['info', '--format', 'json', `${ceph.info.pool}/${image}`])) as { parent?: unknown };
    const x = pattern(MiB);
    const p = await stagePublish(a, vol.volume_id, blockCap());
    await writeAt(p.target, x, 0);
    await p.done();
    // volume(0) → snap image(1) → restore(2) → snap(3) → restore(4) → snap(5: flattened)
    let flattenedAt = -1;
    for (let depth = 1; depth <= 5; depth += 2) {
      const snap = await snapshot(a, vol.volume_id);
      const snapImage = `csi-snap-${snap.snapshot_id.slice(-36)}`;
      if (depth === 5) flattenedAt = (await info(snapImage)).parent === undefined ? depth : -1;
      else assert.ok((await info(snapImage)).parent, `depth ${depth}: still a clone`);
      vol = await create(a, blockCap(), 8 * MiB, { snapshot: snap.snapshot_id });
    }
    assert.equal(flattenedAt, 5, 'the snapshot image at depth 5 was flattened');
    const last = await stagePublish(b, vol.volume_id, blockCap());
    assert.equal(sha256(await readAt(last.target, MiB, 0)), sha256(x), 'the bytes made it down the chain');
    await last.done();
  });

  it('deleting everything through the driver leaves nothing in the cluster or on the nodes', async () => {
    for (const id of created.snapshots) await a.client.controller.DeleteSnapshot({ snapshot_id: id });
    for (const id of created.volumes) await a.client.controller.DeleteVolume({ volume_id: id });
    const { images, trash } = await ceph.images();
    assert.deepEqual(images.filter((i) => i.startsWith('csi-')), [], 'no image');
    assert.deepEqual(trash, [], 'nothing in the trash');
    assert.deepEqual(await ceph.omapKeys('csi.volumes.default'), [], 'no volume name in the journal');
    assert.deepEqual(await ceph.omapKeys('csi.snaps.default'), [], 'no snapshot name in the journal');
    assert.deepEqual([...(await ceph.objects('csi.volume.')), ...(await ceph.objects('csi.snap.'))], [], 'no journal object');
    for (const drv of [a, b]) {
      assert.deepEqual(hostMounts().filter((m) => m.fsType.startsWith('fuse') && m.mountPoint.startsWith(drv.dir)), [], 'no rbd-fuse mount');
      assert.deepEqual(loopsUnder(drv.dir), [], 'no loop device');
    }
    await Promise.all([a.cleanup(), b.cleanup()]);
    assertNoLeftovers(a.dir);
    assertNoLeftovers(b.dir);
  });
});
