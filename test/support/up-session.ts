// One `stowage up` in a temp state dir for end-to-end pod tests that go through YAML and the CLI
// (apply, get, exec, delete), and its clean-up: pods deleted, `up` stopped, then nothing of the
// state dir may stay mounted or attached (the assertion every such test ends with).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Pod } from '../../src/control/api/types/core.js';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { killProcessesUnder, leftovers, releaseAllUnder, settledLeftovers } from './host-state.js';
import { type Ran, runCaptured } from './processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');

export interface UpSession {
  dir: string;
  node: string;
  /** `stowage --state-dir DIR ARGS…`. */
  cli(...args: string[]): Promise<Ran>;
  /** Writes the YAML to a file and applies it; throws with stderr when apply fails. */
  apply(yaml: string): Promise<void>;
  pod(name: string): Promise<Pod | undefined>;
  /** Kills `up` with the signal (its pods keep running) and starts a new one on the same state dir. */
  restart(signal: NodeJS.Signals): Promise<void>;
  /** Stops `up` and returns what is left mounted or attached under the state dir (should be nothing). */
  stop(): Promise<string[]>;
}

export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

export async function startUp(prefix: string, node = 'pod-node'): Promise<UpSession> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  let log = '';
  let up!: ChildProcess;
  const launch = async (): Promise<void> => {
    log = '';
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--pool-size', '2Gi', '--node-name', node], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
    try {
      await until('stowage up to start', 90_000, async () => log.includes('stowage is up'));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${log}`);
    }
  };
  const cli = (...args: string[]): Promise<Ran> => runCaptured(process.execPath, [BIN, '--state-dir', dir, ...args], { cwd: dir });
  let stopped = false;
  const session: UpSession = {
    dir,
    node,
    cli,
    async apply(yaml) {
      const file = join(dir, `manifest-${Date.now()}.yaml`);
      await writeFile(file, yaml);
      const ran = await cli('apply', '-f', file);
      if (ran.code !== 0) throw new Error(`apply failed: ${ran.stderr}`);
    },
    async pod(name) {
      const ran = await cli('get', 'pod', name, '-o', 'json');
      return ran.code === 0 ? (JSON.parse(ran.stdout) as Pod) : undefined;
    },
    async restart(signal) {
      up.kill(signal);
      await new Promise((r) => up.once('exit', r));
      await launch();
    },
    async stop() {
      if (stopped) return leftovers(dir);
      stopped = true;
      if (up.exitCode === null && up.signalCode === null) {
        const pods = await cli('get', 'pods', '-o', 'name');
        for (const name of pods.stdout.split('\n').filter(Boolean)) await cli('delete', name, '--grace-period', '1');
        up.kill('SIGINT');
        await new Promise((r) => up.once('exit', r));
      }
      await killProcessesUnder(dir);
      await releaseAllUnder(dir);
      await releasePool(join(dir, 'nodes', node, 'pool')).catch(() => undefined);
      // A loop device whose detach only waits for another namespace (a container elsewhere on the
      // machine that copied the host's mounts) is released, not leaked: settledLeftovers says so.
      const left = await settledLeftovers(dir);
      await rm(dir, { recursive: true, force: true });
      return left;
    },
  };
  try {
    await launch();
  } catch (err) {
    await session.stop();
    throw err;
  }
  return session;
}
