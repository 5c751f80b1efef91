// How every client command finds the running control plane: --kubeconfig FILE, --server URL, or
// the server.json that `stowage up` keeps in its state directory (--state-dir, default ~/.stowage);
// and whom it trusts over https (see connectionOptions): never an unverified server unless
// --insecure-skip-tls-verify says so.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ADMIN_TOKEN_FILE } from '../control/server/admin-token.js';
import { PKI_DIR } from '../control/server/pki.js';
import { processStartTicks } from '../control/node/runtime/proc.js';
import { ApiClient, type ApiClientOptions } from './api-client.js';
import { CliError } from './errors.js';
import { type KubeconfigTarget, readCa, readKubeconfig } from './kubeconfig-read.js';

export const DEFAULT_NAMESPACE = 'default';

/** The flags every client command shares (declared once, on the program). */
export interface GlobalFlags {
  stateDir?: string;
  server?: string;
  token?: string;
  namespace?: string;
  kubeconfig?: string;
  context?: string;
  certificateAuthority?: string;
  insecureSkipTlsVerify?: boolean;
}

/** What `stowage up` writes while it runs (see src/control/control-plane.ts). */
export interface ServerInfo {
  url: string;
  /** Every address it serves (url is the first). */
  urls?: string[];
  pid: number;
  pidStartTicks?: number;
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
    .option('--server <url>', 'the control plane\'s API: https://HOST:PORT, http://HOST:PORT or unix:///path (overrides --state-dir and --kubeconfig)')
    .option('--token <token>', 'bearer token for the API (default $STOWAGE_TOKEN)')
    .option('--kubeconfig <file>', 'a kubeconfig whose current context names the server, its CA and the token (flags override it)')
    .option('--context <name>', 'the --kubeconfig context to use (default its current-context)')
    .option('--certificate-authority <file>', 'the CA (PEM) an https:// server\'s certificate must chain to')
    .option('--insecure-skip-tls-verify', 'do not verify the https:// server\'s certificate (insecure)')
    .option('-n, --namespace <namespace>', 'the namespace of namespaced objects (default "default")');
}

/** The flags of a command together with the program's. */
export function globalFlags(command: Command): GlobalFlags {
  return command.optsWithGlobals<GlobalFlags>();
}

/**
 * Whether the recorded control plane still runs: a process by that PID that has not exited (a
 * zombie, killed and not yet reaped by its parent, has) and, when the start time was recorded,
 * the same process (PIDs are reused after a crash or a reboot).
 */
function isRunning(pid: number, startTicks: number | undefined): boolean {
  const ticks = processStartTicks(pid);
  return ticks !== undefined && (startTicks === undefined || ticks === startTicks);
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
  if (typeof info.url !== 'string' || typeof info.pid !== 'number' || !isRunning(info.pid, typeof info.pidStartTicks === 'number' ? info.pidStartTicks : undefined)) return undefined;
  return info as ServerInfo;
}

/** Scheme, host and port of a URL (unix: the path), to tell whether two spellings name one server. */
function serverKey(url: string): string {
  if (url.startsWith('unix:')) return url.replace(/^unix:(\/\/)?/, 'unix:');
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.hostname.toLowerCase()}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    return url;
  }
}

/** What the state directory's running control plane offers for `server`: its CA and admin token (none when it is not that server). */
async function stateDirTrust(dir: string, info: ServerInfo | undefined, server: string): Promise<{ caPem?: string; token?: string }> {
  if (info === undefined || !(info.urls ?? [info.url]).some((u) => serverKey(u) === serverKey(server))) return {};
  // A unix socket needs neither: its file mode is its authentication.
  if (server.startsWith('unix:')) return info.token === undefined ? {} : { token: info.token };
  const token = info.token ?? (await readFile(join(dir, ADMIN_TOKEN_FILE), 'utf8').catch(() => '')).trim();
  const caPem = server.startsWith('https:') ? await readFile(join(dir, PKI_DIR, 'ca.crt'), 'utf8').catch(() => undefined) : undefined;
  return { ...(caPem === undefined ? {} : { caPem }), ...(token === '' ? {} : { token }) };
}

/**
 * Where the flags point and whom to trust, in kubectl's precedence (flags over the kubeconfig):
 * server from --server, else --kubeconfig's current context, else the state directory's running
 * control plane; token from --token/$STOWAGE_TOKEN, else the kubeconfig's user, else (for the state
 * directory's own server) its admin.token; CA from --certificate-authority, else the state
 * directory's pki/ca.crt when the server is the state directory's, else the kubeconfig's, else the
 * system's. --insecure-skip-tls-verify (or the kubeconfig's) drops an implicit CA, as kubectl does;
 * with --certificate-authority it is refused.
 */
export async function connectionOptions(flags: GlobalFlags): Promise<ApiClientOptions> {
  const flagToken = flags.token ?? (process.env['STOWAGE_TOKEN'] || undefined);
  const flagCa = flags.certificateAuthority === undefined ? undefined : await readCa(flags.certificateAuthority);
  if (flags.context !== undefined && flags.kubeconfig === undefined) throw new CliError('error: --context needs --kubeconfig');
  const kc: KubeconfigTarget | undefined = flags.kubeconfig === undefined ? undefined : await readKubeconfig(flags.kubeconfig, flags.context);
  const dir = stateDirOf(flags);
  const info = await readServerInfo(dir);
  const server = flags.server || kc?.server || info?.url;
  if (server === undefined) throw new CliError(`error: no control plane running in ${dir} (start one with \`stowage up\`)`);
  const own = await stateDirTrust(dir, info, server);
  const insecure = flags.insecureSkipTlsVerify === true || (flags.certificateAuthority === undefined && kc?.insecureSkipTlsVerify === true);
  const caPem = flagCa ?? (insecure ? undefined : (own.caPem ?? kc?.caPem));
  const token = flagToken ?? kc?.token ?? (kc === undefined ? own.token : undefined);
  return { server, ...(token ? { token } : {}), ...(caPem === undefined ? {} : { caPem }), ...(insecure ? { insecureSkipTlsVerify: true } : {}) };
}

/**
 * A client for the control plane the flags point at; a one-line CliError when there is none. The
 * server's warnings go to stderr as kubectl prints them ("Warning: …").
 */
export async function connect(flags: GlobalFlags, extra: Pick<ApiClientOptions, 'fieldValidation'> = {}): Promise<ApiClient> {
  return new ApiClient({ ...(await connectionOptions(flags)), ...extra, onWarning: (text) => process.stderr.write(`Warning: ${text}\n`) });
}

/** The namespace for namespaced objects: -n, else the --kubeconfig context's, else "default" (kubectl's order). */
export async function namespaceOf(flags: GlobalFlags): Promise<string> {
  if (flags.namespace) return flags.namespace;
  const fromKubeconfig = flags.kubeconfig === undefined ? undefined : (await readKubeconfig(flags.kubeconfig, flags.context)).namespace;
  return fromKubeconfig || DEFAULT_NAMESPACE;
}
