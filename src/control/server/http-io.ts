// Request bodies in, JSON out: size-limited body reading, JSON or YAML request bodies, and
// responses (errors always as a Kubernetes Status).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { BadRequestError, RequestEntityTooLargeError, toStatus, UnsupportedMediaTypeError } from '../store/errors.js';

/** The Kubernetes API server's default request body limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const BODY_TYPES = ['application/json', 'application/yaml'];

/** The media type of a request, lower-cased, without parameters ("application/json"). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? 'application/json').split(';')[0]?.trim().toLowerCase() ?? '';
}

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new RequestEntityTooLargeError(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses JSON (any +json type) or YAML text; `types` lists what the caller accepts. */
export function parseBody(body: Buffer, type: string, types: readonly string[] = BODY_TYPES): unknown {
  if (!types.includes(type)) throw new UnsupportedMediaTypeError(type, types);
  const text = body.toString('utf8');
  if (text.trim() === '') throw new BadRequestError('the request has no body');
  try {
    return type === 'application/yaml' ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new BadRequestError(`the request body is not valid ${type === 'application/yaml' ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text) });
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
  sendJson(res, status.code, status);
}
