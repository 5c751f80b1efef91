/**
 * The chaos campaign (issue 11): a mixed workload on a real `stowage up --nodes 3` (a child process
 * on a temp state dir with small pools) and on a standalone `stowage driver` (its CSI socket), while
 * kill -9 hits one component at a random moment of every round; the component is then restarted,
 * the system is given time to converge, and invariants are checked.
 *
 * The workload: claims (the default btrfs class and an ext4 one), pods that write a file, fsync it
 * and print "ACK", `stowage exec` writes, deletions of pods and claims; on the standalone driver
 * CreateVolume (btrfs or ext4), CreateSnapshot, restores, ControllerExpandVolume, NodeStage +
 * NodePublish with writes through the publication, unpublish, DeleteSnapshot, DeleteVolume. The
 * victims: `up` (its nodes' drivers run in its process), the standalone driver — either of them,
 * a third of the time, killed again while it restarts — a container's shim, a container.
 *
 * The invariants:
 *
 *   - every object the API acknowledged (201) and we did not delete is still there;
 *   - every claim is Bound, or Pending with an event saying why;
 *   - the nodes' backend volumes (ListVolumes on each node's socket, and the pools' volumes/ dirs)
 *     are exactly the PVs' volume handles: no orphan, none missing, none twice;
 *   - the standalone driver's volumes and snapshots (ListVolumes/ListSnapshots and its pool dirs)
 *     are exactly what its workload was acknowledged (a call cut short by the kill is retried after
 *     the restart, as a CO retries: the driver's idempotency must make that exactly one object);
 *   - no mount and no loop device under the temp dir beyond the pools and what the live pods need,
 *     and every Running pod's volume is staged and published; no process of a gone pod is left;
 *   - every acknowledged write (a pod's "ACK" line after it fsynced its file, or a `stowage exec`
 *     that wrote and fsynced and exited 0) reads back byte for byte from the volume.
 *
 * Why kill -9 and not a clean stop: the point is what a crash leaves behind (half-done CSI calls,
 * store commits, vol_data.json records, shims without their agent). Why a standalone driver too:
 * snapshots and expansion are not in the control plane yet, so the driver is driven directly.
 *
 * Deterministic from the seed: each round's plan (which operations, which objects, which component
 * is killed, when, and how long it stays down) comes from a small PRNG seeded with (seed, round).
 * How far an operation got when the kill lands is timing and is not: a failing round prints its
 * seed and number, and the same seed re-runs the campaign up to it (`--from-round R` starts with
 * round R's top-level draws — victim, kill moment, downtime — on a fresh system instead).
 *
 * Everything is removed at the end, also after a failure or SIGINT (the caller's AbortSignal):
 * objects through the API, `up` stopped (it releases its pools), leftover mounts and loop devices
 * under the temp dir unmounted and detached (never anyone else's), processes started here killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ApiClient, ApiStatusError, resolveResource } from '../src/cli/api-client.js';
import type { Event, PersistentVolume, PersistentVolumeClaim, Pod } from '../src/control/api/types/core.js';
import type { StorageClass } from '../src/control/api/types/storage.js';
import { CsiClient } from '../src/csi/client.js';
import { CsiError } from '../src/csi/errors.js';
import { releasePool } from '../src/driver/backends/local/pool-release.js';
import { LoopDevices } from '../src/driver/mount/loop.js';
import { parseMountInfo } from '../src/driver/mount/mount.js';
import { umount2 } from '../src/driver/mount/syscalls.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'stowage.js');
const DRIVER = 'local.csi.stowage.dev';
const NODES = ['node-1', 'node-2', 'node-3'];
const MiB = 2 ** 20;
const PVCS = resolveResource('pvc');
const PODS = resolveResource('pods');
const PVS = resolveResource('pv');
const EVENTS = resolveResource('events');
const NS = 'default';
/** A mount volume: fs '' is a btrfs subvolume, 'ext4' an image file (formatted at its first stage). */
function mountCap(fs: Fs) {
  return { mount: { fs_type: fs, mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };
}
type Fs = '' | 'ext4';
/** The control plane's second class: ext4 on an image file and a loop device. */
const EXT4_CLASS = 'chaos-ext4';

export interface CampaignOptions {
  rounds: number;
  seed: number;
  /** First round number (to replay a failing round's plan: same seed, --from-round R). Default 1. */
  fromRound?: number;
  /** Each node's pool and the standalone driver's pool. Default 512Mi. */
  poolSize?: string;
  /** How long a round may take to converge after its kill. Default 60 s. */
  settleTimeoutMs?: number;
  /** Stop at the first round with a violation (its state is then what the report shows). */
  stopOnViolation?: boolean;
  /**
   * Where `up`'s and the standalone driver's output go (up.log, driver.log, with a marker line per
   * round), to read after a violation; kept after the temp dir is gone. Default: none.
   */
  logDir?: string;
  /** One line of progress at a time. */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface Violation {
  round: number;
  kind: string;
  detail: string;
}

export interface CampaignResult {
  seed: number;
  /** The temp dir everything lived in (removed at the end unless something could not be released). */
  dir: string;
  roundsRun: number;
  roundsSurvived: number;
  orphans: number;
  writesAcknowledged: number;
  writesLost: number;
  kills: Record<string, number>;
  violations: Violation[];
  /** How the campaign's own tear-down went (leftovers are a violation too). */
  cleanup: string[];
}

/** The summary `npm run chaos` prints (and the short test shows when it fails). */
export function formatSummary(r: CampaignResult): string {
  const kills = Object.entries(r.kills).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none';
  const lines = [
    '',
    `chaos summary (seed ${r.seed})`,
    `  rounds survived: ${r.roundsSurvived} / ${r.roundsRun}`,
    `  kills: ${kills}`,
    `  orphans: ${r.orphans}`,
    `  acknowledged writes: ${r.writesAcknowledged}, lost: ${r.writesLost}`,
    `  violations: ${r.violations.length}`,
    ...r.violations.map((v) => `    round ${v.round} [${v.kind}] ${v.detail.split('\n').join('\n      ')}`),
    ...(r.cleanup.length > 0 ? ['  clean-up:', ...r.cleanup.map((c) => `    ${c}`)] : []),
    '',
  ];
  return lines.join('\n');
}

// ───────────────────────────── the PRNG ─────────────────────────────

/** mulberry32: small, fast, good enough to pick operations; the same seed gives the same stream. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function roundRandom(seed: number, round: number): () => number {
  const mix = prng((seed ^ Math.imul(round, 0x9e3779b1)) >>> 0);
  mix();
  return mix;
}

function pick<T>(rand: () => number, items: readonly T[]): T | undefined {
  return items.length === 0 ? undefined : items[Math.floor(rand() * items.length)];
}

function weighted<K extends string>(rand: () => number, options: [K, number][]): K | undefined {
  const live = options.filter(([, w]) => w > 0);
  const total = live.reduce((s, [, w]) => s + w, 0);
  if (total === 0) return undefined;
  let r = rand() * total;
  for (const [k, w] of live) {
    if ((r -= w) < 0) return k;
  }
  return live.at(-1)?.[0];
}

// ───────────────────────────── processes ─────────────────────────────

interface Child {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  tail(): string;
  alive(): boolean;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function startChild(args: string[], onLine?: (line: string) => void, logTo?: WriteStream): Child {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // If this process dies without its clean-up, it takes the processes it started with it.
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  // Their own process group: a Ctrl-C meant for the campaign must not stop them behind its back
  // (the campaign's clean-up stops them in order); the exit hook above covers a campaign that dies.
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(proc);
  const lines: string[] = [];
  let partial = '';
  const keep = (b: Buffer): void => {
    const text = partial + b.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      lines.push(l);
      onLine?.(l);
      logTo?.write(`${l}\n`);
    }
    if (lines.length > 400) lines.splice(0, lines.length - 300);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    }),
  );
  return { proc, exited, tail: () => [...lines, partial].slice(-30).join('\n'), alive: () => proc.exitCode === null && proc.signalCode === null };
}

async function stopChild(c: Child | undefined, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (c === undefined || !c.alive()) return;
  c.proc.kill(signal);
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), graceMs);
  await c.exited;
  clearTimeout(timer);
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** PIDs of live processes whose argv contains `needle` (our pods' marker, our state dir). */
function processesMentioning(needle: string): { pid: number; argv: string[] }[] {
  const out: { pid: number; argv: string[] }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes(needle)) && isAlive(Number(entry))) out.push({ pid: Number(entry), argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// ───────────────────────────── the host's state ─────────────────────────────

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

function mountsUnder(dir: string): { mountId: number; mountPoint: string; fsType: string; root: string }[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => under(m.mountPoint, dir));
}

function loopsUnder(dir: string): { device: string; backingFile: string }[] {
  const out: { device: string; backingFile: string }[] = [];
  for (const name of readdirSync('/sys/block')) {
    if (!/^loop\d+$/.test(name)) continue;
    try {
      const backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trimEnd().replace(/ \(deleted\)$/, '');
      if (under(backing, dir)) out.push({ device: `/dev/${name}`, backingFile: backing });
    } catch {
      // not bound
    }
  }
  return out;
}

// ───────────────────────────── the model ─────────────────────────────

/** What a write put in a file: `yes TOKEN | head -c SIZE`, reproducible here. */
interface Content {
  token: string;
  size: number;
}

function expected(c: Content): Buffer {
  const line = `${c.token}\n`;
  return Buffer.from(line.repeat(Math.ceil(c.size / line.length)).slice(0, c.size));
}

type Life = 'live' | 'deleting' | 'gone';

interface ClaimModel {
  name: string;
  size: string;
  /** The default class (a btrfs subvolume) or chaos-ext4 (an image on a loop device). */
  fs: 'btrfs' | 'ext4';
  life: Life;
  /** The API answered 201 (vs. a create cut short by the kill that turned out to have happened). */
  acked: boolean;
  /** Set while a create or delete is in doubt (the kill cut it short): settled after the restart. */
  doubt?: 'create' | 'delete';
  /** Acknowledged writes: file name in the volume → what it holds. */
  files: Map<string, Content>;
}

interface PodModel {
  name: string;
  claim: string;
  life: Life;
  acked: boolean;
  doubt?: 'create' | 'delete';
  file: string;
  content: Content;
}

interface VolModel {
  name: string;
  id?: string;
  fs: Fs;
  bytes: number;
  life: Life;
  doubt?: 'create' | 'delete' | 'expand';
  /** A restore: the snapshot it is made from. */
  fromSnapshot?: string;
  /** Staged and published on the standalone driver (the harness plays the pod: it writes there). */
  published: boolean;
  pubDoubt?: 'publish' | 'unpublish';
  /** Acknowledged writes (written through the publication and fsynced), also those a restore brought. */
  files: Map<string, Content>;
}

interface SnapModel {
  name: string;
  id?: string;
  fs: Fs;
  source: string;
  sourceBytes: number;
  life: Life;
  doubt?: 'create' | 'delete';
  /** The source's acknowledged writes when the snapshot was cut. */
  files: Map<string, Content>;
}

interface Unconverged {
  text: string;
  /** A claim Pending with an event, or a pod waiting for such a claim: an answer, not a hang. */
  excused: boolean;
}

type Victim = 'up' | 'driver' | 'shim' | 'container';

/** A CSI failure that says nothing about whether the call took effect. */
function csiInDoubt(err: unknown): boolean {
  if (!(err instanceof CsiError)) return true;
  return [grpcStatus.UNAVAILABLE, grpcStatus.DEADLINE_EXCEEDED, grpcStatus.CANCELLED, grpcStatus.UNKNOWN, grpcStatus.ABORTED, grpcStatus.INTERNAL].includes(err.code);
}

/** An API failure that says nothing about whether the request took effect (no answer). */
function apiInDoubt(err: unknown): boolean {
  return !(err instanceof ApiStatusError) || err.code >= 500;
}

/** "UNAVAILABLE" for a CSI failure, "connection" for an API that did not answer, the HTTP code otherwise. */
function codeOf(err: unknown): string {
  if (err instanceof CsiError) return Object.entries(grpcStatus).find(([, v]) => v === err.code)?.[0] ?? String(err.code);
  if (err instanceof ApiStatusError) return String(err.code);
  return 'no answer';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ───────────────────────────── the campaign ─────────────────────────────

export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const c = new Campaign(options);
  try {
    await c.setUp();
    await c.run();
  } catch (err) {
    if (!options.signal?.aborted) c.violation(c.round, 'harness-error', err instanceof Error ? (err.stack ?? err.message) : String(err));
  } finally {
    await c.tearDown();
  }
  return c.result;
}

class Campaign {
  readonly result: CampaignResult;
  round = 0;
  private dir = '';
  private state = '';
  private up: Child | undefined;
  private upReady = false;
  private driver: Child | undefined;
  private api!: ApiClient;
  private csi: CsiClient | undefined;
  private readonly claims = new Map<string, ClaimModel>();
  private readonly pods = new Map<string, PodModel>();
  private readonly vols = new Map<string, VolModel>();
  private readonly snaps = new Map<string, SnapModel>();
  private readonly log: (line: string) => void;
  private readonly poolSize: string;
  private counter = 0;
  private upLog: WriteStream | undefined;
  private driverLog: WriteStream | undefined;
  /** Violations already reported, so one stuck object is one violation, not one per round. */
  private readonly reported = new Set<string>();

  constructor(private readonly options: CampaignOptions) {
    this.result = { seed: options.seed, dir: '', roundsRun: 0, roundsSurvived: 0, orphans: 0, writesAcknowledged: 0, writesLost: 0, kills: {}, violations: [], cleanup: [] };
    this.log = options.log ?? (() => undefined);
    this.poolSize = options.poolSize ?? '512Mi';
  }

  violation(round: number, kind: string, detail: string): void {
    // A condition that persists is reported in the round that caused it, not again in every later one.
    const key = `${kind}|${detail}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.result.violations.push({ round, kind, detail });
    this.log(`  VIOLATION round ${round} ${kind}: ${detail}`);
  }

  private get aborted(): boolean {
    return this.options.signal?.aborted === true;
  }

  private nodeRoot(node: string): string {
    return join(this.state, 'nodes', node);
  }

  private get driverDir(): string {
    return join(this.dir, 'd');
  }

  // ── set-up and the two long-running processes ──

  async setUp(): Promise<void> {
    // Short: the nodes' sockets live deep under it and sun_path holds 107 bytes.
    this.dir = await mkdtemp(join(tmpdir(), 'chaos-'));
    this.result.dir = this.dir;
    this.state = join(this.dir, 's');
    this.api = new ApiClient({ server: `unix://${join(this.state, 'api.sock')}`, timeoutMs: 15_000 });
    await mkdir(this.driverDir, { recursive: true });
    if (this.options.logDir !== undefined) {
      await mkdir(this.options.logDir, { recursive: true });
      this.upLog = createWriteStream(join(this.options.logDir, 'up.log'), { flags: 'a' });
      this.driverLog = createWriteStream(join(this.options.logDir, 'driver.log'), { flags: 'a' });
      this.log(`chaos: logs of up and the standalone driver in ${this.options.logDir}`);
    }
    this.log(`chaos: seed ${this.options.seed}, state in ${this.dir}`);
    await this.startUp(0);
    await this.startDriver(0);
    const ext4: StorageClass = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: EXT4_CLASS },
      provisioner: DRIVER,
      parameters: { 'csi.storage.k8s.io/fstype': 'ext4' },
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
    };
    await this.api.create(resolveResource('storageclasses'), ext4);
  }

  /** `stowage up --nodes 3`; a start that fails is a violation (the known restart bug), retried. */
  private async startUp(round: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let ready!: () => void;
      const readyP = new Promise<void>((r) => (ready = r));
      const child = this.spawnUp(() => ready());
      const timeout = new AbortController();
      const outcome = await Promise.race([
        readyP.then(() => 'ready' as const),
        child.exited.then((e) => `exited (code ${e.code ?? ''}${e.signal ?? ''})`),
        sleep(120_000, undefined, { signal: timeout.signal }).then(() => 'not ready within 120 s', () => 'ready' as const),
      ]);
      timeout.abort();
      if (outcome === 'ready') {
        this.upReady = true;
        return;
      }
      await stopChild(child, 'SIGKILL', 1_000);
      const detail = `stowage up ${outcome} (attempt ${attempt}); its last lines:\n${child.tail()}`;
      if (round > 0) this.violation(round, 'up-restart-failed', detail);
      if (attempt >= 10 || this.aborted) throw new Error(`stowage up would not start: ${detail}`);
      this.log(`  [harness] retrying \`stowage up\` after: ${outcome} — a product bug, counted as a violation`);
      await sleep(1_000);
    }
  }

  private spawnUp(onReady?: () => void): Child {
    const child = startChild(['up', '--state-dir', this.state, '--nodes', String(NODES.length), '--pool-size', this.poolSize, '--log-level', 'info'], (line) => {
      if (line.includes('stowage is up')) onReady?.();
    }, this.upLog);
    this.up = child;
    return child;
  }

  private spawnDriver(): Child {
    const socket = join(this.driverDir, 'csi.sock');
    const child = startChild(['driver', '--backend', 'local', '--endpoint', `unix://${socket}`, '--node-id', 'chaos-standalone', '--local-dir', join(this.driverDir, 'local'), '--local-pool-size', this.poolSize, '--kubelet-dir', this.kubeletDir, '--log-level', 'info'], undefined, this.driverLog);
    this.driver = child;
    return child;
  }

  private async startDriver(round: number): Promise<void> {
    const socket = join(this.driverDir, 'csi.sock');
    const child = this.spawnDriver();
    this.csi?.close();
    this.csi = new CsiClient(`unix://${socket}`, { timeoutMs: 20_000 });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (!child.alive()) break;
      if (existsSync(socket)) {
        const ok = await this.csi.identity.Probe({}, { timeoutMs: 3_000 }).then((p) => p.ready?.value === true, () => false);
        if (ok) return;
      }
      await sleep(50);
    }
    const detail = `the standalone driver did not become ready:\n${child.tail()}`;
    if (round > 0) this.violation(round, 'driver-restart-failed', detail);
    throw new Error(detail);
  }

  // ── rounds ──

  async run(): Promise<void> {
    const first = this.options.fromRound ?? 1;
    for (let r = first; r < first + this.options.rounds && !this.aborted; r++) {
      this.round = r;
      for (const l of [this.upLog, this.driverLog]) l?.write(`===== chaos round ${r} (seed ${this.options.seed}) =====\n`);
      const before = this.result.violations.length;
      const started = Date.now();
      const summary = await this.oneRound(r);
      if (this.aborted) break;
      this.result.roundsRun += 1;
      const fresh = this.result.violations.length - before;
      if (fresh === 0) this.result.roundsSurvived += 1;
      for (const l of [this.upLog, this.driverLog]) l?.write(`===== chaos round ${r}: ${summary} =====\n`);
      this.log(`round ${r}: ${summary} — ${fresh === 0 ? 'ok' : `${fresh} violation(s)`} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      if (fresh > 0 && this.options.stopOnViolation) break;
    }
  }

  private async oneRound(r: number): Promise<string> {
    const rand = roundRandom(this.options.seed, r);
    const victim: Victim = weighted<Victim>(rand, [['up', 4], ['driver', 3], ['shim', 1.5], ['container', 1.5]]) ?? 'up';
    const killAt = Math.floor(rand() * 2_000);
    const downFor = Math.floor(rand() * 1_000);
    const cpOps = 2 + Math.floor(rand() * 4);
    const drvOps = 2 + Math.floor(rand() * 4);
    // Separate streams, so that how many numbers one lane draws never shifts the other's plan.
    const cpRand = prng(Math.floor(rand() * 2 ** 32));
    const drvRand = prng(Math.floor(rand() * 2 ** 32));
    const done: string[] = [];
    // A third of the time the restarted process is killed again while it starts (pools being
    // mounted, journals rewritten, nodes registering), then started for good.
    const again = rand() < 1 / 3 ? Math.floor(rand() * 1_500) : undefined;
    // A quarter of the kills of `up` land while a claim created and deleted just before is being
    // provisioned: the volume made for a claim that is gone must not outlive the crash.
    const race = victim === 'up' && rand() < 1 / 4 ? { deleteAfter: Math.floor(rand() * 40), killAfter: Math.floor(rand() * 40) } : undefined;
    const killer = (async () => {
      await sleep(killAt);
      if (race !== undefined && this.upReady) done.push(await this.provisioningRace(race.deleteAfter, race.killAfter));
      const what = await this.kill(victim, rand);
      await sleep(downFor);
      if (again !== undefined && (what === 'up' || what === 'driver')) {
        const started = what === 'up' ? this.spawnUp() : this.spawnDriver();
        await sleep(again);
        const before = started.alive();
        started.proc.kill('SIGKILL');
        await started.exited;
        this.count(`${what} while starting`);
        done.push(`kill ${what} at ${killAt} ms, again ${again} ms into its restart${before ? '' : ' (it had exited)'}`);
      } else {
        done.push(`kill ${what} at ${killAt} ms`);
      }
      await this.restart(what, r);
    })();
    const cpLane = (async () => {
      for (let i = 0; i < cpOps && !this.aborted; i++) {
        await sleep(Math.floor(cpRand() * 400));
        done.push(await this.controlPlaneOp(cpRand));
      }
    })();
    const drvLane = (async () => {
      for (let i = 0; i < drvOps && !this.aborted; i++) {
        await sleep(Math.floor(drvRand() * 400));
        done.push(await this.driverOp(drvRand));
      }
    })();
    await Promise.all([killer, cpLane, drvLane]);
    await this.settle(r);
    await this.check(r);
    return done.join(', ');
  }

  private name(prefix: string): string {
    this.counter += 1;
    return `${prefix}${this.round}-${this.counter}`;
  }

  // ── killing ──

  /** A claim created, deleted `deleteAfter` ms later, and `up` killed `killAfter` ms after that (by the caller). */
  private async provisioningRace(deleteAfter: number, killAfter: number): Promise<string> {
    const m: ClaimModel = { name: this.name('c'), size: '16Mi', fs: 'btrfs', life: 'live', acked: false, files: new Map() };
    this.claims.set(m.name, m);
    try {
      await this.api.create(PVCS, { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: m.name, namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: m.size } } } });
      m.acked = true;
      await sleep(deleteAfter);
      m.life = 'deleting';
      await this.api.delete(PVCS, NS, m.name);
    } catch (err) {
      if (m.acked) m.doubt = 'delete';
      else if (apiInDoubt(err)) {
        m.life = 'live'; // whether it exists is settled after the round, as for any create in doubt
        m.doubt = 'create';
      } else m.life = 'gone';
    }
    await sleep(killAfter);
    return `claim ${m.name} deleted ${deleteAfter} ms after its creation, up killed ${killAfter} ms later`;
  }

  private async kill(victim: Victim, rand: () => number): Promise<Victim> {
    if (victim === 'shim' || victim === 'container') {
      const running = await this.runningContainers().catch(() => []);
      const target = pick(rand, running);
      const pid = target === undefined ? undefined : victim === 'shim' ? target.shimPid : target.pid;
      if (target !== undefined && pid !== undefined && isAlive(pid)) {
        process.kill(pid, 'SIGKILL');
        this.count(victim);
        return victim;
      }
      victim = 'driver'; // no pod to hit: the standalone driver takes it
    }
    if (victim === 'up' && this.up?.alive()) {
      this.upReady = false;
      this.up.proc.kill('SIGKILL');
      await this.up.exited;
    } else if (victim === 'driver' && this.driver?.alive()) {
      this.driver.proc.kill('SIGKILL');
      await this.driver.exited;
    }
    this.count(victim);
    return victim;
  }

  private count(victim: string): void {
    this.result.kills[victim] = (this.result.kills[victim] ?? 0) + 1;
  }

  private async restart(victim: Victim, r: number): Promise<void> {
    // A killed shim or container is the node's to deal with (restart policy, adoption).
    if (victim === 'up') await this.startUp(r);
    if (victim === 'driver') await this.startDriver(r);
  }

  /** Containers of live pods with their shim's and first process's PIDs (from the runtime's state.json). */
  private async runningContainers(): Promise<{ pod: string; pid?: number; shimPid?: number }[]> {
    const out: { pod: string; pid?: number; shimPid?: number }[] = [];
    for (const node of NODES) {
      const podsDir = join(this.nodeRoot(node), 'pods');
      for (const uid of await readdir(podsDir).catch(() => [] as string[])) {
        const cdir = join(podsDir, uid, 'containers', 'main');
        try {
          const current = JSON.parse(await readFile(join(cdir, 'current.json'), 'utf8')) as { attempt: number };
          const state = JSON.parse(await readFile(join(cdir, 'attempts', String(current.attempt), 'state.json'), 'utf8')) as { phase: string; pid?: number; shimPid?: number };
          if (state.phase === 'running') out.push({ pod: uid, ...(state.pid ? { pid: state.pid } : {}), ...(state.shimPid ? { shimPid: state.shimPid } : {}) });
        } catch {
          // not started, or being removed
        }
      }
    }
    return out.sort((a, b) => a.pod.localeCompare(b.pod));
  }

  // ── the control plane's workload ──

  private live<T extends { life: Life }>(m: Map<string, T>): T[] {
    return [...m.values()].filter((x) => x.life === 'live');
  }

  private async controlPlaneOp(rand: () => number): Promise<string> {
    const claims = this.live(this.claims);
    const pods = this.live(this.pods);
    // Not a claim whose create is in doubt: a pod on a claim that turns out never to have been made
    // stays Pending, rightly.
    const podless = claims.filter((c) => c.doubt === undefined && ![...this.pods.values()].some((p) => p.claim === c.name && p.life !== 'gone'));
    const op = weighted(rand, [
      ['claim', claims.length < 6 ? 3 : 0],
      ['pod', podless.length > 0 && pods.length < 4 ? 3 : 0],
      ['exec', pods.length > 0 ? 3 : 0],
      ['delete-pod', pods.length > 0 ? 2 : 0],
      ['delete-claim', podless.length > 0 ? 1.5 : 0],
    ]);
    let failed = '';
    const note = (err: unknown): void => {
      failed = ` [${codeOf(err)}]`;
    };
    switch (op) {
      case 'claim': {
        const m: ClaimModel = { name: this.name('c'), size: rand() < 0.5 ? '16Mi' : '32Mi', fs: rand() < 0.3 ? 'ext4' : 'btrfs', life: 'live', acked: false, files: new Map() };
        this.claims.set(m.name, m);
        const claim: PersistentVolumeClaim = {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: m.name, namespace: NS },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: m.size } }, ...(m.fs === 'ext4' ? { storageClassName: EXT4_CLASS } : {}) },
        };
        try {
          await this.api.create(PVCS, claim);
          m.acked = true;
        } catch (err) {
          note(err);
          if (apiInDoubt(err)) m.doubt = 'create';
          else m.life = 'gone';
        }
        return `claim ${m.name}${m.fs === 'ext4' ? ' (ext4)' : ''}${failed}`;
      }
      case 'pod': {
        const claim = pick(rand, podless)!;
        const name = this.name('p');
        const m: PodModel = { name, claim: claim.name, life: 'live', acked: false, file: `${name}.dat`, content: { token: `${name}-${Math.floor(rand() * 1e9).toString(36)}`, size: 4096 + Math.floor(rand() * 60_000) } };
        this.pods.set(name, m);
        try {
          await this.api.create(PODS, this.podManifest(m));
          m.acked = true;
        } catch (err) {
          note(err);
          if (apiInDoubt(err)) m.doubt = 'create';
          else m.life = 'gone';
        }
        return `pod ${name}→${claim.name}${failed}`;
      }
      case 'exec': {
        const pod = pick(rand, pods)!;
        const file = `${this.name('e')}.dat`;
        const content: Content = { token: `${file}-${Math.floor(rand() * 1e9).toString(36)}`, size: 1024 + Math.floor(rand() * 30_000) };
        const script = `yes '${content.token}' | head -c ${content.size} > /data/${file}.tmp && sync /data/${file}.tmp && mv /data/${file}.tmp /data/${file} && sync /data`;
        const ran = startChild(['--state-dir', this.state, 'exec', pod.name, '--', 'sh', '-c', script]);
        const timer = setTimeout(() => ran.proc.kill('SIGKILL'), 30_000);
        const { code } = await ran.exited;
        clearTimeout(timer);
        if (code === 0) {
          this.claims.get(pod.claim)?.files.set(file, content);
          this.result.writesAcknowledged += 1;
        }
        const why = code === 0 ? '' : ` (${ran.tail().split('\n').filter((l) => l.trim() !== '').at(-1)?.slice(0, 120) ?? `exit ${code ?? 'signal'}`})`;
        return `exec ${pod.name} ${code === 0 ? 'wrote' : 'failed'} ${file}${why}`;
      }
      case 'delete-pod': {
        const pod = pick(rand, pods)!;
        await this.collectAcks(pod).catch(() => undefined);
        pod.life = 'deleting';
        try {
          await this.api.delete(PODS, NS, pod.name, { gracePeriodSeconds: 1 });
        } catch (err) {
          note(err);
          if (apiInDoubt(err)) pod.doubt = 'delete';
          else if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
        }
        return `delete pod ${pod.name}${failed}`;
      }
      case 'delete-claim': {
        const claim = pick(rand, podless)!;
        claim.life = 'deleting';
        try {
          await this.api.delete(PVCS, NS, claim.name);
        } catch (err) {
          note(err);
          if (apiInDoubt(err)) claim.doubt = 'delete';
          else if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
        }
        return `delete claim ${claim.name}${failed}`;
      }
      default:
        return 'idle';
    }
  }

  /** Marked, so a leftover process of a gone pod can be found in /proc. */
  private marker(pod: string): string {
    return `chaos-pod:${basename(this.dir)}:${pod}`;
  }

  private podManifest(m: PodModel): Pod {
    const f = `/data/${m.file}`;
    const script = [
      `: ${this.marker(m.name)}`,
      "trap 'exit 0' TERM",
      `yes '${m.content.token}' | head -c ${m.content.size} > ${f}.tmp && sync ${f}.tmp && mv ${f}.tmp ${f} && sync /data && echo ACK ${m.file}`,
      'while true; do sleep 0.2; done',
    ].join('; ');
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: m.name, namespace: NS },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', script], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: m.claim } }],
      },
    };
  }

  /** A pod's "ACK file" lines (in any attempt's log) make its write acknowledged. */
  private async collectAcks(m: PodModel): Promise<void> {
    const claim = this.claims.get(m.claim);
    if (claim === undefined || claim.files.has(m.file)) return;
    const pod = await this.api.find<Pod>(PODS, NS, m.name);
    if (pod?.spec.nodeName === undefined || pod.metadata.uid === undefined) return;
    const logs = join(this.nodeRoot(pod.spec.nodeName), 'pods', pod.metadata.uid, 'containers', 'main', 'logs');
    for (const f of await readdir(logs).catch(() => [] as string[])) {
      const text = await readFile(join(logs, f), 'utf8').catch(() => '');
      if (text.split('\n').includes(`ACK ${m.file}`)) {
        claim.files.set(m.file, m.content);
        this.result.writesAcknowledged += 1;
        return;
      }
    }
  }

  // ── the standalone driver's workload ──

  private async driverOp(rand: () => number): Promise<string> {
    const vols = this.live(this.vols).filter((v) => v.doubt === undefined);
    // A CO retries a CreateSnapshot cut short by the kill; it does not delete the source meanwhile.
    const deletable = vols.filter((v) => !v.published && v.pubDoubt === undefined && ![...this.snaps.values()].some((s) => s.source === v.name && s.doubt !== undefined) && !this.live(this.vols).some((o) => o.doubt === 'create' && o.fromSnapshot !== undefined && this.snaps.get(o.fromSnapshot)?.source === v.name));
    const snaps = this.live(this.snaps).filter((s) => s.doubt === undefined);
    const snapsDeletable = snaps.filter((s) => !this.live(this.vols).some((v) => v.doubt === 'create' && v.fromSnapshot === s.name));
    const op = weighted(rand, [
      ['create', this.live(this.vols).length < 6 ? 3 : 0],
      ['snapshot', vols.length > 0 && this.live(this.snaps).length < 6 ? 2 : 0],
      ['expand', vols.some((v) => v.bytes < 64 * MiB) ? 2 : 0],
      ['restore', snaps.length > 0 && this.live(this.vols).length < 6 ? 1 : 0],
      ['delete-snapshot', snapsDeletable.length > 0 ? 1.5 : 0],
      ['delete-volume', deletable.length > 0 ? 1.5 : 0],
      ['publish', vols.some((v) => !v.published && v.pubDoubt === undefined) ? 2 : 0],
      ['write', vols.some((v) => v.published && v.pubDoubt === undefined) ? 2 : 0],
      ['unpublish', vols.some((v) => v.published && v.pubDoubt === undefined) ? 1.5 : 0],
    ]);
    let failed = '';
    const note = (err: unknown): void => {
      failed = ` [${codeOf(err)}]`;
    };
    switch (op) {
      case 'create':
      case 'restore': {
        const snap = op === 'restore' ? pick(rand, snaps)! : undefined;
        const fs: Fs = snap ? snap.fs : rand() < 0.3 ? 'ext4' : '';
        const v: VolModel = {
          name: this.name('v'),
          fs,
          bytes: snap ? snap.sourceBytes : (1 + Math.floor(rand() * 2)) * 16 * MiB,
          life: 'live',
          doubt: 'create',
          published: false,
          files: new Map(snap?.files ?? []),
          ...(snap ? { fromSnapshot: snap.name } : {}),
        };
        this.vols.set(v.name, v);
        try {
          await this.createVolume(v);
          delete v.doubt;
        } catch (err) {
          note(err);
          if (!csiInDoubt(err)) {
            v.life = 'gone';
            delete v.doubt;
          }
        }
        return `${op} ${v.name}${failed}`;
      }
      case 'snapshot': {
        const src = pick(rand, vols)!;
        const s: SnapModel = { name: this.name('s'), fs: src.fs, source: src.name, sourceBytes: src.bytes, life: 'live', doubt: 'create', files: new Map(src.files) };
        this.snaps.set(s.name, s);
        try {
          await this.createSnapshot(s);
          delete s.doubt;
        } catch (err) {
          note(err);
          if (!csiInDoubt(err)) {
            s.life = 'gone';
            delete s.doubt;
          }
        }
        return `snapshot ${s.name}←${src.name}${failed}`;
      }
      case 'expand': {
        // Bounded, so that volumes, their snapshots and restores keep fitting the small pool.
        const v = pick(rand, vols.filter((x) => x.bytes < 64 * MiB))!;
        const to = v.bytes + 16 * MiB;
        try {
          await this.csi!.controller.ControllerExpandVolume({ volume_id: v.id ?? '', capacity_range: { required_bytes: to, limit_bytes: 0 }, volume_capability: mountCap(v.fs), secrets: {} });
          v.bytes = to;
        } catch (err) {
          note(err);
          if (csiInDoubt(err)) {
            v.doubt = 'expand';
            v.bytes = to; // the retry after the restart asks for the same size
          }
        }
        return `expand ${v.name}${failed}`;
      }
      case 'delete-snapshot': {
        const s = pick(rand, snapsDeletable)!;
        s.doubt = 'delete';
        try {
          await this.csi!.controller.DeleteSnapshot({ snapshot_id: s.id ?? '', secrets: {} });
          s.life = 'gone';
          delete s.doubt;
        } catch (err) {
          note(err);
          if (!csiInDoubt(err)) delete s.doubt;
        }
        return `delete ${s.name}${failed}`;
      }
      case 'publish': {
        const v = pick(rand, vols.filter((x) => !x.published && x.pubDoubt === undefined))!;
        v.pubDoubt = 'publish';
        try {
          await this.publish(v);
          v.published = true;
          delete v.pubDoubt;
          await this.writeStandalone(v, rand);
        } catch (err) {
          note(err);
          if (!csiInDoubt(err)) delete v.pubDoubt;
        }
        return `publish ${v.name}${failed}`;
      }
      case 'write': {
        const v = pick(rand, vols.filter((x) => x.published && x.pubDoubt === undefined))!;
        const file = await this.writeStandalone(v, rand).catch((err: unknown) => `failed: ${describe(err)}`);
        return `write ${v.name} ${file}`;
      }
      case 'unpublish': {
        const v = pick(rand, vols.filter((x) => x.published && x.pubDoubt === undefined))!;
        v.pubDoubt = 'unpublish';
        try {
          await this.unpublish(v);
          v.published = false;
          delete v.pubDoubt;
        } catch (err) {
          note(err);
          if (!csiInDoubt(err)) delete v.pubDoubt;
        }
        return `unpublish ${v.name}${failed}`;
      }
      case 'delete-volume': {
        const v = pick(rand, deletable)!;
        v.doubt = 'delete';
        try {
          await this.csi!.controller.DeleteVolume({ volume_id: v.id ?? '', secrets: {} });
          v.life = 'gone';
          delete v.doubt;
        } catch (err) {
          note(err);
          if (!csiInDoubt(err)) delete v.doubt;
        }
        return `delete ${v.name}${failed}`;
      }
      default:
        return 'idle';
    }
  }

  /** The standalone driver's --kubelet-dir: its node service stages and publishes only beneath it. */
  private get kubeletDir(): string {
    return join(this.driverDir, 'k');
  }

  private stagingOf(v: VolModel): string {
    return join(this.kubeletDir, 'st', v.name);
  }

  private targetOf(v: VolModel): string {
    return join(this.kubeletDir, 'tg', v.name, 'mount');
  }

  /** NodeStageVolume then NodePublishVolume, as a kubelet does (both idempotent: a retry is the same calls). */
  private async publish(v: VolModel): Promise<true> {
    const staging = this.stagingOf(v);
    const target = this.targetOf(v);
    await mkdir(staging, { recursive: true });
    await mkdir(dirname(target), { recursive: true });
    const cap = mountCap(v.fs);
    await this.csi!.node.NodeStageVolume({ volume_id: v.id ?? '', staging_target_path: staging, volume_capability: cap, publish_context: {}, secrets: {}, volume_context: {} });
    await this.csi!.node.NodePublishVolume({ volume_id: v.id ?? '', staging_target_path: staging, target_path: target, volume_capability: cap, readonly: false, publish_context: {}, secrets: {}, volume_context: {} });
    return true;
  }

  private async unpublish(v: VolModel): Promise<true> {
    await this.csi!.node.NodeUnpublishVolume({ volume_id: v.id ?? '', target_path: this.targetOf(v) });
    await this.csi!.node.NodeUnstageVolume({ volume_id: v.id ?? '', staging_target_path: this.stagingOf(v) });
    return true;
  }

  /** The harness as the pod: a file written through the publication and fsynced is acknowledged. */
  private async writeStandalone(v: VolModel, rand: () => number): Promise<string> {
    const file = `${this.name('w')}.dat`;
    const content: Content = { token: `${file}-${Math.floor(rand() * 1e9).toString(36)}`, size: 1024 + Math.floor(rand() * 30_000) };
    const path = join(this.targetOf(v), file);
    const fh = await open(`${path}.tmp`, 'w');
    try {
      await fh.writeFile(expected(content));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(`${path}.tmp`, path);
    const dir = await open(this.targetOf(v), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    v.files.set(file, content);
    this.result.writesAcknowledged += 1;
    return file;
  }

  /** True once the driver answered OK (the model then has the volume's ID). */
  private async createVolume(v: VolModel): Promise<true> {
    const source = v.fromSnapshot === undefined ? undefined : this.snaps.get(v.fromSnapshot)?.id;
    const res = await this.csi!.controller.CreateVolume({
      name: v.name,
      capacity_range: { required_bytes: v.bytes, limit_bytes: 0 },
      volume_capabilities: [mountCap(v.fs)],
      parameters: {},
      secrets: {},
      ...(source === undefined ? {} : { volume_content_source: { snapshot: { snapshot_id: source } } }),
    });
    v.id = res.volume?.volume_id;
    return true;
  }

  private async createSnapshot(s: SnapModel): Promise<true> {
    const res = await this.csi!.controller.CreateSnapshot({ name: s.name, source_volume_id: this.vols.get(s.source)?.id ?? '', parameters: {}, secrets: {} });
    s.id = res.snapshot?.snapshot_id;
    return true;
  }

  // ── settling: in-doubt operations finished as a CO would, then convergence ──

  /**
   * Retries a call the kill cut short until the driver answers. A definite refusal of a retried
   * create (e.g. RESOURCE_EXHAUSTED: the pool filled meanwhile) means it was never made, as a CO
   * would conclude; the orphan check catches a driver that refuses a name it does have. Any other
   * refusal, or no answer within a minute, is a violation.
   */
  private async retry<T>(what: string, fn: () => Promise<T>, r: number, create = false): Promise<T | undefined> {
    const deadline = Date.now() + 60_000;
    let last: unknown;
    while (Date.now() < deadline && !this.aborted) {
      try {
        return await fn();
      } catch (err) {
        last = err;
        // A definite answer (not "unavailable", "aborted", a timeout…) will not change on retry.
        if ((err instanceof CsiError && !csiInDoubt(err)) || (err instanceof ApiStatusError && !apiInDoubt(err))) {
          if (create) {
            this.log(`  [harness] ${what}, retried after the kill: ${codeOf(err)} ${describe(err)} (not made)`);
            return undefined;
          }
          break;
        }
        await sleep(250);
      }
    }
    this.violation(r, 'retry-failed', `${what}: ${describe(last)}`);
    return undefined;
  }

  private async settle(r: number): Promise<void> {
    if (!this.upReady) await this.startUp(r);
    if (!this.driver?.alive()) await this.startDriver(r);
    // The standalone driver: retry what the kill cut short, until it answers.
    for (const v of this.vols.values()) {
      if (v.doubt === 'create') {
        const ok = await this.retry(`CreateVolume ${v.name}`, () => this.createVolume(v), r, true);
        if (ok === undefined) v.life = 'gone';
      } else if (v.doubt === 'delete') {
        await this.retry(`DeleteVolume ${v.name}`, () => this.csi!.controller.DeleteVolume({ volume_id: v.id ?? '', secrets: {} }), r);
        v.life = 'gone';
      } else if (v.doubt === 'expand') {
        await this.retry(`ControllerExpandVolume ${v.name}`, () => this.csi!.controller.ControllerExpandVolume({ volume_id: v.id ?? '', capacity_range: { required_bytes: v.bytes, limit_bytes: 0 }, volume_capability: mountCap(v.fs), secrets: {} }), r);
      }
      delete v.doubt;
      if (v.pubDoubt === 'publish' && v.life === 'live') {
        v.published = (await this.retry(`NodeStage/NodePublish ${v.name}`, () => this.publish(v), r)) === true;
      } else if (v.pubDoubt === 'unpublish') {
        v.published = (await this.retry(`NodeUnpublish/NodeUnstage ${v.name}`, () => this.unpublish(v), r)) !== true;
      }
      delete v.pubDoubt;
    }
    for (const s of this.snaps.values()) {
      if (s.doubt === 'create') {
        const ok = await this.retry(`CreateSnapshot ${s.name}`, () => this.createSnapshot(s), r, true);
        if (ok === undefined) s.life = 'gone';
      } else if (s.doubt === 'delete') {
        await this.retry(`DeleteSnapshot ${s.name}`, () => this.csi!.controller.DeleteSnapshot({ snapshot_id: s.id ?? '', secrets: {} }), r);
        s.life = 'gone';
      }
      delete s.doubt;
    }
    // The control plane: what exists now is the answer for creates in doubt; deletes are sent again.
    for (const m of [...this.claims.values(), ...this.pods.values()]) {
      const res = 'claim' in m ? PODS : PVCS;
      if (m.doubt === 'create') {
        const found = await this.api.find(res, NS, m.name).catch(() => undefined);
        if (found === undefined) m.life = 'gone';
      } else if (m.doubt === 'delete') {
        await this.api.delete(res, NS, m.name, res === PODS ? { gracePeriodSeconds: 1 } : {}).catch(() => undefined);
      }
      delete m.doubt;
    }
    await this.converge(r);
  }

  private async converge(r: number): Promise<void> {
    const deadline = Date.now() + (this.options.settleTimeoutMs ?? 60_000);
    let problems: Unconverged[] = [];
    while (!this.aborted) {
      problems = await this.unconverged().catch((err: unknown) => [{ text: `the API: ${describe(err)}`, excused: false }]);
      if (problems.length === 0) break;
      if (Date.now() > deadline) {
        // A claim Pending with an event saying why (and a pod waiting for it) is an answer too.
        for (const p of problems) if (!p.excused) this.violation(r, 'not-converged', p.text);
        break;
      }
      await sleep(200);
    }
    for (const p of this.pods.values()) if (p.life === 'live') await this.collectAcks(p).catch(() => undefined);
    if (problems.length === 0) for (const m of [...this.claims.values(), ...this.pods.values()]) if (m.life === 'deleting') m.life = 'gone';
  }

  /** What is not yet where the model says it should end up (empty once converged). */
  private async unconverged(): Promise<Unconverged[]> {
    const claims = new Map((await this.api.list<PersistentVolumeClaim>(PVCS, { namespace: NS })).items.map((c) => [c.metadata.name ?? '', c]));
    const pods = new Map((await this.api.list<Pod>(PODS, { namespace: NS })).items.map((p) => [p.metadata.name ?? '', p]));
    const pvs = (await this.api.list<PersistentVolume>(PVS)).items;
    const out: Unconverged[] = [];
    const waiting = new Set<string>();
    for (const m of this.claims.values()) {
      const c = claims.get(m.name);
      if (m.life === 'live' && c?.status?.phase !== 'Bound') {
        const excused = c?.status?.phase === 'Pending' && (await this.hasEvent(m.name));
        if (excused) waiting.add(m.name);
        out.push({ text: `claim ${m.name} is ${c?.status?.phase ?? 'missing'}`, excused });
      }
      if (m.life === 'deleting' && c !== undefined) out.push({ text: `claim ${m.name} still there (${c.metadata.deletionTimestamp ? 'terminating' : 'not deleted'})`, excused: false });
      if (m.life === 'deleting' && pvs.some((pv) => pv.spec.claimRef?.name === m.name)) out.push({ text: `the PV of deleted claim ${m.name} still there`, excused: false });
    }
    for (const m of this.pods.values()) {
      const p = pods.get(m.name);
      const claimGone = this.claims.get(m.claim)?.life === 'gone';
      if (m.life === 'live' && p?.status?.phase !== 'Running') out.push({ text: `pod ${m.name} is ${p?.status?.phase ?? 'missing'}`, excused: p?.status?.phase === 'Pending' && (waiting.has(m.claim) || claimGone) });
      if (m.life === 'deleting' && p !== undefined) out.push({ text: `pod ${m.name} still there (${p.metadata.deletionTimestamp ? 'terminating' : 'not deleted'})`, excused: false });
    }
    return out;
  }

  private async hasEvent(name: string): Promise<boolean> {
    const events = (await this.api.list<Event>(EVENTS, { namespace: NS })).items;
    return events.some((e) => e.involvedObject.name === name);
  }

  // ── the invariants ──

  private async check(r: number): Promise<void> {
    const claims = (await this.api.list<PersistentVolumeClaim>(PVCS, { namespace: NS })).items;
    const pods = (await this.api.list<Pod>(PODS, { namespace: NS })).items;
    const pvs = (await this.api.list<PersistentVolume>(PVS)).items;
    const byName = <T extends { metadata: { name?: string } }>(xs: T[]) => new Map(xs.map((x) => [x.metadata.name ?? '', x]));
    const claimsByName = byName(claims);
    const podsByName = byName(pods);

    // 1. Acknowledged objects are there; 2. claims Bound, or Pending with an event.
    for (const m of this.claims.values()) {
      const c = claimsByName.get(m.name);
      if (m.life === 'live' && m.acked && c === undefined) this.violation(r, 'acknowledged-object-lost', `claim ${m.name}`);
      if (c !== undefined && c.status?.phase !== 'Bound' && !(c.status?.phase === 'Pending' && (await this.hasEvent(m.name)))) {
        this.violation(r, 'claim-state', `claim ${m.name} is ${c.status?.phase ?? '?'} with no event`);
      }
    }
    for (const m of this.pods.values()) if (m.life === 'live' && m.acked && !podsByName.has(m.name)) this.violation(r, 'acknowledged-object-lost', `pod ${m.name}`);
    for (const c of claims) if (!this.claims.has(c.metadata.name ?? '')) this.violation(r, 'unexpected-object', `claim ${c.metadata.name ?? ''}`);

    // 3. The nodes' volumes are exactly the PVs' handles.
    const handles = pvs.map((pv) => pv.spec.csi?.volumeHandle ?? '');
    const seen = new Set<string>();
    for (const h of handles) {
      if (seen.has(h)) this.violation(r, 'duplicate', `two PVs with volume handle ${h}`);
      seen.add(h);
    }
    const claimUids = pvs.map((pv) => pv.spec.claimRef?.uid).filter((u): u is string => u !== undefined);
    for (const u of new Set(claimUids)) if (claimUids.filter((x) => x === u).length > 1) this.violation(r, 'duplicate', `two PVs for claim uid ${u}`);
    const backend = new Map<string, string>();
    for (const node of NODES) {
      const client = new CsiClient(`unix://${join(this.nodeRoot(node), 'plugins', DRIVER, 'csi.sock')}`, { timeoutMs: 10_000 });
      try {
        const ids = await listVolumeIds(client);
        for (const id of ids) {
          if (backend.has(id)) this.violation(r, 'duplicate', `volume ${id} listed by ${backend.get(id) ?? ''} and ${node}`);
          backend.set(id, node);
        }
        const dirs = await poolEntries(join(this.nodeRoot(node), 'pool', 'pool', 'volumes'));
        this.compare(r, `${node} pool volumes/ vs its ListVolumes`, dirs, ids);
      } catch (err) {
        this.violation(r, 'check-failed', `ListVolumes on ${node}: ${describe(err)}`);
      } finally {
        client.close();
      }
    }
    for (const id of backend.keys()) {
      if (!seen.has(id)) {
        const before = this.result.violations.length;
        this.violation(r, 'orphan-volume', `${id} on ${backend.get(id) ?? ''} has no PV`);
        if (this.result.violations.length > before) this.result.orphans += 1;
      }
    }
    for (const h of seen) if (!backend.has(h)) this.violation(r, 'missing-volume', `PV handle ${h} has no backend volume`);

    // 4. The standalone driver: exactly what was acknowledged.
    try {
      const vols = await listVolumes(this.csi!);
      const snaps = await listSnapshots(this.csi!);
      const wantVols = this.live(this.vols);
      const wantSnaps = this.live(this.snaps);
      this.compare(r, 'standalone volumes (ListVolumes vs acknowledged)', vols.map((v) => v.id), wantVols.map((v) => v.id ?? `?${v.name}`), true);
      this.compare(r, 'standalone snapshots (ListSnapshots vs acknowledged)', snaps.map((s) => s.id), wantSnaps.map((s) => s.id ?? `?${s.name}`), true);
      this.compare(r, 'standalone pool volumes/ vs ListVolumes', await poolEntries(join(this.driverDir, 'local', 'pool', 'volumes')), vols.map((v) => v.id));
      this.compare(r, 'standalone pool snapshots/ vs ListSnapshots', await poolEntries(join(this.driverDir, 'local', 'pool', 'snapshots')), snaps.map((s) => s.id));
      for (const v of wantVols) {
        const got = vols.find((x) => x.id === v.id);
        if (got !== undefined && got.bytes < v.bytes) this.violation(r, 'capacity', `standalone ${v.name} is ${got.bytes} bytes, acknowledged ${v.bytes}`);
      }
      for (const s of wantSnaps) {
        const got = snaps.find((x) => x.id === s.id);
        const src = this.vols.get(s.source)?.id;
        if (got !== undefined && got.source !== src) this.violation(r, 'snapshot-source', `${s.name}: source ${got.source}, expected ${src ?? '?'}`);
      }
      // Acknowledged writes: subvolumes and subvolume snapshots read straight from the pool, an
      // ext4 volume through its publication while it has one (its snapshots once restored).
      const pool = join(this.driverDir, 'local', 'pool');
      const reads: [string, string | undefined, Map<string, Content>][] = [
        ...wantVols.map((v): [string, string | undefined, Map<string, Content>] => [v.name, v.fs === '' ? join(pool, 'volumes', v.id ?? '?') : v.published ? this.targetOf(v) : undefined, v.files]),
        ...wantSnaps.map((x): [string, string | undefined, Map<string, Content>] => [x.name, x.fs === '' ? join(pool, 'snapshots', x.id ?? '?') : undefined, x.files]),
      ];
      for (const [name, dir, files] of reads) {
        if (dir === undefined) continue;
        for (const [file, content] of files) {
          const got = await readFile(join(dir, file)).catch(() => undefined);
          if (got === undefined || !got.equals(expected(content))) {
            this.result.writesLost += 1;
            this.violation(r, 'acknowledged-write-lost', `standalone ${name}/${file}: ${got === undefined ? `missing in ${dir}` : `${got.length} bytes differ from the ${content.size} written`}`);
          }
        }
      }
    } catch (err) {
      this.violation(r, 'check-failed', `standalone driver lists: ${describe(err)}`);
    }

    // 5. Mounts, loop devices and processes: the pools, and what the Running pods need.
    const allowed = new Set<string>([join(this.driverDir, 'local', 'pool'), ...NODES.map((n) => join(this.nodeRoot(n), 'pool', 'pool'))]);
    const needed = new Set<string>();
    for (const v of this.live(this.vols)) {
      if (!v.published) continue;
      for (const m of [this.stagingOf(v), this.targetOf(v)]) {
        allowed.add(m);
        needed.add(m);
      }
    }
    const pvByClaim = new Map(pvs.filter((pv) => pv.spec.claimRef).map((pv) => [pv.spec.claimRef?.name ?? '', pv.metadata.name ?? '']));
    const livePodUids = new Set<string>();
    const allowedLoops = new Set([join(this.driverDir, 'local', 'pool.img'), ...NODES.map((n) => join(this.nodeRoot(n), 'pool', 'pool.img'))]);
    for (const v of this.live(this.vols)) if (v.published && v.fs === 'ext4') allowedLoops.add(join(this.driverDir, 'local', 'pool', 'volumes', `${v.id ?? '?'}.img`));
    /** claim → the staging path of a Running pod's node: where an ext4 volume's files can be read. */
    const stagedAt = new Map<string, string>();
    for (const p of pods) {
      livePodUids.add(p.metadata.uid ?? '');
      const node = p.spec.nodeName;
      const claim = p.spec.volumes?.[0]?.persistentVolumeClaim?.claimName;
      const pv = claim === undefined ? undefined : pvByClaim.get(claim);
      if (node === undefined || pv === undefined) continue;
      const staging = join(this.nodeRoot(node), 'plugins', 'kubernetes.io', 'csi', 'pv', pv, 'globalmount');
      const target = join(this.nodeRoot(node), 'pods', p.metadata.uid ?? '', 'volumes', 'kubernetes.io~csi', pv, 'mount');
      allowed.add(staging);
      allowed.add(target);
      const handle = pvs.find((x) => x.metadata.name === pv)?.spec.csi?.volumeHandle;
      if (handle !== undefined) allowedLoops.add(join(this.nodeRoot(node), 'pool', 'pool', 'volumes', `${handle}.img`));
      if (p.status?.phase === 'Running') {
        needed.add(staging);
        needed.add(target);
        stagedAt.set(claim ?? '', staging);
      }
    }
    const mounts = mountsUnder(this.dir);
    const points = mounts.map((m) => m.mountPoint);
    for (const m of mounts) if (!allowed.has(m.mountPoint)) this.violation(r, 'leaked-mount', `${m.mountPoint} (${m.fsType} root=${m.root})`);
    // (the needed ones below: a Running pod's, or a publication the standalone workload was acknowledged)
    for (const p of new Set(points)) if (points.filter((x) => x === p).length > 1) this.violation(r, 'stacked-mount', `${p} is mounted ${points.filter((x) => x === p).length} times`);
    for (const n of needed) if (!points.includes(n)) this.violation(r, 'missing-mount', `${n} (a Running pod's volume) is not mounted`);
    for (const l of loopsUnder(this.dir)) if (!allowedLoops.has(l.backingFile)) this.violation(r, 'leaked-loop', `${l.device} → ${l.backingFile}`);
    const podNames = new Set(pods.map((p) => p.metadata.name ?? ''));
    for (const proc of processesMentioning(`chaos-pod:${basename(this.dir)}:`)) {
      const name = proc.argv.join(' ').match(/chaos-pod:[^:]+:([^\s;]+)/)?.[1] ?? '';
      if (!podNames.has(name)) this.violation(r, 'leaked-process', `pid ${proc.pid} of gone pod ${name}`);
    }
    for (const proc of processesMentioning(join(this.state, 'nodes'))) {
      const uid = proc.argv.join(' ').match(/\/pods\/([^/]+)\/containers\//)?.[1];
      if (uid !== undefined && !livePodUids.has(uid)) this.violation(r, 'leaked-process', `shim pid ${proc.pid} of gone pod uid ${uid}`);
    }

    // 6. Every acknowledged write reads back: a subvolume's files from the node's pool, an ext4
    //    image's through its staging mount while a pod has it (otherwise at a later round).
    for (const m of this.live(this.claims)) {
      if (m.files.size === 0) continue;
      const pvName = pvByClaim.get(m.name);
      const handle = pvs.find((pv) => pv.metadata.name === pvName)?.spec.csi?.volumeHandle;
      const node = handle === undefined ? undefined : backend.get(handle);
      const staged = stagedAt.get(m.name);
      if (m.fs === 'ext4' && staged === undefined) continue;
      for (const [file, content] of m.files) {
        const path = m.fs === 'ext4' ? join(staged ?? '', file) : node === undefined || handle === undefined ? undefined : join(this.nodeRoot(node), 'pool', 'pool', 'volumes', handle, file);
        const got = path === undefined ? undefined : await readFile(path).catch(() => undefined);
        if (got === undefined || !got.equals(expected(content))) {
          this.result.writesLost += 1;
          this.violation(r, 'acknowledged-write-lost', `${m.name}/${file}: ${got === undefined ? `missing (${path ?? 'no volume'})` : `${got.length} bytes differ from the ${content.size} written`}`);
        }
      }
    }
  }

  /** Two lists of IDs that must be the same set. */
  private compare(r: number, what: string, got: string[], want: string[], countOrphans = false): void {
    const g = new Set(got);
    const w = new Set(want);
    const extra = [...g].filter((x) => !w.has(x));
    const missing = [...w].filter((x) => !g.has(x));
    if (got.length !== g.size) this.violation(r, 'duplicate', `${what}: listed twice: ${got.filter((x, i) => got.indexOf(x) !== i).join(', ')}`);
    for (const x of extra) {
      const before = this.result.violations.length;
      this.violation(r, 'orphan', `${what}: not expected: ${x}`);
      if (countOrphans && this.result.violations.length > before) this.result.orphans += 1;
    }
    if (missing.length > 0) this.violation(r, 'missing', `${what}: missing: ${missing.join(', ')}`);
  }

  // ── tear-down ──

  async tearDown(): Promise<void> {
    try {
      await this.tearDownHost();
    } finally {
      for (const l of [this.upLog, this.driverLog]) await new Promise((resolve) => (l === undefined ? resolve(undefined) : l.end(resolve)));
    }
  }

  private async tearDownHost(): Promise<void> {
    const notes = this.result.cleanup;
    if (this.dir === '') return;
    // Through the API first, so the nodes unpublish, unstage and delete as they should.
    if (this.up?.alive() && this.upReady) {
      try {
        for (const p of (await this.api.list<Pod>(PODS, { namespace: NS })).items) await this.api.delete(PODS, NS, p.metadata.name ?? '', { gracePeriodSeconds: 0 }).catch(() => undefined);
        for (const c of (await this.api.list<PersistentVolumeClaim>(PVCS, { namespace: NS })).items) await this.api.delete(PVCS, NS, c.metadata.name ?? '').catch(() => undefined);
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const left = (await this.api.list(PODS, { namespace: NS })).items.length + (await this.api.list(PVS)).items.length;
          if (left === 0) break;
          await sleep(250);
        }
        const left = [...(await this.api.list(PODS, { namespace: NS })).items, ...(await this.api.list(PVS)).items].map((o) => `${o.kind} ${o.metadata.name ?? ''}`);
        if (left.length > 0) notes.push(`still there after deleting everything: ${left.join(', ')}`);
      } catch (err) {
        notes.push(`deleting through the API: ${describe(err)}`);
      }
    }
    if (this.csi !== undefined && this.driver?.alive()) {
      for (const v of this.vols.values()) if (v.life !== 'gone' && v.id && (v.published || v.pubDoubt)) await this.unpublish(v).catch((err: unknown) => notes.push(`unpublishing ${v.name}: ${describe(err)}`));
      for (const s of this.snaps.values()) if (s.life !== 'gone' && s.id) await this.csi.controller.DeleteSnapshot({ snapshot_id: s.id, secrets: {} }).catch(() => undefined);
      for (const v of this.vols.values()) if (v.life !== 'gone' && v.id) await this.csi.controller.DeleteVolume({ volume_id: v.id, secrets: {} }).catch(() => undefined);
    }
    this.csi?.close();
    // SIGTERM (as SIGINT, it stops `up`, which releases unused pools): a SIGINT can be ignored by
    // inheritance (a background job of a non-interactive shell).
    await stopChild(this.up, 'SIGTERM', 30_000).catch(() => undefined);
    await stopChild(this.driver, 'SIGTERM', 30_000).catch(() => undefined);
    // Processes of our pods and shims under our state dir (nothing else is ever signalled).
    for (const p of [...processesMentioning(`chaos-pod:${basename(this.dir)}:`), ...processesMentioning(this.dir)]) {
      try {
        process.kill(p.pid, 'SIGKILL');
        notes.push(`killed leftover pid ${p.pid}: ${p.argv.slice(0, 3).join(' ')}`);
      } catch {
        // gone
      }
    }
    await sleep(200);
    // Mounts and loop devices under the temp dir, deepest first, then the pools.
    const loops = new LoopDevices();
    const poolDirs = [join(this.driverDir, 'local'), ...NODES.map((n) => join(this.nodeRoot(n), 'pool'))];
    for (let round = 0; round < 3; round++) {
      const pools = new Set(poolDirs.map((d) => join(d, 'pool')));
      const mounts = mountsUnder(this.dir)
        .filter((m) => !pools.has(m.mountPoint))
        .sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.mountId - a.mountId);
      for (const m of mounts) {
        notes.push(`unmounted leftover ${m.mountPoint}`);
        await umount2(m.mountPoint, 0).catch(() => umount2(m.mountPoint, 2 /* MNT_DETACH */).catch(() => undefined));
      }
      for (const l of loopsUnder(this.dir)) {
        if (poolDirs.some((d) => l.backingFile === join(d, 'pool.img'))) continue;
        notes.push(`detached leftover ${l.device}`);
        await loops.detach(l.device).catch(() => undefined);
      }
      for (const d of poolDirs) if (existsSync(d)) await releasePool(d).catch((err: unknown) => notes.push(`releasePool ${d}: ${describe(err)}`));
      if (mountsUnder(this.dir).length === 0 && loopsUnder(this.dir).length === 0) break;
      await sleep(300 * (round + 1));
    }
    const left = [...mountsUnder(this.dir).map((m) => `mount ${m.mountPoint}`), ...loopsUnder(this.dir).map((l) => `loop ${l.device}`)];
    if (left.length > 0) {
      // Never rm -rf through a mount.
      notes.push(`LEFT BEHIND (dir kept): ${left.join(', ')}`);
      this.violation(this.round, 'cleanup-left-behind', left.join(', '));
      return;
    }
    await rm(this.dir, { recursive: true, force: true }).catch((err: unknown) => notes.push(`rm ${this.dir}: ${describe(err)}`));
  }
}

