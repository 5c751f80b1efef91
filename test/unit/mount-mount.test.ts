import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommandRunner, RunOptions, RunResult } from '../../src/driver/mount/exec.js';
import { Mounter, parseMountInfo } from '../../src/driver/mount/mount.js';

interface Call {
  cmd: string;
  args: string[];
  opts: RunOptions | undefined;
}

class FakeRunner implements CommandRunner {
  readonly calls: Call[] = [];
  async run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push({ cmd, args, opts });
    return { stdout: '', stderr: '', exitCode: 0 };
  }
}

describe('parseMountInfo', () => {
  const text = [
    '22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw',
    '43 27 0:39 /volumes/a\\040b /var/lib/kubelet/pods/x/vol\\040one ro,nosuid,relatime shared:1 master:2 - btrfs /dev/loop0 rw,space_cache=v2,subvolid=257,subvol=/volumes/a\\040b',
    '50 27 0:40 / /mnt/tab\\011and\\134slash rw - tmpfs none rw',
    '',
  ].join('\n');

  it('parses fields, optional fields and both option lists', () => {
    const [proc, vol] = parseMountInfo(text);
    assert.deepEqual(proc, {
      mountId: 22,
      parentId: 27,
      majorMinor: '0:21',
      root: '/',
      mountPoint: '/proc',
      options: ['rw', 'relatime'],
      readonly: false,
      fsType: 'proc',
      source: 'proc',
      superOptions: ['rw'],
    });
    assert.equal(vol?.readonly, true);
    assert.equal(vol?.fsType, 'btrfs');
    assert.equal(vol?.source, '/dev/loop0');
    assert.deepEqual(vol?.options, ['ro', 'nosuid', 'relatime']);
  });

  it('unescapes octal sequences in paths', () => {
    const entries = parseMountInfo(text);
    assert.equal(entries[1]?.root, '/volumes/a b');
    assert.equal(entries[1]?.mountPoint, '/var/lib/kubelet/pods/x/vol one');
    assert.equal(entries[2]?.mountPoint, '/mnt/tab\tand\\slash');
  });

  it('rejects a malformed line instead of guessing', () => {
    assert.throws(() => parseMountInfo('1 2 3:4 / /x rw'), /unparseable/);
  });
});

describe('Mounter.mount through mount(8)', () => {
  it('spawns mount for options only userspace understands, with secrets passed on', async () => {
    const runner = new FakeRunner();
    await new Mounter(runner).mount('/img', '/mnt/x', 'ext4', ['loop', 'ro', 'secret=abc'], { secrets: ['abc'] });
    assert.deepEqual(runner.calls, [
      { cmd: 'mount', args: ['-t', 'ext4', '-o', 'loop,ro,secret=abc', '--', '/img', '/mnt/x'], opts: { secrets: ['abc'] } },
    ]);
  });

  it('refuses a filesystem type that could smuggle a path or option', async () => {
    const runner = new FakeRunner();
    await assert.rejects(new Mounter(runner).mount('/dev/x', '/mnt/x', '../../bin/sh', []), RangeError);
    await assert.rejects(new Mounter(runner).mount('/dev/x', '/mnt/x', '-oremount', []), RangeError);
    assert.equal(runner.calls.length, 0);
  });

  it('rejects filesystem options on a bind mount before touching anything', async () => {
    const runner = new FakeRunner();
    await assert.rejects(new Mounter(runner).mount('/a', '/b', 'none', ['bind', 'compress=zstd']), /cannot take filesystem options/);
    assert.equal(runner.calls.length, 0);
  });
});
