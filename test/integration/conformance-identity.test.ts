/**
 * CSI Identity service, against the real driver process (spec: GetPluginInfo, GetPluginCapabilities,
 * Probe), plus how the process itself behaves for a CO: a node-only deployment, and SIGTERM.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, mountCap, MiB, status, uniqueName } from '../support/csi-helpers.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

/** csi-sanity's rule for plugin names (identity.go). */
const NAME_PATTERN = /^[a-zA-Z][A-Za-z0-9-._]{0,61}[a-zA-Z]$/;

describe('conformance: Identity service', { skip: needsRoot }, () => {
  let drv: TestDriver;
  let nodeOnly: TestDriver | undefined;

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-id-' });
  });

  after(async () => {
    await nodeOnly?.cleanup();
    await drv?.cleanup();
  });

  it('GetPluginInfo names the plugin and its version', async () => {
    const info = await drv.client.identity.GetPluginInfo({});
    assert.equal(info.name, 'local.csi.stowage.dev');
    assert.match(info.name, NAME_PATTERN);
    assert.ok(info.name.length <= 63);
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.equal(info.vendor_version, pkg.version, 'vendor_version should be the package version');
  });

  it('GetPluginCapabilities advertises exactly the controller service, topology and online expansion', async () => {
    const { capabilities } = await drv.client.identity.GetPluginCapabilities({});
    const names = capabilities
      .map((c) => (c.service ? `service:${c.service.type}` : c.volume_expansion ? `expansion:${c.volume_expansion.type}` : `other:${JSON.stringify(c)}`))
      .sort();
    assert.deepEqual(names, ['expansion:ONLINE', 'service:CONTROLLER_SERVICE', 'service:VOLUME_ACCESSIBILITY_CONSTRAINTS']);
  });

  it('Probe answers OK and ready once the pool is mounted', async () => {
    const probe = await drv.client.identity.Probe({});
    assert.equal(probe.ready?.value, true);
  });

  it('a node-only driver (--node) serves no controller and does not advertise one', async () => {
    nodeOnly = await startTestDriver({ prefix: 'stowage-idn-', args: ['--node'] });
    const { capabilities } = await nodeOnly.client.identity.GetPluginCapabilities({});
    assert.ok(!capabilities.some((c) => c.service?.type === 'CONTROLLER_SERVICE'), 'CONTROLLER_SERVICE must not be advertised');
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
    const created = await drv.client.controller.CreateVolume({
      name: uniqueName('survivor'),
      volume_capabilities: [mountCap()],
      capacity_range: { required_bytes: 16 * MiB },
    });
    const id = created.volume!.volume_id;
    const exit = await drv.stop({ signal: 'SIGTERM' });
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(existsSync(drv.socketPath), false, 'the socket must be removed on SIGTERM');
    await drv.restart();
    const got = await drv.client.controller.ControllerGetVolume({ volume_id: id });
    assert.equal(got.volume?.volume_id, id);
    assert.equal(got.volume?.capacity_bytes, 16 * MiB);
    await drv.client.controller.DeleteVolume({ volume_id: id });
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
