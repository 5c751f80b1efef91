// Manifest application as `stowage apply` does it (three-way merge patches, the last-applied
// annotation, created/configured/unchanged), the API client's error lines, and how clients find
// the control plane (--server, <state-dir>/server.json) — against a real API server on a store.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { resourceForName, type ResourceInfo } from '../../src/control/api/registry.js';
import type { PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { ApiClient, ApiStatusError, resourcePath } from '../../src/cli/api-client.js';
import { applyAll, applyObject, canonicalJson, place, threeWayMergePatch, withLastApplied } from '../../src/cli/apply.js';
import { connect, readServerInfo } from '../../src/cli/connection.js';
import { CliError, errorLine } from '../../src/cli/errors.js';
import { parseDuration } from '../../src/cli/delete-command.js';
import { LAST_APPLIED_ANNOTATION } from '../../src/cli/format/describe.js';
import { parseTargets } from '../../src/cli/get-command.js';
import { readManifests } from '../../src/cli/manifests.js';

const SEEDS = fileURLToPath(new URL('../../../test/fixtures/seeds/', import.meta.url));

function resource(name: string): ResourceInfo {
  const r = resourceForName(name);
  assert.ok(r);
  return r;
}

function pvc(name: string, storage = '1Gi', extra: Record<string, unknown> = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage } }, ...extra },
  };
}

describe('three-way merge patches', () => {
  it('sets what differs, deletes what the last apply had and this one drops, keeps what others added', () => {
    const original = { spec: { a: 1, b: 2, list: [1, 2] }, gone: 'x' };
    const modified = { spec: { a: 1, b: 3, list: [1, 2] }, added: true };
    const current = { spec: { a: 1, b: 2, list: [1, 2], defaulted: 'd' }, gone: 'x', status: { phase: 'Bound' } };
    assert.deepEqual(threeWayMergePatch(original, modified, current), { spec: { b: 3 }, added: true, gone: null });
  });

  it('is empty when nothing changes, and replaces lists whole', () => {
    const same = { spec: { list: ['a', 'b'] } };
    assert.deepEqual(threeWayMergePatch(same, same, { ...same, status: {} }), {});
    assert.deepEqual(threeWayMergePatch(same, { spec: { list: ['a'] } }, same), { spec: { list: ['a'] } });
  });

  it('treats an explicit null as a deletion, and ignores deletions of fields already gone', () => {
    assert.deepEqual(threeWayMergePatch(undefined, { a: null }, { a: 1 }), { a: null });
    assert.deepEqual(threeWayMergePatch({ b: 1 }, {}, {}), {});
  });

  it('records the manifest, key-sorted, in the last-applied annotation', () => {
    const obj = withLastApplied({ kind: 'X', apiVersion: 'v1', metadata: { name: 'n', annotations: { z: '1', [LAST_APPLIED_ANNOTATION]: 'old' } } });
    assert.equal(obj.metadata.annotations?.[LAST_APPLIED_ANNOTATION], '{"apiVersion":"v1","kind":"X","metadata":{"annotations":{"z":"1"},"name":"n"}}\n');
    assert.equal(canonicalJson({ b: [{ d: 1, c: 2 }], a: null }), '{"a":null,"b":[{"c":2,"d":1}]}');
  });

  it('places namespaced objects in -n or default, refuses a conflicting explicit namespace, strips it from cluster objects', () => {
    const obj = pvc('x');
    delete obj.metadata.namespace;
    assert.equal(place(resource('pvc'), obj, { namespace: 'team', explicit: false }).metadata.namespace, 'team');
    assert.equal(place(resource('pvc'), pvc('x'), { namespace: 'team', explicit: false }).metadata.namespace, 'default');
    assert.throws(() => place(resource('pvc'), pvc('x'), { namespace: 'team', explicit: true }), (e: Error) => e instanceof CliError && /does not match the namespace "team"/.test(e.message));
    const sc = { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 's', namespace: 'default' }, provisioner: 'p' } as KubeObject;
    assert.equal(place(resource('sc'), sc, { namespace: 'team', explicit: true }).metadata.namespace, undefined);
  });
});

