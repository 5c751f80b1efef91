// The real kubectl (/usr/bin/kubectl) against `stowage up` with the kubeconfig it writes: https with
// the control plane's own CA, the admin's bearer token, `auth can-i` and `auth whoami` answered by
// the review resources, a Lease written and renewed the way leader election does it, a wrong token
// refused as kube-apiserver refuses it, and plain http beyond loopback refused at start. Then
// `up --authorization RBAC`: a ServiceAccount, a Role and a RoleBinding applied with kubectl,
// `kubectl create token`, and that token allowed what the binding grants and refused the rest.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { parse } from 'yaml';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const KUBECTL = '/usr/bin/kubectl';

interface Kubeconfig {
  clusters: { name: string; cluster: { server: string; 'certificate-authority-data'?: string } }[];
  users: { name: string; user: { token: string } }[];
  contexts: { name: string; context: { cluster: string; user: string; namespace: string } }[];
  'current-context': string;
}

describe('kubectl with the kubeconfig of `stowage up`', () => {
  let dir: string;
  let up: ChildProcess | undefined;
  let upLog = '';
  let kubeconfig: string;

  const kubectl = (args: readonly string[], config = kubeconfig, stdin?: string): Promise<Ran> =>
    runCaptured(KUBECTL, ['--kubeconfig', config, ...args], { env: { HOME: dir }, ...(stdin === undefined ? {} : { stdin }) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-kubectl-'));
    kubeconfig = join(dir, 'state', 'kubeconfig');
    const state = join(dir, 'state');
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--no-local-driver', '--listen', `unix://${join(state, 'api.sock')}`, '--listen', 'https://127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString()));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString()));
    const deadline = Date.now() + 30_000;
    while (!/stowage is up/.test(upLog)) {
      if (Date.now() > deadline || up.exitCode !== null) throw new Error(`stowage up did not start:\n${upLog}`);
      await sleep(100);
    }
  });

  after(async () => {
    if (up && up.exitCode === null) {
      const exited = new Promise((resolve) => up?.once('exit', resolve));
      up.kill('SIGINT');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('writes an owner-only kubeconfig: https, the CA, the admin token, context stowage', async () => {
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    const config = parse(await readFile(kubeconfig, 'utf8')) as Kubeconfig;
    assert.equal(config['current-context'], 'stowage');
    assert.deepEqual(config.contexts, [{ name: 'stowage', context: { cluster: 'stowage', user: 'admin', namespace: 'default' } }]);
    assert.match(config.clusters[0]?.cluster.server ?? '', /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(Buffer.from(config.clusters[0]?.cluster['certificate-authority-data'] ?? '', 'base64').toString(), /^-----BEGIN CERTIFICATE-----/);
    const token = (await readFile(join(dir, 'state', 'admin.token'), 'utf8')).trim();
    assert.equal(config.users[0]?.user.token, token);
    assert.ok(!upLog.includes(token), 'the token is never logged');
    assert.match(upLog, /\*\*\*stripped\*\*\*/);
    const printed = await runCaptured(process.execPath, [BIN, 'kubeconfig', '--state-dir', join(dir, 'state')]);
    assert.equal(printed.stdout, await readFile(kubeconfig, 'utf8'));
  });

  it('kubectl get ns verifies the server certificate and lists the namespaces', async () => {
    const r = await kubectl(['get', 'ns', '-o', 'name']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^namespace\/default$/m);
    assert.match(r.stdout, /^namespace\/kube-system$/m);
  });

  it('kubectl auth can-i answers yes for the admin, and --list shows every rule', async () => {
    const one = await kubectl(['auth', 'can-i', 'create', 'pvc']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'yes\n');
    const list = await kubectl(['auth', 'can-i', '--list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs/);
    assert.match(list.stdout, /^\*\.\*\s+\[\]\s+\[\]\s+\[\*\]$/m);
    const who = await kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout, 'system:admin');
  });

  // --validate=false: OpenAPI, which kubectl validates against, is served by another part of the API.
  it('a Lease in kube-system is created, read and renewed (leader election)', async () => {
    const lease = (holder: string, transitions: number): string =>
      JSON.stringify({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'stowage-test-leader', namespace: 'kube-system' },
        spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: '2026-01-02T03:04:05.000006Z', renewTime: '2026-01-02T03:04:05.000006Z', leaseTransitions: transitions },
      });
    const created = await kubectl(['create', '-f', '-'], kubeconfig, lease('a', 0));
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, 'lease.coordination.k8s.io/stowage-test-leader created\n');
    const replaced = await kubectl(['replace', '-f', '-'], kubeconfig, lease('b', 1));
    assert.equal(replaced.code, 0, replaced.stderr);
    const got = await kubectl(['get', 'lease', '-n', 'kube-system', 'stowage-test-leader', '-o', 'jsonpath={.spec.holderIdentity} {.spec.leaseTransitions} {.spec.renewTime}']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'b 1 2026-01-02T03:04:05.000006Z');
    const bad = await kubectl(['create', '-f', '-'], kubeconfig, lease('c', -1).replace('stowage-test-leader', 'bad'));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /spec\.leaseTransitions: Invalid value: -1: must be greater than or equal to 0/);
  });

  it('a wrong token gets kubectl\'s "You must be logged in" error', async () => {
    const wrong = join(dir, 'wrong.kubeconfig');
    const text = await readFile(kubeconfig, 'utf8');
    const config = parse(text) as Kubeconfig;
    await writeFile(wrong, text.replace(config.users[0]?.user.token ?? '', 'not-the-token'), { mode: 0o600 });
    const r = await kubectl(['get', 'ns'], wrong);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: You must be logged in to the server \(Unauthorized\)$/m);
  });
});

