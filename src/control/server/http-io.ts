// Request bodies in, JSON out: size-limited body reading, JSON or YAML request bodies, and
// responses (errors always as a Kubernetes Status).
//
// A body is refused before anything looks at its content when it is too large (413), of a media
// type the verb does not take (415: protobuf among them, which this server does not speak), not
// UTF-8 (400), or nested deeper than MAX_NESTING_DEPTH (400; see api/nesting.ts): nothing
// recursive ever sees a hostile document.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { checkJsonTextDepth, checkValueDepth, isStackOverflow, MAX_NESTING_DEPTH, NestingError } from '../api/nesting.js';
import { BadRequestError, RequestEntityTooLargeError, toStatus, UnsupportedMediaTypeError } from '../store/errors.js';

/** The Kubernetes API server's default request body limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const BODY_TYPES = ['application/json', 'application/yaml'];

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

/** Parses JSON (any +json type) or YAML text; `types` lists what the caller accepts. */
export function parseBody(body: Buffer, type: string, types: readonly string[] = BODY_TYPES): unknown {
  if (!types.includes(type)) throw new UnsupportedMediaTypeError(type, types);
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
    const value: unknown = parseYaml(text, { maxAliasCount: 100 });
    checkValueDepth(value, 'the request body');
    return value;
  } catch (err) {
    if (err instanceof NestingError) throw new BadRequestError(err.message);
    if (isStackOverflow(err)) throw new BadRequestError(new NestingError('the request body', MAX_NESTING_DEPTH).message);
    throw new BadRequestError(`the request body is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
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
  sendJson(res, status.code, status, err instanceof RequestEntityTooLargeError ? { Connection: 'close' } : {});
}
