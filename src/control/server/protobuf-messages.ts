// The protobuf messages kubectl's typed commands send (`kubectl create namespace|configmap|secret|
// serviceaccount|token|priorityclass|quota|role|rolebinding|clusterrole|clusterrolebinding`, `kubectl
// auth reconcile|can-i|whoami`), as tables
// of field number → JSON name and type. Field numbers are those of k8s.io/api's generated.proto
// (core/v1, rbac/v1, scheduling/v1, authentication/v1, authorization/v1) and k8s.io/apimachinery's
// pkg/apis/meta/v1/generated.proto; the JSON names are the Go types' json tags.
//
// Why tables and not a .proto for protobufjs: the decoder must also know which zero values the
// JSON form omits (Go's `omitempty`): gogo-protobuf writes every non-pointer scalar, so the empty
// strings and zeros kubectl's bytes carry must be dropped unless the Go field is a pointer or has
// no omitempty (`keep`). A table states both facts beside the number; a .proto cannot.

/** `quantity`: resource.Quantity, a message whose field 1 is the quantity's text. */
export type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64' | 'time' | 'fieldsV1' | 'quantity';

export interface FieldSpec {
  /** The JSON name. */
  name: string;
  /** For a map, the type of its values (keys are strings). */
  type: Scalar | MessageSpec;
  repeated?: true;
  map?: true;
  /** Kept when zero: a Go pointer (present means set) or a field without omitempty. */
  keep?: true;
}

export interface MessageSpec {
  /** The Go type name, for error messages. */
  name: string;
  fields: Readonly<Record<number, FieldSpec>>;
}

const message = (name: string, fields: Record<number, FieldSpec>): MessageSpec => ({ name, fields });
const str = (name: string, keep?: true): FieldSpec => ({ name, type: 'string', ...(keep ? { keep } : {}) });
const strings = (name: string): FieldSpec => ({ name, type: 'string', repeated: true });
const stringMap = (name: string): FieldSpec => ({ name, type: 'string', map: true });

// k8s.io/apimachinery/pkg/apis/meta/v1

const ownerReference = message('OwnerReference', {
  1: str('kind', true),
  3: str('name', true),
  4: str('uid', true),
  5: str('apiVersion', true),
  6: { name: 'controller', type: 'bool', keep: true },
  7: { name: 'blockOwnerDeletion', type: 'bool', keep: true },
});

const managedFieldsEntry = message('ManagedFieldsEntry', {
  1: str('manager'),
  2: str('operation'),
  3: str('apiVersion'),
  4: { name: 'time', type: 'time', keep: true },
  6: str('fieldsType'),
  7: { name: 'fieldsV1', type: 'fieldsV1', keep: true },
  8: str('subresource'),
});

export const objectMeta = message('ObjectMeta', {
  1: str('name'),
  2: str('generateName'),
  3: str('namespace'),
  4: str('selfLink'),
  5: str('uid'),
  6: str('resourceVersion'),
  7: { name: 'generation', type: 'int64' },
  8: { name: 'creationTimestamp', type: 'time' },
  9: { name: 'deletionTimestamp', type: 'time', keep: true },
  10: { name: 'deletionGracePeriodSeconds', type: 'int64', keep: true },
  11: stringMap('labels'),
  12: stringMap('annotations'),
  13: { name: 'ownerReferences', type: ownerReference, repeated: true },
  14: strings('finalizers'),
  17: { name: 'managedFields', type: managedFieldsEntry, repeated: true },
});

const labelSelectorRequirement = message('LabelSelectorRequirement', {
  1: str('key', true),
  2: str('operator', true),
  3: strings('values'),
});

const labelSelector = message('LabelSelector', {
  1: stringMap('matchLabels'),
  2: { name: 'matchExpressions', type: labelSelectorRequirement, repeated: true },
});

const metadata: FieldSpec = { name: 'metadata', type: objectMeta };

