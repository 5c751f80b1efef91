// /openapi/v2 as gnostic's openapi.v2.Document protobuf, which client-go's OpenAPISchema() asks for
// and kubectl's client-side validation and `explain --output=plaintext-openapiv2` read: the field
// numbers are gnostic's (checked against hand-assembled bytes), the served bytes decode back to
// the JSON document's definitions, GVKs, fields and operations, and the server negotiates the
// encoding from Accept with the JSON form's ETag, as kube-openapi's handler does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { swaggerDocument, v2Document } from '../../src/control/server/openapi.js';
import { documentMessage, encodeSwagger, schemaMessage, v2ProtobufDocument } from '../../src/control/server/openapi-proto.js';
import { documentType } from '../../src/control/server/openapi-v2-proto-schema.js';
import { open, type Store } from '../../src/control/store/store.js';

const PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';
const PROTOBUF_DEPRECATED = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';

// The decoded document, loosely typed: field names are the ones openapi-v2-proto-schema.ts gives.
// biome-ignore lint/suspicious/noExplicitAny: a decoded protobuf tree, walked by the assertions below
type Decoded = any;

function decode(bytes: Uint8Array): Decoded {
  const type = documentType();
  return type.toObject(type.decode(bytes), { arrays: true, longs: Number, oneofs: false });
}

const named = (list: { name: string; value: Decoded }[] | undefined, name: string): Decoded => list?.find((n) => n.name === name)?.value;
const extension = (node: Decoded, name: string): unknown => {
  const yaml = named(node.vendorExtension, name)?.yaml;
  return yaml === undefined ? undefined : parse(yaml);
};

describe('JSON schema to gnostic Schema message', () => {
  const cases: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['a type becomes a one-element TypeItem', { type: 'string', format: 'date-time' }, { type: { value: ['string'] }, format: 'date-time' }],
    ['a list of types is kept', { type: ['string', 'null'] }, { type: { value: ['string', 'null'] } }],
    ['$ref is the _ref field', { $ref: '#/definitions/io.k8s.X' }, { ref: '#/definitions/io.k8s.X' }],
    ['items become a one-element ItemsItem', { type: 'array', items: { type: 'integer' } }, { type: { value: ['array'] }, items: { schema: [{ type: { value: ['integer'] } }] } }],
    ['a boolean additionalProperties', { type: 'object', additionalProperties: false }, { type: { value: ['object'] }, additionalProperties: { boolean: false } }],
    ['a schema additionalProperties', { type: 'object', additionalProperties: { type: 'string' } }, { type: { value: ['object'] }, additionalProperties: { schema: { type: { value: ['string'] } } } }],
    ['required and description', { required: ['a'], description: 'd' }, { required: ['a'], description: 'd' }],
    ['default and enum as YAML', { default: 'x', enum: ['x', 'y'] }, { default: { yaml: 'x\n' }, enum: [{ yaml: 'x\n' }, { yaml: 'y\n' }] }],
    ['an extension as a NamedAny holding YAML', { 'x-kubernetes-list-type': 'atomic' }, { vendorExtension: [{ name: 'x-kubernetes-list-type', value: { yaml: 'atomic\n' } }] }],
    ['properties in order', { properties: { b: { type: 'string' }, a: {} } }, { properties: { additionalProperties: [{ name: 'b', value: { type: { value: ['string'] } } }, { name: 'a', value: {} }] } }],
  ];
  for (const [name, input, expected] of cases) it(name, () => assert.deepEqual(schemaMessage(input), expected));

  it('writes gnostic field numbers: swagger 1, paths 8, definitions 9, Schema.type 22', () => {
    const type = documentType();
    const bytes = type.encode(type.fromObject(documentMessage({ swagger: '2.0', definitions: { A: { type: 'string' } } }))).finish();
    const schema = [0xb2, 0x01, 8, 0x0a, 6, ...Buffer.from('string')];
    const entry = [0x0a, 1, 0x41, 0x12, schema.length, ...schema];
    const definitions = [0x0a, entry.length, ...entry];
    const expected = [0x0a, 3, ...Buffer.from('2.0'), 0x42, 0, 0x4a, definitions.length, ...definitions];
    assert.deepEqual([...bytes], expected);
  });
});

