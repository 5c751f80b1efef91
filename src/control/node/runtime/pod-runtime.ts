// The node's container runtime: pods' containers as processes, each in its own mount, PID and UTS
// namespaces over an overlay of the host's root (container-init.ts says how the root is built),
// under a detached shim that outlives the agent and records how the container ended (shim.ts).
// Everything it knows is on disk (files.ts), so a new PodRuntime on the same root — an agent
// restarted after kill -9 — answers for containers an earlier one started.
//
// Not done: images (recorded, never pulled: the root is the host's), cgroups (no limits, so no
// OOMKilled), network namespaces (containers share the node's network, as hostNetwork pods do).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { CommandRunner } from '../../../driver/mount/exec.js';
import { parseMountInfo } from '../../../driver/mount/mount.js';
import { safeComponent } from '../layout.js';
import {
  attemptDir,
  containerDir,
  containerEnv,
  containersDir,
  logFile,
  mkdirs,
  readJson,
  writeJsonAtomic,
  type CurrentFile,
  type LaunchFile,
  type StateFile,
} from './files.js';
import { isSameProcess, processesWithArgs, signalProcess } from './proc.js';
import { findTool, LOW_MEMORY_NODE_FLAGS } from './shim.js';
import type { ContainerSpec, ContainerStatus } from './types.js';

export interface PodRuntimeOptions {
  /** The node's kubelet root, e.g. <state>/nodes/<name>. */
  rootDir: string;
  runner: CommandRunner;
  logger: Logger;
  /** How long startContainer waits for the shim to report (default 30 s: two Node starts on a busy machine). */
  startTimeoutMs?: number;
}

export class ContainerNotFoundError extends Error {
  override readonly name = 'ContainerNotFoundError';
  constructor(podUid: string, containerName: string) {
    super(`container ${containerName} of pod ${podUid} has no runtime state on this node`);
  }
}

export class ContainerNotRunningError extends Error {
  override readonly name = 'ContainerNotRunningError';
  constructor(podUid: string, containerName: string) {
    super(`container ${containerName} of pod ${podUid} is not running`);
  }
}

const SHIM = join(dirname(fileURLToPath(import.meta.url)), 'shim.js');
const POLL_MS = 25;
/** After SIGKILL, how long a process may take to be gone (it may be in uninterruptible I/O). */
const KILL_WAIT_MS = 10_000;
/** How long status() waits for a live shim to record an exit it is about to record. */
const SHIM_RECORD_WAIT_MS = 2_000;
/** Exit code the kubelet reports for a container that vanished without a recorded status. */
const LOST_EXIT_CODE = 137;
/** Logs kept per container: the current attempt's and the previous one's (`logs --previous`), as the kubelet keeps. */
const LOG_ATTEMPTS_KEPT = 2;

export class PodRuntime {
  private readonly rootDir: string;
  private readonly runner: CommandRunner;
  private readonly logger: Logger;
  private readonly startTimeoutMs: number;

  constructor(opts: PodRuntimeOptions) {
    this.rootDir = opts.rootDir;
    this.runner = opts.runner;
    this.logger = opts.logger.child({ component: 'pod-runtime' });
    this.startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  }

