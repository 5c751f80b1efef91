// Authentication and the self-reviews: the bearer-token check, the 401 Status exactly as
// kube-apiserver sends it over https, the public paths, the unix socket needing no token, and
// SelfSubjectAccessReview / SelfSubjectRulesReview / SelfSubjectReview answered (table-driven on
// the answer function, then through the real HTTPS server and discovery).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { answerReview, REVIEW_RESOURCES } from '../../src/control/server/access-review.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { bearerTokenChecker } from '../../src/control/server/auth.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { ApiError, toStatus } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

const TOKEN = 'the-admin-token';

describe('bearer token check', () => {
  const check = bearerTokenChecker(TOKEN);
  const cases: [string | undefined, boolean][] = [
    [`Bearer ${TOKEN}`, true],
    [`bearer ${TOKEN}`, true],
    [`Bearer  ${TOKEN} `, true],
    [`Bearer ${TOKEN}x`, false],
    [`Bearer ${TOKEN.slice(1)}`, false],
    [`Basic ${TOKEN}`, false],
    [TOKEN, false],
    ['Bearer ', false],
    [undefined, false],
  ];
  for (const [header, ok] of cases) it(`${JSON.stringify(header)} → ${ok}`, () => assert.equal(check(header), ok));
  it('refuses an empty token', () => assert.throws(() => bearerTokenChecker(''), /must not be empty/));
});

function review(plural: string) {
  const r = REVIEW_RESOURCES.find((x) => x.plural === plural);
  assert.ok(r);
  return r;
}

/** The Status of a refused review, or the answer's status. */
function reviewOutcome(plural: string, body: unknown): unknown {
  try {
    return (answerReview(review(plural), body) as unknown as { status: unknown }).status;
  } catch (err) {
    assert.ok(err instanceof ApiError);
    const s = toStatus(err);
    return { code: s.code, reason: s.reason, message: s.message };
  }
}

