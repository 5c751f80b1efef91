// TokenRequest: POST /api/v1/namespaces/NS/serviceaccounts/NAME/token (`kubectl create token
// NAME`) issues a token for an existing ServiceAccount, for the API's audience unless others are
// asked for, valid 1 hour unless asked otherwise (10 minutes at least, 2^32 seconds at most, as
// Kubernetes bounds it). Answered, never stored.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resourceForPath } from '../api/registry.js';
import { rfc3339 } from '../api/time.js';
import { invalid } from '../api/validation/field-errors.js';
import { BadRequestError, InvalidError, MethodNotAllowedError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { bodyTypesFor, mediaType, parseBody, readBody, sendJson } from './http-io.js';
import { API_AUDIENCE, DEFAULT_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, type TokenSigner } from './service-account-tokens.js';

const API_VERSION = 'authentication.k8s.io/v1';

/** The ServiceAccount a TokenRequest path names, or undefined. */
export function tokenRequestTarget(pathname: string): { namespace: string; name: string } | undefined {
  const m = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token\/?$/.exec(pathname);
  if (m === null) return undefined;
  try {
    return { namespace: decodeURIComponent(m[1] ?? ''), name: decodeURIComponent(m[2] ?? '') };
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The TokenRequest answered: the request's spec, defaulted, and the token with its expiry. */
export function answerTokenRequest(store: Store, signer: TokenSigner, target: { namespace: string; name: string }, body: unknown, now = Date.now()): object {
  const request = body === undefined ? {} : body;
  if (!isObject(request)) throw new BadRequestError('the request body must be a JSON object');
  if ((request['apiVersion'] !== undefined && request['apiVersion'] !== API_VERSION) || (request['kind'] !== undefined && request['kind'] !== 'TokenRequest')) {
    throw new BadRequestError(`the API version in the data (${String(request['apiVersion'])}) and kind (${String(request['kind'])}) do not match the URL's ${API_VERSION} TokenRequest`);
  }
  const spec = isObject(request['spec']) ? request['spec'] : {};
  if (spec['boundObjectRef'] !== undefined && spec['boundObjectRef'] !== null) throw new BadRequestError('spec.boundObjectRef: bound tokens are not supported by this server');
  const seconds = spec['expirationSeconds'] ?? DEFAULT_EXPIRATION_SECONDS;
  const audiences = Array.isArray(spec['audiences']) && spec['audiences'].length > 0 ? spec['audiences'].map(String) : [API_AUDIENCE];
  if (typeof seconds !== 'number' || !Number.isInteger(seconds)) throw new BadRequestError('spec.expirationSeconds must be an integer');
  if (seconds < MIN_EXPIRATION_SECONDS) {
    throw new InvalidError('TokenRequest', 'authentication.k8s.io', target.name, [invalid('spec.expirationSeconds', seconds, 'may not specify a duration less than 10 minutes')]);
  }
  if (seconds > MAX_EXPIRATION_SECONDS) {
    throw new InvalidError('TokenRequest', 'authentication.k8s.io', target.name, [invalid('spec.expirationSeconds', seconds, 'may not specify a duration larger than 2^32 seconds')]);
  }
  const sa = store.get('serviceaccounts', target.namespace, target.name);
  const resource = resourceForPath('', 'v1', 'serviceaccounts');
  if (sa === undefined || sa.metadata.uid === undefined || resource === undefined) {
    if (resource === undefined) throw new Error('serviceaccounts is not in the registry');
    throw new NotFoundError(resource, target.name);
  }
  const { token, expires } = signer.issue({ namespace: target.namespace, name: target.name, uid: sa.metadata.uid }, audiences, seconds, now);
  return {
    kind: 'TokenRequest',
    apiVersion: API_VERSION,
    metadata: { name: target.name, namespace: target.namespace, creationTimestamp: rfc3339(new Date(now)) },
    spec: { audiences, expirationSeconds: seconds, boundObjectRef: null },
    status: { token, expirationTimestamp: rfc3339(expires) },
  };
}

export async function handleTokenRequest(
  store: Store,
  signer: TokenSigner,
  target: { namespace: string; name: string },
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== 'POST') throw new MethodNotAllowedError(req.method ?? '', 'serviceaccounts/token');
  const raw = await readBody(req);
  const body = raw.length === 0 ? undefined : parseBody(raw, mediaType(req), bodyTypesFor(API_VERSION, 'TokenRequest'));
  const answer = answerTokenRequest(store, signer, target, body);
  await store.flushed();
  sendJson(res, 201, answer);
}