  /**
   * Starts attempt spec.attempt of the container. Resolves once the command runs, or with an exited
   * status (reason StartError and a message) when it could not start. Throws only when the attempt
   * cannot even be tried (bad names, the container still running).
   */
  async startContainer(spec: ContainerSpec): Promise<ContainerStatus> {
    const cdir = this.containerDir(spec.podUid, spec.containerName);
    const previous = await this.status(spec.podUid, spec.containerName);
    if (previous?.state === 'running') {
      throw new Error(`container ${spec.containerName} of pod ${spec.podUid} is already running (attempt ${previous.attempt})`);
    }
    const adir = attemptDir(cdir, spec.attempt);
    // A retried attempt number starts from scratch (a shim an earlier agent left starting is stopped
    // first); its root was only ever mounted in its own namespace.
    if (existsSync(adir)) await this.killLeftovers(adir);
    await this.assertNothingMountedUnder(adir);
    await rm(adir, { recursive: true, force: true });
    mkdirs(join(adir, 'upper'), join(adir, 'work'), join(adir, 'rootfs'), join(cdir, 'logs'));
    // The overlay's root directory takes the upper layer's mode: as a root's, so a container running
    // as another user (securityContext.runAsUser) can walk its own filesystem.
    chmodSync(join(adir, 'upper'), 0o755);
    const launch: LaunchFile = { spec, logPath: logFile(cdir, spec.attempt) };
    writeJsonAtomic(join(adir, 'launch.json'), launch);
    writeJsonAtomic(join(cdir, 'current.json'), { attempt: spec.attempt } satisfies CurrentFile);
    await this.pruneAttempts(cdir, spec.attempt);

    const log = this.logger.child({ pod: `${spec.namespace}/${spec.podName}`, podUid: spec.podUid, container: spec.containerName, attempt: spec.attempt });
    if (spec.command.length === 0) {
      // Nothing to run and no image entrypoint to fall back on: record it as the runtime would.
      const now = new Date().toISOString();
      writeJsonAtomic(join(adir, 'state.json'), {
        phase: 'exited', shimPid: 0, shimStartTicks: 0, exitCode: 128, reason: 'StartError', message: 'no command specified', finishedAt: now,
      } satisfies StateFile);
      return (await this.status(spec.podUid, spec.containerName))!;
    }

    const shimLog = openSync(join(adir, 'shim.log'), 'a', 0o600);
    let shim: ChildProcess;
    try {
      shim = spawn(process.execPath, [...LOW_MEMORY_NODE_FLAGS, SHIM, adir], {
        cwd: adir,
        detached: true, // its own session: a signal to the agent's process group never reaches it
        stdio: ['ignore', 'pipe', shimLog],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
    } finally {
      closeSync(shimLog);
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        shim.stdout?.destroy();
        shim.unref();
        resolve();
      };
      const timer = setTimeout(done, this.startTimeoutMs);
      shim.on('error', done);
      shim.stdout?.on('data', done);
      shim.stdout?.on('close', done);
    });
    const status = (await this.status(spec.podUid, spec.containerName))!;
    log.info({ state: status.state, pid: status.pid, exitCode: status.exitCode, reason: status.reason, message: status.message }, 'container started');
    return status;
  }

  /** The current attempt's status, or undefined when this node has no runtime state for the container. */
  async status(podUid: string, containerName: string): Promise<ContainerStatus | undefined> {
    const cdir = this.containerDir(podUid, containerName);
    const current = await readJson<CurrentFile>(join(cdir, 'current.json'));
    if (!current) return undefined;
    const adir = attemptDir(cdir, current.attempt);
    const launch = await readJson<LaunchFile>(join(adir, 'launch.json'));
    let state = await readJson<StateFile>(join(adir, 'state.json'));
    const base: ContainerStatus = { state: 'unknown', attempt: current.attempt };
    if (launch?.spec.image !== undefined) base.image = launch.spec.image;
    if (!state) return { ...base, message: 'the container was being created when its runtime stopped' };

    const shimAlive = () => isSameProcess(state!.shimPid, state!.shimStartTicks);
    if (state.phase === 'running' && !isSameProcess(state.pid, state.pidStartTicks) && shimAlive()) {
      // The container just ended: its shim is about to record how.
      const deadline = Date.now() + SHIM_RECORD_WAIT_MS;
      while (state.phase === 'running' && shimAlive() && Date.now() < deadline) {
        await sleep(POLL_MS);
        state = (await readJson<StateFile>(join(adir, 'state.json'))) ?? state;
      }
    }
    // The shim records the end before it exits: a shim found gone after the state was read may
    // have written it in between. Read it once more before calling the container lost.
    const alive = shimAlive();
    if (state.phase !== 'exited' && !alive) state = (await readJson<StateFile>(join(adir, 'state.json'))) ?? state;
    return this.toStatus(base, state, alive);
  }

