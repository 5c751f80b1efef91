/**
 * A real one-node Ceph (Pacific) cluster on 127.0.0.1 for tests and demos, living entirely in one
 * directory: one mon, one mgr, one memstore OSD, one MDS; an `rbd` pool initialised for RBD and a
 * CephFS filesystem served by the mgr's `volumes` module. Like Rook's test cluster, not for data.
 *
 * Short commands go through the ExecRunner (argv only); the four daemons are spawned by
 * processes.ts and tracked by PID *and* exact command line in DIR/stowage-ceph-dev.json, so `down`
 * stops exactly them and nothing of another cluster.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, open, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { ExecRunner, type CommandRunner } from '../driver/mount/exec.js';
import { ADMIN_USER, MDS_ID, MGR_ID, MON_ID, OSD_ID, checkConfPath, devPaths, renderCephConf } from './config.js';
import { generateCephxKey, renderKeyring, type KeyringEntry } from './keyring.js';
import { ensureCephPackages } from './packages.js';
import { findClusterProcesses, isRunning, readCmdline, signal, spawnDaemon, waitForExit } from './processes.js';

/** What `up` prints: everything a ceph-csi style driver needs to reach the cluster. */
export interface DevClusterInfo {
  /** The fsid. */
  clusterID: string;
  /** "host:port" of each monitor (msgr v1). */
  monitors: string[];
  /** The admin client, without the "client." prefix. */
  userID: string;
  userKey: string;
  /** The RBD pool. */
  pool: string;
  fsName: string;
  /** Path of ceph.conf (its [client.admin] section names the admin keyring). */
  conf: string;
}

export interface DaemonStatus {
  name: string;
  pid: number;
  alive: boolean;
}

export interface DevClusterStatus {
  dir: string;
  /**
   * absent: no cluster here; starting: an `up` is at work; failed: an `up` did not finish;
   * running: up and every daemon alive; degraded: up, but some daemon is not running.
   */
  state: 'absent' | 'starting' | 'failed' | 'running' | 'degraded';
  clusterID?: string;
  monitors?: string[];
  daemons: DaemonStatus[];
  allRunning: boolean;
  /** From `ceph status`, when the mon answers. */
  health?: { status: string; checks: Record<string, string> };
  /** Why there is no health (the mon is down, or `ceph status` failed). */
  healthError?: string;
}

export interface DevClusterOptions {
  logger?: Logger;
  runner?: CommandRunner;
  /** Progress lines (the CLI sends them to stderr). */
  progress?: (msg: string) => void;
  /** The OSD's memstore size (default 3 GiB). */
  memstoreBytes?: number;
  /** How long `up` may wait for the cluster to become ready (default 120 s). */
  readyTimeoutMs?: number;
  /** Install missing Debian packages (default true). */
  installPackages?: boolean;
}

interface DaemonRecord {
  name: string;
  pid: number;
  argv: string[];
}

interface StateFile {
  version: 1;
  fsid: string;
  monPort: number;
  /** Set once `up` has seen the cluster ready; until then the cluster is "starting". */
  complete: boolean;
  info?: DevClusterInfo;
  daemons: DaemonRecord[];
}

const POOL = 'rbd';
const FS_NAME = 'cephfs';
const FS_METADATA_POOL = 'cephfs_metadata';
const FS_DATA_POOL = 'cephfs_data';
const PG_NUM = 8;
const DEFAULT_MON_PORT = 6789;
const GiB = 1024 ** 3;
const DAEMON_NAMES = [`mon.${MON_ID}`, `mgr.${MGR_ID}`, `mds.${MDS_ID}`, `osd.${OSD_ID}`] as const;
const CONF_MARKER = '# Written by `stowage ceph-dev up`';

export class DevCluster {
  readonly dir: string;
  private readonly paths: ReturnType<typeof devPaths>;
  private readonly runner: CommandRunner;
  private readonly progress: (msg: string) => void;
  private readonly memstoreBytes: number;
  private readonly readyTimeoutMs: number;
  private readonly installPackages: boolean;

