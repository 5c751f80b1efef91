// RBAC: the kinds' validation (through the store), what a request asks (request attributes), rule
// matching, the authorizer over stored roles and bindings, Kubernetes' 403 wording, ServiceAccount
// tokens (issue, verify, expiry, tampering) and TokenRequest's bounds — table-driven on in-memory
// objects — then the real HTTPS server in RBAC mode: a ServiceAccount token allowed what its
// binding grants, refused the rest with the 403 Status, dead once the account is deleted, and
// impersonation allowed to the admin only.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import type { PolicyRule } from '../../src/control/api/types/rbac.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { ADMIN_USER, serviceAccountUser, type UserInfo } from '../../src/control/server/auth.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { rbacAuthorizer, ruleAllows } from '../../src/control/server/rbac-authorizer.js';
import { forbidden, type RequestAttributes, requestAttributes } from '../../src/control/server/request-attributes.js';
import { API_AUDIENCE, TokenSigner } from '../../src/control/server/service-account-tokens.js';
import { answerTokenRequest } from '../../src/control/server/token-request.js';
import { ApiError, InvalidError, NotFoundError, toStatus } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

const RBAC = 'rbac.authorization.k8s.io/v1';

function obj(kind: string, name: string, namespace: string | undefined, rest: object): KubeObject {
  return { apiVersion: kind === 'ServiceAccount' || kind === 'Namespace' ? 'v1' : RBAC, kind, metadata: { name, ...(namespace === undefined ? {} : { namespace }) }, ...rest } as KubeObject;
}

function causes(write: () => unknown): string[] {
  try {
    write();
  } catch (err) {
    assert.ok(err instanceof InvalidError, `expected Invalid, got ${String(err)}`);
    return err.causes.map(errorMessage);
  }
  assert.fail('the write was accepted');
}

describe('RBAC kinds: validation', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  const ref = { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' };
  const cases: { name: string; object: KubeObject; want: string[] }[] = [
    { name: 'a rule without verbs', object: obj('Role', 'r', 'default', { rules: [{ apiGroups: [''], resources: ['pods'] }] }), want: ['rules[0].verbs: Required value: verbs must contain at least one value'] },
    {
      name: 'a resource rule without groups or resources',
      object: obj('ClusterRole', 'c', undefined, { rules: [{ verbs: ['get'] }] }),
      want: ['rules[0].apiGroups: Required value: resource rules must supply at least one api group', 'rules[0].resources: Required value: resource rules must supply at least one resource'],
    },
    {
      name: 'non-resource URLs in a Role',
      object: obj('Role', 'r', 'default', { rules: [{ verbs: ['get'], nonResourceURLs: ['/healthz'] }] }),
      want: ['rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs'],
    },
    {
      name: 'non-resource URLs beside resources',
      object: obj('ClusterRole', 'c', undefined, { rules: [{ verbs: ['get'], nonResourceURLs: ['/x'], apiGroups: [''], resources: ['pods'] }] }),
      want: ['rules[0].nonResourceURLs: Invalid value: ["/x"]: rules cannot apply to both regular resources and non-resource URLs'],
    },
    { name: 'a name with a slash', object: obj('ClusterRole', 'a/b', undefined, { rules: [] }), want: ["metadata.name: Invalid value: \"a/b\": may not contain '/'"] },
    {
      name: 'a ClusterRoleBinding to a Role',
      object: obj('ClusterRoleBinding', 'b', undefined, { roleRef: ref, subjects: [] }),
      want: ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
    },
    {
      name: 'bad subjects',
      object: obj('ClusterRoleBinding', 'b', undefined, {
        roleRef: { ...ref, kind: 'ClusterRole' },
        subjects: [{ kind: 'ServiceAccount', name: 'sa' }, { kind: 'User', name: 'u' }, { kind: 'Robot', name: 'x' }],
      }),
      want: [
        'subjects[0].namespace: Required value',
        'subjects[1].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"',
        'subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
      ],
    },
    { name: 'a roleRef of another group', object: obj('RoleBinding', 'b', 'default', { roleRef: { ...ref, apiGroup: 'x' } }), want: ['roleRef.apiGroup: Unsupported value: "x": supported values: "rbac.authorization.k8s.io"'] },
  ];
  for (const c of cases) it(`refuses ${c.name}`, () => assert.deepEqual(causes(() => store.create(c.object)), c.want));

  it('accepts system-style names, and never lets a binding change its roleRef', () => {
    store.create(obj('ClusterRole', 'system:controller:x', undefined, { rules: [{ verbs: ['get'], nonResourceURLs: ['/healthz'] }] }));
    const b = store.create(obj('RoleBinding', 'b', 'default', { roleRef: ref, subjects: [{ kind: 'ServiceAccount', name: 'sa' }] }));
    assert.deepEqual(
      causes(() => store.update({ ...b, roleRef: { ...ref, name: 'other' } } as KubeObject)),
      ['roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"other"}: cannot change roleRef'],
    );
  });
});

