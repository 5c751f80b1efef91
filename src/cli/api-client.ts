// A small typed client for the control plane's HTTP API: Kubernetes REST paths from the registry,
// over https://HOST:PORT (verifying the server against a given CA, else the system's), http://HOST:PORT
// or a unix socket (unix:///path), with an optional bearer token. Failures become ApiStatusError (the
// server's Status) or ConnectionError, each with a one-line message (a TLS failure names the
// certificate problem as kubectl does).
import { type ClientRequest, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { getCACertificates } from 'node:tls';
import { resourceForName, type ResourceInfo } from '../control/api/registry.js';
import type { KubeList, KubeObject, Status } from '../control/api/types/meta.js';
import { USER_AGENT } from './version.js';

export interface ApiClientOptions {
  /** "https://127.0.0.1:6443", "http://127.0.0.1:8080", "http://[::1]:8080" or "unix:///path/api.sock". */
  server: string;
  token?: string;
  /** PEM of the CA(s) an https:// server's certificate must chain to; the system's (and Node's bundled) CAs when absent. */
  caPem?: string;
  /** https:// without verifying the server's certificate (kubectl's --insecure-skip-tls-verify); refused together with caPem. */
  insecureSkipTlsVerify?: boolean;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
  /** Sent as ?fieldValidation on creates, updates and patches (kubectl's --validate); the server's default (Warn) when absent. */
  fieldValidation?: 'Strict' | 'Warn' | 'Ignore';
  /** Called with the text of each `Warning: 299 - "…"` header an answer carries (kubectl prints "Warning: <text>"). */
  onWarning?: (text: string) => void;
}

/** The texts of RFC 7234 warning headers as kube-apiserver sends them: `299 - "unknown field \"x\""`. */
export function warningTexts(header: string | string[] | undefined): string[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const out: string[] = [];
  for (const value of values) {
    for (const m of value.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) out.push((m[1] ?? '').replace(/\\(.)/g, '$1'));
  }
  return out;
}

export interface ListOptions {
  /** A namespace; all namespaces when absent (namespaced resources only). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface WatchOptions extends ListOptions {
  /** Events after this version ("" or absent: an ADDED event for every current object first). */
  resourceVersion?: string;
  /** Ask for BOOKMARK events (an object with only metadata.resourceVersion). */
  allowWatchBookmarks?: boolean;
  /** The server ends the stream after this long. */
  timeoutSeconds?: number;
}

/** One event of a watch stream; ERROR carries a Status (410 Expired: the version is too old). */
export type ClientWatchEvent<T extends KubeObject = KubeObject> =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: T }
  | { type: 'ERROR'; object: Status };

/** An open watch stream. */
export interface WatchHandle {
  /** Settles when the stream ends: resolves when the server ends it or stop() is called, rejects when the connection fails. */
  readonly done: Promise<void>;
  stop(): void;
}

export interface DeleteOptions {
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
  gracePeriodSeconds?: number;
}

/** An error answer from the server: its Status, as kubectl shows it. */
export class ApiStatusError extends Error {
  readonly status: Status;

  constructor(status: Status) {
    super(status.message ?? `the server answered ${status.code}`);
    this.name = 'ApiStatusError';
    this.status = status;
  }

  get code(): number {
    return this.status.code;
  }

  get reason(): string {
    return this.status.reason ?? '';
  }
}

/** The server could not be reached (or answered something that is not HTTP/JSON). */
export class ConnectionError extends Error {
  /** The message is kubectl's whole line ("Unable to connect to the server: …"), printed without "error: ". */
  readonly verbatim: boolean;

  constructor(message: string, verbatim = false) {
    super(message);
    this.name = 'ConnectionError';
    this.verbatim = verbatim;
  }
}

type Target = { socketPath: string; host: string; port?: undefined; tls: false } | { socketPath?: undefined; host: string; port: number; tls: boolean };

function parseServer(server: string): Target {
  if (server.startsWith('unix://') || server.startsWith('unix:')) {
    const socketPath = server.startsWith('unix://') ? server.slice('unix://'.length) : server.slice('unix:'.length);
    if (!socketPath.startsWith('/')) throw new ConnectionError(`server "${server}" needs an absolute socket path: unix:///path/to/api.sock`);
    return { socketPath, host: 'localhost', tls: false };
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ConnectionError(`server "${server}" is neither https://HOST:PORT, http://HOST:PORT nor unix:///path`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConnectionError(`server "${server}": only https://, http:// and unix:// are supported`);
  const tls = url.protocol === 'https:';
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? (tls ? 443 : 80) : Number(url.port), tls };
}

/** IPv6 in Go's (compressed) spelling, IPv4 and names as they are. */
function goIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip;
  }
}

