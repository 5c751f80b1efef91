/**
 * CSI Node service against the real driver process: stage/publish and their reverses, idempotency,
 * read-only, access modes, stats, path safety, and a driver crash in the middle of it all.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, expectCode, expectOkOr, MiB, mountCap, status, TOPOLOGY_KEY, uniqueName, writeSynced } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';
import { loopsUnder, mountAt, mountCount } from '../support/host-state.js';

const run = promisify(execFile);

async function writeFails(path: string): Promise<string | undefined> {
  try {
    await writeFile(path, 'x');
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

const backends = testBackends();

for (const backend of backends) describe(`conformance: Node service [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;
  const node = () => drv.client.node;
  const ctl = () => drv.client.controller;

  async function create(cap: VolumeCapabilityInput = mountCap(), bytes = 32 * MiB): Promise<string> {
    const res = await ctl().CreateVolume({ name: uniqueName('nvol'), volume_capabilities: [cap], capacity_range: { required_bytes: bytes } });
    return res.volume!.volume_id;
  }

  /** Loop devices of volume images (everything under the temp dir but the pool's own), or of one volume. */
  function volumeLoops(id?: string): string[] {
    return loopsUnder(drv.dir)
      // The backing file is named after the volume (local: its ID; rbd: its image csi-vol-<uuid>).
      .filter((l) => !l.backingFile.endsWith('/pool.img') && (id === undefined || l.backingFile.includes(id.slice(-36))))
      .map((l) => l.device);
  }

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-node-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('NodeGetCapabilities lists exactly what is implemented', async () => {
    const { capabilities } = await node().NodeGetCapabilities({});
    assert.deepEqual(capabilities.map((c) => c.rpc?.type).sort(), [
      'EXPAND_VOLUME',
      'GET_VOLUME_STATS',
      'SINGLE_NODE_MULTI_WRITER',
      'STAGE_UNSTAGE_VOLUME',
      'VOLUME_CONDITION',
    ]);
  });

  it('NodeGetInfo: node id, topology and a volume limit', async () => {
    const info = await node().NodeGetInfo({});
    assert.equal(info.node_id, drv.nodeId);
    if (backend.name === 'local') assert.deepEqual(info.accessible_topology?.segments, { [TOPOLOGY_KEY]: drv.nodeId });
    else assert.equal(info.accessible_topology, null, 'rbd volumes are reachable from every node: no topology');
    assert.ok(info.max_volumes_per_node > 0);
  });

  for (const fsType of ['', backend.namedFs]) {
    it(`${fsType || backend.defaultFs}: stage and publish 10× are idempotent (one mount each), the reverses remove everything`, async () => {
      const cap = mountCap(fsType);
      const id = await create(cap);
      const staging = drv.stagingDir(uniqueName('stg'));
      const target = drv.targetDir(uniqueName('tgt'));
      for (let i = 0; i < 10; i++) await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
      assert.equal(mountCount(staging), 1, 'staging path mounted exactly once');
      for (let i = 0; i < 10; i++) {
        await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap, readonly: false });
      }
      assert.equal(mountCount(target), 1, 'target mounted exactly once');
      assert.ok(lstatSync(target).isDirectory(), 'the driver creates the target directory');
      // The pod sees the volume: what it writes lands in the staged filesystem.
      await writeFile(join(target, 'hello'), 'from the pod');
      assert.equal(await readFile(join(staging, 'hello'), 'utf8'), 'from the pod');

      for (let i = 0; i < 3; i++) await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      assert.equal(mountCount(target), 0);
      assert.equal(existsSync(target), false, 'NodeUnpublishVolume removes the target it created');
      for (let i = 0; i < 3; i++) await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      assert.equal(mountCount(staging), 0, 'staging path unmounted');
      assert.deepEqual(volumeLoops(id), [], 'no loop device left attached');
      await ctl().DeleteVolume({ volume_id: id });
    });
  }

  it('publish before stage → FAILED_PRECONDITION, and nothing is mounted', async () => {
    for (const cap of [mountCap(), mountCap(backend.namedFs), ...(backend.block ? [blockCap()] : [])]) {
      const id = await create(cap);
      const staging = drv.stagingDir(uniqueName('never-staged'));
      const target = drv.targetDir(uniqueName('tgt'));
      await expectCode(
        node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap }),
        status.FAILED_PRECONDITION,
        `publish unstaged ${JSON.stringify(cap)}`,
      );
      assert.equal(mountCount(target), 0);
    }
  });

  it('publish without a staging_target_path → FAILED_PRECONDITION (spec: "Staging target path not set")', async () => {
    const id = await create();
    const target = drv.targetDir(uniqueName('tgt'));
    await expectCode(
      node().NodePublishVolume({ volume_id: id, target_path: target, volume_capability: mountCap() }),
      status.FAILED_PRECONDITION,
      'no staging path',
    );
  });

  it('readonly publish: the pod cannot write; the same target read-write → ALREADY_EXISTS', async () => {
    const id = await create();
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('ro'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap() });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), readonly: true });
    assert.equal(await writeFails(join(target, 'x')), 'EROFS');
    assert.equal(mountAt(target)?.readonly, true);
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), readonly: true });
    await expectCode(
      node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), readonly: false }),
      status.ALREADY_EXISTS,
      'same target, now read-write',
    );
    assert.equal(await writeFails(join(staging, 'y')), undefined, 'the staging mount itself stays writable');
    await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
  });

  it('SINGLE_NODE_READER_ONLY volumes are mounted read-only; mount flags are applied', async () => {
    const fs = backend.namedFs;
    const ro = mountCap(fs, 'SINGLE_NODE_READER_ONLY');
    const id = await create(mountCap(fs));
    // Format it once read-write (a blank volume can't be mounted read-only).
    const s0 = drv.stagingDir(uniqueName('fmt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: s0, volume_capability: mountCap(fs, 'SINGLE_NODE_WRITER', ['noatime']) });
    assert.ok(mountAt(s0)?.options.includes('noatime'), `noatime requested: ${mountAt(s0)?.options.join(',')}`);
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: s0 });
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: ro });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: ro, readonly: false });
    assert.equal(await writeFails(join(target, 'x')), 'EROFS');
    await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
  });

  // Volumes on a block device only: cephfs has no device to format.
  if (backend.block) it('a read-only stage of a blank volume is FAILED_PRECONDITION, never formats it, and leaves nothing behind', async () => {
    const fs = backend.namedFs;
    const id = await create(mountCap(fs));
    const staging = drv.stagingDir(uniqueName('stg'));
    for (const ro of [mountCap(fs, 'SINGLE_NODE_READER_ONLY'), mountCap(fs, 'SINGLE_NODE_WRITER', ['ro'])]) {
      const e = await expectCode(node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: ro }), status.FAILED_PRECONDITION, 'read-only stage of a blank volume');
      assert.match(e.message, /is blank; a read-only stage cannot format it/);
      assert.equal(mountAt(staging), undefined, 'nothing mounted');
      assert.deepEqual(volumeLoops(id), [], 'no loop device left');
    }
    // Still blank: a read-write stage formats it, and then a read-only one mounts it ro.
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap(fs) });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap(fs, 'SINGLE_NODE_READER_ONLY') });
    assert.equal(mountAt(staging)?.fsType, fs);
    assert.ok(mountAt(staging)?.options.includes('ro'), `mounted ro: ${mountAt(staging)?.options.join(',')}`);
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    assert.deepEqual(volumeLoops(id), []);
  });

  it('SINGLE_NODE_SINGLE_WRITER: a second target → FAILED_PRECONDITION; SINGLE_NODE_MULTI_WRITER allows it', async () => {
    const snsw = mountCap('', 'SINGLE_NODE_SINGLE_WRITER');
    const id = await create(snsw);
    const staging = drv.stagingDir(uniqueName('stg'));
    const t1 = drv.targetDir(uniqueName('t1'));
    const t2 = drv.targetDir(uniqueName('t2'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: snsw });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: t1, volume_capability: snsw });
    await expectCode(
      node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: t2, volume_capability: snsw }),
      status.FAILED_PRECONDITION,
      'second writer',
    );
    assert.equal(mountCount(t2), 0, 'nothing mounted at the refused target');
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: t1, volume_capability: snsw });
    await node().NodeUnpublishVolume({ volume_id: id, target_path: t1 });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });

    const snmw = mountCap('', 'SINGLE_NODE_MULTI_WRITER');
    const id2 = await create(snmw);
    const s2 = drv.stagingDir(uniqueName('stg'));
    const a = drv.targetDir(uniqueName('a'));
    const b = drv.targetDir(uniqueName('b'));
    await node().NodeStageVolume({ volume_id: id2, staging_target_path: s2, volume_capability: snmw });
    await node().NodePublishVolume({ volume_id: id2, staging_target_path: s2, target_path: a, volume_capability: snmw });
    await node().NodePublishVolume({ volume_id: id2, staging_target_path: s2, target_path: b, volume_capability: snmw });
    await writeFile(join(a, 'shared'), 'both see it');
    assert.equal(await readFile(join(b, 'shared'), 'utf8'), 'both see it');
    await node().NodeUnpublishVolume({ volume_id: id2, target_path: a });
    await node().NodeUnpublishVolume({ volume_id: id2, target_path: b });
    await node().NodeUnstageVolume({ volume_id: id2, staging_target_path: s2 });
  });

  it('a capability the volume does not have → FAILED_PRECONDITION (spec: exceeds capabilities)', async () => {
    const id = await create(mountCap());
    const staging = drv.stagingDir(uniqueName('stg'));
    // A capability the backend serves for no volume at all (cephfs: block, xfs) is INVALID_ARGUMENT.
    await expectCode(
      node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: blockCap() }),
      backend.block ? status.FAILED_PRECONDITION : status.INVALID_ARGUMENT,
      'block on mount volume',
    );
    await expectCode(
      node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap('xfs') }),
      backend.deviceFs ? status.FAILED_PRECONDITION : status.INVALID_ARGUMENT,
      'xfs on btrfs volume',
    );
    assert.equal(mountCount(staging), 0);
  });

  it('unknown volumes: stage/publish → NOT_FOUND; unstage/unpublish → OK or NOT_FOUND', async () => {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await expectCode(node().NodeStageVolume({ volume_id: 'fake-vol-id-1', staging_target_path: staging, volume_capability: mountCap() }), status.NOT_FOUND, 'stage');
    await expectCode(
      node().NodePublishVolume({ volume_id: 'fake-vol-id-1', staging_target_path: staging, target_path: target, volume_capability: mountCap() }),
      status.NOT_FOUND,
      'publish',
    );
    await expectOkOr(node().NodeUnpublishVolume({ volume_id: 'fake-vol-id-1', target_path: target }), [status.NOT_FOUND], 'unpublish');
    await expectOkOr(node().NodeUnstageVolume({ volume_id: 'fake-vol-id-1', staging_target_path: staging }), [status.NOT_FOUND], 'unstage');
    // A known volume that was never staged or published: OK (csi-sanity's cleanup does this).
    const id = await create();
    await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    // A CO retrying after the kubelet removed the directories: paths that no longer exist are done too.
    const gone = join(dirname(staging), uniqueName('gone'));
    await drv.rawClient.node.NodeUnstageVolume({ volume_id: id, staging_target_path: gone });
    await drv.rawClient.node.NodeUnpublishVolume({ volume_id: id, target_path: join(dirname(target), uniqueName('gone')) });
    assert.equal(existsSync(gone), false, 'nothing is created at a path that was not there');
  });

  it('missing arguments → INVALID_ARGUMENT, checked before any lookup', async () => {
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    const id = 'fake-vol-id-2';
    const cases: [string, () => Promise<unknown>][] = [
      ['stage: no id', () => node().NodeStageVolume({ staging_target_path: staging, volume_capability: mountCap(), publish_context: { device: '/dev/mock' } })],
      ['stage: no staging path', () => node().NodeStageVolume({ volume_id: id, volume_capability: mountCap() })],
      ['stage: no capability', () => node().NodeStageVolume({ volume_id: id, staging_target_path: staging })],
      ['publish: nothing', () => node().NodePublishVolume({})],
      ['publish: no target', () => node().NodePublishVolume({ volume_id: id })],
      ['publish: no capability', () => node().NodePublishVolume({ volume_id: id, target_path: target })],
      ['publish: no capability (with staging)', () => node().NodePublishVolume({ volume_id: id, target_path: target, staging_target_path: staging })],
      ['unpublish: nothing', () => node().NodeUnpublishVolume({})],
      ['unpublish: no target', () => node().NodeUnpublishVolume({ volume_id: id })],
      ['unstage: no id', () => node().NodeUnstageVolume({ staging_target_path: staging })],
      ['unstage: no staging path', () => node().NodeUnstageVolume({ volume_id: id })],
      ['stats: no id', () => node().NodeGetVolumeStats({ volume_path: 'some/path' })],
      ['stats: no path', () => node().NodeGetVolumeStats({ volume_id: id })],
    ];
    for (const [what, call] of cases) await expectCode(call(), status.INVALID_ARGUMENT, what);
    // The same with a real volume: still INVALID_ARGUMENT.
    const real = await create();
    await expectCode(node().NodeStageVolume({ volume_id: real, staging_target_path: staging }), status.INVALID_ARGUMENT, 'stage real volume, no capability');
  });

  it('path safety: system, relative, ".." and pool paths → INVALID_ARGUMENT', async () => {
    const unknown = 'fake-vol-id-3';
    const pool = join(drv.localDir, 'pool');
    const bad = ['/', '/etc', '/var/', '/usr', '/proc', 'relative/path', `${drv.dir}/staging/../../../etc`, `${drv.dir}/../../etc`, drv.localDir, pool, join(pool, 'volumes'), join(pool, 'x')];
    for (const p of bad) {
      // An unknown volume: a driver that looked the volume up first would answer NOT_FOUND.
      await expectCode(node().NodeStageVolume({ volume_id: unknown, staging_target_path: p, volume_capability: mountCap() }), status.INVALID_ARGUMENT, `stage at ${p}`);
      await expectCode(
        node().NodePublishVolume({ volume_id: unknown, staging_target_path: drv.stagingDir('s'), target_path: p, volume_capability: mountCap() }),
        status.INVALID_ARGUMENT,
        `publish at ${p}`,
      );
      await expectCode(node().NodeUnpublishVolume({ volume_id: unknown, target_path: p }), status.INVALID_ARGUMENT, `unpublish at ${p}`);
      await expectCode(node().NodeUnstageVolume({ volume_id: unknown, staging_target_path: p }), status.INVALID_ARGUMENT, `unstage at ${p}`);
    }
    // Inside the pool with a real volume (harmless if the check were missing: it is our own dir).
    const id = await create();
    await expectCode(node().NodeStageVolume({ volume_id: id, staging_target_path: join(pool, 'x'), volume_capability: mountCap() }), status.INVALID_ARGUMENT, 'stage into the pool');
    assert.equal(mountCount(join(pool, 'x')), 0);
  });

  it('NodeUnpublishVolume never deletes a file it did not create', async () => {
    const id = await create();
    const precious = join(drv.dir, 'target', uniqueName('precious'));
    await mkdir(join(drv.dir, 'target'), { recursive: true });
    await writeFile(precious, 'user data');
    await expectOkOr(node().NodeUnpublishVolume({ volume_id: id, target_path: precious }), [status.FAILED_PRECONDITION, status.INVALID_ARGUMENT, status.NOT_FOUND], 'unpublish a path never published');
    assert.equal(await readFile(precious, 'utf8'), 'user data', 'the file must survive');
  });

  it('NodeUnpublishVolume of one volume does not unmount another volume at that path', async () => {
    const a = await create();
    const b = await create();
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('b'));
    await node().NodeStageVolume({ volume_id: b, staging_target_path: staging, volume_capability: mountCap() });
    await node().NodePublishVolume({ volume_id: b, staging_target_path: staging, target_path: target, volume_capability: mountCap() });
    await writeFile(join(target, 'b-data'), 'belongs to b');
    await expectOkOr(node().NodeUnpublishVolume({ volume_id: a, target_path: target }), [status.FAILED_PRECONDITION, status.INVALID_ARGUMENT, status.NOT_FOUND], 'unpublish the wrong volume');
    assert.equal(mountCount(target), 1, 'volume b must stay published');
    assert.equal(await readFile(join(target, 'b-data'), 'utf8'), 'belongs to b');
    await node().NodeUnpublishVolume({ volume_id: b, target_path: target });
    await node().NodeUnstageVolume({ volume_id: b, staging_target_path: staging });
  });

  it('NodeUnstageVolume of one volume does not unmount another volume staged at that path', async () => {
    for (const cap of [mountCap(), mountCap(backend.namedFs)]) {
      const a = await create(cap);
      const b = await create(cap);
      const staging = drv.stagingDir(uniqueName('stg'));
      await node().NodeStageVolume({ volume_id: b, staging_target_path: staging, volume_capability: cap });
      await writeFile(join(staging, 'b-data'), 'belongs to b');
      await expectOkOr(node().NodeUnstageVolume({ volume_id: a, staging_target_path: staging }), [status.FAILED_PRECONDITION, status.INVALID_ARGUMENT, status.NOT_FOUND], 'unstage the wrong volume');
      assert.equal(mountCount(staging), 1, `volume b (${JSON.stringify(cap)}) must stay staged`);
      assert.equal(await readFile(join(staging, 'b-data'), 'utf8'), 'belongs to b');
      await node().NodeUnstageVolume({ volume_id: b, staging_target_path: staging });
      assert.equal(mountCount(staging), 0);
    }
  });

  it('staging at a path another volume holds → ALREADY_EXISTS, and the refused volume is not left attached', async () => {
    const cap = mountCap(backend.namedFs);
    const a = await create(cap);
    const b = await create(cap);
    const staging = drv.stagingDir(uniqueName('stg'));
    await node().NodeStageVolume({ volume_id: b, staging_target_path: staging, volume_capability: cap });
    try {
      await expectCode(node().NodeStageVolume({ volume_id: a, staging_target_path: staging, volume_capability: cap }), status.ALREADY_EXISTS, 'stage a where b is');
      assert.deepEqual(volumeLoops(a), [], 'the refused volume has no loop device');
      await ctl().DeleteVolume({ volume_id: a });
    } finally {
      await node().NodeUnstageVolume({ volume_id: b, staging_target_path: staging });
    }
  });

  if (backend.name !== 'local') it('NodePublishVolume carrying secrets (csi-sanity’s NodePublishVolumeSecret, a class’s nodePublishSecretRef) works as one without', async () => {
    const ceph = drv.ceph!;
    const secrets = backend.name === 'cephfs' ? ceph.cephfsSecrets : ceph.secrets;
    const cap = mountCap(backend.namedFs);
    const vol = (await ctl().CreateVolume({ name: uniqueName('pubsec'), volume_capabilities: [cap], capacity_range: { required_bytes: 32 * MiB } })).volume!;
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    const raw = drv.rawClient.node;
    await raw.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: cap, volume_context: vol.volume_context, secrets });
    try {
      for (let i = 0; i < 2; i++) {
        await raw.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: staging, target_path: target, volume_capability: cap, volume_context: vol.volume_context, secrets });
      }
      assert.equal(mountCount(target), 1);
      await writeFile(join(target, 'f'), 'x');
      const stats = await raw.NodeGetVolumeStats({ volume_id: vol.volume_id, volume_path: target });
      assert.equal(stats.volume_condition?.abnormal, false);
    } finally {
      await raw.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: target });
      await raw.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging });
    }
    assert.equal(existsSync(target), false);
  });

  it('NodeStage again at the same path: the same capability is OK; read-only for read-write or other mount flags → ALREADY_EXISTS', async () => {
    // Spec: "volume previously staged with different flags". A CO that got OK would believe its flags applied.
    const cap = mountCap(backend.namedFs);
    const id = await create(cap);
    const staging = drv.stagingDir(uniqueName('stg'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    try {
      await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
      const cases: [string, VolumeCapabilityInput][] = [
        ['read-only access mode on a read-write staging', mountCap(backend.namedFs, 'SINGLE_NODE_READER_ONLY')],
        // local's bind mounts keep no record of the flags they were asked for: only read-only is compared there.
        ...(backend.name === 'local' ? [] : [['other mount flags', mountCap(backend.namedFs, 'SINGLE_NODE_WRITER', ['noatime'])] as [string, VolumeCapabilityInput]]),
      ];
      for (const [what, other] of cases) {
        const e = await expectCode(node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: other }), status.ALREADY_EXISTS, what);
        assert.match(e.message, /already staged/);
      }
      assert.equal(mountCount(staging), 1, 'the staging is left as it was');
      assert.equal(mountAt(staging)?.readonly, false, 'still read-write');
    } finally {
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    }
    // Unstaged, the path takes the other staging.
    const ro = mountCap(backend.namedFs, 'SINGLE_NODE_READER_ONLY');
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: ro });
    assert.equal(mountAt(staging)?.readonly, true);
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
  });

  describe('NodeGetVolumeStats', () => {
    it('another volume’s path → NOT_FOUND (spec: volume does not exist on volume_path)', async () => {
      const a = await create();
      const named = mountCap(backend.namedFs);
      const b = await create(named);
      const staging = drv.stagingDir(uniqueName('stg'));
      const target = drv.targetDir(uniqueName('tgt'));
      await node().NodeStageVolume({ volume_id: b, staging_target_path: staging, volume_capability: named });
      await node().NodePublishVolume({ volume_id: b, staging_target_path: staging, target_path: target, volume_capability: named });
      try {
        await expectCode(node().NodeGetVolumeStats({ volume_id: a, volume_path: target }), status.NOT_FOUND, 'stats of a at b’s target');
        await expectCode(node().NodeGetVolumeStats({ volume_id: a, volume_path: staging }), status.NOT_FOUND, 'stats of a at b’s staging path');
      } finally {
        await node().NodeUnpublishVolume({ volume_id: b, target_path: target });
        await node().NodeUnstageVolume({ volume_id: b, staging_target_path: staging });
      }
    });


    if (backend.name === 'local') it('btrfs volume: bytes (total = size, used grows with data) and no meaningless inode entry', async () => {
      const id = await create(mountCap(), 64 * MiB);
      const staging = drv.stagingDir(uniqueName('stg'));
      const target = drv.targetDir(uniqueName('tgt'));
      await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap() });
      await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap() });
      const before = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
      const bytes0 = before.usage.find((u) => u.unit === 'BYTES');
      assert.ok(bytes0, 'BYTES usage');
      assert.equal(bytes0.total, 64 * MiB);
      // btrfs allocates inodes dynamically: an all-zero INODES entry would only mislead.
      assert.ok(!before.usage.some((u) => u.unit === 'INODES'), 'no INODES usage for btrfs');
      assert.equal(before.volume_condition?.abnormal, false);
      await writeSynced(join(target, 'data'), Buffer.alloc(8 * MiB, 7));
      await run('sync', ['-f', target]);
      const after = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
      const bytes1 = after.usage.find((u) => u.unit === 'BYTES')!;
      assert.ok(bytes1.used >= bytes0.used + 8 * MiB, `used ${bytes0.used} -> ${bytes1.used} after writing 8 MiB`);
      assert.ok(bytes1.available <= 64 * MiB - 8 * MiB, `available ${bytes1.available}`);
      // The staging path is a valid volume_path too.
      await node().NodeGetVolumeStats({ volume_id: id, volume_path: staging });
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    });

    if (backend.name === 'cephfs') it('cephfs volume: bytes (total = the quota, used grows with data) and no meaningless inode entry', async () => {
      const id = await create(mountCap(), 64 * MiB);
      const staging = drv.stagingDir(uniqueName('stg'));
      const target = drv.targetDir(uniqueName('tgt'));
      await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap() });
      await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap() });
      const before = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
      const bytes0 = before.usage.find((u) => u.unit === 'BYTES');
      assert.equal(bytes0?.total, 64 * MiB, 'ceph-fuse reports the subvolume quota as the size');
      assert.ok(!before.usage.some((u) => u.unit === 'INODES'), 'CephFS has no fixed inode count');
      assert.equal(before.volume_condition?.abnormal, false);
      await writeSynced(join(target, 'data'), Buffer.alloc(8 * MiB, 7));
      let bytes1 = bytes0;
      // The MDS learns the new usage from the client's cap flush: give it a moment.
      for (let i = 0; i < 50 && bytes1.used < bytes0.used + 8 * MiB; i++) {
        await new Promise((r) => setTimeout(r, 200));
        bytes1 = (await node().NodeGetVolumeStats({ volume_id: id, volume_path: target })).usage.find((u) => u.unit === 'BYTES')!;
      }
      assert.ok(bytes1.used >= bytes0.used + 8 * MiB, `used ${bytes0.used} -> ${bytes1.used} after writing 8 MiB`);
      assert.ok(bytes1.available <= 64 * MiB - 8 * MiB, `available ${bytes1.available}`);
      await node().NodeGetVolumeStats({ volume_id: id, volume_path: staging });
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    });

    if (backend.deviceFs) it('ext4 volume: bytes and inodes', async () => {
      const id = await create(mountCap('ext4'), 64 * MiB);
      const staging = drv.stagingDir(uniqueName('stg'));
      const target = drv.targetDir(uniqueName('tgt'));
      await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap('ext4') });
      await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap('ext4') });
      const stats = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
      const bytes = stats.usage.find((u) => u.unit === 'BYTES');
      const inodes = stats.usage.find((u) => u.unit === 'INODES');
      assert.ok(bytes && bytes.total > 48 * MiB && bytes.total <= 64 * MiB, `bytes total ${bytes?.total}`);
      assert.ok(bytes.available > 0 && bytes.available <= bytes.total);
      assert.ok(inodes && inodes.total > 0 && inodes.used > 0 && inodes.available > 0, `inodes ${JSON.stringify(inodes)}`);
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    });

    it('unknown volume, relative or missing path → NOT_FOUND', async () => {
      await expectCode(node().NodeGetVolumeStats({ volume_id: 'fake-vol-id-4', volume_path: 'some/path' }), status.NOT_FOUND, 'unknown volume');
      const id = await create();
      await expectCode(node().NodeGetVolumeStats({ volume_id: id, volume_path: 'some/path' }), status.NOT_FOUND, 'relative path');
      await expectCode(node().NodeGetVolumeStats({ volume_id: id, volume_path: join(drv.dir, 'no', 'such', 'path') }), status.NOT_FOUND, 'missing path');
    });

    it('a target unmounted behind the driver’s back is reported abnormal', async () => {
      const id = await create();
      const staging = drv.stagingDir(uniqueName('stg'));
      const target = drv.targetDir(uniqueName('tgt'));
      await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap() });
      await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap() });
      await run('umount', [target]);
      const stats = await node().NodeGetVolumeStats({ volume_id: id, volume_path: target });
      assert.equal(stats.volume_condition?.abnormal, true);
      assert.ok((stats.volume_condition?.message ?? '').length > 0);
      await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
      assert.equal(existsSync(target), false);
      await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    });
  });

  it('survives kill -9: staged state is read back from the kernel and the data is intact', async () => {
    const cap = mountCap(backend.namedFs);
    const id = await create(cap);
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    await writeSynced(join(target, 'before-crash'), Buffer.from('still here'));
    await drv.kill9();
    assert.equal(mountCount(target), 1, 'the kernel keeps the mounts while the driver is down');
    await drv.restart();
    // The CO retries what it was doing: both must be recognised as done, not repeated.
    await node().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
    assert.equal(mountCount(staging), 1);
    assert.equal(mountCount(target), 1);
    assert.equal(volumeLoops(id).length, backend.deviceFs ? 1 : 0, backend.deviceFs ? 'still one loop device' : 'no loop device (a ceph-fuse mount)');
    assert.equal(await readFile(join(target, 'before-crash'), 'utf8'), 'still here');
    await expectCode(ctl().DeleteVolume({ volume_id: id }), status.FAILED_PRECONDITION, 'delete while staged, after restart');
    await node().NodeUnpublishVolume({ volume_id: id, target_path: target });
    await node().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    assert.deepEqual(volumeLoops(id), []);
    await ctl().DeleteVolume({ volume_id: id });
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
