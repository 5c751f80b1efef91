// kubectl 1.32's typed commands send their objects as Kubernetes protobuf (kubectl 1.31 sent
// JSON): create namespace, configmap, secret generic|tls|docker-registry, serviceaccount, role,
// rolebinding, clusterrole, clusterrolebinding, priorityclass and token; auth reconcile (create,
// then update); auth can-i and whoami. Each runs here against an API server with a token and RBAC,
// is checked to have sent protobuf (so the test cannot pass on JSON), and what was stored or
// answered is checked. Skipped only where the Cloud SDK's kubectl 1.32 is not installed.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { TokenSigner } from '../../src/control/server/service-account-tokens.js';
import { open, type Store } from '../../src/control/store/store.js';
import { type Ran, runCaptured } from '../support/processes.js';
import { writeKubeconfig } from '../support/kubeconfig.js';

const KUBECTL = process.env['STOWAGE_KUBECTL_132'] ?? '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const SKIP = existsSync(KUBECTL) ? false : `kubectl 1.32 is not installed at ${KUBECTL}`;
const SENT_PROTOBUF = /Content-Type: application\/vnd\.kubernetes\.protobuf/;
const ADMIN_TOKEN = 'protobuf-test-admin-token';

type Stored = Record<string, unknown> & { data?: Record<string, string>; metadata: { name?: string } };

