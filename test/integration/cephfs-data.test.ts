/**
 * What a pod sees on a cephfs volume, against a real cluster: one volume published by two node
 * plugins (two driver processes, two ceph-fuse clients) is one shared filesystem (RWX); the quota
 * is enforced; a snapshot restores the old bytes; a clone holds the source's; an expansion shows
 * in statfs inside the mount; a ceph-fuse that dies is remounted, publications included, when the
 * node plugin restarts.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CsiError } from '../../src/csi/errors.js';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { fill, MiB, mountCap, pattern, sha256, status, uniqueName, writeSynced } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { mountAt } from '../support/host-state.js';

const ceph = useCephCluster();
const RWX = mountCap('', 'MULTI_NODE_MULTI_WRITER');

/** PIDs of ceph-fuse processes serving mountPoint. */
async function cephFusePids(mountPoint: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if ((argv[0] ?? '').endsWith('ceph-fuse') && argv[1] === mountPoint) out.push(Number(pid));
  }
  return out;
}

describe('cephfs: data through published volumes', { skip: needsRoot, timeout: 300_000 }, () => {
  let a: TestDriver;
  let b: TestDriver;

  before(async () => {
    // Two node plugins, as two nodes would run them (a and b also serve the controller; a is used for it).
    [a, b] = await Promise.all([
      startTestDriver({ backend: 'cephfs', ceph, prefix: 'stowage-cfsa-', nodeId: 'node-a' }),
      startTestDriver({ backend: 'cephfs', ceph, prefix: 'stowage-cfsb-', nodeId: 'node-b' }),
    ]);
  });

  after(async () => {
    for (const d of [a, b]) {
      if (!d) continue;
      const dir = d.dir;
      await d.cleanup();
      assertNoLeftovers(dir);
    }
  });

  async function create(bytes: number, source?: { snapshot?: { snapshot_id: string }; volume?: { volume_id: string } }, cap: VolumeCapabilityInput = RWX) {
    const res = await a.client.controller.CreateVolume({
      name: uniqueName('cfsd'),
      volume_capabilities: [cap],
      capacity_range: { required_bytes: bytes },
      ...(source ? { volume_content_source: source } : {}),
    });
    return res.volume!;
  }

  async function publish(drv: TestDriver, id: string, cap: VolumeCapabilityInput = RWX, readonly = false) {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await drv.client.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await drv.client.node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap, readonly });
    return {
      staging,
      target,
      async teardown() {
        await drv.client.node.NodeUnpublishVolume({ volume_id: id, target_path: target });
        await drv.client.node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      },
    };
  }

  it('RWX: two node plugins publish one volume; each sees the other’s writes; unstage ends both ceph-fuse clients', async () => {
    const vol = await create(64 * MiB);
    const onA = await publish(a, vol.volume_id);
    const onB = await publish(b, vol.volume_id);
    const second = await publish(b, vol.volume_id, RWX, true);
    try {
      assert.equal(mountAt(onA.staging)?.fsType, 'fuse.ceph-fuse');
      const [pidA] = await cephFusePids(onA.staging);
      const [pidB] = await cephFusePids(onB.staging);
      assert.ok(pidA && pidB && pidA !== pidB, 'one ceph-fuse per staging');
      const data = pattern(3 * MiB);
      await writeSynced(join(onA.target, 'from-a'), data);
      assert.equal(sha256(await readFile(join(onB.target, 'from-a'))), sha256(data), 'b reads what a wrote');
      await writeFile(join(onB.target, 'from-b'), 'hello from b');
      assert.equal(await readFile(join(onA.target, 'from-b'), 'utf8'), 'hello from b', 'a reads what b wrote');
      assert.equal(await readFile(join(second.target, 'from-b'), 'utf8'), 'hello from b', 'a read-only publication sees it too');
      await assert.rejects(writeFile(join(second.target, 'nope'), 'x'), { code: 'EROFS' });
      // Deleting it now would pull the filesystem from under both pods.
      const e = await a.client.controller.DeleteVolume({ volume_id: vol.volume_id }).then(() => undefined, (x: unknown) => x as CsiError);
      assert.equal(e?.code, status.FAILED_PRECONDITION, 'DeleteVolume of a mounted volume is refused');
      assert.match(e!.message, /still mounted by client\.\d+/);
      await onA.teardown();
      for (let i = 0; i < 50 && (await cephFusePids(onA.staging)).length > 0; i++) await sleep(100);
      assert.deepEqual(await cephFusePids(onA.staging), [], 'a’s ceph-fuse is gone after NodeUnstage');
    } finally {
      await second.teardown();
      await onB.teardown();
      await onA.teardown();
    }
    assert.deepEqual(await cephFusePids(onB.staging), []);
    await a.client.controller.DeleteVolume({ volume_id: vol.volume_id });
  });

  it('the quota is enforced: writing past the size fails with EDQUOT (or ENOSPC)', async () => {
    const vol = await create(16 * MiB);
    const pub = await publish(a, vol.volume_id);
    try {
      const { written, code } = await fill(join(pub.target, 'big'), 64 * MiB);
      assert.ok(code === 'EDQUOT' || code === 'ENOSPC', `writing past the quota fails (got ${code ?? 'no error'} after ${written} bytes)`);
      assert.ok(written <= 24 * MiB, `no more than the quota (plus what the client may buffer) was accepted: ${written}`);
    } finally {
      await pub.teardown();
    }
    await a.client.controller.DeleteVolume({ volume_id: vol.volume_id });
  });

  it('snapshot → restore holds the bytes of the snapshot; a clone holds the source’s; expansion shows in statfs', async () => {
    const vol = await create(32 * MiB);
    const pub = await publish(a, vol.volume_id);
    const before = pattern(2 * MiB);
    const later = pattern(2 * MiB);
    let restoredId = '';
    let cloneId = '';
    let snapshotId = '';
    try {
      await writeSynced(join(pub.target, 'data'), before);
      snapshotId = (await a.client.controller.CreateSnapshot({ name: uniqueName('cfsd-snap'), source_volume_id: vol.volume_id })).snapshot!.snapshot_id;
      await writeSynced(join(pub.target, 'data'), later);

      // One call: the driver waits for the mgr's copy while the caller waits.
      const restoreReq = {
        name: uniqueName('cfsd-restore'),
        volume_capabilities: [RWX],
        capacity_range: { required_bytes: 48 * MiB },
        volume_content_source: { snapshot: { snapshot_id: snapshotId } },
        parameters: ceph.cephfsParameters,
        secrets: ceph.cephfsSecrets,
      };
      restoredId = (await a.rawClient.controller.CreateVolume(restoreReq)).volume!.volume_id;
      cloneId = (await create(32 * MiB, { volume: { volume_id: vol.volume_id } })).volume_id;

      const r = await publish(a, restoredId);
      const c = await publish(b, cloneId);
      try {
        assert.equal(sha256(await readFile(join(r.target, 'data'))), sha256(before), 'the restore holds the snapshot’s bytes');
        assert.equal(sha256(await readFile(join(c.target, 'data'))), sha256(later), 'the clone holds the source’s bytes at clone time');
        const fs = statfsSync(r.target);
        assert.equal(fs.blocks * fs.bsize, 48 * MiB, 'the restore got the size asked for, not the snapshot’s');
        // The temporary snapshot of a clone is gone once the clone is done.
        assert.deepEqual(await ceph.subvolumeSnapshots(`csi-vol-${vol.volume_id.slice(-36)}`), [`csi-snap-${snapshotId.slice(-36)}`]);

        // Online expansion: the quota grows, the pod sees it at once.
        const res = await a.client.controller.ControllerExpandVolume({ volume_id: cloneId, capacity_range: { required_bytes: 80 * MiB } });
        assert.equal(res.node_expansion_required, false);
        let size = 0;
        for (let i = 0; i < 50 && size !== 80 * MiB; i++) {
          const s = statfsSync(c.target);
          size = s.blocks * s.bsize;
          if (size !== 80 * MiB) await sleep(100);
        }
        assert.equal(size, 80 * MiB, 'statfs inside the mount on the other node shows the new quota');
      } finally {
        await c.teardown();
        await r.teardown();
      }
    } finally {
      await pub.teardown();
    }
    for (const id of [restoredId, cloneId, vol.volume_id]) if (id) await a.client.controller.DeleteVolume({ volume_id: id });
    if (snapshotId) await a.client.controller.DeleteSnapshot({ snapshot_id: snapshotId });
  });

  it('a ceph-fuse that died is reported abnormal, and remounted with its publications when the node plugin restarts', async () => {
    const vol = await create(32 * MiB);
    const pub = await publish(b, vol.volume_id);
    const ro = b.targetDir(uniqueName('ro'));
    await b.client.node.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: pub.staging, target_path: ro, volume_capability: RWX, readonly: true });
    try {
      await writeSynced(join(pub.target, 'kept'), Buffer.from('survives the crash'));
      await b.kill9();
      for (const pid of await cephFusePids(pub.staging)) process.kill(pid, 'SIGKILL');
      await assert.rejects(readFile(join(pub.target, 'kept')), { code: 'ENOTCONN' });
      await b.restart();
      // The restarted node plugin repaired it before it said ready.
      assert.equal(await readFile(join(pub.target, 'kept'), 'utf8'), 'survives the crash');
      assert.equal(await readFile(join(ro, 'kept'), 'utf8'), 'survives the crash');
      assert.equal(mountAt(ro)?.readonly, true, 'the read-only publication is read-only again');
      await writeFile(join(pub.target, 'after'), 'writable again');
      const stats = await b.client.node.NodeGetVolumeStats({ volume_id: vol.volume_id, volume_path: pub.target });
      assert.equal(stats.volume_condition?.abnormal, false, stats.volume_condition?.message);
      // And while broken it says so: kill it again, without a restart.
      for (const pid of await cephFusePids(pub.staging)) process.kill(pid, 'SIGKILL');
      await sleep(200);
      const broken = await b.client.node.NodeGetVolumeStats({ volume_id: vol.volume_id, volume_path: pub.staging });
      assert.equal(broken.volume_condition?.abnormal, true);
      assert.match(broken.volume_condition?.message ?? '', /ceph-fuse/);
      // NodeStage again (the CO's retry) remounts it too.
      await b.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: pub.staging, volume_capability: RWX });
      assert.equal(await readFile(join(pub.target, 'after'), 'utf8'), 'writable again');
    } finally {
      await b.client.node.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: ro });
      await pub.teardown();
    }
    await a.client.controller.DeleteVolume({ volume_id: vol.volume_id });
  });

  it('mounter "kernel" is refused with a clear FAILED_PRECONDITION (this kernel has no ceph module)', async () => {
    const vol = (await a.client.controller.CreateVolume({
      name: uniqueName('cfsd-kernel'),
      volume_capabilities: [RWX],
      capacity_range: { required_bytes: 16 * MiB },
      parameters: { mounter: 'kernel' },
    })).volume!;
    const staging = a.stagingDir(uniqueName('stg'));
    const e = await a.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: RWX }).then(() => undefined, (x: unknown) => x as CsiError);
    assert.equal(e?.code, status.FAILED_PRECONDITION);
    // Names the module, how to load it, and the mounter that works here.
    assert.match(e!.message, /mounter "kernel" \(the kernel CephFS client\) needs the ceph kernel module/);
    assert.match(e!.message, /`modprobe ceph`/);
    assert.match(e!.message, /mounter "fuse" \(ceph-fuse\)/);
    assert.equal(mountAt(staging), undefined);
    // Refused before anything was touched: the CO's unstage finds nothing to undo.
    await a.client.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging });
    // Malformed kernelMountOptions never make a volume.
    const bad = await a.client.controller
      .CreateVolume({
        name: uniqueName('cfsd-badopt'),
        volume_capabilities: [RWX],
        capacity_range: { required_bytes: 16 * MiB },
        parameters: { mounter: 'kernel', kernelMountOptions: 'noatime,,ro' },
      })
      .then(
        () => undefined,
        (x: unknown) => x as CsiError,
      );
    assert.equal(bad?.code, status.INVALID_ARGUMENT);
    assert.match(bad!.message, /kernelMountOptions: empty option/);
    await a.client.controller.DeleteVolume({ volume_id: vol.volume_id });
  });
});
