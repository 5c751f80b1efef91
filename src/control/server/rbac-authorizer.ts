// Authorization. Two modes, as kube-apiserver's --authorization-mode: AlwaysAllow (every
// authenticated caller may do everything) and RBAC, where the admin (system:masters) may do
// everything and everyone else what their bindings grant: ClusterRoleBindings everywhere,
// RoleBindings in their namespace (to a Role there or a ClusterRole), with Kubernetes' matching of
// verbs, API groups, resources ("*", "*/sub"), resource names and non-resource URLs ("/x/*").
// Every authenticated caller also holds what Kubernetes' bootstrap roles system:discovery,
// system:public-info-viewer and system:basic-user grant them: discovery, health and version, and
// asking about themselves (the self reviews).
import type { ClusterRoleBinding, PolicyRule, RoleBinding, Subject } from '../api/types/rbac.js';
import type { Store } from '../store/store.js';
import { MASTERS_GROUP, type UserInfo } from './auth.js';
import type { RequestAttributes } from './request-attributes.js';

export type AuthorizationMode = 'AlwaysAllow' | 'RBAC';

export interface Rules {
  resourceRules: { verbs: string[]; apiGroups: string[]; resources: string[]; resourceNames?: string[] }[];
  nonResourceRules: { verbs: string[]; nonResourceURLs: string[] }[];
}

export interface Authorizer {
  allowed(user: UserInfo, a: RequestAttributes): boolean;
  /** What the user may do in a namespace, as SelfSubjectRulesReview lists it. */
  rulesFor(user: UserInfo, namespace: string): Rules;
}

const EVERYTHING: PolicyRule[] = [
  { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
  { verbs: ['*'], nonResourceURLs: ['*'] },
];

/** What every authenticated user holds (Kubernetes' bootstrap roles for system:authenticated). */
export const AUTHENTICATED_RULES: readonly PolicyRule[] = [
  { verbs: ['create'], apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'] },
  { verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'] },
  { verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/version', '/version/', '/openapi', '/openapi/*'] },
];

function has(list: readonly string[] | undefined, value: string): boolean {
  return (list ?? []).some((x) => x === '*' || x === value);
}

function resourceMatches(rule: PolicyRule, resource: string, subresource: string): boolean {
  const combined = subresource === '' ? resource : `${resource}/${subresource}`;
  return (rule.resources ?? []).some((r) => r === '*' || r === combined || (subresource !== '' && r === `*/${subresource}`));
}

function nonResourceMatches(rule: PolicyRule, path: string): boolean {
  return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === path || (u.endsWith('*') && path.startsWith(u.slice(0, -1))));
}

export function ruleAllows(rule: PolicyRule, a: RequestAttributes): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  if (!a.resourceRequest) return nonResourceMatches(rule, a.path);
  if ((rule.nonResourceURLs ?? []).length > 0 && (rule.resources ?? []).length === 0) return false;
  if (!has(rule.apiGroups, a.apiGroup) || !resourceMatches(rule, a.resource, a.subresource)) return false;
  return (rule.resourceNames ?? []).length === 0 || (rule.resourceNames ?? []).includes(a.name);
}

/** Whether a binding's subject is the user; a RoleBinding's ServiceAccount defaults to its namespace. */
export function subjectIs(s: Subject, user: UserInfo, bindingNamespace: string): boolean {
  switch (s.kind) {
    case 'User':
      return s.name === user.username;
    case 'Group':
      return user.groups.includes(s.name);
    case 'ServiceAccount':
      return `system:serviceaccount:${s.namespace || bindingNamespace}:${s.name}` === user.username;
    default:
      return false;
  }
}

function isAdmin(user: UserInfo): boolean {
  return user.groups.includes(MASTERS_GROUP);
}

/** The rules the user's bindings grant in a namespace ('' = cluster-wide ones only). */
function grantedRules(store: Store, user: UserInfo, namespace: string): PolicyRule[] {
  const clusterRole = (name: string): PolicyRule[] => store.get('clusterroles', undefined, name)?.rules ?? [];
  const out: PolicyRule[] = [...AUTHENTICATED_RULES];
  for (const b of store.list('clusterrolebindings').items as ClusterRoleBinding[]) {
    if (b.roleRef.kind === 'ClusterRole' && (b.subjects ?? []).some((s) => subjectIs(s, user, ''))) out.push(...clusterRole(b.roleRef.name));
  }
  if (namespace === '') return out;
  for (const b of store.list('rolebindings', { namespace }).items as RoleBinding[]) {
    if (!(b.subjects ?? []).some((s) => subjectIs(s, user, namespace))) continue;
    if (b.roleRef.kind === 'ClusterRole') out.push(...clusterRole(b.roleRef.name));
    else out.push(...(store.get('roles', namespace, b.roleRef.name)?.rules ?? []));
  }
  return out;
}

function asRules(rules: readonly PolicyRule[]): Rules {
  return {
    resourceRules: rules
      .filter((r) => (r.nonResourceURLs ?? []).length === 0)
      .map((r) => ({ verbs: r.verbs, apiGroups: r.apiGroups ?? [], resources: r.resources ?? [], ...((r.resourceNames ?? []).length > 0 ? { resourceNames: r.resourceNames } : {}) })),
    nonResourceRules: rules.filter((r) => (r.nonResourceURLs ?? []).length > 0).map((r) => ({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs ?? [] })),
  };
}

export const alwaysAllow: Authorizer = {
  allowed: () => true,
  rulesFor: () => asRules([...EVERYTHING, ...AUTHENTICATED_RULES]),
};

export function rbacAuthorizer(store: Store): Authorizer {
  return {
    allowed(user, a) {
      if (isAdmin(user)) return true;
      return grantedRules(store, user, a.namespace).some((r) => ruleAllows(r, a));
    },
    rulesFor(user, namespace) {
      return asRules(isAdmin(user) ? [...EVERYTHING, ...AUTHENTICATED_RULES] : grantedRules(store, user, namespace));
    },
  };
}

export function authorizerFor(mode: AuthorizationMode, store: Store): Authorizer {
  return mode === 'RBAC' ? rbacAuthorizer(store) : alwaysAllow;
}

