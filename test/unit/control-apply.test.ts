// Server-side apply on in-memory objects: field sets and their FieldsV1 form, the apply merge
// (create, pruning what a manager stopped applying, shared ownership, conflicts, force, keyed
// lists, sets, atomic lists) and the managedFields an Update leaves, as kube-apiserver keeps them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceNamed } from '../../src/control/store/admission.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { FieldSet, pathString } from '../../src/control/server/apply/field-set.js';
import { decodeFieldsV1, encodeFieldsV1 } from '../../src/control/server/apply/fields-v1.js';
import { DEFAULT_LIST_TYPES } from '../../src/control/server/apply/list-types.js';
import { capUpdateManagers, decodeManagedFields, encodeManagedFields, type Managed } from '../../src/control/server/apply/managed-fields.js';
import { checkNoDuplicates, mergeOrder, toFieldSet } from '../../src/control/server/apply/typed-value.js';
import { ApplyConflictError, apply, recordUpdate, type Scope } from '../../src/control/server/apply/updater.js';

const scope = (plural: string, subresource?: string): Scope => ({ resource: resourceNamed(plural), listTypes: DEFAULT_LIST_TYPES, ...(subresource ? { subresource } : {}) });

describe('FieldsV1', () => {
  const cases: { name: string; paths: string[][]; wire: unknown }[] = [
    { name: 'a leaf', paths: [['f:data', 'f:a']], wire: { 'f:data': { 'f:a': {} } } },
    {
      name: 'a member with children writes "."',
      paths: [['f:metadata', 'f:labels'], ['f:metadata', 'f:labels', 'f:app']],
      wire: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } } },
    },
    {
      name: 'keyed items, fields first, keys sorted',
      paths: [
        ['f:spec', 'f:containers', 'k:{"name":"c"}'],
        ['f:spec', 'f:containers', 'k:{"name":"c"}', 'f:name'],
        ['f:spec', 'f:containers', 'k:{"name":"c"}', 'f:image'],
        ['f:spec', 'f:containers', 'k:{"name":"c"}', 'f:ports', 'k:{"containerPort":80,"protocol":"TCP"}'],
        ['f:spec', 'f:dnsPolicy'],
      ],
      wire: {
        'f:spec': {
          'f:containers': { 'k:{"name":"c"}': { '.': {}, 'f:image': {}, 'f:name': {}, 'f:ports': { 'k:{"containerPort":80,"protocol":"TCP"}': {} } } },
          'f:dnsPolicy': {},
        },
      },
    },
    { name: 'set values and indexes', paths: [['f:metadata', 'f:finalizers', 'v:"a/b"'], ['f:x', 'i:2'], ['f:x', 'i:10']], wire: { 'f:metadata': { 'f:finalizers': { 'v:"a/b"': {} } }, 'f:x': { 'i:2': {}, 'i:10': {} } } },
    { name: 'the empty set', paths: [], wire: {} },
  ];
  for (const c of cases) {
    it(`round-trips ${c.name}`, () => {
      const set = FieldSet.of(...c.paths);
      const wire = encodeFieldsV1(set);
      assert.equal(JSON.stringify(wire), JSON.stringify(c.wire), 'bytes and key order as kube-apiserver writes them');
      assert.ok(decodeFieldsV1(wire).equals(set));
    });
  }

  for (const [name, value] of [
    ['a list', []],
    ['a string leaf', { 'f:a': 'x' }],
    ['an unknown element', { 'x:a': {} }],
    ['a key that is not JSON', { 'k:{name': {} }],
    ['"." at the root', { '.': {} }],
  ] as const) {
    it(`refuses ${name}`, () => assert.throws(() => decodeFieldsV1(value)));
  }
});