/** Starts `up` on a socket and a free https port; resolves once it is up. */
async function startUp(state: string, extra: string[]): Promise<{ up: ChildProcess; log: () => string; stop: () => Promise<void> }> {
  const up = spawn(process.execPath, [BIN, 'up', '--state-dir', state, '--no-local-driver', '--listen', `unix://${join(state, 'api.sock')}`, '--listen', 'https://127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  up.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  up.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const stop = async (): Promise<void> => {
    if (up.exitCode !== null) return;
    const exited = new Promise((resolve) => up.once('exit', resolve));
    up.kill('SIGINT');
    await exited;
  };
  const deadline = Date.now() + 30_000;
  while (!/stowage is up/.test(log)) {
    if (Date.now() > deadline || up.exitCode !== null) {
      await stop();
      throw new Error(`stowage up did not start:\n${log}`);
    }
    await sleep(100);
  }
  return { up, log: () => log, stop };
}

describe('kubectl against `stowage up --authorization RBAC`', () => {
  let dir: string;
  let stop: (() => Promise<void>) | undefined;
  let kubeconfig: string;
  const kubectl = (args: readonly string[], stdin?: string): Promise<Ran> =>
    runCaptured(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { env: { HOME: dir }, ...(stdin === undefined ? {} : { stdin }) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-rbac-'));
    kubeconfig = join(dir, 'state', 'kubeconfig');
    ({ stop } = await startUp(join(dir, 'state'), ['--authorization', 'RBAC']));
  });
  after(async () => {
    await stop?.();
    await rm(dir, { recursive: true, force: true });
  });

  it('a ServiceAccount token gets what its RoleBinding grants, and kube-apiserver\'s 403 for the rest', async () => {
    const manifests = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reader', namespace: 'default' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'pvc-reader', namespace: 'default' },
        rules: [{ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get', 'list', 'watch'] }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'reader-pvcs', namespace: 'default' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader' }],
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pvc-reader' },
      },
    ];
    const applied = await kubectl(['apply', '-f', '-'], manifests.map((m) => stringify(m)).join('---\n'));
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, 'serviceaccount/reader created\nrole.rbac.authorization.k8s.io/pvc-reader created\nrolebinding.rbac.authorization.k8s.io/reader-pvcs created\n');

    const created = await kubectl(['create', 'token', 'reader']);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);

    const pvcs = await kubectl(['--token', token, 'get', 'pvc']);
    assert.equal(pvcs.code, 0, pvcs.stderr);
    assert.equal(pvcs.stderr, 'No resources found in default namespace.\n');
    const pods = await kubectl(['--token', token, 'get', 'pods']);
    assert.equal(pods.code, 1);
    assert.equal(pods.stderr, 'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:reader" cannot list resource "pods" in API group "" in the namespace "default"\n');
    assert.equal((await kubectl(['--token', token, 'auth', 'can-i', 'list', 'pvc'])).stdout, 'yes\n');
    const no = await kubectl(['--token', token, 'auth', 'can-i', 'create', 'pvc']);
    assert.equal(no.stdout, 'no\n');
    assert.equal(no.code, 1);
    const who = await kubectl(['--token', token, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    assert.equal(who.stdout, 'system:serviceaccount:default:reader');
    // The admin may ask on its behalf.
    assert.equal((await kubectl(['auth', 'can-i', 'list', 'pvc', '--as', 'system:serviceaccount:default:reader'])).stdout, 'yes\n');
    assert.equal((await kubectl(['auth', 'can-i', 'create', 'pods', '--as', 'system:serviceaccount:default:reader'])).stdout, 'no\n');
    assert.equal((await kubectl(['auth', 'can-i', 'create', 'pods'])).stdout, 'yes\n', 'the admin kubeconfig is always allowed');

    const short = await kubectl(['create', 'token', 'reader', '--duration', '1m']);
    assert.equal(short.stderr, 'error: failed to create token: TokenRequest "reader" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes\n');
  });
});

