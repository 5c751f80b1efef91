// "What may I do?": SelfSubjectAccessReview and SelfSubjectRulesReview (authorization.k8s.io/v1,
// what `kubectl auth can-i` asks) and SelfSubjectReview (authentication.k8s.io/v1, `kubectl auth
// whoami`). They are created and answered for the caller, never stored, by the same authorizer
// that guards the caller's own requests (rbac-authorizer.ts): the admin may do everything.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KubeObject } from '../api/types/meta.js';
import { type FieldError, invalid } from '../api/validation/field-errors.js';
import { BadRequestError, InvalidError, MethodNotAllowedError } from '../store/errors.js';
import { ADMIN_USER, type UserInfo } from './auth.js';
import { bodyTypesFor, mediaType, parseBody, readBody, sendJson } from './http-io.js';
import { alwaysAllow, type Authorizer } from './rbac-authorizer.js';
import type { RequestAttributes } from './request-attributes.js';

interface ReviewResource {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
}

/** The review resources, for discovery: create-only, cluster-scoped, not stored. */
export const REVIEW_RESOURCES: readonly ReviewResource[] = [
  { group: 'authentication.k8s.io', version: 'v1', plural: 'selfsubjectreviews', singular: 'selfsubjectreview', kind: 'SelfSubjectReview' },
  { group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', kind: 'SelfSubjectAccessReview' },
  { group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectrulesreviews', singular: 'selfsubjectrulesreview', kind: 'SelfSubjectRulesReview' },
];

/** The review a URL path addresses, or undefined. */
export function reviewForPath(pathname: string): ReviewResource | undefined {
  const m = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(pathname);
  if (m === null) return undefined;
  return REVIEW_RESOURCES.find((r) => r.group === m[1] && r.version === m[2] && r.plural === m[3]);
}

type Spec = Record<string, unknown>;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** The attributes a SelfSubjectAccessReview asks about. */
function reviewedAttributes(spec: Spec): RequestAttributes {
  const r = spec['resourceAttributes'];
  if (isObject(r)) {
    return {
      resourceRequest: true,
      verb: str(r['verb']),
      path: '',
      apiGroup: str(r['group']),
      apiVersion: str(r['version']),
      namespace: str(r['namespace']),
      resource: str(r['resource']),
      subresource: str(r['subresource']),
      name: str(r['name']),
    };
  }
  const n = isObject(spec['nonResourceAttributes']) ? spec['nonResourceAttributes'] : {};
  return { resourceRequest: false, verb: str(n['verb']), path: str(n['path']), apiGroup: '', apiVersion: '', namespace: '', resource: '', subresource: '', name: '' };
}

/** The answer to a caller's review, or the error Kubernetes gives for a malformed one. */
export function answerReview(review: ReviewResource, body: unknown, user: UserInfo = ADMIN_USER, authorizer: Authorizer = alwaysAllow): KubeObject {
  if (!isObject(body)) throw new BadRequestError('the request body must be a JSON object');
  const apiVersion = `${review.group}/${review.version}`;
  if (body['apiVersion'] !== apiVersion || body['kind'] !== review.kind) {
    throw new BadRequestError(`the API version in the data (${String(body['apiVersion'])}) and kind (${String(body['kind'])}) do not match the URL's ${apiVersion} ${review.kind}`);
  }
  const metadata = isObject(body['metadata']) ? body['metadata'] : {};
  const spec: Spec = isObject(body['spec']) ? body['spec'] : {};
  const answer = (status: object, withSpec = true): KubeObject => ({ apiVersion, kind: review.kind, metadata, ...(withSpec ? { spec } : {}), status }) as KubeObject;
  switch (review.kind) {
    case 'SelfSubjectReview':
      return answer({ userInfo: { username: user.username, ...(user.uid === undefined ? {} : { uid: user.uid }), groups: [...user.groups] } }, false);
    case 'SelfSubjectAccessReview': {
      const errs: FieldError[] = [];
      const hasResource = isObject(spec['resourceAttributes']);
      const hasNonResource = isObject(spec['nonResourceAttributes']);
      if (hasResource && hasNonResource) errs.push(invalid('spec.nonResourceAttributes', spec['nonResourceAttributes'], 'cannot be specified in combination with resourceAttributes'));
      // Kubernetes reports the nil attributes as the string "null".
      if (!hasResource && !hasNonResource) errs.push(invalid('spec.resourceAttributes', 'null', 'exactly one of nonResourceAttributes or resourceAttributes must be specified'));
      if (errs.length > 0) throw new InvalidError(review.kind, review.group, String(metadata['name'] ?? ''), errs);
      return answer({ allowed: authorizer.allowed(user, reviewedAttributes(spec)) });
    }
    default: {
      if (typeof spec['namespace'] !== 'string' || spec['namespace'] === '') throw new BadRequestError('no namespace on request');
      return answer({ ...authorizer.rulesFor(user, spec['namespace']), incomplete: false });
    }
  }
}

export async function handleReview(review: ReviewResource, req: IncomingMessage, res: ServerResponse, user: UserInfo, authorizer: Authorizer): Promise<void> {
  if (req.method !== 'POST') throw new MethodNotAllowedError(req.method ?? '', review.plural);
  const body = parseBody(await readBody(req), mediaType(req), bodyTypesFor(`${review.group}/${review.version}`, review.kind));
  sendJson(res, 201, answerReview(review, body, user, authorizer));
}
