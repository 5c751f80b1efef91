// A promise-based client for any CSI plugin (ours or a third party's): one
// channel to the plugin's unix socket, every unary RPC of Identity, Controller
// and Node as a typed method, every failure as a typed CsiError.
import * as grpc from '@grpc/grpc-js';
import type { CsiCallObserver } from './call-journal.js';
import { parseEndpoint } from './endpoint.js';
import { CsiError, UnavailableError, fromServiceError } from './errors.js';
import {
  controllerService,
  groupControllerService,
  identityService,
  nodeService,
  type ControllerRpcs,
  type GroupControllerRpcs,
  type IdentityRpcs,
  type NodeRpcs,
  type Rpc,
} from './proto.js';

export interface CallOptions {
  /** Deadline for this call; defaults to the client's timeoutMs. */
  timeoutMs?: number;
  /** Cancels the call; it then rejects with a CsiError whose code is CANCELLED. */
  signal?: AbortSignal;
}

/** One promise method per RPC: input-shaped request in, decoded response out. */
export type ServiceCallers<Rpcs> = {
  [K in keyof Rpcs]: Rpcs[K] extends Rpc<infer RequestInput, unknown, unknown, infer Response>
    ? (request: RequestInput, options?: CallOptions) => Promise<Response>
    : never;
};

export type IdentityCallers = ServiceCallers<IdentityRpcs>;
export type ControllerCallers = ServiceCallers<ControllerRpcs>;
export type NodeCallers = ServiceCallers<NodeRpcs>;
export type GroupControllerCallers = ServiceCallers<GroupControllerRpcs>;

export interface CsiClientOptions {
  /** Default per-call deadline. Default 30 s. */
  timeoutMs?: number;
  /** Told of every finished call (method, request, answer, timing, status): the control plane's CSI call journal. */
  observer?: CsiCallObserver;
}

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/**
 * Each client owns its connection: grpc-js otherwise shares one connection per address between
 * all channels of the process, with its reconnect backoff, so a client that dialled a plugin
 * before it listened (a controller during a restart) made every later client of that socket fail
 * at once with UNAVAILABLE until the backoff ran out — registration included. And a plugin is a
 * local socket that comes back quickly after a restart: reconnecting is retried after at most 2 s
 * rather than grpc's 120 s.
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
};

type Caller = (request: object, options?: CallOptions) => Promise<unknown>;

export class CsiClient {
  readonly identity: IdentityCallers;
  readonly controller: ControllerCallers;
  readonly node: NodeCallers;
  readonly groupController: GroupControllerCallers;

  /** The plugin's socket path. */
  readonly socketPath: string;
  private readonly channel: grpc.Client;
  private readonly timeoutMs: number;
  private readonly observer: CsiCallObserver | undefined;

  /**
   * A client for the plugin at `endpoint` (unix:///abs/path, unix:/abs/path
   * or /abs/path). Connecting is lazy: nothing is dialled until the first
   * call or waitForReady().
   */
  constructor(endpoint: string, options: CsiClientOptions = {}) {
    this.socketPath = parseEndpoint(endpoint);
    this.channel = new grpc.Client(`unix://${this.socketPath}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.observer = options.observer;
    this.identity = this.callers(identityService);
    this.controller = this.callers(controllerService);
    this.node = this.callers(nodeService);
    this.groupController = this.callers(groupControllerService);
  }

  /** Same as the constructor; reads better at call sites. */
  static connect(endpoint: string, options: CsiClientOptions = {}): CsiClient {
    return new CsiClient(endpoint, options);
  }

  /** Resolves once the socket accepts a connection; rejects with UnavailableError after timeoutMs. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.channel.waitForReady(Date.now() + timeoutMs, (err) => {
        if (!err) return resolve();
        reject(new UnavailableError(`CSI plugin at ${this.socketPath} not ready within ${timeoutMs} ms: ${err.message}`, { cause: err }));
      });
    });
  }

  close(): void {
    this.channel.close();
  }

  private callers<T>(definition: grpc.ServiceDefinition): T {
    const callers: Record<string, Caller> = {};
    for (const [name, method] of Object.entries(definition)) {
      callers[name] = (request, options) => this.unary(method, request, options);
    }
    // Built from the same definitions the Rpc types are generated from.
    return callers as T;
  }

  private unary(method: grpc.MethodDefinition<object, unknown>, request: object, options: CallOptions = {}): Promise<unknown> {
    const { signal } = options;
    if (signal?.aborted) {
      return Promise.reject(new CsiError(grpc.status.CANCELLED, `${method.path} cancelled before it started`));
    }
    const started = Date.now();
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = this.channel.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + (options.timeoutMs ?? this.timeoutMs) },
        (err, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (this.observer !== undefined) this.tell(method.path, request, response, started, performance.now() - t0, err);
          if (err) reject(fromServiceError(err));
          else resolve(response);
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private tell(path: string, request: object, response: unknown, started: number, durationMs: number, err: grpc.ServiceError | null): void {
    try {
      this.observer?.({
        method: path.slice(path.lastIndexOf('/') + 1),
        endpoint: this.socketPath,
        request,
        response,
        started,
        durationMs,
        code: err ? err.code : grpc.status.OK,
        ...(err ? { message: err.details } : {}),
      });
    } catch {
      // An observer's failure is never the call's.
    }
  }
}
