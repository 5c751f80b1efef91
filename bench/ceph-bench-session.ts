/**
 * What the rbd and cephfs benches share: their options, a throwaway directory with a dev cluster,
 * the driver under test as a child process on it, a measure() that stops starting ops once a
 * signal came, and a clean-up that runs once — at the end, or on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DevCluster, type DevClusterInfo } from '../src/ceph/dev-cluster.js';
import { missingCephPackages } from '../src/ceph/packages.js';
import { CsiClient } from '../src/csi/client.js';
import type { Rados } from '../src/driver/backends/ceph/rados.js';
import { STOWAGE_BIN, waitProbeReady } from './driver-process.js';
import { measure as measureOps, type OpStats } from './raw-ops.js';

export const MiB = 1024 * 1024;

export interface CephBenchOptions {
  /** Volumes created and deleted, at `concurrency`. */
  n: number;
  concurrency: number;
  /** Volumes staged and unstaged, at `stageConcurrency`. */
  nStage: number;
  stageConcurrency: number;
  writeBytes: number;
  logLevel: string;
}

/** The benches' command line: --n, --concurrency, --n-stage, --stage-concurrency, --write-mib, --log-level. */
export function parseCephBenchOptions(defaultN: number): CephBenchOptions {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: String(defaultN) },
      concurrency: { type: 'string', default: '8' },
      'n-stage': { type: 'string', default: '16' },
      'stage-concurrency': { type: 'string', default: '4' },
      'write-mib': { type: 'string', default: '256' },
      'log-level': { type: 'string', default: 'warn' },
    },
  });
  return {
    n: Number(values.n),
    concurrency: Number(values.concurrency),
    nStage: Number(values['n-stage']),
    stageConcurrency: Number(values['stage-concurrency']),
    writeBytes: Number(values['write-mib']) * MiB,
    logLevel: values['log-level'],
  };
}

export class CephBenchSession {
  readonly drvDir: string;
  readonly rawDir: string;
  readonly cluster: DevCluster;
  /** The driver's last output lines, shown when the bench fails. */
  readonly output: string[] = [];
  /** The raw side's connection: shut down at clean-up (not after a signal, see cleanup()). */
  rados: Rados | undefined;
  private proc: ChildProcess | undefined;
  private client: CsiClient | undefined;
  private cleaning: Promise<string[]> | undefined;
  private aborted = false;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.aborted = true;
    process.stderr.write(`${signal}: cleaning up ${this.root}\n`);
    void this.cleanup().then((problems) => {
      for (const line of problems) process.stderr.write(`cleanup: ${line}\n`);
      process.exit(130);
    });
  };

  private constructor(
    readonly root: string,
    private readonly teardown: (root: string, cluster: DevCluster) => Promise<string[]>,
  ) {
    this.drvDir = join(root, 'drv');
    this.rawDir = join(root, 'raw');
    this.cluster = new DevCluster(join(root, 'ceph'), { installPackages: false, progress: (m) => process.stderr.write(`  ceph-dev: ${m}\n`) });
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  /**
   * Checks what the bench needs (root, the ceph packages) and makes its directory. `teardown`
   * unmounts and detaches what is left under the directory, stops the cluster and removes it,
   * returning what it could not clean.
   */
  static async open(bench: string, needs: string, teardown: (root: string, cluster: DevCluster) => Promise<string[]>): Promise<CephBenchSession> {
    if (process.getuid?.() !== 0) throw new Error(`${bench} needs root (${needs})`);
    const missing = await missingCephPackages();
    if (missing.length > 0) throw new Error(`${bench} needs the ceph packages (missing: ${missing.join(' ')}); run scripts/setup.sh`);
    return new CephBenchSession(await mkdtemp(join(tmpdir(), `stowage-${bench}-`)), teardown);
  }

  /** Starts `stowage driver --backend <backend>` on the cluster and waits until Probe says ready. */
  async startDriver(backend: 'rbd' | 'cephfs', info: DevClusterInfo, args: string[], logLevel: string): Promise<CsiClient> {
    await mkdir(this.drvDir, { recursive: true, mode: 0o700 });
    const cephConfig = join(this.drvDir, 'ceph-config.json');
    await writeFile(cephConfig, JSON.stringify([{ clusterID: info.clusterID, monitors: info.monitors }]));
    // One socket per backend: a bench may run the rbd driver, stop it, then the cephfs one.
    const socketPath = join(this.drvDir, `csi-${backend}.sock`);
    // The bench's staging and target paths are made in drvDir: it plays the kubelet's root.
    const endpoint = `unix://${socketPath}`;
    const proc = spawn(
      process.execPath,
      [STOWAGE_BIN, 'driver', '--backend', backend, '--endpoint', endpoint, '--node-id', 'bench-node', '--ceph-config', cephConfig, '--kubelet-dir', this.drvDir, ...args, '--log-level', logLevel],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    const keep = (b: Buffer) => {
      this.output.push(b.toString('utf8'));
      if (this.output.length > 200) this.output.shift();
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    for (let i = 0; i < 3000 && !existsSync(socketPath); i++) {
      if (proc.exitCode !== null) throw new Error(`driver exited during startup:\n${this.output.join('')}`);
      await sleep(10);
    }
    this.client = new CsiClient(endpoint, { timeoutMs: 120_000 });
    await waitProbeReady(this.client);
    return this.client;
  }

  /** raw-ops' measure(), but no new op starts once a signal came. */
  measure(count: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<OpStats> {
    return measureOps(count, concurrency, (i) => (this.aborted ? Promise.reject(new Error('interrupted')) : op(i)));
  }

  /** Stops the driver (SIGTERM, SIGKILL after 20 s), closes the connections and tears down; once. */
  cleanup(): Promise<string[]> {
    return (this.cleaning ??= (async () => {
      await this.stopDriver().catch(() => undefined);
      // After a signal, librados/librbd calls may still be running on the thread pool:
      // rados_shutdown under them hangs. process.exit ends the connection then.
      if (!this.aborted) await this.rados?.shutdown().catch(() => undefined);
      return this.teardown(this.root, this.cluster);
    })());
  }

  /** The end of a run, failed or not: the driver's output if it failed, clean-up, signals released. */
  async finish(failure: unknown): Promise<void> {
    if (failure !== undefined && this.output.length) process.stderr.write(`driver output (tail):\n${this.output.join('').slice(-4000)}\n`);
    process.stderr.write('cleaning up…\n');
    for (const p of await this.cleanup()) process.stderr.write(`cleanup: ${p}\n`);
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }

  /** Stops the driver started last (SIGTERM, SIGKILL after 20 s); another may be started after. */
  async stopDriver(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
}