describe('stowage up: listen addresses', () => {
  it('serves https elsewhere when 6443 is taken, and the kubeconfig names where', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-port-'));
    // Taken by this test unless something else already holds it: either way `up` must move.
    const blocker = createServer();
    await new Promise<void>((resolve) => {
      blocker.once('error', () => resolve());
      blocker.listen(6443, '127.0.0.1', () => resolve());
    });
    const up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--no-local-driver'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    up.stdout?.on('data', (c: Buffer) => (log += c.toString()));
    up.stderr?.on('data', (c: Buffer) => (log += c.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!/stowage is up/.test(log)) {
        if (Date.now() > deadline || up.exitCode !== null) throw new Error(`stowage up did not start:\n${log}`);
        await sleep(100);
      }
      assert.match(log, /the default API port is in use/);
      const config = parse(await readFile(join(dir, 'kubeconfig'), 'utf8')) as Kubeconfig;
      const server = config.clusters[0]?.cluster.server ?? '';
      assert.match(server, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(server, 'https://127.0.0.1:6443');
      const r = await runCaptured(KUBECTL, ['--kubeconfig', join(dir, 'kubeconfig'), 'get', 'ns', 'default', '-o', 'name'], { env: { HOME: dir } });
      assert.equal(r.stdout, 'namespace/default\n', r.stderr);
      // The CLI still goes through the socket.
      const cli = await runCaptured(process.execPath, [BIN, '--state-dir', dir, 'get', 'sc']);
      assert.equal(cli.code, 0, cli.stderr);
    } finally {
      const exited = new Promise((resolve) => up.once('exit', resolve));
      if (up.exitCode === null) up.kill('SIGINT');
      await exited;
      blocker.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses plain http beyond loopback, in one line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-listen-'));
    try {
      const r = await runCaptured(process.execPath, [BIN, 'up', '--state-dir', dir, '--no-local-driver', '--listen', 'http://0.0.0.0:0']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: stowage up failed: refusing to serve plain http on http:\/\/0\.0\.0\.0:0: only loopback may be unencrypted \(use https:\/\/\)\n$/);
      assert.ok(!existsSync(join(dir, 'server.json')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