  constructor(dir: string, opts: DevClusterOptions = {}) {
    this.dir = resolve(dir);
    this.paths = devPaths(this.dir);
    this.runner = opts.runner ?? new ExecRunner(opts.logger ?? pino({ level: 'silent' }));
    this.progress = opts.progress ?? (() => {});
    this.memstoreBytes = opts.memstoreBytes ?? 3 * GiB;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
    this.installPackages = opts.installPackages ?? true;
  }

  // ───────────────────────────────────────────── up ──

  /**
   * Starts the cluster, or returns the running one's info unchanged (starting nothing) when this
   * directory's cluster is already up. Refuses a directory holding anything else, including a
   * cluster that is only partly running: `down` it first.
   */
  async up(): Promise<DevClusterInfo> {
    checkConfPath(this.dir);
    if (this.installPackages) await ensureCephPackages(this.runner, this.progress);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const unlock = await this.lock();
    try {
      const existing = await this.readState();
      if (existing) return this.alreadyUp(existing);
      const entries = (await readdir(this.dir)).filter((e) => e !== 'stowage-ceph-dev.lock');
      if (entries.length > 0) throw new Error(`${this.dir} is not empty and holds no ceph-dev cluster; use an empty or new directory`);
      const port = (await portIsFree(DEFAULT_MON_PORT)) ? DEFAULT_MON_PORT : await freePort();
      try {
        return await this.create(port);
      } catch (e) {
        if (!(e instanceof MonPortTaken)) throw await this.failed(e);
        // Lost a race for the port with another cluster: start over on one the kernel picks.
        this.progress(`${e.message}; retrying on another port`);
        await this.stopDaemons((await this.readState())?.daemons ?? []);
        await this.wipeContents();
        return await this.create(await freePort()).catch(async (e2: unknown) => {
          throw await this.failed(e2);
        });
      }
    } finally {
      await unlock();
    }
  }

  private alreadyUp(state: StateFile): DevClusterInfo {
    const dead = DAEMON_NAMES.filter((name) => {
      const d = state.daemons.find((r) => r.name === name);
      return !d || !isRunning(d.pid, d.argv);
    });
    if (state.complete && state.info && dead.length === 0) {
      this.progress(`cluster ${state.fsid} in ${this.dir} is already running`);
      return state.info;
    }
    const why = state.complete ? `is not running: ${dead.join(', ')}` : 'never finished starting';
    throw new Error(`the cluster in ${this.dir} ${why}; run \`stowage ceph-dev down --dir ${this.dir}\` first (logs: ${this.paths.logDir})`);
  }

  /** On failure: stop what was started (a half-started cluster is useless), keep DIR for its logs. */
  private async failed(e: unknown): Promise<Error> {
    const state = await this.readState().catch(() => undefined);
    await this.stopDaemons(state?.daemons ?? []).catch(() => {});
    const msg = e instanceof Error ? e.message : String(e);
    return new Error(`${msg}\n(daemons stopped; logs kept in ${this.paths.logDir}; \`stowage ceph-dev down --dir ${this.dir}\` removes them)`, { cause: e });
  }

