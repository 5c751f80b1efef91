// Bad input anywhere is a clear 4xx (issue 11): hostile bodies (nested, huge, not UTF-8, of the
// wrong media type), malformed query parameters (selectors, continue tokens, limits, timeouts),
// malformed DeleteOptions, and quantities parsed exactly as Kubernetes parses them. Every error is
// a proper Status, and nothing is written by a refused request.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseFieldSelector } from '../../src/control/api/field-selector.js';
import { parseManifests } from '../../src/control/api/manifest.js';
import { canonicalQuantity, parseQuantity, QUANTITY_FORMAT_MESSAGE } from '../../src/control/api/quantity.js';
import { resourceForName } from '../../src/control/api/registry.js';
import type { PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { KubeList, Status } from '../../src/control/api/types/meta.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const PVCS = '/api/v1/namespaces/default/persistentvolumeclaims';
const MERGE = { 'content-type': 'application/merge-patch+json' };
const STRATEGIC = { 'content-type': 'application/strategic-merge-patch+json' };

function pvc(name: string, extra: Record<string, unknown> = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    ...extra,
  } as PersistentVolumeClaim;
}

interface Reply<T = Status> {
  status: number;
  body: T;
}

async function call<T = Status>(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as T };
}

/** `{"a":{"a":…}}` nested `depth` levels deep, as text (building it as a value would itself recurse). */
function nestedJson(depth: number, leaf = '1'): string {
  return '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);
}

function assertStatus(reply: Reply, code: number, reason: string, message?: string | RegExp): void {
  assert.equal(reply.status, code, JSON.stringify(reply.body));
  assert.equal(reply.body.kind, 'Status');
  assert.equal(reply.body.apiVersion, 'v1');
  assert.equal(reply.body.status, 'Failure');
  assert.equal(reply.body.code, code);
  assert.equal(reply.body.reason, reason);
  if (typeof message === 'string') assert.equal(reply.body.message, message);
  else if (message !== undefined) assert.match(reply.body.message ?? '', message);
}