/** Go's x509.HostnameError: the names the certificate is valid for (its IP SANs for an IP host, else its DNS SANs). */
function nameMismatch(host: string, subjectAltName: string): string {
  const entries = subjectAltName.split(', ').filter((e) => e !== '');
  if (isIP(host) !== 0) {
    const ips = entries.filter((e) => e.startsWith('IP Address:')).map((e) => goIp(e.slice('IP Address:'.length)));
    return ips.length === 0 ? `cannot validate certificate for ${host} because it doesn't contain any IP SANs` : `certificate is valid for ${ips.join(', ')}, not ${host}`;
  }
  const names = entries.filter((e) => e.startsWith('DNS:')).map((e) => e.slice('DNS:'.length));
  return names.length === 0 ? `certificate is not valid for any names, but wanted to match ${host}` : `certificate is valid for ${names.join(', ')}, not ${host}`;
}

/**
 * A TLS failure in Go's words, as kubectl prints it after "Unable to connect to the server: ";
 * undefined for errors that are not about the server's certificate or the TLS handshake.
 */
export function tlsProblem(err: NodeJS.ErrnoException, host: string): string | undefined {
  switch (err.code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `tls: failed to verify certificate: x509: ${nameMismatch(host, (err as { cert?: { subjectaltname?: string } }).cert?.subjectaltname ?? '')}`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return 'http: server gave HTTP response to HTTPS client';
    default: {
      if (!err.code?.startsWith('ERR_SSL_') && err.code !== 'EPROTO') return undefined;
      // OpenSSL's reason, without its file and line: "...:SSL routines:FUNCTION:REASON:file.c:77:".
      const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1] ?? err.message;
      return reason === 'wrong version number' ? 'http: server gave HTTP response to HTTPS client' : `tls: ${reason}`;
    }
  }
}

let trustedByDefault: string[] | undefined;

/**
 * The CAs an https:// server is checked against when none is given: the operating system's store
 * (where update-ca-certificates puts a local CA, which kubectl trusts) and Node's bundled roots.
 */
function defaultCas(): string[] {
  trustedByDefault ??= [...new Set([...getCACertificates('system'), ...getCACertificates('default')])];
  return trustedByDefault;
}

/** The resource a user names on the command line ("pvc", "pv", "storageclasses", "sc"…). */
export function resolveResource(name: string): ResourceInfo {
  const r = resourceForName(name);
  if (r === undefined) throw new ResourceTypeError(name);
  return r;
}

/** kubectl's message for a kind it has never heard of. */
export class ResourceTypeError extends Error {
  constructor(name: string) {
    super(`the server doesn't have a resource type "${name}"`);
    this.name = 'ResourceTypeError';
  }
}

