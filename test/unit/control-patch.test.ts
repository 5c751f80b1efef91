// Patches as the API server applies them, on in-memory objects: strategic merge patch (merge keys,
// set-merged finalizers, $patch, $setElementOrder, $retainKeys, $deleteFromPrimitiveList) with the
// kinds' patch metadata, JSON patch (RFC 6902 appendix A), and unknown-field detection for
// ?fieldValidation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { strategyFor } from '../../src/control/api/kinds/strategies.js';
import { patchMetaFor, supportsStrategicMerge } from '../../src/control/api/patch-meta.js';
import { type ResourceInfo, resourceForName } from '../../src/control/api/registry.js';
import { ApiError } from '../../src/control/store/errors.js';
import { checkFields, duplicateFields, unknownFields } from '../../src/control/server/field-validation.js';
import { applyJsonPatch, decodeJsonPatch, MAX_OPERATIONS, type Operation } from '../../src/control/server/json-patch.js';
import { strategicMergePatch } from '../../src/control/server/strategic-merge-patch.js';

function resource(name: string): ResourceInfo {
  const r = resourceForName(name);
  assert.ok(r, name);
  return r;
}

const PODS = resource('pods');
const PVCS = resource('pvc');

function pod(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', ...metadata }, spec };
}

function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    return err;
  }
  assert.fail('expected an error');
}

describe('patch metadata from the schemas', () => {
  const cases: { path: string[]; strategies: string[]; mergeKey?: string; listType?: string }[] = [
    { path: ['spec', 'containers'], strategies: ['merge'], mergeKey: 'name', listType: 'map' },
    { path: ['spec', 'volumes'], strategies: ['merge', 'retainKeys'], mergeKey: 'name', listType: 'map' },
    { path: ['spec', 'containers', '*', 'ports'], strategies: ['merge'], mergeKey: 'containerPort', listType: 'map' },
    { path: ['spec', 'initContainers', '*', 'env'], strategies: ['merge'], mergeKey: 'name', listType: 'map' },
    { path: ['spec', 'containers', '*', 'volumeMounts'], strategies: ['merge'], mergeKey: 'mountPath', listType: 'map' },
    { path: ['spec', 'tolerations'], strategies: [], listType: 'atomic' },
    { path: ['metadata', 'finalizers'], strategies: ['merge'], listType: 'set' },
    { path: ['metadata', 'ownerReferences'], strategies: ['merge'], mergeKey: 'uid', listType: 'map' },
    { path: ['status', 'conditions'], strategies: ['merge'], mergeKey: 'type', listType: 'map' },
    { path: ['spec', 'nodeSelector'], strategies: [] },
    { path: ['status', 'podIPs'], strategies: ['merge'], mergeKey: 'ip', listType: 'atomic' },
  ];
  for (const c of cases) {
    it(`pods ${c.path.join('.')}`, () => {
      let meta = patchMetaFor(PODS);
      for (const p of c.path) meta = p === '*' ? meta.items() : meta.field(p);
      assert.deepEqual(meta.strategies, c.strategies);
      assert.equal(meta.mergeKey, c.mergeKey);
      assert.equal(meta.listType, c.listType);
    });
  }

  it('takes strategic merge patches for built-in kinds only (snapshots are custom resources upstream)', () => {
    assert.equal(supportsStrategicMerge(PODS), true);
    assert.equal(supportsStrategicMerge(resource('volumesnapshots')), false);
    assert.equal(supportsStrategicMerge(resource('volumesnapshotcontents')), false);
  });
});