describe('request attributes', () => {
  const cases: [string, string, Partial<RequestAttributes>][] = [
    ['GET', '/api/v1/namespaces/ns/pods', { resourceRequest: true, verb: 'list', namespace: 'ns', resource: 'pods', name: '' }],
    ['GET', '/api/v1/namespaces/ns/pods?watch=true', { verb: 'watch', resource: 'pods' }],
    ['GET', '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dp', { verb: 'list', name: 'p' }],
    ['GET', '/api/v1/namespaces/ns/pods/p', { verb: 'get', name: 'p' }],
    ['PUT', '/api/v1/namespaces/ns/persistentvolumeclaims/c/status', { verb: 'update', resource: 'persistentvolumeclaims', subresource: 'status', name: 'c' }],
    ['DELETE', '/apis/storage.k8s.io/v1/storageclasses', { verb: 'deletecollection', apiGroup: 'storage.k8s.io', namespace: '', resource: 'storageclasses' }],
    ['POST', '/api/v1/namespaces/ns/serviceaccounts/sa/token', { verb: 'create', resource: 'serviceaccounts', subresource: 'token', name: 'sa' }],
    ['GET', '/api/v1/namespaces/ns', { verb: 'get', namespace: 'ns', resource: 'namespaces', name: 'ns' }],
    ['PUT', '/api/v1/namespaces/ns/finalize', { verb: 'update', namespace: 'ns', resource: 'namespaces', name: 'ns', subresource: 'finalize' }],
    ['GET', '/apis/storage.k8s.io/v1', { resourceRequest: false, verb: 'get', path: '/apis/storage.k8s.io/v1' }],
    ['GET', '/version', { resourceRequest: false, verb: 'get', path: '/version' }],
  ];
  for (const [method, path, want] of cases) {
    it(`${method} ${path}`, () => {
      const got = requestAttributes(method, new URL(path, 'https://x'));
      for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof RequestAttributes], v, k);
    });
  }
});