/** The URL path of a resource's collection or item, e.g. /api/v1/namespaces/default/persistentvolumeclaims/x. */
export function resourcePath(resource: ResourceInfo, namespace?: string, name?: string): string {
  const base = resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const ns = resource.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${resource.plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

export class ApiClient {
  readonly server: string;
  private readonly target: Target;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly tls: { ca?: string | string[]; rejectUnauthorized: boolean };
  private readonly fieldValidation: ApiClientOptions['fieldValidation'];
  private readonly onWarning: ((text: string) => void) | undefined;

  constructor(options: ApiClientOptions) {
    this.server = options.server;
    this.fieldValidation = options.fieldValidation;
    this.onWarning = options.onWarning;
    this.target = parseServer(options.server);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    // kubectl's rule: a CA and skipping verification contradict each other.
    if (options.insecureSkipTlsVerify && options.caPem !== undefined) throw new ConnectionError('specifying a root certificates file with the insecure flag is not allowed');
    const ca = options.caPem ?? (this.target.tls && !options.insecureSkipTlsVerify ? defaultCas() : undefined);
    this.tls = { ...(ca === undefined ? {} : { ca }), rejectUnauthorized: !options.insecureSkipTlsVerify };
  }

  /** Starts a request over the server's transport (https, http or a unix socket). */
  private send(method: string, path: string, headers: Record<string, string | number>, timeoutMs: number, onResponse: (r: IncomingMessage) => void): ClientRequest {
    const { tls, ...where } = this.target;
    const options: RequestOptions = { ...where, method, path, headers, ...(timeoutMs > 0 ? { timeout: timeoutMs } : {}) };
    return tls ? httpsRequest({ ...options, ...this.tls }, onResponse) : httpRequest(options, onResponse);
  }

  private headers(accept = 'application/json'): Record<string, string | number> {
    const headers: Record<string, string | number> = { Accept: accept, 'User-Agent': USER_AGENT };
    if (this.token) headers['Authorization'] = `Bearer ${this.token}`;
    return headers;
  }

  /** One request; resolves with the parsed JSON body of a 2xx answer, rejects with ApiStatusError otherwise. */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (this.fieldValidation !== undefined && (method === 'POST' || method === 'PUT' || method === 'PATCH')) {
      path = `${path}${path.includes('?') ? '&' : '?'}fieldValidation=${this.fieldValidation}`;
    }
    const headers = this.headers();
    if (payload !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = payload.length;
    }
    const res = await new Promise<{ status: number; text: string; type: string }>((resolve, reject) => {
      const req = this.send(method, path, headers, this.timeoutMs, (r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), type: r.headers['content-type'] ?? '' }));
        r.on('error', reject);
        if (this.onWarning !== undefined) for (const text of warningTexts(r.headers['warning'])) this.onWarning(text);
      });
      req.on('timeout', () => req.destroy(new ConnectionError(`the server ${this.server} did not answer ${method} ${path} within ${this.timeoutMs / 1000}s`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof ConnectionError ? err : this.connectionError(err)));
      req.end(payload);
    });
    return this.answer<T>(method, path, res);
  }

  /** The parsed JSON of a 2xx answer; ApiStatusError (the server's Status) otherwise. */
  private answer<T>(method: string, path: string, res: { status: number; text: string; type: string }): T {
    let parsed: unknown;
    if (res.type.startsWith('application/json')) {
      try {
        parsed = JSON.parse(res.text);
      } catch {
        throw new ConnectionError(`the server ${this.server} sent invalid JSON for ${method} ${path}`);
      }
    }
    if (res.status >= 200 && res.status < 300) {
      if (parsed === undefined) throw new ConnectionError(`the server ${this.server} answered ${method} ${path} with ${res.type || 'no content type'}, not JSON`);
      return parsed as T;
    }
    const status = parsed as Partial<Status> | undefined;
    if (status?.kind === 'Status') throw new ApiStatusError({ ...status, code: status.code ?? res.status } as Status);
    throw new ApiStatusError({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      code: res.status,
      reason: res.status === 401 ? 'Unauthorized' : res.status === 404 ? 'NotFound' : 'Unknown',
      message: res.text.trim() || `the server answered ${res.status}`,
    });
  }

  private connectionError(err: NodeJS.ErrnoException): ConnectionError {
    const where = this.target.socketPath ?? `${this.target.host}:${this.target.port}`;
    const tls = this.target.tls ? tlsProblem(err, this.target.host) : undefined;
    if (tls !== undefined) return new ConnectionError(`Unable to connect to the server: ${tls}`, true);
    if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') {
      return new ConnectionError(`the connection to the server ${where} was refused - is the control plane running (stowage up)?`);
    }
    return new ConnectionError(`the server ${where} could not be reached: ${err.message}`);
  }

  get<T extends KubeObject = KubeObject>(resource: ResourceInfo, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(resource, namespace, name));
  }

  /** The object, or undefined when the server says NotFound. */
  async find<T extends KubeObject = KubeObject>(resource: ResourceInfo, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.get<T>(resource, namespace, name);
    } catch (err) {
      if (err instanceof ApiStatusError && err.code === 404 && err.status.details?.name === name) return undefined;
      throw err;
    }
  }

  list<T extends KubeObject = KubeObject>(resource: ResourceInfo, options: ListOptions = {}): Promise<KubeList<T>> {
    const query = new URLSearchParams();
    if (options.labelSelector) query.set('labelSelector', options.labelSelector);
    if (options.fieldSelector) query.set('fieldSelector', options.fieldSelector);
    const qs = query.size > 0 ? `?${query.toString()}` : '';
    return this.request<KubeList<T>>('GET', `${resourcePath(resource, options.namespace)}${qs}`);
  }

  /**
   * Opens a watch (?watch=1) and calls onEvent for every event, in order. Resolves once the server
   * has accepted it; rejects with ApiStatusError when it refuses (410 Expired for a version older
   * than its event history) or ConnectionError when it cannot be reached.
   */
  watch<T extends KubeObject = KubeObject>(resource: ResourceInfo, options: WatchOptions, onEvent: (event: ClientWatchEvent<T>) => void): Promise<WatchHandle> {
    const query = new URLSearchParams({ watch: '1' });
    if (options.labelSelector) query.set('labelSelector', options.labelSelector);
    if (options.fieldSelector) query.set('fieldSelector', options.fieldSelector);
    if (options.resourceVersion) query.set('resourceVersion', options.resourceVersion);
    if (options.allowWatchBookmarks) query.set('allowWatchBookmarks', 'true');
    if (options.timeoutSeconds !== undefined) query.set('timeoutSeconds', String(options.timeoutSeconds));
    const path = `${resourcePath(resource, options.namespace)}?${query.toString()}`;
    return new Promise<WatchHandle>((resolveOpen, rejectOpen) => {
      let opened = false;
      let stopped = false;
      let endStream: () => void = () => undefined;
      let failStream: (err: Error) => void = () => undefined;
      const done = new Promise<void>((resolve, reject) => {
        endStream = resolve;
        failStream = reject;
      });
      // A caller that only ever stops the watch must not meet an unhandled rejection.
      done.catch(() => undefined);
      // Until the server answers, a failure rejects the open; after, it ends the stream.
      const fail = (err: Error): void => {
        if (!opened) rejectOpen(err);
        else if (stopped) endStream();
        else failStream(err);
      };
      // No idle timeout: a watch is quiet for as long as nothing changes.
      const req = this.send('GET', path, this.headers(), 0, (r: IncomingMessage) => {
        const status = r.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => {
            try {
              this.answer('GET', path, { status, text: Buffer.concat(chunks).toString('utf8'), type: r.headers['content-type'] ?? '' });
              rejectOpen(new ConnectionError(`the server ${this.server} answered a watch with ${status}`));
            } catch (err) {
              rejectOpen(err as Error);
            }
          });
          return;
        }
        opened = true;
        resolveOpen({
          done,
          stop: () => {
            stopped = true;
            req.destroy();
            endStream();
          },
        });
        let pending = '';
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => {
          pending += chunk;
          for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            if (line === '' || stopped) continue;
            let event: ClientWatchEvent<T>;
            try {
              event = JSON.parse(line) as ClientWatchEvent<T>;
            } catch {
              req.destroy(new ConnectionError(`the server ${this.server} sent an invalid watch event for ${path}`));
              return;
            }
            onEvent(event);
          }
        });
        r.on('end', () => endStream());
        r.on('error', (err: Error) => fail(err));
        r.on('close', () => endStream());
      });
      req.on('error', (err: NodeJS.ErrnoException) => fail(err instanceof ConnectionError ? err : this.connectionError(err)));
      req.end();
    });
  }

  create<T extends KubeObject>(resource: ResourceInfo, obj: T): Promise<T> {
    return this.request<T>('POST', resourcePath(resource, obj.metadata.namespace), obj);
  }

  /** PUT: replaces the object (conditional on metadata.resourceVersion when set). */
  replace<T extends KubeObject>(resource: ResourceInfo, obj: T): Promise<T> {
    return this.request<T>('PUT', resourcePath(resource, obj.metadata.namespace, obj.metadata.name ?? ''), obj);
  }

  /** A JSON merge patch (RFC 7386). */
  patch<T extends KubeObject = KubeObject>(resource: ResourceInfo, namespace: string | undefined, name: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', resourcePath(resource, namespace, name), patch, 'application/merge-patch+json');
  }

  /** Deletes; resolves with the object's last state (still present while finalizers hold it). */
  delete<T extends KubeObject = KubeObject>(resource: ResourceInfo, namespace: string | undefined, name: string, options: DeleteOptions = {}): Promise<T> {
    const body = { kind: 'DeleteOptions', apiVersion: 'v1', ...options };
    return this.request<T>('DELETE', resourcePath(resource, namespace, name), body);
  }
}