async function poolEntries(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).map((e) => e.replace(/\.img$/, '')).filter((e) => !e.includes('.tmp') && !e.startsWith('.'));
}

async function listVolumes(client: CsiClient): Promise<{ id: string; bytes: number }[]> {
  const out: { id: string; bytes: number }[] = [];
  let token = '';
  do {
    const page = await client.controller.ListVolumes({ starting_token: token, max_entries: 0 });
    for (const e of page.entries) if (e.volume?.volume_id) out.push({ id: e.volume.volume_id, bytes: Number(e.volume.capacity_bytes) });
    token = page.next_token;
  } while (token);
  return out;
}

async function listVolumeIds(client: CsiClient): Promise<string[]> {
  return (await listVolumes(client)).map((v) => v.id);
}

async function listSnapshots(client: CsiClient): Promise<{ id: string; source: string }[]> {
  const out: { id: string; source: string }[] = [];
  let token = '';
  do {
    const page = await client.controller.ListSnapshots({ starting_token: token, max_entries: 0, source_volume_id: '', snapshot_id: '', secrets: {} });
    for (const e of page.entries) if (e.snapshot?.snapshot_id) out.push({ id: e.snapshot.snapshot_id, source: e.snapshot.source_volume_id });
    token = page.next_token;
  } while (token);
  return out;
}
