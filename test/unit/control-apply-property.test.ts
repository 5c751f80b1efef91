// Properties of server-side apply through the HTTP server, on generated sequences of applies
// (several managers, forced or not), merge patches and PUTs carrying arbitrary managedFields
// against one ConfigMap: no request is a 5xx; an accepted apply leaves every applied value in the
// object and its manager owning exactly what it applied; a refused one changes nothing; the stored
// managedFields always decode and name only fields the object has.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ManagedFieldsEntry, Status } from '../../src/control/api/types/meta.js';
import { decodeFieldsV1 } from '../../src/control/server/apply/fields-v1.js';
import { pathString } from '../../src/control/server/apply/field-set.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 60);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261206);
const CM = '/api/v1/namespaces/default/configmaps/c';

interface ConfigMap {
  metadata: { labels?: Record<string, string>; finalizers?: string[]; managedFields?: ManagedFieldsEntry[]; resourceVersion?: string };
  data?: Record<string, string>;
}

type Op =
  | { t: 'apply'; manager: string; force: boolean; data: Record<string, string>; labels: Record<string, string>; finalizers: string[] }
  | { t: 'patch'; manager: string; data: Record<string, string | null> }
  | { t: 'put'; managedFields: unknown };

const key = fc.constantFrom('a', 'b', 'c', 'd');
const value = fc.constantFrom('1', '2');
const manager = fc.constantFrom('m1', 'm2', 'm3');
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('apply' as const),
      manager,
      force: fc.boolean(),
      data: fc.dictionary(key, value, { maxKeys: 3 }),
      labels: fc.dictionary(key, value, { maxKeys: 2 }),
      finalizers: fc.uniqueArray(fc.constantFrom('x.io/a', 'x.io/b'), { maxLength: 2 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('patch' as const), manager, data: fc.dictionary(key, fc.option(value), { maxKeys: 2 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('put' as const),
      managedFields: fc.oneof(
        fc.constant([]),
        fc.jsonValue({ maxDepth: 3 }),
        fc.array(
          fc.record({
            manager,
            operation: fc.constantFrom('Apply', 'Update', 'Bogus'),
            apiVersion: fc.constantFrom('v1', ''),
            fieldsType: fc.constantFrom('FieldsV1', 'FieldsV2'),
            fieldsV1: fc.oneof(fc.constant({ 'f:data': { 'f:a': {} } }), fc.constant({ 'f:metadata': { 'f:labels': { 'f:zz': {} } } }), fc.jsonValue({ maxDepth: 2 })),
          }),
          { maxLength: 2 },
        ),
      ),
    }),
  },
);

