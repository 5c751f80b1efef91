// What every `stowage doctor` check returns and what it may touch: the host is read only through
// HostReader and commands run only through the CommandRunner, so each check is unit-tested
// against fakes (a missing module, a private mount, a dead fuse daemon, a monitor that is down).
import type { CommandRunner } from '../../driver/mount/exec.js';

export type CheckStatus = 'ok' | 'warn' | 'FAIL';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  finding: string;
  /** What to do about it; empty for ok. */
  fix: string;
}

export interface HostReader {
  /** A file's text, or undefined when it does not exist or cannot be read. */
  readText(path: string): Promise<string | undefined>;
  /** Entry names of a directory; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** The errno code stat(path) fails with ("ENOENT", "ENOTCONN", ...), or undefined when it succeeds. */
  statError(path: string): Promise<string | undefined>;
  isSocket(path: string): Promise<boolean>;
}

export interface DoctorDeps {
  reader: HostReader;
  runner: CommandRunner;
  /** Opens a TCP connection and closes it: undefined when it connected, else why not. */
  tcpConnect(host: string, port: number, timeoutMs: number): Promise<string | undefined>;
  /** Calls the CSI Identity Probe on a unix socket: undefined when ready, else why not. */
  probe(socketPath: string, timeoutMs: number): Promise<string | undefined>;
}

export type Backend = 'local' | 'rbd' | 'cephfs';

export function result(check: string, status: CheckStatus, finding: string, fix = ''): CheckResult {
  return { check, status, finding, fix: status === 'ok' ? '' : fix };
}

/** True when a command is an executable file on $PATH. */
export async function onPath(reader: HostReader, cmd: string, path = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'): Promise<boolean> {
  for (const dir of path.split(':')) {
    if (dir !== '' && (await reader.statError(`${dir}/${cmd}`)) === undefined) return true;
  }
  return false;
}
