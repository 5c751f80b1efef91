// The CSI gRPC server: serves Identity, Controller and Node on a unix socket,
// turns every RPC into a typed async handler call, and logs, times and maps
// errors of every call in one place. Argument validation is the driver's job.
import { randomBytes } from 'node:crypto';
import { chmod, lstat, unlink } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { parseEndpoint } from './endpoint.js';
import { CsiError, DeadlineExceededError, UnimplementedError, toGrpcStatus, type GrpcStatus } from './errors.js';
import {
  controllerService,
  groupControllerService,
  identityService,
  methodTypes,
  nodeService,
  type ControllerRpcs,
  type GroupControllerRpcs,
  type IdentityRpcs,
  type MethodTypes,
  type NodeRpcs,
  type Rpc,
} from './proto.js';
import { stripSecrets } from './sanitize.js';

/** What a handler gets besides the request. */
export interface CallContext {
  /** Full gRPC method path, e.g. '/csi.v1.Controller/CreateVolume'. */
  method: string;
  /** Short id unique within this process; every log line of the call carries it as `reqId`. */
  requestId: string;
  /** Child logger bound to reqId. */
  log: Logger;
  /** Aborted when the client cancels or the call's deadline passes; reason is a CsiError. */
  signal: AbortSignal;
}

export type Handler<Request, ResponseInput> = (request: Request, ctx: CallContext) => Promise<ResponseInput>;

/** One optional handler per RPC of a service; a missing one answers UNIMPLEMENTED. */
export type ServiceHandlers<Rpcs> = {
  [K in keyof Rpcs]?: Rpcs[K] extends Rpc<unknown, infer Request, infer ResponseInput, unknown>
    ? Handler<Request, ResponseInput>
    : never;
};

export type IdentityService = ServiceHandlers<IdentityRpcs>;
export type ControllerService = ServiceHandlers<ControllerRpcs>;
export type NodeService = ServiceHandlers<NodeRpcs>;
export type GroupControllerService = ServiceHandlers<GroupControllerRpcs>;

/** Reported once per finished call, e.g. to feed a latency histogram. */
export interface CallInfo {
  method: string;
  code: grpc.status;
  seconds: number;
}

export interface CsiServerOptions {
  /** unix:///abs/path, unix:/abs/path or /abs/path. */
  endpoint: string;
  logger: Logger;
  identity: IdentityService;
  controller?: ControllerService;
  node?: NodeService;
  /** Only for plugins that advertise GROUP_CONTROLLER_SERVICE; UNIMPLEMENTED otherwise. */
  groupController?: GroupControllerService;
  onCall?: (info: CallInfo) => void;
  /** Permission bits of the socket file. Default 0o660: owner and group may connect. */
  socketMode?: number;
  /** How long stop() lets in-flight calls finish before cancelling them. Default 30 s. */
  shutdownGraceMs?: number;
}

export interface CsiServer {
  /** Canonical endpoint, unix:///abs/path; CsiClient.connect() accepts it. */
  readonly address: string;
  readonly socketPath: string;
  /** Stops accepting calls, waits for in-flight ones (up to the grace period), removes the socket. */
  stop(): Promise<void>;
}

type AnyHandler = (request: object, ctx: CallContext) => Promise<unknown>;

// Identity RPCs (Probe above all) are polled constantly by liveness probes
// and sidecars; logging them at info would drown everything else.
const QUIET_SERVICE = '/csi.v1.Identity/';

// Codes that mean "our bug or broken environment" rather than a normal answer
// to a bad or racing request (NOT_FOUND, ABORTED, ...), which COs retry.
const ERROR_CODES: ReadonlySet<grpc.status> = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DATA_LOSS]);

function handlerOf(service: object | undefined, name: string): AnyHandler | undefined {
  const candidate: unknown = service === undefined ? undefined : Reflect.get(service, name);
  // The public types guarantee the signature; bind keeps `this` for class-based services.
  return typeof candidate === 'function' ? (candidate as AnyHandler).bind(service) : undefined;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && 'code' in err && err.code === code;
}

