/**
 * Issue 11, findings 1, 2 and 5, against the real driver process: the Node service takes staging,
 * target and volume paths only beneath its kubelet directory (the harness passes the temp dir as
 * --kubelet-dir), resolves their parents, refuses symlinks and the driver's own storage — all as
 * INVALID_ARGUMENT before anything is created or mounted — and keeps working afterwards.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, symlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { hostMounts, isUnder, mountCount } from '../support/host-state.js';

/** System paths the tests aim at; other tests run on the same kernel, so only these are compared. */
const SYSTEM_PATHS = ['/proc/self', '/usr/local', '/var/lib', '/sys/kernel', '/boot/x', '/dev/null', '/dev/zero', '/dev/shm/x'];

describe('conformance: Node service paths stay beneath --kubelet-dir [local]', { skip: needsRoot }, () => {
  let drv: TestDriver;
  let outside: string;
  const node = () => drv.client.node;
  /** Mounts on the system paths, in the driver's dir and in the outside dir: what these tests could have made. */
  const mountTable = () =>
    hostMounts()
      .filter((m) => SYSTEM_PATHS.includes(m.mountPoint) || isUnder(m.mountPoint, drv.dir) || isUnder(m.mountPoint, outside))
      .map((m) => `${m.mountPoint} ${m.fsType}`)
      .sort()
      .join('\n');

  async function create(): Promise<string> {
    const res = await drv.client.controller.CreateVolume({ name: uniqueName('pvol'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 32 * MiB } });
    return res.volume!.volume_id;
  }

  /** Every way a staging or target path can be given, each refused as INVALID_ARGUMENT. */
  async function refusedEverywhere(id: string, p: string): Promise<void> {
    const what = (rpc: string) => `${rpc} at ${p}`;
    const e = await expectCode(node().NodeStageVolume({ volume_id: id, staging_target_path: p, volume_capability: mountCap() }), status.INVALID_ARGUMENT, what('stage'));
    assert.match(e.message, /staging_target_path/, 'names the field');
    assert.match(e.message, new RegExp(`beneath ${drv.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'names the allowed root');
    const staging = drv.stagingDir(uniqueName('s'));
    await expectCode(node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: p, volume_capability: mountCap() }), status.INVALID_ARGUMENT, what('publish'));
    await expectCode(node().NodePublishVolume({ volume_id: id, staging_target_path: p, target_path: drv.targetDir(uniqueName('t')), volume_capability: mountCap() }), status.INVALID_ARGUMENT, what('publish from'));
    await expectCode(node().NodeUnpublishVolume({ volume_id: id, target_path: p }), status.INVALID_ARGUMENT, what('unpublish'));
    await expectCode(node().NodeUnstageVolume({ volume_id: id, staging_target_path: p }), status.INVALID_ARGUMENT, what('unstage'));
    await expectCode(node().NodeGetVolumeStats({ volume_id: id, volume_path: p }), status.INVALID_ARGUMENT, what('stats'));
    await expectCode(node().NodeExpandVolume({ volume_id: id, volume_path: p }), status.INVALID_ARGUMENT, what('expand'));
    await expectCode(node().NodeExpandVolume({ volume_id: id, volume_path: staging, staging_target_path: p }), status.INVALID_ARGUMENT, what('expand, staging'));
  }

  /** A full stage → publish → stats → unpublish → unstage round on proper paths. */
  async function roundTrip(id: string): Promise<void> {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap() });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap() });
    const stats = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
    assert.equal(stats.volume_condition?.abnormal, false);
    await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    assert.equal(mountCount(staging) + mountCount(target), 0);
    assert.equal(existsSync(target), false, 'the target the driver made is gone');
  }

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-paths-' });
    outside = await mkdtemp(join(tmpdir(), 'stowage-outside-'));
  });

  after(async () => {
    await drv?.cleanup();
    if (outside) await rm(outside, { recursive: true, force: true });
  });

  it('finding 1: /proc/self, /usr/local, /var/lib, /sys/kernel, /boot/x → INVALID_ARGUMENT, nothing mounted or created there', async () => {
    const id = await create();
    const before = mountTable();
    const bootX = existsSync('/boot/x');
    for (const p of ['/proc/self', '/usr/local', '/var/lib', '/sys/kernel', '/boot/x', '/var/lib/kubelet/pods/x/mount']) await refusedEverywhere(id, p);
    assert.equal(mountTable(), before, 'the mount table did not change');
    assert.equal(existsSync('/boot/x'), bootX, '/boot/x was not created');
    // And the node keeps working: before the fix, a mount on /proc/self broke every later call.
    await roundTrip(id);
  });

  it('finding 5: /dev/null and other device paths → INVALID_ARGUMENT, not INTERNAL', async () => {
    const id = await create();
    for (const p of ['/dev/null', '/dev/zero', '/dev/shm/x']) await refusedEverywhere(id, p);
    // A symlink to /dev/null beneath the root is refused too.
    const link = join(drv.dir, 'staging', uniqueName('devnull'));
    await mkdir(join(drv.dir, 'staging'), { recursive: true });
    symlinkSync('/dev/null', link);
    await refusedEverywhere(id, link);
    assert.ok(lstatSync('/dev/null').isCharacterDevice());
  });

  it('finding 2: a symlink as the last component → INVALID_ARGUMENT: to the pool meta, the pool root, a dir inside the root, outside', async () => {
    const id = await create();
    const metaDir = join(drv.localDir, 'meta');
    const poolRoot = join(drv.localDir, 'pool');
    assert.ok(existsSync(metaDir) && existsSync(poolRoot));
    const inside = drv.stagingDir(uniqueName('real'));
    const before = mountTable();
    for (const [name, to] of [['meta', metaDir], ['pool', poolRoot], ['inside', inside], ['outside', outside]] as const) {
      const link = join(drv.dir, uniqueName(`lnk-${name}`));
      symlinkSync(to, link);
      await refusedEverywhere(id, link);
    }
    assert.equal(mountTable(), before, 'nothing was mounted');
    // The pool still works: CreateVolume after the attempt on its root (it broke before the fix).
    await roundTrip(await create());
  });

  it('finding 2: a symlink as a parent → INVALID_ARGUMENT when it leads to the pool meta, the pool root or outside', async () => {
    const id = await create();
    const before = mountTable();
    const outsideBefore = readdirSync(outside);
    for (const [name, to] of [['meta', join(drv.localDir, 'meta')], ['pool', join(drv.localDir, 'pool')], ['local', drv.localDir], ['outside', outside]] as const) {
      const link = join(drv.dir, uniqueName(`plnk-${name}`));
      symlinkSync(to, link);
      await refusedEverywhere(id, join(link, 'x', 'globalmount'));
    }
    assert.equal(mountTable(), before, 'nothing was mounted');
    assert.deepEqual(readdirSync(outside), outsideBefore, 'nothing was created outside the root');
    assert.equal(existsSync(join(drv.localDir, 'meta', 'x')), false, 'nothing was created in the meta dir');
  });

  it('a parent symlink that stays beneath the root is resolved: the volume is staged at the canonical path', async () => {
    const id = await create();
    const realParent = join(drv.dir, 'staging', uniqueName('realparent'));
    await mkdir(realParent, { recursive: true });
    const link = join(drv.dir, uniqueName('via'));
    symlinkSync(realParent, link);
    await node().NodeStageVolume({ volume_id: id, staging_target_path: join(link, 'globalmount'), volume_capability: mountCap() });
    assert.equal(mountCount(join(realParent, 'globalmount')), 1, 'mounted at the resolved path');
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: join(link, 'globalmount') });
    assert.equal(mountCount(join(realParent, 'globalmount')), 0);
  });

  it('unpublish and unstage of paths that do not exist (beneath the root) stay idempotent: OK', async () => {
    const id = await create();
    await node().NodeUnpublishVolume({ volume_id: id, target_path: join(drv.dir, 'no', 'such', 'target') });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: join(drv.dir, 'no', 'such', 'staging') });
    assert.equal(existsSync(join(drv.dir, 'no')), false, 'nothing was created for them');
    await expectCode(node().NodeGetVolumeStats({ volume_id: id, volume_path: join(drv.dir, 'no', 'such', 'path') }), status.NOT_FOUND, 'stats, missing path');
  });

  it('the kubelet root itself, and the driver socket in it, are refused', async () => {
    const id = await create();
    await refusedEverywhere(id, drv.dir);
    await expectCode(node().NodeStageVolume({ volume_id: id, staging_target_path: drv.socketPath, volume_capability: mountCap() }), status.INVALID_ARGUMENT, 'the socket');
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
