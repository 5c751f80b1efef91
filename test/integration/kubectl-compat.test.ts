// The real kubectl (the one on PATH, and 1.32) against the API server, unchanged and without
// --validate=false: it downloads the OpenAPI v3 documents, finds the fieldValidation parameter and
// sends fieldValidation=Strict, applies the seeds' objects, explains kinds from the schemas, and
// prints the server's Table responses with exactly the columns and cells `stowage get` prints,
// -o wide and -w included. Skipped where kubectl is not installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { writeKubeconfig } from '../support/kubeconfig.js';

/**
 * The kubectl a user runs, and kubectl 1.32 itself where it is installed beside it: the Cloud SDK's
 * /usr/bin/kubectl is a dispatcher that runs the release matching the server's version.
 */
const KUBECTLS = [process.env['STOWAGE_KUBECTL'] ?? '/usr/bin/kubectl', '/usr/lib/google-cloud-sdk/bin/kubectl.1.32'].filter((k, i, all) => existsSync(k) && all.indexOf(k) === i);
const run = promisify(execFile);

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

const ROOT = repoRoot();
const SEEDS = join(ROOT, 'test', 'fixtures', 'seeds');
/** The seed fixtures of served kinds that apply unchanged (see control-fixtures.test.ts). */
const SEED_FILES = [
  '000-csi-config-map.yaml',
  '000-secret.yaml',
  '000-storageclass.yaml',
  '000-pvc.yaml',
  '002-hostpath-pv.yaml',
  '002-hostpath-pvc.yaml',
  '002-limitrange.yaml',
  '002-rook-pvc.yaml',
  '002-rook-pod.yaml',
  '003-nfs-pv.yaml',
  '003-nfs-pod.yaml',
  '004-storageclass.yaml',
  '004-disk-pvc.yaml',
];
/** Objects named like earlier ones: applied in a namespace of their own. */
const SEED_FILES_ELSEWHERE = ['002-rook-test-pvc.yaml', '002-rook-test-pod.yaml'];

/** One object of every served kind, with the fields their columns show. */
const EVERY_KIND = `
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: team}
data: {a: "1", b: "2"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec, namespace: team}
stringData: {k: v}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: stowage.io/local
allowVolumeExpansion: true
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: fast
  hostPath: {path: /tmp/pv1}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim, namespace: team}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  resources: {requests: {storage: 1Gi}}
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: stowage.io}
spec: {attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: [Persistent]}
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {name: node-a}
spec:
  drivers: [{name: stowage.io, nodeID: node-a}]
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata: {name: va1}
spec: {attacher: stowage.io, nodeName: node-a, source: {persistentVolumeName: pv1}}
---
apiVersion: storage.k8s.io/v1
kind: CSIStorageCapacity
metadata: {name: cap1, namespace: team}
storageClassName: fast
capacity: 10Gi
---
apiVersion: v1
kind: LimitRange
metadata: {name: limits, namespace: team}
spec:
  limits: [{type: Container, default: {memory: 512Mi}}]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: snaps}
driver: stowage.io
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: snap1, namespace: team}
spec:
  volumeSnapshotClassName: snaps
  source: {persistentVolumeClaimName: claim}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotContent
metadata: {name: content1}
spec:
  deletionPolicy: Retain
  driver: stowage.io
  source: {snapshotHandle: h1}
  volumeSnapshotRef: {name: snap2, namespace: team}
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {node-role.kubernetes.io/worker: ""}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: team}
spec:
  nodeName: node-a
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Event
metadata: {name: ev1, namespace: team}
involvedObject: {kind: PersistentVolumeClaim, name: claim, namespace: team}
reason: Testing
message: something happened
type: Normal
source: {component: tester}
`;

const KINDS = ['ns', 'cm', 'secret', 'sc', 'pv', 'pvc', 'csidriver', 'csinode', 'volumeattachment', 'csistoragecapacity', 'limitrange', 'pc', 'vsclass', 'vs', 'vsc', 'nodes', 'pods', 'events'];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A table's lines with ages (which the two clients compute a moment apart) masked and runs of
 * padding collapsed: the headers and cells in order, without the layout an age's width shifts.
 */
