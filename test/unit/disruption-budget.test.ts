// The disruption controller's arithmetic (budgetStatus), table-driven on in-memory objects as
// kube-controller-manager's disruption controller works it out: expectedPods and desiredHealthy
// from minAvailable / maxUnavailable (counts and percentages, rounded up, replicas from the pods'
// controllers), currentHealthy (Ready, not being deleted, not just evicted), disruptionsAllowed and
// the DisruptionAllowed condition; evictions recorded in disruptedPods kept until they expire; a pod
// whose controller has no replica count makes a percentage budget fail (SyncFailed upstream).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Deployment, ReplicaSet, StatefulSet } from '../../src/control/api/types/apps.js';
import type { Pod } from '../../src/control/api/types/core.js';
import type { PodDisruptionBudget, PodDisruptionBudgetSpec } from '../../src/control/api/types/policy.js';
import type { Event } from '../../src/control/api/types/core.js';
import { budgetSelects, budgetStatus, DELETION_TIMEOUT_MS, goSelector, type ScaleSource } from '../../src/control/controllers/disruption.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, waitFor } from './control-controllers-helpers.js';
import { podDisruptionBudgetStrategy } from '../../src/control/api/kinds/pod-disruption-budget.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');

function pod(name: string, opts: { ready?: boolean; owner?: { kind: string; name: string; uid: string }; deleting?: boolean; labels?: Record<string, string> } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      labels: opts.labels ?? { app: 'db' },
      ...(opts.owner === undefined ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', ...opts.owner, controller: true }] }),
      ...(opts.deleting ? { deletionTimestamp: '2026-06-01T11:59:00Z' } : {}),
    },
    spec: { containers: [{ name: 'c', image: 'busybox' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
  } as Pod;
}

function budget(spec: PodDisruptionBudgetSpec, disruptedPods?: Record<string, string>): PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'db', namespace: 'default', generation: 3 },
    spec: { selector: { matchLabels: { app: 'db' } }, ...spec },
    status: disruptedPods === undefined ? {} : { disruptedPods },
  };
}

const rs = (name: string, uid: string, replicas: number, deployment?: { name: string; uid: string }): ReplicaSet =>
  ({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name, namespace: 'default', uid, ...(deployment ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', ...deployment, controller: true }] } : {}) }, spec: { replicas } }) as unknown as ReplicaSet;
const scales: ScaleSource = {
  replicaSet: (_ns, name) => ({ 'rs-a': rs('rs-a', 'u-rs-a', 4), 'rs-d1': rs('rs-d1', 'u-rs-d1', 0, { name: 'dep', uid: 'u-dep' }), 'rs-d2': rs('rs-d2', 'u-rs-d2', 5, { name: 'dep', uid: 'u-dep' }) })[name],
  deployment: (_ns, name) => (name === 'dep' ? ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'dep', namespace: 'default', uid: 'u-dep' }, spec: { replicas: 5 } } as unknown as Deployment) : undefined),
  statefulSet: (_ns, name) => (name === 'sts' ? ({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'sts', namespace: 'default', uid: 'u-sts' }, spec: { replicas: 3 } } as unknown as StatefulSet) : undefined),
};
const ofRs = { kind: 'ReplicaSet', name: 'rs-a', uid: 'u-rs-a' };
const ofSts = { kind: 'StatefulSet', name: 'sts', uid: 'u-sts' };

