// Property-based fuzzing of every write path of the API (issue 11): POST, PUT, PATCH (merge,
// strategic merge, JSON patch, and the types the server does not take), DELETE, /status and pods/binding for
// every served kind, and list/watch query parameters, with generated hostile values: names,
// namespaces, labels, sizes, quantities, documents nested past the limit, huge bodies, raw bytes,
// wrong JSON types in every field. The control plane (store, API server and the storage
// controllers, which react to whatever the fuzz gets accepted) runs in this process on a
// throwaway state dir, as `stowage up` runs it; a controller that crashed on an accepted object
// would take the process, and the test, down.
//
// Invariants: no request crashes the server or gets a 5xx; every answer is a valid metav1.Status
// (code = HTTP status) or an object / list; the global resourceVersion never goes backwards and
// every acknowledged write carries a newer one; afterwards the store is consistent (every listed
// object is gettable and identical, over HTTP too; a reopened store holds exactly the same), and
// nothing was created on disk outside the state dir.
//
// Budget: FUZZ_RUNS requests per property (default small, for CI), FUZZ_SEED (default fixed).
// `npm run fuzz` raises the runs and picks a random seed, printed so a failure can be replayed.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { groupVersions, type ResourceInfo } from '../../src/control/api/registry.js';
import type { KubeObject, Status } from '../../src/control/api/types/meta.js';
import { pino } from 'pino';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 600);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261206);
/** A marker in generated names: nothing named after it may appear on disk. */
const MARK = 'fuzzmark';

const RESOURCES: ResourceInfo[] = groupVersions().flatMap((gv) => gv.resources);

// ------------------------------------------------------------------ generators

const hostileString = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.constantFrom('', ' ', '.', '..', '../..', 'a/b', '/', '\\', 'A', 'a..b', '-a', 'a-', ' a', 'a ', 'x\u0000y', '%2F', '\u00fc', '\ud83d\ude00', 'null', 'true', '0', '-1'),
  fc.constantFrom('a'.repeat(63), 'a'.repeat(64), 'a'.repeat(253), 'a'.repeat(254), `${MARK}-${'b'.repeat(300)}`),
  fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,70}$/),
);

const quantityText = fc.oneof(
  fc.constantFrom('1Gi', ' 1Gi', '1Gi ', '1 Gi', '+', '-', '.', '-1Gi', '0', '1e3', '1e1000', '1e-1000', '1E', '1Ki5', '99999999999999999999Ei', '1.5.5', 'Gi', '1e2147483648', '1KiB', '0.0000000001'),
  fc.stringMatching(/^[+-]?[0-9.]{0,25}[eEinumkKMGTP]{0,3}[+-]?[0-9]{0,6}$/),
);

/** A JSON value of the wrong (or right) type for any field. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: hostileString },
  { weight: 2, arbitrary: quantityText },
  { weight: 1, arbitrary: fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 0.5, -1, Number.MAX_SAFE_INTEGER) },
  { weight: 1, arbitrary: fc.dictionary(hostileString, hostileString, { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.array(hostileString, { maxLength: 4 }) },
);

/** Field paths every kind has, or that the served kinds validate; unknown ones are kept by the server. */
const FIELD_PATHS = [
  ['apiVersion'],
  ['kind'],
  ['metadata'],
  ['metadata', 'name'],
  ['metadata', 'namespace'],
  ['metadata', 'generateName'],
  ['metadata', 'labels'],
  ['metadata', 'annotations'],
  ['metadata', 'finalizers'],
  ['metadata', 'ownerReferences'],
  ['metadata', 'resourceVersion'],
  ['metadata', 'uid'],
  ['metadata', 'deletionTimestamp'],
  ['spec'],
  ['spec', 'accessModes'],
  ['spec', 'resources', 'requests', 'storage'],
  ['spec', 'resources', 'limits', 'storage'],
  ['spec', 'capacity', 'storage'],
  ['spec', 'storageClassName'],
  ['spec', 'volumeName'],
  ['spec', 'volumeMode'],
  ['spec', 'selector'],
  ['spec', 'nodeName'],
  ['spec', 'containers'],
  ['spec', 'volumes'],
  ['spec', 'csi'],
  ['spec', 'claimRef'],
  ['spec', 'nodeAffinity'],
  ['spec', 'persistentVolumeReclaimPolicy'],
  ['spec', 'limits'],
  ['spec', 'hard'],
  ['spec', 'hard', 'requests.storage'],
  ['spec', 'scopes'],
  ['spec', 'priorityClassName'],
  ['spec', 'priority'],
  ['spec', 'source'],
  ['spec', 'attacher'],
  ['spec', 'drivers'],
  ['status'],
  ['status', 'phase'],
  ['status', 'capacity', 'storage'],
  ['provisioner'],
  ['parameters'],
  ['reclaimPolicy'],
  ['volumeBindingMode'],
  ['allowVolumeExpansion'],
  ['data'],
  ['stringData'],
  ['type'],
  ['value'],
  ['driver'],
  ['deletionPolicy'],
  ['target'],
  ['extra', 'nested'],
] as const;

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur: Record<string, unknown> = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path.at(-1) ?? ''] = value;
}

