// The admin kubeconfig (cli/kubeconfig.ts) and `up`'s listen addresses: which served address a
// kubeconfig names, what the file holds (kubectl's layout), that it is written owner-only and whole,
// and what `up` listens on by default.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { printKubeconfig } from '../../src/cli/kubeconfig-command.js';
import { kubeconfigServer, renderKubeconfig, writeKubeconfig } from '../../src/cli/kubeconfig.js';
import { authorizationMode, upListen } from '../../src/cli/up.js';

describe('kubeconfig: the server it names', () => {
  const cases: [string[], string | undefined][] = [
    [['unix:///s/api.sock', 'https://127.0.0.1:6443'], 'https://127.0.0.1:6443'],
    [['unix:///s/api.sock', 'http://127.0.0.1:8080', 'https://10.0.0.5:6443'], 'https://10.0.0.5:6443'],
    [['unix:///s/api.sock', 'http://127.0.0.1:8080'], 'http://127.0.0.1:8080'],
    [['https://0.0.0.0:6443'], 'https://127.0.0.1:6443'],
    [['https://[::]:6443'], 'https://[::1]:6443'],
    [['unix:///s/api.sock'], undefined],
  ];
  for (const [urls, want] of cases) it(`${urls.join(' ')} → ${String(want)}`, () => assert.equal(kubeconfigServer(urls), want));
});

describe('kubeconfig: the file', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-kubeconfig-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('holds cluster, user and context "stowage"/"admin", current, in namespace default', () => {
    const config = parse(renderKubeconfig({ server: 'https://127.0.0.1:6443', caPem: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n', token: 't0k' })) as unknown;
    assert.deepEqual(config, {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stowage', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from('-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n').toString('base64') } }],
      users: [{ name: 'admin', user: { token: 't0k' } }],
      contexts: [{ name: 'stowage', context: { cluster: 'stowage', user: 'admin', namespace: 'default' } }],
      'current-context': 'stowage',
      preferences: {},
    });
  });

  it('is written owner-only, replacing the old one whole', async () => {
    await writeKubeconfig(dir, { server: 'https://127.0.0.1:1', token: 'old' });
    const path = await writeKubeconfig(dir, { server: 'https://127.0.0.1:2', token: 'new' });
    assert.equal(path, join(dir, 'kubeconfig'));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.match(readFileSync(path, 'utf8'), /token: new/);
    assert.deepEqual(readdirSync(dir), ['kubeconfig'], 'no temporary file left');
  });

  it('is printed by `stowage kubeconfig`, which says where it would be when there is none', async () => {
    let out = '';
    await printKubeconfig(dir, { write: (t: string) => (out += t) } as unknown as NodeJS.WritableStream);
    assert.equal(out, readFileSync(join(dir, 'kubeconfig'), 'utf8'));
    const empty = join(dir, 'none');
    await assert.rejects(printKubeconfig(empty), { message: `error: no kubeconfig in ${empty} (\`stowage up\` writes ${join(empty, 'kubeconfig')} when it serves https://)` });
  });
});

describe('up: listen addresses', () => {
  it('defaults to the socket and https on 127.0.0.1:6443', () => {
    assert.deepEqual(upListen({}, '/state'), { listen: ['unix:///state/api.sock', 'https://127.0.0.1:6443'], defaulted: true });
  });
  it('takes --listen as given', () => {
    assert.deepEqual(upListen({ listen: ['https://0.0.0.0:7443'] }, '/state'), { listen: ['https://0.0.0.0:7443'], defaulted: false });
  });
});

describe('up: --authorization', () => {
  const cases: [string | undefined, string][] = [
    [undefined, 'AlwaysAllow'],
    ['AlwaysAllow', 'AlwaysAllow'],
    ['rbac', 'RBAC'],
    ['RBAC', 'RBAC'],
  ];
  for (const [value, want] of cases) it(`${String(value)} → ${want}`, () => assert.equal(authorizationMode(value), want));
  it('refuses other modes in one line', () => assert.throws(() => authorizationMode('Webhook'), { message: 'error: --authorization must be AlwaysAllow or RBAC, not "Webhook"' }));
});
