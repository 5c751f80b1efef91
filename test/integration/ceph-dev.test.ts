/**
 * `stowage ceph-dev up|status|down` against real Ceph daemons: the cluster it starts serves RADOS,
 * RBD and CephFS (with the mgr volumes module), `up` is idempotent, and `down` leaves nothing: no
 * process, no mount, no directory. The CLI is driven as a user would (node bin/stowage.js).
 *
 * Never skipped: without the ceph packages (scripts/setup.sh installs them) this FAILS, saying so.
 * `after` tears the cluster down even when a test failed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { missingCephPackages } from '../../src/ceph/packages.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../bin/stowage.js', import.meta.url));
const EXPECTED_KEYS = ['clusterID', 'conf', 'fsName', 'monitors', 'pool', 'userID', 'userKey'];

interface Info {
  clusterID: string;
  monitors: string[];
  userID: string;
  userKey: string;
  pool: string;
  fsName: string;
  conf: string;
}

/** Runs `stowage ceph-dev …`; never throws: the exit code is part of what is checked. */
async function stowage(args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, 'ceph-dev', ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message };
  }
}

/** PIDs of every process whose command line mentions dir. */
function processesMentioning(dir: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue;
    }
    if (cmdline.includes(dir)) out.push({ pid: Number(entry), cmdline });
  }
  return out;
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`));
}

describe('ceph-dev: a one-node Ceph cluster for tests', { timeout: 170_000 }, () => {
  let dir = '';
  let info: Info;
  let ceph: (args: string[]) => Promise<string>;

  before(async () => {
    dir = resolve(await mkdtemp(join(tmpdir(), 'stowage-ceph-dev-')));
  });

  after(async () => {
    if (!dir || !existsSync(dir)) return;
    const r = await stowage(['down', '--dir', dir], 60_000);
    if (r.code !== 0) {
      // Last resort, still scoped to this test's directory: its processes by PID, then the files.
      for (const p of processesMentioning(dir)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      for (const mp of mountsUnder(dir).reverse()) await run('umount', ['-l', mp]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
      assert.fail(`ceph-dev down failed during cleanup: ${r.stderr}`);
    }
  });

  // A test of its own, so a machine without ceph reports a failure that says why.
  it('the ceph packages are installed', async () => {
    const missing = await missingCephPackages();
    assert.deepEqual(missing, [], `ceph is not installed (missing Debian packages: ${missing.join(' ')}); run scripts/setup.sh, which installs them`);
  });

  it('up starts the cluster and prints exactly the connection JSON', async () => {
    const started = Date.now();
    const r = await stowage(['up', '--dir', dir]);
    assert.equal(r.code, 0, `ceph-dev up failed:\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, `stdout must be one JSON object, got:\n${r.stdout}`);
    info = JSON.parse(lines[0]!) as Info;
    assert.deepEqual(Object.keys(info).sort(), EXPECTED_KEYS);
    assert.match(info.clusterID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(info.monitors.length, 1);
    assert.match(info.monitors[0]!, /^127\.0\.0\.1:\d+$/);
    assert.equal(info.userID, 'admin');
    assert.match(info.userKey, /^AQ[A-Za-z0-9+/]{36}==$/);
    assert.equal(info.pool, 'rbd');
    assert.equal(info.conf, join(dir, 'ceph.conf'));
    const fsid = /^fsid = (.+)$/m.exec(await readFile(info.conf, 'utf8'))?.[1];
    assert.equal(fsid, info.clusterID, 'clusterID is the fsid in ceph.conf');
    ceph = async (args) => (await run('ceph', ['-c', info.conf, ...args], { timeout: 60_000 })).stdout;
    process.stderr.write(`# ceph-dev up took ${Date.now() - started} ms\n`);
  });

  it('RADOS: an object written to the rbd pool reads back', async () => {
    const file = join(dir, 'object.in');
    await writeFile(file, 'hello from stowage\n');
    await run('rados', ['-c', info.conf, '-p', info.pool, 'put', 'greeting', file]);
    const { stdout } = await run('rados', ['-c', info.conf, '-p', info.pool, 'get', 'greeting', '-']);
    assert.equal(stdout, 'hello from stowage\n');
    await run('rados', ['-c', info.conf, '-p', info.pool, 'rm', 'greeting']);
  });

  it('RBD: an image is created, described and removed in the pool', async () => {
    const spec = `${info.pool}/stowage-test-image`;
    await run('rbd', ['-c', info.conf, 'create', '--size', '64M', spec]);
    const desc = JSON.parse((await run('rbd', ['-c', info.conf, 'info', spec, '--format', 'json'])).stdout) as { size: number; name: string };
    assert.equal(desc.name, 'stowage-test-image');
    assert.equal(desc.size, 64 * 1024 * 1024);
    await run('rbd', ['-c', info.conf, 'rm', '--no-progress', spec]);
    const images = JSON.parse((await run('rbd', ['-c', info.conf, 'ls', info.pool, '--format', 'json'])).stdout) as string[];
    assert.deepEqual(images, []);
  });

  it('CephFS: the filesystem exists and the mgr volumes module is on and serves subvolumes', async () => {
    const fss = JSON.parse(await ceph(['fs', 'ls', '-f', 'json'])) as { name: string }[];
    assert.ok(fss.some((f) => f.name === info.fsName), `ceph fs ls: ${JSON.stringify(fss)}`);
    const mods = JSON.parse(await ceph(['mgr', 'module', 'ls', '-f', 'json'])) as { always_on_modules?: string[]; enabled_modules?: string[] };
    assert.ok(
      [...(mods.always_on_modules ?? []), ...(mods.enabled_modules ?? [])].includes('volumes'),
      `volumes is neither enabled nor always on: ${JSON.stringify(mods)}`,
    );
    await ceph(['fs', 'subvolume', 'create', info.fsName, 'stowage-sv', '--size', String(16 * 1024 * 1024)]);
    const path = (await ceph(['fs', 'subvolume', 'getpath', info.fsName, 'stowage-sv'])).trim();
    assert.match(path, /^\/volumes\/_nogroup\/stowage-sv\//);
    await ceph(['fs', 'subvolume', 'rm', info.fsName, 'stowage-sv']);
    const left = JSON.parse(await ceph(['fs', 'subvolume', 'ls', info.fsName, '-f', 'json'])) as unknown[];
    assert.deepEqual(left, []);
  });

  it('up again is idempotent: same JSON, no new process', async () => {
    const before = processesMentioning(dir).map((p) => p.pid).sort();
    const r = await stowage(['up', '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout) as Info, info);
    const after = processesMentioning(dir).map((p) => p.pid).sort();
    assert.deepEqual(after, before);
  });

  it('status: every daemon runs, exit code 0', async () => {
    const r = await stowage(['status', '--dir', dir, '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const s = JSON.parse(r.stdout) as { allRunning: boolean; daemons: { name: string; pid: number; alive: boolean }[]; health?: { status: string } };
    assert.deepEqual(s.daemons.map((d) => d.name).sort(), ['mds.a', 'mgr.x', 'mon.a', 'osd.0']);
    assert.ok(s.daemons.every((d) => d.alive && d.pid > 0));
    assert.ok(s.health, 'status reports the health when the mon runs');
    const text = await stowage(['status', '--dir', dir]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /health: HEALTH_/);
  });

  it('down unmounts what is under DIR, stops every daemon and removes DIR', async () => {
    // A CephFS FUSE mount under DIR, as a driver test might leave one.
    const mnt = join(dir, 'mnt');
    await run('mkdir', ['-p', mnt]);
    await run('ceph-fuse', ['-c', info.conf, mnt], { timeout: 60_000 });
    await writeFile(join(mnt, 'file'), 'data');
    assert.deepEqual(mountsUnder(dir), [mnt]);

    const pids = (JSON.parse(readFileSync(join(dir, 'stowage-ceph-dev.json'), 'utf8')) as { daemons: { pid: number }[] }).daemons.map((d) => d.pid);
    assert.equal(pids.length, 4);
    const started = Date.now();
    const r = await stowage(['down', '--dir', dir], 60_000);
    assert.equal(r.code, 0, r.stderr);
    process.stderr.write(`# ceph-dev down took ${Date.now() - started} ms\n`);
    for (const pid of pids) assert.ok(!existsSync(`/proc/${pid}/cmdline`) || readFileSync(`/proc/${pid}/cmdline`, 'utf8') === '', `pid ${pid} still runs`);
    assert.equal(existsSync(dir), false, 'DIR is removed');
    assert.deepEqual(mountsUnder(dir), []);
    assert.deepEqual(processesMentioning(dir), []);

    const again = await stowage(['down', '--dir', dir]);
    assert.equal(again.code, 0, 'down on a missing DIR is a no-op');
    const status = await stowage(['status', '--dir', dir]);
    assert.notEqual(status.code, 0, 'status fails when nothing runs');
  });
});
