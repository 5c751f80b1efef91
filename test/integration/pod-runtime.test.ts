/**
 * The pod runtime with real processes, namespaces and mounts (needs root): containers over an
 * overlay of the host's root with volumes bound in, exit statuses as Kubernetes reports them, logs,
 * exec, an agent killed with SIGKILL while its container runs, and removal that leaves nothing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { ExecRunner } from '../../src/driver/mount/exec.js';
import { PodRuntime } from '../../src/control/node/runtime/pod-runtime.js';
import type { ContainerSpec, ContainerStatus } from '../../src/control/node/runtime/types.js';
import { hostMounts } from '../support/host-state.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, mounts)' : false;
const logger = pino({ level: process.env['STOWAGE_TEST_LOG'] ?? 'silent' });

let tmp: string;
let rootDir: string;
let runtime: PodRuntime;
const uids = new Set<string>();
let podCounter = 0;

function newRuntime(): PodRuntime {
  return new PodRuntime({ rootDir, runner: new ExecRunner(logger), logger });
}

function spec(command: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec {
  const uid = `uid-${process.pid}-${++podCounter}`;
  uids.add(uid);
  return { podUid: uid, namespace: 'default', podName: `pod-${podCounter}`, containerName: 'main', image: 'busybox:1.36', command, env: {}, mounts: [], attempt: 0, ...extra };
}

async function waitForExit(rt: PodRuntime, uid: string, name = 'main', timeoutMs = 10_000): Promise<ContainerStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await rt.status(uid, name);
    if (status?.state === 'exited') return status;
    if (Date.now() > deadline) throw new Error(`container ${uid}/${name} still ${status?.state} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function mountsUnderTmp(): string[] {
  return hostMounts()
    .map((m) => m.mountPoint)
    .filter((m) => m.startsWith(`${tmp}/`));
}

/** Live processes whose command line mentions the test's temp dir (shims), or that were given the pid. */
function processesMentioning(text: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) [ZX] /.test(stat)) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (argv.includes(text)) out.push(`${pid}: ${argv}`);
    } catch {
      // gone
    }
  }
  return out;
}

