// The real kubectl (v1.32) doing server-side apply against this API server, as a user would:
// `kubectl apply --server-side` creates, changes and prunes; another manager's `kubectl label` or
// `kubectl patch` makes a re-apply conflict until --force-conflicts; --field-manager shares
// ownership; `kubectl get -o yaml --show-managed-fields` shows the entries.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { ManagedFieldsEntry } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { writeKubeconfig } from '../support/kubeconfig.js';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);

interface ConfigMap {
  metadata: { labels?: Record<string, string>; managedFields?: ManagedFieldsEntry[] };
  data?: Record<string, string>;
}

describe('kubectl apply --server-side', () => {
  let store: Store;
  let server: ApiServer;
  let dir: string;

  /** Runs kubectl; never throws: the exit code is part of what a test checks. */
  const kubectl = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await run(KUBECTL, ['--kubeconfig', join(dir, 'config'), '--cache-dir', join(dir, 'cache'), ...args], { timeout: 30_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const manifest = (data: Record<string, string>, labels: Record<string, string>): string => {
    const file = join(dir, 'app.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app', labels }, data }));
    return file;
  };
  const apply = (file: string, ...flags: string[]): ReturnType<typeof kubectl> => kubectl('apply', '--server-side', ...flags, '-f', file);
  const live = async (): Promise<ConfigMap> => JSON.parse((await kubectl('get', 'configmap', 'app', '-o', 'json', '--show-managed-fields')).stdout) as ConfigMap;
  const managers = (cm: ConfigMap): string[] => (cm.metadata.managedFields ?? []).map((e) => `${e.manager}/${e.operation}`).sort();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-ssa-'));
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    writeKubeconfig(join(dir, 'config'), { server: server.url });
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, changes and prunes what the manifest no longer states', async () => {
    const created = await apply(manifest({ a: '1', b: '2' }, { app: 'web' }));
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout.trim(), 'configmap/app serverside-applied');
    assert.deepEqual(managers(await live()), ['kubectl/Apply'], 'kubectl applies as "kubectl"');

    assert.equal((await apply(manifest({ a: '10', b: '2' }, { app: 'web' }))).code, 0);
    assert.deepEqual((await live()).data, { a: '10', b: '2' });

    assert.equal((await apply(manifest({ a: '10' }, { app: 'web' }))).code, 0);
    const pruned = await live();
    assert.deepEqual(pruned.data, { a: '10' });
    assert.deepEqual(pruned.metadata.managedFields?.[0]?.fieldsV1, { 'f:data': { 'f:a': {} }, 'f:metadata': { 'f:labels': { 'f:app': {} } } });
  });

  it('conflicts with kubectl label and kubectl patch until --force-conflicts', async () => {
    assert.equal((await kubectl('label', 'configmap', 'app', 'app=db', '--overwrite')).code, 0);
    const one = await apply(manifest({ a: '10' }, { app: 'web' }));
    assert.equal(one.code, 1);
    assert.match(one.stderr, /Apply failed with 1 conflict: conflict with "kubectl-label" using v1: \.metadata\.labels\.app/);

    assert.equal((await kubectl('patch', 'configmap', 'app', '-p', '{"data":{"a":"7"}}')).code, 0);
    const two = await apply(manifest({ a: '10' }, { app: 'web' }));
    assert.equal(two.code, 1);
    assert.match(two.stderr, /Apply failed with 2 conflicts: conflicts with "kubectl-label" using v1:\n- \.metadata\.labels\.app\nconflicts with "kubectl-patch" using v1:\n- \.data\.a/);
    assert.deepEqual((await live()).data, { a: '7' }, 'a refused apply changes nothing');

    const forced = await apply(manifest({ a: '10' }, { app: 'web' }), '--force-conflicts');
    assert.equal(forced.code, 0, forced.stderr);
    const taken = await live();
    assert.deepEqual([taken.data, taken.metadata.labels], [{ a: '10' }, { app: 'web' }]);
    assert.deepEqual(managers(taken), ['kubectl/Apply'], 'the other managers owned nothing else');
  });

  it('shares fields with another --field-manager and shows managedFields only when asked', async () => {
    const other = await apply(manifest({ a: '10', c: '3' }, { app: 'web' }), '--field-manager=deployer');
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(managers(await live()), ['deployer/Apply', 'kubectl/Apply']);

    // kubectl's manifest stops stating a: deployer still does, so it stays.
    assert.equal((await apply(manifest({}, { app: 'web' }))).code, 0);
    assert.deepEqual((await live()).data, { a: '10', c: '3' });

    const yaml = await kubectl('get', 'configmap', 'app', '-o', 'yaml', '--show-managed-fields');
    assert.match(yaml.stdout, /\n {2}managedFields:\n {2}- apiVersion: v1\n/);
    // Entries in kube-apiserver's order (Apply, then oldest first), keys sorted as kubectl prints them.
    assert.match(
      yaml.stdout,
      /\n {2}- apiVersion: v1\n {4}fieldsType: FieldsV1\n {4}fieldsV1:\n {6}f:data:\n {8}f:a: \{\}\n {8}f:c: \{\}\n {6}f:metadata:\n {8}f:labels:\n {10}f:app: \{\}\n {4}manager: deployer\n {4}operation: Apply\n {4}time: "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\n/,
    );
    const plain = await kubectl('get', 'configmap', 'app', '-o', 'yaml');
    assert.doesNotMatch(plain.stdout, /managedFields/);
  });

  it('records kubectl create as an Update by "kubectl-create", maps it created as members', async () => {
    assert.equal((await kubectl('create', 'configmap', 'made', '--from-literal=k=v')).code, 0);
    const made = JSON.parse((await kubectl('get', 'configmap', 'made', '-o', 'json', '--show-managed-fields')).stdout) as ConfigMap;
    assert.deepEqual(
      made.metadata.managedFields?.map((e) => [e.manager, e.operation, e.fieldsV1]),
      [['kubectl-create', 'Update', { 'f:data': { '.': {}, 'f:k': {} } }]],
    );
  });
});
