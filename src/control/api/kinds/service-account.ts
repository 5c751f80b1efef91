// ServiceAccount: an identity for workloads, whose tokens the API server issues (TokenRequest,
// serviceaccounts/NAME/token) and RBAC binds to roles. Only the name is checked, as Kubernetes does.
import type { ServiceAccount } from '../types/rbac.js';
import { bool, kindSchema, str } from '../validation/schemas.js';
import { z } from 'zod';
import { defineStrategy } from './strategy.js';

const schema = kindSchema({
  secrets: z.array(z.looseObject({ name: str, namespace: str })).optional(),
  imagePullSecrets: z.array(z.looseObject({ name: str })).optional(),
  automountServiceAccountToken: bool,
});

export const serviceAccountStrategy = defineStrategy<ServiceAccount>({
  schema,
  validate() {
    return [];
  },
});