function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('pod runtime', { skip }, () => {
  let volume: string;
  let readOnlyVolume: string;
  let configFile: string;
  const marker = `stowage-runtime-test-${process.pid}`;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'stowage-pod-runtime-'));
    rootDir = join(tmp, 'nodes', 'node-1');
    volume = join(tmp, 'volumes', 'data');
    readOnlyVolume = join(tmp, 'volumes', 'ro');
    configFile = join(tmp, 'volumes', 'config.yaml');
    await mkdir(volume, { recursive: true });
    await mkdir(readOnlyVolume, { recursive: true });
    await writeFile(join(readOnlyVolume, 'existing'), 'keep me\n');
    await writeFile(configFile, 'key: value\n');
    runtime = newRuntime();
  });

  after(async () => {
    const rt = newRuntime();
    for (const uid of uids) await rt.removePod(uid).catch(() => {});
    if (mountsUnderTmp().length === 0) await rm(tmp, { recursive: true, force: true });
  });

  it('runs a container whose volume is at /data, whose other writes stay in the state dir, and records Completed/0 and its output', async () => {
    const s = spec(
      ['sh', '-c', `echo hello > /data/hello && echo private > /etc/${marker} && cat /etc/${marker} && echo "host=$(hostname) env=$HOSTNAME greeting=$GREETING" && touch /tmp/${marker} && echo done >&2`],
      { mounts: [{ hostPath: volume, containerPath: '/data', readOnly: false }], env: { GREETING: 'hi there' } },
    );
    const started = await runtime.startContainer(s);
    assert.ok(started.state === 'running' || started.state === 'exited', `state ${started.state}: ${started.message}`);
    const status = await waitForExit(runtime, s.podUid);
    assert.equal(status.exitCode, 0, status.message);
    assert.equal(status.reason, 'Completed');
    assert.equal(status.image, 'busybox:1.36');
    assert.ok(status.startedAt && status.finishedAt && status.finishedAt >= status.startedAt);

    assert.equal(await readFile(join(volume, 'hello'), 'utf8'), 'hello\n', 'the write to /data reached the volume on the host');
    assert.equal(existsSync(`/etc/${marker}`), false, 'the write to /etc did not reach the host');
    assert.equal(existsSync(`/tmp/${marker}`), false, 'the container has its own /tmp');
    const log = await readFile(runtime.logPath(s.podUid, 'main'), 'utf8');
    assert.equal(runtime.logPath(s.podUid, 'main'), runtime.logPath(s.podUid, 'main', 0));
    assert.match(log, /^private$/m);
    assert.match(log, new RegExp(`^host=${s.podName} env=${s.podName} greeting=hi there$`, 'm'));
    assert.match(log, /^done$/m, 'stderr is in the log too');
  });

  it('records a non-zero exit as Error with its code, and keeps each attempt its own log', async () => {
    const s = spec(['sh', '-c', 'echo attempt zero; exit 3']);
    await runtime.startContainer(s);
    const first = await waitForExit(runtime, s.podUid);
    assert.equal(first.exitCode, 3);
    assert.equal(first.reason, 'Error');
    assert.equal(first.attempt, 0);

    await runtime.startContainer({ ...s, command: ['sh', '-c', 'echo attempt one'], attempt: 1 });
    const second = await waitForExit(runtime, s.podUid);
    assert.deepEqual([second.attempt, second.exitCode, second.reason], [1, 0, 'Completed']);
    assert.equal(await readFile(runtime.logPath(s.podUid, 'main', 0), 'utf8'), 'attempt zero\n');
    assert.equal(await readFile(runtime.logPath(s.podUid, 'main'), 'utf8'), 'attempt one\n');
  });

  it('refuses writes to a read-only volume (EROFS) and binds a single file', async () => {
    const s = spec(['sh', '-c', 'cat /config/app.yaml; cat /ro/existing; echo x > /ro/new || exit 7'], {
      mounts: [
        { hostPath: readOnlyVolume, containerPath: '/ro', readOnly: true },
        { hostPath: configFile, containerPath: '/config/app.yaml', readOnly: true },
      ],
    });
    await runtime.startContainer(s);
    const status = await waitForExit(runtime, s.podUid);
    assert.equal(status.exitCode, 7);
    const log = await readFile(runtime.logPath(s.podUid, 'main'), 'utf8');
    assert.match(log, /^key: value$/m);
    assert.match(log, /^keep me$/m);
    assert.match(log, /Read-only file system/);
    assert.equal(existsSync(join(readOnlyVolume, 'new')), false);
  });

  it('reports a command that cannot be found as StartError with the reason', async () => {
    const s = spec(['no-such-command-stowage']);
    const status = await runtime.startContainer(s);
    assert.equal(status.state, 'exited');
    assert.equal(status.reason, 'StartError');
    assert.equal(status.exitCode, 128);
    assert.match(status.message ?? '', /no-such-command-stowage.*not found/);
    const empty = await runtime.startContainer(spec([]));
    assert.deepEqual([empty.state, empty.reason, empty.message], ['exited', 'StartError', 'no command specified']);
  });

  it('keeps a container running when its agent is killed with SIGKILL; a new runtime sees it, execs into it, and stops it with SIGTERM', async () => {
    const s = spec(['sh', '-c', 'trap "echo got TERM; exit 0" TERM; echo ready > /data/ready; while true; do sleep 0.1; done'], {
      mounts: [{ hostPath: volume, containerPath: '/data', readOnly: false }],
    });
    // The "agent": another process that starts the container, then dies by SIGKILL.
    const script = [
      `const { PodRuntime } = await import(${JSON.stringify(import.meta.resolve('../../src/control/node/runtime/pod-runtime.js'))});`,
      `const { ExecRunner } = await import(${JSON.stringify(import.meta.resolve('../../src/driver/mount/exec.js'))});`,
      `const { pino } = await import(${JSON.stringify(import.meta.resolve('pino'))});`,
      `const logger = pino({ level: 'silent' });`,
      `const rt = new PodRuntime({ rootDir: ${JSON.stringify(rootDir)}, runner: new ExecRunner(logger), logger });`,
      `const status = await rt.startContainer(${JSON.stringify(s)});`,
      `process.stdout.write(JSON.stringify(status) + '\\n');`,
      `setInterval(() => {}, 1 << 30);`,
    ].join('\n');
    const agent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      agent.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      agent.on('exit', () => reject(new Error(`agent exited before starting the container: ${out}`)));
    });
    const started = JSON.parse(line) as ContainerStatus;
    assert.equal(started.state, 'running', started.message);
    agent.kill('SIGKILL');
    await new Promise((resolve) => agent.once('exit', resolve));

    const restarted = newRuntime();
    assert.ok((await restarted.listPods()).includes(s.podUid));
    const status = await restarted.status(s.podUid, 'main');
    assert.equal(status?.state, 'running');
    assert.equal(status?.pid, started.pid, 'the same process, still running');
    assert.deepEqual(mountsUnderTmp(), [], 'the container mounts live in its namespace, not in the host table');

    while (!existsSync(join(volume, 'ready'))) await sleep(20);
    const exec = await collect(restarted.exec(s.podUid, 'main', ['sh', '-c', 'cat /data/ready; hostname; cat /proc/1/cmdline | tr "\\0" " "'], 'pipe'));
    assert.equal(exec.code, 0, exec.stderr);
    const [ready, hostname, pid1] = exec.stdout.split('\n');
    assert.equal(ready, 'ready');
    assert.equal(hostname, s.podName);
    assert.match(pid1 ?? '', /^sh -c trap/, "exec sees the container's own PID namespace");
    const failing = await collect(restarted.exec(s.podUid, 'main', ['sh', '-c', 'exit 5'], 'pipe'));
    assert.equal(failing.code, 5, 'exec passes the exit code on');

    const t0 = Date.now();
    const stopped = await restarted.stopContainer(s.podUid, 'main', 20);
    assert.ok(Date.now() - t0 < 10_000, 'SIGTERM was honoured well before the grace period ended');
    assert.deepEqual([stopped.state, stopped.exitCode, stopped.reason], ['exited', 0, 'Completed']);
    assert.match(await readFile(restarted.logPath(s.podUid, 'main'), 'utf8'), /^got TERM$/m);
    assert.throws(() => restarted.exec(s.podUid, 'main', ['true'], 'pipe'), /not running/);
  });

  it('SIGKILLs a container that ignores SIGTERM once the grace period is over', async () => {
    // sleep as PID 1 has no SIGTERM handler, so SIGTERM does nothing to it (as in Kubernetes).
    const s = spec(['sleep', '1000']);
    assert.equal((await runtime.startContainer(s)).state, 'running');
    const t0 = Date.now();
    const stopped = await runtime.stopContainer(s.podUid, 'main', 1);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 950, `stopped after ${elapsed} ms, before the grace period ended`);
    assert.deepEqual([stopped.state, stopped.exitCode, stopped.signal, stopped.reason], ['exited', 137, 'SIGKILL', 'Error']);
  });

  it('does not take a process that reused a recorded PID for the container', async () => {
    const s = spec(['true']);
    const adir = join(rootDir, 'pods', s.podUid, 'containers', 'main', 'attempts', '0');
    await mkdir(adir, { recursive: true });
    await writeFile(join(rootDir, 'pods', s.podUid, 'containers', 'main', 'current.json'), JSON.stringify({ attempt: 0 }));
    await writeFile(join(adir, 'launch.json'), JSON.stringify({ spec: s, logPath: join(adir, 'x.log') }));
    // This test process's PID, but a start time that is not its own: the recorded processes are gone.
    const fake = { phase: 'running', shimPid: process.pid, shimStartTicks: 1, pid: process.pid, pidStartTicks: 1, startedAt: new Date().toISOString() };
    await writeFile(join(adir, 'state.json'), JSON.stringify(fake));
    const status = await runtime.status(s.podUid, 'main');
    assert.deepEqual([status?.state, status?.reason, status?.exitCode], ['exited', 'ContainerStatusUnknown', 137]);
  });

  it('removes pods leaving no mount, no process and no runtime dir, and never touches the volumes', async () => {
    // One still running (with an exec'd process inside), to be stopped by the removal itself.
    const s = spec(['sleep', '1000'], { mounts: [{ hostPath: volume, containerPath: '/data', readOnly: false }] });
    assert.equal((await runtime.startContainer(s)).state, 'running');
    const execd = runtime.exec(s.podUid, 'main', ['sleep', '1000'], 'pipe');
    const execDone = collect(execd);
    for (const uid of uids) await runtime.removePod(uid);
    assert.notEqual((await execDone).code, 0, 'the exec session ended with its container');
    for (const uid of uids) await runtime.removePod(uid); // idempotent

    assert.deepEqual(mountsUnderTmp(), []);
    assert.deepEqual(processesMentioning(tmp), []);
    assert.deepEqual(await runtime.listPods(), []);
    for (const uid of uids) assert.equal(existsSync(join(rootDir, 'pods', uid, 'containers')), false);
    assert.equal(await readFile(join(volume, 'hello'), 'utf8'), 'hello\n', 'volume contents survive removal');
    assert.equal(await readFile(join(readOnlyVolume, 'existing'), 'utf8'), 'keep me\n');
    assert.equal(await readFile(configFile, 'utf8'), 'key: value\n');
  });
});
