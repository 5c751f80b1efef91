// The OpenAPI documents: generated from the kinds' zod schemas with upstream's names, GVK
// extensions and operation parameters (what kubectl's field-validation check and explain read),
// meta such as x-kubernetes-patch-strategy carried through, and served with hashes, ETags and
// cache headers as kube-apiserver serves them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { groupVersions, RESOURCES, resourceForName } from '../../src/control/api/registry.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { openApiV3Document, swaggerDocument } from '../../src/control/server/openapi.js';
import { FIELD_DESCRIPTIONS, fieldAt, OBJECT_META_DESCRIPTIONS } from '../../src/control/server/openapi-descriptions.js';
import { definitionName, kindDefinition, openApiSchema } from '../../src/control/server/openapi-schemas.js';
import { open, type Store } from '../../src/control/store/store.js';

type Doc = Record<string, unknown> & {
  paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; [k: string]: unknown }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

function v3(groupVersion: string): Doc {
  const gv = groupVersions().find((g) => (g.group === '' ? g.version : `${g.group}/${g.version}`) === groupVersion);
  assert.ok(gv, groupVersion);
  return openApiV3Document(gv) as Doc;
}

function resource(name: string) {
  const r = resourceForName(name);
  assert.ok(r, name);
  return r;
}

