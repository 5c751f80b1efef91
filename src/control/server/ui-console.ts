// The web console's share of the API server: its static assets at /ui/ (index.html, the bundle and
// its stylesheet, built into dist/ui/ by scripts/build-ui.mjs), served to anyone because they hold
// no data, and its one data endpoint beyond the Kubernetes API, /ui/api/csi-calls (the CSI call
// journal), which is authenticated like the API and, under RBAC, allowed to whoever may get
// persistentvolumes. Everything else the console shows it reads from the Kubernetes API itself.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { CsiCallJournal } from '../../csi/call-journal.js';
import { ApiError, NoResourceError } from '../store/errors.js';
import type { RequestAttributes } from './request-attributes.js';

/** dist/ui/, beside dist/src/ (this file is dist/src/control/server/ui-console.js once built). */
export const UI_ASSETS_DIR = fileURLToPath(new URL('../../../ui/', import.meta.url));

export const CSI_CALLS_PATH = '/ui/api/csi-calls';

const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  svg: 'image/svg+xml',
  ico: 'image/x-icon',
};

/**
 * The page may load and fetch only from this server; no inline script, no eval, no framing. A
 * string that slipped past escaping still could not run.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** Whether the path is one of the console's public assets (not its data endpoint). */
export function isUiAssetPath(pathname: string): boolean {
  return (pathname === '/ui' || pathname.startsWith('/ui/')) && !pathname.startsWith('/ui/api/');
}

/** Authorized as reading PersistentVolumes: the journal names volumes and their nodes' paths. */
export function csiCallsAttributes(): RequestAttributes {
  return { resourceRequest: true, verb: 'get', path: CSI_CALLS_PATH, apiGroup: '', apiVersion: 'v1', namespace: '', resource: 'persistentvolumes', subresource: '', name: '' };
}

class MethodNotAllowed extends ApiError {
  constructor(method: string) {
    super(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method} on the web console)`);
  }
}

/** index.html for /ui/, the file itself for /ui/NAME (one level, plain names only); 404 otherwise. */
export async function serveUiAsset(req: IncomingMessage, res: ServerResponse, pathname: string, dir = UI_ASSETS_DIR): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') throw new MethodNotAllowed(method);
  if (pathname === '/ui') {
    res.writeHead(301, { Location: '/ui/', 'Content-Length': '0' });
    res.end();
    return;
  }
  const name = pathname === '/ui/' ? 'index.html' : pathname.slice('/ui/'.length);
  const ext = /^[A-Za-z0-9_-][A-Za-z0-9._-]*\.([a-z]+)$/.exec(name)?.[1];
  const type = ext === undefined ? undefined : CONTENT_TYPES[ext];
  const body = type === undefined ? undefined : await readFile(`${dir}${name}`).catch(() => undefined);
  if (body === undefined || type === undefined) throw new NoResourceError();
  // The names are fixed (index.html, console.js, console.css): the browser revalidates each load,
  // and an unchanged file costs a 304.
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  const headers = { ...SECURITY_HEADERS, 'Cache-Control': 'no-cache', ETag: etag };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': String(body.length) });
  res.end(method === 'HEAD' ? undefined : body);
}

/** GET /ui/api/csi-calls[?volume=ID&volume=NAME…]: the journal's calls, oldest first, as {items: […]}. */
export function serveCsiCalls(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, journal: CsiCallJournal | undefined): void {
  const method = req.method ?? 'GET';
  if (method !== 'GET') throw new MethodNotAllowed(method);
  const volumes = query.getAll('volume').filter((v) => v !== '');
  const calls = journal === undefined ? [] : volumes.length === 0 ? journal.calls() : volumes.flatMap((v) => journal.calls(v));
  const seen = new Set<number>();
  const items = calls.filter((c) => !seen.has(c.seq) && seen.add(c.seq)).sort((a, b) => a.seq - b.seq);
  const body = JSON.stringify({ kind: 'CsiCallList', capacity: journal?.capacity ?? 0, items });
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(body);
}
