// The kernel CephFS mounter (StorageClass mounter: kernel) against a recording command runner and
// a fake /sys: the exact `mount -t ceph` ceph-csi runs, the secret in a 0600 file only while it
// runs (never in argv), a missing ceph module → FAILED_PRECONDITION before anything is written,
// mount.ceph's errors and a timeout as statuses, and kernelMountOptions / fuseMountOptions
// checked (INVALID_ARGUMENT). This machine has no ceph module: ceph-fuse stays what the
// integration tests mount with.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { CsiError } from '../../src/csi/errors.js';
import { CommandFailedError, CommandTimeoutError } from '../../src/driver/mount/exec.js';
import type { MountEntry, Mounter } from '../../src/driver/mount/mount.js';
import type { CephfsTarget } from '../../src/driver/backends/cephfs/ceph-fuse.js';
import { mountOptionList } from '../../src/driver/backends/cephfs/cephfs-backend.js';
import { CephKernelMount } from '../../src/driver/backends/cephfs/kernel-mount.js';
import { fakeHost, RecordingRunner, type Script } from '../support/recording-runner.js';

const log = pino({ level: 'silent' });
const KEY = 'AQBzc3RvcmFnZWNlcGhmc2tleQAAAAAAAAAAAAAAAA==';
const T: CephfsTarget = {
  clusterID: 'c1',
  monitors: ['10.0.0.1:6789', '10.0.0.2:6789'],
  fsName: 'myfs',
  path: '/volumes/csi/csi-vol-1/8f1c',
  user: 'csi-cephfs',
};
const STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/cephfs/x/globalmount';
const LOADED = fakeHost(['/sys/module/ceph']);
const NO_MODULE = fakeHost([], { '/proc/sys/kernel/osrelease': '6.18.44-test\n' });

/** A Mounter that reports the given filesystem at every path (what the mount left behind). */
function mounterShowing(fsType: string | undefined): Mounter {
  const entry = fsType ? ({ fsType, mountPoint: STAGING, source: '10.0.0.1:6789:/volumes', root: '/' } as MountEntry) : undefined;
  return { mountAt: async () => entry, isCorrupted: async () => false } as unknown as Mounter;
}

