// Facts about processes, read from /proc. A PID alone does not name a process across an agent
// restart (PIDs are reused), so the runtime always pairs it with the process's start time.
import { readFileSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';

/**
 * The start time (clock ticks since boot) of a live process, or undefined when there is none by
 * that PID or it is a zombie (it has exited; only its parent's wait is missing).
 */
export function processStartTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  // starttime is field 22 of the whole line, i.e. index 19 after pid and comm.
  const ticks = Number(fields[19]);
  return Number.isFinite(ticks) ? ticks : undefined;
}

/** True while the process that had this start time still runs under this PID. */
export function isSameProcess(pid: number | undefined, startTicks: number | undefined): boolean {
  return pid !== undefined && startTicks !== undefined && processStartTicks(pid) === startTicks;
}

/** kill(2) that treats "no such process" as done. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, no]) => [no, name]));

export function signalNumber(name: string): number | undefined {
  return (constants.signals as Record<string, number>)[name];
}

export function signalName(no: number): string | undefined {
  return SIGNAL_NAMES.get(no);
}

/** PIDs of live processes whose argv has exactly these two arguments in a row (a shim and its attempt dir). */
export function processesWithArgs(first: string, second: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const at = argv.indexOf(first);
      if (at >= 0 && argv[at + 1] === second && processStartTicks(Number(entry)) !== undefined) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