/** A valid object of the kind (so that a mutation reaches the field it breaks), by name. */
function template(resource: ResourceInfo, name: string, namespace: string): Record<string, unknown> {
  const metadata = { name, ...(resource.namespaced ? { namespace } : {}) };
  const base = { apiVersion: resource.apiVersion, kind: resource.kind, metadata };
  switch (resource.plural) {
    case 'persistentvolumeclaims':
      return { ...base, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
    case 'persistentvolumes':
      return { ...base, spec: { accessModes: ['ReadWriteOnce'], capacity: { storage: '1Gi' }, csi: { driver: 'local.csi.stowage.dev', volumeHandle: name } } };
    case 'storageclasses':
      return { ...base, provisioner: 'local.csi.stowage.dev' };
    case 'pods':
      return { ...base, spec: { containers: [{ name: 'c', image: 'busybox', command: ['true'] }] } };
    case 'configmaps':
      return { ...base, data: { key: 'value' } };
    case 'secrets':
      return { ...base, stringData: { key: 'value' } };
    case 'priorityclasses':
      return { ...base, value: 1000 };
    case 'csistoragecapacities':
      return { ...base, storageClassName: 'seed', capacity: '1Gi' };
    case 'volumeattachments':
      return { ...base, spec: { attacher: 'local.csi.stowage.dev', nodeName: 'node-a', source: { persistentVolumeName: 'pv' } } };
    case 'events':
      return { ...base, involvedObject: { kind: 'Pod', name: 'p', namespace }, reason: 'Fuzz', message: 'm', type: 'Normal' };
    case 'resourcequotas':
      return { ...base, spec: { hard: { pods: '1000', 'requests.storage': '1Ti' } } };
    case 'limitranges':
      return { ...base, spec: { limits: [{ type: 'PersistentVolumeClaim', max: { storage: '10Gi' }, min: { storage: '1Mi' } }] } };
    case 'volumesnapshots':
      return { ...base, spec: { source: { persistentVolumeClaimName: 'seed' }, volumeSnapshotClassName: 'seed' } };
    case 'volumesnapshotclasses':
      return { ...base, driver: 'local.csi.stowage.dev', deletionPolicy: 'Delete' };
    case 'volumesnapshotcontents':
      return {
        ...base,
        spec: { driver: 'local.csi.stowage.dev', deletionPolicy: 'Delete', source: { snapshotHandle: 'h' }, volumeSnapshotRef: { name: 'seed', namespace: 'default' } },
      };
    case 'leases':
      return { ...base, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 } };
    case 'roles':
    case 'clusterroles':
      return { ...base, rules: [{ verbs: ['get'], apiGroups: [''], resources: ['persistentvolumeclaims'] }] };
    case 'rolebindings':
    case 'clusterrolebindings':
      return {
        ...base,
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'seed' },
        subjects: [{ kind: 'ServiceAccount', name: 'seed', namespace: namespace || 'default' }],
      };
    case 'statefulsets':
    case 'deployments':
    case 'replicasets':
    case 'daemonsets':
      return {
        ...base,
        spec: {
          ...(resource.plural === 'daemonsets' ? {} : { replicas: 1 }),
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'busybox', command: ['true'] }] } },
        },
      };
    case 'jobs':
      return { ...base, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox', command: ['true'] }] } } } };
    default:
      return base;
  }
}