/** Removes the socket file at `path` if there is one; refuses to touch anything that is not a socket. */
async function removeSocket(path: string): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) {
      throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    }
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

class CallRunner {
  // Unique within the process; the random prefix keeps two runs apart in aggregated logs.
  private readonly idPrefix = randomBytes(3).toString('hex');
  private seq = 0;

  constructor(
    private readonly logger: Logger,
    private readonly onCall: ((info: CallInfo) => void) | undefined,
  ) {}

  unary(path: string, handler: AnyHandler | undefined): grpc.handleUnaryCall<object, unknown> {
    const types = methodTypes(path);
    return (call, callback) => {
      this.run(path, types, handler, call, callback).catch((err: unknown) => {
        this.logger.error({ err, method: path }, 'CSI call bookkeeping failed');
      });
    };
  }

  private async run(
    method: string,
    types: MethodTypes,
    handler: AnyHandler | undefined,
    call: grpc.ServerUnaryCall<object, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): Promise<void> {
    const started = performance.now();
    const requestId = `${this.idPrefix}-${(++this.seq).toString(36)}`;
    const log = this.logger.child({ reqId: requestId });
    // ctx.signal is built on first use: most handlers never look at it, and an AbortController
    // plus a deadline timer per call are a measurable share of a fast call's CPU.
    let abort: AbortController | undefined;
    let deadlineTimer: NodeJS.Timeout | undefined;
    /** Why the call ended before the handler answered (cancelled, or its deadline passed). */
    let reason: CsiError | undefined;
    const end = (why: CsiError) => {
      if (reason) return;
      reason = why;
      clearTimeout(deadlineTimer);
      abort?.abort(why);
    };
    // grpc-js also signals 'cancelled' when the stream closes after a normal answer: only a
    // cancellation that comes while the handler still works means anything (and is worth an error).
    let answered = false;
    const receivedAt = Date.now();
    call.on('cancelled', () => {
      if (answered) return;
      end(cancelledAtDeadline(Number(call.getDeadline()), receivedAt, Date.now()) ? new DeadlineExceededError('deadline exceeded') : new CsiError(grpc.status.CANCELLED, 'cancelled by the client'));
    });
    const watchDeadline = () => this.watchDeadline(call, end);
    const ctx: CallContext = {
      method,
      requestId,
      log,
      get signal() {
        if (!abort) {
          abort = new AbortController();
          if (reason) abort.abort(reason);
          else if (!answered) deadlineTimer = watchDeadline();
        }
        return abort.signal;
      },
    };

    // Bodies only at debug (ceph-csi keeps them at trace), and only built when they will be
    // written: stripping and serializing a request costs more than the call itself.
    const debug = log.isLevelEnabled('debug');
    if (debug) log.debug({ method, request: stripSecrets(types.request, call.request) }, 'GRPC call');
    else if (!method.startsWith(QUIET_SERVICE)) log.info({ method }, 'GRPC call');

    let response: object | undefined;
    let failure: unknown;
    let status: GrpcStatus = { code: grpc.status.OK, details: '' };
    try {
      response = await invoke(method, handler, call.request, ctx);
    } catch (err) {
      failure = err;
      status = toGrpcStatus(err);
    }
    answered = true;
    clearTimeout(deadlineTimer);

    if (response) {
      if (debug) log.debug({ method, response: stripSecrets(types.response, response), seconds: elapsed(started) }, 'GRPC response');
      callback(null, response);
    } else {
      // A CsiError is an intended answer: its message says it all. Anything
      // else is unexpected: log the error itself so pino keeps the stack.
      const err = failure instanceof CsiError ? failure.message : failure;
      log[ERROR_CODES.has(status.code) ? 'error' : 'warn'](
        { method, code: grpc.status[status.code], err, seconds: elapsed(started) },
        'GRPC error',
      );
      callback({ code: status.code, details: status.details });
    }

    // Report what the client saw: if it gave up first, its cancel/deadline code.
    const code = reason ? reason.code : status.code;
    try {
      this.onCall?.({ method, code, seconds: elapsed(started) });
    } catch (err) {
      log.warn({ err }, 'onCall hook failed');
    }
  }