describe('API input: bodies', () => {
  let store: Store;
  let server: ApiServer;
  let base: string;
  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    base = server.url;
    assert.equal((await call(base, 'POST', PVCS, pvc('data'))).status, 201);
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  it('refuses documents nested 10 000 deep in every write verb with a 400, not a stack overflow', async () => {
    const rv = store.resourceVersion;
    const deepSpec = `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"deep"},"spec":${nestedJson(10_000)}}`;
    assertStatus(await call(base, 'POST', PVCS, deepSpec), 400, 'BadRequest', /nested too deeply/);
    const deepPut = `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data"},"spec":${nestedJson(10_000)}}`;
    assertStatus(await call(base, 'PUT', `${PVCS}/data`, deepPut), 400, 'BadRequest', /nested too deeply/);
    const deepPatch = `{"metadata":{"annotations":${nestedJson(10_000)}}}`;
    assertStatus(await call(base, 'PATCH', `${PVCS}/data`, deepPatch, MERGE), 400, 'BadRequest', /nested too deeply/);
    assertStatus(await call(base, 'PATCH', `${PVCS}/data`, deepPatch, STRATEGIC), 400, 'BadRequest', /nested too deeply/);
    assertStatus(await call(base, 'PATCH', `${PVCS}/data/status`, deepPatch, MERGE), 400, 'BadRequest', /nested too deeply/);
    const arrays = `[${'['.repeat(10_000)}${']'.repeat(10_000)}]`;
    assertStatus(await call(base, 'PATCH', `${PVCS}/data`, arrays, MERGE), 400, 'BadRequest', /nested too deeply/);
    assertStatus(await call(base, 'DELETE', `${PVCS}/data`, nestedJson(10_000)), 400, 'BadRequest', /nested too deeply/);
    const yaml = `apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: deepyaml}\nspec: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`;
    assertStatus(await call(base, 'POST', PVCS, yaml, { 'content-type': 'application/yaml' }), 400, 'BadRequest', /nested too deeply/);
    assert.equal(store.resourceVersion, rv, 'nothing was written');
    assert.ok(store.get('persistentvolumeclaims', 'default', 'data'), 'the claim is still there');

    // Up to the limit (400 levels here), documents still go through everything without overflowing.
    // Unknown fields are kept, so the whole depth goes through defaulting, validation, copies and the store.
    const created = await call<PersistentVolumeClaim>(base, 'POST', PVCS, `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"nested"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}},"extra":${nestedJson(400)}}`);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const patched = await call<PersistentVolumeClaim>(base, 'PATCH', `${PVCS}/nested`, `{"metadata":{"labels":{"x":"y"}},"extra":${nestedJson(400, '2')}}`, MERGE);
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.metadata.labels?.['x'], 'y');
    const strategic = await call<PersistentVolumeClaim>(base, 'PATCH', `${PVCS}/nested`, `{"extra":${nestedJson(400, '3')}}`, STRATEGIC);
    assert.equal(strategic.status, 200, JSON.stringify(strategic.body));
  });

  it('reads bodies as kube-apiserver does: UTF-8 JSON or YAML only, quantities decoded as Quantity.UnmarshalJSON', async () => {
    const rv = store.resourceVersion;
    const text = JSON.stringify(pvc('latin1', { metadata: { name: 'latin1', annotations: { note: 'caf\u00e9' } } }));
    const body = Buffer.from(text, 'latin1');
    assertStatus(await call(base, 'POST', PVCS, new Uint8Array(body)), 400, 'BadRequest', 'the request body is not valid UTF-8');
    assert.equal(store.resourceVersion, rv);

    // Protobuf (which this server does not speak) and other media types: 415, touching nothing.
    const garbage = new Uint8Array([0x6b, 0x38, 0x73, 0x00, 0xff, 0xfe, 0x01]);
    assertStatus(await call(base, 'POST', PVCS, garbage, { 'content-type': 'application/vnd.kubernetes.protobuf' }), 415, 'UnsupportedMediaType');
    assertStatus(await call(base, 'PUT', `${PVCS}/data`, garbage, { 'content-type': 'application/vnd.kubernetes.protobuf' }), 415, 'UnsupportedMediaType');
    assertStatus(await call(base, 'PATCH', `${PVCS}/data`, garbage, { 'content-type': 'application/vnd.kubernetes.protobuf' }), 415, 'UnsupportedMediaType');
    assertStatus(await call(base, 'POST', PVCS, 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UnsupportedMediaType');
    assert.equal(store.resourceVersion, rv);

    // A quantity with surrounding space is trimmed by the decoding and stored canonically.
    const spaced = await call<PersistentVolumeClaim>(base, 'POST', PVCS, { ...pvc('spaced'), spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: ' 2Gi ' } } } });
    assert.equal(spaced.status, 201);
    assert.equal(spaced.body.spec.resources?.requests?.['storage'], '2Gi');
  });

  it('answers 413 RequestEntityTooLarge for a body over 3 MiB, before reading it', async () => {
    const big = JSON.stringify(pvc('big', { metadata: { name: 'big', annotations: { blob: 'x'.repeat(3 * 1024 * 1024) } } }));
    assertStatus(await call(base, 'POST', PVCS, big), 413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    // A body that does not say its length (chunked) is cut off as it arrives.
    const chunked = await new Promise<Reply>((resolve, reject) => {
      const url = new URL(base);
      const req = request({ host: url.hostname, port: url.port, path: PVCS, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Status }));
      });
      req.on('error', reject);
      for (let i = 0; i < 4; i++) req.write(Buffer.alloc(1024 * 1024, 0x20));
      req.end();
    });
    assertStatus(chunked, 413, 'RequestEntityTooLarge');
    assert.equal(store.get('persistentvolumeclaims', 'default', 'big'), undefined);
  });

  it('refuses DeleteOptions of the wrong shape with a 400', async () => {
    for (const body of ['null', '[]', '5', '"x"', '{"gracePeriodSeconds":"soon"}', '{"propagationPolicy":5}', '{"preconditions":"x"}', '{"preconditions":{"uid":7}}', '{"orphanDependents":"yes"}']) {
      assertStatus(await call(base, 'DELETE', `${PVCS}/data`, body), 400, 'BadRequest', undefined);
    }
    assertStatus(await call(base, 'DELETE', `${PVCS}/data?gracePeriodSeconds=soon`), 400, 'BadRequest', 'gracePeriodSeconds: strconv.ParseInt: parsing "soon": invalid syntax');
    assert.ok(store.get('persistentvolumeclaims', 'default', 'data'), 'nothing was deleted');
  });

});