describe('apply and the client against an API server', () => {
  let store: Store;
  let server: ApiServer;
  let client: ApiClient;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-cli-apply-'));
    store = open(':memory:');
    server = await startApiServer({ store, listen: `unix://${join(dir, 'api.sock')}` });
    client = new ApiClient({ server: server.url });
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, leaves unchanged, configures, and removes fields dropped from the manifest', async () => {
    const r = resource('pvc');
    const first = pvc('data', '1Gi', { storageClassName: 'manual' });
    first.metadata.labels = { app: 'db' };
    assert.equal(await applyObject(client, r, first), 'created');
    assert.equal(await applyObject(client, r, first), 'unchanged');
    // Something else (a controller) changes the object: apply keeps it.
    const live = store.get('persistentvolumeclaims', 'default', 'data')!;
    store.update({ ...live, metadata: { ...live.metadata, annotations: { ...live.metadata.annotations, 'pv.kubernetes.io/bind-completed': 'yes' } } });
    assert.equal(await applyObject(client, r, first), 'unchanged');
    const second = pvc('data', '1Gi', { storageClassName: 'manual' });
    second.metadata.labels = { tier: 'gold' };
    assert.equal(await applyObject(client, r, second), 'configured');
    const after = store.get('persistentvolumeclaims', 'default', 'data')!;
    assert.deepEqual(after.metadata.labels, { tier: 'gold' }, 'the label the last apply set and this one dropped is gone');
    assert.equal(after.metadata.annotations?.['pv.kubernetes.io/bind-completed'], 'yes');
    assert.equal(after.spec.volumeMode, 'Filesystem', 'server defaults stay');
  });

  it('reports a Secret with stringData as unchanged when nothing changed', async () => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'default' }, stringData: { k: 'v' } } as KubeObject;
    assert.equal(await applyObject(client, resource('secret'), secret), 'created');
    assert.equal(await applyObject(client, resource('secret'), secret), 'unchanged');
  });

  it('applies the seed fixtures that must apply, and refuses the others in kubectl\'s words', async () => {
    const files = ['000-storageclass.yaml', '000-secret.yaml', '000-pvc.yaml', '002-hostpath-pv.yaml', '002-hostpath-pvc.yaml', '003-nfs-pv.yaml', '004-storageclass.yaml', '000-csi-config-map.yaml'];
    const set = await readManifests(files.map((f) => join(SEEDS, f)));
    assert.deepEqual(set.errors, []);
    const lines: string[] = [];
    const errors = await applyAll(client, set.objects, { namespace: 'default', explicit: false }, (l) => lines.push(l));
    assert.deepEqual(errors, []);
    assert.deepEqual(lines, [
      'storageclass.storage.k8s.io/csi-rbd-sc created',
      'secret/csi-rbd-secret created',
      'persistentvolumeclaim/rbd-pvc created',
      'persistentvolume/task-pv-volume created',
      'persistentvolumeclaim/task-pv-claim created',
      'persistentvolume/nfs-pv created',
      'storageclass.storage.k8s.io/csi-disk created',
      'configmap/ceph-csi-config created',
    ]);
    const again: string[] = [];
    await applyAll(client, set.objects, { namespace: 'default', explicit: false }, (l) => again.push(l));
    assert.ok(again.every((l) => l.endsWith(' unchanged')), again.join('\n'));

    const bad = await readManifests(['003-nfs-pvc.yaml', '002-endpoints-kube-controller-manager.yaml', '002-priorityclass.yaml'].map((f) => join(SEEDS, f)));
    const refused = await applyAll(client, bad.objects, { namespace: 'default', explicit: false }, () => assert.fail('nothing applies'));
    assert.deepEqual(refused, [
      'The PersistentVolumeClaim "nfs-pvc" is invalid: spec.accessModes[0]: Unsupported value: "ReadwriteOnce": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
      `error: resource mapping not found for name: "kube-controller-manager" namespace: "kube-system" from "${join(SEEDS, '002-endpoints-kube-controller-manager.yaml')}": no matches for kind "Endpoints" in version "v1"\nensure CRDs are installed first`,
      `error: resource mapping not found for name: "high-priority" namespace: "" from "${join(SEEDS, '002-priorityclass.yaml')}": no matches for kind "PriorityClass" in version "v1"\nensure CRDs are installed first`,
    ]);
  });

  it('reports unparseable manifests one line each, and still reads the rest', async () => {
    const set = await readManifests([join(SEEDS, '002-hostpath-pod.yaml'), join(SEEDS, '003-flexvolume-pod.yaml'), join(SEEDS, '000-pvc.yaml'), join(dir, 'missing.yaml')]);
    assert.equal(set.objects.length, 1);
    assert.equal(set.errors.length, 3);
    assert.match(set.errors[0]!, /^error: error parsing .*002-hostpath-pod\.yaml: document 1: Tabs are not allowed as indentation at line \d+, column \d+$/);
    assert.match(set.errors[1]!, /^error: error parsing .*003-flexvolume-pod\.yaml: document 1: .+ at line \d+, column \d+$/);
    assert.equal(set.errors[2], `error: the path "${join(dir, 'missing.yaml')}" does not exist`);
    for (const e of set.errors) assert.doesNotMatch(e, /\n/);
  });

  it('reads a directory\'s manifests in name order, and stdin for -', async () => {
    const sub = mkdtempSync(join(dir, 'manifests-'));
    writeFileSync(join(sub, 'b.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n');
    writeFileSync(join(sub, 'a.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } }] }));
    writeFileSync(join(sub, 'notes.txt'), 'not a manifest');
    const set = await readManifests([sub]);
    assert.deepEqual(set.objects.map((o) => o.object.metadata.name), ['a', 'b']);
    const piped = await readManifests(['-'], false, async () => 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: piped\n');
    assert.deepEqual(piped.objects.map((o) => [o.source, o.object.metadata.name]), [['STDIN', 'piped']]);
  });

  it('turns Status errors into kubectl\'s one-line messages', async () => {
    await assert.rejects(client.get(resource('pvc'), 'default', 'nope'), (e: unknown) => {
      assert.ok(e instanceof ApiStatusError);
      assert.equal(errorLine(e), 'Error from server (NotFound): persistentvolumeclaims "nope" not found');
      return true;
    });
    await assert.rejects(client.get(resource('sc'), undefined, 'nope'), (e: unknown) => errorLine(e) === 'Error from server (NotFound): storageclasses.storage.k8s.io "nope" not found');
    await assert.rejects(client.create(resource('pvc'), pvc('rbd-pvc')), (e: unknown) => errorLine(e) === 'Error from server (AlreadyExists): persistentvolumeclaims "rbd-pvc" already exists');
    assert.equal(await client.find(resource('pvc'), 'default', 'nope'), undefined);
    assert.equal(resourcePath(resource('pvc'), 'default', 'x'), '/api/v1/namespaces/default/persistentvolumeclaims/x');
    assert.equal(resourcePath(resource('sc'), 'default'), '/apis/storage.k8s.io/v1/storageclasses');
  });

  it('finds the control plane through server.json, and says so in one line when there is none', async () => {
    const state = mkdtempSync(join(dir, 'state-'));
    await assert.rejects(connect({ stateDir: state }), (e: Error) => e instanceof CliError && e.message === `error: no control plane running in ${state} (start one with \`stowage up\`)`);
    writeFileSync(join(state, 'server.json'), JSON.stringify({ url: server.url, pid: 2 ** 22 + 12345 }));
    assert.equal(await readServerInfo(state), undefined, 'a dead pid is no control plane');
    await assert.rejects(connect({ stateDir: state }), /no control plane running/);
    writeFileSync(join(state, 'server.json'), JSON.stringify({ url: server.url, urls: [server.url], pid: process.pid }));
    const found = await connect({ stateDir: state });
    assert.equal(found.server, server.url);
    assert.equal((await found.list(resource('ns'))).items.length, 2);
    const direct = await connect({ server: server.url, stateDir: join(state, 'nothing-here') });
    assert.equal(direct.server, server.url);
    const refused = new ApiClient({ server: 'http://127.0.0.1:1' });
    await assert.rejects(refused.list(resource('pvc')), (e: unknown) => errorLine(e) === 'error: the connection to the server 127.0.0.1:1 was refused - is the control plane running (stowage up)?');
  });

  it('sends the bearer token', async () => {
    const secured = await startApiServer({ store, listen: 'http://127.0.0.1:0', token: 's3cret' });
    try {
      await assert.rejects(new ApiClient({ server: secured.url }).list(resource('pvc')), (e: unknown) => errorLine(e) === 'error: You must be logged in to the server (Unauthorized)');
      assert.ok((await new ApiClient({ server: secured.url, token: 's3cret' }).list(resource('pvc'))).items.length > 0);
    } finally {
      await secured.close();
    }
  });
});

describe('command-line arguments', () => {
  it('names objects as kubectl does: KIND NAME…, KIND/NAME…, KIND,KIND', () => {
    const show = (args: string[]) => parseTargets(args).map((r) => `${r.resource.plural}:${r.names.join('+')}`);
    assert.deepEqual(show(['pvc']), ['persistentvolumeclaims:']);
    assert.deepEqual(show(['pv', 'a', 'b']), ['persistentvolumes:a+b']);
    assert.deepEqual(show(['pvc/a', 'sc/b']), ['persistentvolumeclaims:a', 'storageclasses:b']);
    assert.deepEqual(show(['pvc,pv,storageclasses.storage.k8s.io']), ['persistentvolumeclaims:', 'persistentvolumes:', 'storageclasses:']);
    assert.throws(() => parseTargets(['widgets']), (e: unknown) => errorLine(e) === 'error: the server doesn\'t have a resource type "widgets"');
    assert.throws(() => parseTargets(['pvc/a', 'b']), CliError);
    assert.throws(() => parseTargets(['pvc,pv', 'a']), CliError);
  });

  it('reads durations', () => {
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1.5'), 1500);
    assert.throws(() => parseDuration('soon'), CliError);
  });
});
