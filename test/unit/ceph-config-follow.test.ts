// The driver follows ceph-csi's cluster list as Kubernetes updates a mounted ConfigMap (a symlink
// swapped in its directory) or as an admin edits the file: new monitors are used from the next
// call, a broken edit keeps the last good list (and says so), and a stopped driver stops following.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ClusterConfig } from '../../src/driver/backends/ceph/cluster-config.js';

const list = (monitor: string) => JSON.stringify([{ clusterID: 'a', monitors: [monitor] }]);

function recorder() {
  const lines: string[] = [];
  return { lines, log: { info: (_o: object, msg: string) => void lines.push(`info ${msg}`), error: (_o: object, msg: string) => void lines.push(`error ${msg}`) } };
}

async function until(what: string, probe: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('the ceph config followed while the driver runs', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-cephcfg-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an edited file: the new monitors from the next call; a broken edit keeps the last good list', async () => {
    const file = join(dir, 'plain.json');
    await writeFile(file, list('10.0.0.1:6789'));
    const config = await ClusterConfig.load(file);
    const { lines, log } = recorder();
    const stop = config.follow(file, log, 60_000);
    try {
      await writeFile(file, list('10.0.0.2:6789'));
      await until('the new monitor', () => config.require('a').monitors[0] === '10.0.0.2:6789');
      await writeFile(file, '[{"clusterID": "a", "monitors": [');
      await until('the broken edit reported', () => lines.some((l) => l.startsWith('error')));
      assert.deepEqual(config.require('a').monitors, ['10.0.0.2:6789'], 'the last good list stays');
      assert.deepEqual(lines.filter((l) => l.startsWith('info')), ['info ceph config reloaded']);
    } finally {
      stop();
    }
    await writeFile(file, list('10.0.0.3:6789'));
    await sleep(400);
    assert.deepEqual(config.require('a').monitors, ['10.0.0.2:6789'], 'no longer followed once stopped');
  });

  it('a ConfigMap volume: the kubelet swaps the ..data symlink, and a new cluster appears', async () => {
    const volume = join(dir, 'configmap');
    await mkdir(join(volume, '..2026_12_06_1'), { recursive: true });
    await writeFile(join(volume, '..2026_12_06_1', 'config.json'), list('10.0.0.1:6789'));
    await symlink('..2026_12_06_1', join(volume, '..data'));
    await symlink('..data/config.json', join(volume, 'config.json'));
    const file = join(volume, 'config.json');
    const config = await ClusterConfig.load(file);
    const stop = config.follow(file, recorder().log, 60_000);
    try {
      await mkdir(join(volume, '..2026_12_06_2'));
      await writeFile(join(volume, '..2026_12_06_2', 'config.json'), JSON.stringify([{ clusterID: 'a', monitors: ['10.0.0.9:3300'] }, { clusterID: 'b', monitors: ['10.1.0.1:6789'] }]));
      await symlink('..2026_12_06_2', join(volume, '..data_tmp'));
      await rename(join(volume, '..data_tmp'), join(volume, '..data'));
      await until('the swapped list', () => config.get('b') !== undefined);
      assert.deepEqual(config.require('a').monitors, ['10.0.0.9:3300']);
    } finally {
      stop();
    }
  });
});