describe('API input: query parameters', () => {
  let store: Store;
  let server: ApiServer;
  let base: string;
  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    base = server.url;
    for (const name of ['a', 'b', 'c', 'd', 'e']) store.create(pvc(name));
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  it('refuses malformed field selectors with Kubernetes messages', async () => {
    assertStatus(await call(base, 'GET', `${PVCS}?fieldSelector=${encodeURIComponent('metadata.name===x')}`), 400, 'BadRequest', 'invalid field selector: unescaped character in value: 61');
    assertStatus(await call(base, 'GET', `${PVCS}?fieldSelector=nonsense`), 400, 'BadRequest', "invalid selector: 'nonsense'; can't understand 'nonsense'");
    assertStatus(await call(base, 'GET', `${PVCS}?fieldSelector=spec.nodeName%3Dx`), 400, 'BadRequest', 'field label not supported: spec.nodeName');
    assertStatus(await call(base, 'GET', `${PVCS}?fieldSelector=${encodeURIComponent('metadata.name=a\\')}`), 400, 'BadRequest', 'invalid field selector: invalid escape sequence: \\');
    assertStatus(await call(base, 'GET', `${PVCS}?watch=1&fieldSelector=${encodeURIComponent('metadata.name===x')}`), 400, 'BadRequest');
    const escaped = await call<KubeList>(base, 'GET', `${PVCS}?fieldSelector=${encodeURIComponent('metadata.name==a,,metadata.name!=b\\,c')}`);
    assert.equal(escaped.status, 200);
    assert.deepEqual(escaped.body.items.map((i) => i.metadata.name), ['a']);
  });

  it('refuses malformed label selectors with a 400', async () => {
    for (const selector of ['app in (a', '=x', 'a b', 'a=b=c', '!', 'a notin b', `${'x'.repeat(64)}=y`, 'a=(b)']) {
      assertStatus(await call(base, 'GET', `${PVCS}?labelSelector=${encodeURIComponent(selector)}`), 400, 'BadRequest', /unable to parse requirement|found|invalid/);
    }
  });

  it('refuses malformed continue tokens, limits, resource versions and timeouts with a 400', async () => {
    assertStatus(await call(base, 'GET', `${PVCS}?continue=garbage`), 400, 'BadRequest', /^invalid continue token: continue key is not valid: /);
    assertStatus(await call(base, 'GET', `${PVCS}?continue=%25%25`), 400, 'BadRequest', 'invalid continue token: continue key is not valid: illegal base64 data at input byte 0');
    const token = (json: unknown): string => Buffer.from(JSON.stringify(json)).toString('base64url');
    assertStatus(await call(base, 'GET', `${PVCS}?continue=${token({ v: 'meta.k8s.io/v2', rv: 1, start: 'a' })}`), 400, 'BadRequest', /server does not recognize this encoded version "meta.k8s.io\/v2"/);
    assertStatus(await call(base, 'GET', `${PVCS}?continue=${token({ v: 'meta.k8s.io/v1', rv: 0, start: 'a' })}`), 400, 'BadRequest', /incorrect encoded start resourceVersion/);
    assertStatus(await call(base, 'GET', `${PVCS}?continue=${token({ v: 'meta.k8s.io/v1', rv: 1, start: '' })}`), 400, 'BadRequest', /encoded start key empty/);
    assertStatus(await call(base, 'GET', `${PVCS}?continue=${token({ v: 'meta.k8s.io/v1', rv: 1, start: '../../secrets/x' })}`), 400, 'BadRequest');
    assertStatus(await call(base, 'GET', `${PVCS}?continue=${token({ v: 'meta.k8s.io/v1', rv: 1, start: 'default/a\u0000' })}&resourceVersion=5`), 400, 'BadRequest', 'specifying resource version is not allowed when using continue');
    assertStatus(await call(base, 'GET', `${PVCS}?limit=abc`), 400, 'BadRequest', 'limit: strconv.ParseInt: parsing "abc": invalid syntax');
    assertStatus(await call(base, 'GET', `${PVCS}?limit=99999999999999999999`), 400, 'BadRequest', /value out of range/);
    assertStatus(await call(base, 'GET', `${PVCS}?resourceVersion=abc`), 400, 'BadRequest', /^invalid resource version/);
    assertStatus(await call(base, 'GET', `${PVCS}?watch=true&timeoutSeconds=abc`), 400, 'BadRequest', 'timeoutSeconds: strconv.ParseInt: parsing "abc": invalid syntax');
  });

  it('pages with limit and continue over a consistent snapshot', async () => {
    const first = await call<KubeList>(base, 'GET', `${PVCS}?limit=2`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.items.map((i) => i.metadata.name), ['a', 'b']);
    assert.equal(first.body.metadata.remainingItemCount, 3);
    const token = first.body.metadata.continue;
    assert.ok(token);
    // Changes after the first page do not show in the rest of the list.
    store.delete('persistentvolumeclaims', 'default', 'd');
    store.create(pvc('bb'));
    store.update({ ...pvc('c'), metadata: { name: 'c', namespace: 'default', labels: { later: 'yes' } } });
    const second = await call<KubeList>(base, 'GET', `${PVCS}?limit=2&continue=${token}`);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.deepEqual(second.body.items.map((i) => i.metadata.name), ['c', 'd']);
    assert.equal(second.body.items[0]?.metadata.labels, undefined);
    assert.equal(second.body.metadata.resourceVersion, first.body.metadata.resourceVersion);
    const third = await call<KubeList>(base, 'GET', `${PVCS}?limit=2&continue=${second.body.metadata.continue ?? ''}`);
    assert.deepEqual(third.body.items.map((i) => i.metadata.name), ['e']);
    assert.equal(third.body.metadata.continue, undefined);
    // A fresh list sees the changes.
    const now = await call<KubeList>(base, 'GET', PVCS);
    assert.deepEqual(now.body.items.map((i) => i.metadata.name), ['a', 'b', 'bb', 'c', 'e']);
  });

  it('answers 410 Expired for a continue token older than the event log, with a token for the rest', async () => {
    const small = open(':memory:', { eventRetention: 5 });
    const smallServer = await startApiServer({ store: small, listen: 'http://127.0.0.1:0' });
    try {
      for (const name of ['a', 'b', 'c']) small.create(pvc(name));
      const first = await call<KubeList>(smallServer.url, 'GET', `${PVCS}?limit=1`);
      for (let i = 0; i < 20; i++) small.create(pvc(`z${i}`));
      const expired = await call(smallServer.url, 'GET', `${PVCS}?limit=2&continue=${first.body.metadata.continue ?? ''}`);
      assertStatus(
        expired,
        410,
        'Expired',
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
      );
      const rest = expired.body.metadata.continue;
      assert.ok(rest);
      const remainder = await call<KubeList>(smallServer.url, 'GET', `${PVCS}?limit=2&continue=${rest}`);
      assert.equal(remainder.status, 200);
      assert.deepEqual(remainder.body.items.map((i) => i.metadata.name), ['b', 'c']);
    } finally {
      await smallServer.close();
      small.close();
    }
  });
});

