// The node agent's staging records (vol_data.json beside each globalmount): listing them must not
// delete anything, because it runs without the PV's lock while a setUp may be writing a record
// into a directory it has just made. It used to remove "directories without a record", and so
// once removed a record that a setUp then staged the volume under: the volume stayed staged with
// no record and was never unstaged (found by the chaos campaign, seed 300 round 24). Leftover
// record-less directories are removed by forgetUnrecorded, which the agent calls under the lock.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { NodeCsiVolumes } from '../../src/control/node/csi-volumes.js';
import { NodeLayout } from '../../src/control/node/layout.js';

const record = { driverName: 'local.csi.stowage.dev', volumeHandle: 'vol-1', pvName: 'pv-1' };

describe('staging records', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const setUpVolumes = async (): Promise<{ layout: NodeLayout; volumes: NodeCsiVolumes }> => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-staged-'));
    const layout = new NodeLayout(dir);
    return { layout, volumes: new NodeCsiVolumes({ layout, nodeClient: () => undefined, logger: pino({ level: 'silent' }) }) };
  };

  it('staged() leaves alone a directory whose record is being written', async () => {
    const { layout, volumes } = await setUpVolumes();
    const stagingDir = layout.stagingDir('pv-1');
    // A setUp between its mkdir and the rename of its record.
    await mkdir(stagingDir, { recursive: true });
    await writeFile(join(stagingDir, 'vol_data.json.tmp'), `${JSON.stringify(record)}\n`);
    assert.deepEqual(await volumes.staged(), []);
    assert.ok(existsSync(join(stagingDir, 'vol_data.json.tmp')), 'the record being written is still there');
    await rename(join(stagingDir, 'vol_data.json.tmp'), join(stagingDir, 'vol_data.json'));
    await mkdir(layout.stagingPath('pv-1'));
    assert.deepEqual(await volumes.staged(), [record]);
    assert.deepEqual(await volumes.stagingNames(), ['pv-1']);
  });

  it('forgetUnrecorded() removes a leftover directory without a record, and keeps one with a record', async () => {
    const { layout, volumes } = await setUpVolumes();
    await mkdir(layout.stagingPath('gone'), { recursive: true });
    await volumes.forgetUnrecorded('gone');
    assert.equal(existsSync(layout.stagingDir('gone')), false);

    await mkdir(layout.stagingPath('pv-1'), { recursive: true });
    await writeFile(join(layout.stagingDir('pv-1'), 'vol_data.json'), `${JSON.stringify(record)}\n`);
    await volumes.forgetUnrecorded('pv-1');
    assert.ok(existsSync(join(layout.stagingDir('pv-1'), 'vol_data.json')));
    assert.deepEqual(await volumes.staged(), [record]);
  });
});
