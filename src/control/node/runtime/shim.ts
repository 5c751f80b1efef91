// The container shim: one small Node process per container, started detached in its own session,
// so the container neither dies with the node agent (kill -9 included) nor loses its exit status.
// It starts the container in new PID, mount and UTS namespaces with container-init.js as the
// namespace's first process (which becomes the command), waits for it as its parent, and records pid, start time,
// then exit code/signal and finish time in state.json (atomically). It prints one line on stdout
// ("started") once state.json says running or exited, which is what PodRuntime.startContainer
// waits for; the agent may be gone by then, so stdout errors are ignored.
//
// Usage: node shim.js <attempt dir>   (launch.json there says what to run)
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { closeSync, existsSync, openSync, readSync, fstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { SyscallError } from '../../../driver/mount/syscalls.js';
import { readJsonSync, writeJsonAtomic, type LaunchFile, type StateFile } from './files.js';
import { processStartTicks, signalNumber } from './proc.js';

/** Flags for the shim and init processes: they allocate almost nothing, so keep V8's heap small. */
export const LOW_MEMORY_NODE_FLAGS = ['--max-old-space-size=16', '--max-semi-space-size=1'];

export interface InitReport {
  ok: boolean;
  /** Host PID and start ticks of the container's first process. */
  pid?: number;
  startTicks?: number;
  message?: string;
}

/** Exit code containerd reports for a container whose command never started. */
const START_ERROR_EXIT_CODE = 128;
const LOG_TAIL_BYTES = 1024;
const CLONE_NEWPID = 0x20000000;

export function findTool(name: string): string {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return name;
}

function main(dir: string): void {
  const statePath = join(dir, 'state.json');
  const launch = readJsonSync<LaunchFile>(join(dir, 'launch.json'));
  let state: StateFile = { phase: 'starting', shimPid: process.pid, shimStartTicks: processStartTicks(process.pid) ?? 0 };
  writeJsonAtomic(statePath, state);

  // Whoever started us may vanish or signal our session; we end when the container does.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => {});
  process.stdout.on('error', () => {});
  let announced = false;
  const announce = () => {
    if (announced) return;
    announced = true;
    process.stdout.write('started\n');
  };

  const logFd = openSync(launch.logPath, 'a', 0o600);
  const init = join(dirname(fileURLToPath(import.meta.url)), 'container-init.js');
  // The next process we fork is PID 1 of a new PID namespace, and our own child, so we wait for it
  // directly. (unshare --pid --fork would sit in between, and util-linux 2.38's unshare reports a
  // child killed by SIGKILL as plain exit code 1.) unshare(1) then adds the mount and UTS namespaces
  // and execs the init, which execs the command: the command is that PID 1, our child.
  const unshare = koffi.load('libc.so.6').func('int unshare(int flags)');
  if ((unshare(CLONE_NEWPID) as number) < 0) throw new SyscallError('unshare(CLONE_NEWPID)', koffi.errno());
  // Propagation unchanged: the init makes every mount a slave first, so that a HostToContainer
  // volume keeps receiving what the node mounts below it (private would cut that link).
  const args = ['--mount', '--propagation', 'unchanged', '--uts', '--', process.execPath, ...LOW_MEMORY_NODE_FLAGS, init, dir];
  const child = spawn(findTool('unshare'), args, {
    cwd: dir,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  closeSync(logFd);

  let report: InitReport | undefined;
  let reportText = '';
  const reportPipe = child.stdio[3] as Readable | null;
  reportPipe?.setEncoding('utf8');
  reportPipe?.on('data', (chunk: string) => {
    reportText += chunk;
    const nl = reportText.indexOf('\n');
    if (report || nl < 0) return;
    try {
      report = JSON.parse(reportText.slice(0, nl)) as InitReport;
    } catch {
      report = { ok: false, message: `unreadable report from the container's init: ${reportText.slice(0, 200)}` };
    }
    if (report.ok) {
      state = { ...state, phase: 'running', pid: report.pid, pidStartTicks: report.startTicks, startedAt: new Date().toISOString() };
      writeJsonAtomic(statePath, state);
      announce();
    }
  });

  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));
  // 'close' comes after the exit and after the report pipe is drained.
  child.on('close', (code, signal) => {
    const finishedAt = new Date().toISOString();
    if (!report?.ok) {
      const message = report?.message ?? spawnError?.message ?? `the container's init ended before its command started${logTail(launch.logPath)}`;
      state = { ...state, phase: 'exited', exitCode: START_ERROR_EXIT_CODE, reason: 'StartError', message, finishedAt };
    } else {
      const exitCode = code ?? 128 + (signal ? (signalNumber(signal) ?? 0) : 0);
      state = { ...state, phase: 'exited', exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', finishedAt };
      if (signal) state.signal = signal;
    }
    writeJsonAtomic(statePath, state);
    announce();
    // Let the "started" line flush before leaving.
    process.stdout.end(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}

/** The end of the container's log, for a start error's message (init prints why it failed there). */
function logTail(path: string): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, LOG_TAIL_BYTES));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      const text = buf.toString('utf8').trim();
      return text ? `: ${text}` : '';
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: shim.js <attempt dir>\n');
    process.exit(2);
  }
  main(dir);
}
