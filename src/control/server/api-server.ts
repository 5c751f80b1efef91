// The control plane's HTTP API: Kubernetes REST paths and Status errors over node:https (or plain
// node:http on loopback when asked), or a unix socket. On TCP, a bearer token guards everything
// but the public health and version paths; the unix socket's file mode is its authentication.
// Listening beyond loopback requires TLS and a token: the server refuses to start without them.
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import { ApiError, BadRequestError, NoResourceError, NotFoundError, UnauthorizedError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { handleReview, reviewForPath } from './access-review.js';
import { isCrdList, sendEmptyCrdList } from './crd-list.js';
import { ADMIN_USER, authenticator, type UserInfo } from './auth.js';
import { coreVersions, group, groupList, resourceList, versionInfo } from './discovery.js';
import { sendError, sendJson, sendText } from './http-io.js';
import { isLoopback, type ListenAddress, parseListenAddress } from './listen-address.js';
import { handleCollection, handleItem, type HandlerContext } from './resource-handler.js';
import { type AuthorizationMode, authorizerFor } from './rbac-authorizer.js';
import { actingUser } from './impersonation.js';
import { forbidden, requestAttributes } from './request-attributes.js';
import { serveOpenApi } from './openapi-serve.js';
import { handleEviction } from './eviction.js';
import { ContainerUnavailableError, ExecUpgrades, execTarget, parseExecOptions, type PodExecutor, refuseUpgrade } from './pod-exec.js';
import { handlePodLog, type PodLogLocator } from './pod-log.js';
import { route } from './routes.js';
import type { TokenSigner } from './service-account-tokens.js';
import { handleTokenRequest, tokenRequestTarget } from './token-request.js';
import { WatchStreams } from './watch-stream.js';
import type { CsiCallJournal } from '../../csi/call-journal.js';
import { CSI_CALLS_PATH, csiCallsAttributes, isUiAssetPath, serveCsiCalls, serveUiAsset } from './ui-console.js';
import { CEPH_POOLS_PATH, type CephPools, cephPoolsAttributes, serveCephPools } from './ui-ceph-pools.js';

/** Where kubectl looks when it has no kubeconfig at all. */
export const DEFAULT_LISTEN = 'http://127.0.0.1:8080';

export interface ApiServerOptions {
  store: Store;
  /** "https://HOST:PORT", "http://127.0.0.1:PORT" (PORT 0: any free port), "http://[::1]:PORT" or "unix:///path"; default DEFAULT_LISTEN. */
  listen?: string;
  /** Required unless listening on loopback or a unix socket; then every API request on TCP needs it. */
  token?: string;
  /** The serving certificate and key (PEM), required for https:// (see pki.ts). */
  tls?: { certPem: string; keyPem: string };
  /** Issues and verifies ServiceAccount tokens (TokenRequest); without it there are none. */
  tokenSigner?: TokenSigner;
  /** Who may do what beyond the admin; default AlwaysAllow (see rbac-authorizer.ts). */
  authorization?: AuthorizationMode;
  logger?: Logger;
  /** How often a quiet watch with allowWatchBookmarks gets a BOOKMARK; default a minute (tests shorten it). */
  watchBookmarkIntervalMs?: number;
  /** The kubelets' metrics in Prometheus text: one node's, or every node's (undefined); none: 404. */
  metrics?: (node: string | undefined) => Promise<string | undefined>;
  /** Where a container's output is (pods/{name}/log); none: every log request says the container is waiting. */
  podLogs?: PodLogLocator;
  /** Runs `kubectl exec` commands in the pods' containers (absent: exec is refused). */
  podExec?: PodExecutor;
  /** The CSI calls the control plane made, for the web console (/ui/api/csi-calls); none: an empty list. */
  csiCalls?: CsiCallJournal;
  /** The Ceph pools' capacity for the web console (/ui/api/ceph-pools); none (no Ceph backend): 404. */
  cephPools?: CephPools;
  /** Where the web console's built assets are (default dist/ui/). */
  uiAssetsDir?: string;
}

export interface ApiServer {
  /** The bound address, e.g. "https://127.0.0.1:6443", "http://127.0.0.1:41234" or "unix:///run/stowage/api.sock". */
  readonly url: string;
  /** Stops accepting, ends open watches, and resolves once every connection is closed. */
  close(): Promise<void>;
}

/** Paths anyone may read, as Kubernetes' system:public-info-viewer role allows. */
const PUBLIC_PATHS = /^\/(healthz|readyz|livez|version)(\/|$)/;

function throwUnauthorized(): never {
  throw new UnauthorizedError();
}

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
  // Over TLS the request's socket wraps the one 'connection' saw: TCP connections are known by
  // the peer's address and port (unique while open), unix socket connections by themselves.
  const sockets = new Map<Socket, Socket | string>();
  const busy = new Set<Socket | string>();
  const key = (s: Socket): Socket | string => (s.remotePort === undefined ? s : `${s.remoteAddress ?? ''}|${s.remotePort}`);
  server.on('connection', (socket: Socket) => {
    const k = key(socket);
    sockets.set(socket, k);
    socket.once('close', () => {
      sockets.delete(socket);
      busy.delete(k);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const k = key(req.socket);
    busy.add(k);
    res.once('close', () => busy.delete(k));
  });
  return () => {
    for (const [socket, k] of sockets) if (!busy.has(k)) socket.destroy();
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
  const tcp = address.kind === 'tcp';
  if (tcp && !address.secure && !isLoopback(address.host)) {
    throw new Error(`refusing to serve plain http on ${listen}: only loopback may be unencrypted (use https://)`);
  }
  if (tcp && !isLoopback(address.host) && !options.token) {
    throw new Error(`refusing to listen on ${listen} without a token: only loopback and unix sockets may be unauthenticated`);
  }
  if (tcp && address.secure && options.tls === undefined) throw new Error(`listening on ${listen} needs a serving certificate and key`);
  // The unix socket's file mode is its authentication: whoever opens it is the admin.
  const authenticate = tcp && options.token ? authenticator(options.token, options.store, options.tokenSigner) : () => ADMIN_USER;
  const mode = options.authorization ?? 'AlwaysAllow';
  const authorizer = authorizerFor(mode, options.store);
  const log = options.logger ?? pino({ level: 'silent' });
  const watches = new WatchStreams(options.watchBookmarkIntervalMs);
  const ctx: HandlerContext = { store: options.store, watches };
  let serverAddress = '';

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let user: UserInfo = ADMIN_USER;
    // The web console's page and bundle hold no data: anyone may load them (the data they show is
    // read with the user's token, under the API's authentication and authorization).
    if (isUiAssetPath(url.pathname)) {
      await serveUiAsset(req, res, url.pathname, options.uiAssetsDir);
      return;
    }
    if (url.pathname === CSI_CALLS_PATH) {
      user = actingUser(authenticate(req.headers.authorization) ?? throwUnauthorized(), req.headersDistinct, authorizer);
      const attributes = csiCallsAttributes();
      if (mode === 'RBAC' && !authorizer.allowed(user, attributes)) throw forbidden(user, attributes);
      serveCsiCalls(req, res, url.searchParams, options.csiCalls);
      return;
    }
    if (url.pathname === CEPH_POOLS_PATH && options.cephPools !== undefined) {
      user = actingUser(authenticate(req.headers.authorization) ?? throwUnauthorized(), req.headersDistinct, authorizer);
      const attributes = cephPoolsAttributes();
      if (mode === 'RBAC' && !authorizer.allowed(user, attributes)) throw forbidden(user, attributes);
      await serveCephPools(req, res, options.cephPools);
      return;
    }
    if (!PUBLIC_PATHS.test(url.pathname)) {
      user = authenticate(req.headers.authorization) ?? throwUnauthorized();
      user = actingUser(user, req.headersDistinct, authorizer);
      if (mode === 'RBAC') {
        const attributes = requestAttributes(req.method ?? 'GET', url);
        if (!authorizer.allowed(user, attributes)) throw forbidden(user, attributes);
      }
    }
    const review = reviewForPath(url.pathname);
    if (review !== undefined) {
      await handleReview(review, req, res, user, authorizer);
      return;
    }
    const tokenTarget = options.tokenSigner === undefined ? undefined : tokenRequestTarget(url.pathname);
    if (tokenTarget !== undefined && options.tokenSigner !== undefined) {
      await handleTokenRequest(options.store, options.tokenSigner, tokenTarget, req, res);
      return;
    }
    if (isCrdList(req, url.pathname)) {
      sendEmptyCrdList(res, options.store.resourceVersion);
      return;
    }
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
      case 'metrics': {
        if (options.metrics === undefined) throw new NoResourceError();
        // As the node proxy: a node that does not exist is the API's 404.
        if (r.node !== undefined && options.store.get('nodes', undefined, r.node) === undefined) throw new NotFoundError(resourceForName('nodes') as ResourceInfo, r.node);
        const text = (await options.metrics(r.node)) ?? '';
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(text);
        return;
      }
      case 'collection':
        await handleCollection(ctx, r, req, res, url.searchParams);
        return;
      case 'item':
        if (r.subresource === 'log') await handlePodLog(options.store, options.podLogs, r.namespace ?? '', r.name, req, res, url.searchParams);
        else if (r.subresource === 'eviction') await handleEviction(options.store, r.namespace ?? '', r.name, req, res, url.searchParams);
        else if (r.subresource === 'exec') {
          // Reached only without a WebSocket upgrade (those go to the 'upgrade' handler below): kubectl's
          // SPDY fallback after a refused WebSocket upgrade. A container that is not running is refused
          // as the kubelet refuses it, in its words, before anything else.
          const target = execTarget(options.store, r.namespace ?? '', r.name, parseExecOptions(url.searchParams));
          try {
            options.podExec?.check?.(target.pod, target.container);
          } catch (err) {
            if (!(err instanceof ContainerUnavailableError)) throw err;
            res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(err.message);
            return;
          }
          throw new BadRequestError('Upgrade request required');
        }
        else await handleItem(ctx, r, req, res, url.searchParams);
        return;
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch(async (err: unknown) => {
      if (!(err instanceof ApiError) || err.code >= 500) log.error({ err, method: req.method, url: req.url }, 'API request failed');
      // An error can reveal store state too (AlreadyExists, Conflict): only committed state.
      await options.store.flushed().catch(() => undefined);
      sendError(res, err);
    });
  };
  // Only WebSocket upgrades reach the 'upgrade' handler (a pod's exec); any other Upgrade header
  // (SPDY, h2c) is an ordinary request, answered as such.
  const shouldUpgradeCallback = (req: IncomingMessage): boolean => /^websocket$/i.test(req.headers.upgrade ?? '');
  const server: Server =
    tcp && address.secure && options.tls
      ? (createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem, shouldUpgradeCallback }, onRequest) as unknown as Server)
      : createHttpServer({ shouldUpgradeCallback }, onRequest);

  const closeUnbusyConnections = trackConnections(server);

  // WebSocket upgrades: a pod's exec only, authenticated and authorized as any request (RBAC:
  // create on pods/exec, whatever the method, as kube-apiserver checks WebSocket exec).
  const execs = new ExecUpgrades(options.store, options.podExec);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const user = actingUser(authenticate(req.headers.authorization) ?? throwUnauthorized(), req.headersDistinct, authorizer);
      const r = route(url.pathname);
      if (r.type !== 'item' || r.subresource !== 'exec') throw new BadRequestError(`${url.pathname} cannot be upgraded: only a pod's exec is served over WebSocket`);
      if (mode === 'RBAC') {
        const attributes = { ...requestAttributes('POST', url), verb: 'create' };
        if (!authorizer.allowed(user, attributes)) throw forbidden(user, attributes);
      }
      execs.handle(req, socket, head, r.namespace ?? '', r.name, url.searchParams);
    } catch (err) {
      refuseUpgrade(socket, err);
    }
  });

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
    url = `${address.secure ? 'https' : 'http'}://${serverAddress}`;
  }
  log.info({ url, authenticated: address.kind === 'tcp' && Boolean(options.token) }, 'API server listening');

  return {
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        watches.closeAll();
        execs.closeAll();
        server.close((err) => (err ? reject(err) : resolve()));
        closeUnbusyConnections();
      }),
  };
}
