// How every client command finds the running control plane: --server URL, or the server.json that
// `stowage up` keeps in its state directory (--state-dir, default ~/.stowage).
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { CliError } from './errors.js';

export const DEFAULT_NAMESPACE = 'default';

/** The flags every client command shares (declared once, on the program). */
export interface GlobalFlags {
  stateDir?: string;
  server?: string;
  token?: string;
  namespace?: string;
}

/** What `stowage up` writes while it runs (see src/control/control-plane.ts). */
export interface ServerInfo {
  url: string;
  pid: number;
  token?: string;
}

export function defaultStateDir(): string {
  return process.env['STOWAGE_STATE_DIR'] || join(homedir(), '.stowage');
}

export function stateDirOf(flags: GlobalFlags): string {
  return resolve(flags.stateDir ?? defaultStateDir());
}

/** Declares --state-dir, --server, --token and -n/--namespace on the program, for every command. */
export function addGlobalFlags(program: Command): void {
  program
    .option('--state-dir <dir>', 'the state directory of `stowage up`, where clients find the control plane (default $STOWAGE_STATE_DIR or ~/.stowage)')
    .option('--server <url>', 'the control plane\'s API: http://HOST:PORT or unix:///path (overrides --state-dir discovery)')
    .option('--token <token>', 'bearer token for the API (default $STOWAGE_TOKEN)')
    .option('-n, --namespace <namespace>', 'the namespace of namespaced objects (default "default")');
}

/** The flags of a command together with the program's. */
export function globalFlags(command: Command): GlobalFlags {
  return command.optsWithGlobals<GlobalFlags>();
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running control plane recorded in a state directory, or undefined. */
export async function readServerInfo(stateDir: string): Promise<ServerInfo | undefined> {
  let text: string;
  try {
    text = await readFile(join(stateDir, 'server.json'), 'utf8');
  } catch {
    return undefined;
  }
  let info: Partial<ServerInfo>;
  try {
    info = JSON.parse(text) as Partial<ServerInfo>;
  } catch {
    return undefined;
  }
  if (typeof info.url !== 'string' || typeof info.pid !== 'number' || !isRunning(info.pid)) return undefined;
  return info as ServerInfo;
}

/** A client for the control plane the flags point at; a one-line CliError when there is none. */
export async function connect(flags: GlobalFlags): Promise<ApiClient> {
  const token = flags.token ?? (process.env['STOWAGE_TOKEN'] || undefined);
  if (flags.server) return new ApiClient({ server: flags.server, ...(token ? { token } : {}) });
  const dir = stateDirOf(flags);
  const info = await readServerInfo(dir);
  if (info === undefined) throw new CliError(`error: no control plane running in ${dir} (start one with \`stowage up\`)`);
  const fileToken = token ?? info.token;
  return new ApiClient({ server: info.url, ...(fileToken ? { token: fileToken } : {}) });
}

/** The namespace for namespaced objects: -n, else "default". */
export function namespaceOf(flags: GlobalFlags): string {
  return flags.namespace || DEFAULT_NAMESPACE;
}
