/**
 * The local pool failing under a running driver (issue 11, environment faults). Two real faults:
 *
 * - **read-only pool**: `mount -o remount,ro` on the pool, the state btrfs puts itself in when its
 *   device returns I/O errors (this kernel's btrfs has no FS_IOC_SHUTDOWN to force it, and a loop
 *   device cannot be made to fail: no dm, no fail_make_request);
 * - **pool gone**: the pool's loop device detached (`losetup -d`, which only sets autoclear while
 *   the filesystem is mounted) and the pool lazily unmounted (`umount -l`): the driver's pool root is
 *   an empty directory, while published volumes still hold the filesystem alive through their bind
 *   mounts, and the loop device goes away once the last of them is unmounted.
 *
 * In both: GetCapacity and CreateVolume answer UNAVAILABLE naming the fault (not INTERNAL with a
 * stack), NodeGetVolumeStats reports volume_condition abnormal with the same words, the driver keeps
 * serving; after a remount read-write, creates work again. And with the node agent: the fault becomes
 * a Warning VolumeConditionAbnormal event on the pod and its claim.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import { expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { loopsUnder, mountAt } from '../support/host-state.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { claim, eventsFor, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

const run = promisify(execFile);

describe('faults: the local pool fails under a running driver', { skip: needsRoot }, () => {
  let drv: TestDriver;
  const ctl = () => drv.client.controller;
  const node = () => drv.client.node;
  const poolRoot = () => join(drv.localDir, 'pool');
  let vol: { id: string; staging: string; target: string } | undefined;

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-fault-', poolSize: '300Mi' });
    const cap = mountCap();
    const id = (await ctl().CreateVolume({ name: uniqueName('f'), volume_capabilities: [cap], capacity_range: { required_bytes: 32 * MiB } })).volume!.volume_id;
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    vol = { id, staging, target };
  });

  after(async () => {
    if (vol) {
      await node().NodeUnpublishVolume({ volume_id: vol.id, target_path: vol.target }).catch(() => undefined);
      await node().NodeUnstageVolume({ volume_id: vol.id, staging_target_path: vol.staging }).catch(() => undefined);
    }
    await drv?.cleanup();
  });

  async function stats() {
    return node().NodeGetVolumeStats({ volume_id: vol!.id, volume_path: vol!.target });
  }

  it('read-only pool: UNAVAILABLE naming it, stats abnormal, and back to work after a read-write remount', async () => {
    assert.equal((await stats()).volume_condition?.abnormal, false);
    await run('mount', ['-o', 'remount,ro', poolRoot()]);
    try {
      const cap = await expectCode(ctl().GetCapacity({ volume_capabilities: [mountCap()] }), status.UNAVAILABLE, 'GetCapacity on a read-only pool');
      assert.match(cap.message, /is read-only \(btrfs turns read-only after an I\/O error/);
      assert.doesNotMatch(cap.message, /\n\s+at /, 'no stack trace');
      const create = await expectCode(
        ctl().CreateVolume({ name: uniqueName('ro'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: MiB } }),
        status.UNAVAILABLE,
        'CreateVolume on a read-only pool',
      );
      assert.match(create.message, /read-only/);
      const s = await stats();
      assert.equal(s.volume_condition?.abnormal, true);
      assert.match(s.volume_condition?.message ?? '', new RegExp(`volume ${vol!.id} is on a failing pool: the pool at .* is read-only`));
      assert.equal((await drv.client.identity.Probe({})).ready?.value, true, 'the driver still answers');
    } finally {
      await run('mount', ['-o', 'remount,rw', poolRoot()]);
    }
    const again = await ctl().CreateVolume({ name: uniqueName('rw'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: MiB } });
    await ctl().DeleteVolume({ volume_id: again.volume!.volume_id });
    assert.equal((await stats()).volume_condition?.abnormal, false);
  });

  it('pool gone (loop device detached, pool lazily unmounted): UNAVAILABLE, stats abnormal, the driver keeps serving', async () => {
    const [loop] = loopsUnder(drv.dir).filter((l) => l.backingFile === join(drv.localDir, 'pool.img'));
    assert.ok(loop, 'the pool has a loop device');
    await run('losetup', ['-d', loop.device]); // only sets autoclear: the filesystem is mounted
    await run('umount', ['-l', poolRoot()]);
    assert.equal(mountAt(poolRoot()), undefined, 'the pool is gone from the mount table');
    assert.ok(mountAt(vol!.target), 'the published volume still holds the filesystem');

    const cap = await expectCode(ctl().GetCapacity({ volume_capabilities: [mountCap()] }), status.UNAVAILABLE, 'GetCapacity without a pool');
    assert.match(cap.message, /the pool is not mounted at .*pool/);
    await expectCode(
      ctl().CreateVolume({ name: uniqueName('gone'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: MiB } }),
      status.UNAVAILABLE,
      'CreateVolume without a pool',
    );
    const s = await stats();
    assert.equal(s.volume_condition?.abnormal, true);
    assert.match(s.volume_condition?.message ?? '', /is on a failing pool: the pool is not mounted/);
    assert.equal((await drv.client.identity.Probe({})).ready?.value, false, 'Probe says not ready, and answers');
    assert.ok(drv.pid !== undefined, 'the driver is still running');

    // The volume can still be taken down; then the filesystem, and the loop device, are gone.
    await node().NodeUnpublishVolume({ volume_id: vol!.id, target_path: vol!.target });
    await node().NodeUnstageVolume({ volume_id: vol!.id, staging_target_path: vol!.staging });
    vol = undefined;
    await until(() => loopsUnder(drv.dir).length === 0 || undefined, 'the detached loop device to go with its last mount', 10_000);
  });
});

describe('faults: the node agent reports an abnormal volume on the pod and its claim', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;
  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-f');
  });
  after(async () => {
    await cluster?.cleanup();
  });

  it('a read-only pool under a running pod: Warning VolumeConditionAbnormal "Volume data: …"', async () => {
    const { plane } = cluster;
    plane.store.create(claim('faulty'));
    await until(() => (plane.store.get('persistentvolumeclaims', 'default', 'faulty') as PersistentVolumeClaim | undefined)?.status?.phase === 'Bound', 'claim Bound');
    plane.store.create(
      shellPod('sitter', 'while true; do sleep 0.2; done', { nodeName: 'node-f', volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'faulty' } }], mounts: [{ name: 'data', mountPath: '/data' }] }),
    );
    await until(() => podNamed(plane, 'sitter')?.status?.phase === 'Running', 'pod Running');
    const pool = join(cluster.nodes.get('node-f')!.driver.localDir, 'pool');
    await run('mount', ['-o', 'remount,ro', pool]);
    try {
      const onPod = await until(() => eventsFor(plane, 'sitter').find((e) => e.reason === 'VolumeConditionAbnormal'), 'the pod event', 30_000);
      assert.equal(onPod.type, 'Warning');
      assert.match(onPod.message ?? '', /^Volume data: volume .* is on a failing pool: the pool at .* is read-only/);
      const onClaim = await until(() => eventsFor(plane, 'faulty').find((e) => e.reason === 'VolumeConditionAbnormal'), 'the claim event', 30_000);
      assert.match(onClaim.message ?? '', /is on a failing pool/);
      assert.equal(eventsFor(plane, 'sitter').filter((e) => e.reason === 'VolumeConditionAbnormal').length, 1, 'one fault, one event');
    } finally {
      await run('mount', ['-o', 'remount,rw', pool]);
    }
  });
});