describe('strategic merge patch', () => {
  const two = pod({
    containers: [
      { name: 'a', image: 'a:1', ports: [{ containerPort: 80 }] },
      { name: 'b', image: 'b:1' },
    ],
    tolerations: [{ key: 'x', operator: 'Exists' }],
    volumes: [{ name: 'v', hostPath: { path: '/a' } }],
  });
  const cases: { name: string; original: Record<string, unknown>; patch: Record<string, unknown>; want: (o: Record<string, unknown>) => unknown; expect: unknown }[] = [
    {
      name: 'merges list elements by their merge key',
      original: two,
      patch: { spec: { containers: [{ name: 'b', image: 'b:2' }] } },
      want: (o) => (o.spec as { containers: unknown }).containers,
      expect: [
        { name: 'a', image: 'a:1', ports: [{ containerPort: 80 }] },
        { name: 'b', image: 'b:2' },
      ],
    },
    {
      name: 'appends an element with a new key',
      original: two,
      patch: { spec: { containers: [{ name: 'c', image: 'c:1' }] } },
      want: (o) => (o.spec as { containers: { name: string }[] }).containers.map((c) => c.name),
      expect: ['a', 'b', 'c'],
    },
    {
      name: 'merges nested lists by their own key (ports by containerPort)',
      original: two,
      patch: { spec: { containers: [{ name: 'a', ports: [{ containerPort: 443 }] }] } },
      want: (o) => (o.spec as { containers: { ports?: unknown }[] }).containers[0]?.ports,
      expect: [{ containerPort: 80 }, { containerPort: 443 }],
    },
    {
      name: '$patch: delete removes the element with that key',
      original: two,
      patch: { spec: { containers: [{ name: 'a', $patch: 'delete' }] } },
      want: (o) => (o.spec as { containers: { name: string }[] }).containers.map((c) => c.name),
      expect: ['b'],
    },
    {
      name: '$setElementOrder orders the merged list',
      original: two,
      patch: { spec: { '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }], containers: [{ name: 'a', image: 'a:2' }] } },
      want: (o) => (o.spec as { containers: { name: string; image: string }[] }).containers.map((c) => `${c.name}=${c.image}`),
      expect: ['b=b:1', 'a=a:2'],
    },
    {
      name: '$setElementOrder keeps the server\'s own elements where the live list has them',
      original: pod({ containers: [{ name: 'a' }, { name: 'x' }, { name: 'b' }] }),
      patch: { spec: { '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }, { name: 'c' }], containers: [{ name: 'c' }] } },
      want: (o) => (o.spec as { containers: { name: string }[] }).containers.map((c) => c.name),
      expect: ['x', 'b', 'a', 'c'],
    },
    {
      name: '$setElementOrder orders a set-merged list of scalars',
      original: pod({}, { finalizers: ['a', 'b'] }),
      patch: { metadata: { '$setElementOrder/finalizers': ['c', 'b', 'a'], finalizers: ['c'] } },
      want: (o) => (o.metadata as { finalizers: unknown }).finalizers,
      expect: ['c', 'b', 'a'],
    },
    {
      name: 'a {$patch: replace} element replaces the whole list',
      original: two,
      patch: { spec: { containers: [{ $patch: 'replace' }, { name: 'z', image: 'z:1' }] } },
      want: (o) => (o.spec as { containers: unknown }).containers,
      expect: [{ name: 'z', image: 'z:1' }],
    },
    {
      name: 'deletions apply before the rest of the patch list, whatever their place in it',
      original: two,
      patch: { spec: { containers: [{ name: 'b', image: 'b:3' }, { name: 'b', $patch: 'delete' }] } },
      want: (o) => (o.spec as { containers: { name: string; image: string }[] }).containers.map((c) => `${c.name}=${c.image}`),
      expect: ['a=a:1', 'b=b:3'],
    },
    {
      name: 'an atomic list (tolerations) is replaced',
      original: two,
      patch: { spec: { tolerations: [{ key: 'y', operator: 'Exists' }] } },
      want: (o) => (o.spec as { tolerations: unknown }).tolerations,
      expect: [{ key: 'y', operator: 'Exists' }],
    },
    {
      name: '$retainKeys clears the fields of a volume the patch does not keep',
      original: two,
      patch: { spec: { volumes: [{ name: 'v', $retainKeys: ['name', 'persistentVolumeClaim'], persistentVolumeClaim: { claimName: 'c' } }] } },
      want: (o) => (o.spec as { volumes: unknown }).volumes,
      expect: [{ name: 'v', persistentVolumeClaim: { claimName: 'c' } }],
    },
    {
      name: 'finalizers merge as a set',
      original: pod({}, { finalizers: ['x'] }),
      patch: { metadata: { finalizers: ['y', 'x'] } },
      want: (o) => (o.metadata as { finalizers: unknown }).finalizers,
      expect: ['x', 'y'],
    },
    {
      name: '$deleteFromPrimitiveList removes finalizers',
      original: pod({}, { finalizers: ['x', 'y'] }),
      patch: { metadata: { '$deleteFromPrimitiveList/finalizers': ['x'] } },
      want: (o) => (o.metadata as { finalizers: unknown }).finalizers,
      expect: ['y'],
    },
    {
      name: 'maps merge and null deletes',
      original: pod({}, { labels: { a: '1', b: '2' } }),
      patch: { metadata: { labels: { a: null, c: '3' } } },
      want: (o) => (o.metadata as { labels: unknown }).labels,
      expect: { b: '2', c: '3' },
    },
    {
      name: '$patch: replace in a map replaces the map',
      original: pod({}, { labels: { a: '1', b: '2' } }),
      patch: { metadata: { labels: { $patch: 'replace', c: '3' } } },
      want: (o) => (o.metadata as { labels: unknown }).labels,
      expect: { c: '3' },
    },
    {
      name: 'a list the schemas do not describe is replaced',
      original: pod({ unknownList: [1, 2] }),
      patch: { spec: { unknownList: [3] } },
      want: (o) => (o.spec as { unknownList: unknown }).unknownList,
      expect: [3],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const before = structuredClone(c.original);
      const out = strategicMergePatch(c.original, c.patch, patchMetaFor(PODS)) as Record<string, unknown>;
      assert.deepEqual(c.want(out), c.expect);
      assert.deepEqual(c.original, before, 'the original is not changed');
    });
  }

  it('merges PVC status conditions by type', () => {
    const pvc = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, status: { conditions: [{ type: 'Resizing', status: 'True' }] } };
    const out = strategicMergePatch(pvc, { status: { conditions: [{ type: 'FileSystemResizePending', status: 'True' }] } }, patchMetaFor(PVCS)) as typeof pvc;
    assert.deepEqual(out.status.conditions.map((c) => c.type), ['Resizing', 'FileSystemResizePending']);
  });

  const errors: { name: string; patch: unknown; code: number; message: string }[] = [
    {
      name: 'an element without the merge key',
      patch: { spec: { containers: [{ image: 'x' }] } },
      code: 400,
      message: 'map: map[image:x] does not contain declared merge key: name',
    },
    { name: 'an unknown $patch', patch: { spec: { $patch: 'explode' } }, code: 400, message: 'unknown patch type: explode in map: map[$patch:explode]' },
    {
      name: '$retainKeys without a key the patch sets',
      patch: { spec: { volumes: [{ name: 'v', $retainKeys: ['name'], emptyDir: {} }] } },
      code: 422,
      message: 'the server rejected our request due to an error in our request',
    },
    { name: 'a non-list $deleteFromPrimitiveList', patch: { metadata: { '$deleteFromPrimitiveList/finalizers': 'x' } }, code: 400, message: 'invalid patch format of primitive list' },
    { name: 'maps in a set-merged list', patch: { metadata: { finalizers: [{ a: 1 }] } }, code: 400, message: 'invalid patch format of primitive list' },
    { name: 'a non-list $setElementOrder', patch: { spec: { '$setElementOrder/containers': 5 } }, code: 400, message: 'invalid patch format of setElementOrder list' },
    { name: 'a non-list $retainKeys', patch: { spec: { volumes: [{ name: 'v', $retainKeys: 'name' }] } }, code: 400, message: 'invalid patch format of retainKeys' },
    { name: '$patch: merge in a list', patch: { spec: { containers: [{ name: 'a', $patch: 'merge' }] } }, code: 400, message: 'merging lists cannot yet be specified in the patch' },
    { name: 'a patch that is not an object', patch: [1], code: 400, message: 'json: cannot unmarshal array into Go value of type map[string]interface {}' },
  ];
  for (const e of errors) {
    it(`refuses ${e.name}`, () => {
      const err = thrown(() => strategicMergePatch(two, e.patch, patchMetaFor(PODS)));
      assert.equal(err.code, e.code);
      assert.equal(err.message, e.message);
    });
  }

  it('stays linear on a long list (hostile input)', () => {
    const n = 20_000;
    const original = pod({ containers: Array.from({ length: n }, (_, i) => ({ name: `c${i}` })) });
    const patch = { spec: { '$setElementOrder/containers': Array.from({ length: n }, (_, i) => ({ name: `c${n - 1 - i}` })), containers: Array.from({ length: n }, (_, i) => ({ name: `c${i}`, image: 'x' })) } };
    const started = performance.now();
    const out = strategicMergePatch(original, patch, patchMetaFor(PODS)) as { spec: { containers: { name: string }[] } };
    assert.ok(performance.now() - started < 2000);
    assert.equal(out.spec.containers[0]?.name, `c${n - 1}`);
  });
});

describe('JSON patch (RFC 6902 appendix A)', () => {
  const ok: { name: string; doc: unknown; ops: Operation[]; expect: unknown }[] = [
    { name: 'A.1 adds an object member', doc: { foo: 'bar' }, ops: [{ op: 'add', path: '/baz', value: 'qux' }], expect: { baz: 'qux', foo: 'bar' } },
    { name: 'A.2 adds an array element', doc: { foo: ['bar', 'baz'] }, ops: [{ op: 'add', path: '/foo/1', value: 'qux' }], expect: { foo: ['bar', 'qux', 'baz'] } },
    { name: 'A.3 removes an object member', doc: { baz: 'qux', foo: 'bar' }, ops: [{ op: 'remove', path: '/baz' }], expect: { foo: 'bar' } },
    { name: 'A.4 removes an array element', doc: { foo: ['bar', 'qux', 'baz'] }, ops: [{ op: 'remove', path: '/foo/1' }], expect: { foo: ['bar', 'baz'] } },
    { name: 'A.5 replaces a value', doc: { baz: 'qux', foo: 'bar' }, ops: [{ op: 'replace', path: '/baz', value: 'boo' }], expect: { baz: 'boo', foo: 'bar' } },
    {
      name: 'A.6 moves a value',
      doc: { foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } },
      ops: [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }],
      expect: { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } },
    },
    { name: 'A.7 moves an array element', doc: { foo: ['all', 'grass', 'cows', 'eat'] }, ops: [{ op: 'move', from: '/foo/1', path: '/foo/3' }], expect: { foo: ['all', 'cows', 'eat', 'grass'] } },
    {
      name: 'A.8 tests values',
      doc: { baz: 'qux', foo: ['a', 2, 'c'] },
      ops: [
        { op: 'test', path: '/baz', value: 'qux' },
        { op: 'test', path: '/foo/1', value: 2 },
      ],
      expect: { baz: 'qux', foo: ['a', 2, 'c'] },
    },
    { name: 'A.10 adds a nested member object', doc: { foo: 'bar' }, ops: [{ op: 'add', path: '/child', value: { grandchild: {} } }], expect: { foo: 'bar', child: { grandchild: {} } } },
    { name: 'A.14 unescapes ~01 as ~1', doc: { '/': 9, '~1': 10 }, ops: [{ op: 'test', path: '/~01', value: 10 }], expect: { '/': 9, '~1': 10 } },
    { name: 'A.16 appends with "-"', doc: { foo: ['bar'] }, ops: [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }], expect: { foo: ['bar', ['abc', 'def']] } },
    { name: 'unescapes ~1 as /', doc: { metadata: { annotations: { 'a/b': 'x' } } }, ops: [{ op: 'remove', path: '/metadata/annotations/a~1b' }], expect: { metadata: { annotations: {} } } },
    { name: 'counts a negative index from the end, as evanphx/json-patch', doc: { f: ['a', 'b', 'c'] }, ops: [{ op: 'remove', path: '/f/-1' }, { op: 'replace', path: '/f/-2', value: 'z' }], expect: { f: ['z', 'b'] } },
    { name: 'copies a value', doc: { a: { x: 1 } }, ops: [{ op: 'copy', from: '/a', path: '/b' }], expect: { a: { x: 1 }, b: { x: 1 } } },
  ];
  for (const c of ok) {
    it(c.name, () => {
      const before = structuredClone(c.doc);
      assert.deepEqual(applyJsonPatch(c.doc, c.ops), c.expect);
      assert.deepEqual(c.doc, before);
    });
  }

  it('A.11 ignores unrecognized members of an operation', () => {
    const ops = decodeJsonPatch([{ op: 'add', path: '/baz', value: 'qux', xyz: 123 }]);
    assert.deepEqual(applyJsonPatch({ foo: 'bar' }, ops), { foo: 'bar', baz: 'qux' });
  });

  const failing: { name: string; doc: unknown; ops: Operation[] }[] = [
    { name: 'A.9 a failed test', doc: { baz: 'qux' }, ops: [{ op: 'test', path: '/baz', value: 'bar' }] },
    { name: 'A.12 adding to a nonexistent target', doc: { foo: 'bar' }, ops: [{ op: 'add', path: '/baz/bat', value: 'qux' }] },
    { name: 'A.15 a string is not a number', doc: { '/': 9, '~1': 10 }, ops: [{ op: 'test', path: '/~01', value: '10' }] },
    { name: 'removing a missing member', doc: { foo: 'bar' }, ops: [{ op: 'remove', path: '/nope' }] },
    { name: 'an index past the end', doc: { foo: [] }, ops: [{ op: 'replace', path: '/foo/0', value: 1 }] },
    { name: 'an unknown op', doc: {}, ops: [{ op: 'frobnicate', path: '/a' }] },
    { name: 'a move into its own child', doc: { a: { b: {} } }, ops: [{ op: 'move', from: '/a', path: '/a/b/c' }] },
  ];
  for (const c of failing) {
    it(`answers 422 for ${c.name}, as kube-apiserver`, () => {
      const err = thrown(() => applyJsonPatch(c.doc, c.ops));
      assert.equal(err.code, 422);
      assert.equal(err.reason, 'Invalid');
      assert.equal(err.message, 'the server rejected our request due to an error in our request');
    });
  }

  it('answers 422 for an operation without a path (it is not the root)', () => {
    const err = thrown(() => applyJsonPatch({ a: 1 }, decodeJsonPatch([{ op: 'add', value: { b: 2 } }])));
    assert.equal(err.code, 422);
  });

  it('answers 400 for a body that is not a list of operations', () => {
    const err = thrown(() => decodeJsonPatch({ op: 'add' }));
    assert.equal(err.code, 400);
    assert.equal(err.message, 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  });

  it('answers 413 past the operation limit', () => {
    const err = thrown(() => decodeJsonPatch(Array.from({ length: MAX_OPERATIONS + 1 }, () => ({ op: 'test', path: '', value: {} }))));
    assert.equal(err.code, 413);
    assert.equal(err.message, `The allowed maximum operations in a JSON patch is ${MAX_OPERATIONS}, got ${MAX_OPERATIONS + 1}`);
  });

  it('bounds what copies may add (doubling a value)', () => {
    const ops: Operation[] = [{ op: 'add', path: '/a', value: ['x'.repeat(1000)] }];
    for (let i = 0; i < 40; i++) ops.push({ op: 'copy', from: '/a', path: '/a/-' }, { op: 'copy', from: '/a', path: '/a/-' });
    assert.equal(thrown(() => applyJsonPatch({}, ops)).code, 422);
  });
});