type Verb = 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'LIST' | 'WATCH' | 'GET';

/**
 * What body to send, kept small (fast-check prints counterexamples): the text is built from it
 * when the request is sent.
 */
type BodySpec =
  | { t: 'object'; mutations: [readonly string[], unknown][] }
  | { t: 'nested'; path: readonly string[]; depth: number }
  | { t: 'arrays'; depth: number }
  | { t: 'json'; value: unknown }
  | { t: 'bytes'; bytes: number[] }
  | { t: 'text'; text: string }
  | { t: 'huge'; size: number }
  | { t: 'jsonPatch'; ops: { op: string; path: string; from: string; value: unknown }[] }
  | { t: 'directives'; value: unknown }
  | { t: 'none' };

interface FuzzRequest {
  verb: Verb;
  plural: string;
  namespace: string;
  name: string;
  subresource: '' | 'status' | 'binding';
  contentType: string;
  body: BodySpec;
  query: [string, string][];
}

function resourceOf(plural: string): ResourceInfo {
  const found = RESOURCES.find((r) => r.plural === plural);
  if (found === undefined) throw new Error(`no resource ${plural}`);
  return found;
}

/** `{"a":…}` nested `depth` deep, as text (a value would itself recurse). */
function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

function bodyOf(r: FuzzRequest): string | Uint8Array | undefined {
  const resource = resourceOf(r.plural);
  const b = r.body;
  switch (b.t) {
    case 'object': {
      const obj = template(resource, r.name, r.namespace);
      for (const [path, value] of b.mutations) setPath(obj, path, value);
      return JSON.stringify(obj);
    }
    case 'nested': {
      const obj = template(resource, r.name, r.namespace);
      setPath(obj, b.path, '__NESTED__');
      return JSON.stringify(obj).replace('"__NESTED__"', nested(b.depth));
    }
    case 'arrays':
      return `${'['.repeat(b.depth)}${']'.repeat(b.depth)}`;
    case 'json':
      return JSON.stringify(b.value) ?? 'null';
    case 'bytes':
      return new Uint8Array(b.bytes);
    case 'text':
      return b.text;
    case 'huge':
      return JSON.stringify({ ...template(resource, r.name, r.namespace), extra: 'x'.repeat(b.size) });
    case 'jsonPatch':
      return JSON.stringify(b.ops);
    case 'directives':
      return JSON.stringify(b.value);
    case 'none':
      return undefined;
  }
}