// k8s.io/api/core/v1

const namespaceCondition = message('NamespaceCondition', {
  1: str('type', true),
  2: str('status', true),
  4: { name: 'lastTransitionTime', type: 'time' },
  5: str('reason'),
  6: str('message'),
});

const namespace = message('Namespace', {
  1: metadata,
  2: { name: 'spec', type: message('NamespaceSpec', { 1: strings('finalizers') }) },
  3: { name: 'status', type: message('NamespaceStatus', { 1: str('phase'), 2: { name: 'conditions', type: namespaceCondition, repeated: true } }) },
});

const configMap = message('ConfigMap', {
  1: metadata,
  2: stringMap('data'),
  3: { name: 'binaryData', type: 'bytes', map: true },
  4: { name: 'immutable', type: 'bool', keep: true },
});

const secret = message('Secret', {
  1: metadata,
  2: { name: 'data', type: 'bytes', map: true },
  3: str('type'),
  4: stringMap('stringData'),
  5: { name: 'immutable', type: 'bool', keep: true },
});

const quantityMap = (name: string): FieldSpec => ({ name, type: 'quantity', map: true });

const resourceQuota = message('ResourceQuota', {
  1: metadata,
  2: {
    name: 'spec',
    type: message('ResourceQuotaSpec', {
      1: quantityMap('hard'),
      2: strings('scopes'),
      3: {
        name: 'scopeSelector',
        type: message('ScopeSelector', {
          1: { name: 'matchExpressions', type: message('ScopedResourceSelectorRequirement', { 1: str('scopeName', true), 2: str('operator', true), 3: strings('values') }), repeated: true },
        }),
      },
    }),
  },
  3: { name: 'status', type: message('ResourceQuotaStatus', { 1: quantityMap('hard'), 2: quantityMap('used') }) },
});

const objectReference = message('ObjectReference', {
  1: str('kind'),
  2: str('namespace'),
  3: str('name'),
  4: str('uid'),
  5: str('apiVersion'),
  6: str('resourceVersion'),
  7: str('fieldPath'),
});

const serviceAccount = message('ServiceAccount', {
  1: metadata,
  2: { name: 'secrets', type: objectReference, repeated: true },
  3: { name: 'imagePullSecrets', type: message('LocalObjectReference', { 1: str('name') }), repeated: true },
  4: { name: 'automountServiceAccountToken', type: 'bool', keep: true },
});

// k8s.io/api/authentication/v1 (the proto names BoundObjectReference's fields aPIVersion and uID)

const tokenRequest = message('TokenRequest', {
  1: metadata,
  2: {
    name: 'spec',
    keep: true,
    type: message('TokenRequestSpec', {
      1: { name: 'audiences', type: 'string', repeated: true, keep: true },
      3: { name: 'boundObjectRef', keep: true, type: message('BoundObjectReference', { 1: str('kind'), 2: str('apiVersion'), 3: str('name'), 4: str('uid') }) },
      4: { name: 'expirationSeconds', type: 'int64', keep: true },
    }),
  },
  3: { name: 'status', type: message('TokenRequestStatus', { 1: str('token'), 2: { name: 'expirationTimestamp', type: 'time' } }) },
});

// k8s.io/api/scheduling/v1

const priorityClass = message('PriorityClass', {
  1: metadata,
  2: { name: 'value', type: 'int32', keep: true },
  3: { name: 'globalDefault', type: 'bool' },
  4: str('description'),
  5: { name: 'preemptionPolicy', type: 'string', keep: true },
});

// k8s.io/api/rbac/v1

const policyRule = message('PolicyRule', {
  1: { name: 'verbs', type: 'string', repeated: true, keep: true },
  2: strings('apiGroups'),
  3: strings('resources'),
  4: strings('resourceNames'),
  5: strings('nonResourceURLs'),
});