describe('rule matching', () => {
  const a = (over: Partial<RequestAttributes>): RequestAttributes => ({
    resourceRequest: true,
    verb: 'get',
    path: '',
    apiGroup: '',
    apiVersion: 'v1',
    namespace: 'ns',
    resource: 'pods',
    subresource: '',
    name: 'p',
    ...over,
  });
  const cases: [string, PolicyRule, RequestAttributes, boolean][] = [
    ['exact', { verbs: ['get'], apiGroups: [''], resources: ['pods'] }, a({}), true],
    ['another verb', { verbs: ['list'], apiGroups: [''], resources: ['pods'] }, a({}), false],
    ['another group', { verbs: ['get'], apiGroups: ['apps'], resources: ['pods'] }, a({}), false],
    ['wildcards', { verbs: ['*'], apiGroups: ['*'], resources: ['*'] }, a({ subresource: 'status' }), true],
    ['a subresource needs naming', { verbs: ['get'], apiGroups: [''], resources: ['pods'] }, a({ subresource: 'status' }), false],
    ['resource/subresource', { verbs: ['get'], apiGroups: [''], resources: ['pods/status'] }, a({ subresource: 'status' }), true],
    ['*/subresource', { verbs: ['get'], apiGroups: [''], resources: ['*/status'] }, a({ resource: 'nodes', subresource: 'status' }), true],
    ['a listed name', { verbs: ['get'], apiGroups: [''], resources: ['pods'], resourceNames: ['p'] }, a({}), true],
    ['an unlisted name', { verbs: ['get'], apiGroups: [''], resources: ['pods'], resourceNames: ['q'] }, a({}), false],
    ['a URL prefix', { verbs: ['get'], nonResourceURLs: ['/apis/*'] }, a({ resourceRequest: false, path: '/apis/x/v1' }), true],
    ['a URL rule for a resource', { verbs: ['get'], nonResourceURLs: ['*'] }, a({}), false],
  ];
  for (const [name, rule, attrs, want] of cases) it(name, () => assert.equal(ruleAllows(rule, attrs), want));
});

