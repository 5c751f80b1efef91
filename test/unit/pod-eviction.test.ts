// The eviction subresource against the real API server and an in-memory store: which budgets
// guard a pod (kube-apiserver's getPodDisruptionBudgets: the pod's namespace only, and a budget
// with an empty selector guards nothing there, though the disruption controller counts every pod
// for it), and the answers a `kubectl drain` user sees: 201, 429 with the budget's words, 500 for
// two budgets, a dry run that changes nothing.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import type { PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus } from '../../src/control/api/types/policy.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

interface Budget {
  name: string;
  namespace?: string;
  spec: PodDisruptionBudgetSpec;
  status?: PodDisruptionBudgetStatus;
}

const healthy = (allowed: number): PodDisruptionBudgetStatus => ({ disruptionsAllowed: allowed, currentHealthy: 2, desiredHealthy: 2 - allowed, expectedPods: 2, observedGeneration: 1 });

describe('pods/eviction: which budgets guard the pod, and the answers', () => {
  let store: Store;
  let server: ApiServer;

  beforeEach(async () => {
    store = open(':memory:');
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
    const created = store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } },
      spec: { nodeName: 'node-1', containers: [{ name: 'main', image: 'busybox' }] },
    }) as Pod;
    store.update({ ...created, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  const addBudget = (b: Budget): void => {
    const created = store.create({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: b.name, namespace: b.namespace ?? 'default' }, spec: b.spec }) as PodDisruptionBudget;
    if (b.status !== undefined) store.update({ ...created, status: b.status }, { subresource: 'status' });
  };
  const evict = async (query = ''): Promise<{ code: number; body: { message?: string; details?: { causes?: { message: string }[] } } }> => {
    const res = await fetch(`${server.url}/api/v1/namespaces/default/pods/web-1/eviction${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'web-1', namespace: 'default' } }),
    });
    return { code: res.status, body: (await res.json()) as { message?: string } };
  };
  const podLeft = (): boolean => store.get('pods', 'default', 'web-1') !== undefined;

  const cases: { name: string; budgets: Budget[]; code: number; gone: boolean; cause?: RegExp; message?: RegExp }[] = [
    { name: 'no budget: the pod goes', budgets: [], code: 201, gone: true },
    {
      name: 'a budget allowing none stops it with its words',
      budgets: [{ name: 'web', spec: { minAvailable: 2, selector: { matchLabels: { app: 'web' } } }, status: healthy(0) }],
      code: 429,
      gone: false,
      cause: /^The disruption budget web needs 2 healthy pods and has 2 currently$/,
    },
    {
      name: 'a budget allowing one lets it go',
      budgets: [{ name: 'web', spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } }, status: healthy(1) }],
      code: 201,
      gone: true,
    },
    {
      name: 'a budget with an empty selector guards nothing (kube-apiserver), even allowing none',
      budgets: [{ name: 'everything', spec: { maxUnavailable: 0, selector: {} }, status: healthy(0) }],
      code: 201,
      gone: true,
    },
    {
      name: 'a budget whose selector matches nothing does not guard it',
      budgets: [{ name: 'nothing', spec: { minAvailable: 1, selector: { matchLabels: { app: 'nothing' } } }, status: healthy(0) }],
      code: 201,
      gone: true,
    },
    {
      name: "a budget of another namespace does not guard it",
      budgets: [{ name: 'web', namespace: 'other', spec: { maxUnavailable: 0, selector: { matchLabels: { app: 'web' } } }, status: healthy(0) }],
      code: 201,
      gone: true,
    },
    {
      name: 'a budget the controller has not processed yet: 429, still being processed',
      budgets: [{ name: 'web', spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } }],
      code: 429,
      gone: false,
      cause: /^The disruption budget web is still being processed by the server\.$/,
    },
    {
      name: 'two budgets: 500, not supported',
      budgets: [
        { name: 'a', spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } }, status: healthy(1) },
        { name: 'b', spec: { minAvailable: 1, selector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] } }, status: healthy(1) },
      ],
      code: 500,
      gone: false,
      message: /^This pod has more than one PodDisruptionBudget, which the eviction subresource does not support\.$/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      for (const b of c.budgets) addBudget(b);
      const r = await evict();
      assert.equal(r.code, c.code, JSON.stringify(r.body));
      if (c.cause !== undefined) assert.match(r.body.details?.causes?.[0]?.message ?? '', c.cause);
      if (c.message !== undefined) assert.match(r.body.message ?? '', c.message);
      // The pod is deleted gracefully: gone, or marked for deletion.
      const pod = store.get('pods', 'default', 'web-1') as Pod | undefined;
      assert.equal(pod === undefined || pod.metadata.deletionTimestamp !== undefined, c.gone);
    });
  }

  it('a dry run checks the budget and changes nothing', async () => {
    addBudget({ name: 'web', spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } }, status: healthy(1) });
    const before = store.get('poddisruptionbudgets', 'default', 'web');
    const r = await evict('?dryRun=All');
    assert.equal(r.code, 201);
    assert.ok(podLeft());
    assert.equal((store.get('pods', 'default', 'web-1') as Pod).metadata.deletionTimestamp, undefined);
    assert.deepEqual(store.get('poddisruptionbudgets', 'default', 'web'), before);
  });
});
