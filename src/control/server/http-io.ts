// Request bodies in, JSON out: size-limited body reading, JSON or YAML request bodies, responses
// (errors always as a Kubernetes Status), and the Accept header's media ranges, which may ask for
// a read converted to a Table or to PartialObjectMetadata (`as=…;g=meta.k8s.io;v=…`).
//
// A body is refused before anything looks at its content when it is too large (413), of a media
// type the verb does not take (415: protobuf too, except for the kinds kubectl's typed commands
// send that way, decoded by protobuf-body.ts), not UTF-8 (400), or nested deeper than MAX_NESTING_DEPTH (400; see api/nesting.ts): nothing
// recursive ever sees a hostile document.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { checkJsonTextDepth, checkValueDepth, isStackOverflow, MAX_NESTING_DEPTH, NestingError } from '../api/nesting.js';
import { BadRequestError, RequestEntityTooLargeError, toStatus, UnsupportedMediaTypeError } from '../store/errors.js';
import { decodeProtobufBody, decodesProtobuf, PROTOBUF } from './protobuf-body.js';

/** The Kubernetes API server's default request body limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const BODY_TYPES = ['application/json', 'application/yaml'];

/** What a create or update of a kind takes: JSON and YAML, and protobuf for the kinds decoded from it. */
export function bodyTypesFor(apiVersion: string, kind: string): readonly string[] {
  return decodesProtobuf(apiVersion, kind) ? [...BODY_TYPES, PROTOBUF] : BODY_TYPES;
}

/** The media type of a request, lower-cased, without parameters ("application/json"). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? 'application/json').split(';')[0]?.trim().toLowerCase() ?? '';
}

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  // Refused from its header alone when it says so; otherwise counted as it arrives.
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new RequestEntityTooLargeError(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new RequestEntityTooLargeError(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Parses JSON (any +json type), YAML text or a Kubernetes protobuf object; `types` lists what the caller accepts. */
export function parseBody(body: Buffer, type: string, types: readonly string[] = BODY_TYPES): unknown {
  if (!types.includes(type)) throw new UnsupportedMediaTypeError(type, types);
  if (type === PROTOBUF) return decodeProtobufBody(body);
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    throw new BadRequestError('the request body is not valid UTF-8');
  }
  if (text.trim() === '') throw new BadRequestError('the request has no body');
  const yaml = type === 'application/yaml';
  try {
    if (!yaml) {
      checkJsonTextDepth(text, 'the request body');
      return JSON.parse(text);
    }
    // Unknown tags are the client's mistake (validation reports the value), not warnings in the server's log.
    const value: unknown = parseYaml(text, { maxAliasCount: 100, logLevel: 'error' });
    checkValueDepth(value, 'the request body');
    return value;
  } catch (err) {
    if (err instanceof NestingError) throw new BadRequestError(err.message);
    if (isStackOverflow(err)) throw new BadRequestError(new NestingError('the request body', MAX_NESTING_DEPTH).message);
    throw new BadRequestError(`the request body is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}, pretty = false): void {
  const text = pretty ? `${JSON.stringify(body, null, 2)}\n` : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = toStatus(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The rest of a body too large to read is not read: the connection cannot carry another request.
  // A 503 (the store's disk is full) passes by itself: say when to try again, as Kubernetes does.
  const headers: Record<string, string> =
    err instanceof RequestEntityTooLargeError
      ? { Connection: 'close' }
      : status.code === 503
        ? { 'Retry-After': '1' }
        : status.code === 429 && (status.details?.retryAfterSeconds ?? 0) > 0
          ? { 'Retry-After': String(status.details?.retryAfterSeconds) }
          : {};
  sendJson(res, status.code, status, headers);
}

/** One media range of an Accept header: "application/json;as=Table;v=v1;g=meta.k8s.io". */
export interface MediaRange {
  type: string;
  params: Record<string, string>;
}

/** The media ranges of an Accept header, in the client's order, without those it refuses (q=0). */
export function acceptedTypes(header: string | undefined): MediaRange[] {
  if (header === undefined || header.trim() === '') return [{ type: '*/*', params: {} }];
  const out: MediaRange[] = [];
  for (const part of header.split(',')) {
    const [type = '', ...rest] = part.split(';').map((s) => s.trim());
    const params: Record<string, string> = {};
    for (const p of rest) {
      const eq = p.indexOf('=');
      if (eq > 0) params[p.slice(0, eq).trim().toLowerCase()] = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    }
    if (params['q'] !== undefined && Number(params['q']) === 0) continue;
    if (type !== '') out.push({ type: type.toLowerCase(), params });
  }
  return out;
}

/** Whether a range admits plain JSON: application/json without a conversion, application/*, or * / *. */
export function admitsJson(range: MediaRange): boolean {
  if (range.type === '*/*' || range.type === 'application/*') return true;
  return range.type === 'application/json' && range.params['as'] === undefined;
}

/** pretty=true (or any true value): indented JSON, as kube-apiserver's ?pretty. */
export function isPretty(query: URLSearchParams): boolean {
  const value = query.get('pretty');
  return value !== null && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/** The meta.k8s.io versions of the conversions this server answers with. */
const META_VERSIONS = ['v1', 'v1beta1'];

/** What a client may ask a read to be converted to (kube-apiserver's `as=` media type parameter). */
export type ConversionKind = 'Table' | 'PartialObjectMetadata' | 'PartialObjectMetadataList';

export interface Conversion {
  as: ConversionKind;
  /** "meta.k8s.io/v1" or "meta.k8s.io/v1beta1". */
  apiVersion: string;
}

/**
 * The conversion the client's first acceptable JSON media range asks for, among those the
 * request can be answered with (`allowed`); undefined when plain JSON comes first or nothing else
 * fits. Protobuf and unknown conversions are passed over, as ranges this server cannot produce.
 */
export function conversion(req: IncomingMessage, allowed: readonly ConversionKind[]): Conversion | undefined {
  for (const range of acceptedTypes(req.headers.accept)) {
    if (admitsJson(range)) return undefined;
    const { as, g, v } = range.params;
    if (range.type !== 'application/json' || g !== 'meta.k8s.io' || v === undefined || !META_VERSIONS.includes(v)) continue;
    if (allowed.includes(as as ConversionKind)) return { as: as as ConversionKind, apiVersion: `meta.k8s.io/${v}` };
  }
  return undefined;
}

/** The Table apiVersion ("meta.k8s.io/v1") when the client asks for a Table first. */
export function tableVersion(req: IncomingMessage): string | undefined {
  return conversion(req, ['Table'])?.apiVersion;
}
