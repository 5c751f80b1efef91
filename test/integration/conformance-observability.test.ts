/**
 * What an operator sees of the real driver process: its logs never carry secrets (spec: "Secrets
 * Requirements"), and its Prometheus endpoint counts CSI operations the way csi-lib-utils does.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { expectCode, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { testBackends } from '../support/backends.js';
import { assertNoLeftovers, needsRoot, type TestDriver } from '../support/driver-harness.js';

const CREATE = '/csi.v1.Controller/CreateVolume';

const backends = testBackends();

for (const backend of backends) describe(`conformance: logs and metrics [${backend.name}]`, { skip: needsRoot }, () => {
  let drv: TestDriver;

  async function metrics(): Promise<string> {
    const res = await fetch(`http://${drv.metricsAddress}/metrics`);
    assert.equal(res.status, 200);
    return res.text();
  }

  /** The value of csi_plugin_operations_seconds_count for a method and status code (0 if absent). */
  function count(text: string, method: string, code: string): number {
    const line = text
      .split('\n')
      .find((l) => l.startsWith('csi_plugin_operations_seconds_count{') && l.includes(`method_name="${method}"`) && l.includes(`grpc_status_code="${code}"`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  before(async () => {
    drv = await backend.start({ prefix: 'stowage-obs-', logLevel: 'debug', metrics: true });
  });

  after(async () => {
    await drv?.cleanup();
  });

  it('secrets passed in any call never reach the log; they show as ***stripped***', async () => {
    const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
    const key = `k3y-${randomBytes(6).toString('hex')}`;
    const secrets = { password: secret, [key]: `${secret}-2` };
    const ctl = drv.client.controller;
    const node = drv.client.node;
    const name = uniqueName('secret-vol');
    const fs = backend.namedFs;
    const vol = await ctl.CreateVolume({ name, volume_capabilities: [mountCap(fs)], capacity_range: { required_bytes: 32 * MiB }, secrets });
    const id = vol.volume!.volume_id;
    // A refused call logs its request too.
    await expectCode(ctl.CreateVolume({ name: uniqueName('bad'), volume_capabilities: [mountCap('vfat')], secrets }), status.INVALID_ARGUMENT, 'bad create');
    const staging = drv.stagingDir(uniqueName('stg'));
    const target = drv.targetDir(uniqueName('tgt'));
    await node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap(fs), secrets });
    await node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap(fs), secrets });
    await node.NodeExpandVolume({ volume_id: id, volume_path: target, secrets }).catch(() => undefined);
    const snap = await ctl.CreateSnapshot({ name: uniqueName('secret-snap'), source_volume_id: id, secrets });
    await ctl.ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 48 * MiB }, secrets });
    await ctl.ValidateVolumeCapabilities({ volume_id: id, volume_capabilities: [mountCap(fs)], secrets });
    await ctl.ListSnapshots({ secrets }).catch(() => undefined); // UNIMPLEMENTED on rbd: still logged
    await ctl.DeleteSnapshot({ snapshot_id: snap.snapshot!.snapshot_id, secrets });
    await node.NodeUnpublishVolume({ volume_id: id, target_path: target });
    await node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    await ctl.DeleteVolume({ volume_id: id, secrets });
    await sleep(300); // let the child's last lines arrive

    const logs = drv.logs();
    assert.ok(logs.includes(name), 'the CreateVolume request was logged (otherwise this test proves nothing)');
    assert.ok(logs.includes(id), 'the calls on the volume were logged');
    assert.ok(!logs.includes(secret), 'a secret value appears in the driver log');
    assert.ok(logs.includes('***stripped***'), 'secrets are shown as ***stripped***');
    const requestLines = logs.split('\n').filter((l) => l.includes(name) && l.includes(CREATE));
    assert.ok(requestLines.length > 0);
    for (const l of requestLines) assert.ok(!l.includes(secret));
    // rbd: the cluster key travelled in every one of those calls (the harness adds it) and is never printed.
    if (drv.ceph) assert.ok(!logs.includes(drv.ceph.info.userKey), 'the cephx key appears in the driver log');
  });

  it('serves csi_plugin_operations_seconds by method and gRPC status code', async () => {
    const before = await metrics();
    const okBefore = count(before, CREATE, 'OK');
    const badBefore = count(before, CREATE, 'InvalidArgument');
    await drv.client.controller.CreateVolume({ name: uniqueName('m'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 16 * MiB } });
    await expectCode(drv.client.controller.CreateVolume({ name: '', volume_capabilities: [mountCap()] }), status.INVALID_ARGUMENT, 'no name');
    await expectCode(drv.client.controller.CreateVolume({ name: '', volume_capabilities: [mountCap()] }), status.INVALID_ARGUMENT, 'no name');
    const after = await metrics();
    assert.match(after, /# TYPE csi_plugin_operations_seconds histogram/);
    assert.equal(count(after, CREATE, 'OK'), okBefore + 1, 'one more successful CreateVolume');
    assert.equal(count(after, CREATE, 'InvalidArgument'), badBefore + 2, 'two more refused CreateVolume');
    const bucket = after
      .split('\n')
      .find((l) => l.startsWith('csi_plugin_operations_seconds_bucket{') && l.includes(`method_name="${CREATE}"`) && l.includes('le="0.1"'));
    assert.ok(bucket, 'histogram buckets (csi-lib-utils: 0.1 … 600 s)');
    assert.ok(bucket.includes(`driver_name="${backend.name}.csi.stowage.dev"`));
    assert.ok(/process_cpu_seconds_total/.test(after), 'process metrics too');
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
