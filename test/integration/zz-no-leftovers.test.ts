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
