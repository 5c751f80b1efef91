// Reading a kubeconfig for `stowage --kubeconfig FILE`: the current context's (or --context's)
// cluster server, CA (certificate-authority-data, or a certificate-authority file, relative to the
// kubeconfig's directory as kubectl resolves it), insecure-skip-tls-verify, the user's bearer token
// (token, or tokenFile), and the context's namespace. Only what the stowage client can use; client
// certificates and exec plugins are refused by name rather than silently ignored.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { CliError } from './errors.js';

export interface KubeconfigTarget {
  server: string;
  caPem?: string;
  insecureSkipTlsVerify?: boolean;
  token?: string;
  namespace?: string;
}

interface RawConfig {
  clusters?: { name?: string; cluster?: Record<string, unknown> }[];
  users?: { name?: string; user?: Record<string, unknown> }[];
  contexts?: { name?: string; context?: { cluster?: string; user?: string; namespace?: string } }[];
  'current-context'?: string;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function pick<T extends { name?: string }>(list: readonly T[] | undefined, name: string | undefined): T | undefined {
  return name === undefined ? undefined : (list ?? []).find((e) => e.name === name);
}

/** The target of a kubeconfig's context (`contextName`, else current-context); a one-line CliError when the file cannot serve. */
export async function readKubeconfig(path: string, contextName?: string): Promise<KubeconfigTarget> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    // kubectl's (Go's) words for a kubeconfig that is not there.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError(`error: stat ${path}: no such file or directory`);
    throw new CliError(`error: cannot read kubeconfig ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: RawConfig;
  try {
    raw = (parse(text) ?? {}) as RawConfig;
  } catch (err) {
    throw new CliError(`error: error loading config file "${path}": ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  const name = contextName ?? str(raw['current-context']);
  if (name === undefined) throw new CliError(`error: kubeconfig ${path} names no current-context`);
  const context = pick(raw.contexts, name);
  if (context === undefined) throw new CliError(`Error in configuration: context was not found for specified context: ${name}`);
  const clusterName = context.context?.cluster;
  const cluster = pick(raw.clusters, clusterName)?.cluster;
  const server = str(cluster?.['server']);
  if (cluster === undefined || server === undefined) throw new CliError(`error: kubeconfig ${path}: context "${name}" has no cluster with a server`);
  const user = pick(raw.users, context.context?.user)?.user ?? {};
  for (const unsupported of ['client-certificate', 'client-certificate-data', 'exec', 'auth-provider', 'username']) {
    if (user[unsupported] !== undefined) throw new CliError(`error: kubeconfig ${path}: user "${context.context?.user ?? ''}" uses ${unsupported}, which stowage does not support (use a token)`);
  }
  const base = dirname(path);
  const resolvePath = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const caData = str(cluster['certificate-authority-data']);
  const caFile = str(cluster['certificate-authority']);
  const caPem = caData !== undefined ? Buffer.from(caData, 'base64').toString('utf8') : caFile !== undefined ? await readCa(resolvePath(caFile)) : undefined;
  const tokenFile = str(user['tokenFile']);
  const token = str(user['token']) ?? (tokenFile === undefined ? undefined : (await readFile(resolvePath(tokenFile), 'utf8')).trim());
  const namespace = str(context.context?.namespace);
  return {
    server,
    ...(caPem === undefined ? {} : { caPem }),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(token === undefined ? {} : { token }),
    ...(namespace === undefined ? {} : { namespace }),
  };
}

/** A CA file's PEM; the one-line error kubectl gives when it cannot be read. */
export async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`error: unable to read certificate-authority ${path} for the server due to ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
