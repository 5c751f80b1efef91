// Serving the OpenAPI documents (openapi.ts) as kube-openapi's handlers do: /openapi/v2 as JSON or
// as gnostic's protobuf (openapi-proto.ts; client-go's OpenAPISchema() asks for that alone), the
// first of the client's Accept ranges by q that either admits, and v3 as JSON only (anything else
// gets 406 Not Acceptable); an ETag that is the JSON document's hash (the protobuf form shares it),
// 304 for a matching If-None-Match, and for /openapi/v3/<gv>?hash=<hash> an immutable answer cached
// for a year (a stale hash is redirected to the current one).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MethodNotAllowedError, NoResourceError, NotAcceptableError } from '../store/errors.js';
import { acceptedTypes, sendJson } from './http-io.js';
import { type ServedDocument, v2Document, v3Discovery, v3Documents } from './openapi.js';
import { v2ProtobufDocument } from './openapi-proto.js';

const YEAR_MS = 365 * 24 * 3600 * 1000;

const JSON_TYPE = 'application/json';
/** kube-openapi's protobuf media type, and the older spelling client-go still sends (answered with the new one). */
const PROTOBUF_TYPE = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';
const PROTOBUF_TYPE_DEPRECATED = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';

function acceptsJson(req: IncomingMessage): boolean {
  return acceptedTypes(req.headers.accept).some((r) => r.type === '*/*' || r.type === 'application/*' || r.type === JSON_TYPE);
}

/**
 * The media type to answer /openapi/v2 with: the first range that JSON or protobuf matches, with
 * ranges ordered as goautoneg orders them (by quality, then exact types before wildcards).
 */
function v2MediaType(req: IncomingMessage): typeof JSON_TYPE | typeof PROTOBUF_TYPE | undefined {
  const quality = (q: string | undefined): number => (q === undefined || Number.isNaN(Number(q)) ? 1 : Number(q));
  const wildcards = (type: string): number => (type === '*/*' ? 2 : type.endsWith('/*') ? 1 : 0);
  const ranges = acceptedTypes(req.headers.accept).sort((a, b) => quality(b.params['q']) - quality(a.params['q']) || wildcards(a.type) - wildcards(b.type));
  for (const { type } of ranges) {
    if (type === '*/*' || type === 'application/*' || type === JSON_TYPE) return JSON_TYPE;
    if (type === PROTOBUF_TYPE || type === PROTOBUF_TYPE_DEPRECATED) return PROTOBUF_TYPE;
  }
  return undefined;
}

interface Body {
  type: string;
  data: string | Uint8Array;
}

function sendDocument(req: IncomingMessage, res: ServerResponse, doc: ServedDocument, immutable: boolean, body: Body = { type: JSON_TYPE, data: doc.text }): void {
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
  res.writeHead(200, { ...headers, 'Content-Type': body.type, 'Content-Length': Buffer.byteLength(body.data) });
  res.end(req.method === 'HEAD' ? undefined : body.data);
}

/** GET /openapi/v2, /openapi/v3 and /openapi/v3/<api/v1 | apis/<group>/<version>>. */
export function serveOpenApi(req: IncomingMessage, res: ServerResponse, version: 'v2' | 'v3', path: string, query: URLSearchParams): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(req.method ?? '', `/openapi/${version}`);
  if (version === 'v2') {
    if (path !== '') throw new NoResourceError();
    const type = v2MediaType(req);
    if (type === undefined) throw new NotAcceptableError([JSON_TYPE, PROTOBUF_TYPE]);
    const doc = v2Document();
    sendDocument(req, res, doc, false, type === JSON_TYPE ? undefined : { type, data: v2ProtobufDocument(doc).bytes });
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
