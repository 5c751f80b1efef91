/**
 * A Ceph OSD stopped mid-operation under the rbd driver (issue 11, environment faults). The dev
 * cluster's only OSD is a memstore OSD: killed and restarted it would come back empty, so "stopped"
 * is SIGSTOP (the process frozen, its sockets open: what a hung OSD or a paused VM looks like) and
 * "restarted" is SIGCONT. With one OSD no peer reports it down, so clients just wait: the driver's
 * --ceph-timeout (rados_osd_op_timeout) is what bounds the wait. Then CreateVolume answers
 * UNAVAILABLE (or DEADLINE_EXCEEDED), never INTERNAL, within the timeout; and once the OSD runs
 * again the CO's retry of the same name succeeds, with one image for the name.
 */
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DevCluster } from '../../src/ceph/dev-cluster.js';
import { CsiError } from '../../src/csi/errors.js';
import { MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { useCephCluster } from '../support/ceph.js';
import { needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';

const ceph = useCephCluster();
const TIMEOUT_S = 3;

describe('rbd: an OSD stopped mid-operation', { skip: needsRoot, timeout: 240_000 }, () => {
  let drv: TestDriver;
  let osdPid = 0;
  const created: string[] = [];

  before(async () => {
    drv = await startTestDriver({ backend: 'rbd', ceph, prefix: 'stowage-rbdosd-', cephTimeoutSeconds: TIMEOUT_S });
    const st = await new DevCluster(dirname(ceph.info.conf), { installPackages: false }).status();
    osdPid = st.daemons.find((d) => d.name.startsWith('osd.') && d.alive)?.pid ?? 0;
    assert.ok(osdPid > 0, `the dev cluster's OSD is running: ${JSON.stringify(st.daemons)}`);
  });

  after(async () => {
    if (osdPid > 0) process.kill(osdPid, 'SIGCONT');
    for (const id of created) await drv.client.controller.DeleteVolume({ volume_id: id }).catch(() => undefined);
    await drv?.cleanup();
  });

  it('CreateVolume with the OSD stopped: UNAVAILABLE/DEADLINE_EXCEEDED within the timeout; after it runs again, the retry succeeds', async (t) => {
    const ctl = drv.client.controller;
    const req = (name: string) => ({ name, volume_capabilities: [mountCap('ext4')], capacity_range: { required_bytes: 16 * MiB } });
    // A first volume: the connection to the cluster is up and cached before the fault.
    created.push((await ctl.CreateVolume(req(uniqueName('before')))).volume!.volume_id);

    const name = uniqueName('osd-stopped');
    process.kill(osdPid, 'SIGSTOP');
    let failure: CsiError | undefined;
    const started = Date.now();
    try {
      await ctl.CreateVolume(req(name), { timeoutMs: 60_000 });
    } catch (e) {
      if (!(e instanceof CsiError)) throw e;
      failure = e;
    } finally {
      process.kill(osdPid, 'SIGCONT');
    }
    const took = Date.now() - started;
    assert.ok(failure, 'a create cannot succeed while the OSD is stopped');
    t.diagnostic(`with the OSD stopped, after ${took} ms: ${status[failure.code]}: ${failure.message}`);
    assert.ok([status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(failure.code), `a clear status, not ${status[failure.code]}: ${failure.message}`);
    assert.match(failure.message, /did not answer in time: .*ETIMEDOUT.*an OSD or monitor is not responding/);
    assert.doesNotMatch(failure.message, /\n\s+at /, 'no stack trace');
    assert.ok(took < 10 * TIMEOUT_S * 1000, `answered in ${took} ms, bounded by --ceph-timeout ${TIMEOUT_S} s`);

    // The CO retries the same name with backoff: it succeeds once the OSD serves again.
    const deadline = Date.now() + 90_000;
    let volumeId: string | undefined;
    while (volumeId === undefined) {
      try {
        volumeId = (await ctl.CreateVolume(req(name))).volume!.volume_id;
      } catch (e) {
        if (!(e instanceof CsiError) || ![status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED].includes(e.code) || Date.now() > deadline) throw e;
        await sleep(1_000);
      }
    }
    created.push(volumeId);
    const images = (await ceph.images()).images;
    assert.equal(images.filter((i) => volumeId!.endsWith(i.replace(/^csi-vol-/, ''))).length, 1, 'one image for the name');
  });
});