describe('field set operations', () => {
  const a = FieldSet.of(['f:data', 'f:x'], ['f:data', 'f:y'], ['f:metadata', 'f:labels'], ['f:metadata', 'f:labels', 'f:app'], ['f:status', 'f:phase']);
  const b = FieldSet.of(['f:data', 'f:y'], ['f:data', 'f:z'], ['f:metadata', 'f:labels', 'f:app']);
  const cases: { name: string; result: FieldSet; members: string[] }[] = [
    { name: 'union', result: a.union(b), members: ['.data.x', '.data.y', '.data.z', '.metadata.labels', '.metadata.labels.app', '.status.phase'] },
    { name: 'difference (a member removes only itself)', result: a.difference(FieldSet.of(['f:metadata', 'f:labels'], ['f:data', 'f:x'])), members: ['.data.y', '.metadata.labels.app', '.status.phase'] },
    { name: 'intersection', result: a.intersection(b), members: ['.data.y', '.metadata.labels.app'] },
    { name: 'without a prefix', result: a.without(['f:metadata']), members: ['.data.x', '.data.y', '.status.phase'] },
    { name: 'only a prefix', result: a.only(['f:status']), members: ['.status.phase'] },
    { name: 'difference to nothing', result: b.difference(b), members: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(c.result.members().map(pathString), c.members);
      assert.equal(c.result.isEmpty(), c.members.length === 0);
      assert.deepEqual(encodeFieldsV1(c.result), encodeFieldsV1(decodeFieldsV1(encodeFieldsV1(c.result))), 'no empty nodes left behind');
    });
  }
  it('leaves its operands as they were', () => {
    const before = JSON.stringify(encodeFieldsV1(a));
    a.union(b);
    a.difference(b);
    a.without(['f:data']);
    a.only(['f:data']);
    assert.equal(JSON.stringify(encodeFieldsV1(a)), before);
  });
});

describe('merged list order', () => {
  const cases: { live: string[]; config: string[]; merged: string[] }[] = [
    { live: ['a', 'b'], config: ['c'], merged: ['a', 'b', 'c'] },
    { live: ['a', 'b', 'c'], config: ['c', 'a'], merged: ['c', 'a', 'b'] },
    { live: ['x', 'a', 'y', 'b'], config: ['b', 'a'], merged: ['x', 'b', 'a', 'y'] },
    { live: [], config: ['b', 'a'], merged: ['b', 'a'] },
    { live: ['a', 'b'], config: [], merged: ['a', 'b'] },
  ];
  for (const c of cases) {
    it(`live [${c.live}] + applied [${c.config}] → [${c.merged}]`, () => {
      assert.deepEqual(mergeOrder(c.live, c.config), c.merged);
    });
  }
});

describe('field sets of objects and their paths', () => {
  const pod = {
    metadata: { name: 'p', labels: { app: 'x' }, finalizers: ['a/b'] },
    spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80, protocol: 'TCP' }], args: ['-v'] }], tolerations: [{ key: 'k' }] },
  };
  it('owns leaves, keyed items, set values and atomic lists whole, never the maps between', () => {
    const members = toFieldSet(scope('pods'), pod).members().map(pathString);
    assert.deepEqual(members, [
      '.metadata.finalizers[="a/b"]',
      '.metadata.labels.app',
      '.metadata.name',
      '.spec.containers[name="c"]',
      '.spec.containers[name="c"].args',
      '.spec.containers[name="c"].image',
      '.spec.containers[name="c"].name',
      '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]',
      '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].containerPort',
      '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].protocol',
      '.spec.tolerations',
    ]);
  });
});

describe('apply configurations that repeat an item', () => {
  const cases: { name: string; spec: unknown; meta?: unknown; error?: string }[] = [
    { name: 'a container name', spec: { containers: [{ name: 'c' }, { name: 'c' }] }, error: '.spec.containers: duplicate entries for key [name="c"]' },
    { name: 'an env name inside a container', spec: { containers: [{ name: 'c', env: [{ name: 'E' }, { name: 'E', value: 'x' }] }] }, error: '.spec.containers[name="c"].env: duplicate entries for key [name="E"]' },
    { name: 'a finalizer', spec: {}, meta: { finalizers: ['a/b', 'a/b'] }, error: '.metadata.finalizers: duplicate entries for value [="a/b"]' },
    { name: 'nothing (an atomic list may repeat)', spec: { tolerations: [{ key: 'k' }, { key: 'k' }] } },
  ];
  for (const c of cases) {
    it(`${c.error === undefined ? 'accepts' : 'refuses'} ${c.name}`, () => {
      const check = (): void => checkNoDuplicates(scope('pods'), { metadata: c.meta ?? {}, spec: c.spec });
      if (c.error === undefined) check();
      else assert.throws(check, { message: c.error });
    });
  }
});

