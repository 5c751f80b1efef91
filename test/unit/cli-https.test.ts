// The CLI over HTTPS: which server, token and CA a command uses (flags over --kubeconfig, the
// state directory's own PKI and admin token for its own server), the TLS failures worded as
// kubectl words them, and the real `stowage` binary (`get pvc`) against an in-process API server
// serving https with a CA made by pki.ts: through --kubeconfig, through --server with
// --certificate-authority, refused with one line for a wrong CA, and a watch stream over https;
// then against a control plane in a state directory, whose CA and admin token it finds itself.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ApiClient, type ClientWatchEvent, ConnectionError, resolveResource, tlsProblem } from '../../src/cli/api-client.js';
import { connectionOptions, type GlobalFlags } from '../../src/cli/connection.js';
import { renderKubeconfig } from '../../src/cli/kubeconfig.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { ensureAdminToken } from '../../src/control/server/admin-token.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { ensurePki } from '../../src/control/server/pki.js';
import { open, type Store } from '../../src/control/store/store.js';
import { pino } from 'pino';
import { runCaptured } from '../support/processes.js';

const BIN = fileURLToPath(new URL('../../../bin/stowage.js', import.meta.url));
const TOKEN = 'https-test-token';
const UNKNOWN_AUTHORITY = 'Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown authority';

describe('TLS failures in kubectl\'s words', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls: failed to verify certificate: x509: certificate signed by unknown authority'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls: failed to verify certificate: x509: certificate signed by unknown authority'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls: failed to verify certificate: x509: certificate signed by unknown authority'],
    ['CERT_HAS_EXPIRED', 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'http: server gave HTTP response to HTTPS client'],
    ['EPROTO', 'http: server gave HTTP response to HTTPS client'],
    ['ECONNREFUSED', undefined],
    [undefined, undefined],
  ];
  for (const [code, want] of cases) {
    it(`${String(code)} → ${String(want)}`, () => {
      const message = 'write EPROTO 40CD27E08A7F0000:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../ssl/record/methods/tlsany_meth.c:77:';
      const err = Object.assign(new Error(message), code === undefined ? {} : { code });
      assert.equal(tlsProblem(err, '10.1.2.3'), want);
    });
  }
});