describe('quantities exactly as resource.ParseQuantity', () => {
  it('refuses surrounding space and anything out of the scanner order', () => {
    for (const text of [' 1Gi', '1Gi ', '\t1', '1 Gi', '1.2.3', '1e3.5', '1KiB', 'abc', '']) {
      assert.throws(() => parseQuantity(text), { message: QUANTITY_FORMAT_MESSAGE }, JSON.stringify(text));
    }
    for (const text of ['1e', '1Gii', '1mi', '1K', '.5i', '1Gi+', '1e99999999999999999999']) assert.throws(() => parseQuantity(text), { message: "unable to parse quantity's suffix" }, text);
  });

  it('accepts what Kubernetes accepts, with its canonical form', () => {
    const cases: [string, string][] = [
      ['+', '0'],
      ['-', '0'],
      ['.', '0'],
      ['1.', '1'],
      ['1.G', '1G'],
      ['Gi', '0'],
      ['+1Ki', '1Ki'],
      ['1e+3', '1e3'],
      ['1E3', '1e3'],
      ['0.1n', '1n'],
      ['1e-20', '1e-9'],
      ['99999999999999999999Ei', '9223372036854775807'],
    ];
    for (const [text, canonical] of cases) assert.equal(canonicalQuantity(text), canonical, text);
  });
});

describe('field selectors exactly as fields.ParseSelector', () => {
  const pvcs = resourceForName('persistentvolumeclaims');
  it('splits on the first operator and unescapes the value', () => {
    assert.ok(pvcs);
    assert.deepEqual(parseFieldSelector('metadata.name==a\\=b', pvcs), [{ field: 'metadata.name', operator: 'Equals', value: 'a=b' }]);
    assert.deepEqual(parseFieldSelector(',metadata.name!=x,', pvcs), [{ field: 'metadata.name', operator: 'NotEquals', value: 'x' }]);
    assert.throws(() => parseFieldSelector(' metadata.name=x', pvcs), { message: 'field label not supported:  metadata.name' });
  });
});

describe('manifests (the CLI apply path)', () => {
  it('refuses a manifest nested 10 000 deep with a clear error, not a stack overflow', () => {
    const json = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":${nestedJson(10_000)}}`;
    assert.throws(() => parseManifests(json, 'deep.json'), /deep\.json: document 1 is nested too deeply/);
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`;
    assert.throws(() => parseManifests(yaml, 'deep.yaml'), /deep\.yaml: document 1 is nested too deeply/);
  });
});