const bodySpec: fc.Arbitrary<BodySpec> = fc.oneof(
  // A valid object with a few fields set to hostile values (wrong types, bad quantities, bad names…).
  { weight: 8, arbitrary: fc.array(fc.tuple(fc.constantFrom<readonly string[]>(...FIELD_PATHS), hostileValue), { maxLength: 4 }).map((mutations): BodySpec => ({ t: 'object', mutations })) },
  // Nested around the limit (500) and far past it, somewhere in the object.
  { weight: 1, arbitrary: fc.record({ t: fc.constant('nested' as const), path: fc.constantFrom<readonly string[]>(...FIELD_PATHS), depth: fc.constantFrom(3, 490, 499, 501, 2000, 10_000) }) },
  // Arrays nested past the limit, as a whole patch or body.
  { weight: 1, arbitrary: fc.record({ t: fc.constant('arrays' as const), depth: fc.constantFrom(10, 600, 10_000, 100_000) }) },
  // Any JSON value at all (a patch that is a list, a number, null…).
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value): BodySpec => ({ t: 'json', value })) },
  // Raw bytes: not UTF-8, not JSON, protobuf-looking.
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 48 }).map((bytes): BodySpec => ({ t: 'bytes', bytes })) },
  // Text that is almost JSON (or YAML).
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('', ' ', '{', '{"a":1', '{"a":1}}', '{"a":NaN}', '\ufeff{}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', 'apiVersion: v1\nkind: [', '- a\n- b', 'a: &x [*x]', 'a: !!binary x')
      .map((text): BodySpec => ({ t: 'text', text })),
  },
  // Over the 3 MiB limit, or just under it.
  { weight: 1, arbitrary: fc.constantFrom(3 * 1024 * 1024 + 10, 3 * 1024 * 1024 - 400).map((size): BodySpec => ({ t: 'huge', size })) },
  // JSON patch operations on the kinds' fields (pointers escaped or not, "-", past the end).
  {
    weight: 2,
    arbitrary: fc
      .array(
        fc.record({
          op: fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test', 'frobnicate'),
          path: fc.oneof(fc.constantFrom<readonly string[]>(...FIELD_PATHS).map((p) => `/${p.join('/')}`), fc.constantFrom('', '/', '/metadata/finalizers/-', '/metadata/labels/a~1b', '/spec/x/7', '/metadata/~2'), hostileString),
          from: fc.constantFrom<readonly string[]>(...FIELD_PATHS).map((p) => `/${p.join('/')}`),
          value: hostileValue,
        }),
        { maxLength: 6 },
      )
      .map((ops): BodySpec => ({ t: 'jsonPatch', ops })),
  },
  // Strategic-merge directives and list fields at any depth, with hostile values.
  {
    weight: 2,
    arbitrary: fc
      .object({
        key: fc.constantFrom('$patch', '$retainKeys', '$setElementOrder/containers', '$setElementOrder/finalizers', '$deleteFromPrimitiveList/finalizers', 'metadata', 'spec', 'status', 'containers', 'finalizers', 'conditions', 'name', 'type', 'volumes', 'labels'),
        values: [hostileValue, fc.constantFrom('replace', 'delete', 'merge', null), fc.constant([{ $patch: 'replace' }]), fc.constant([{ name: 'a', $patch: 'delete' }])],
        maxDepth: 4,
      })
      .map((value): BodySpec => ({ t: 'directives', value })),
  },
  { weight: 1, arbitrary: fc.constant<BodySpec>({ t: 'none' }) },
);

const queryParams = fc.array(
  fc.tuple(
    fc.constantFrom('labelSelector', 'fieldSelector', 'limit', 'continue', 'resourceVersion', 'timeoutSeconds', 'gracePeriodSeconds', 'propagationPolicy', 'watch', 'dryRun', 'fieldValidation', 'fieldManager', 'pretty'),
    fc.oneof(
      hostileString,
      // Continue tokens of the right shape with hostile contents (version, resourceVersion, start key).
      fc
        .record({ v: fc.constantFrom('meta.k8s.io/v1', 'meta.k8s.io/v2', ''), rv: fc.oneof(fc.integer({ min: -2, max: 60 }), fc.constantFrom(2 ** 53, 1.5)), start: hostileString })
        .map((token) => Buffer.from(JSON.stringify(token)).toString('base64url')),
      fc.constantFrom('metadata.name===x', 'metadata.name=seed', 'status.phase!=Bound', 'a in (b', 'app=db,!x', 'x notin (a,b)', '-1', '0', '1', '2', '99999999999999999999', 'Foreground', 'Orphan', 'eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJhIn0', 'garbage', 'All', 'false', '1e3', 'Strict', 'Warn', 'Ignore'),
    ),
  ),
  { maxLength: 3 },
);

const CONTENT_TYPES = [
  'application/json',
  'application/yaml',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
  'application/json-patch+json',
  'application/apply-patch+yaml',
  'application/vnd.kubernetes.protobuf',
  'text/plain',
  'application/json; charset=utf-16',
  '',
];