describe('a certificate for other names, in Go\'s words', () => {
  const SAN = 'DNS:example.test, DNS:other.test, IP Address:10.9.9.9, IP Address:0:0:0:0:0:0:0:1';
  const cases: [string, string, string][] = [
    ['127.0.0.1', SAN, 'x509: certificate is valid for 10.9.9.9, ::1, not 127.0.0.1'],
    ['localhost', SAN, 'x509: certificate is valid for example.test, other.test, not localhost'],
    ['127.0.0.1', 'DNS:example.test', 'x509: cannot validate certificate for 127.0.0.1 because it doesn\'t contain any IP SANs'],
    ['localhost', 'IP Address:10.9.9.9', 'x509: certificate is not valid for any names, but wanted to match localhost'],
  ];
  for (const [host, san, want] of cases) {
    it(`${host} against ${san}`, () => {
      const err = Object.assign(new Error('Hostname/IP does not match certificate\'s altnames'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID', cert: { subjectaltname: san } });
      assert.equal(tlsProblem(err, host), `tls: failed to verify certificate: ${want}`);
    });
  }
});

describe('which server, token and CA a command uses', () => {
  let dir: string;
  const stateDir = (): string => join(dir, 'state');
  const STATE_URL = 'https://127.0.0.1:6443';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-conn-'));
    mkdirSync(join(stateDir(), 'pki'), { recursive: true });
    // A running control plane (this process) serving STATE_URL, with its CA and admin token.
    writeFileSync(join(stateDir(), 'server.json'), JSON.stringify({ url: 'unix:///nowhere/api.sock', urls: ['unix:///nowhere/api.sock', STATE_URL], pid: process.pid }));
    writeFileSync(join(stateDir(), 'pki', 'ca.crt'), 'STATE-CA');
    writeFileSync(join(stateDir(), 'admin.token'), 'state-token\n');
    writeFileSync(join(dir, 'flag-ca.crt'), 'FLAG-CA');
    writeFileSync(join(dir, 'kc-ca.crt'), 'KC-FILE-CA');
    writeFileSync(join(dir, 'kc-token'), 'kc-file-token\n');
    writeFileSync(join(dir, 'kc.yaml'), renderKubeconfig({ server: 'https://10.0.0.9:6443', caPem: 'KC-CA', token: 'kc-token' }));
    writeFileSync(join(dir, 'kc-state.yaml'), renderKubeconfig({ server: 'https://localhost:6443', caPem: 'KC-CA', token: 'kc-token' }));
    writeFileSync(
      join(dir, 'kc-files.yaml'),
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://10.0.0.9:6443", certificate-authority: kc-ca.crt}}]',
        'users: [{name: u, user: {tokenFile: kc-token}}]',
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'kc-two.yaml'),
      [
        'clusters: [{name: one, cluster: {server: "https://10.0.0.1:6443"}}, {name: two, cluster: {server: "https://10.0.0.2:6443"}}]',
        'users: [{name: u1, user: {token: t1}}, {name: u2, user: {token: t2}}]',
        'contexts: [{name: first, context: {cluster: one, user: u1}}, {name: second, context: {cluster: two, user: u2}}]',
        'current-context: first',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'kc-insecure.yaml'),
      'clusters: [{name: c, cluster: {server: "https://10.0.0.9:6443", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: { name: string; flags: () => GlobalFlags; want: object }[] = [
    { name: 'state dir alone: its first address, no TLS material for a socket', flags: () => ({ stateDir: stateDir() }), want: { server: 'unix:///nowhere/api.sock' } },
    { name: '--server naming the state dir\'s https address: its CA and admin token', flags: () => ({ stateDir: stateDir(), server: STATE_URL }), want: { server: STATE_URL, token: 'state-token', caPem: 'STATE-CA' } },
    { name: '--server spelled as localhost is not the same address: system CAs, no token', flags: () => ({ stateDir: stateDir(), server: 'https://localhost:6443' }), want: { server: 'https://localhost:6443' } },
    { name: '--certificate-authority and --token beat the state dir', flags: () => ({ stateDir: stateDir(), server: STATE_URL, certificateAuthority: join(dir, 'flag-ca.crt'), token: 't' }), want: { server: STATE_URL, token: 't', caPem: 'FLAG-CA' } },
    { name: '--kubeconfig: its server, CA data and token', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc.yaml') }), want: { server: 'https://10.0.0.9:6443', token: 'kc-token', caPem: 'KC-CA' } },
    { name: '--kubeconfig with --server: the flag wins, the user stays', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc.yaml'), server: 'https://10.0.0.8:6443' }), want: { server: 'https://10.0.0.8:6443', token: 'kc-token', caPem: 'KC-CA' } },
    { name: '--kubeconfig pointing at the state dir\'s server: the state dir\'s CA, the kubeconfig\'s token', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc.yaml'), server: STATE_URL }), want: { server: STATE_URL, token: 'kc-token', caPem: 'STATE-CA' } },
    { name: '--kubeconfig with files: CA and token file relative to the kubeconfig', flags: () => ({ stateDir: join(dir, 'none'), kubeconfig: join(dir, 'kc-files.yaml') }), want: { server: 'https://10.0.0.9:6443', token: 'kc-file-token', caPem: 'KC-FILE-CA' } },
    { name: '--insecure-skip-tls-verify drops the kubeconfig\'s CA', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc.yaml'), insecureSkipTlsVerify: true }), want: { server: 'https://10.0.0.9:6443', token: 'kc-token', insecureSkipTlsVerify: true } },
    { name: 'the current context of several', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc-two.yaml') }), want: { server: 'https://10.0.0.1:6443', token: 't1' } },
    { name: '--context picks another', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc-two.yaml'), context: 'second' }), want: { server: 'https://10.0.0.2:6443', token: 't2' } },
    { name: 'the kubeconfig\'s insecure-skip-tls-verify', flags: () => ({ stateDir: stateDir(), kubeconfig: join(dir, 'kc-insecure.yaml') }), want: { server: 'https://10.0.0.9:6443', token: 't', insecureSkipTlsVerify: true } },
  ];
  for (const c of cases) it(c.name, async () => assert.deepEqual(await connectionOptions(c.flags()), c.want));

  const failures: { name: string; flags: () => GlobalFlags; message: RegExp }[] = [
    { name: 'no control plane and no server', flags: () => ({ stateDir: join(dir, 'none') }), message: /^error: no control plane running in / },
    { name: 'an unreadable CA file', flags: () => ({ stateDir: stateDir(), server: STATE_URL, certificateAuthority: join(dir, 'missing.crt') }), message: /^error: unable to read certificate-authority .*missing\.crt for the server due to ENOENT$/ },
    { name: 'a context the kubeconfig lacks', flags: () => ({ kubeconfig: join(dir, 'kc-two.yaml'), context: 'third' }), message: /^Error in configuration: context was not found for specified context: third$/ },
    { name: '--context without --kubeconfig', flags: () => ({ stateDir: stateDir(), context: 'first' }), message: /^error: --context needs --kubeconfig$/ },
    { name: 'a missing kubeconfig', flags: () => ({ kubeconfig: join(dir, 'missing.yaml') }), message: /^error: stat \/.*\/missing\.yaml: no such file or directory$/ },
  ];
  for (const f of failures) it(`refused: ${f.name}`, async () => assert.rejects(connectionOptions(f.flags()), { message: f.message }));

  it('refuses a CA together with --insecure-skip-tls-verify, in kubectl\'s words', () => {
    assert.throws(() => new ApiClient({ server: STATE_URL, caPem: 'x', insecureSkipTlsVerify: true }), { message: 'specifying a root certificates file with the insecure flag is not allowed' });
  });
});

describe('the client and the CLI against an https API server', () => {
  let dir: string;
  let store: Store;
  let server: ApiServer;
  let plain: ApiServer;
  let misnamed: ApiServer;
  let caPem: string;
  let caFile: string;
  let otherCaFile: string;
  let otherCaPem: string;
  const pvcs = resolveResource('pvc');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-https-'));
    store = open(':memory:');
    const pki = await ensurePki(join(dir, 'state'), ['127.0.0.1']);
    caPem = pki.caPem;
    caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, caPem);
    otherCaFile = join(dir, 'other-ca.crt');
    otherCaPem = (await ensurePki(join(dir, 'other'), ['127.0.0.1'])).caPem;
    writeFileSync(otherCaFile, otherCaPem);
    server = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls: { certPem: pki.certPem, keyPem: pki.keyPem } });
    plain = await startApiServer({ store, listen: 'http://127.0.0.1:0', token: TOKEN });
    // Same CA, a certificate for other names.
    const other = await ensurePki(join(dir, 'state'), ['127.0.0.1'], new Date(), { dns: ['example.test'], ips: ['10.9.9.9'] });
    misnamed = await startApiServer({ store, listen: 'https://127.0.0.1:0', token: TOKEN, tls: { certPem: other.certPem, keyPem: other.keyPem } });
    writeFileSync(join(dir, 'kubeconfig'), renderKubeconfig({ server: server.url, caPem, token: TOKEN }), { mode: 0o600 });
    const client = new ApiClient({ server: server.url, caPem, token: TOKEN });
    await client.create(pvcs, { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'over-tls', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } as KubeObject);
  });
  after(async () => {
    await server.close();
    await plain.close();
    await misnamed.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads with the CA that signed the server\'s certificate', async () => {
    const list = await new ApiClient({ server: server.url, caPem, token: TOKEN }).list(pvcs, { namespace: 'default' });
    assert.deepEqual(list.items.map((p) => p.metadata.name), ['over-tls']);
  });

  const refusals: { name: string; options: () => { caPem?: string; server?: string }; message: string }[] = [
    { name: 'another CA', options: () => ({ caPem: otherCaPem }), message: UNKNOWN_AUTHORITY },
    { name: 'the system CAs only', options: () => ({}), message: UNKNOWN_AUTHORITY },
    { name: 'a certificate for other names', options: () => ({ caPem, server: misnamed.url }), message: 'Unable to connect to the server: tls: failed to verify certificate: x509: certificate is valid for 10.9.9.9, not 127.0.0.1' },
    { name: 'https:// to a plain http server', options: () => ({ caPem, server: plain.url.replace('http:', 'https:') }), message: 'Unable to connect to the server: http: server gave HTTP response to HTTPS client' },
  ];
  for (const r of refusals) {
    it(`refuses, in one line: ${r.name}`, async () => {
      const o = r.options();
      const client = new ApiClient({ server: o.server ?? server.url, token: TOKEN, ...(o.caPem === undefined ? {} : { caPem: o.caPem }) });
      await assert.rejects(client.list(pvcs), (err: unknown) => err instanceof ConnectionError && err.message === r.message);
    });
  }

  it('skips verification only when told to', async () => {
    const list = await new ApiClient({ server: server.url, token: TOKEN, insecureSkipTlsVerify: true }).list(pvcs);
    assert.equal(list.items.length, 1);
  });

  it('streams a watch over https: ADDED for what is there, then MODIFIED as it happens', async () => {
    const client = new ApiClient({ server: server.url, caPem, token: TOKEN });
    const events: ClientWatchEvent[] = [];
    const handle = await client.watch(pvcs, { namespace: 'default' }, (e) => events.push(e));
    await client.patch(pvcs, 'default', 'over-tls', { metadata: { labels: { seen: 'yes' } } });
    for (let i = 0; i < 100 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    handle.stop();
    await handle.done;
    assert.deepEqual(
      events.map((e) => [e.type, (e.object as KubeObject).metadata.name]),
      [
        ['ADDED', 'over-tls'],
        ['MODIFIED', 'over-tls'],
      ],
    );
  });

  const stowage = (...args: string[]) => runCaptured(process.execPath, [BIN, '--state-dir', join(dir, 'no-state'), ...args]);

  it('`stowage --kubeconfig FILE get pvc` uses its server, CA and token', async () => {
    const ran = await stowage('--kubeconfig', join(dir, 'kubeconfig'), 'get', 'pvc');
    assert.equal(ran.stderr, '');
    assert.equal(ran.code, 0);
    assert.match(ran.stdout, /^NAME\s+STATUS.*\nover-tls\s+Pending/);
  });

  it('takes the kubeconfig context\'s namespace unless -n says otherwise', async () => {
    const path = join(dir, 'kubeconfig-elsewhere');
    writeFileSync(path, renderKubeconfig({ server: server.url, caPem, token: TOKEN }).replace('namespace: default', 'namespace: elsewhere'), { mode: 0o600 });
    const there = await stowage('--kubeconfig', path, 'get', 'pvc');
    assert.equal(`${there.stdout}${there.stderr}`, 'No resources found in elsewhere namespace.\n');
    const here = await stowage('--kubeconfig', path, '-n', 'default', 'get', 'pvc');
    assert.match(here.stdout, /\nover-tls\s+Pending/);
  });

  it('`stowage --server https://… --certificate-authority FILE --token T get pvc` works', async () => {
    const ran = await stowage('--server', server.url, '--certificate-authority', caFile, '--token', TOKEN, 'get', 'pvc');
    assert.equal(ran.stderr, '');
    assert.match(ran.stdout, /\nover-tls\s+Pending/);
  });

  it('without a CA it trusts the system\'s store (SSL_CERT_FILE), as kubectl does', async () => {
    const emptyDir = join(dir, 'no-certs');
    mkdirSync(emptyDir, { recursive: true });
    const env = { SSL_CERT_FILE: caFile, SSL_CERT_DIR: emptyDir };
    const ran = await runCaptured(process.execPath, [BIN, '--state-dir', join(dir, 'no-state'), '--server', server.url, '--token', TOKEN, 'get', 'pvc'], { env });
    assert.equal(ran.stderr, '');
    assert.match(ran.stdout, /\nover-tls\s+Pending/);
    const without = await stowage('--server', server.url, '--token', TOKEN, 'get', 'pvc');
    assert.equal(without.stderr, `${UNKNOWN_AUTHORITY}\n`);
  });

  it('a wrong CA fails with kubectl\'s one line naming the certificate problem, and prints no token', async () => {
    const ran = await stowage('--server', server.url, '--certificate-authority', otherCaFile, '--token', TOKEN, 'get', 'pvc');
    assert.equal(ran.code, 1);
    assert.equal(ran.stdout, '');
    assert.equal(ran.stderr, `${UNKNOWN_AUTHORITY}\n`);
  });

  it('--insecure-skip-tls-verify=true reaches it without a CA; with one it is refused', async () => {
    const ok = await stowage('--server', server.url, '--insecure-skip-tls-verify=true', '--token', TOKEN, 'get', 'pvc');
    assert.match(ok.stdout, /\nover-tls\s+Pending/);
    const both = await stowage('--server', server.url, '--insecure-skip-tls-verify', '--certificate-authority', caFile, '--token', TOKEN, 'get', 'pvc');
    assert.equal(both.code, 1);
    assert.equal(both.stderr, 'error: specifying a root certificates file with the insecure flag is not allowed\n');
  });
});

describe('the CLI against the state directory\'s own https control plane', () => {
  let stateDir: string;
  let plane: ControlPlane;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'stowage-https-state-'));
    const token = await ensureAdminToken(stateDir);
    plane = await startControlPlane({ stateDir, listen: ['https://127.0.0.1:0'], token, logger: pino({ level: 'silent' }), controllers: { resyncMs: 0 } });
    const client = new ApiClient({ server: plane.url, token, caPem: plane.caPem ?? '' });
    await client.create(resolveResource('pvc'), { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'in-state', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } as KubeObject);
  });
  after(async () => {
    await plane.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const runs: { name: string; args: () => string[] }[] = [
    { name: '--state-dir alone', args: () => ['--state-dir', stateDir, 'get', 'pvc'] },
    { name: '--state-dir with --server naming its https address', args: () => ['--state-dir', stateDir, '--server', plane.url, 'get', 'pvc'] },
  ];
  for (const r of runs) {
    it(`${r.name}: trusts pki/ca.crt and sends admin.token`, async () => {
      const ran = await runCaptured(process.execPath, [BIN, ...r.args()], { env: { STOWAGE_TOKEN: '' } });
      assert.equal(ran.stderr, '');
      assert.match(ran.stdout, /\nin-state\s+Pending/);
    });
  }
});
