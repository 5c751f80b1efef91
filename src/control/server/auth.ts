// Authentication: who a request is. The admin is whoever holds the admin bearer token (or opens
// the owner-only unix socket, or any caller of a loopback listener started without a token); a
// ServiceAccount is whoever presents a token the server issued for it (service-account-tokens.ts)
// while the account still exists. Token comparison is constant-time: both sides are hashed first,
// so neither the token's content nor its length leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { TokenSigner } from './service-account-tokens.js';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
}

/** The admin, a system:masters member as in Kubernetes: allowed everything, under any authorizer. */
export const ADMIN_USER: UserInfo = { username: 'system:admin', groups: ['system:masters', 'system:authenticated'] };
export const MASTERS_GROUP = 'system:masters';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The token of an "Authorization: Bearer <token>" header, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
}

/** A checker for "Authorization: Bearer <token>" headers. */
export function bearerTokenChecker(token: string): (authorization: string | undefined) => boolean {
  if (token === '') throw new Error('the API token must not be empty');
  const expected = digest(token);
  return (authorization) => {
    const given = bearerToken(authorization);
    return given !== undefined && timingSafeEqual(digest(given), expected);
  };
}

export function serviceAccountUser(namespace: string, name: string, uid: string): UserInfo {
  return { username: `system:serviceaccount:${namespace}:${name}`, uid, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'] };
}

/**
 * Who an Authorization header says the caller is, or undefined (401): the admin token, else a
 * ServiceAccount token whose account still exists with the UID it names.
 */
export function authenticator(adminToken: string, store: Store, signer: TokenSigner | undefined): (authorization: string | undefined) => UserInfo | undefined {
  const isAdmin = bearerTokenChecker(adminToken);
  return (authorization) => {
    if (isAdmin(authorization)) return ADMIN_USER;
    const token = bearerToken(authorization);
    const claims = token === undefined ? undefined : signer?.verify(token);
    if (claims === undefined) return undefined;
    const { namespace, serviceaccount } = claims['kubernetes.io'];
    const sa = store.get('serviceaccounts', namespace, serviceaccount.name);
    if (sa === undefined || sa.metadata.uid !== serviceaccount.uid || sa.metadata.deletionTimestamp !== undefined) return undefined;
    return serviceAccountUser(namespace, serviceaccount.name, serviceaccount.uid);
  };
}
