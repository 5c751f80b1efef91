// /api/v1/namespaces/{ns}/pods/{name}/exec: a command in a running container, as `kubectl exec`
// reaches it. kubectl (1.30 and later) speaks the WebSocket protocol v5.channel.k8s.io: a GET
// upgraded to a WebSocket whose binary messages start with the stream's number (0 stdin, 1 stdout,
// 2 stderr, 3 error, 4 resize; 255 + n: the client closed stream n, so stdin's end reaches the
// command), and v4.channel.k8s.io without that close signal. The error stream carries the result
// as a metav1.Status, then the connection closes normally: Success, or Failure with reason
// NonZeroExitCode and an ExitCode cause (kubectl exits with that code and prints "command
// terminated with exit code N"). SPDY (the older transport kubectl falls back to when the upgrade
// fails) is not served: a request that is not a WebSocket upgrade gets kube-apiserver's 400
// "Upgrade request required".
//
// PodExecOptions come from the query: command (repeated, required), container (required when the
// pod has several), stdin, stdout, stderr (at least one), tty (accepted; the runtime has no
// terminals, so output stays on stdout and stderr as they are). Refusals are the API server's and
// the kubelet's words. The pods of `stowage up` run on this machine: the caller (control-plane.ts)
// starts the command in the container (`PodExecutor`), so this file knows nothing of the runtime.
import type { ChildProcess } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Pod } from '../api/types/core.js';
import { type ApiError, BadRequestError, NotFoundError, toStatus } from '../store/errors.js';
import type { Store } from '../store/store.js';

/**
 * Starts the command in the pod's container, or throws an Error whose message says why it cannot.
 * The child leads a process group of its own (spawned detached), so that ending it ends whatever
 * it started too (nsenter forks the command into the container: killing nsenter alone leaves it).
 */
export type PodExecutor = ((pod: Pod, container: string, command: string[], stdin: boolean) => ChildProcess) & {
  /**
   * Throws ContainerUnavailableError when the container cannot run a command now (not started, or
   * exited): checked before the upgrade, as the kubelet refuses such a request.
   */
  check?: (pod: Pod, container: string) => void;
};

/**
 * The kubelet's refusal of an exec into a container that is not running: HTTP 500 with its error
 * as plain text, `container not found ("<name>")`, which the API server passes on and kubectl
 * shows as "error: unable to upgrade connection: container not found ("<name>")".
 */
export class ContainerUnavailableError extends Error {
  override readonly name = 'ContainerUnavailableError';
  constructor(container: string, options?: ErrorOptions) {
    super(`container not found (${JSON.stringify(container)})`, options);
  }
}

export const PROTOCOL_V5 = 'v5.channel.k8s.io';
export const PROTOCOL_V4 = 'v4.channel.k8s.io';
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const CLOSE = 255;
/** Output queued for a client past this is not read from the command until the client catches up. */
export const OUTPUT_HIGH_WATER = 1024 * 1024;
/** The largest message a client may send (kubectl sends stdin in 32 KiB pieces). */
const MAX_MESSAGE = 16 * 1024 * 1024;

/** Ends the command and everything it started (its process group; the child alone if it leads none). */
function kill(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
      return;
    } catch {
      // Not a group leader: the child alone.
    }
  }
  child.kill('SIGKILL');
}

export interface ExecOptions {
  container: string | undefined;
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  if (v === null || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw new BadRequestError(`invalid value for ${name}: "${v}"`);
}

export function parseExecOptions(query: URLSearchParams): ExecOptions {
  const command = query.getAll('command');
  const options = { container: query.get('container') || undefined, command, stdin: flag(query, 'stdin'), stdout: flag(query, 'stdout'), stderr: flag(query, 'stderr'), tty: flag(query, 'tty') };
  if (command.length === 0) throw new BadRequestError('you must specify at least one command for the container');
  if (!options.stdin && !options.stdout && !options.stderr) throw new BadRequestError('you must specify at least 1 of stdin, stdout, stderr');
  return options;
}

const podResource = (): ResourceInfo => resourceForName('pods') as ResourceInfo;

/** The pod and container the request names, or the API server's refusal. */
export function execTarget(store: Store, namespace: string, name: string, options: ExecOptions): { pod: Pod; container: string } {
  const pod = store.get('pods', namespace, name) as Pod | undefined;
  if (pod === undefined) throw new NotFoundError(podResource(), name);
  const names = pod.spec.containers.map((c) => c.name);
  const all = [...(pod.spec.initContainers ?? []).map((c) => c.name), ...names];
  let container = options.container;
  if (container === undefined) {
    if (names.length !== 1) throw new BadRequestError(`a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]`);
    container = names[0] as string;
  } else if (!all.includes(container)) throw new BadRequestError(`container ${container} is not valid for pod ${name}`);
  if (!pod.spec.nodeName) throw new BadRequestError(`pod ${name} does not have a host assigned`);
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') throw new BadRequestError(`cannot exec into a container in a completed pod; current phase is ${phase}`);
  return { pod, container };
}

/** The result on the error stream (remotecommand's v4 error protocol). */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null, command: readonly string[]): object {
  const exitCode = code ?? (signal === null ? 1 : 128 + (SIGNALS[signal] ?? 9));
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };

/** An HTTP answer on a socket that was never upgraded (the upgrade's refusal). */
export function refuseUpgrade(socket: Duplex, err: unknown): void {
  if (err instanceof ContainerUnavailableError) {
    const text = err.message;
    socket.end(`HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    return;
  }
  const status = toStatus(err);
  const body = JSON.stringify(status);
  const reason = (err as ApiError | undefined)?.reason ?? 'Error';
  socket.end(`HTTP/1.1 ${status.code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The server side of one API server's exec upgrades. */
export class ExecUpgrades {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE,
    // kubectl offers v5 only; older clients v4 (and the plain channel protocols, not served).
    handleProtocols: (offered) => (offered.has(PROTOCOL_V5) ? PROTOCOL_V5 : offered.has(PROTOCOL_V4) ? PROTOCOL_V4 : false),
  });
  private readonly live = new Set<ChildProcess>();

  constructor(
    private readonly store: Store,
    private readonly executor: PodExecutor | undefined,
  ) {}

  /** Upgrades an authorized request for a pod's exec; answers with the refusal otherwise. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer, namespace: string, name: string, query: URLSearchParams): void {
    let target: { pod: Pod; container: string };
    let options: ExecOptions;
    try {
      options = parseExecOptions(query);
      target = execTarget(this.store, namespace, name, options);
      if (this.executor === undefined) throw new BadRequestError('this API server cannot reach the pod\'s node to run commands');
      this.executor.check?.(target.pod, target.container);
      const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      if (!protocols.includes(PROTOCOL_V5) && !protocols.includes(PROTOCOL_V4)) {
        throw new BadRequestError(`unsupported streaming protocol: ask for ${PROTOCOL_V5} or ${PROTOCOL_V4}`);
      }
    } catch (err) {
      refuseUpgrade(socket, err);
      return;
    }
    const executor = this.executor;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.run(ws, executor, target, options));
  }

  /** Ends every running command (the server is closing). */
  closeAll(): void {
    for (const child of this.live) kill(child);
    for (const ws of this.wss.clients) ws.terminate();
  }

  private run(ws: WebSocket, executor: PodExecutor, target: { pod: Pod; container: string }, options: ExecOptions): void {
    const v5 = ws.protocol === PROTOCOL_V5;
    // A bad frame or an oversized message: ws closes the connection ('close' below ends the command).
    ws.on('error', () => undefined);
    // Backpressure: a slow client pauses the command's output (its pipe fills, and it waits), rather
    // than the server holding all of it in memory; each write's completion may let it go on.
    const paused = new Set<NodeJS.ReadableStream>();
    const drained = (): void => {
      if (paused.size === 0 || ws.bufferedAmount > OUTPUT_HIGH_WATER / 2) return;
      for (const stream of paused) stream.resume();
      paused.clear();
    };
    const send = (stream: number, data: Buffer): void => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.of(stream), data]), { binary: true }, drained);
    };
    const finish = (status: object): void => {
      if (ws.readyState !== ws.OPEN) return;
      send(ERROR, Buffer.from(JSON.stringify(status)));
      ws.close(1000);
    };
    let child: ChildProcess;
    try {
      child = executor(target.pod, target.container, options.command, options.stdin);
    } catch (err) {
      // The kubelet's words for a container it cannot run the command in.
      finish({ metadata: {}, status: 'Failure', message: (err as Error).message, reason: 'InternalError', code: 500 });
      return;
    }
    this.live.add(child);
    // Output streams end before the result is sent: the client reads them to their end first.
    let open = 0;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    const settle = (): void => {
      if (open > 0 || (exit === undefined && spawnError === undefined)) return;
      this.live.delete(child);
      if (spawnError !== undefined) finish({ metadata: {}, status: 'Failure', message: `error executing command [${options.command.join(' ')}]: ${spawnError.message}`, reason: 'InternalError', code: 500 });
      else finish(exitStatus(exit?.code ?? null, exit?.signal ?? null, options.command));
    };
    const pipe = (stream: NodeJS.ReadableStream | null, id: number | undefined): void => {
      if (stream === null) return;
      open++;
      stream.on('data', (chunk: Buffer) => {
        if (id === undefined) return;
        send(id, chunk);
        if (ws.bufferedAmount > OUTPUT_HIGH_WATER) {
          stream.pause();
          paused.add(stream);
        }
      });
      stream.once('close', () => {
        open--;
        settle();
      });
    };
    pipe(child.stdout, options.stdout ? STDOUT : undefined);
    // A tty request folds stderr into stdout, as a terminal would; a stream not asked for is dropped.
    pipe(child.stderr, options.tty ? STDOUT : options.stderr ? STDERR : undefined);
    child.once('error', (err) => {
      spawnError = err;
      settle();
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      ws.resume(); // input no longer waits for the command (the client's close must be read)
      settle();
    });
    child.stdin?.on('error', () => undefined); // the command may exit without reading its input
    // Backpressure the other way: input the command has not read yet stops reading from the client.
    // Input it will never read (its stdin closed) is dropped, and the client read on.
    child.stdin?.on('drain', () => ws.resume());
    child.stdin?.once('close', () => ws.resume());
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary || data.length === 0) return;
      const stream = data[0];
      if (stream === STDIN && options.stdin) {
        const stdin = child.stdin;
        if (stdin?.writable && !stdin.write(data.subarray(1)) && exit === undefined) ws.pause();
      } else if (v5 && stream === CLOSE && data[1] === STDIN) child.stdin?.end();
      // Resize (4) is for terminals, which this runtime does not give commands.
    });
    ws.once('close', () => {
      // The client went away: its command goes too. What it left running in the background gets
      // no reader for its output (a broken pipe when it writes), rather than a pipe read forever
      // into nothing, or one paused forever.
      if (exit === undefined && spawnError === undefined) kill(child);
      child.stdin?.destroy();
      child.stdout?.destroy();
      child.stderr?.destroy();
      paused.clear();
    });
  }
}