describe('PodDisruptionBudget status (the disruption controller)', () => {
  const cases: {
    name: string;
    spec: PodDisruptionBudgetSpec;
    pods: Pod[];
    disrupted?: Record<string, string>;
    want: { expectedPods: number; desiredHealthy: number; currentHealthy: number; disruptionsAllowed: number; reason: string };
  }[] = [
    {
      name: 'minAvailable 2 of 3 ready pods: one disruption',
      spec: { minAvailable: 2 },
      pods: [pod('a'), pod('b'), pod('c')],
      want: { expectedPods: 3, desiredHealthy: 2, currentHealthy: 3, disruptionsAllowed: 1, reason: 'SufficientPods' },
    },
    {
      name: 'minAvailable 2 with one pod unready: none',
      spec: { minAvailable: 2 },
      pods: [pod('a'), pod('b', { ready: false }), pod('c', { deleting: true })],
      want: { expectedPods: 3, desiredHealthy: 2, currentHealthy: 1, disruptionsAllowed: 0, reason: 'InsufficientPods' },
    },
    {
      name: 'minAvailable 50% of a StatefulSet of 3: rounded up to 2',
      spec: { minAvailable: '50%' },
      pods: [pod('a', { owner: ofSts }), pod('b', { owner: ofSts }), pod('c', { owner: ofSts })],
      want: { expectedPods: 3, desiredHealthy: 2, currentHealthy: 3, disruptionsAllowed: 1, reason: 'SufficientPods' },
    },
    {
      name: 'maxUnavailable 1 of a ReplicaSet of 4 with 3 pods so far: replicas count, not pods',
      spec: { maxUnavailable: 1 },
      pods: [pod('a', { owner: ofRs }), pod('b', { owner: ofRs }), pod('c', { owner: ofRs })],
      want: { expectedPods: 4, desiredHealthy: 3, currentHealthy: 3, disruptionsAllowed: 0, reason: 'InsufficientPods' },
    },
    {
      name: 'maxUnavailable 30% of a Deployment of 5 across two ReplicaSets: the Deployment counted once, 2 may go',
      spec: { maxUnavailable: '30%' },
      pods: [
        pod('a', { owner: { kind: 'ReplicaSet', name: 'rs-d1', uid: 'u-rs-d1' } }),
        pod('b', { owner: { kind: 'ReplicaSet', name: 'rs-d2', uid: 'u-rs-d2' } }),
        pod('c', { owner: { kind: 'ReplicaSet', name: 'rs-d2', uid: 'u-rs-d2' } }),
        pod('d', { owner: { kind: 'ReplicaSet', name: 'rs-d2', uid: 'u-rs-d2' } }),
        pod('e', { owner: { kind: 'ReplicaSet', name: 'rs-d2', uid: 'u-rs-d2' } }),
      ],
      want: { expectedPods: 5, desiredHealthy: 3, currentHealthy: 5, disruptionsAllowed: 2, reason: 'SufficientPods' },
    },
    {
      name: 'an eviction the API allowed a minute ago: that pod is not counted healthy',
      spec: { minAvailable: 1 },
      pods: [pod('a'), pod('b')],
      disrupted: { a: new Date(NOW - 60_000).toISOString() },
      want: { expectedPods: 2, desiredHealthy: 1, currentHealthy: 1, disruptionsAllowed: 0, reason: 'InsufficientPods' },
    },
    {
      name: 'an eviction older than the deletion timeout: the pod was not deleted after all, it counts again',
      spec: { minAvailable: 1 },
      pods: [pod('a'), pod('b')],
      disrupted: { a: new Date(NOW - DELETION_TIMEOUT_MS - 1000).toISOString() },
      want: { expectedPods: 2, desiredHealthy: 1, currentHealthy: 2, disruptionsAllowed: 1, reason: 'SufficientPods' },
    },
    {
      name: 'no pods: nothing expected, nothing allowed',
      spec: { maxUnavailable: 1 },
      pods: [],
      want: { expectedPods: 0, desiredHealthy: 0, currentHealthy: 0, disruptionsAllowed: 0, reason: 'InsufficientPods' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { status } = budgetStatus(budget(c.spec, c.disrupted), c.pods, scales, NOW);
      const { expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed } = status;
      const condition = status.conditions?.find((x) => x.type === 'DisruptionAllowed');
      assert.deepEqual({ expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed, reason: condition?.reason }, c.want);
      assert.equal(condition?.status, c.want.disruptionsAllowed > 0 ? 'True' : 'False');
      assert.equal(status.observedGeneration, 3);
    });
  }

  it('keeps a fresh eviction in disruptedPods and asks to look again when it expires', () => {
    const at = new Date(NOW - 30_000).toISOString();
    const r = budgetStatus(budget({ minAvailable: 1 }, { a: at, gone: at }), [pod('a'), pod('b')], scales, NOW);
    assert.deepEqual(r.status.disruptedPods, { a: at });
    assert.equal(r.recheckAfterMs, DELETION_TIMEOUT_MS - 30_000);
  });

  it('a percentage over pods whose controller has no replica count cannot be worked out', () => {
    const owned = pod('a', { owner: { kind: 'DaemonSet', name: 'ds', uid: 'u-ds' } });
    assert.throws(() => budgetStatus(budget({ maxUnavailable: '10%' }), [owned], scales, NOW), /found no controllers for pod "a"/);
    // minAvailable as a count needs no controller.
    assert.equal(budgetStatus(budget({ minAvailable: 0 }), [owned], scales, NOW).status.disruptionsAllowed, 1);
  });

  it('pods without a controller are left out of a percentage budget and named', () => {
    const r = budgetStatus(budget({ maxUnavailable: '50%' }), [pod('a', { owner: ofSts }), pod('loose')], scales, NOW);
    assert.deepEqual(r.unmanaged, ['loose']);
    assert.equal(r.status.expectedPods, 3);
  });

  it('selects by the selector: none without one, every pod of the namespace with an empty one', () => {
    const p = pod('a');
    assert.equal(budgetSelects({ ...budget({}), spec: {} }, p), false);
    assert.equal(budgetSelects({ ...budget({}), spec: { selector: {} } }, p), true);
    assert.equal(budgetSelects(budget({}), pod('x', { labels: { app: 'web' } })), false);
    assert.equal(budgetSelects(budget({}), { ...p, metadata: { ...p.metadata, namespace: 'other' } }), false);
  });
});

