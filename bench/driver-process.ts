/**
 * The real driver as a child process, for the benchmarks: spawn it exactly as a CO would
 * (`node bin/stowage.js driver --backend local ...`), time how soon its socket answers, read its
 * memory, stop it, and tear down everything it left on the host (mounts, loop devices, the pool).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CsiClient } from '../src/csi/client.js';
import { releasePool } from '../src/driver/backends/local/pool-release.js';
import { LoopDevices } from '../src/driver/mount/loop.js';
import { parseMountInfo } from '../src/driver/mount/mount.js';
import { umount2 } from '../src/driver/mount/syscalls.js';

export interface DriverSpec {
  /** Holds csi.sock and local/ (the pool dir). */
  dir: string;
  poolSize?: string;
  logLevel?: string;
  /** Node flags before the script, e.g. ['--max-semi-space-size=1']. */
  nodeFlags?: string[];
  /** Extra environment (e.g. NODE_DISABLE_COMPILE_CACHE=1). */
  env?: Record<string, string>;
}

export interface RunningDriver {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly endpoint: string;
  readonly socketPath: string;
  readonly localDir: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whatever the driver wrote (stderr and stdout), for error messages. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'stowage.js')) && existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error('cannot find bin/stowage.js');
}

export const STOWAGE_BIN = join(repoRoot(), 'bin', 'stowage.js');

export function spawnDriver(spec: DriverSpec): RunningDriver {
  const socketPath = join(spec.dir, 'csi.sock');
  const localDir = join(spec.dir, 'local');
  const endpoint = `unix://${socketPath}`;
  const args = [
    ...(spec.nodeFlags ?? []),
    STOWAGE_BIN,
    'driver',
    '--backend',
    'local',
    '--endpoint',
    endpoint,
    '--node-id',
    'bench-node',
    '--local-dir',
    localDir,
    '--local-pool-size',
    spec.poolSize ?? '20Gi',
    // Staging and target paths are made in the bench dir: it plays the kubelet's root.
    '--kubelet-dir',
    spec.dir,
    '--log-level',
    spec.logLevel ?? 'warn',
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...spec.env } });
  const chunks: string[] = [];
  let kept = 0;
  const keep = (b: Buffer) => {
    // Bounded: at --log-level info a long run prints megabytes.
    if (kept > 256 * 1024) chunks.shift();
    chunks.push(b.toString('utf8'));
    kept += b.length;
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  if (proc.pid === undefined) throw new Error('could not spawn the driver');
  return {
    proc,
    pid: proc.pid,
    endpoint,
    socketPath,
    localDir,
    exited,
    output: () => chunks.join(''),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Waits until the driver's socket answers GetPluginInfo; returns ms since `since`
 * (performance.now() taken just before spawn). Polls every 2 ms with a raw connect first, so
 * grpc's reconnect backoff never inflates the number.
 */
export async function waitSocketReady(d: RunningDriver, since: number, timeoutMs = 30_000): Promise<number> {
  const deadline = since + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error(`driver exited during startup:\n${d.output()}`);
    if (existsSync(d.socketPath) && (await socketAccepts(d.socketPath))) {
      const client = new CsiClient(d.endpoint, { timeoutMs: 2_000 });
      try {
        await client.identity.GetPluginInfo({});
        return performance.now() - since;
      } catch (e) {
        last = (e as Error).message;
      } finally {
        client.close();
      }
    }
    await sleep(2);
  }
  throw new Error(`driver socket not ready in ${timeoutMs} ms (${last}):\n${d.output()}`);
}

/** Waits until Probe says ready (the backend is open). */
export async function waitProbeReady(client: CsiClient, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await client.identity.Probe({}, { timeoutMs: 5_000 })).ready?.value) return;
    } catch {
      // not listening yet
    }
    await sleep(5);
  }
  throw new Error(`driver not ready within ${timeoutMs} ms`);
}

/** VmRSS of a process in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
  return kb / 1024;
}

/** Resident memory of a process in MiB: all of it, and its anonymous and file-backed parts. */
export interface Resident {
  rss: number;
  anon: number;
  file: number;
}

export async function residentMiB(pid: number): Promise<Resident> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1]) / 1024;
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

/** user+system CPU ms a process has used so far. */
export async function cpuMsOf(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14, 15); USER_HZ 100
}

/**
 * Leaves nothing of `dir` on the host: unmounts everything under it (deepest first) except the
 * pool, detaches volume loop devices backed by files in it, releases the pool, removes the dir.
 * Only touches mounts and loop devices that refer to dir.
 */
export async function teardown(dir: string): Promise<void> {
  const localDir = join(dir, 'local');
  const poolRoot = join(localDir, 'pool');
  const under = (p: string) => p === dir || p.startsWith(`${dir}/`);
  for (let round = 0; round < 3; round++) {
    const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'))
      .filter((m) => under(m.mountPoint) && m.mountPoint !== poolRoot)
      .sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.mountId - a.mountId);
    for (const m of mounts) await umount2(m.mountPoint, 0).catch(() => umount2(m.mountPoint, 2 /* MNT_DETACH */).catch(() => undefined));
    const loops = new LoopDevices();
    for (const l of await loops.list()) {
      const file = l.backingFile.replace(/ \(deleted\)$/, '');
      if (under(file) && file !== join(localDir, 'pool.img')) await loops.detach(l.device).catch(() => undefined);
    }
    if (existsSync(localDir)) await releasePool(localDir).catch(() => undefined);
    const left = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).filter((m) => under(m.mountPoint));
    const leftLoops = (await loops.list()).filter((l) => under(l.backingFile.replace(/ \(deleted\)$/, '')));
    if (left.length === 0 && leftLoops.length === 0) {
      await rm(dir, { recursive: true, force: true });
      return;
    }
    await sleep(200 * (round + 1));
  }
  throw new Error(`could not tear down ${dir}: mounts or loop devices remain (left in place, not deleted)`);
}

/** Names of the entries of a directory, or [] if it does not exist. */
export async function listDir(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}
