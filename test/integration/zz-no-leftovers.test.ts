// Runs last (files run in name order): after the whole suite, nothing the tests created may remain
// attached to the kernel — no mount and no loop device under the temp directory.
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { test } from 'node:test';

const TMP = tmpdir();

test('the suite leaves no mount under the temp directory', async () => {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const leftovers = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((target) => target.startsWith(`${TMP}/`));
  assert.deepEqual(leftovers, [], `mounts left behind: ${leftovers.join(', ')}`);
});

test('the suite leaves no loop device backed by a file under the temp directory', async () => {
  const leftovers: string[] = [];
  for (const name of await readdir('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
    if (backing.startsWith(`${TMP}/`)) leftovers.push(`/dev/${name} → ${backing.trim()}`);
  }
  assert.deepEqual(leftovers, [], `loop devices left behind: ${leftovers.join(', ')}`);
});

test('the suite leaves no rbd-fuse or ceph-fuse process and no test Ceph cluster running', async () => {
  const leftovers: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter((a) => a !== '');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (argv.length === 0 || /\) Z /.test(stat)) continue; // gone, or a zombie nobody reaps: it holds nothing
    const name = argv[0]!.split('/').at(-1) ?? '';
    const underTmp = argv.some((a) => a.startsWith(`${TMP}/stowage-`));
    // ceph-fuse: the cephfs backend's mounts (one per staging path, under the tests' temp dirs).
    if ((name === 'rbd-fuse' || name === 'ceph-fuse') && underTmp) leftovers.push(`${pid}: ${argv.join(' ')}`);
    if (/^ceph-(mon|mgr|osd|mds)$/.test(name) && argv.some((a) => a.startsWith(`${TMP}/stowage-ceph-`))) leftovers.push(`${pid}: ${argv.join(' ')}`);
  }
  assert.deepEqual(leftovers, [], `processes left behind: ${leftovers.join('; ')}`);
});