  private async create(monPort: number): Promise<DevClusterInfo> {
    const started = performance.now();
    const p = this.paths;
    const fsid = randomUUID();
    const osdUuid = randomUUID();
    const mon = `mon.${MON_ID}`;
    const mgr = `mgr.${MGR_ID}`;
    const osd = `osd.${OSD_ID}`;
    const mds = `mds.${MDS_ID}`;
    this.progress(`creating cluster ${fsid} in ${this.dir}, mon on 127.0.0.1:${monPort}`);

    // Files: the conf, one keyring per daemon and the admin's, and the mon's initial keyring
    // holding every entity with its caps, so no `ceph auth` calls are needed once it runs.
    for (const d of [p.logDir, p.runDir, p.crashDir, ...DAEMON_NAMES.map(p.data)]) await mkdir(d, { recursive: true, mode: 0o700 });
    await writeFile(p.conf, renderCephConf({ dir: this.dir, fsid, monPort, memstoreBytes: this.memstoreBytes }));
    const state: StateFile = { version: 1, fsid, monPort, complete: false, daemons: [] };
    await this.writeState(state);
    const keys = {
      mon: generateCephxKey(), admin: generateCephxKey(), mgr: generateCephxKey(), osd: generateCephxKey(), mds: generateCephxKey(),
    };
    const entities: KeyringEntry[] = [
      { entity: 'mon.', key: keys.mon, caps: { mon: 'allow *' } },
      { entity: `client.${ADMIN_USER}`, key: keys.admin, caps: { mon: 'allow *', osd: 'allow *', mds: 'allow *', mgr: 'allow *' } },
      { entity: mgr, key: keys.mgr, caps: { mon: 'allow profile mgr', osd: 'allow *', mds: 'allow *' } },
      { entity: osd, key: keys.osd, caps: { mon: 'allow profile osd', mgr: 'allow profile osd', osd: 'allow *' } },
      { entity: mds, key: keys.mds, caps: { mon: 'allow profile mds', mgr: 'allow profile mds', osd: 'allow *', mds: 'allow' } },
    ];
    await writeSecret(p.mkfsKeyring, renderKeyring(entities));
    await writeSecret(p.adminKeyring, renderKeyring([entities[1]!]));
    for (const e of entities.slice(2)) await writeSecret(`${p.data(e.entity)}/keyring`, renderKeyring([e]));

    // Stores: a monmap with one v1 address, then the mon's and the OSD's mkfs (both quick).
    const c = ['-c', p.conf];
    await this.runner.run('monmaptool', ['--create', '--fsid', fsid, '--addv', MON_ID, `[v1:127.0.0.1:${monPort}]`, p.monmap]);
    await Promise.all([
      this.runner.run('ceph-mon', [...c, '--mkfs', '-i', MON_ID, '--monmap', p.monmap, '--keyring', p.mkfsKeyring]),
      // --no-mon-config: without it the OSD would ask the (not yet running) mon for its config.
      this.runner.run('ceph-osd', [...c, '-i', String(OSD_ID), '--mkfs', '--osd-uuid', osdUuid, '--no-mon-config']),
    ]);
    await unlink(p.mkfsKeyring); // the mon's store has the keys now
    await unlink(p.monmap);

    // mon, mgr and mds start together (mgr and mds wait for the mon by themselves): the mgr is the
    // slow one, importing its Python modules for ~2 s, and does so while the rest is set up.
    const start = async (name: string, binary: string, id: string) => {
      const argv = [binary, '-f', '-c', p.conf, '-i', id];
      const pid = spawnDaemon(argv, p.out(name), this.dir);
      state.daemons.push({ name, pid, argv });
      await this.writeState(state);
    };
    const bin = await binaryPaths(['ceph-mon', 'ceph-mgr', 'ceph-osd', 'ceph-mds']);
    await start(mon, bin['ceph-mon']!, MON_ID);
    await start(mgr, bin['ceph-mgr']!, MGR_ID);
    await start(mds, bin['ceph-mds']!, MDS_ID);

    // One `ceph` process for all the mon-side set-up (each call costs ~0.3 s of Python start-up).
    // Pools need no OSD to be created; the OSD must be in the osdmap before it boots.
    await this.guard(
      this.cephBatch([
        `osd new ${osdUuid} ${OSD_ID}`,
        `osd pool create ${POOL} ${PG_NUM} ${PG_NUM}`,
        `osd pool create ${FS_METADATA_POOL} ${PG_NUM} ${PG_NUM}`,
        `osd pool create ${FS_DATA_POOL} ${PG_NUM} ${PG_NUM}`,
        // Pools created with the defaults above already have size 1 / min_size 1.
        `fs new ${FS_NAME} ${FS_METADATA_POOL} ${FS_DATA_POOL}`,
        `fs set ${FS_NAME} standby_count_wanted 0`,
        // Always on in Pacific (the mon says so and succeeds); asked anyway, checked below.
        'mgr module enable volumes',
      ]),
      state,
      'setting up pools and the filesystem',
    );
    await start(osd, bin['ceph-osd']!, String(OSD_ID));
    this.progress(`daemons started (${ms(started)}); waiting for OSD up, MDS active, mgr available, PGs active`);

    await this.waitReady(state);
    // Both need the OSD up (else `rbd pool init` sits in its objecter for seconds), so they run now.
    await this.guard(
      Promise.all([
        this.runner.run('rbd', [...c, 'pool', 'init', POOL], { timeoutMs: 60_000 }),
        this.waitForVolumesModule(),
      ]),
      state,
      'initialising the rbd pool and checking the volumes module',
    );

    const info: DevClusterInfo = {
      clusterID: fsid,
      monitors: [`127.0.0.1:${monPort}`],
      userID: ADMIN_USER,
      userKey: keys.admin,
      pool: POOL,
      fsName: FS_NAME,
      conf: p.conf,
    };
    state.complete = true;
    state.info = info;
    await this.writeState(state);
    this.progress(`cluster ${fsid} ready in ${ms(started)}`);
    return info;
  }