describe('server-side apply properties', () => {
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

  const send = async <T>(method: string, path: string, body: string, type: string): Promise<{ status: number; body: T }> => {
    const res = await fetch(server.url + path, { method, headers: { 'content-type': type }, body });
    return { status: res.status, body: (await res.json()) as T };
  };
  const get = async (): Promise<ConfigMap | undefined> => {
    const res = await fetch(server.url + CM);
    return res.status === 404 ? undefined : ((await res.json()) as ConfigMap);
  };

  /** Whether `path` (as printed) names something the object has. */
  const present = (obj: ConfigMap, path: string): boolean => {
    const m = /^\.(data|metadata\.labels)\.(.+)$/.exec(path);
    if (m) return (m[1] === 'data' ? obj.data : obj.metadata.labels)?.[m[2] ?? ''] !== undefined;
    const f = /^\.metadata\.finalizers\[="(.+)"\]$/.exec(path);
    if (f) return obj.metadata.finalizers?.includes(f[1] ?? '') === true;
    return ['.data', '.metadata.labels', '.metadata.finalizers'].includes(path);
  };

  it('holds over generated sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (ops) => {
        await fetch(server.url + CM, { method: 'DELETE' });
        // A finalizer left by an earlier run holds the object: let it go.
        const stale = await get();
        if (stale !== undefined) {
          await send('PATCH', CM, JSON.stringify({ metadata: { finalizers: null } }), 'application/merge-patch+json');
        }
        for (const o of ops) {
          const before = await get();
          let res: { status: number; body: ConfigMap | Status };
          if (o.t === 'apply') {
            const config = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: o.labels, finalizers: o.finalizers }, data: o.data };
            res = await send(`PATCH`, `${CM}?fieldManager=${o.manager}&force=${o.force}`, JSON.stringify(config), 'application/apply-patch+yaml');
          } else if (o.t === 'patch') {
            if (before === undefined) continue;
            res = await send('PATCH', `${CM}?fieldManager=${o.manager}`, JSON.stringify({ data: o.data }), 'application/merge-patch+json');
          } else {
            if (before === undefined) continue;
            res = await send('PUT', CM, JSON.stringify({ ...before, metadata: { ...before.metadata, managedFields: o.managedFields } }), 'application/json');
          }
          assert.ok(res.status < 500, `${o.t}: ${res.status} ${JSON.stringify(res.body)}`);
          if (o.t === 'apply' && before !== undefined) {
            // A conflict is exactly a change to a value someone else owns (everything, when nobody owns anything yet).
            const entries = before.metadata.managedFields ?? [];
            const others = entries.filter((e) => !(e.manager === o.manager && e.operation === 'Apply')).flatMap((e) => decodeFieldsV1(e.fieldsV1).members().map(pathString));
            const ownedByOthers = (p: string): boolean => entries.length === 0 || others.includes(p);
            const changes = [
              ...Object.entries(o.data).filter(([k, v]) => before.data?.[k] !== undefined && before.data[k] !== v && ownedByOthers(`.data.${k}`)),
              ...Object.entries(o.labels).filter(([k, v]) => before.metadata.labels?.[k] !== undefined && before.metadata.labels[k] !== v && ownedByOthers(`.metadata.labels.${k}`)),
            ];
            assert.equal(res.status === 409, changes.length > 0 && !o.force, `apply ${JSON.stringify(o)} over ${JSON.stringify(before)}: ${res.status}`);
          }
          const now = await get();
          if (res.status >= 300) {
            assert.deepEqual(now, before, `a refused ${o.t} (${res.status}) changes nothing`);
            if (o.t === 'apply') assert.equal(res.status, 409, JSON.stringify(res.body));
            continue;
          }
          assert.ok(now !== undefined);
          assert.deepEqual(now, res.body, 'the answer is what is stored');
          const owners = new Map<string, string[]>();
          for (const e of now.metadata.managedFields ?? []) {
            const paths = decodeFieldsV1(e.fieldsV1).members().map(pathString);
            owners.set(`${e.manager}/${e.operation}`, paths);
            if (o.t !== 'put') for (const p of paths) assert.ok(present(now, p), `${e.manager} owns ${p}, which the object has`);
          }
          if (o.t === 'apply') {
            for (const [k, v] of Object.entries(o.data)) assert.equal(now.data?.[k], v);
            for (const [k, v] of Object.entries(o.labels)) assert.equal(now.metadata.labels?.[k], v);
            for (const f of o.finalizers) assert.ok(now.metadata.finalizers?.includes(f));
            const applied = [
              ...Object.keys(o.data).map((k) => `.data.${k}`),
              ...o.finalizers.map((f) => `.metadata.finalizers[="${f}"]`),
              ...Object.keys(o.labels).map((k) => `.metadata.labels.${k}`),
            ].sort();
            assert.deepEqual((owners.get(`${o.manager}/Apply`) ?? []).sort(), applied, 'the applier owns exactly what it applied');
            // What it applied before, stopped applying, and nobody else owns is gone.
            const last = before?.metadata.managedFields?.find((e) => e.manager === o.manager && e.operation === 'Apply');
            const owned = new Set([...owners.values()].flat());
            for (const p of last === undefined ? [] : decodeFieldsV1(last.fieldsV1).members().map(pathString)) {
              if (!owned.has(p)) assert.ok(!present(now, p), `${p}, dropped by ${o.manager} and owned by no one, is removed`);
            }
          }
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
