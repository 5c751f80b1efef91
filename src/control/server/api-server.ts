// The control plane's HTTP API: Kubernetes REST paths and Status errors over node:http, on
// loopback TCP (default) or a unix socket. Listening anywhere else requires a bearer token: the
// server refuses to start without one.
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { ApiError, BadRequestError, UnauthorizedError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { bearerTokenChecker } from './auth.js';
import { coreVersions, group, groupList, resourceList, versionInfo } from './discovery.js';
import { sendError, sendJson, sendText } from './http-io.js';
import { isLoopback, type ListenAddress, parseListenAddress } from './listen-address.js';
import { handleCollection, handleItem, type HandlerContext } from './resource-handler.js';
import { serveOpenApi } from './openapi-serve.js';
import { route } from './routes.js';
import { WatchStreams } from './watch-stream.js';

/** Where kubectl looks when it has no kubeconfig at all. */
export const DEFAULT_LISTEN = 'http://127.0.0.1:8080';

export interface ApiServerOptions {
  store: Store;
  /** "http://127.0.0.1:PORT" (PORT 0: any free port), "http://[::1]:PORT" or "unix:///path"; default DEFAULT_LISTEN. */
  listen?: string;
  /** Required unless listening on loopback or a unix socket; then every API request needs it. */
  token?: string;
  logger?: Logger;
}

export interface ApiServer {
  /** The bound address, e.g. "http://127.0.0.1:41234" or "unix:///run/stowage/api.sock". */
  readonly url: string;
  /** Stops accepting, ends open watches, and resolves once every connection is closed. */
  close(): Promise<void>;
}

/** Paths anyone may read, as Kubernetes' system:public-info-viewer role allows. */
const PUBLIC_PATHS = /^\/(healthz|readyz|livez|version)(\/|$)/;

async function removeStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (stat === undefined) return;
  if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (inUse) throw new Error(`${path} is in use by a running server`);
  await unlink(path);
}

/**
 * A closer for connections that have no request in progress. Node's closeIdleConnections()
 * misses connections on which no request has arrived yet (clients such as fetch open spares),
 * and those would hold close() until the client gives up on them.
 */
function trackConnections(server: Server): () => void {
  const sockets = new Set<Socket>();
  const busy = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    busy.add(req.socket);
    res.once('close', () => busy.delete(req.socket));
  });
  return () => {
    for (const socket of sockets) if (!busy.has(socket)) socket.destroy();
  };
}

function listenOn(server: Server, address: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (address.kind === 'unix') server.listen(address.path, done);
    else server.listen(address.port, address.host, done);
  });
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const listen = options.listen ?? DEFAULT_LISTEN;
  const address = parseListenAddress(listen);
  if (address.kind === 'tcp' && !isLoopback(address.host) && !options.token) {
    throw new Error(`refusing to listen on ${listen} without a token: only loopback and unix sockets may be unauthenticated`);
  }
  const authorized = options.token ? bearerTokenChecker(options.token) : () => true;
  const log = options.logger ?? pino({ level: 'silent' });
  const watches = new WatchStreams();
  const ctx: HandlerContext = { store: options.store, watches };
  let serverAddress = '';

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!PUBLIC_PATHS.test(url.pathname) && !authorized(req.headers.authorization)) throw new UnauthorizedError();
    if (url.searchParams.has('dryRun')) throw new BadRequestError('dryRun is not supported by this server');
    const r = route(url.pathname);
    switch (r.type) {
      case 'health':
        sendText(res, 200, 'ok');
        return;
      case 'version':
        sendJson(res, 200, versionInfo());
        return;
      case 'coreVersions':
        sendJson(res, 200, coreVersions(serverAddress));
        return;
      case 'groups':
        sendJson(res, 200, groupList());
        return;
      case 'group':
        sendJson(res, 200, group(r.group));
        return;
      case 'resources':
        sendJson(res, 200, resourceList(r.group, r.version));
        return;
      case 'openapi':
        serveOpenApi(req, res, r.version, r.path, url.searchParams);
        return;
      case 'collection':
        await handleCollection(ctx, r, req, res, url.searchParams);
        return;
      case 'item':
        await handleItem(ctx, r, req, res, url.searchParams);
        return;
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(async (err: unknown) => {
      if (!(err instanceof ApiError) || err.code >= 500) log.error({ err, method: req.method, url: req.url }, 'API request failed');
      // An error can reveal store state too (AlreadyExists, Conflict): only committed state.
      await options.store.flushed().catch(() => undefined);
      sendError(res, err);
    });
  });

  const closeUnbusyConnections = trackConnections(server);

  if (address.kind === 'unix') await removeStaleSocket(address.path);
  await listenOn(server, address);
  let url: string;
  if (address.kind === 'unix') {
    // Owner-only: on a unix socket the file mode is the authentication.
    await chmod(address.path, 0o600);
    url = `unix://${address.path}`;
    serverAddress = address.path;
  } else {
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    serverAddress = `${host}:${port}`;
    url = `http://${serverAddress}`;
  }
  log.info({ url, authenticated: Boolean(options.token) }, 'API server listening');

  return {
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        watches.closeAll();
        server.close((err) => (err ? reject(err) : resolve()));
        closeUnbusyConnections();
      }),
  };
}
