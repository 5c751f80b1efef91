// `stowage doctor` on this machine, through the real binary: a kubelet dir that is a plain
// directory on a private mount FAILs propagation with the make-rshared fix and exit status 1; the
// same dir made a shared bind mount is ok; a loop device whose backing file was deleted is
// reported. The test's mounts and loop device are removed whatever happens.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer } from 'node:net';
import { pino } from 'pino';
import type { CheckResult } from '../../src/cli/doctor/types.js';
import { startCsiServer } from '../../src/csi/server.js';

const needsRoot = process.getuid?.() !== 0 ? 'needs root (mounts, loop devices)' : false;
const BIN = resolve('bin/stowage.js');

/** Runs the binary without blocking this process's event loop (the test's CSI servers answer meanwhile). */
function run(args: string[]): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'doctor', ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout });
    });
  });
}

async function doctor(...args: string[]): Promise<{ status: number | null; lines: string[]; json: CheckResult[] }> {
  const text = await run(args);
  const json = await run([...args, '-o', 'json']);
  assert.equal(json.status, text.status, 'text and json runs exit alike');
  return { status: text.status, lines: text.stdout.trim().split('\n'), json: JSON.parse(json.stdout) as CheckResult[] };
}

const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
const attempt = (fn: () => void): void => {
  try {
    fn();
  } catch {
    // cleanup: already gone
  }
};

describe('stowage doctor on this node', { skip: needsRoot, timeout: 120_000 }, () => {
  let root = '';
  let kubelet = '';
  let state = '';
  let loop = '';
  const mounts: string[] = [];

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'doctor-'));
    // A private tmpfs, so the plain directory's propagation does not depend on how / is mounted.
    sh('mount', '-t', 'tmpfs', '-o', 'size=16m', 'doctor-test', root);
    mounts.push(root);
    sh('mount', '--make-private', root);
    kubelet = join(root, 'kubelet');
    state = join(root, 'state');
    mkdirSync(kubelet);
    mkdirSync(state);
    const img = join(state, 'leak.img');
    writeFileSync(img, Buffer.alloc(1024 * 1024));
    loop = sh('losetup', '--find', '--show', img);
    rmSync(img);
  });

  after(() => {
    if (loop) attempt(() => sh('losetup', '-d', loop));
    for (const m of mounts.reverse()) attempt(() => sh('umount', '-l', m));
    if (root) attempt(() => rmSync(root, { recursive: true, force: true }));
  });

  it('a plain directory on a private mount: propagation FAILs with the fix, exit status 1; the deleted loop file is reported', async () => {
    const r = await doctor('--kubelet-dir', kubelet, '--state-dir', state, '--backend', 'local');
    assert.equal(r.status, 1);
    const line = r.lines.find((l) => l.includes(`kubelet dir ${kubelet}:`));
    assert.match(line ?? '', /^FAIL {2}kubelet dir .*: not a mount point, on .*, private: .*\(fix: mount --bind .* && mount --make-rshared /);
    const leak = r.json.find((c) => c.check === `loop device ${loop}`);
    assert.deepEqual(leak, { check: `loop device ${loop}`, status: 'warn', finding: `backing file ${join(state, 'leak.img')} is deleted`, fix: `losetup -d ${loop}` });
    const sockets = r.json.find((c) => c.check === 'csi sockets');
    assert.equal(sockets?.status, 'FAIL', 'no driver runs under this state dir');
  });

  it('the same directory as a shared bind mount is ok', async () => {
    sh('mount', '--bind', kubelet, kubelet);
    mounts.push(kubelet);
    sh('mount', '--make-rshared', kubelet);
    const r = await doctor('--kubelet-dir', kubelet, '--backend', 'local');
    const prop = r.json.find((c) => c.check === `kubelet dir ${kubelet}`);
    assert.equal(prop?.status, 'ok');
    assert.match(prop?.finding ?? '', /^a mount point, shared \(shared:\d+\)/);
    assert.ok(r.lines.some((l) => l.startsWith(`ok    kubelet dir ${kubelet}: a mount point, shared`)));
    assert.equal(r.status, r.json.some((c) => c.status === 'FAIL') ? 1 : 0);
  });

  it('the state dir\'s sockets are probed: a CSI plugin answering ready is ok, a socket that speaks no gRPC FAILs', async () => {
    const good = join(state, 'nodes', 'n1', 'plugins', 'local.csi.stowage.dev');
    const bad = join(state, 'plugins', 'rbd.csi.stowage.dev');
    mkdirSync(good, { recursive: true });
    mkdirSync(bad, { recursive: true });
    const server = await startCsiServer({
      endpoint: join(good, 'csi.sock'),
      logger: pino({ level: 'silent' }),
      shutdownGraceMs: 500,
      identity: {
        GetPluginInfo: async () => ({ name: 'local.csi.stowage.dev', vendor_version: '0' }),
        GetPluginCapabilities: async () => ({ capabilities: [] }),
        Probe: async () => ({ ready: { value: true } }),
      },
    });
    const notGrpc = createServer((c) => c.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => notGrpc.listen(join(bad, 'controller.sock'), r));
    try {
      const r = await doctor('--kubelet-dir', kubelet, '--state-dir', state, '--backend', 'local');
      const status = (path: string) => r.json.find((c) => c.check === `csi socket ${path}`)?.status;
      assert.equal(status(join(good, 'csi.sock')), 'ok');
      assert.equal(status(join(bad, 'controller.sock')), 'FAIL');
      assert.equal(r.status, 1);
    } finally {
      await server.stop();
      notGrpc.close(); // not awaited: its callback waits on connections grpc-js already dropped
    }
  });
});