// ------------------------------------------------------------------ apply and update stories

type Step =
  | { apply: string; config: Record<string, unknown>; force?: boolean; conflict?: { message: string; fields: string[] } }
  | { update: string; change: (obj: Record<string, unknown>) => void };

interface Story {
  name: string;
  plural: string;
  steps: Step[];
  /** Parts of the final object. */
  expect: Record<string, unknown>;
  /** The final managers and their fields, as "manager/Operation" → member paths. */
  owners: Record<string, string[]>;
}

const cm = (data: Record<string, string>, labels?: Record<string, string>): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'c', namespace: 'default', ...(labels ? { labels } : {}) },
  data,
});
const pod = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'default', ...metadata },
  spec,
});

const stories: Story[] = [
  {
    name: 'apply creates; the manager owns exactly what it applied',
    plural: 'configmaps',
    steps: [{ apply: 'a', config: cm({ x: '1', y: '2' }, { app: 'web' }) }],
    expect: { data: { x: '1', y: '2' }, metadata: { labels: { app: 'web' } } },
    owners: { 'a/Apply': ['.data.x', '.data.y', '.metadata.labels.app'] },
  },
  {
    name: 're-applying without a field removes it (and a map it emptied)',
    plural: 'configmaps',
    steps: [
      { apply: 'a', config: cm({ x: '1', y: '2' }, { app: 'web' }) },
      { apply: 'a', config: cm({ x: '1' }) },
    ],
    expect: { data: { x: '1' }, metadata: { labels: undefined } },
    owners: { 'a/Apply': ['.data.x'] },
  },
  {
    name: 'two appliers with the same value share a field; it stays while one still applies it',
    plural: 'configmaps',
    steps: [
      { apply: 'a', config: cm({ x: '1', y: '2' }) },
      { apply: 'b', config: cm({ x: '1' }) },
      { apply: 'a', config: cm({ y: '2' }) },
    ],
    expect: { data: { x: '1', y: '2' } },
    owners: { 'a/Apply': ['.data.y'], 'b/Apply': ['.data.x'] },
  },
  {
    name: 'another applier changing a field conflicts, and nothing changes',
    plural: 'configmaps',
    steps: [
      { apply: 'a', config: cm({ x: '1', y: '2' }) },
      { apply: 'b', config: cm({ x: '9', y: '8' }), conflict: { message: 'Apply failed with 2 conflicts: conflicts with "a":\n- .data.x\n- .data.y', fields: ['.data.x', '.data.y'] } },
    ],
    expect: { data: { x: '1', y: '2' } },
    owners: { 'a/Apply': ['.data.x', '.data.y'] },
  },
  {
    name: 'force takes the field from its owner',
    plural: 'configmaps',
    steps: [
      { apply: 'a', config: cm({ x: '1', y: '2' }) },
      { apply: 'b', config: cm({ x: '9' }), force: true },
    ],
    expect: { data: { x: '9', y: '2' } },
    owners: { 'a/Apply': ['.data.y'], 'b/Apply': ['.data.x'] },
  },
  {
    name: 'an update takes what it changes, and re-applying the old value then conflicts with it',
    plural: 'configmaps',
    steps: [
      { apply: 'a', config: cm({ x: '1' }, { app: 'web' }) },
      { update: 'kubectl-label', change: (o) => ((o.metadata as { labels: Record<string, string> }).labels.app = 'db') },
      { apply: 'a', config: cm({ x: '1' }, { app: 'web' }), conflict: { message: 'Apply failed with 1 conflict: conflict with "kubectl-label" using v1: .metadata.labels.app', fields: ['.metadata.labels.app'] } },
    ],
    expect: { metadata: { labels: { app: 'db' } } },
    owners: { 'a/Apply': ['.data.x'], 'kubectl-label/Update': ['.metadata.labels.app'] },
  },
  {
    name: 'containers merge by name; each manager prunes only its own',
    plural: 'pods',
    steps: [
      { apply: 'a', config: pod({ containers: [{ name: 'one', image: 'i1' }] }) },
      { apply: 'b', config: pod({ containers: [{ name: 'two', image: 'i2', env: [{ name: 'E', value: 'v' }] }] }) },
      { apply: 'a', config: pod({ containers: [{ name: 'one', image: 'i1', env: [{ name: 'F', value: 'w' }] }] }) },
      { apply: 'b', config: pod({ containers: [] }) },
    ],
    expect: { spec: { containers: [{ name: 'one', image: 'i1', env: [{ name: 'F', value: 'w' }] }] } },
    owners: {
      'a/Apply': [
        '.spec.containers[name="one"]',
        '.spec.containers[name="one"].env[name="F"]',
        '.spec.containers[name="one"].env[name="F"].name',
        '.spec.containers[name="one"].env[name="F"].value',
        '.spec.containers[name="one"].image',
        '.spec.containers[name="one"].name',
      ],
    },
  },
  {
    name: 'an item another manager still owns a field of stays, with its key',
    plural: 'pods',
    steps: [
      { apply: 'a', config: pod({ containers: [{ name: 'one', image: 'i1', args: ['x'] }] }) },
      { apply: 'b', config: pod({ containers: [{ name: 'one', image: 'i1' }] }) },
      { apply: 'a', config: pod({ containers: [] }) },
    ],
    expect: { spec: { containers: [{ name: 'one', image: 'i1' }] } },
    owners: { 'b/Apply': ['.spec.containers[name="one"]', '.spec.containers[name="one"].image', '.spec.containers[name="one"].name'] },
  },
  {
    name: 'finalizers are a set: values merge and prune one by one',
    plural: 'pods',
    steps: [
      { apply: 'a', config: pod({}, { finalizers: ['x.io/a', 'x.io/b'] }) },
      { apply: 'b', config: pod({}, { finalizers: ['x.io/c'] }) },
      { apply: 'a', config: pod({}, { finalizers: ['x.io/b'] }) },
    ],
    expect: { metadata: { finalizers: ['x.io/b', 'x.io/c'] } },
    owners: { 'a/Apply': ['.metadata.finalizers[="x.io/b"]'], 'b/Apply': ['.metadata.finalizers[="x.io/c"]'] },
  },
  {
    name: 'an atomic list is owned whole: another value conflicts, force replaces it',
    plural: 'pods',
    steps: [
      { apply: 'a', config: pod({ tolerations: [{ key: 'k1' }] }) },
      { apply: 'b', config: pod({ tolerations: [{ key: 'k2' }] }), conflict: { message: 'Apply failed with 1 conflict: conflict with "a": .spec.tolerations', fields: ['.spec.tolerations'] } },
      { apply: 'b', config: pod({ tolerations: [{ key: 'k2' }] }), force: true },
    ],
    expect: { spec: { tolerations: [{ key: 'k2' }] } },
    owners: { 'b/Apply': ['.spec.tolerations'] },
  },
  {
    name: 'a label selector is atomic: owned whole, another value conflicts',
    plural: 'persistentvolumeclaims',
    steps: [
      { apply: 'a', config: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, spec: { selector: { matchLabels: { tier: 'db' } } } } },
      {
        apply: 'b',
        config: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, spec: { selector: { matchLabels: { zone: 'a' } } } },
        conflict: { message: 'Apply failed with 1 conflict: conflict with "a": .spec.selector', fields: ['.spec.selector'] },
      },
    ],
    expect: { spec: { selector: { matchLabels: { tier: 'db' } } } },
    owners: { 'a/Apply': ['.spec.selector'] },
  },
  {
    name: 'a port without its protocol is keyed by the default protocol, TCP',
    plural: 'pods',
    steps: [
      { apply: 'a', config: pod({ containers: [{ name: 'c', ports: [{ containerPort: 80, protocol: 'TCP', name: 'http' }] }] }) },
      { apply: 'b', config: pod({ containers: [{ name: 'c', ports: [{ containerPort: 80, name: 'http' }] }] }) },
    ],
    expect: { spec: { containers: [{ name: 'c', ports: [{ containerPort: 80, protocol: 'TCP', name: 'http' }] }] } },
    owners: {
      'a/Apply': [
        '.spec.containers[name="c"]',
        '.spec.containers[name="c"].name',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].containerPort',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].name',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].protocol',
      ],
      'b/Apply': [
        '.spec.containers[name="c"]',
        '.spec.containers[name="c"].name',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].containerPort',
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].name',
      ],
    },
  },
  {
    name: 'status is not owned through the main resource of a kind with a status subresource',
    plural: 'persistentvolumeclaims',
    steps: [
      {
        apply: 'a',
        config: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'] }, status: { phase: 'Bound' } },
      },
    ],
    expect: {},
    owners: { 'a/Apply': ['.spec.accessModes'] },
  },
];