async function expectStatus(p: Promise<unknown>, code: status): Promise<CsiError> {
  const e = await p.then(
    () => assert.fail('expected an error'),
    (x: unknown) => x,
  );
  assert.ok(e instanceof CsiError, `a CsiError, not ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return e;
}

describe('kernel cephfs mounter', () => {
  let keyDir: string;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-cephfs-kernel-'));
    keyDir = join(dir, 'keys');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const cases: { name: string; options: string[]; line: string }[] = [
    {
      name: 'no options',
      options: [],
      line: `mount -t ceph 10.0.0.1:6789,10.0.0.2:6789:${T.path} ${STAGING} -o name=csi-cephfs,secretfile=<KEYFILE>,mds_namespace=myfs,_netdev`,
    },
    {
      name: 'read-only, mount flags and kernelMountOptions, in that order',
      options: ['ro', 'noatime', 'recover_session=clean', 'ms_mode=prefer-crc'],
      line: `mount -t ceph 10.0.0.1:6789,10.0.0.2:6789:${T.path} ${STAGING} -o name=csi-cephfs,secretfile=<KEYFILE>,mds_namespace=myfs,ro,noatime,recover_session=clean,ms_mode=prefer-crc,_netdev`,
    },
  ];
  for (const c of cases) {
    it(`mount -t ceph as ceph-csi runs it (${c.name}); the key only in a 0600 secret file while it runs`, async () => {
      const runner = new RecordingRunner();
      const k = new CephKernelMount({ runner, mounter: mounterShowing('ceph'), keyDir, host: LOADED });
      await k.mount(T, KEY, STAGING, c.options, log);
      assert.deepEqual(runner.lines(), [c.line]);
      const call = runner.calls[0]!;
      assert.deepEqual(call.files.map((f) => ({ mode: f.mode, content: f.content })), [{ mode: 0o600, content: KEY }]);
      assert.ok(call.files[0]!.path.startsWith(`${keyDir}/`));
      assert.ok(!call.args.some((a) => a.includes(KEY)), 'never in argv');
      assert.deepEqual(call.opts?.secrets, [KEY]);
      assert.ok((call.opts?.timeoutMs ?? 0) > 0, 'the mount has a timeout');
      assert.deepEqual(await readdir(keyDir), [], 'secret file removed after the mount');
    });
  }

  it('without the ceph module → FAILED_PRECONDITION naming it and how to load it; no mount, no secret file', async () => {
    const runner = new RecordingRunner((cmd, args) => new CommandFailedError(cmd, args, 1, 'modprobe: FATAL: Module ceph not found in directory /lib/modules/6.18.44-test'));
    const k = new CephKernelMount({ runner, mounter: mounterShowing(undefined), keyDir, host: NO_MODULE });
    const e = await expectStatus(k.mount(T, KEY, STAGING, [], log), status.FAILED_PRECONDITION);
    assert.match(e.message, /mounter "kernel" \(the kernel CephFS client\) needs the ceph kernel module/);
    assert.match(e.message, /kernel 6\.18\.44-test/);
    assert.match(e.message, /Module ceph not found/);
    assert.match(e.message, /`modprobe ceph`/);
    assert.match(e.message, /mounter "fuse" \(ceph-fuse\)/);
    assert.deepEqual(runner.lines(), ['modprobe ceph']);
    assert.deepEqual(await readdir(keyDir).catch(() => []), []);
  });

  const failures: { name: string; answer: Script; code: status; words: RegExp }[] = [
    { name: 'timeout', answer: (cmd, args) => new CommandTimeoutError(cmd, args, 75_000), code: status.DEADLINE_EXCEEDED, words: /myfs:\/volumes\/csi\/csi-vol-1\/8f1c timed out after 75 s.*retry/ },
    { name: 'mount error 110', answer: (cmd, args) => new CommandFailedError(cmd, args, 32, 'mount error 110 = Connection timed out'), code: status.DEADLINE_EXCEEDED, words: /timed out/ },
    { name: 'mount error 13', answer: (cmd, args) => new CommandFailedError(cmd, args, 32, 'mount error 13 = Permission denied'), code: status.PERMISSION_DENIED, words: /refused client\.csi-cephfs/ },
    { name: 'mount error 2', answer: (cmd, args) => new CommandFailedError(cmd, args, 32, 'mount error 2 = No such file or directory'), code: status.NOT_FOUND, words: /does not exist/ },
    { name: 'mount error 111', answer: (cmd, args) => new CommandFailedError(cmd, args, 32, 'mount error 111 = Connection refused'), code: status.UNAVAILABLE, words: /cannot reach ceph cluster c1/ },
  ];
  for (const c of failures) {
    it(`${c.name} → ${status[c.code]}; the secret file is removed all the same`, async () => {
      const runner = new RecordingRunner(c.answer);
      const k = new CephKernelMount({ runner, mounter: mounterShowing(undefined), keyDir, host: LOADED });
      const e = await expectStatus(k.mount(T, KEY, STAGING, [], log), c.code);
      assert.match(e.message, c.words);
      assert.ok(!e.message.includes(KEY));
      assert.deepEqual(await readdir(keyDir), []);
    });
  }

  it('at start, secret files a killed driver left mid-mount are removed', async () => {
    const left = join(dir, 'left');
    await mkdir(left, { recursive: true });
    for (const n of ['ceph-1.secret', 'krbd-2.key']) await writeFile(join(left, n), 'x');
    await new CephKernelMount({ runner: new RecordingRunner(), mounter: mounterShowing(undefined), keyDir: left, host: LOADED }).sweepSecretFiles();
    assert.deepEqual(await readdir(left), ['krbd-2.key']);
  });

  it('a mount command that returns without a ceph mount there is an error, not a success', async () => {
    const k = new CephKernelMount({ runner: new RecordingRunner(), mounter: mounterShowing(undefined), keyDir, host: LOADED });
    await assert.rejects(k.mount(T, KEY, STAGING, [], log), /without mounting myfs:/);
  });
});

describe('kernelMountOptions / fuseMountOptions', () => {
  const good: [string | undefined, string[]][] = [
    [undefined, []],
    ['noatime', ['noatime']],
    ['recover_session=clean, ms_mode=secure', ['recover_session=clean', 'ms_mode=secure']],
  ];
  for (const [text, want] of good) it(`"${text}" parses`, () => assert.deepEqual(mountOptionList(text, 'kernelMountOptions'), want));
  const bad: [string, RegExp][] = [
    ['', /empty option/],
    ['noatime,,ro', /empty option/],
    ['noatime,', /empty option/],
    ['debug level=1', /malformed option "debug level=1"/],
    ['a=', /malformed option "a="/],
  ];
  for (const [text, re] of bad) {
    it(`"${text}" → INVALID_ARGUMENT`, () => {
      assert.throws(() => mountOptionList(text, 'fuseMountOptions'), (e: CsiError) => e.code === status.INVALID_ARGUMENT && re.test(e.message) && /fuseMountOptions/.test(e.message));
    });
  }
});
