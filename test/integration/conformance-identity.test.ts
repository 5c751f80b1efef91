/**
 * CSI Identity service, against the real driver process (spec: GetPluginInfo, GetPluginCapabilities,
 * Probe), plus how the process itself behaves for a CO: a node-only deployment, and SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { expectCode, mountCap, MiB, status, uniqueName } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { detachIfOurs, leftovers, loopsUnder } from '../support/host-state.js';

const run = promisify(execFile);

/** csi-sanity's rule for plugin names (identity.go). */
const NAME_PATTERN = /^[a-zA-Z][A-Za-z0-9-._]{0,61}[a-zA-Z]$/;

const backends = testBackends();

for (const backend of backends) describe(`conformance: Identity service [${backend.name}]`, { skip: needsRoot }, () => {
  const local = backend.name === 'local';
  let drv: TestDriver;
  let nodeOnly: TestDriver | undefined;

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-id-' });
  });

  after(async () => {
    await nodeOnly?.cleanup();
    await drv?.cleanup();
  });

  it('GetPluginInfo names the plugin and its version', async () => {
    const info = await drv.client.identity.GetPluginInfo({});
    assert.equal(info.name, `${backend.name}.csi.stowage.dev`);
    assert.match(info.name, NAME_PATTERN);
    assert.ok(info.name.length <= 63);
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.equal(info.vendor_version, pkg.version, 'vendor_version should be the package version');
  });

  it('GetPluginCapabilities advertises exactly the controller service, group snapshots (rbd only), topology (local only) and online expansion', async () => {
    const { capabilities } = await drv.client.identity.GetPluginCapabilities({});
    const names = capabilities
      .map((c) => (c.service ? `service:${c.service.type}` : c.volume_expansion ? `expansion:${c.volume_expansion.type}` : `other:${JSON.stringify(c)}`))
      .sort();
    // rbd volumes are reachable from every node: no accessibility constraints.
    // Group snapshots where they truly work: RBD group snapshots (rbd-group-snapshot.test.ts).
    const groups = backend.name === 'rbd' ? ['service:GROUP_CONTROLLER_SERVICE'] : [];
    assert.deepEqual(names, ['expansion:ONLINE', 'service:CONTROLLER_SERVICE', ...groups, ...(local ? ['service:VOLUME_ACCESSIBILITY_CONSTRAINTS'] : [])]);
  });

  it('the GroupController: served where advertised, otherwise UNIMPLEMENTED (cephfs saying why)', async () => {
    const call = drv.client.groupController.GroupControllerGetCapabilities({});
    if (backend.name === 'rbd') {
      assert.deepEqual((await call).capabilities.map((c) => c.rpc?.type), ['CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT']);
      // csi-sanity's GroupController cases as it sends them (secrets when configured, so both ways),
      // and an ID that is ours but names no group (a volume's): NOT_FOUND for Get, OK for Delete.
      const gc = drv.rawClient.groupController;
      const vol = (await drv.client.controller.CreateVolume({ name: uniqueName('gcv'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 8 * MiB } })).volume!;
      for (const secrets of [drv.ceph!.secrets, {}]) {
        const how = Object.keys(secrets).length > 0 ? 'with secrets' : 'without secrets';
        await expectCode(gc.CreateVolumeGroupSnapshot({ secrets }), status.INVALID_ARGUMENT, `Create without a name, ${how}`);
        await expectCode(gc.GetVolumeGroupSnapshot({ secrets }), status.INVALID_ARGUMENT, `Get without an id, ${how}`);
        await expectCode(gc.DeleteVolumeGroupSnapshot({ secrets }), status.INVALID_ARGUMENT, `Delete without an id, ${how}`);
        await expectCode(gc.GetVolumeGroupSnapshot({ group_snapshot_id: 'fake-vol-id', secrets }), status.NOT_FOUND, `Get of an invalid id, ${how}`);
        await gc.DeleteVolumeGroupSnapshot({ group_snapshot_id: 'fake-vol-id', secrets });
      }
      await expectCode(gc.GetVolumeGroupSnapshot({ group_snapshot_id: vol.volume_id, secrets: drv.ceph!.secrets }), status.NOT_FOUND, 'Get of a volume ID');
      await gc.DeleteVolumeGroupSnapshot({ group_snapshot_id: vol.volume_id, secrets: drv.ceph!.secrets });
      await drv.client.controller.ValidateVolumeCapabilities({ volume_id: vol.volume_id, volume_capabilities: [mountCap()] });
      await drv.client.controller.DeleteVolume({ volume_id: vol.volume_id });
      return;
    }
    const err = await expectCode(call, status.UNIMPLEMENTED, 'GroupControllerGetCapabilities');
    if (backend.name === 'cephfs') assert.match(err.message, /does not cut group snapshots: .*quiesc/);
    await expectCode(drv.client.groupController.CreateVolumeGroupSnapshot({ name: uniqueName('g'), source_volume_ids: ['x'] }), status.UNIMPLEMENTED, 'CreateVolumeGroupSnapshot');
  });

  it('Probe answers OK and ready once the pool is mounted', async () => {
    const probe = await drv.client.identity.Probe({});
    assert.equal(probe.ready?.value, true);
  });

  it('a node-only driver (--node) serves no controller and does not advertise one', async () => {
    nodeOnly = await backend.start({ prefix: 'stowage-idn-', args: ['--node'] });
    const { capabilities } = await nodeOnly.client.identity.GetPluginCapabilities({});
    assert.ok(!capabilities.some((c) => c.service?.type === 'CONTROLLER_SERVICE'), 'CONTROLLER_SERVICE must not be advertised');
    assert.ok(!capabilities.some((c) => c.service?.type === 'GROUP_CONTROLLER_SERVICE'), 'nor GROUP_CONTROLLER_SERVICE');
    await expectCode(nodeOnly.client.groupController.GroupControllerGetCapabilities({}), status.UNIMPLEMENTED, 'GroupControllerGetCapabilities');
    await expectCode(nodeOnly.client.controller.ControllerGetCapabilities({}), status.UNIMPLEMENTED, 'ControllerGetCapabilities');
    await expectCode(
      nodeOnly.client.controller.CreateVolume({ name: uniqueName('x'), volume_capabilities: [mountCap()] }),
      status.UNIMPLEMENTED,
      'CreateVolume',
    );
    const info = await nodeOnly.client.node.NodeGetInfo({});
    assert.equal(info.node_id, 'test-node');
    await nodeOnly.cleanup();
    assertNoLeftovers(nodeOnly.dir);
  });

  it('SIGTERM: exits 0 and removes its socket; a restart serves the same volumes', async () => {
    const createdName = uniqueName('survivor');
    const created = await drv.client.controller.CreateVolume({
      name: createdName,
      volume_capabilities: [mountCap()],
      capacity_range: { required_bytes: 16 * MiB },
    });
    const id = created.volume!.volume_id;
    const exit = await drv.stop({ signal: 'SIGTERM' });
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(existsSync(drv.socketPath), false, 'the socket must be removed on SIGTERM');
    await drv.restart();
    const got = await backend.volume(drv, id);
    assert.equal(got?.volume_id, id);
    assert.equal(got?.capacity_bytes, 16 * MiB);
    // The restarted driver serves it: the same create answers with the same volume.
    assert.equal(
      (await drv.client.controller.CreateVolume({ name: createdName, volume_capabilities: [mountCap()], capacity_range: { required_bytes: 16 * MiB } })).volume?.volume_id,
      id,
    );
    await drv.client.controller.DeleteVolume({ volume_id: id });
  });

  if (local) it('while the pool is being set up: Probe OK with ready=false, other calls UNAVAILABLE', async () => {
    const seen: string[] = [];
    let early: TestDriver | undefined;
    try {
      early = await startTestDriver({
        prefix: 'stowage-ide-',
        async duringStartup(client, dir) {
          for (let i = 0; i < 2000; i++) {
            // Probe must always answer OK (csi-sanity); readiness is in the field. Readiness only
            // goes one way, so calls between two not-ready Probes ran before the pool was ready.
            const readyBefore = (await client.identity.Probe({})).ready?.value === true;
            const list = await client.controller.ListVolumes({}).then(
              () => 'OK',
              (e: { code?: number }) => status[e.code ?? -1] ?? String(e),
            );
            const stage = await client.node
              .NodeStageVolume({ volume_id: 'v', staging_target_path: join(dir, 'nonexistent', 'stg'), volume_capability: mountCap() })
              .then(
                () => 'OK',
                (e: { code?: number }) => status[e.code ?? -1] ?? String(e),
              );
            const ready = (await client.identity.Probe({})).ready?.value === true;
            seen.push(`${readyBefore || ready}:${list}:${stage}`);
            if (ready) break;
          }
          // Once Probe says ready, the same client is served.
          await client.controller.ListVolumes({});
          seen.push('served');
        },
      });
    } finally {
      await early?.cleanup();
    }
    const notReady = seen.filter((s) => s.startsWith('false:'));
    for (const s of notReady) assert.equal(s, 'false:UNAVAILABLE:UNAVAILABLE', 'before ready, every other call is UNAVAILABLE');
    assert.equal(seen.at(-1), 'served', `ready and serving at the end: ${seen.join(' ')}`);
    assertNoLeftovers(early!.dir);
  });

  if (local) it('refuses to format a pool.img holding another filesystem, exits non-zero, leaves it as it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-idf-'));
    const localDir = join(dir, 'local');
    const image = join(localDir, 'pool.img');
    try {
      await mkdir(localDir);
      await writeFile(image, '');
      await truncate(image, 64 * MiB);
      await run('mkfs.ext4', ['-q', '-F', image]);
      const uuid = (await run('blkid', ['-o', 'value', '-s', 'UUID', image])).stdout.trim();
      const proc = spawn(process.execPath, [join(import.meta.dirname, '..', '..', '..', 'bin', 'stowage.js'), 'driver', '--endpoint', join(dir, 'csi.sock'), '--node-id', 'n1', '--local-dir', localDir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
      proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const [code] = (await once(proc, 'exit')) as [number | null];
      clearTimeout(timer);
      assert.notEqual(code, 0, 'the driver must not run on a pool it cannot use');
      assert.match(output, /ext4/, 'and say why');
      assert.equal((await run('blkid', ['-o', 'value', '-s', 'UUID', image])).stdout.trim(), uuid, 'the image still holds the same ext4');
      assert.deepEqual(leftovers(dir), [], 'nothing left mounted or attached');
    } finally {
      for (const l of loopsUnder(dir)) await detachIfOurs(l.device, dir);
      if (leftovers(dir).length === 0) await rm(dir, { recursive: true, force: true });
    }
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
