// List continue tokens, in kube-apiserver's format (apiserver/pkg/storage/continue.go): unpadded
// base64url of {"v":"meta.k8s.io/v1","rv":<resourceVersion of the first page>,"start":<key>},
// where the key is the last item's "namespace/name" (or "name") followed by a NUL, i.e. "strictly
// after it". rv -1 asks for the rest of the list as it is now (the token Kubernetes hands out with
// a 410 when the snapshot is gone). A token that does not decode is a 400 with Kubernetes' words.
import type { ResourceInfo } from '../api/registry.js';
import type { KubeObject } from '../api/types/meta.js';
import { ApiError, BadRequestError } from './errors.js';

export interface ContinueToken {
  /** The resourceVersion of the list's first page, or -1 for "whatever is there now". */
  rv: number;
  /** The key to continue strictly after: [namespace, name] (namespace "" for cluster-scoped). */
  start: [string, string];
}

const VERSION = 'meta.k8s.io/v1';
const INVALID = 'continue key is not valid';
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function invalid(detail: string): BadRequestError {
  return new BadRequestError(`invalid continue token: ${detail}`);
}

function keyOf(resource: ResourceInfo, obj: KubeObject): string {
  const name = obj.metadata.name ?? '';
  return resource.namespaced ? `${obj.metadata.namespace ?? ''}/${name}` : name;
}

export function encodeContinue(resource: ResourceInfo, last: KubeObject, rv: number): string {
  return Buffer.from(JSON.stringify({ v: VERSION, rv, start: `${keyOf(resource, last)}\u0000` })).toString('base64url');
}

/** Mirrors storage.DecodeContinue: base64url without padding, JSON, the version, a non-zero rv, a clean key. */
export function decodeContinue(text: string): ContinueToken {
  // Go's RawURLEncoding: no padding, only the URL alphabet, and no dangling bits.
  if (!BASE64URL.test(text) || text.length % 4 === 1) {
    const at = [...text].findIndex((c) => !/[A-Za-z0-9_-]/.test(c));
    throw invalid(`${INVALID}: illegal base64 data at input byte ${at >= 0 ? at : text.length - 1}`);
  }
  const data = Buffer.from(text, 'base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw invalid(`${INVALID}: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`${INVALID}: the token is not a JSON object`);
  const { v, rv, start } = parsed as { v?: unknown; rv?: unknown; start?: unknown };
  if (v !== VERSION) throw invalid(`${INVALID} server does not recognize this encoded version ${JSON.stringify(typeof v === 'string' ? v : '')}`);
  if (rv !== undefined && (typeof rv !== 'number' || !Number.isSafeInteger(rv))) throw invalid(`${INVALID}: rv is not an integer`);
  if (start !== undefined && typeof start !== 'string') throw invalid(`${INVALID}: start is not a string`);
  if (rv === undefined || rv === 0) throw invalid(`${INVALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)`);
  if (start === undefined || start === '') throw invalid(`${INVALID}: encoded start key empty`);
  // Kubernetes refuses keys that path.Clean would change (a defence against ../ in the key).
  const segments = start.split('/');
  if (start.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..') || segments.length > 2) throw invalid(`${INVALID}: ${start}`);
  const key = start.endsWith('\u0000') ? start.slice(0, -1) : start;
  const [first = '', second] = key.split('/');
  return { rv, start: second === undefined ? ['', first] : [first, second] };
}

/** Whether an object comes strictly after the token's key, in list order (namespace, then name). */
export function keyAfter(resource: ResourceInfo, obj: KubeObject, start: [string, string]): boolean {
  const ns = resource.namespaced ? (obj.metadata.namespace ?? '') : '';
  const name = obj.metadata.name ?? '';
  const [sns, sname] = resource.namespaced ? start : ['', start[1] === '' ? start[0] : start[1]];
  if (ns !== sns) return ns > sns;
  return name > sname;
}

/** 410 Expired for a token whose snapshot the event log no longer reaches, with a token for the rest as it is now. */
export function compactedContinueError(token: ContinueToken | undefined): ApiError {
  const message =
    'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';
  const err = new ApiError(410, 'Expired', message);
  if (token !== undefined) {
    const start = token.start[0] === '' ? token.start[1] : `${token.start[0]}/${token.start[1]}`;
    err.listContinue = Buffer.from(JSON.stringify({ v: VERSION, rv: -1, start: `${start}\u0000` })).toString('base64url');
  }
  return err;
}