  private toStatus(base: ContainerStatus, state: StateFile, shimAlive: boolean): ContainerStatus {
    const out: ContainerStatus = { ...base };
    if (state.startedAt) out.startedAt = state.startedAt;
    if (state.phase === 'exited') {
      Object.assign(out, { state: 'exited', finishedAt: state.finishedAt, exitCode: state.exitCode, reason: state.reason });
      if (state.signal) out.signal = state.signal;
      if (state.message) out.message = state.message;
      return out;
    }
    if (state.phase === 'running' && isSameProcess(state.pid, state.pidStartTicks)) {
      return { ...out, state: 'running', pid: state.pid! };
    }
    if (state.phase === 'starting' && shimAlive) return { ...out, message: 'the container is starting' };
    // Neither the process nor its shim is left to say how it ended (the shim was killed too).
    return {
      ...out,
      state: 'exited',
      exitCode: LOST_EXIT_CODE,
      reason: 'ContainerStatusUnknown',
      message: 'The container could not be located when its status was read: it and its shim are gone',
    };
  }

  /**
   * SIGTERM to the container's first process, SIGKILL once gracePeriodSeconds have passed (at once
   * for 0). As in Kubernetes the signal goes to PID 1 of the container, and a PID 1 that has no
   * handler for SIGTERM does not die of it; everything else in the container dies with PID 1.
   */
  async stopContainer(podUid: string, containerName: string, gracePeriodSeconds: number): Promise<ContainerStatus> {
    const cdir = this.containerDir(podUid, containerName);
    const current = await readJson<CurrentFile>(join(cdir, 'current.json'));
    if (!current) throw new ContainerNotFoundError(podUid, containerName);
    const adir = attemptDir(cdir, current.attempt);
    const log = this.logger.child({ podUid, container: containerName, attempt: current.attempt });
    let state = await readJson<StateFile>(join(adir, 'state.json'));

    // A shim still starting the container: let it finish (or fail) so there is a process to stop.
    const startDeadline = Date.now() + this.startTimeoutMs;
    while (state?.phase === 'starting' && isSameProcess(state.shimPid, state.shimStartTicks) && Date.now() < startDeadline) {
      await sleep(POLL_MS);
      state = await readJson<StateFile>(join(adir, 'state.json'));
    }

    if (state?.phase === 'running' && isSameProcess(state.pid, state.pidStartTicks)) {
      const pid = state.pid!;
      const alive = () => isSameProcess(pid, state!.pidStartTicks);
      const graceMs = Math.max(0, gracePeriodSeconds) * 1000;
      log.info({ pid, gracePeriodSeconds }, 'stopping container');
      if (graceMs > 0) {
        signalProcess(pid, 'SIGTERM');
        await waitUntil(() => !alive(), graceMs);
      }
      if (alive()) {
        if (graceMs > 0) log.info({ pid }, 'grace period over: SIGKILL');
        signalProcess(pid, 'SIGKILL');
        if (!(await waitUntil(() => !alive(), KILL_WAIT_MS))) throw new Error(`container ${containerName} of pod ${podUid} (pid ${pid}) survived SIGKILL`);
      }
    }
    return (await this.status(podUid, containerName))!;
  }