describe('PodDisruptionBudget validation', () => {
  const cases: { name: string; spec: PodDisruptionBudgetSpec; errors: string[] }[] = [
    { name: 'minAvailable alone', spec: { minAvailable: 1 }, errors: [] },
    { name: 'maxUnavailable as a percentage', spec: { maxUnavailable: '25%' }, errors: [] },
    { name: 'both set', spec: { minAvailable: 1, maxUnavailable: 1 }, errors: ['spec: Invalid value'] },
    { name: 'a negative count', spec: { minAvailable: -1 }, errors: ['spec.minAvailable: Invalid value: -1: must be greater than or equal to 0'] },
    { name: 'more than 100%', spec: { maxUnavailable: '120%' }, errors: ['spec.maxUnavailable: Invalid value: "120%": must not be greater than 100%'] },
    { name: 'not a percentage', spec: { minAvailable: 'half' }, errors: ['spec.minAvailable: Invalid value: "half": a valid percent string'] },
    { name: 'an unknown eviction policy', spec: { minAvailable: 1, unhealthyPodEvictionPolicy: 'Sometimes' }, errors: ['spec.unhealthyPodEvictionPolicy: Unsupported value: "Sometimes"'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const errs = podDisruptionBudgetStrategy.validate(budget(c.spec));
      const text = errs.map(errorMessage);
      assert.equal(errs.length, c.errors.length, text.join('\n'));
      for (const [i, want] of c.errors.entries()) assert.ok((text[i] ?? '').startsWith(want), `${text[i]}\n  does not start with ${want}`);
    });
  }
});

describe("the disruption controller through the store: what `kubectl describe pdb` shows", () => {
  let store: Store;
  let ctl: Controllers;
  beforeEach(() => {
    store = open(':memory:');
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, maxDelayMs: 200 });
  });
  afterEach(async () => {
    await ctl.stop();
    store.close();
  });

  it('warns of unmanaged pods, printing the selector as kube-controller-manager does', async () => {
    store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'loose', namespace: 'default', labels: { app: 'web', tier: 'front' } }, spec: { containers: [{ name: 'main', image: 'busybox' }] } });
    const selector = { matchLabels: { tier: 'front', app: 'web' }, matchExpressions: [{ key: 'env', operator: 'NotIn' as const, values: ['dev', 'test'] }] };
    store.create({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'web', namespace: 'default' }, spec: { maxUnavailable: 1, selector } });
    const event = await waitFor(() => (store.list('events', { fieldSelector: 'involvedObject.name=web' }).items as Event[]).find((e) => e.reason === 'UnmanagedPods'), 'the UnmanagedPods event');
    assert.equal(event.type, 'Warning');
    assert.equal(
      event.message,
      'Pods selected by this PodDisruptionBudget (selector: &LabelSelector{MatchLabels:map[string]string{app: web,tier: front,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:env,Operator:NotIn,Values:[dev test],},},}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to an integer value.',
    );
    assert.equal(goSelector(undefined), 'nil');
    assert.equal(goSelector({}), '&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}');
  });

  it('drops an eviction whose pod was not deleted in time, with the Warning NotDeleted on the pod', async () => {
    store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'stays', namespace: 'default', labels: { app: 'db' } }, spec: { containers: [{ name: 'main', image: 'busybox' }] } });
    const created = store.create({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'db', namespace: 'default' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'db' } } } }) as PodDisruptionBudget;
    const long = new Date(Date.now() - DELETION_TIMEOUT_MS - 1000).toISOString();
    store.update({ ...created, metadata: { ...created.metadata, resourceVersion: undefined }, status: { disruptedPods: { stays: long } } }, { subresource: 'status' });
    const event = await waitFor(() => (store.list('events', { fieldSelector: 'involvedObject.name=stays' }).items as Event[]).find((e) => e.reason === 'NotDeleted'), 'the NotDeleted event');
    assert.equal(event.type, 'Warning');
    assert.equal(event.message, "Pod was expected by PDB default/default to be deleted but it wasn't");
    await waitFor(() => (store.get('poddisruptionbudgets', 'default', 'db') as PodDisruptionBudget).status?.disruptedPods === undefined, 'the entry dropped');
  });

  it('fails safe without marking the generation observed when the expected pods cannot be worked out', async () => {
    // A pod whose ReplicaSet does not exist: a percentage budget cannot be counted.
    const owner = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'gone', uid: 'u-gone', controller: true };
    store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orphan', namespace: 'default', labels: { app: 'db' }, ownerReferences: [owner] }, spec: { containers: [{ name: 'main', image: 'busybox' }] } });
    store.create({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'db', namespace: 'default' }, spec: { minAvailable: '50%', selector: { matchLabels: { app: 'db' } } } });
    const pdb = await waitFor(() => {
      const b = store.get('poddisruptionbudgets', 'default', 'db') as PodDisruptionBudget | undefined;
      return b?.status?.conditions?.some((c) => c.reason === 'SyncFailed') ? b : undefined;
    }, 'the SyncFailed condition');
    assert.equal(pdb.status?.disruptionsAllowed, 0);
    assert.equal(pdb.metadata.generation, 1);
    assert.equal(pdb.status?.observedGeneration ?? 0, 0);
    const condition = pdb.status?.conditions?.find((c) => c.type === 'DisruptionAllowed');
    assert.deepEqual({ status: condition?.status, reason: condition?.reason, message: condition?.message }, { status: 'False', reason: 'SyncFailed', message: 'found no controllers for pod "orphan"' });
  });
});