const request: fc.Arbitrary<FuzzRequest> = fc
  .record({
    verb: fc.constantFrom<Verb>('POST', 'POST', 'PUT', 'PATCH', 'PATCH', 'DELETE', 'LIST', 'WATCH', 'GET'),
    plural: fc.constantFrom(...RESOURCES.map((r) => r.plural)),
    namespace: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('default', 'fuzz') }, { weight: 1, arbitrary: hostileString }),
    name: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('seed', 'seed', 'other', `${MARK}-a`) }, { weight: 2, arbitrary: hostileString }),
    subresource: fc.constantFrom<FuzzRequest['subresource']>('', '', '', '', 'status', 'binding'),
    typeChoice: fc.nat(99),
    type: fc.constantFrom(...CONTENT_TYPES),
    body: bodySpec,
    query: fc.oneof(fc.constant<[string, string][]>([]), queryParams),
  })
  .map((r): FuzzRequest => {
    const writes = r.verb === 'POST' || r.verb === 'PUT' || r.verb === 'PATCH' || r.verb === 'DELETE';
    // Mostly a type the verb takes, so that requests reach decoding and validation; any type now and then.
    let contentType = r.type;
    if (r.verb === 'PATCH' && r.typeChoice < 80) {
      contentType = r.typeChoice < 35 ? 'application/merge-patch+json' : r.typeChoice < 60 ? 'application/strategic-merge-patch+json' : 'application/json-patch+json';
    }
    else if (r.verb !== 'PATCH' && r.typeChoice < 90) contentType = r.typeChoice < 75 ? 'application/json' : 'application/yaml';
    return { verb: r.verb, plural: r.plural, namespace: r.namespace, name: r.name, subresource: r.subresource, contentType, body: writes ? r.body : { t: 'none' }, query: r.query };
  });

/** A path segment. "." and ".." (even percent-encoded) are resolved away by any URL parser, the client's first: they become "x." and "x..". */
function segment(text: string): string {
  return encodeURIComponent(text === '.' || text === '..' ? `x${text}` : text);
}

function pathOf(r: FuzzRequest): string {
  const resource = resourceOf(r.plural);
  const prefix = resource.group === '' ? '/api/v1' : `/apis/${resource.group}/${resource.version}`;
  const ns = resource.namespaced ? `/namespaces/${segment(r.namespace)}` : '';
  const collection = `${prefix}${ns}/${resource.plural}`;
  const item = `${collection}/${segment(r.name)}${r.subresource === '' ? '' : `/${r.subresource}`}`;
  const path = r.verb === 'LIST' || r.verb === 'WATCH' || (r.verb === 'POST' && r.subresource === '') ? collection : item;
  const query = new URLSearchParams(r.query);
  if (r.verb === 'WATCH') query.set('watch', '1');
  const text = query.toString();
  return text === '' ? path : `${path}?${text}`;
}

function httpMethod(verb: Verb): string {
  return verb === 'LIST' || verb === 'WATCH' ? 'GET' : verb;
}

// ------------------------------------------------------------------ invariants

function assertStatusBody(body: unknown, code: number, what: string): void {
  const s = body as Status;
  assert.equal(s.kind, 'Status', `${what}: kind`);
  assert.equal(s.apiVersion, 'v1', `${what}: apiVersion`);
  assert.equal(s.status, 'Failure', `${what}: status`);
  assert.equal(s.code, code, `${what}: code`);
  assert.equal(typeof s.message, 'string', `${what}: message`);
  assert.ok((s.message ?? '').length > 0, `${what}: empty message`);
  assert.equal(typeof s.reason, 'string', `${what}: reason`);
  assert.equal(typeof s.metadata, 'object', `${what}: metadata`);
}

function describeRequest(r: FuzzRequest, body: string | Uint8Array | undefined): string {
  const text = body === undefined ? '' : typeof body === 'string' ? `${body.slice(0, 300)}${body.length > 300 ? `… (${body.length} chars)` : ''}` : `<${body.length} bytes>`;
  return `${r.verb} ${pathOf(r).slice(0, 300)} [${r.contentType}] ${text}`;
}

