import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommandFailedError, type CommandRunner, type RunOptions, type RunResult } from '../../src/driver/mount/exec.js';
import { checkFilesystem, growFilesystem, makeFilesystem, probeFilesystem } from '../../src/driver/mount/filesystem.js';

/** Answers every command with a fixed result, honouring okExitCodes like the real runner. */
class ScriptedRunner implements CommandRunner {
  readonly calls: string[][] = [];
  constructor(private readonly result: RunResult) {}
  async run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push([cmd, ...args]);
    if (!(opts?.okExitCodes ?? [0]).includes(this.result.exitCode)) {
      throw new CommandFailedError(cmd, args, this.result.exitCode, this.result.stderr);
    }
    return this.result;
  }
}

const ok = (stdout: string): RunResult => ({ stdout, stderr: '', exitCode: 0 });

describe('probeFilesystem', () => {
  // A readable stand-in for a block device: probing first proves the device can be read.
  let dir = '';
  let device = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-probe-'));
    device = join(dir, 'disk');
    await writeFile(device, Buffer.alloc(64 * 1024));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('returns null only when blkid positively finds nothing (exit 2)', async () => {
    const runner = new ScriptedRunner({ stdout: '', stderr: '', exitCode: 2 });
    assert.equal(await probeFilesystem(device, runner), null);
    assert.deepEqual(runner.calls, [['blkid', '-p', '-o', 'export', device]]);
  });

  it('returns the filesystem type', async () => {
    const out = `DEVNAME=${device}\nUUID=1234\nVERSION=1.0\nTYPE=ext4\nUSAGE=filesystem\n`;
    assert.equal(await probeFilesystem(device, new ScriptedRunner(ok(out))), 'ext4');
  });

  it('reports a partition table or an unnamed signature as not blank', async () => {
    assert.equal(await probeFilesystem(device, new ScriptedRunner(ok(`DEVNAME=${device}\nPTTYPE=gpt\n`))), 'gpt');
    assert.equal(await probeFilesystem(device, new ScriptedRunner(ok(`DEVNAME=${device}\n`))), 'unknown');
  });

  it('throws when probing fails, never reporting the device blank', async () => {
    for (const exitCode of [4, 8]) {
      const runner = new ScriptedRunner({ stdout: '', stderr: 'ambivalent result', exitCode });
      await assert.rejects(probeFilesystem(device, runner), CommandFailedError);
    }
    const complaining = new ScriptedRunner({ stdout: '', stderr: 'blkid: error: cannot read', exitCode: 2 });
    await assert.rejects(probeFilesystem(device, complaining), /could not probe/);
  });

  it('throws for a missing device, although blkid would exit 2 for it too', async () => {
    const runner = new ScriptedRunner({ stdout: '', stderr: '', exitCode: 2 });
    await assert.rejects(probeFilesystem(join(dir, 'missing'), runner), { code: 'ENOENT' });
    assert.equal(runner.calls.length, 0);
  });

  it('refuses a relative device path that a tool could take for an option', async () => {
    await assert.rejects(probeFilesystem('-h', new ScriptedRunner(ok(''))), RangeError);
  });
});

describe('makeFilesystem', () => {
  it('formats ext4 fast (lazy init, no discard) with a label', async () => {
    const runner = new ScriptedRunner(ok(''));
    await makeFilesystem('/dev/loop9', 'ext4', runner, { label: 'vol' });
    assert.deepEqual(runner.calls, [
      ['mkfs.ext4', '-F', '-q', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', '-L', 'vol', '/dev/loop9'],
    ]);
  });

  it('formats xfs and btrfs, and refuses anything else', async () => {
    const runner = new ScriptedRunner(ok(''));
    await makeFilesystem('/dev/loop9', 'xfs', runner);
    await makeFilesystem('/dev/loop9', 'btrfs', runner);
    assert.deepEqual(runner.calls.map((c) => c[0]), ['mkfs.xfs', 'mkfs.btrfs']);
    await assert.rejects(makeFilesystem('/dev/loop9', 'vfat', runner), RangeError);
  });
});

describe('checkFilesystem', () => {
  it('maps e2fsck exit codes: 0 clean, 1 fixed, 4 error', async () => {
    assert.equal(await checkFilesystem('/dev/loop9', 'ext4', new ScriptedRunner(ok(''))), 'clean');
    assert.equal(await checkFilesystem('/dev/loop9', 'ext4', new ScriptedRunner({ stdout: '', stderr: '', exitCode: 1 })), 'fixed');
    await assert.rejects(
      checkFilesystem('/dev/loop9', 'ext4', new ScriptedRunner({ stdout: '', stderr: 'UNEXPECTED INCONSISTENCY', exitCode: 4 })),
      CommandFailedError,
    );
  });

  it('runs nothing for xfs', async () => {
    const runner = new ScriptedRunner(ok(''));
    assert.equal(await checkFilesystem('/dev/loop9', 'xfs', runner), 'not-checked');
    assert.equal(runner.calls.length, 0);
  });
});

describe('growFilesystem', () => {
  it('picks the tool and the path each one wants', async () => {
    const runner = new ScriptedRunner(ok(''));
    await growFilesystem('/dev/loop9', '/mnt/v', 'ext4', runner);
    await growFilesystem('/dev/loop9', '/mnt/v', 'xfs', runner);
    await growFilesystem('/dev/loop9', '/mnt/v', 'btrfs', runner);
    assert.deepEqual(runner.calls, [
      ['resize2fs', '/dev/loop9'],
      ['xfs_growfs', '-d', '/mnt/v'],
      ['btrfs', 'filesystem', 'resize', 'max', '/mnt/v'],
    ]);
  });
});