describe('self reviews: answers for the admin', () => {
  const ssar = (spec: object) => ({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec });
  const cases: { name: string; plural: string; body: unknown; want: unknown }[] = [
    {
      name: 'SSAR on a resource: allowed',
      plural: 'selfsubjectaccessreviews',
      body: ssar({ resourceAttributes: { namespace: 'default', verb: 'create', resource: 'persistentvolumeclaims' } }),
      want: { allowed: true },
    },
    { name: 'SSAR on a URL: allowed', plural: 'selfsubjectaccessreviews', body: ssar({ nonResourceAttributes: { path: '/healthz', verb: 'get' } }), want: { allowed: true } },
    {
      name: 'SSAR with neither attribute set: Invalid',
      plural: 'selfsubjectaccessreviews',
      body: ssar({}),
      want: {
        code: 422,
        reason: 'Invalid',
        message: 'SelfSubjectAccessReview "" is invalid: spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified',
      },
    },
    {
      name: 'SSAR with both: Invalid',
      plural: 'selfsubjectaccessreviews',
      body: ssar({ resourceAttributes: { verb: 'get' }, nonResourceAttributes: { path: '/', verb: 'get' } }),
      want: {
        code: 422,
        reason: 'Invalid',
        message: 'SelfSubjectAccessReview "" is invalid: spec.nonResourceAttributes: Invalid value: {"path":"/","verb":"get"}: cannot be specified in combination with resourceAttributes',
      },
    },
    {
      name: 'a kind that is not the URL\'s: BadRequest',
      plural: 'selfsubjectaccessreviews',
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: {} },
      want: { code: 400, reason: 'BadRequest', message: "the API version in the data (authorization.k8s.io/v1) and kind (SubjectAccessReview) do not match the URL's authorization.k8s.io/v1 SelfSubjectAccessReview" },
    },
    {
      name: 'SSRR without a namespace: BadRequest',
      plural: 'selfsubjectrulesreviews',
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: {} },
      want: { code: 400, reason: 'BadRequest', message: 'no namespace on request' },
    },
    {
      name: 'SSRR: everything, complete',
      plural: 'selfsubjectrulesreviews',
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: 'default' } },
      want: {
        resourceRules: [
          { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
          { verbs: ['create'], apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'] },
          { verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'] },
        ],
        nonResourceRules: [
          { verbs: ['*'], nonResourceURLs: ['*'] },
          { verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/version', '/version/', '/openapi', '/openapi/*'] },
        ],
        incomplete: false,
      },
    },
    {
      name: 'SelfSubjectReview: who am I',
      plural: 'selfsubjectreviews',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      want: { userInfo: { username: 'system:admin', groups: ['system:masters', 'system:authenticated'] } },
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(reviewOutcome(c.plural, c.body), c.want));
});

interface Reply {
  status: number;
  body: unknown;
}

describe('API server over https with a token', () => {
  let store: Store;
  let dir: string;
  let server: ApiServer;
  let ca: string;

  /** `token` null: no Authorization header. */
  const call = (method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        `${server.url}${path}`,
        { method, ca, headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(payload === undefined ? {} : { 'content-type': 'application/json' }) } },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: res.headers['content-type']?.startsWith('application/json') ? JSON.parse(text) : text }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  before(async () => {
    store = open(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'stowage-auth-'));
    const pki = await ensurePki(dir, ['127.0.0.1']);
    ca = pki.caPem;
    server = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls: { certPem: pki.certPem, keyPem: pki.keyPem } });
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports its https address', () => assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/));

  it('answers a request without the token with the 401 Status kube-apiserver sends', async () => {
    for (const token of [null, 'wrong']) {
      const r = await call('GET', '/api/v1/namespaces', undefined, token);
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    }
    assert.equal((await call('GET', '/api/v1/namespaces')).status, 200);
  });

  it('serves health and version to anyone, nothing else', async () => {
    for (const path of ['/healthz', '/readyz', '/livez', '/version']) assert.equal((await call('GET', path, undefined, null)).status, 200, path);
    for (const path of ['/api', '/apis', '/healthzz', '/apis/authorization.k8s.io/v1']) assert.equal((await call('GET', path, undefined, null)).status, 401, path);
  });

  it('answers a SelfSubjectAccessReview with 201 and refuses other verbs on it', async () => {
    const path = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews';
    const spec = { resourceAttributes: { namespace: 'default', verb: 'create', resource: 'persistentvolumeclaims' } };
    const r = await call('POST', path, { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', metadata: {}, spec, status: { allowed: true } });
    assert.equal((await call('GET', path)).status, 405);
    assert.equal((await call('POST', path, { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec }, null)).status, 401);
  });

  it('lists the review resources in discovery, create only, cluster-scoped', async () => {
    const groups = (await call('GET', '/apis')).body as { groups: { name: string; preferredVersion: { groupVersion: string } }[] };
    for (const g of ['authorization.k8s.io', 'authentication.k8s.io', 'coordination.k8s.io']) {
      assert.equal(groups.groups.find((x) => x.name === g)?.preferredVersion.groupVersion, `${g}/v1`);
    }
    const list = (await call('GET', '/apis/authorization.k8s.io/v1')).body as { groupVersion: string; resources: object[] };
    assert.equal(list.groupVersion, 'authorization.k8s.io/v1');
    assert.deepEqual(list.resources, [
      { name: 'selfsubjectaccessreviews', singularName: 'selfsubjectaccessreview', namespaced: false, kind: 'SelfSubjectAccessReview', verbs: ['create'] },
      { name: 'selfsubjectrulesreviews', singularName: 'selfsubjectrulesreview', namespaced: false, kind: 'SelfSubjectRulesReview', verbs: ['create'] },
    ]);
    assert.equal((await call('GET', '/apis/authorization.k8s.io')).status, 200);
    const leases = (await call('GET', '/apis/coordination.k8s.io/v1')).body as { resources: { name: string; namespaced: boolean }[] };
    assert.deepEqual(
      leases.resources.map((r) => [r.name, r.namespaced]),
      [['leases', true]],
    );
  });
});

describe('API server over https: closing', () => {
  it('ends idle TLS connections, half-open ones and watches, and resolves promptly', async () => {
    const store = open(':memory:');
    const dir = mkdtempSync(join(tmpdir(), 'stowage-auth-close-'));
    const pki = await ensurePki(dir, ['127.0.0.1']);
    const server = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls: { certPem: pki.certPem, keyPem: pki.keyPem } });
    const port = Number(new URL(server.url).port);
    try {
      // A finished TLS handshake with no request, and a watch left open.
      const idle = tlsConnect({ host: '127.0.0.1', port, ca: pki.caPem });
      await new Promise((resolve) => idle.once('secureConnect', resolve));
      idle.on('error', () => undefined);
      const watching = new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${server.url}/api/v1/namespaces?watch=true`, { ca: pki.caPem, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = Date.now();
      await server.close();
      assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
      assert.equal(await watching, 200);
      idle.destroy();
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('API server on a unix socket with a token', () => {
  it('needs no token there: the socket file mode is the authentication', async () => {
    const store = open(':memory:');
    const dir = mkdtempSync(join(tmpdir(), 'stowage-auth-sock-'));
    const path = join(dir, 'api.sock');
    const server = await startApiServer({ store, listen: `unix://${path}`, token: TOKEN });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ socketPath: path, path: '/api/v1/namespaces', method: 'GET' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
    } finally {
      await server.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