function cells(table: string): string[] {
  return table
    .trimEnd()
    .split('\n')
    .map((line) => line.replace(/\b\d+(s|m\d*s?)\b/g, '<age>').replace(/ {2,}/g, ' | ').trimEnd())
    .sort();
}

// Never skipped: scripts/setup.sh installs kubectl where none is on PATH.
if (KUBECTLS.length === 0) it('the real kubectl is installed (scripts/setup.sh installs it)', () => assert.fail('no kubectl found'));
for (const KUBECTL of KUBECTLS) describe(`the real kubectl (${KUBECTL}) against the API server`, () => {
  let store: Store;
  let server: ApiServer;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const exec = async (file: string, args: string[], input?: string): Promise<Result> => {
    const child = run(file, args, { env, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    try {
      const { stdout, stderr } = await child;
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const kubectl = (args: string[], input?: string): Promise<Result> => exec(KUBECTL, args, input);
  const stowage = (args: string[]): Promise<Result> => exec(process.execPath, [join(ROOT, 'bin', 'stowage.js'), ...args, '--server', server.url]);
  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    dir = mkdtempSync(join(tmpdir(), 'stowage-kubectl-'));
    const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { server: server.url });
    // Its own HOME: kubectl's discovery and OpenAPI caches stay in the test's directory.
    env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kubeconfig };
  });

  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies a PVC with validation on: OpenAPI v3 says the server validates fields, so kubectl sends fieldValidation=Strict', async () => {
    const pvc = 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n';
    const r = await kubectl(['apply', '-f', '-', '-v=6'], pvc);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /persistentvolumeclaim\/data created/);
    assert.match(r.stderr, /GET [^ ]*\/openapi\/v3\/api\/v1\?hash=[0-9A-F]{128}/);
    assert.match(r.stderr, /POST [^ ]*persistentvolumeclaims\?fieldManager=kubectl-client-side-apply&fieldValidation=Strict 201/);
    // A second apply patches (strategic merge, from the v3 schema) and still validates.
    const again = await kubectl(['apply', '-f', '-', '-v=6'], pvc.replace('name: data\n', 'name: data\n  labels: {tier: gold}\n'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /PATCH [^ ]*persistentvolumeclaims\/data\?fieldManager=kubectl-client-side-apply&fieldValidation=Strict 200/);
    assert.doesNotMatch(again.stderr, /warning/i);
  });

  it('re-applies a snapshot kind: no strategic merge patch for it in v3, and, not being a kind compiled into kubectl, a merge patch after it reads v2', async () => {
    const vs = (label: string): string =>
      `apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: snap0\n  labels: {try: "${label}"}\nspec:\n  source: {persistentVolumeClaimName: data}\n`;
    await ok(['apply', '-f', '-'], vs('1'));
    const r = await kubectl(['apply', '-f', '-', '-v=8'], vs('2'));
    assert.equal(r.code, 0, r.stderr);
    // -v=8 logs each request's line, then its headers, then the response's status.
    assert.match(r.stderr, /GET [^ ]*\/openapi\/v2\?timeout=\d+s\n(.*\n)*?.*Response Status: 200 OK/);
    assert.match(r.stderr, /PATCH [^ ]*volumesnapshots\/snap0\?[^\n]*\n(.*\n)*?.*Content-Type: application\/merge-patch\+json/);
    assert.match(r.stderr, /PATCH [^ ]*volumesnapshots\/snap0\?fieldManager=kubectl-client-side-apply&fieldValidation=Strict\n(.*\n)*?.*Response Status: 200 OK/);
    assert.match(r.stdout, /volumesnapshot\.snapshot\.storage\.k8s\.io\/snap0 configured/);
    assert.equal((await kubectl(['apply', '-f', '-'], vs('3'))).stderr, '', 'nothing to warn about at the default verbosity');
    assert.match(await ok(['get', 'vs', 'snap0', '-o', 'jsonpath={.metadata.labels.try}']), /^3$/);
  });

  it('asks the server to refuse an unknown field with --validate=strict', async () => {
    const bad = 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: odd\nspec:\n  bogus: 1\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n';
    const r = await kubectl(['apply', '-f', '-', '--validate=strict', '-v=6'], bad);
    assert.match(r.stderr, /persistentvolumeclaims\?fieldManager=kubectl-client-side-apply&fieldValidation=Strict/);
    // Where the server checks fields itself, the unknown one is what it reports.
    if (r.code !== 0) assert.match(r.stderr, /bogus/);
  });

  it('applies the seeds\' objects of served kinds unchanged', async () => {
    for (const file of SEED_FILES) await ok(['apply', '-f', join(SEEDS, file)]);
    await ok(['apply', '-f', '-'], 'apiVersion: v1\nkind: Namespace\nmetadata: {name: again}\n');
    for (const file of SEED_FILES_ELSEWHERE) await ok(['apply', '-n', 'again', '-f', join(SEEDS, file)]);
    assert.match(await ok(['get', 'pvc', 'rbd-pvc']), /rbd-pvc\s+Pending/);
    assert.match(await ok(['get', 'sc']), /csi-rbd-sc\s+csi\.block\.bigtera\.com/);
  });

  it('explains kinds and fields from the OpenAPI v3 schemas', async () => {
    const pvc = await ok(['explain', 'pvc']);
    assert.match(pvc, /KIND:\s+PersistentVolumeClaim/);
    assert.match(pvc, /VERSION:\s+v1/);
    assert.match(pvc, /metadata\s+<ObjectMeta>/);
    assert.match(pvc, /spec\s+<Object>/);
    const resources = await ok(['explain', 'pvc.spec.resources']);
    assert.match(resources, /requests\s+<map\[string\]Quantity>/);
    assert.match(resources, /limits\s+<map\[string\]Quantity>/);
    const vs = await ok(['explain', 'volumesnapshot.spec']);
    assert.match(vs, /GROUP:\s+snapshot\.storage\.k8s\.io/);
    assert.match(vs, /source\s+<Object>/);
    assert.match(vs, /volumeSnapshotClassName\s+<string>/);
    assert.match(await ok(['explain', 'volumesnapshot.spec.source']), /persistentVolumeClaimName\s+<string>/);
  });

  it('prints every kind with the columns and cells of `stowage get`, -o wide too', async () => {
    await ok(['apply', '-f', '-'], EVERY_KIND);
    for (const kind of KINDS) {
      for (const wide of [[], ['-o', 'wide']]) {
        const theirs = await ok(['get', kind, '-A', ...wide]);
        const ours = await stowage(['get', kind, '-A', ...wide]);
        assert.equal(ours.code, 0, ours.stderr);
        assert.deepEqual(cells(theirs), cells(ours.stdout), `kubectl get ${kind} -A ${wide.join(' ')}`);
      }
    }
    // The wide-only columns are the priority-1 ones.
    const wide = await ok(['get', 'pvc', '-n', 'team', '-o', 'wide']);
    assert.match(wide.split('\n')[0] ?? '', /AGE\s+VOLUMEMODE$/);
    assert.doesNotMatch((await ok(['get', 'pvc', '-n', 'team'])).split('\n')[0] ?? '', /VOLUMEMODE/);
    // One object, and several kinds at once (names prefixed with their kind).
    assert.match(await ok(['get', 'pvc', 'claim', '-n', 'team']), /^NAME\s+STATUS\s+VOLUME[^\n]*\nclaim\s+Pending/);
    const two = await ok(['get', 'sc,pv']);
    assert.match(two, /storageclass\.storage\.k8s\.io\/fast \(default\)\s+stowage\.io\/local/);
    assert.match(two, /persistentvolume\/pv1\s+2Gi\s+RWO,ROX\s+Retain/);
  });

  it('watches with Table events: kubectl get -w prints new objects under the same header', async () => {
    const watching = kubectl(['get', 'pvc', '-n', 'team', '-w', '--request-timeout=4s']);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await ok(['apply', '-f', '-'], 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: later, namespace: team}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n');
    const out = (await watching).stdout;
    const lines = out.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+STATUS\s+VOLUME\s+CAPACITY\s+ACCESS MODES\s+STORAGECLASS\s+VOLUMEATTRIBUTESCLASS\s+AGE$/);
    assert.equal(lines.filter((l) => l.startsWith('NAME')).length, 1, out);
    assert.ok(lines.some((l) => /^claim\s+Pending/.test(l)), out);
    assert.ok(lines.some((l) => /^later\s+Pending/.test(l)), out);
  });
});
