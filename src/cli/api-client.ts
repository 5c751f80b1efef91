// A small typed client for the control plane's HTTP API: Kubernetes REST paths from the registry,
// over http://HOST:PORT or a unix socket (unix:///path), with an optional bearer token. Failures
// become ApiStatusError (the server's Status) or ConnectionError, each with a one-line message.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { resourceForName, type ResourceInfo } from '../control/api/registry.js';
import type { KubeList, KubeObject, Status } from '../control/api/types/meta.js';
import { USER_AGENT } from './version.js';

export interface ApiClientOptions {
  /** "http://127.0.0.1:8080", "http://[::1]:8080" or "unix:///path/api.sock". */
  server: string;
  token?: string;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
}

export interface ListOptions {
  /** A namespace; all namespaces when absent (namespaced resources only). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
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
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

type Target = { socketPath: string; host: string; port?: undefined } | { socketPath?: undefined; host: string; port: number };

function parseServer(server: string): Target {
  if (server.startsWith('unix://') || server.startsWith('unix:')) {
    const socketPath = server.startsWith('unix://') ? server.slice('unix://'.length) : server.slice('unix:'.length);
    if (!socketPath.startsWith('/')) throw new ConnectionError(`server "${server}" needs an absolute socket path: unix:///path/to/api.sock`);
    return { socketPath, host: 'localhost' };
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ConnectionError(`server "${server}" is neither http://HOST:PORT nor unix:///path`);
  }
  if (url.protocol !== 'http:') throw new ConnectionError(`server "${server}": only http:// and unix:// are supported`);
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 80 : Number(url.port) };
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

  constructor(options: ApiClientOptions) {
    this.server = options.server;
    this.target = parseServer(options.server);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** One request; resolves with the parsed JSON body of a 2xx answer, rejects with ApiStatusError otherwise. */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { Accept: 'application/json', 'User-Agent': USER_AGENT };
    if (payload !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = payload.length;
    }
    if (this.token) headers['Authorization'] = `Bearer ${this.token}`;
    const res = await new Promise<{ status: number; text: string; type: string }>((resolve, reject) => {
      const req = httpRequest({ ...this.target, method, path, headers, timeout: this.timeoutMs }, (r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), type: r.headers['content-type'] ?? '' }));
        r.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new ConnectionError(`the server ${this.server} did not answer ${method} ${path} within ${this.timeoutMs / 1000}s`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof ConnectionError ? err : this.connectionError(err)));
      req.end(payload);
    });
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
