// The real kubectl (/usr/bin/kubectl, v1.32) writing through the API server the way users do:
// apply twice (the second apply is a strategic merge patch computed from last-applied), label,
// annotate, patch --type json|merge|strategic, diff (a server-side dry-run patch), edit through
// KUBE_EDITOR, and --dry-run=server creates and deletes, all with kubectl's default validation
// (server-side, fieldValidation=Strict, found through the OpenAPI v3 documents).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { writeKubeconfig } from '../support/kubeconfig.js';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('kubectl writes', () => {
  let store: Store;
  let server: ApiServer;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    dir = mkdtempSync(join(tmpdir(), 'stowage-kubectl-'));
    const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { server: server.url });
    // Its own HOME: kubectl's discovery cache stays in the test's directory.
    env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kubeconfig };
  });

  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function kubectl(args: string[], extraEnv: Record<string, string> = {}): Promise<Result> {
    try {
      const { stdout, stderr } = await run(KUBECTL, args, { env: { ...env, ...extraEnv }, timeout: 30_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  async function ok(args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
    const r = await kubectl(args, extraEnv);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  function manifest(name: string, text: string): string {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  }

  const configMap = (labels: string, data: string): string =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels:\n${labels}\ndata:\n${data}\n`;

  it('applies twice: the second apply changes and removes labels as last-applied says', async () => {
    const file = manifest('cm.yaml', configMap('    app: web\n    tier: gold', '  mode: fast'));
    assert.match(await ok(['apply', '-f', file]), /configmap\/settings created/);
    manifest('cm.yaml', configMap('    app: api', '  mode: fast'));
    assert.match(await ok(['apply', '-f', file]), /configmap\/settings configured/);
    const stored = store.get('configmaps', 'default', 'settings');
    assert.deepEqual(stored?.metadata.labels, { app: 'api' });
    assert.match(stored?.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'] ?? '', /"app":"api"/);
  });

  it('applies a claim twice with changed labels', async () => {
    const claim = (labels: string): string =>
      `apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  labels:\n${labels}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n`;
    const file = manifest('pvc.yaml', claim('    a: "1"'));
    await ok(['apply', '-f', file]);
    manifest('pvc.yaml', claim('    b: "2"'));
    assert.match(await ok(['apply', '-f', file]), /persistentvolumeclaim\/data configured/);
    assert.deepEqual(store.get('persistentvolumeclaims', 'default', 'data')?.metadata.labels, { b: '2' });
  });

  it('applies a pod twice: the changed container is merged by name, the other kept', async () => {
    const pod = (image: string): string =>
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: ${image}\n  - name: sidecar\n    image: proxy:1\n`;
    const file = manifest('pod.yaml', pod('web:1'));
    await ok(['apply', '-f', file]);
    manifest('pod.yaml', pod('web:2'));
    await ok(['apply', '-f', file]);
    const containers = store.get('pods', 'default', 'web')?.spec.containers ?? [];
    assert.deepEqual(containers.map((c) => `${c.name}=${c.image}`), ['main=web:2', 'sidecar=proxy:1']);
  });

  it('labels, annotates and unlabels', async () => {
    await ok(['label', 'configmap', 'settings', 'env=prod']);
    await ok(['annotate', 'configmap', 'settings', 'owner=team-a']);
    await ok(['label', 'configmap', 'settings', 'app-']);
    const stored = store.get('configmaps', 'default', 'settings');
    assert.deepEqual(stored?.metadata.labels, { env: 'prod' });
    assert.equal(stored?.metadata.annotations?.owner, 'team-a');
    const overwrite = await kubectl(['label', 'configmap', 'settings', 'env=dev']);
    assert.notEqual(overwrite.code, 0, 'kubectl refuses to overwrite a label without --overwrite');
  });

  it('patches with --type json, merge and strategic; a failed JSON patch test is refused', async () => {
    await ok(['patch', 'configmap', 'settings', '--type', 'json', '-p', '[{"op":"add","path":"/data/j","value":"1"}]']);
    await ok(['patch', 'configmap', 'settings', '--type', 'merge', '-p', '{"data":{"m":"2"}}']);
    await ok(['patch', 'configmap', 'settings', '--type', 'strategic', '-p', '{"data":{"s":"3","mode":null}}']);
    assert.deepEqual(store.get('configmaps', 'default', 'settings')?.data, { j: '1', m: '2', s: '3' });
    await ok(['patch', 'pod', 'web', '--type', 'strategic', '-p', '{"spec":{"containers":[{"name":"sidecar","image":"proxy:2"}]}}']);
    assert.deepEqual(store.get('pods', 'default', 'web')?.spec.containers.map((c) => c.image), ['web:2', 'proxy:2']);
    const failed = await kubectl(['patch', 'configmap', 'settings', '--type', 'json', '-p', '[{"op":"test","path":"/data/j","value":"nope"},{"op":"remove","path":"/data/j"}]']);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /The request is invalid: the server rejected our request due to an error in our request/);
    assert.equal(store.get('configmaps', 'default', 'settings')?.data?.j, '1');
  });

  it('diffs against a server-side dry run without changing anything', async () => {
    const before = store.get('configmaps', 'default', 'settings');
    const rv = store.resourceVersion;
    const file = manifest('cm.yaml', configMap('    app: api', '  mode: slow'));
    const diff = await kubectl(['diff', '-f', file]);
    assert.equal(diff.code, 1, `kubectl diff exits 1 when it finds differences: ${diff.stderr}`);
    assert.match(diff.stdout, /\n\+ {2}mode: slow\n/);
    assert.deepEqual(store.get('configmaps', 'default', 'settings'), before);
    assert.equal(store.resourceVersion, rv);
    // An object that does not exist yet: a dry-run create.
    const fresh = manifest('new.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh\ndata:\n  a: b\n');
    const created = await kubectl(['diff', '-f', fresh]);
    assert.equal(created.code, 1, created.stderr);
    assert.match(created.stdout, /\n\+ {2}name: fresh\n/);
    assert.equal(store.get('configmaps', 'default', 'fresh'), undefined);
    assert.equal(store.resourceVersion, rv);
  });

  it('edits through KUBE_EDITOR', async () => {
    const editor = join(dir, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\nsed -i \'s/^  m: "2"$/  m: edited/\' "$1"\n');
    chmodSync(editor, 0o755);
    assert.match(await ok(['edit', 'configmap', 'settings'], { KUBE_EDITOR: editor }), /configmap\/settings edited/);
    assert.equal(store.get('configmaps', 'default', 'settings')?.data?.m, 'edited');
  });

  it('labels and applies with --dry-run=server, changing nothing', async () => {
    const before = store.get('configmaps', 'default', 'settings');
    const rv = store.resourceVersion;
    assert.match(await ok(['label', 'configmap', 'settings', 'dry=run', '--dry-run=server']), /configmap\/settings labeled \(server dry run\)/);
    const file = manifest('cm.yaml', configMap('    app: other', '  mode: dry'));
    const applied = await ok(['apply', '--dry-run=server', '-f', file, '-o', 'jsonpath={.data.mode} {.metadata.labels.app}']);
    assert.equal(applied, 'dry other');
    assert.deepEqual(store.get('configmaps', 'default', 'settings'), before);
    assert.equal(store.resourceVersion, rv);
  });

  it('creates and deletes with --dry-run=server, storing nothing', async () => {
    const created = await ok(['create', 'configmap', 'draft', '--from-literal=a=b', '--dry-run=server', '-o', 'jsonpath={.metadata.uid}']);
    assert.match(created, /^[0-9a-f-]{36}$/);
    assert.equal(store.get('configmaps', 'default', 'draft'), undefined);
    assert.match(await ok(['delete', 'configmap', 'settings', '--dry-run=server']), /configmap "settings" deleted \(server dry run\)/);
    assert.ok(store.get('configmaps', 'default', 'settings'));
  });
});