function owners(managed: Managed): Record<string, string[]> {
  return Object.fromEntries([...managed.values()].map((m) => [`${m.manager}/${m.operation}`, m.set.members().map(pathString)]));
}

function pick(actual: unknown, expected: unknown): unknown {
  if (expected === null || typeof expected !== 'object' || Array.isArray(expected)) return actual;
  const a = (actual ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.keys(expected).map((k) => [k, pick(a[k], (expected as Record<string, unknown>)[k])]));
}

describe('apply and update', () => {
  for (const story of stories) {
    it(story.name, () => {
      const s = scope(story.plural);
      let live: KubeObject | undefined;
      let managed: Managed = new Map();
      for (const step of story.steps) {
        if ('apply' in step) {
          const attempt = (): KubeObject => apply(s, { manager: step.apply, apiVersion: 'v1' }, live, structuredClone(step.config) as unknown as KubeObject, managed, step.force ?? false);
          if (step.conflict !== undefined) {
            const before = decodeManagedFields(encodeManagedFields(managed));
            assert.throws(attempt, (err: unknown) => {
              assert.ok(err instanceof ApplyConflictError);
              assert.equal(err.message, step.conflict?.message);
              assert.equal(err.code, 409);
              assert.deepEqual(err.details?.causes?.map((c) => c.field), step.conflict?.fields);
              assert.ok(err.details?.causes?.every((c) => c.reason === 'FieldManagerConflict'));
              return true;
            });
            managed = before;
            continue;
          }
          live = attempt();
        } else {
          const next = structuredClone(live) as unknown as Record<string, unknown>;
          step.change(next);
          recordUpdate(s, { manager: step.update, apiVersion: 'v1' }, live, next as unknown as KubeObject, managed);
          live = next as unknown as KubeObject;
        }
        // What the store keeps is the wire form: every step starts from it.
        managed = decodeManagedFields(JSON.parse(JSON.stringify(encodeManagedFields(managed))));
      }
      assert.deepEqual(pick(live, story.expect), story.expect);
      assert.deepEqual(owners(managed), story.owners);
    });
  }

  it('records an Update: new maps as members ("."), the same manager merged into one entry, time only when something changed', () => {
    const s = scope('configmaps');
    const managed: Managed = new Map();
    const created = cm({ x: '1' }, { app: 'web' }) as unknown as KubeObject;
    recordUpdate(s, { manager: 'kubectl-create', apiVersion: 'v1' }, undefined, created, managed);
    const [entry] = encodeManagedFields(managed);
    assert.deepEqual(entry?.fieldsV1, { 'f:data': { '.': {}, 'f:x': {} }, 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } } });
    assert.match(entry?.time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const edited = cm({ x: '1', y: '2' }, { app: 'web' }) as unknown as KubeObject;
    recordUpdate(s, { manager: 'kubectl-create', apiVersion: 'v1' }, created, edited, managed);
    assert.equal(managed.size, 1);
    assert.deepEqual(owners(managed)['kubectl-create/Update'], ['.data', '.data.x', '.data.y', '.metadata.labels', '.metadata.labels.app']);

    const stamped = [...managed.values()].map((m) => ({ ...m, time: '2000-01-01T00:00:00Z' }));
    const old: Managed = new Map(stamped.map((m, i) => [[...managed.keys()][i] as string, m]));
    recordUpdate(s, { manager: 'kubectl-create', apiVersion: 'v1' }, edited, structuredClone(edited), old);
    assert.equal([...old.values()][0]?.time, '2000-01-01T00:00:00Z', 'a no-op update leaves the entry as it was');
  });

  it('lists entries as kube-apiserver does: Apply before Update, then by time (seconds), manager, apiVersion, subresource', () => {
    const entry = (manager: string, operation: 'Apply' | 'Update', time: string, subresource?: string) => ({
      manager,
      operation,
      apiVersion: 'v1',
      time,
      fieldsType: 'FieldsV1' as const,
      fieldsV1: { 'f:data': { [`f:${manager}${subresource ?? ''}`]: {} } },
      ...(subresource ? { subresource } : {}),
    });
    const wire = [
      entry('z', 'Update', '2024-01-01T00:00:01Z'),
      entry('b', 'Update', '2024-01-01T00:00:00Z', 'status'),
      entry('b', 'Update', '2024-01-01T00:00:00Z'),
      entry('y', 'Apply', '2024-01-01T00:00:09Z'),
      entry('a', 'Update', '2024-01-01T00:00:00Z'),
      entry('x', 'Apply', '2024-01-01T00:00:05Z'),
    ];
    const order = encodeManagedFields(decodeManagedFields(wire)).map((e) => `${e.manager}/${e.operation}${e.subresource ? `/${e.subresource}` : ''}`);
    assert.deepEqual(order, ['x/Apply', 'y/Apply', 'a/Update', 'b/Update', 'b/Update/status', 'z/Update']);
  });

  it('an apply to an object nobody owns yet conflicts with "before-first-apply"', () => {
    const s = scope('configmaps');
    const live = cm({ x: '1' }) as unknown as KubeObject;
    assert.throws(() => apply(s, { manager: 'a', apiVersion: 'v1' }, live, cm({ x: '2' }) as unknown as KubeObject, new Map(), false), {
      message: 'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.x',
    });
  });

  it('keeps at most ten Update entries, the oldest merged into "ancient-changes"', () => {
    const s = scope('configmaps');
    const managed: Managed = new Map();
    let obj = cm({}) as unknown as KubeObject;
    for (let i = 0; i < 12; i++) {
      const next = structuredClone(obj) as KubeObject & { data: Record<string, string> };
      next.data[`k${i}`] = 'v';
      recordUpdate(s, { manager: `m${String(i).padStart(2, '0')}`, apiVersion: 'v1' }, obj, next, managed);
      for (const m of managed.values()) if (m.manager === `m${String(i).padStart(2, '0')}`) m.time = new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString().replace(/\.\d+Z$/, 'Z');
      capUpdateManagers(managed);
      obj = next;
    }
    const names = encodeManagedFields(managed).map((e) => e.manager);
    assert.deepEqual(names, ['ancient-changes', 'm03', 'm04', 'm05', 'm06', 'm07', 'm08', 'm09', 'm10', 'm11']);
    const ancient = [...managed.values()].find((m) => m.manager === 'ancient-changes');
    assert.deepEqual(ancient?.set.members().map(pathString), ['.data.k0', '.data.k1', '.data.k2']);
  });
});
