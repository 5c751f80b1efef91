/**
 * The rbd node's mapper choice through the real driver and a real Ceph cluster, on this kind of
 * node (no rbd or nbd kernel module): a class without `mounter` stages through rbd-fuse + a loop
 * device and the stash records it; `mounter: rbd` (krbd) and `rbd-nbd` are refused at NodeStage
 * with FAILED_PRECONDITION naming the module, how to load it and mounter "fuse", leaving nothing;
 * malformed mapOptions are INVALID_ARGUMENT at CreateVolume, and at NodeStage when they come in
 * a (static PV's) volume context. The commands krbd and rbd-nbd would run are unit-tested
 * (test/unit/rbd-mappers.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { hostMounts, loopsUnder, mountAt } from '../support/host-state.js';

const ceph = useCephCluster();
const cap = mountCap('ext4');

describe('rbd mappers: the class chooses, the node refuses what its kernel cannot do', { skip: needsRoot, timeout: 240_000 }, () => {
  let drv: TestDriver;
  const volumes = new Set<string>();

  async function create(parameters: Record<string, string> = {}) {
    const res = await drv.client.controller.CreateVolume({ name: uniqueName('map'), volume_capabilities: [cap], capacity_range: { required_bytes: 16 * MiB }, parameters });
    volumes.add(res.volume!.volume_id);
    return res.volume!;
  }

  async function stashes(): Promise<{ volumeId: string; mapper?: string }[]> {
    const dir = join(drv.stateDir!, 'stage');
    const names = await readdir(dir).catch(() => [] as string[]);
    return Promise.all(names.filter((n) => n.endsWith('.json')).map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))));
  }

  before(async () => {
    drv = await startTestDriver({ backend: 'rbd', ceph, nodeId: 'node-m', prefix: 'stowage-rbd-map-' });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('no mounter, no rbd bus in this kernel: rbd-fuse + a loop device, recorded in the stash', { skip: existsSync('/sys/bus/rbd') ? 'this kernel has the rbd bus: krbd would be the default' : false }, async () => {
    const vol = await create();
    assert.equal(vol.volume_context['mounter'], undefined, 'no mounter in the volume context when the class names none');
    const staging = drv.stagingDir(uniqueName('stg'));
    await drv.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: cap, volume_context: vol.volume_context });
    assert.match(mountAt(staging)?.source ?? '', /^\/dev\/loop\d+$/, 'ext4 on a loop device');
    assert.deepEqual((await stashes()).map((s) => [s.volumeId, s.mapper]), [[vol.volume_id, 'fuse']]);
    await drv.client.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging });
    assert.deepEqual(await stashes(), []);
    assert.deepEqual(loopsUnder(drv.dir), []);
  });

  const refused: [string, string][] = [
    ['rbd', 'rbd'],
    ['rbd-nbd', 'nbd'],
  ];
  for (const [mounter, module] of refused) {
    it(`mounter "${mounter}" without the ${module} module → FAILED_PRECONDITION saying how to load it; nothing left`, { skip: existsSync(`/sys/module/${module}`) ? `this kernel has the ${module} module` : false }, async () => {
      const vol = await create({ mounter, mapOptions: 'krbd:lock_on_read;nbd:io-timeout=30' });
      assert.equal(vol.volume_context['mounter'], mounter, 'the mounter travels in the volume context, as in ceph-csi');
      assert.equal(vol.volume_context['mapOptions'], 'krbd:lock_on_read;nbd:io-timeout=30');
      const staging = drv.stagingDir(uniqueName('stg'));
      const e = await expectCode(
        drv.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: cap, volume_context: vol.volume_context }),
        status.FAILED_PRECONDITION,
        mounter,
      );
      assert.match(e.message, new RegExp(`mounter "${mounter}" \\(\\w+\\) needs the ${module} kernel module`));
      assert.match(e.message, new RegExp(`\`modprobe ${module}\``));
      assert.match(e.message, /mounter "fuse"/);
      assert.equal(mountAt(staging), undefined);
      assert.deepEqual(await stashes(), [], 'no stash left');
      assert.deepEqual(await readdir(join(drv.stateDir!, 'keys')).catch(() => []), [], 'no keyfile written');
      await drv.client.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging });
    });
  }

  it('malformed mapOptions / unmapOptions: INVALID_ARGUMENT at CreateVolume, and at NodeStage from a volume context', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ mapOptions: 'krbd:lock_on_read,,queue_depth=8' }, /mapOptions: empty option/],
      [{ unmapOptions: 'crush_location=zone:a' }, /unmapOptions: unknown mounter type/],
      [{ mapOptions: '' }, /mapOptions is empty/],
    ];
    for (const [parameters, re] of cases) {
      const e = await expectCode(
        drv.client.controller.CreateVolume({ name: uniqueName('badmap'), volume_capabilities: [cap], capacity_range: { required_bytes: 16 * MiB }, parameters }),
        status.INVALID_ARGUMENT,
        JSON.stringify(parameters),
      );
      assert.match(e.message, re);
    }
    const vol = await create({ mounter: 'fuse' });
    const staging = drv.stagingDir(uniqueName('stg'));
    const e = await expectCode(
      drv.client.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: cap, volume_context: { ...vol.volume_context, mapOptions: 'nbd:io timeout' } }),
      status.INVALID_ARGUMENT,
      'a static PV with malformed mapOptions',
    );
    assert.match(e.message, /malformed option "io timeout"/);
    assert.equal(mountAt(staging), undefined);
  });

  it('deleting the volumes leaves nothing on the node', async () => {
    for (const id of volumes) await drv.client.controller.DeleteVolume({ volume_id: id });
    assert.deepEqual(hostMounts().filter((m) => m.mountPoint.startsWith(drv.dir)), []);
    assert.deepEqual(loopsUnder(drv.dir), []);
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