const subject = message('Subject', { 1: str('kind', true), 2: str('apiGroup'), 3: str('name', true), 4: str('namespace') });
const roleRef = message('RoleRef', { 1: str('apiGroup', true), 2: str('kind', true), 3: str('name', true) });
const rules: FieldSpec = { name: 'rules', type: policyRule, repeated: true };
const subjects: FieldSpec = { name: 'subjects', type: subject, repeated: true };
const roleRefField: FieldSpec = { name: 'roleRef', type: roleRef, keep: true };

const role = message('Role', { 1: metadata, 2: rules });
const clusterRole = message('ClusterRole', {
  1: metadata,
  2: rules,
  3: { name: 'aggregationRule', keep: true, type: message('AggregationRule', { 1: { name: 'clusterRoleSelectors', type: labelSelector, repeated: true } }) },
});
const roleBinding = message('RoleBinding', { 1: metadata, 2: subjects, 3: roleRefField });
const clusterRoleBinding = message('ClusterRoleBinding', { 1: metadata, 2: subjects, 3: roleRefField });

// k8s.io/api/authorization/v1 and authentication/v1's reviews (`kubectl auth can-i`, `auth whoami`):
// only what the caller asks; the status the server fills in is not read.

const selectorAttributes = (name: string, requirement: MessageSpec): MessageSpec =>
  message(name, { 1: str('rawSelector'), 2: { name: 'requirements', type: requirement, repeated: true } });

const resourceAttributes = message('ResourceAttributes', {
  1: str('namespace'),
  2: str('verb'),
  3: str('group'),
  4: str('version'),
  5: str('resource'),
  6: str('subresource'),
  7: str('name'),
  8: { name: 'fieldSelector', keep: true, type: selectorAttributes('FieldSelectorAttributes', message('FieldSelectorRequirement', { 1: str('key', true), 2: str('operator', true), 3: strings('values') })) },
  9: { name: 'labelSelector', keep: true, type: selectorAttributes('LabelSelectorAttributes', labelSelectorRequirement) },
});

const selfSubjectAccessReview = message('SelfSubjectAccessReview', {
  1: metadata,
  2: {
    name: 'spec',
    keep: true,
    type: message('SelfSubjectAccessReviewSpec', {
      1: { name: 'resourceAttributes', type: resourceAttributes, keep: true },
      2: { name: 'nonResourceAttributes', type: message('NonResourceAttributes', { 1: str('path'), 2: str('verb') }), keep: true },
    }),
  },
});

const selfSubjectRulesReview = message('SelfSubjectRulesReview', { 1: metadata, 2: { name: 'spec', keep: true, type: message('SelfSubjectRulesReviewSpec', { 1: str('namespace') }) } });
const selfSubjectReview = message('SelfSubjectReview', { 1: metadata });

const RBAC = 'rbac.authorization.k8s.io/v1';

/** The messages decoded, by "apiVersion kind" (the runtime.Unknown envelope's typeMeta). */
export const PROTOBUF_KINDS: ReadonlyMap<string, MessageSpec> = new Map([
  ['v1 Namespace', namespace],
  ['v1 ConfigMap', configMap],
  ['v1 Secret', secret],
  ['v1 ServiceAccount', serviceAccount],
  ['v1 ResourceQuota', resourceQuota],
  ['authentication.k8s.io/v1 TokenRequest', tokenRequest],
  ['scheduling.k8s.io/v1 PriorityClass', priorityClass],
  [`${RBAC} Role`, role],
  [`${RBAC} RoleBinding`, roleBinding],
  [`${RBAC} ClusterRole`, clusterRole],
  [`${RBAC} ClusterRoleBinding`, clusterRoleBinding],
  ['authorization.k8s.io/v1 SelfSubjectAccessReview', selfSubjectAccessReview],
  ['authorization.k8s.io/v1 SelfSubjectRulesReview', selfSubjectRulesReview],
  ['authentication.k8s.io/v1 SelfSubjectReview', selfSubjectReview],
]);