describe('the RBAC authorizer over stored bindings', () => {
  let store: Store;
  const reader = serviceAccountUser('team', 'reader', 'uid-1');
  const attrs = (method: string, path: string): RequestAttributes => requestAttributes(method, new URL(path, 'https://x'));
  beforeEach(() => {
    store = open(':memory:');
    store.create(obj('Namespace', 'team', undefined, {}) as KubeObject);
    store.create(obj('Role', 'pvc-reader', 'team', { rules: [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['persistentvolumeclaims'] }] }));
    store.create(obj('RoleBinding', 'rb', 'team', { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pvc-reader' }, subjects: [{ kind: 'ServiceAccount', name: 'reader' }] }));
    store.create(obj('ClusterRole', 'sc-viewer', undefined, { rules: [{ verbs: ['get', 'list'], apiGroups: ['storage.k8s.io'], resources: ['storageclasses'] }] }));
    store.create(
      obj('ClusterRoleBinding', 'all-sas', undefined, {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sc-viewer' },
        subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:serviceaccounts' }],
      }),
    );
  });
  afterEach(() => store.close());

  const cases: [string, UserInfo, string, string, boolean][] = [
    ['its Role in its namespace', reader, 'GET', '/api/v1/namespaces/team/persistentvolumeclaims', true],
    ['not in another namespace', reader, 'GET', '/api/v1/namespaces/default/persistentvolumeclaims', false],
    ['not another verb', reader, 'POST', '/api/v1/namespaces/team/persistentvolumeclaims', false],
    ['its group\'s ClusterRole everywhere', reader, 'GET', '/apis/storage.k8s.io/v1/storageclasses', true],
    ['discovery, as every authenticated user', reader, 'GET', '/apis', true],
    ['not other paths', reader, 'GET', '/metrics', false],
    ['another account: only the group\'s', serviceAccountUser('team', 'other', 'uid-2'), 'GET', '/api/v1/namespaces/team/persistentvolumeclaims', false],
    ['the admin: everything', ADMIN_USER, 'DELETE', '/api/v1/namespaces/team', true],
  ];
  for (const [name, user, method, path, want] of cases) it(name, () => assert.equal(rbacAuthorizer(store).allowed(user, attrs(method, path)), want));

  it('lists the rules of a namespace for SelfSubjectRulesReview', () => {
    const rules = rbacAuthorizer(store).rulesFor(reader, 'team');
    assert.ok(rules.resourceRules.some((r) => r.resources.includes('persistentvolumeclaims') && r.verbs.join() === 'get,list'));
    assert.ok(rules.resourceRules.some((r) => r.resources.includes('storageclasses')));
    assert.ok(!rbacAuthorizer(store).rulesFor(reader, 'default').resourceRules.some((r) => r.resources.includes('persistentvolumeclaims')));
  });
});

describe('403 wording', () => {
  const user = serviceAccountUser('team', 'reader', 'u');
  const cases: [string, string, string][] = [
    ['GET', '/api/v1/namespaces/team/pods', 'pods is forbidden: User "system:serviceaccount:team:reader" cannot list resource "pods" in API group "" in the namespace "team"'],
    ['GET', '/api/v1/nodes/n1', 'nodes "n1" is forbidden: User "system:serviceaccount:team:reader" cannot get resource "nodes" in API group "" at the cluster scope'],
    [
      'PATCH',
      '/apis/storage.k8s.io/v1/volumeattachments/va/status',
      'volumeattachments.storage.k8s.io "va" is forbidden: User "system:serviceaccount:team:reader" cannot patch resource "volumeattachments/status" in API group "storage.k8s.io" at the cluster scope',
    ],
    ['GET', '/metrics', 'forbidden: User "system:serviceaccount:team:reader" cannot get path "/metrics"'],
  ];
  for (const [method, path, want] of cases) {
    it(`${method} ${path}`, () => {
      const s = toStatus(forbidden(user, requestAttributes(method, new URL(path, 'https://x'))));
      assert.equal(s.code, 403);
      assert.equal(s.reason, 'Forbidden');
      assert.equal(s.message, want);
    });
  }
});

describe('ServiceAccount tokens and TokenRequest', () => {
  let dir: string;
  let signer: TokenSigner;
  let store: Store;
  const sa = { namespace: 'team', name: 'reader', uid: 'uid-1' };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-sa-'));
    signer = await TokenSigner.forStateDir(dir);
    store = open(':memory:');
    store.create(obj('Namespace', 'team', undefined, {}) as KubeObject);
    store.create(obj('ServiceAccount', 'reader', 'team', {}));
  });
  after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies its own tokens, for their lifetime and audience only', async () => {
    const now = Date.now();
    const { token, expires } = signer.issue(sa, [API_AUDIENCE], 3600, now);
    assert.equal(expires.getTime(), Math.floor(now / 1000) * 1000 + 3600_000);
    assert.equal(signer.verify(token, now)?.sub, 'system:serviceaccount:team:reader');
    assert.equal(signer.verify(token, now + 3601_000), undefined, 'expired');
    assert.equal(signer.verify(signer.issue(sa, ['vault'], 3600, now).token, now), undefined, 'another audience');
    const [h, p, s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p ?? '', 'base64url').toString()), sub: 'system:admin' })).toString('base64url');
    assert.equal(signer.verify(`${h}.${forged}.${s}`, now), undefined, 'tampered');
    const again = await TokenSigner.forStateDir(dir);
    assert.ok(again.verify(token, now), 'the key is kept across restarts');
    const otherDir = mkdtempSync(join(tmpdir(), 'stowage-sa2-'));
    try {
      assert.equal((await TokenSigner.forStateDir(otherDir)).verify(token, now), undefined, 'another cluster\'s key');
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  const outcome = (target: string, body: unknown): unknown => {
    try {
      const r = answerTokenRequest(store, signer, { namespace: 'team', name: target }, body) as { spec: unknown; status: { token: string } };
      return { spec: r.spec, verified: signer.verify(r.status.token)?.sub };
    } catch (err) {
      assert.ok(err instanceof ApiError);
      return { code: err.code, message: err.message, notFound: err instanceof NotFoundError };
    }
  };
  const cases: [string, string, unknown, unknown][] = [
    ['defaults: the API audience, one hour', 'reader', undefined, { spec: { audiences: [API_AUDIENCE], expirationSeconds: 3600, boundObjectRef: null }, verified: 'system:serviceaccount:team:reader' }],
    [
      'less than 10 minutes',
      'reader',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 60 } },
      { code: 422, message: 'TokenRequest "reader" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes', notFound: false },
    ],
    ['an account that does not exist', 'nobody', {}, { code: 404, message: 'serviceaccounts "nobody" not found', notFound: true }],
  ];
  for (const [name, target, body, want] of cases) it(name, () => assert.deepEqual(outcome(target, body), want));
});

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

