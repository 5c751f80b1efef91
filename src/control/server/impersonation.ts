// Impersonation (Impersonate-User / Impersonate-Group / Impersonate-Uid headers, `kubectl --as`):
// the request then runs as that user, if the caller may "impersonate" users (or that
// ServiceAccount), each group and the uid. The result is what Kubernetes makes of it: the named
// user in the named groups, plus the ServiceAccount groups for a ServiceAccount name and
// system:authenticated.
import { BadRequestError } from '../store/errors.js';
import type { UserInfo } from './auth.js';
import type { Authorizer } from './rbac-authorizer.js';
import { forbidden, type RequestAttributes } from './request-attributes.js';

const SA_PREFIX = 'system:serviceaccount:';

function impersonate(resource: string, name: string, namespace = '', apiGroup = ''): RequestAttributes {
  return { resourceRequest: true, verb: 'impersonate', path: '', apiGroup, apiVersion: '', namespace, resource, subresource: '', name };
}

/** The user a request acts as (`headers`: each header's values, as req.headersDistinct gives them): the caller, or whom it impersonates (a 403 when it may not). */
export function actingUser(caller: UserInfo, headers: NodeJS.Dict<string[]>, authorizer: Authorizer): UserInfo {
  const username = headers['impersonate-user']?.[0];
  const groups = headers['impersonate-group'] ?? [];
  const uid = headers['impersonate-uid']?.[0];
  if (username === undefined) {
    if (groups.length > 0 || uid !== undefined) throw new BadRequestError(`requested ${groups.length > 0 ? 'groups' : 'uid'} without impersonating a user`);
    return caller;
  }
  const checks: RequestAttributes[] = [];
  const sa = username.startsWith(SA_PREFIX) ? username.slice(SA_PREFIX.length).split(':') : undefined;
  if (sa !== undefined && sa.length === 2) checks.push(impersonate('serviceaccounts', sa[1] ?? '', sa[0] ?? ''));
  else checks.push(impersonate('users', username));
  for (const g of groups) checks.push(impersonate('groups', g));
  if (uid !== undefined) checks.push(impersonate('uids', uid, '', 'authentication.k8s.io'));
  for (const a of checks) if (!authorizer.allowed(caller, a)) throw forbidden(caller, a);

  const all = [...groups];
  if (sa !== undefined && sa.length === 2) all.push('system:serviceaccounts', `system:serviceaccounts:${sa[0] ?? ''}`);
  if (username !== 'system:anonymous' && !all.includes('system:authenticated')) all.push('system:authenticated');
  return { username, ...(uid === undefined ? {} : { uid }), groups: [...new Set(all)] };
}