  /** Runs commands through one `ceph` process, reading them from stdin (its interactive mode). */
  private async cephBatch(commands: string[]): Promise<void> {
    // In that mode ceph exits 0 whatever happens and reports each failure as "Error E…: …".
    const r = await this.runner.run('ceph', ['-c', this.paths.conf, '--connect-timeout', '30'], {
      input: `${commands.join('\n')}\n`,
      timeoutMs: 60_000,
    });
    const errors = r.stderr.split('\n').filter((l) => /^Error [A-Z]/.test(l) || /^(no valid command|Invalid command)/.test(l));
    if (errors.length > 0) throw new Error(`ceph set-up commands failed:\n${errors.join('\n')}\n${r.stderr.trim().slice(-1500)}`);
  }

  private async cephJson<T>(args: string[], timeoutMs = 30_000): Promise<T> {
    const r = await this.runner.run('ceph', ['-c', this.paths.conf, '--connect-timeout', '10', ...args, '-f', 'json'], { timeoutMs });
    return JSON.parse(r.stdout) as T;
  }

  /** Polls `ceph status` until OSD up+in, MDS active, mgr available, all PGs of our pools active. */
  private async waitReady(state: StateFile): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    let last: CephStatus | undefined;
    let lastError = '';
    for (;;) {
      this.checkAlive(state, 'waiting for the cluster to become ready');
      try {
        last = await this.cephJson<CephStatus>(['status']);
        const waiting = notReady(last);
        if (waiting.length === 0) return;
        lastError = `waiting for: ${waiting.map((w) => w.what).join(', ')}`;
      } catch (e) {
        lastError = (e as Error).message;
      }
      if (Date.now() >= deadline) {
        const waiting = last ? notReady(last) : [];
        const logs = [...new Set(waiting.length ? waiting.map((w) => w.daemon) : [`mon.${MON_ID}`])];
        throw new Error(
          `the cluster was not ready after ${this.readyTimeoutMs / 1000} s; ${lastError}\n` +
            logs.map((d) => this.logTail(d)).join('\n'),
        );
      }
      await sleep(300);
    }
  }

  /**
   * "Check it is on": a command served by the volumes module itself answers, listing our fs.
   * Right after the mgr becomes available its modules may still be loading, hence the retries.
   */
  private async waitForVolumesModule(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const vols = await this.cephJson<{ name: string }[]>(['fs', 'volume', 'ls']);
        if (vols.some((v) => v.name === FS_NAME)) return;
        throw new Error(`fs volume ls does not list ${FS_NAME}: ${JSON.stringify(vols)}`);
      } catch (e) {
        if (Date.now() >= deadline) throw new Error(`the mgr volumes module does not answer: ${(e as Error).message}\n${this.logTail(`mgr.${MGR_ID}`)}`);
      }
      await sleep(500);
    }
  }

  /** Runs work, failing fast (with the log tail) if one of the started daemons dies meanwhile. */
  private async guard<T>(work: Promise<T>, state: StateFile, doing: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const watch = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        try {
          this.checkAlive(state, doing);
        } catch (e) {
          reject(e as Error);
        }
      }, 200);
    });
    try {
      return await Promise.race([work, watch]);
    } finally {
      clearInterval(timer);
      work.catch(() => {}); // lost the race: its rejection is not news
    }
  }

  private checkAlive(state: StateFile, doing: string): void {
    for (const d of state.daemons) {
      if (isRunning(d.pid, d.argv)) continue;
      const tail = this.logTail(d.name);
      if (d.name === `mon.${MON_ID}` && /Address already in use/.test(tail)) {
        throw new MonPortTaken(`mon port ${state.monPort} is taken`);
      }
      throw new Error(`${d.name} (pid ${d.pid}) exited while ${doing}\n${tail}`);
    }
  }

  /** The last lines of a daemon's log and of its stdout/stderr, for error messages. */
  private logTail(name: string, lines = 20): string {
    const parts: string[] = [];
    for (const file of [this.paths.log(name), this.paths.out(name)]) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8').trimEnd();
      } catch {
        continue;
      }
      if (text === '') continue;
      parts.push(`--- last lines of ${file}:\n${text.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n')}`);
    }
    return parts.join('\n') || `(no log for ${name} in ${this.paths.logDir})`;
  }

  // ─────────────────────────────────────────── down ──

  /**
   * Unmounts everything under DIR, stops this cluster's daemons (and only them: PID plus exact
   * command line), waits for them to exit, and removes DIR. Nothing to do when DIR is gone.
   */
  async down(): Promise<void> {
    if (!(await exists(this.dir))) {
      this.progress(`${this.dir} does not exist: nothing to stop`);
      return;
    }
    const state = await this.readState();
    if (!state && !(await this.looksLikeOurs())) {
      throw new Error(`${this.dir} is not a ceph-dev cluster directory (no ${this.paths.state} or ceph.conf of ours): refusing to remove it`);
    }
    const unlock = await this.lock();
    let removed = false;
    try {
      await this.unmountUnder();
      const monAddr = state ? `127.0.0.1:${state.monPort}` : await this.monAddrFromConf();
      const found = findClusterProcesses(this.paths.conf, monAddr);
      // FUSE/NBD clients of this cluster (mounted elsewhere, or still exiting after the unmount)
      // would hang forever once the cluster is gone. SIGTERM while it still runs: ceph-fuse then
      // closes its session and unmounts itself.
      const clients = found.filter((f) => f.kind === 'client').map((f) => ({ name: f.argv.join(' '), ...f }));
      if (clients.length > 0) {
        this.progress(`ending clients of this cluster: ${clients.map((d) => `${d.name} (pid ${d.pid})`).join(', ')}`);
        await terminate(clients);
      }
      const recorded = (state?.daemons ?? []).filter((d) => isRunning(d.pid, d.argv));
      const strays = found.filter((f) => f.kind === 'daemon' && !recorded.some((r) => r.pid === f.pid));
      const procs = [...recorded, ...strays.map((s) => ({ name: s.argv.join(' '), ...s }))];
      if (procs.length > 0) this.progress(`stopping ${procs.map((d) => `${d.name} (pid ${d.pid})`).join(', ')}`);
      await this.stopDaemons(procs);
      const mounts = mountPointsUnder(this.dir);
      if (mounts.length > 0) throw new Error(`still mounted under ${this.dir}: ${mounts.join(', ')}; not removing it`);
      await rm(this.dir, { recursive: true, force: true });
      removed = true;
      this.progress(`removed ${this.dir}`);
    } finally {
      if (!removed) await unlock();
    }
  }

  /**
   * Stops daemons: the mon last, so the others can still talk to it on their way out. The cluster
   * is thrown away, so there is nothing to flush: each gets SIGTERM and a short grace, then SIGKILL
   * (an MDS's clean shutdown alone waits ~4 s for a beacon reply; memstore would write all its
   * objects to disk).
   */
  private async stopDaemons(daemons: DaemonRecord[]): Promise<void> {
    const isMon = (d: DaemonRecord) => basename(d.argv[0] ?? '') === 'ceph-mon';
    await terminate(daemons.filter((d) => !isMon(d)));
    await terminate(daemons.filter(isMon));
  }

  private async monAddrFromConf(): Promise<string | undefined> {
    const conf = await readFile(this.paths.conf, 'utf8').catch(() => '');
    return /^mon host = \[v1:(127\.0\.0\.1:\d+)\]$/m.exec(conf)?.[1];
  }

  /** Unmounts everything mounted under DIR, deepest first (lazily if a plain unmount fails). */
  private async unmountUnder(): Promise<void> {
    for (const mp of mountPointsUnder(this.dir).sort((a, b) => b.length - a.length)) {
      this.progress(`unmounting ${mp}`);
      try {
        await this.runner.run('umount', [mp], { timeoutMs: 30_000 });
      } catch (e) {
        this.progress(`umount ${mp} failed (${(e as Error).message.split('\n')[0]}); detaching it lazily`);
        await this.runner.run('umount', ['-l', mp], { timeoutMs: 30_000 });
      }
    }
  }

  private async looksLikeOurs(): Promise<boolean> {
    const conf = await readFile(this.paths.conf, 'utf8').catch(() => '');
    return conf.startsWith(CONF_MARKER);
  }

  private async wipeContents(): Promise<void> {
    for (const e of await readdir(this.dir)) {
      if (e !== 'stowage-ceph-dev.lock') await rm(`${this.dir}/${e}`, { recursive: true, force: true });
    }
  }

  // ───────────────────────────────────────── status ──

  /** Which daemons run, and the mon's health summary when it answers. */
  async status(): Promise<DevClusterStatus> {
    const state = await this.readState();
    if (!state) return { dir: this.dir, state: 'absent', daemons: [], allRunning: false };
    const daemons = DAEMON_NAMES.map((name) => {
      const d = state.daemons.find((r) => r.name === name);
      return { name, pid: d?.pid ?? 0, alive: d !== undefined && isRunning(d.pid, d.argv) };
    });
    const allRunning = state.complete && daemons.every((d) => d.alive);
    const out: DevClusterStatus = {
      dir: this.dir,
      state: !state.complete ? (this.lockOwner() !== undefined ? 'starting' : 'failed') : allRunning ? 'running' : 'degraded',
      clusterID: state.fsid,
      monitors: [`127.0.0.1:${state.monPort}`],
      daemons,
      allRunning,
    };
    if (daemons[0]?.alive) {
      try {
        const s = await this.cephJson<CephStatus>(['status'], 20_000);
        const checks: Record<string, string> = {};
        for (const [id, c] of Object.entries(s.health?.checks ?? {})) checks[id] = c.summary?.message ?? '';
        out.health = { status: s.health?.status ?? 'unknown', checks };
      } catch (e) {
        out.healthError = (e as Error).message;
      }
    } else {
      out.healthError = `mon.${MON_ID} is not running`;
    }
    return out;
  }

  // ────────────────────────────────────────── state ──

  private async readState(): Promise<StateFile | undefined> {
    let text: string;
    try {
      text = await readFile(this.paths.state, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const s = JSON.parse(text) as StateFile;
    if (s.version !== 1) throw new Error(`${this.paths.state}: unknown version ${String(s.version)}`);
    return s;
  }

  /** Atomic (temp file + rename): a crash never leaves a half-written record. */
  private async writeState(s: StateFile): Promise<void> {
    const tmp = `${this.paths.state}.tmp`;
    await writeSecret(tmp, `${JSON.stringify(s, null, 2)}\n`);
    await rename(tmp, this.paths.state);
  }

  /**
   * One stowage process at a time per directory. The lock file holds the owner's PID; one left by
   * a dead process is taken over.
   */
  private async lock(): Promise<() => Promise<void>> {
    for (let attempt = 0; ; attempt++) {
      try {
        const fh = await open(this.paths.lock, 'wx', 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        return () => unlink(this.paths.lock).catch(() => {});
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
        const owner = this.lockOwner();
        if (owner !== undefined) throw new Error(`another stowage process (pid ${owner}) is working on ${this.dir}`);
        await unlink(this.paths.lock).catch(() => {});
      }
    }
  }

  /** The PID holding the directory's lock, if that process still exists. */
  private lockOwner(): number | undefined {
    let owner: number;
    try {
      owner = Number(readFileSync(this.paths.lock, 'utf8').trim());
    } catch {
      return undefined;
    }
    return Number.isInteger(owner) && owner > 0 && readCmdline(owner) !== undefined ? owner : undefined;
  }
}

class MonPortTaken extends Error {}

/** SIGTERM, 1 s of grace, SIGKILL; fails if any is still there 10 s later. */
async function terminate(procs: DaemonRecord[]): Promise<void> {
  const live = procs.filter((d) => isRunning(d.pid, d.argv));
  for (const d of live) signal(d.pid, 'SIGTERM');
  const stubborn = await waitForExit(live, 1_000);
  for (const d of stubborn) signal(d.pid, 'SIGKILL');
  const left = await waitForExit(stubborn, 10_000);
  if (left.length > 0) throw new Error(`could not stop ${left.map((d) => `${d.name} (pid ${d.pid})`).join(', ')}`);
}

interface CephStatus {
  health?: { status?: string; checks?: Record<string, { summary?: { message?: string } }> };
  osdmap?: { num_osds?: number; num_up_osds?: number; num_in_osds?: number; osdmap?: { num_up_osds?: number; num_in_osds?: number } };
  mgrmap?: { available?: boolean };
  fsmap?: { by_rank?: { status?: string }[] };
  pgmap?: { num_pgs?: number; pgs_by_state?: { state_name: string; count: number }[] };
}

/** What `ceph status` says is not ready yet, each with the daemon whose log explains it. */
function notReady(s: CephStatus): { what: string; daemon: string }[] {
  const out: { what: string; daemon: string }[] = [];
  // Pacific puts the counters on osdmap directly; older releases nested them one level down.
  const osdmap = s.osdmap?.osdmap ?? s.osdmap;
  if (osdmap?.num_up_osds !== 1 || osdmap.num_in_osds !== 1) out.push({ what: 'osd.0 up and in', daemon: `osd.${OSD_ID}` });
  if (!s.fsmap?.by_rank?.some((r) => r.status === 'up:active')) out.push({ what: 'mds active', daemon: `mds.${MDS_ID}` });
  if (s.mgrmap?.available !== true) out.push({ what: 'mgr available', daemon: `mgr.${MGR_ID}` });
  const pgs = s.pgmap?.num_pgs ?? 0;
  const active = (s.pgmap?.pgs_by_state ?? []).filter((x) => x.state_name.split('+').includes('active')).reduce((n, x) => n + x.count, 0);
  // The mgr learns of pools a moment after they exist; ours are 3 × PG_NUM PGs.
  if (pgs < 3 * PG_NUM || active < pgs) out.push({ what: `PGs active (${active}/${pgs})`, daemon: `osd.${OSD_ID}` });
  return out;
}

async function writeSecret(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await chmod(path, 0o600);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Absolute paths of binaries, found on PATH: recorded argv must be what /proc will show. */
async function binaryPaths(names: string[]): Promise<Record<string, string>> {
  const dirs = (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  const out: Record<string, string> = {};
  for (const name of names) {
    for (const d of dirs) {
      if (await exists(`${d}/${name}`)) {
        out[name] = `${d}/${name}`;
        break;
      }
    }
    if (!out[name]) throw new Error(`${name} not found on PATH (is the ceph package installed?)`);
  }
  return out;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => res(true)));
  });
}

/** A port the kernel considers free right now. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Mount points strictly under dir, from /proc/self/mountinfo (octal escapes decoded). */
export function mountPointsUnder(dir: string): string[] {
  const unescapeOctal = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => unescapeOctal(line.split(' ')[4] ?? ''))
    .filter((mp) => mp.startsWith(`${dir}/`));
}

function ms(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}