  /**
   * Stops whatever of the pod still runs, waits until no process is left in any of its containers,
   * and removes the pod's runtime dirs (pods/<uid>/containers; the volumes beside them are the
   * agent's). The containers' mounts lived only in their namespaces, which are gone with their
   * processes; any mount found under the runtime dirs in the host's table (there should be none) is
   * detached first, and the dirs are left alone if one cannot be, so the removal never descends into
   * a volume. Idempotent.
   */
  async removePod(podUid: string): Promise<void> {
    const dir = containersDir(this.rootDir, safeComponent('pod UID', podUid));
    const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names) {
      const cdir = join(dir, name);
      const status = await this.status(podUid, name);
      if (status && status.state !== 'exited') await this.stopContainer(podUid, name, 0);
      for (const attempt of await readdir(join(cdir, 'attempts')).catch(() => [] as string[])) {
        await this.killLeftovers(attemptDir(cdir, Number(attempt)));
      }
    }
    for (const mount of await this.mountsUnder(dir)) {
      this.logger.warn({ podUid, mountPoint: mount }, 'detaching a runtime mount found in the host namespace');
      await this.runner.run('umount', ['--lazy', mount], { timeoutMs: 10_000 });
    }
    await this.assertNothingMountedUnder(dir);
    await rm(dir, { recursive: true, force: true });
    this.logger.info({ podUid }, 'pod runtime state removed');
  }

  /**
   * What can outlive a stop: the shim — also one that had not yet written state.json (an agent
   * killed right after spawning it), found by its argv — and a first process it had just started.
   * Processes exec'd into a container need nothing: the kernel kills everything in a PID namespace
   * when its PID 1 dies. (Not by mount namespace: namespace inode numbers are reused once freed, so a
   * recorded one may by now name another container's.)
   */
  private async killLeftovers(adir: string): Promise<void> {
    let state = await readJson<StateFile>(join(adir, 'state.json')).catch(() => undefined);
    if (!state) {
      const shims = () => processesWithArgs(SHIM, adir);
      for (const pid of shims()) signalProcess(pid, 'SIGKILL');
      await waitUntil(() => shims().length === 0, KILL_WAIT_MS);
      state = await readJson<StateFile>(join(adir, 'state.json')).catch(() => undefined);
      if (!state) return;
    }
    const { pid, pidStartTicks } = state;
    if (pid !== undefined && isSameProcess(pid, pidStartTicks)) {
      signalProcess(pid, 'SIGKILL');
      if (!(await waitUntil(() => !isSameProcess(pid, pidStartTicks), KILL_WAIT_MS))) throw new Error(`pid ${pid} survived SIGKILL`);
    }
    // The shim ends on its own once the container is gone; one stuck before that is killed.
    const shimGone = () => !isSameProcess(state.shimPid, state.shimStartTicks);
    if (!(await waitUntil(shimGone, SHIM_RECORD_WAIT_MS))) {
      signalProcess(state.shimPid, 'SIGKILL');
      await waitUntil(shimGone, KILL_WAIT_MS);
    }
  }

  /** Pod UIDs with runtime state on this node, read from disk. */
  async listPods(): Promise<string[]> {
    const podsDir = join(this.rootDir, 'pods');
    const uids = await readdir(podsDir).catch(() => [] as string[]);
    const out: string[] = [];
    for (const uid of uids) {
      if (await stat(containersDir(this.rootDir, uid)).then((s) => s.isDirectory(), () => false)) out.push(uid);
    }
    return out.sort();
  }

  /** Names of the containers of a pod with runtime state here. */
  async listContainers(podUid: string): Promise<string[]> {
    return (await readdir(containersDir(this.rootDir, safeComponent('pod UID', podUid))).catch(() => [] as string[])).sort();
  }

  /** The log file of an attempt (default: the current one). Plain bytes as the container wrote them. */
  logPath(podUid: string, containerName: string, attempt?: number): string {
    const cdir = this.containerDir(podUid, containerName);
    if (attempt === undefined) {
      try {
        attempt = (JSON.parse(readFileSync(join(cdir, 'current.json'), 'utf8')) as CurrentFile).attempt;
      } catch {
        attempt = 0;
      }
    }
    return logFile(cdir, attempt);
  }

  /** The running container's state and launch record, or ContainerNotFoundError / ContainerNotRunningError. */
  private runningContainer(podUid: string, containerName: string): { state: StateFile; launch: LaunchFile } {
    const cdir = this.containerDir(podUid, containerName);
    let current: CurrentFile;
    try {
      current = JSON.parse(readFileSync(join(cdir, 'current.json'), 'utf8')) as CurrentFile;
    } catch {
      throw new ContainerNotFoundError(podUid, containerName);
    }
    const adir = attemptDir(cdir, current.attempt);
    const read = <T>(file: string): T | undefined => {
      try {
        return JSON.parse(readFileSync(join(adir, file), 'utf8')) as T;
      } catch {
        return undefined;
      }
    };
    const state = read<StateFile>('state.json');
    const launch = read<LaunchFile>('launch.json');
    if (!state || !launch || state.phase !== 'running' || !isSameProcess(state.pid, state.pidStartTicks)) {
      throw new ContainerNotRunningError(podUid, containerName);
    }
    return { state, launch };
  }

  /** Throws ContainerNotFoundError / ContainerNotRunningError unless a command can run in the container now. */
  execCheck(podUid: string, containerName: string): void {
    this.runningContainer(podUid, containerName);
  }

  /**
   * Runs command inside the running container (its mount, PID and UTS namespaces, root and working
   * directory, and its environment), as `kubectl exec` does. The child's exit code is the command's.
   */
  exec(podUid: string, containerName: string, command: string[], stdio: 'inherit' | 'pipe'): ChildProcess {
    if (command.length === 0) throw new Error('exec: no command given');
    const { state, launch } = this.runningContainer(podUid, containerName);
    // As the container's user (kubectl exec runs as the container does): setpriv in the container's root.
    const user = launch.spec.user;
    const as = user ? ['setpriv', '--reuid', String(user.uid), '--regid', String(user.gid), ...(user.groups.length > 0 ? ['--groups', user.groups.join(',')] : ['--clear-groups']), '--'] : [];
    const args = ['--target', String(state.pid), '--mount', '--uts', '--pid', '--root', '--wd', '--', ...as, ...command];
    // Piped (the API's exec): a process group of its own, which the caller ends as a whole when
    // its client goes (nsenter forks the command into the container; killing nsenter leaves it).
    return spawn(findTool('nsenter'), args, { stdio, env: containerEnv(launch.spec), detached: stdio === 'pipe' });
  }

  private containerDir(podUid: string, containerName: string): string {
    return containerDir(this.rootDir, safeComponent('pod UID', podUid), safeComponent('container name', containerName));
  }

  /** Removes attempt dirs older than the current one (their containers are gone) and logs past the ones kept. */
  private async pruneAttempts(cdir: string, currentAttempt: number): Promise<void> {
    for (const entry of await readdir(join(cdir, 'attempts')).catch(() => [] as string[])) {
      const attempt = Number(entry);
      if (attempt === currentAttempt) continue;
      const adir = attemptDir(cdir, attempt);
      await this.killLeftovers(adir);
      await this.assertNothingMountedUnder(adir);
      await rm(adir, { recursive: true, force: true });
    }
    for (const entry of await readdir(join(cdir, 'logs')).catch(() => [] as string[])) {
      const attempt = Number.parseInt(entry, 10);
      if (attempt <= currentAttempt - LOG_ATTEMPTS_KEPT) await rm(join(cdir, 'logs', entry), { force: true });
    }
  }

  private async mountsUnder(dir: string): Promise<string[]> {
    const entries = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
    return entries
      .map((e) => e.mountPoint)
      .filter((m) => m === dir || m.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
  }

  private async assertNothingMountedUnder(dir: string): Promise<void> {
    const left = await this.mountsUnder(dir);
    if (left.length > 0) throw new Error(`refusing to remove ${dir}: still mounted there: ${left.join(', ')}`);
  }
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}
