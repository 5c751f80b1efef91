// Serving the OpenAPI documents (openapi.ts) as kube-openapi's handlers do: JSON only (a client
// that accepts nothing else, such as one asking for the protobuf encoding alone, gets 406 Not
// Acceptable and falls back), an ETag that is the document's hash, 304 for a matching
// If-None-Match, and for /openapi/v3/<gv>?hash=<hash> an immutable answer cached for a year (a
// stale hash is redirected to the current one).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MethodNotAllowedError, NoResourceError, NotAcceptableError } from '../store/errors.js';
import { acceptedTypes, sendJson } from './http-io.js';
import { type ServedDocument, v2Document, v3Discovery, v3Documents } from './openapi.js';

const YEAR_MS = 365 * 24 * 3600 * 1000;

function acceptsJson(req: IncomingMessage): boolean {
  return acceptedTypes(req.headers.accept).some((r) => r.type === '*/*' || r.type === 'application/*' || r.type === 'application/json');
}

function sendDocument(req: IncomingMessage, res: ServerResponse, doc: ServedDocument, immutable: boolean): void {
  const etag = `"${doc.hash}"`;
  const headers: Record<string, string> = { ETag: etag, Vary: 'Accept' };
  if (immutable) {
    headers['Cache-Control'] = 'public, immutable';
    headers['Expires'] = new Date(Date.now() + YEAR_MS).toUTCString();
  } else {
    headers['Cache-Control'] = 'no-cache, private';
  }
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(doc.text) });
  res.end(req.method === 'HEAD' ? undefined : doc.text);
}

/** GET /openapi/v2, /openapi/v3 and /openapi/v3/<api/v1 | apis/<group>/<version>>. */
export function serveOpenApi(req: IncomingMessage, res: ServerResponse, version: 'v2' | 'v3', path: string, query: URLSearchParams): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(req.method ?? '', `/openapi/${version}`);
  if (version === 'v2') {
    if (path !== '') throw new NoResourceError();
    if (!acceptsJson(req)) throw new NotAcceptableError(['application/json']);
    sendDocument(req, res, v2Document(), false);
    return;
  }
  if (path === '') {
    sendJson(res, 200, v3Discovery());
    return;
  }
  const doc = v3Documents().get(path);
  if (doc === undefined) throw new NoResourceError();
  if (!acceptsJson(req)) throw new NotAcceptableError(['application/json']);
  const hash = query.get('hash');
  if (hash !== null && hash !== '' && hash !== doc.hash) {
    res.writeHead(301, { Location: `/openapi/v3/${path}?hash=${doc.hash}`, 'Content-Length': 0 });
    res.end();
    return;
  }
  sendDocument(req, res, doc, hash !== null && hash !== '');
}