describe("kubectl 1.32's protobuf request bodies", { skip: SKIP }, () => {
  let store: Store;
  let server: ApiServer;
  let dir: string;
  let env: Record<string, string>;
  /** The ServiceAccount team/bot's token, from `create token`. */
  let botToken = '';

  /** Runs kubectl at -v=8 (request headers on stderr) and asserts it succeeded and sent protobuf. */
  const create = async (args: string[]): Promise<Ran> => {
    const r = await kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr.split('\n').filter((l) => !l.startsWith('I')).join('\n')}`);
    assert.match(r.stderr, SENT_PROTOBUF, `kubectl ${args.join(' ')} sent protobuf`);
    assert.match(r.stderr, /Accept: application\/vnd\.kubernetes\.protobuf,application\/json/);
    return r;
  };
  const kubectl = (args: string[]): Promise<Ran> => runCaptured(KUBECTL, [...args, '-v=8'], { env });
  const stored = (plural: string, namespace: string | undefined, name: string): Stored => {
    const obj = store.get(plural, namespace, name);
    assert.ok(obj !== undefined, `${plural} ${name} was stored`);
    return obj as unknown as Stored;
  };
  const decoded = (obj: Stored, key: string): string => Buffer.from(obj.data?.[key] ?? '', 'base64').toString('utf8');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-kubectl-pb-'));
    store = open(':memory:');
    // https, as `stowage up` serves: kubectl sends a bearer token over TLS only.
    const pki = await ensurePki(join(dir, 'state'), ['127.0.0.1']);
    const tls = { certPem: pki.certPem, keyPem: pki.keyPem };
    server = await startApiServer({ store, listen: 'https://127.0.0.1:0', tls, token: ADMIN_TOKEN, tokenSigner: await TokenSigner.forStateDir(dir), authorization: 'RBAC' });
    const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { server: server.url, caPem: pki.caPem, token: ADMIN_TOKEN, namespace: 'team' });
    env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kubeconfig };
  });

  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('create namespace, configmap --from-literal and --from-file (binary), serviceaccount', async () => {
    assert.match((await create(['create', 'namespace', 'team'])).stdout, /^namespace\/team created$/m);
    assert.equal(stored('namespaces', undefined, 'team').metadata.name, 'team');
    await create(['create', 'configmap', 'cfg', '--from-literal=a=1', '--from-literal=b=two words']);
    assert.deepEqual(stored('configmaps', 'team', 'cfg')['data'], { a: '1', b: 'two words' });
    // A file that is not UTF-8 goes to binaryData (protobuf bytes), and comes back byte for byte.
    const blob = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x41, 0x0a]);
    writeFileSync(join(dir, 'blob.bin'), blob);
    await create(['create', 'configmap', 'bin', `--from-file=blob=${join(dir, 'blob.bin')}`]);
    const bin = stored('configmaps', 'team', 'bin') as Stored & { binaryData?: Record<string, string> };
    assert.deepEqual(Buffer.from(bin.binaryData?.['blob'] ?? '', 'base64'), blob);
    await create(['create', 'serviceaccount', 'bot']);
    assert.equal(stored('serviceaccounts', 'team', 'bot').metadata.name, 'bot');
  });

  it('create secret generic|tls|docker-registry: the stored data decodes back to what was given', async () => {
    await create(['create', 'secret', 'generic', 'pw', '--from-literal=password=hunter2', '--from-literal=empty=']);
    const pw = stored('secrets', 'team', 'pw');
    assert.equal(decoded(pw, 'password'), 'hunter2');
    assert.equal(decoded(pw, 'empty'), '');
    assert.equal(pw['type'], 'Opaque');

    const pki = await ensurePki(join(dir, 'state'), ['127.0.0.1']);
    writeFileSync(join(dir, 'tls.crt'), pki.certPem);
    writeFileSync(join(dir, 'tls.key'), pki.keyPem);
    await create(['create', 'secret', 'tls', 'web', '--cert', join(dir, 'tls.crt'), '--key', join(dir, 'tls.key')]);
    const tls = stored('secrets', 'team', 'web');
    assert.equal(tls['type'], 'kubernetes.io/tls');
    assert.equal(decoded(tls, 'tls.crt'), pki.certPem);
    assert.equal(decoded(tls, 'tls.key'), pki.keyPem);

    await create(['create', 'secret', 'docker-registry', 'reg', '--docker-server=r.example', '--docker-username=u', '--docker-password=p']);
    const reg = stored('secrets', 'team', 'reg');
    assert.equal(reg['type'], 'kubernetes.io/dockerconfigjson');
    assert.deepEqual(JSON.parse(decoded(reg, '.dockerconfigjson')), { auths: { 'r.example': { username: 'u', password: 'p', auth: Buffer.from('u:p').toString('base64') } } });
  });

  it('create role, rolebinding, clusterrole, clusterrolebinding', async () => {
    await create(['create', 'role', 'reader', '--verb=get,list', '--resource=pods,configmaps']);
    assert.deepEqual(stored('roles', 'team', 'reader')['rules'], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods', 'configmaps'] }]);
    await create(['create', 'rolebinding', 'read', '--role=reader', '--user=alice', '--serviceaccount=team:bot']);
    const rb = stored('rolebindings', 'team', 'read');
    assert.deepEqual(rb['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' });
    assert.deepEqual(rb['subjects'], [
      { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' },
      { kind: 'ServiceAccount', name: 'bot', namespace: 'team' },
    ]);
    await create(['create', 'clusterrole', 'health', '--verb=get', '--non-resource-url=/healthz']);
    assert.deepEqual(stored('clusterroles', undefined, 'health')['rules'], [{ verbs: ['get'], nonResourceURLs: ['/healthz'] }]);
    await create(['create', 'clusterrolebinding', 'health', '--clusterrole=health', '--group=system:authenticated']);
    assert.deepEqual(stored('clusterrolebindings', undefined, 'health')['subjects'], [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:authenticated' }]);
  });

  it('create priorityclass', async () => {
    await create(['create', 'priorityclass', 'high', '--value=1000', '--description=for important things', '--preemption-policy=Never']);
    const pc = stored('priorityclasses', undefined, 'high');
    assert.equal(pc['value'], 1000);
    assert.equal(pc['description'], 'for important things');
    assert.equal(pc['preemptionPolicy'], 'Never');
  });

  it('create token: the TokenRequest spec (duration, audiences) reaches the signer', async () => {
    const r = await create(['create', 'token', 'bot', '--duration=2h', '--audience=a1', '--audience=a2']);
    const token = r.stdout.trim();
    const [, payload = ''] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub: string; aud: string[]; exp: number; iat: number };
    assert.equal(claims.sub, 'system:serviceaccount:team:bot');
    assert.deepEqual(claims.aud, ['a1', 'a2']);
    assert.equal(claims.exp - claims.iat, 7200);
    botToken = (await create(['create', 'token', 'bot'])).stdout.trim();
  });

  it('auth can-i and whoami: a ServiceAccount token gets what its RoleBinding grants, and nothing more', async () => {
    assert.ok(botToken !== '', 'the token test ran first');
    const as = ['--token', botToken];
    assert.equal((await create([...as, 'auth', 'can-i', 'list', 'pods'])).stdout, 'yes\n');
    const no = await kubectl([...as, 'auth', 'can-i', 'create', 'pods']);
    assert.equal(no.code, 1);
    assert.equal(no.stdout, 'no\n');
    assert.match(no.stderr, SENT_PROTOBUF);
    assert.equal((await create([...as, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).stdout, 'system:serviceaccount:team:bot');
    assert.match((await create([...as, 'auth', 'can-i', '--list'])).stdout, /^pods\s+\[\]\s+\[\]\s+\[get list\]$/m);
  });

  it('auth reconcile creates a Role, then updates it (PUT) when a rule is missing', async () => {
    const file = join(dir, 'rbac.yaml');
    const role = (verbs: string): string =>
      `apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: rec, namespace: team}\nrules: [{apiGroups: [""], resources: [pods], verbs: [${verbs}]}]\n`;
    writeFileSync(file, role('get'));
    assert.match((await create(['auth', 'reconcile', '-f', file])).stdout, /role\.rbac\.authorization\.k8s\.io\/rec reconciled/);
    writeFileSync(file, role('watch'));
    const updated = await create(['auth', 'reconcile', '-f', file]);
    assert.match(updated.stderr, /\] PUT https:\/\/\S+\/namespaces\/team\/roles\/rec\n/);
    assert.deepEqual(stored('roles', 'team', 'rec')['rules'], [
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['watch'] },
    ]);
  });
});
