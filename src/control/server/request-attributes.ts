// What a request asks, in the terms authorizers use (kube-apiserver's RequestInfo): a resource
// request (verb, API group, namespace, resource, subresource, name) or a non-resource one (verb and
// path). GET on a collection is list (watch with ?watch), DELETE on one is deletecollection; a
// namespace's own path names both the namespace and the object.
import { ApiError } from '../store/errors.js';
import type { UserInfo } from './auth.js';

export interface RequestAttributes {
  resourceRequest: boolean;
  verb: string;
  path: string;
  apiGroup: string;
  apiVersion: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
}

const VERBS: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function truthy(v: string | null): boolean {
  return v !== null && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

export function requestAttributes(method: string, url: URL): RequestAttributes {
  const path = url.pathname;
  const nonResource: RequestAttributes = { resourceRequest: false, verb: method.toLowerCase(), path, apiGroup: '', apiVersion: '', namespace: '', resource: '', subresource: '', name: '' };
  let parts: string[];
  try {
    parts = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  } catch {
    return nonResource;
  }
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) [group, version, rest] = ['', parts[1] ?? '', parts.slice(2)];
  else if (parts[0] === 'apis' && parts.length >= 4) [group, version, rest] = [parts[1] ?? '', parts[2] ?? '', parts.slice(3)];
  else return nonResource;

  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1] ?? '';
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2] ?? '')) rest = rest.slice(2);
  }
  const [resource = '', name = '', subresource = ''] = rest;
  let verb = VERBS[method.toUpperCase()] ?? method.toLowerCase();
  let objectName = name;
  if (name === '') {
    if (verb === 'get') verb = truthy(url.searchParams.get('watch')) ? 'watch' : 'list';
    if (verb === 'delete') verb = 'deletecollection';
    // A list or watch of one object by name is authorized as that object, as Kubernetes does.
    if (verb === 'list' || verb === 'watch') {
      const m = /(?:^|,)metadata\.name==?([^,]+)/.exec(url.searchParams.get('fieldSelector') ?? '');
      if (m?.[1] !== undefined) objectName = m[1];
    }
  }
  return { resourceRequest: true, verb, path, apiGroup: group, apiVersion: version, namespace, resource, subresource, name: objectName };
}

/** kube-apiserver's 403 for a request its authorizer denied. */
export function forbidden(user: UserInfo, a: RequestAttributes, reason = ''): ApiError {
  const who = `User ${JSON.stringify(user.username)}`;
  let why: string;
  if (!a.resourceRequest) why = `${who} cannot ${a.verb} path ${JSON.stringify(a.path)}`;
  else {
    const resource = a.subresource === '' ? a.resource : `${a.resource}/${a.subresource}`;
    const scope = a.namespace === '' ? 'at the cluster scope' : `in the namespace ${JSON.stringify(a.namespace)}`;
    why = `${who} cannot ${a.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(a.apiGroup)} ${scope}`;
  }
  if (reason !== '') why += `: ${reason}`;
  if (!a.resourceRequest || a.resource === '') return new ApiError(403, 'Forbidden', `forbidden: ${why}`, {});
  const qualified = a.apiGroup === '' ? a.resource : `${a.resource}.${a.apiGroup}`;
  const message = a.name === '' ? `${qualified} is forbidden: ${why}` : `${qualified} ${JSON.stringify(a.name)} is forbidden: ${why}`;
  return new ApiError(403, 'Forbidden', message, { ...(a.name === '' ? {} : { name: a.name }), ...(a.apiGroup === '' ? {} : { group: a.apiGroup }), kind: a.resource });
}
