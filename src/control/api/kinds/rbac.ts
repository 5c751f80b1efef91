// Role, ClusterRole, RoleBinding and ClusterRoleBinding, validated as Kubernetes' RBAC validation
// does: names are path segments (so "system:controller:x" is a name), rules need verbs and either
// resources with API groups or (cluster roles only) non-resource URLs, a binding's roleRef names a
// Role or ClusterRole of the RBAC group and never changes, and subjects are ServiceAccounts, Users
// or Groups with the API group each kind takes.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject } from '../types/rbac.js';
import { RBAC_GROUP } from '../types/rbac.js';
import { type FieldError, index, invalid, notSupported, required } from '../validation/field-errors.js';
import { isDNS1123Subdomain } from '../validation/names.js';
import { kindSchema, labelSelector, str, strings } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

/** Kubernetes' path segment names: anything but ".", ".." and names with "/" or "%". */
export function isPathSegmentName(name: string): string[] {
  const errs: string[] = [];
  for (const bad of ['.', '..']) if (name === bad) errs.push(`may not be '${bad}'`);
  for (const bad of ['/', '%']) if (name.includes(bad)) errs.push(`may not contain '${bad}'`);
  return errs;
}

const rule = z.looseObject({ verbs: strings, apiGroups: strings, resources: strings, resourceNames: strings, nonResourceURLs: strings });
const rules = z.array(rule).optional();
const subjects = z.array(z.looseObject({ kind: str, apiGroup: str, name: str, namespace: str })).optional();
const roleRef = z.looseObject({ apiGroup: str, kind: str, name: str }).optional();

function validateRule(r: PolicyRule, namespaced: boolean, path: string): FieldError[] {
  const errs: FieldError[] = [];
  if ((r.verbs ?? []).length === 0) errs.push(required(`${path}.verbs`, 'verbs must contain at least one value'));
  if ((r.nonResourceURLs ?? []).length > 0) {
    if (namespaced) errs.push(invalid(`${path}.nonResourceURLs`, r.nonResourceURLs, 'namespaced rules cannot apply to non-resource URLs'));
    if ((r.apiGroups ?? []).length > 0 || (r.resources ?? []).length > 0) {
      errs.push(invalid(`${path}.nonResourceURLs`, r.nonResourceURLs, 'rules cannot apply to both regular resources and non-resource URLs'));
    }
    return errs;
  }
  if ((r.apiGroups ?? []).length === 0) errs.push(required(`${path}.apiGroups`, 'resource rules must supply at least one api group'));
  if ((r.resources ?? []).length === 0) errs.push(required(`${path}.resources`, 'resource rules must supply at least one resource'));
  return errs;
}

function validateRules(list: readonly PolicyRule[] | undefined, namespaced: boolean): FieldError[] {
  return (list ?? []).flatMap((r, i) => validateRule(r, namespaced, index('rules', i)));
}

function validateRoleRef(ref: RoleRef | undefined, kinds: readonly string[]): FieldError[] {
  const errs: FieldError[] = [];
  if (ref?.apiGroup !== RBAC_GROUP) errs.push(notSupported('roleRef.apiGroup', ref?.apiGroup ?? '', [RBAC_GROUP]));
  if (!kinds.includes(ref?.kind ?? '')) errs.push(notSupported('roleRef.kind', ref?.kind ?? '', kinds));
  if (!ref?.name) errs.push(required('roleRef.name'));
  else errs.push(...isPathSegmentName(ref.name).map((m) => invalid('roleRef.name', ref.name, m)));
  return errs;
}

function validateSubject(s: Subject, namespaced: boolean, path: string): FieldError[] {
  const errs: FieldError[] = [];
  if (!s.name) errs.push(required(`${path}.name`));
  switch (s.kind) {
    case 'ServiceAccount':
      if (s.name) errs.push(...isDNS1123Subdomain(s.name).map((m) => invalid(`${path}.name`, s.name, m)));
      if ((s.apiGroup ?? '') !== '') errs.push(notSupported(`${path}.apiGroup`, s.apiGroup, ['']));
      if (!namespaced && !s.namespace) errs.push(required(`${path}.namespace`));
      break;
    case 'User':
    case 'Group':
      if (s.apiGroup !== RBAC_GROUP) errs.push(notSupported(`${path}.apiGroup`, s.apiGroup ?? '', [RBAC_GROUP]));
      break;
    default:
      errs.push(notSupported(`${path}.kind`, s.kind ?? '', ['ServiceAccount', 'User', 'Group']));
  }
  return errs;
}

function validateSubjects(list: readonly Subject[] | undefined, namespaced: boolean): FieldError[] {
  return (list ?? []).flatMap((s, i) => validateSubject(s, namespaced, index('subjects', i)));
}

function roleRefUnchanged(ref: RoleRef, old: RoleRef): FieldError[] {
  return isDeepStrictEqual(ref, old) ? [] : [invalid('roleRef', ref, 'cannot change roleRef')];
}

export const roleStrategy = defineStrategy<Role>({
  schema: kindSchema({ rules }),
  nameCheck: isPathSegmentName,
  validate: (role) => validateRules(role.rules, true),
});

export const clusterRoleStrategy = defineStrategy<ClusterRole>({
  schema: kindSchema({ rules, aggregationRule: z.looseObject({ clusterRoleSelectors: z.array(labelSelector.unwrap()).optional() }).optional() }),
  nameCheck: isPathSegmentName,
  validate(role) {
    const errs = validateRules(role.rules, false);
    if (role.aggregationRule !== undefined && (role.aggregationRule.clusterRoleSelectors ?? []).length === 0) {
      errs.push(required('aggregationRule.clusterRoleSelectors', 'at least one clusterRoleSelector required if aggregationRule is non-nil'));
    }
    return errs;
  },
});

export const roleBindingStrategy = defineStrategy<RoleBinding>({
  schema: kindSchema({ subjects, roleRef }),
  nameCheck: isPathSegmentName,
  validate: (b) => [...validateRoleRef(b.roleRef, ['Role', 'ClusterRole']), ...validateSubjects(b.subjects, true)],
  validateUpdate: (b, old) => roleRefUnchanged(b.roleRef, old.roleRef),
});

export const clusterRoleBindingStrategy = defineStrategy<ClusterRoleBinding>({
  schema: kindSchema({ subjects, roleRef }),
  nameCheck: isPathSegmentName,
  validate: (b) => [...validateRoleRef(b.roleRef, ['ClusterRole']), ...validateSubjects(b.subjects, false)],
  validateUpdate: (b, old) => roleRefUnchanged(b.roleRef, old.roleRef),
});