describe('unknown fields', () => {
  const schema = strategyFor(PVCS).schema;
  it('names fields the kind lacks, where the schemas describe the object in full', () => {
    const obj = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      extra: 1,
      metadata: { name: 'c', bogus: true, labels: { any: 'label' } },
      spec: { foo: 1, accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, selector: { matchLabels: {} } },
      status: { whatever: 1 },
    };
    assert.deepEqual(unknownFields(schema, obj), ['extra', 'metadata.bogus', 'spec.foo']);
  });

  it('Strict refuses, Warn drops and warns, Ignore drops', () => {
    const obj = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, spec: { foo: 1 } };
    const err = thrown(() => checkFields(schema, obj, 'Strict'));
    assert.equal(err.code, 400);
    assert.equal(err.message, 'strict decoding error: unknown field "spec.foo"');
    assert.equal(obj.spec.foo, 1, 'Strict changes nothing');
    assert.deepEqual(checkFields(schema, structuredClone(obj), 'Warn'), ['unknown field "spec.foo"']);
    const ignored = structuredClone(obj);
    assert.deepEqual(checkFields(schema, ignored, 'Ignore'), []);
    assert.deepEqual(ignored.spec, {}, 'Ignore drops the field');
  });

  it('finds nothing unknown in an object the server wrote (round trip)', () => {
    const stored = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'c', namespace: 'default', uid: 'u', resourceVersion: '1', creationTimestamp: '2026-01-01T00:00:00Z', managedFields: [] },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, volumeMode: 'Filesystem' },
      status: { phase: 'Pending' },
    };
    assert.deepEqual(unknownFields(schema, stored), []);
  });

  const duplicates: { text: string; expect: string[] }[] = [
    { text: '{"a":1,"b":2}', expect: [] },
    { text: '{"metadata":{"name":"a","name":"b"},"data":{"k":"1"}}', expect: ['metadata.name'] },
    { text: '{"spec":{"containers":[{"name":"a"},{"name":"b","image":"x","image":"y"}]}}', expect: ['spec.containers[1].image'] },
    { text: '{"a":{"x":1},"a":{"x":1}}', expect: ['a'] },
    { text: '{"s":"a,\\"b\\":{","s":1, "q\\"x":1, "q\\"x":2}', expect: ['s', 'q"x'] },
    { text: '[{"a":1},{"a":1}]', expect: [] },
  ];
  for (const d of duplicates) {
    it(`finds duplicate members in ${d.text}`, () => {
      assert.deepEqual(duplicateFields(d.text), d.expect);
    });
  }

  it('reports duplicates before unknown fields, as kube-apiserver does', () => {
    const text = '{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"a","name":"c"},"spec":{"foo":1}}';
    const err = thrown(() => checkFields(schema, JSON.parse(text), 'Strict', PVCS, duplicateFields(text)));
    assert.equal(err.message, 'PersistentVolumeClaim in version "v1" cannot be handled as a PersistentVolumeClaim: strict decoding error: duplicate field "metadata.name", unknown field "spec.foo"');
  });
});
