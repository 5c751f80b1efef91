// One `stowage up` child process for a test file, driven the way a user drives it: the stowage CLI
// with --state-dir, and the real kubectl with the kubeconfig `up` wrote. Clean-up deletes every
// pod through the API (so the node agent unmounts their volumes), stops `up`, then releases
// whatever a failed test left (processes, mounts, loop devices, the pool) and reports it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { killProcessesUnder, leftovers, releaseAllUnder } from './host-state.js';
import { type Ran, runCaptured } from './processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin/stowage.js');
export const SEEDS = join(ROOT, 'test', 'fixtures', 'seeds');
const KUBECTL = '/usr/bin/kubectl';

export interface Up {
  dir: string;
  state: string;
  node: string;
  /** `stowage --state-dir STATE …`, whatever its exit code. */
  stowage(...args: string[]): Promise<Ran>;
  /** The same, asserting exit code 0; its stdout. */
  ok(...args: string[]): Promise<string>;
  kubectl(...args: string[]): Promise<Ran>;
  until(what: string, probe: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** A field of an object (".status.phase", ".spec.volumes[0].name") read from `stowage get -o json`; '' when it or the object does not exist. */
  field(kind: string, name: string, path: string): Promise<string>;
  /** Sends a signal to the `up` process (its test hooks). */
  signal(signal: NodeJS.Signals): void;
  cleanup(): Promise<void>;
}

/** More of `up`: extra flags (--nodes 2, lifecycle timings) and environment (STOWAGE_TEST_HOOKS). */
export interface UpExtras {
  args?: string[];
  env?: Record<string, string>;
}

export async function startUp(prefix: string, node: string, poolSize = '1Gi', extras: UpExtras = {}): Promise<Up> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const state = join(dir, 'state');
  let log = '';
  const up: ChildProcess = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--pool-size', poolSize, '--node-name', node, ...(extras.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(extras.env === undefined ? {} : { env: { ...process.env, ...extras.env } }),
  });
  up.stdout?.on('data', (c: Buffer) => (log += c.toString('utf8')));
  up.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
  const stowage = (...args: string[]): Promise<Ran> => runCaptured(process.execPath, [BIN, '--state-dir', state, ...args]);
  const until = async (what: string, probe: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log.slice(-3000)}`);
      await sleep(200);
    }
  };
  const self: Up = {
    dir,
    state,
    node,
    stowage,
    async ok(...args) {
      const r = await stowage(...args);
      assert.equal(r.code, 0, `stowage ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    kubectl: (...args) => runCaptured(KUBECTL, ['--kubeconfig', join(state, 'kubeconfig'), ...args], { env: { HOME: dir } }),
    until,
    async field(kind, name, path) {
      const r = await stowage('get', kind, name, '-o', 'json');
      if (r.code !== 0) return '';
      let value: unknown = JSON.parse(r.stdout);
      for (const part of path.split(/[.[\]]+/).filter((p) => p !== '')) {
        if (value === null || typeof value !== 'object') return '';
        value = (value as Record<string, unknown>)[part];
      }
      if (value === undefined || value === null) return '';
      return typeof value === 'object' ? JSON.stringify(value) : String(value);
    },
    signal(signal) {
      up.kill(signal);
    },
    async cleanup() {
      if (up.exitCode === null && up.signalCode === null) {
        // Pods outlive `up`: delete them (their workloads first) so their volumes are given back.
        for (const kind of ['statefulsets', 'deployments', 'replicasets', 'daemonsets', 'jobs']) await stowage('delete', kind, '--all', '--no-wait').catch(() => undefined);
        await stowage('delete', 'pods', '--all', '--no-wait').catch(() => undefined);
        await until('every pod to be gone', async () => {
          const r = await stowage('get', 'pods', '-o', 'name');
          return r.code === 0 && r.stdout.trim() === '';
        }, 60_000).catch(() => undefined);
        const exited = new Promise((resolve) => up.once('exit', resolve));
        up.kill('SIGINT');
        const timer = setTimeout(() => up.kill('SIGKILL'), 40_000);
        await exited;
        clearTimeout(timer);
      }
      await killProcessesUnder(dir);
      await releaseAllUnder(dir);
      // Every node's pool (`--nodes N` makes several).
      const nodes = await readdir(join(state, 'nodes')).catch(() => [node]);
      for (const n of nodes) await releasePool(join(state, 'nodes', n, 'pool')).catch(() => undefined);
      const left = leftovers(dir);
      await rm(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], 'nothing may stay mounted or attached');
    },
  };
  await until('stowage up to start', async () => {
    if (up.exitCode !== null) throw new Error(`stowage up exited:\n${log}`);
    return log.includes('stowage is up');
  });
  return self;
}