describe('the served v2 document as protobuf', () => {
  const json = swaggerDocument() as { definitions: Record<string, Record<string, unknown>>; paths: Record<string, unknown> };
  const doc = decode(v2ProtobufDocument(v2Document()).bytes);
  const definitions = doc.definitions.additionalProperties as { name: string; value: Decoded }[];
  const pvc = named(definitions, 'io.k8s.api.core.v1.PersistentVolumeClaim');
  const prop = (schema: Decoded, name: string): Decoded => named(schema.properties?.additionalProperties, name);

  it('carries every definition of the JSON document, in order', () => {
    assert.equal(doc.swagger, '2.0');
    assert.equal(doc.info.title, 'Kubernetes');
    assert.deepEqual(
      definitions.map((d) => d.name),
      Object.keys(json.definitions),
    );
  });

  it('gives each kind its x-kubernetes-group-version-kind, as YAML kubectl reads back', () => {
    assert.deepEqual(extension(pvc, 'x-kubernetes-group-version-kind'), [{ group: '', kind: 'PersistentVolumeClaim', version: 'v1' }]);
    const list = named(definitions, 'io.k8s.api.storage.v1.StorageClassList');
    assert.deepEqual(extension(list, 'x-kubernetes-group-version-kind'), [{ group: 'storage.k8s.io', kind: 'StorageClassList', version: 'v1' }]);
  });

  it('keeps fields, references, arrays and maps', () => {
    assert.deepEqual(
      pvc.properties.additionalProperties.map((p: { name: string }) => p.name),
      Object.keys(json.definitions['io.k8s.api.core.v1.PersistentVolumeClaim']?.['properties'] as object),
    );
    assert.equal(prop(pvc, 'metadata').ref, '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta');
    const accessModes = prop(prop(pvc, 'spec'), 'accessModes');
    assert.deepEqual(accessModes.type.value, ['array']);
    assert.deepEqual(accessModes.items.schema[0].type.value, ['string']);
    assert.match(accessModes.description, /access modes/);
    const data = prop(named(definitions, 'io.k8s.api.core.v1.ConfigMap'), 'data');
    assert.deepEqual(data.additionalProperties.schema.type.value, ['string']);
    const withRequired = Object.entries(json.definitions).find(([, d]) => Array.isArray(d['required']));
    assert.ok(withRequired, 'some definition lists required fields');
    assert.deepEqual(named(definitions, withRequired[0]).required, withRequired[1]['required']);
  });

  it('has the paths and operations, with query, path and body parameters', () => {
    const paths = doc.paths.path as { name: string; value: Decoded }[];
    assert.deepEqual(
      paths.map((p) => p.name),
      Object.keys(json.paths),
    );
    const item = named(paths, '/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}');
    const pathParams = item.parameters.map((p: Decoded) => p.parameter.nonBodyParameter.pathParameterSubSchema?.name);
    assert.deepEqual(pathParams.filter(Boolean), ['name', 'namespace']);
    const patch = item.patch;
    assert.equal(patch.operationId, 'patchCoreV1NamespacedPersistentVolumeClaim');
    assert.equal(extension(patch, 'x-kubernetes-action'), 'patch');
    assert.deepEqual(extension(patch, 'x-kubernetes-group-version-kind'), { group: '', kind: 'PersistentVolumeClaim', version: 'v1' });
    const query = patch.parameters.flatMap((p: Decoded) => p.parameter.nonBodyParameter?.queryParameterSubSchema?.name ?? []);
    assert.ok(query.includes('fieldValidation'), query.join());
    const body = patch.parameters[0].parameter.bodyParameter;
    assert.deepEqual([body.name, body.in, body.required, body.schema.ref], ['body', 'body', true, '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch']);
    assert.equal(named(patch.responses.responseCode, '200').response.schema.schema.ref, '#/definitions/io.k8s.api.core.v1.PersistentVolumeClaim');
  });

  it('declares the bearer token security scheme', () => {
    const bearer = named(doc.securityDefinitions.additionalProperties, 'BearerToken').apiKeySecurity;
    assert.deepEqual([bearer.type, bearer.name, bearer.in], ['apiKey', 'authorization', 'header']);
    assert.deepEqual(doc.security[0].additionalProperties, [{ name: 'BearerToken', value: { value: [] } }]);
  });

  it('encodes the same text to the same bytes', () => {
    const text = v2Document().text;
    assert.deepEqual(encodeSwagger(text), encodeSwagger(text));
  });
});

describe('/openapi/v2 content negotiation', () => {
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

  const get = (accept: string, headers: Record<string, string> = {}) => fetch(`${server.url}/openapi/v2`, { headers: { accept, ...headers } });

  it("answers client-go's protobuf Accept with the protobuf document, under the JSON form's ETag", async () => {
    const json = await get('application/json');
    const etag = json.headers.get('etag');
    await json.arrayBuffer();
    for (const accept of [PROTOBUF_DEPRECATED, PROTOBUF]) {
      const res = await get(accept);
      assert.equal(res.status, 200, accept);
      assert.equal(res.headers.get('content-type'), PROTOBUF);
      assert.equal(res.headers.get('etag'), etag);
      assert.equal(res.headers.get('vary'), 'Accept');
      const doc = decode(new Uint8Array(await res.arrayBuffer()));
      assert.ok(named(doc.definitions.additionalProperties, 'io.k8s.api.core.v1.PersistentVolumeClaim'));
    }
    const cached = await get(PROTOBUF_DEPRECATED, { 'if-none-match': etag ?? '' });
    assert.equal(cached.status, 304);
  });

  const choices: [string, string][] = [
    [`${PROTOBUF_DEPRECATED}, application/json`, PROTOBUF],
    [`application/json, ${PROTOBUF_DEPRECATED}`, 'application/json'],
    [`application/json;q=0.5, ${PROTOBUF_DEPRECATED}`, PROTOBUF],
    [`*/*, ${PROTOBUF}`, PROTOBUF],
    ['*/*', 'application/json'],
  ];
  for (const [accept, type] of choices) {
    it(`answers "${accept}" with ${type}`, async () => {
      const res = await get(accept);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), type);
      await res.arrayBuffer();
    });
  }

  it('refuses other media types with 406 NotAcceptable', async () => {
    const res = await get('application/yaml');
    assert.equal(res.status, 406);
    const status = (await res.json()) as { reason: string };
    assert.equal(status.reason, 'NotAcceptable');
  });
});