/** How often each verb got each status: printed after each property, to see what the fuzz reached. */
const answers = new Map<string, number>();

function printAnswers(label: string): void {
  const byVerb = new Map<string, string[]>();
  for (const [key, n] of [...answers.entries()].sort()) {
    const [verb = '', code = ''] = key.split(' ');
    byVerb.set(verb, [...(byVerb.get(verb) ?? []), `${code}×${n}`]);
  }
  process.stderr.write(`# fuzz-api ${label}: ${[...byVerb.entries()].map(([verb, codes]) => `${verb} ${codes.join(' ')}`).join('; ')}\n`);
  answers.clear();
}

async function send(base: string, r: FuzzRequest, store: Store): Promise<void> {
  const body = bodyOf(r);
  const what = describeRequest(r, body);
  const rvBefore = Number(store.resourceVersion);
  const controller = new AbortController();
  const res = await fetch(base + pathOf(r), {
    method: httpMethod(r.verb),
    headers: r.contentType === '' ? {} : { 'content-type': r.contentType },
    ...(body === undefined ? {} : { body }),
    // A request the server never answers is a failure too, not a hung run.
    signal: AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]),
  });
  const key = `${r.verb} ${res.status}`;
  answers.set(key, (answers.get(key) ?? 0) + 1);
  assert.ok(res.status < 500, `${what}: HTTP ${res.status}: ${res.status >= 500 ? await res.text() : ''}`);
  if (res.status === 200 && res.headers.get('content-length') === null) {
    // A watch stream (any GET of a collection with ?watch= other than "", "0" or "false", as in
    // Kubernetes): the headers said yes; the events are not what is fuzzed here.
    controller.abort();
    await res.body?.cancel().catch(() => undefined);
    return;
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${what}: HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (res.status >= 400) {
    assertStatusBody(parsed, res.status, what);
  } else if (r.verb === 'LIST') {
    const list = parsed as { kind: string; items: unknown[]; metadata: { resourceVersion: string } };
    assert.equal(list.kind, `${resourceOf(r.plural).kind}List`, what);
    assert.ok(Array.isArray(list.items), what);
  } else if (r.subresource !== 'binding') {
    const obj = parsed as KubeObject;
    assert.equal(typeof obj.metadata, 'object', `${what}: metadata`);
    // A dry run answers what it would have written: the stored resourceVersion, or none for a create.
    const dryRun = new URLSearchParams(r.query).has('dryRun');
    if (r.verb !== 'GET' && res.status < 300 && !dryRun) {
      // Acknowledged write: its resourceVersion is newer than anything before the request (or unchanged, for a no-op).
      const rv = Number(obj.metadata.resourceVersion);
      assert.ok(Number.isSafeInteger(rv) && rv > 0, `${what}: resourceVersion ${obj.metadata.resourceVersion}`);
      // A create is always a new write: newer than anything before it.
      if (res.status === 201) assert.ok(rv > rvBefore, `${what}: created at resourceVersion ${rv}, not after ${rvBefore}`);
    }
  }
  const rvAfter = Number(store.resourceVersion);
  assert.ok(rvAfter >= rvBefore, `${what}: resourceVersion went back from ${rvBefore} to ${rvAfter}`);
}

