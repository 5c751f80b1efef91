/**
 * The rbd backend's GroupController against a real cluster (ceph-dev), through the CSI client: it
 * is advertised (and only on rbd); a group snapshot of two volumes cuts both at one point in time —
 * what was written before it is in each member, what was written after is not; each member is an
 * ordinary snapshot restorable into a new volume, read back through librbd (`rbd export`); the
 * call is idempotent by name; Get and Delete check the member list; Delete removes every member;
 * no RBD group is left behind.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeId } from '../../src/driver/backends/ceph/volume-id.js';
import { useCephCluster } from '../support/ceph.js';
import { blockCap, expectCode, MiB, status, uniqueName } from '../support/csi-helpers.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();

describe('rbd GroupController: group snapshots', { skip: needsRoot, timeout: 300_000 }, () => {
  let drv: TestDriver;
  let scratch = '';
  const volumes = new Set<string>();
  const pool = () => ceph.parameters['pool'] ?? '';
  const image = (id: string) => `csi-vol-${decodeId(id)?.uuid ?? ''}`;

  const create = async (name: string, snapshotId?: string): Promise<string> => {
    const res = await drv.client.controller.CreateVolume({
      name,
      volume_capabilities: [blockCap()],
      capacity_range: { required_bytes: 8 * MiB },
      parameters: { imageFeatures: 'layering' },
      ...(snapshotId === undefined ? {} : { volume_content_source: { snapshot: { snapshot_id: snapshotId } } }),
    });
    const id = res.volume?.volume_id ?? '';
    volumes.add(id);
    return id;
  };
  /** Writes text at the start of a volume's image: straight into its first data object (no object map). */
  const write = async (id: string, text: string): Promise<void> => {
    const info = JSON.parse(await ceph.rbd(['info', `${pool()}/${image(id)}`, '--format', 'json'])) as { block_name_prefix: string };
    const file = join(scratch, 'data');
    await writeFile(file, Buffer.concat([Buffer.from(text), Buffer.alloc(4096 - text.length)]));
    await ceph.rados(['-p', pool(), 'put', `${info.block_name_prefix}.0000000000000000`, file]);
  };
  /** The text at the start of a volume's image, read through librbd (a clone reads through its parents). */
  const read = async (id: string): Promise<string> => {
    const file = join(scratch, 'export');
    await rm(file, { force: true });
    await ceph.rbd(['export', `${pool()}/${image(id)}`, file]);
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(file);
    return bytes.subarray(0, bytes.indexOf(0)).toString('utf8');
  };

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stowage-rbdg-data-'));
    drv = await startTestDriver({ backend: 'rbd', ceph, prefix: 'stowage-rbdg-' });
  });

  after(async () => {
    for (const id of volumes) await drv?.client.controller.DeleteVolume({ volume_id: id }).catch(() => undefined);
    await drv?.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  it('advertises the GroupController service and its one capability', async () => {
    const plugin = await drv.client.identity.GetPluginCapabilities({});
    assert.ok(plugin.capabilities.some((c) => c.service?.type === 'GROUP_CONTROLLER_SERVICE'));
    const caps = await drv.rawClient.groupController.GroupControllerGetCapabilities({});
    assert.deepEqual(caps.capabilities.map((c) => c.rpc?.type), ['CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT']);
  });

  it('cuts two volumes at one point in time; each member restores into a new volume with that point\'s data', async () => {
    const a = await create(uniqueName('grp-a'));
    const b = await create(uniqueName('grp-b'));
    await write(a, 'a: before the group snapshot');
    await write(b, 'b: before the group snapshot');
    const name = uniqueName('group');
    const secrets = ceph.secrets;
    const made = (await drv.rawClient.groupController.CreateVolumeGroupSnapshot({ name, source_volume_ids: [a, b], secrets })).group_snapshot;
    assert.ok(made?.group_snapshot_id);
    assert.equal(made.ready_to_use, true);
    assert.deepEqual(made.snapshots.map((s) => s.source_volume_id), [a, b]);
    for (const s of made.snapshots) {
      assert.equal(s.group_snapshot_id, made.group_snapshot_id);
      assert.equal(s.ready_to_use, true);
      assert.equal(Number(s.size_bytes), 8 * MiB);
    }
    const [sa, sb] = made.snapshots.map((s) => s.snapshot_id);
    assert.ok(sa && sb && sa !== sb);
    await write(a, 'a: after');
    await write(b, 'b: after');

    // Idempotent by name; the name with other volumes is taken.
    const again = (await drv.rawClient.groupController.CreateVolumeGroupSnapshot({ name, source_volume_ids: [b, a], secrets })).group_snapshot;
    assert.equal(again?.group_snapshot_id, made.group_snapshot_id);
    assert.deepEqual(again?.snapshots.map((s) => s.snapshot_id), [sa, sb]);
    await expectCode(drv.rawClient.groupController.CreateVolumeGroupSnapshot({ name, source_volume_ids: [a], secrets }), status.ALREADY_EXISTS, 'the name for other volumes');
    await expectCode(drv.rawClient.groupController.CreateVolumeGroupSnapshot({ name: uniqueName('g'), source_volume_ids: [], secrets }), status.INVALID_ARGUMENT, 'no volumes');

    const got = (await drv.rawClient.groupController.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, snapshot_ids: [sb, sa], secrets })).group_snapshot;
    assert.deepEqual(got?.snapshots.map((s) => s.snapshot_id), [sa, sb]);
    await expectCode(drv.rawClient.groupController.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, snapshot_ids: [sa], secrets }), status.FAILED_PRECONDITION, 'a member list that does not match');

    // No RBD group is left: the group existed only for the cut.
    assert.equal((await ceph.rbd(['group', 'ls', pool()])).trim(), '');

    const ra = await create(uniqueName('grp-ra'), sa);
    const rb = await create(uniqueName('grp-rb'), sb);
    assert.equal(await read(ra), 'a: before the group snapshot');
    assert.equal(await read(rb), 'b: before the group snapshot');
    assert.equal(await read(a), 'a: after', 'the sources go on');

    await expectCode(drv.rawClient.groupController.DeleteVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, snapshot_ids: [sa], secrets }), status.FAILED_PRECONDITION, 'delete with a member list that does not match');
    for (const id of [ra, rb]) {
      await drv.client.controller.DeleteVolume({ volume_id: id });
      volumes.delete(id);
    }
    await drv.rawClient.groupController.DeleteVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, snapshot_ids: [sa, sb], secrets });
    await expectCode(drv.rawClient.groupController.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, secrets }), status.NOT_FOUND, 'a deleted group');
    await drv.rawClient.groupController.DeleteVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, secrets });
    const { images } = await ceph.images();
    assert.ok(!images.some((i) => i.startsWith('csi-snap-')), `the members are gone: ${images.join(' ')}`);
    assert.deepEqual(await ceph.omapKeys('csi.groups.default'), [], 'the group journal is empty');
  });
});
