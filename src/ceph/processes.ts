/**
 * Long-running daemon processes of a dev cluster: starting them, recognising them by their exact
 * command line, and waiting for them to go. Everything is read from /proc, so a PID reused by an
 * unrelated process (after a reboot, say) is never mistaken for one of ours.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Starts a daemon that outlives this process. Not through ExecRunner: that runner is for commands
 * that finish — it waits for exit, buffers output and kills on timeout. A daemon instead gets its
 * own session (detached, so a Ctrl-C or a runner's group kill aimed at the CLI does not reach it),
 * no stdin, stdout and stderr appended to a file (a pipe would keep the caller's reader open for
 * as long as the daemon lives), and is unref'd so the CLI can exit.
 */
export function spawnDaemon(argv: readonly string[], outPath: string, cwd: string): number {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('spawnDaemon: empty argv');
  const out = openSync(outPath, 'a', 0o600);
  try {
    // cwd in the cluster's directory: a daemon must not pin the caller's cwd (say, a mount point).
    const child = spawn(cmd, args, { cwd, detached: true, stdio: ['ignore', out, out], env: { ...process.env, LC_ALL: 'C' } });
    child.on('error', () => {}); // ENOENT and the like: reported below through the missing pid
    if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(out);
  }
}

/** The process's argv, or undefined when it does not exist or is a zombie (empty cmdline). */
export function readCmdline(pid: number): string[] | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  if (raw === '') return undefined;
  const argv = raw.split('\0');
  if (argv.at(-1) === '') argv.pop();
  return argv;
}

/** True when pid is alive and runs exactly argv. */
export function isRunning(pid: number, argv: readonly string[]): boolean {
  const actual = readCmdline(pid);
  return actual !== undefined && actual.length === argv.length && actual.every((a, i) => a === argv[i]);
}

/** Sends a signal, ignoring ESRCH (already gone). */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/**
 * Waits until none of the processes runs its argv any more; returns those still running at the
 * deadline.
 */
export async function waitForExit<T extends { pid: number; argv: readonly string[] }>(procs: T[], timeoutMs: number): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = procs.filter((p) => isRunning(p.pid, p.argv));
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(25);
  }
}

/** Daemon binaries a dev cluster runs. */
export const DAEMON_BINARIES = new Set(['ceph-mon', 'ceph-mgr', 'ceph-osd', 'ceph-mds']);
/** Long-running clients that serve a mount or a device: left behind, they hang once the cluster is gone. */
export const CLIENT_BINARIES = new Set(['ceph-fuse', 'rbd-fuse', 'rbd-nbd']);

export interface ClusterProcess {
  pid: number;
  argv: string[];
  kind: 'daemon' | 'client';
}

/**
 * Processes of one cluster, found by command line: ceph daemons whose argv names this exact conf
 * file (a safety net for `down` when the PID record is missing or incomplete, say `up` was killed
 * between a spawn and the write), and FUSE/NBD clients whose argv names the conf or the mon's
 * address. Other clusters have other conf paths and mon ports, so nothing of theirs can match.
 */
export function findClusterProcesses(confPath: string, monAddr: string | undefined): ClusterProcess[] {
  const addr = monAddr ? new RegExp(`(^|[^0-9.])${monAddr.replace(/\./g, '\\.')}(?![0-9])`) : undefined;
  const namesConf = (a: string) => a === confPath || a === `--conf=${confPath}`;
  const found: ClusterProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const argv = readCmdline(pid);
    if (!argv) continue;
    const bin = basename(argv[0] ?? '');
    if (DAEMON_BINARIES.has(bin) && argv.some(namesConf)) found.push({ pid, argv, kind: 'daemon' });
    else if (CLIENT_BINARIES.has(bin) && argv.some((a) => namesConf(a) || addr?.test(a) === true)) found.push({ pid, argv, kind: 'client' });
  }
  return found;
}