  /**
   * grpc-js answers DEADLINE_EXCEEDED itself and then signals 'cancelled'; this timer makes sure a
   * handler that watches ctx.signal hears of it at the deadline itself.
   */
  private watchDeadline(call: grpc.ServerUnaryCall<object, unknown>, end: (why: CsiError) => void): NodeJS.Timeout | undefined {
    const remaining = Number(call.getDeadline()) - Date.now();
    if (!Number.isFinite(remaining)) return undefined;
    // unref: a handler that never returns must not keep the process alive through this timer.
    return setTimeout(() => end(new DeadlineExceededError('deadline exceeded')), Math.max(0, remaining)).unref();
  }
}

async function invoke(method: string, handler: AnyHandler | undefined, request: object, ctx: CallContext): Promise<object> {
  if (!handler) throw new UnimplementedError(`${method} is not implemented by this plugin`);
  const response = await handler(request, ctx);
  if (typeof response !== 'object' || response === null) {
    throw new TypeError(`${method} handler returned ${String(response)} instead of a response message`);
  }
  return response;
}

function elapsed(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}

function implementation(
  definition: grpc.ServiceDefinition,
  service: object | undefined,
  runner: CallRunner,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    impl[name] = runner.unary(method.path, handlerOf(service, name));
  }
  return impl;
}

function bind(server: grpc.Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
}

function shutdown(server: grpc.Server, graceMs: number, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      log.warn({ graceMs }, 'in-flight CSI calls did not finish in time; cancelling them');
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Starts serving CSI on the endpoint's unix socket. All three services are
 * registered even when not provided, so that every call, including the ones
 * answered UNIMPLEMENTED, is logged and reported to onCall.
 */
export async function startCsiServer(options: CsiServerOptions): Promise<CsiServer> {
  const socketPath = parseEndpoint(options.endpoint);
  const address = `unix://${socketPath}`;
  const log = options.logger;
  const runner = new CallRunner(log, options.onCall);

  // No channelz: nothing here serves it, and its per-call bookkeeping (counters, timestamps, a
  // tracker object per call) is pure overhead on the hot path.
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.addService(identityService, implementation(identityService, options.identity, runner));
  server.addService(controllerService, implementation(controllerService, options.controller, runner));
  server.addService(nodeService, implementation(nodeService, options.node, runner));
  server.addService(groupControllerService, implementation(groupControllerService, options.groupController, runner));

  await removeSocket(socketPath);
  await bind(server, address);
  try {
    await chmod(socketPath, options.socketMode ?? 0o660);
  } catch (err) {
    server.forceShutdown();
    throw err;
  }
  log.info({ endpoint: address }, 'CSI server listening');

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    await shutdown(server, options.shutdownGraceMs ?? 30_000, log);
    await removeSocket(socketPath);
    log.info({ endpoint: address }, 'CSI server stopped');
  };
  return {
    address,
    socketPath,
    stop: () => (stopping ??= stop()),
  };
}

/**
 * Whether a cancellation that arrives at `now` is the client's deadline passing. The client's
 * deadline runs from when it sent the call, the server's (grpc-timeout) from when it received it,
 * so the client's cancel arrives a little before the server's deadline: within a tenth of the
 * timeout (at least 50 ms) counts as the deadline. A client that cancels on purpose that close to
 * its deadline is told DEADLINE_EXCEEDED, which is what it was about to get anyway.
 */
export function cancelledAtDeadline(deadline: number, receivedAt: number, now: number): boolean {
  if (!Number.isFinite(deadline)) return false;
  const slack = Math.max(50, (deadline - receivedAt) / 10);
  return deadline - now <= slack;
}