describe('OpenAPI generation', () => {
  const names: [string, string][] = [
    ['pvc', 'io.k8s.api.core.v1.PersistentVolumeClaim'],
    ['pv', 'io.k8s.api.core.v1.PersistentVolume'],
    ['events', 'io.k8s.api.core.v1.Event'],
    ['sc', 'io.k8s.api.storage.v1.StorageClass'],
    ['csistoragecapacities', 'io.k8s.api.storage.v1.CSIStorageCapacity'],
    ['priorityclasses', 'io.k8s.api.scheduling.v1.PriorityClass'],
    // CustomResourceDefinitions upstream: the reversed group, then version and kind.
    ['vs', 'io.k8s.storage.snapshot.v1.VolumeSnapshot'],
    ['vsclass', 'io.k8s.storage.snapshot.v1.VolumeSnapshotClass'],
    ['vsc', 'io.k8s.storage.snapshot.v1.VolumeSnapshotContent'],
  ];
  for (const [name, expected] of names) {
    it(`names ${name} ${expected}`, () => assert.equal(definitionName(resource(name)), expected));
  }

  it('gives every kind and list schema its group/version/kind, in its group/version document', () => {
    for (const r of RESOURCES) {
      const doc = v3(r.apiVersion);
      const schema = doc.components.schemas[definitionName(r)];
      assert.deepEqual(schema?.['x-kubernetes-group-version-kind'], [{ group: r.group, kind: r.kind, version: r.version }], r.kind);
      const list = doc.components.schemas[definitionName(r, `${r.kind}List`)];
      assert.deepEqual(list?.['x-kubernetes-group-version-kind'], [{ group: r.group, kind: `${r.kind}List`, version: r.version }]);
    }
  });

  it('builds kind schemas from the validation schemas: known fields, references to ObjectMeta and Quantity', () => {
    const schemas = v3('v1').components.schemas;
    type Node = { type?: string; allOf?: unknown; additionalProperties?: unknown; items?: unknown; properties: Record<string, Node> };
    const pvc = schemas['io.k8s.api.core.v1.PersistentVolumeClaim'] as unknown as Node & { required?: string[] };
    const prop = (node: Node | undefined, name: string): Node => {
      const p = node?.properties[name];
      assert.ok(p, name);
      return p;
    };
    assert.deepEqual(prop(pvc, 'metadata').allOf, [{ $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' }]);
    const spec = prop(pvc, 'spec');
    assert.equal(spec.type, 'object');
    assert.equal(spec.additionalProperties, undefined, 'known fields only');
    assert.deepEqual({ ...prop(spec, 'accessModes'), description: undefined }, { type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'atomic', description: undefined });
    assert.deepEqual({ ...prop(prop(spec, 'resources'), 'requests'), description: undefined }, { description: undefined, type: 'object', additionalProperties: { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity' } });
    assert.equal(prop(pvc, 'apiVersion').type, 'string');
    assert.equal(pvc.required, undefined, 'apiVersion and kind are not required');
    assert.ok(schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta']);
    assert.deepEqual(schemas['io.k8s.apimachinery.pkg.api.resource.Quantity']?.['oneOf'], [{ type: 'string' }, { type: 'number' }]);
    const text = JSON.stringify(v3('v1'));
    assert.doesNotMatch(text, /9007199254740991/, 'no artificial integer bounds');
    assert.doesNotMatch(text, /"additionalProperties":\{\}/);
  });

  it('carries descriptions and x-kubernetes-* meta of zod schemas through', () => {
    const annotated = z.looseObject({
      containers: z
        .array(z.looseObject({ name: z.string(), image: z.string().optional() }))
        .optional()
        .meta({ description: 'The containers.', 'x-kubernetes-patch-strategy': 'merge', 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-list-type': 'map' }),
      labels: z.record(z.string(), z.string()).optional().describe('Labels.'),
    });
    for (const flavor of ['v3', 'v2'] as const) {
      const out = openApiSchema(annotated, flavor) as { properties: Record<string, Record<string, unknown>> };
      const containers = out.properties['containers'];
      assert.equal(containers?.['x-kubernetes-patch-strategy'], 'merge', flavor);
      assert.equal(containers?.['x-kubernetes-patch-merge-key'], 'name');
      assert.equal(containers?.['x-kubernetes-list-type'], 'map');
      assert.equal(containers?.['description'], 'The containers.');
      assert.equal(out.properties['labels']?.['description'], 'Labels.');
    }
  });

  it('describes the main fields of the storage kinds, each description on a field the schema has', () => {
    for (const [kind, fields] of Object.entries(FIELD_DESCRIPTIONS)) {
      const r = RESOURCES.find((x) => x.kind === kind);
      assert.ok(r, kind);
      const schema = kindDefinition(r, 'v3');
      for (const [path, description] of Object.entries(fields)) {
        assert.equal(fieldAt(schema, path)?.description, description, `${kind}.${path}`);
      }
    }
    const meta = v3('v1').components.schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'] ?? {};
    for (const [path, description] of Object.entries(OBJECT_META_DESCRIPTIONS)) assert.equal(fieldAt(meta, path)?.description, description, `ObjectMeta.${path}`);
    const pvc = kindDefinition(resource('pvc'), 'v3');
    assert.match(String(fieldAt(pvc, 'spec.resources.requests')?.description), /minimum amount/);
  });

  // kubectl looks for a PATCH operation with the object's GVK and a fieldValidation query parameter.
  it('declares dryRun, fieldManager, fieldValidation (and force on PATCH) as kube-apiserver does', () => {
    for (const r of RESOURCES) {
      const doc = v3(r.apiVersion);
      const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
      const collection = r.namespaced ? `${base}/namespaces/{namespace}/${r.plural}` : `${base}/${r.plural}`;
      const item = doc.paths[`${collection}/{name}`];
      assert.ok(item, `${r.kind}: item path`);
      const query = (op: string): string[] => {
        const operation = (item[op] ?? doc.paths[collection]?.[op] ?? {}) as { parameters?: { name: string; in: string }[] };
        return (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      };
      const patch = item['patch'] as { 'x-kubernetes-group-version-kind': unknown; 'x-kubernetes-action': string; requestBody: { content: Record<string, unknown> } };
      assert.deepEqual(patch['x-kubernetes-group-version-kind'], { group: r.group, kind: r.kind, version: r.version });
      assert.equal(patch['x-kubernetes-action'], 'patch');
      assert.deepEqual(query('patch'), ['dryRun', 'fieldManager', 'fieldValidation', 'force']);
      assert.deepEqual(query('put'), ['dryRun', 'fieldManager', 'fieldValidation']);
      assert.deepEqual(query('post'), ['dryRun', 'fieldManager', 'fieldValidation']);
      assert.ok(query('get').length === 0 && doc.paths[collection]?.['get'], `${r.kind}: read and list`);
      // Strategic merge patch for built-in kinds only, as for CRDs upstream.
      assert.equal('application/strategic-merge-patch+json' in patch.requestBody.content, r.group !== 'snapshot.storage.k8s.io', r.kind);
      assert.equal(Boolean(doc.paths[`${collection}/{name}/status`]), r.hasStatus, `${r.kind}: /status`);
    }
    const list = v3('v1').paths['/api/v1/namespaces/{namespace}/persistentvolumeclaims']?.['get'] as unknown as { operationId: string; parameters: { name: string }[] };
    assert.equal(list.operationId, 'listCoreV1NamespacedPersistentVolumeClaim');
    assert.ok(['watch', 'resourceVersion', 'limit', 'continue', 'labelSelector', 'fieldSelector', 'allowWatchBookmarks'].every((p) => list.parameters.some((q) => q.name === p)));
    assert.ok(v3('v1').paths['/api/v1/persistentvolumeclaims'], 'list across namespaces');
  });

  it('resolves every reference within its own document', () => {
    const refs = (node: unknown, out: Set<string> = new Set()): Set<string> => {
      if (Array.isArray(node)) for (const n of node) refs(n, out);
      else if (node !== null && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === '$ref' && typeof v === 'string') out.add(v);
          else refs(v, out);
        }
      }
      return out;
    };
    for (const gv of groupVersions()) {
      const doc = openApiV3Document(gv) as Doc;
      for (const r of refs(doc)) assert.ok(r.startsWith('#/components/schemas/') && doc.components.schemas[r.slice(21)], `${gv.group}/${gv.version}: ${r}`);
    }
    const v2 = swaggerDocument() as { definitions: Record<string, unknown> };
    for (const r of refs(v2)) assert.ok(r.startsWith('#/definitions/') && v2.definitions[r.slice(14)], `v2: ${r}`);
  });

  it('writes Swagger 2.0 with definitions, inline parameters and no OpenAPI 3 constructs', () => {
    const doc = swaggerDocument() as { swagger: string; definitions: Record<string, Record<string, unknown>>; paths: Record<string, Record<string, { parameters: { name: string; in: string; type: string }[]; consumes: string[] }>> };
    assert.equal(doc.swagger, '2.0');
    assert.deepEqual(doc.definitions['io.k8s.api.storage.v1.StorageClass']?.['x-kubernetes-group-version-kind'], [{ group: 'storage.k8s.io', kind: 'StorageClass', version: 'v1' }]);
    assert.deepEqual(doc.definitions['io.k8s.apimachinery.pkg.api.resource.Quantity']?.['type'], 'string');
    const patch = doc.paths['/apis/storage.k8s.io/v1/storageclasses/{name}']?.['patch'];
    assert.ok(patch);
    assert.ok(patch.parameters.some((p) => p.name === 'fieldValidation' && p.in === 'query' && p.type === 'string'));
    assert.ok(patch.consumes.includes('application/strategic-merge-patch+json'));
    const text = JSON.stringify(doc);
    assert.doesNotMatch(text, /#\/components\//);
    assert.doesNotMatch(text, /"(anyOf|oneOf|allOf|requestBody|nullable)"/);
  });
});

describe('OpenAPI over HTTP', () => {
  let store: Store;
  let server: ApiServer;
  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  after(async () => {
    await server.close();
    store.close();
  });

  it('lists every group/version at /openapi/v3 with the hash of its document', async () => {
    const res = await fetch(`${server.url}/openapi/v3`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { paths: Record<string, { serverRelativeURL: string }> };
    assert.deepEqual(Object.keys(body.paths).sort(), ['api/v1', 'apis/apps/v1', 'apis/batch/v1', 'apis/coordination.k8s.io/v1', 'apis/policy/v1', 'apis/rbac.authorization.k8s.io/v1', 'apis/scheduling.k8s.io/v1', 'apis/snapshot.storage.k8s.io/v1', 'apis/storage.k8s.io/v1']);
    for (const [path, { serverRelativeURL }] of Object.entries(body.paths)) {
      assert.match(serverRelativeURL, new RegExp(`^/openapi/v3/${path.replaceAll('.', '\\.')}\\?hash=[0-9A-F]{128}$`));
      const doc = await fetch(server.url + serverRelativeURL);
      assert.equal(doc.status, 200);
      assert.equal(doc.headers.get('cache-control'), 'public, immutable');
      assert.ok(Date.parse(doc.headers.get('expires') ?? '') > Date.now() + 300 * 24 * 3600 * 1000, 'cached for a year');
      assert.equal(doc.headers.get('etag'), `"${serverRelativeURL.split('hash=')[1]}"`);
      assert.equal(((await doc.json()) as { openapi: string }).openapi, '3.0.0');
    }
  });

  it('revalidates with the ETag, redirects a stale hash, and 404s an unknown group', async () => {
    const plain = await fetch(`${server.url}/openapi/v3/apis/storage.k8s.io/v1`);
    assert.equal(plain.headers.get('cache-control'), 'no-cache, private');
    const etag = plain.headers.get('etag') ?? '';
    await plain.arrayBuffer();
    const again = await fetch(`${server.url}/openapi/v3/apis/storage.k8s.io/v1`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    const stale = await fetch(`${server.url}/openapi/v3/apis/storage.k8s.io/v1?hash=ABC`, { redirect: 'manual' });
    assert.equal(stale.status, 301);
    assert.equal(stale.headers.get('location'), `/openapi/v3/apis/storage.k8s.io/v1?hash=${etag.slice(1, -1)}`);
    assert.equal((await fetch(`${server.url}/openapi/v3/apis/extensions/v1beta1`)).status, 404);
  });

  it('serves /openapi/v2 as JSON, and as protobuf to a client that accepts only that (control-openapi-proto.test.ts)', async () => {
    const json = await fetch(`${server.url}/openapi/v2`, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 200);
    assert.equal(((await json.json()) as { swagger: string }).swagger, '2.0');
    const proto = await fetch(`${server.url}/openapi/v2`, { headers: { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' } });
    assert.equal(proto.status, 200);
    assert.equal(proto.headers.get('content-type'), 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    await proto.arrayBuffer();
    const other = await fetch(`${server.url}/openapi/v2`, { headers: { accept: 'text/html' } });
    assert.equal(other.status, 406);
    const status = (await other.json()) as { kind: string; reason: string; code: number };
    assert.deepEqual([status.kind, status.reason, status.code], ['Status', 'NotAcceptable', 406]);
  });
});
