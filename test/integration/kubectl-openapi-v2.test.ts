// The real kubectl's client-side validation, which reads /openapi/v2 as protobuf: kubectl asks the
// server to validate fields only for kinds whose OpenAPI v3 PATCH operation declares
// fieldValidation, and `kind: List` has none, so `kubectl get -o yaml > backup.yaml; kubectl apply
// -f backup.yaml` validates the items itself against the v2 document (it failed with "the server was
// unable to respond with a content type that the client supports" while /openapi/v2 was JSON only).
// `kubectl explain --output=plaintext-openapiv2` reads the same document. Skipped where kubectl is
// not installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { writeKubeconfig } from '../support/kubeconfig.js';

/** The kubectl a user runs (a dispatcher to the release matching the server, 1.31) and 1.32 itself. */
const KUBECTLS = [process.env['STOWAGE_KUBECTL'] ?? '/usr/bin/kubectl', '/usr/lib/google-cloud-sdk/bin/kubectl.1.32'].filter((k, i, all) => existsSync(k) && all.indexOf(k) === i);
const run = promisify(execFile);

const LIST = `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata: {name: data, namespace: default}
  spec:
    accessModes: [ReadWriteOnce]
    resources: {requests: {storage: 1Gi}}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: default}
  data: {mode: fast}
- apiVersion: v1
  kind: PersistentVolume
  metadata: {name: disk}
  spec:
    capacity: {storage: 2Gi}
    accessModes: [ReadWriteOnce]
    persistentVolumeReclaimPolicy: Retain
    hostPath: {path: /tmp/disk}
`;

const LIST_WITH_UNKNOWN_FIELD = `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: before-the-bad-one, namespace: default}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata: {name: typo, namespace: default}
  spec:
    accessModes: [ReadWriteOnce]
    foo: bar
    resources: {requests: {storage: 1Gi}}
`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

if (KUBECTLS.length === 0) describe('kubectl client-side validation against /openapi/v2', { skip: 'kubectl is not installed' }, () => undefined);
for (const KUBECTL of KUBECTLS) describe(`kubectl client-side validation against /openapi/v2 (${KUBECTL})`, () => {
  let store: Store;
  let server: ApiServer;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const kubectl = async (args: string[], input?: string): Promise<Result> => {
    const child = run(KUBECTL, args, { env, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
    if (input !== undefined) child.child.stdin?.end(input);
    try {
      const { stdout, stderr } = await child;
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    dir = mkdtempSync(join(tmpdir(), 'stowage-kubectl-v2-'));
    const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { server: server.url });
    // Its own HOME: kubectl's discovery and OpenAPI caches stay in the test's directory.
    env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kubeconfig };
  });

  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies a kind: List of a PVC, a ConfigMap and a PV, validated against the protobuf v2 document: created, then unchanged', async () => {
    const first = await kubectl(['apply', '-f', '-', '-v=6'], LIST);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /persistentvolumeclaim\/data created/);
    assert.match(first.stdout, /configmap\/settings created/);
    assert.match(first.stdout, /persistentvolume\/disk created/);
    assert.match(first.stderr, /GET \S+\/openapi\/v2\S* 200 OK/, 'kubectl validated the items itself, from /openapi/v2');
    const second = await ok(['apply', '-f', '-'], LIST);
    assert.match(second, /persistentvolumeclaim\/data unchanged/);
    assert.match(second, /configmap\/settings unchanged/);
    assert.equal(JSON.parse(await ok(['get', 'cm', 'settings', '-o', 'json'])).data.mode, 'fast');
  });

  it('applies back what `get -o yaml` printed (a List with status, managedFields and resourceVersions)', async () => {
    const backup = await ok(['get', 'pv,pvc,cm', '-o', 'yaml']);
    assert.match(backup, /^kind: List$/m);
    // Fields the server sets itself must be in the schemas kubectl validates the items against.
    assert.match(backup, /lastPhaseTransitionTime/);
    const r = await kubectl(['apply', '-f', '-'], backup);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /persistentvolumeclaim\/data (configured|unchanged)/);
    assert.match(r.stdout, /configmap\/settings (configured|unchanged)/);
    assert.match(r.stdout, /persistentvolume\/disk (configured|unchanged)/);
  });

  it('reports an unknown field in a List item before sending anything', async () => {
    const r = await kubectl(['apply', '-f', '-'], LIST_WITH_UNKNOWN_FIELD);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /error validating data: ValidationError\(PersistentVolumeClaim\.spec\): unknown field "foo" in io\.k8s\.api\.core\.v1\.PersistentVolumeClaim\.spec/);
    assert.match(r.stderr, /turn validation off with --validate=false/);
    const missing = await kubectl(['get', 'cm', 'before-the-bad-one']);
    assert.match(missing.stderr, /configmaps "before-the-bad-one" not found/, 'no item of the List was created');
    // Without client-side validation the server still drops or refuses the field itself.
    const unchecked = await kubectl(['apply', '-f', '-', '--validate=false'], LIST_WITH_UNKNOWN_FIELD);
    assert.equal(unchecked.code, 0, unchecked.stderr);
  });

  it('explains a field from the v2 document with --output=plaintext-openapiv2', async () => {
    const out = await ok(['explain', '--output=plaintext-openapiv2', 'pvc.spec']);
    assert.match(out, /^KIND:\s+PersistentVolumeClaim$/m);
    assert.match(out, /^VERSION:\s+v1$/m);
    assert.match(out, /^RESOURCE: spec <Object>$/m);
    assert.match(out, /^\s+accessModes\t<\[\]string>$/m);
    assert.match(out, /^\s+resources\t<Object>$/m);
    const recursive = await ok(['explain', '--output=plaintext-openapiv2', '--recursive', 'cm']);
    assert.match(recursive, /^\s+data\t<map\[string\]string>$/m);
  });
});