describe('API server in RBAC mode', () => {
  const ADMIN = 'admin-token';
  let store: Store;
  let dir: string;
  let server: ApiServer;
  let ca: string;

  const call = (method: string, path: string, token: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        `${server.url}${path}`,
        { method, ca, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers } },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  before(async () => {
    store = open(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'stowage-rbac-'));
    const pki = await ensurePki(dir, ['127.0.0.1']);
    ca = pki.caPem;
    server = await startApiServer({
      store,
      listen: 'https://127.0.0.1:0',
      token: ADMIN,
      tls: { certPem: pki.certPem, keyPem: pki.keyPem },
      tokenSigner: await TokenSigner.forStateDir(dir),
      authorization: 'RBAC',
    });
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives a ServiceAccount token what its binding grants, a 403 for the rest, a 401 once the account is gone', async () => {
    assert.equal((await call('POST', '/api/v1/namespaces/default/serviceaccounts', ADMIN, obj('ServiceAccount', 'reader', 'default', {}))).status, 201);
    await call('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles', ADMIN, obj('Role', 'r', 'default', { rules: [{ verbs: ['list'], apiGroups: [''], resources: ['persistentvolumeclaims'] }] }));
    const rb = await call('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings', ADMIN, obj('RoleBinding', 'rb', 'default', { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' }, subjects: [{ kind: 'ServiceAccount', name: 'reader' }] }));
    assert.equal(rb.status, 201);
    const tr = await call('POST', '/api/v1/namespaces/default/serviceaccounts/reader/token', ADMIN, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} });
    assert.equal(tr.status, 201);
    const token = (tr.body['status'] as { token: string }).token;

    assert.equal((await call('GET', '/api/v1/namespaces/default/persistentvolumeclaims', token)).status, 200);
    const denied = await call('GET', '/api/v1/namespaces/default/pods', token);
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods is forbidden: User "system:serviceaccount:default:reader" cannot list resource "pods" in API group "" in the namespace "default"',
      reason: 'Forbidden',
      details: { kind: 'pods' },
      code: 403,
    });
    const ssar = await call('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', token, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { namespace: 'default', verb: 'create', resource: 'persistentvolumeclaims' } },
    });
    assert.deepEqual(ssar.body['status'], { allowed: false });
    // Its own token request is not granted either.
    assert.equal((await call('POST', '/api/v1/namespaces/default/serviceaccounts/reader/token', token, {})).status, 403);

    assert.equal((await call('DELETE', '/api/v1/namespaces/default/serviceaccounts/reader', ADMIN)).status, 200);
    assert.equal((await call('GET', '/api/v1/namespaces/default/persistentvolumeclaims', token)).status, 401);
  });

  it('lets the admin impersonate, and nobody else', async () => {
    const as = { 'impersonate-user': 'jane' };
    const ssar = await call(
      'POST',
      '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      ADMIN,
      { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { namespace: 'default', verb: 'list', resource: 'pods' } } },
      as,
    );
    assert.deepEqual(ssar.body['status'], { allowed: false }, 'jane has no bindings');
    const who = await call('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', ADMIN, { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }, { ...as, 'impersonate-group': 'devs' });
    assert.deepEqual(who.body['status'], { userInfo: { username: 'jane', groups: ['devs', 'system:authenticated'] } });

    await call('POST', '/api/v1/namespaces/default/serviceaccounts', ADMIN, obj('ServiceAccount', 'plain', 'default', {}));
    const tr = await call('POST', '/api/v1/namespaces/default/serviceaccounts/plain/token', ADMIN, {});
    const token = (tr.body['status'] as { token: string }).token;
    const refused = await call('GET', '/api/v1/namespaces', token, undefined, as);
    assert.equal(refused.status, 403);
    assert.equal(refused.body['message'], 'users "jane" is forbidden: User "system:serviceaccount:default:plain" cannot impersonate resource "users" in API group "" at the cluster scope');
  });
});