/** Everything listed is gettable and identical, over the store and over HTTP; resourceVersions below the list's. */
async function assertConsistent(base: string, store: Store): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const resource of RESOURCES) {
    const list = store.list(resource.plural);
    const listRv = Number(list.resourceVersion);
    for (const item of list.items) {
      const got = store.get(resource.plural, item.metadata.namespace, item.metadata.name ?? '');
      assert.deepEqual(got, item, `${resource.plural} ${item.metadata.namespace ?? ''}/${item.metadata.name ?? ''}`);
      assert.ok(Number(item.metadata.resourceVersion) <= listRv, `${resource.plural}: item newer than its list`);
      all.set(`${resource.plural}/${item.metadata.namespace ?? ''}/${item.metadata.name ?? ''}`, JSON.stringify(item));
    }
    const prefix = resource.group === '' ? '/api/v1' : `/apis/${resource.group}/${resource.version}`;
    const http = (await (await fetch(`${base}${prefix}/${resource.plural}`)).json()) as { items: KubeObject[] };
    assert.deepEqual(
      http.items.map((i) => i.metadata.uid),
      list.items.map((i) => i.metadata.uid),
      `${resource.plural}: HTTP list`,
    );
    for (const item of http.items.slice(0, 5)) {
      const ns = resource.namespaced ? `/namespaces/${encodeURIComponent(item.metadata.namespace ?? '')}` : '';
      const one = await fetch(`${base}${prefix}${ns}/${resource.plural}/${encodeURIComponent(item.metadata.name ?? '')}`);
      assert.equal(one.status, 200, `${resource.plural}/${item.metadata.name ?? ''} listed but not gettable`);
      assert.deepEqual(await one.json(), item);
    }
  }
  return all;
}

function tmpEntriesWithMark(): string[] {
  return readdirSync(tmpdir()).filter((n) => n.includes(MARK));
}

describe('API fuzz', { timeout: Math.max(600_000, RUNS * 200) }, () => {
  let stateDir: string;
  let cwdDir: string;
  let plane: ControlPlane;
  let store: Store;
  let base: string;
  const oldCwd = process.cwd();

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'stowage-fuzz-api-'));
    // The process works from an empty directory: anything written relative to it would show.
    cwdDir = join(stateDir, '..', `${stateDir.split('/').at(-1) ?? 'x'}-cwd`);
    mkdirSync(cwdDir);
    process.chdir(cwdDir);
    plane = await startControlPlane({ stateDir, listen: 'http://127.0.0.1:0', logger: pino({ level: 'silent' }), controllers: { resyncMs: 1000 } });
    store = plane.store;
    base = plane.url;
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fuzz' } });
    for (const resource of RESOURCES) {
      for (const namespace of resource.namespaced ? ['default', 'fuzz'] : ['']) {
        try {
          store.create(template(resource, 'seed', namespace) as unknown as KubeObject);
        } catch (err) {
          throw new Error(`the template of ${resource.plural} is not valid: ${(err as Error).message}`);
        }
      }
    }
    process.stderr.write(`# fuzz-api: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}\n`);
  });

  after(async () => {
    process.chdir(oldCwd);
    await plane.stop();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(cwdDir, { recursive: true, force: true });
  });

  it('answers every hostile write and query with a valid object or a 4xx Status, never a 5xx', async () => {
    const before = tmpEntriesWithMark();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        await send(base, r, store);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    await store.flushed();
    printAnswers('single requests');
    assert.deepEqual(tmpEntriesWithMark(), before, 'nothing named after a request appeared in the temp dir');
    assert.deepEqual(readdirSync(cwdDir), [], 'nothing was written to the working directory');
    assert.deepEqual(
      readdirSync(stateDir).filter((n) => !/^store\.db(-wal|-shm)?$/.test(n) && n !== 'server.json'),
      [],
      'the state dir holds only the store (and the server.json of the running control plane)',
    );
  });

  it('runs sequences of hostile requests and leaves the store consistent, across a reopen', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 8 }), async (requests) => {
        for (const r of requests) await send(base, r, store);
      }),
      { seed: SEED + 1, numRuns: Math.max(1, Math.floor(RUNS / 4)), endOnFailure: true },
    );
    printAnswers('sequences');
    // The controllers stop writing, so that what is compared holds still.
    await plane.controllers.stop();
    await store.flushed();
    const seen = await assertConsistent(base, store);
    // Reopened from disk: exactly what was acknowledged.
    await plane.stop();
    const reopened = open(join(stateDir, 'store.db'));
    const server: ApiServer = await startApiServer({ store: reopened, listen: 'http://127.0.0.1:0' });
    try {
      assert.deepEqual(await assertConsistent(server.url, reopened), seen);
    } finally {
      await server.close();
      reopened.close();
    }
  });
});
