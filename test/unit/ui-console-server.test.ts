// The API server's share of the web console, on the real HTTPS server in RBAC mode: the assets at
// /ui/ go to anyone (content types, revalidation, CSP, nothing outside the assets directory, no
// writes), the CSI call journal at /ui/api/csi-calls only with a token, and under RBAC only to who
// may get persistentvolumes (kube-apiserver's 403 wording otherwise), filtered by volume.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CsiCallJournal } from '../../src/csi/call-journal.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { TokenSigner } from '../../src/control/server/service-account-tokens.js';
import { open, type Store } from '../../src/control/store/store.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

describe('the web console on the API server', () => {
  const ADMIN = 'admin-token';
  let store: Store;
  let dir: string;
  let server: ApiServer;
  let ca: string;
  const journal = new CsiCallJournal();

  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(`${server.url}${path}`, { method, ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const admin = { authorization: `Bearer ${ADMIN}` };

  /** A ServiceAccount's token, bound to a ClusterRole with these rules. */
  const accountToken = async (name: string, rules: object[]): Promise<string> => {
    await call('POST', '/api/v1/namespaces/default/serviceaccounts', admin, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } });
    if (rules.length > 0) {
      await call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', admin, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
      await call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', admin, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: 'default' }],
      });
    }
    const tr = await call('POST', `/api/v1/namespaces/default/serviceaccounts/${name}/token`, admin, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} });
    assert.equal(tr.status, 201, tr.text);
    return (JSON.parse(tr.text) as { status: { token: string } }).status.token;
  };

  before(async () => {
    store = open(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'stowage-ui-server-'));
    const assets = join(dir, 'ui');
    mkdirSync(assets);
    writeFileSync(join(assets, 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(assets, 'console.js'), 'export {};');
    writeFileSync(join(assets, 'console.css'), 'body{}');
    writeFileSync(join(dir, 'secret.txt'), 'not an asset');
    const pki = await ensurePki(dir, ['127.0.0.1']);
    ca = pki.caPem;
    journal.observe({ method: 'CreateVolume', endpoint: '/s', request: { name: 'pvc-1' }, response: { volume: { volume_id: 'vol-1' } }, started: Date.now(), durationMs: 3, code: 0 });
    journal.observe({ method: 'NodeStageVolume', endpoint: '/s', request: { volume_id: 'vol-1', staging_target_path: '/k/s' }, response: {}, started: Date.now(), durationMs: 2, code: 0, node: 'n1' });
    journal.observe({ method: 'NodeStageVolume', endpoint: '/s', request: { volume_id: 'vol-2', staging_target_path: '/k/t' }, response: {}, started: Date.now(), durationMs: 2, code: 0, node: 'n1' });
    server = await startApiServer({
      store,
      listen: 'https://127.0.0.1:0',
      token: ADMIN,
      tls: { certPem: pki.certPem, keyPem: pki.keyPem },
      tokenSigner: await TokenSigner.forStateDir(dir),
      authorization: 'RBAC',
      csiCalls: journal,
      uiAssetsDir: `${assets}/`,
    });
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const assets: [string, string, string, number, string | undefined][] = [
    ['the page, without a token', 'GET', '/ui/', 200, 'text/html; charset=utf-8'],
    ['the bundle', 'GET', '/ui/console.js', 200, 'text/javascript; charset=utf-8'],
    ['the stylesheet', 'GET', '/ui/console.css', 200, 'text/css; charset=utf-8'],
    ['a HEAD', 'HEAD', '/ui/console.js', 200, 'text/javascript; charset=utf-8'],
    ['/ui itself: moved to /ui/', 'GET', '/ui', 301, undefined],
    ['a file that is not there', 'GET', '/ui/nope.js', 404, 'application/json'],
    ['a subdirectory', 'GET', '/ui/a/console.js', 404, 'application/json'],
    ['a dot-dot escape', 'GET', '/ui/..%2fsecret.txt', 404, 'application/json'],
    ['a type it does not serve', 'GET', '/ui/secret.txt', 404, 'application/json'],
    ['a write', 'POST', '/ui/', 405, 'application/json'],
  ];
  for (const [name, method, path, status, type] of assets) {
    it(`assets: ${name} → ${status}`, async () => {
      const r = await call(method, path);
      assert.equal(r.status, status, r.text);
      if (type !== undefined) assert.equal(r.headers['content-type'], type);
      if (status === 200) {
        assert.equal(r.headers['cache-control'], 'no-cache');
        assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
        assert.equal(r.headers['x-content-type-options'], 'nosniff');
      }
    });
  }

  it('assets: an unchanged file is a 304 for its ETag', async () => {
    const first = await call('GET', '/ui/console.js');
    const again = await call('GET', '/ui/console.js', { 'if-none-match': String(first.headers['etag']) });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
  });

  it('the journal: 401 without a token, everything for the admin, one volume’s calls when asked (by ID or name)', async () => {
    const anonymous = await call('GET', '/ui/api/csi-calls');
    assert.equal(anonymous.status, 401);
    assert.equal((JSON.parse(anonymous.text) as { reason: string }).reason, 'Unauthorized');
    const all = await call('GET', '/ui/api/csi-calls', admin);
    assert.equal(all.status, 200);
    assert.equal(all.headers['cache-control'], 'no-store');
    assert.deepEqual(
      (JSON.parse(all.text) as { items: { method: string; volumeId: string }[] }).items.map((c) => `${c.method} ${c.volumeId}`),
      ['CreateVolume vol-1', 'NodeStageVolume vol-1', 'NodeStageVolume vol-2'],
    );
    const one = await call('GET', '/ui/api/csi-calls?volume=vol-1&volume=pvc-1', admin);
    assert.deepEqual(
      (JSON.parse(one.text) as { items: { seq: number }[] }).items.map((c) => c.seq),
      [1, 2],
    );
  });

  it('the journal under RBAC: 403 for an account that may not get persistentvolumes, 200 for one that may', async () => {
    const nobody = await accountToken('nobody', [{ verbs: ['list'], apiGroups: [''], resources: ['persistentvolumeclaims'] }]);
    const denied = await call('GET', '/ui/api/csi-calls', { authorization: `Bearer ${nobody}` });
    assert.equal(denied.status, 403);
    assert.equal((JSON.parse(denied.text) as { message: string }).message, 'persistentvolumes is forbidden: User "system:serviceaccount:default:nobody" cannot get resource "persistentvolumes" in API group "" at the cluster scope');
    const viewer = await accountToken('pv-viewer', [{ verbs: ['get'], apiGroups: [''], resources: ['persistentvolumes'] }]);
    assert.equal((await call('GET', '/ui/api/csi-calls', { authorization: `Bearer ${viewer}` })).status, 200);
    // And the page itself needs nothing.
    assert.equal((await call('GET', '/ui/')).status, 200);
  });
});
