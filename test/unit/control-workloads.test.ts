// The workload controllers' decisions on in-memory objects: the StatefulSet plan (ordered start,
// Parallel, failed pods replaced, scale-down from the top, claims' owners under each retention
// policy), the Deployment's rolling-update arithmetic, the ReplicaSet's deletion order, the Job's
// completions and failures, where a DaemonSet runs, and the workload kinds' defaults and
// validation as the API applies them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deploymentStrategy } from '../../src/control/api/kinds/deployment.js';
import { jobStrategy } from '../../src/control/api/kinds/job.js';
import { statefulSetStrategy } from '../../src/control/api/kinds/stateful-set.js';
import type { DaemonSet, Deployment, ReplicaSet, StatefulSet } from '../../src/control/api/types/apps.js';
import type { Job } from '../../src/control/api/types/batch.js';
import type { Node, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';
import { newDaemonPod, shouldRun } from '../../src/control/controllers/daemonset.js';
import { planRollingUpdate } from '../../src/control/controllers/deployment.js';
import { planJob } from '../../src/control/controllers/job.js';
import { deletionOrder } from '../../src/control/controllers/replicaset.js';
import { claimOwners, newStatefulSetPod, planStatefulSet, revisionOf, type StatefulSetAction } from '../../src/control/controllers/statefulset.js';

function sts(extra: Partial<StatefulSet['spec']> = {}): StatefulSet {
  const set: StatefulSet = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'web', namespace: 'default', uid: 'set-uid', generation: 1 },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'main', image: 'busybox', command: ['sleep', '1d'] }] } },
      volumeClaimTemplates: [{ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      ...extra,
    },
  };
  return set;
}

/** A pod of the set at an ordinal: Running and Ready unless said otherwise. */
function member(set: StatefulSet, ordinal: number, state: 'ready' | 'pending' | 'failed' | 'terminating' = 'ready'): Pod {
  const pod = newStatefulSetPod(set, ordinal, revisionOf(set));
  pod.metadata.uid = `pod-${ordinal}`;
  if (state === 'ready') pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
  if (state === 'pending') pod.status = { phase: 'Pending' };
  if (state === 'failed') pod.status = { phase: 'Failed' };
  if (state === 'terminating') {
    pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
    pod.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
  }
  return pod;
}

const summary = (actions: StatefulSetAction[]): string[] =>
  actions.map((a) => (a.type === 'createPod' ? `create ${a.pod.metadata.name}` : a.type === 'deletePod' ? `delete ${a.pod.metadata.name}` : a.type === 'createClaims' ? `claims ${a.claims.map((c) => c.metadata.name).join(',')}` : `owners ${a.claim.metadata.name}`));

const noClaims = (): undefined => undefined;

describe('planStatefulSet', () => {
  const cases: [string, StatefulSet, (s: StatefulSet) => Pod[], string[]][] = [
    ['OrderedReady starts with ordinal 0 and its claim', sts(), () => [], ['claims data-web-0', 'create web-0']],
    ['OrderedReady waits for a pod that is not yet Ready', sts(), (s) => [member(s, 0, 'pending')], []],
    ['OrderedReady makes the next ordinal once the previous is Ready', sts(), (s) => [member(s, 0)], ['claims data-web-1', 'create web-1']],
    ['Parallel makes every missing ordinal at once', sts({ podManagementPolicy: 'Parallel' }), () => [], ['claims data-web-0', 'create web-0', 'claims data-web-1', 'create web-1', 'claims data-web-2', 'create web-2']],
    ['a deleted pod is made again under its name', sts(), (s) => [member(s, 0), member(s, 2)], ['claims data-web-1', 'create web-1']],
    ['a failed pod is deleted (to be made again)', sts(), (s) => [member(s, 0, 'failed')], ['delete web-0']],
    ['scale-down removes the highest ordinal first, one at a time', sts({ replicas: 1 }), (s) => [member(s, 0), member(s, 1), member(s, 2)], ['delete web-2']],
    ['scale-down waits while a condemned pod terminates', sts({ replicas: 1 }), (s) => [member(s, 0), member(s, 1), member(s, 2, 'terminating')], []],
    ['Parallel scale-down removes every condemned pod', sts({ replicas: 1, podManagementPolicy: 'Parallel' }), (s) => [member(s, 0), member(s, 1), member(s, 2)], ['delete web-2', 'delete web-1']],
    ['nothing to do when all are Ready', sts(), (s) => [member(s, 0), member(s, 1), member(s, 2)], []],
  ];
  for (const [name, set, pods, expected] of cases) {
    it(name, () => {
      assert.deepEqual(summary(planStatefulSet(set, pods(set), noClaims).actions), expected);
    });
  }

  it('gives a claim the set\'s labels and the pod its claim, hostname and identity labels', () => {
    const set = sts({ serviceName: 'web-svc' });
    const plan = planStatefulSet(set, [], noClaims);
    const claims = plan.actions.find((a) => a.type === 'createClaims');
    assert.equal(claims?.type, 'createClaims');
    if (claims?.type === 'createClaims') assert.deepEqual(claims.claims[0]?.metadata.labels, { app: 'web' });
    const pod = plan.actions.find((a) => a.type === 'createPod');
    if (pod?.type !== 'createPod') throw new Error('no pod');
    assert.deepEqual(pod.pod.spec.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'data-web-0' } }]);
    assert.equal(pod.pod.spec.hostname, 'web-0');
    assert.equal(pod.pod.spec['subdomain'], 'web-svc');
    assert.equal(pod.pod.metadata.labels?.['statefulset.kubernetes.io/pod-name'], 'web-0');
    assert.equal(pod.pod.metadata.labels?.['apps.kubernetes.io/pod-index'], '0');
    assert.deepEqual(pod.pod.metadata.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'web', uid: 'set-uid', controller: true, blockOwnerDeletion: true }]);
  });

  it('waits for a claim still being deleted before making its pod again', () => {
    const set = sts({ replicas: 1 });
    const going: PersistentVolumeClaim = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-web-0', deletionTimestamp: '2026-01-01T00:00:00Z' }, spec: {} };
    const plan = planStatefulSet(set, [], (n) => (n === 'data-web-0' ? going : undefined));
    assert.deepEqual(plan.actions, []);
    assert.ok(plan.requeueAfterMs !== undefined);
  });

  it('counts replicas, ready and updated pods in status', () => {
    const set = sts();
    const plan = planStatefulSet(set, [member(set, 0), member(set, 1, 'pending')], noClaims);
    assert.equal(plan.status.replicas, 2);
    assert.equal(plan.status.readyReplicas, 1);
    assert.equal(plan.status.updatedReplicas, 2);
    assert.equal(plan.status.observedGeneration, 1);
    assert.equal(plan.status.updateRevision, revisionOf(set));
  });
});

describe('claim owners under the retention policy', () => {
  const claim = (): PersistentVolumeClaim => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-web-2', ownerReferences: [{ apiVersion: 'v1', kind: 'Other', name: 'x', uid: 'other' }] }, spec: {} });
  const cases: [string, 'Retain' | 'Delete', 'Retain' | 'Delete', boolean, string[] | undefined][] = [
    ['Retain/Retain: no owner of ours', 'Retain', 'Retain', true, undefined],
    ['whenDeleted Delete: the set owns it', 'Delete', 'Retain', true, ['other', 'set-uid']],
    ['whenScaled Delete, pod in range: nobody of ours', 'Retain', 'Delete', true, undefined],
    ['whenScaled Delete, pod condemned: the pod owns it', 'Retain', 'Delete', false, ['other', 'pod-2']],
    ['Delete/Delete, pod condemned: the pod, not the set', 'Delete', 'Delete', false, ['other', 'pod-2']],
    ['Delete/Delete, pod in range: the set', 'Delete', 'Delete', true, ['other', 'set-uid']],
  ];
  for (const [name, whenDeleted, whenScaled, inRange, expected] of cases) {
    it(name, () => {
      const set = sts({ persistentVolumeClaimRetentionPolicy: { whenDeleted, whenScaled } });
      const owners = claimOwners(claim(), set, member(set, 2), inRange);
      assert.deepEqual(owners?.map((r) => r.uid), expected);
    });
  }
});

function deployment(replicas: number, maxSurge: number | string, maxUnavailable: number | string): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd', namespace: 'default', uid: 'd-uid' },
    spec: { replicas, selector: { matchLabels: { a: 'b' } }, template: { spec: { containers: [] } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge, maxUnavailable } } },
  };
}

function rs(name: string, replicas: number, availableReplicas: number, created = '2026-01-01T00:00:00Z'): ReplicaSet {
  return { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name, creationTimestamp: created }, spec: { replicas, selector: {}, template: { spec: { containers: [] } } }, status: { replicas, availableReplicas } };
}

describe('planRollingUpdate', () => {
  const cases: [string, Deployment, ReplicaSet, ReplicaSet[], Record<string, number>][] = [
    ['surge 1, unavailable 0: the new set grows by one, the old waits', deployment(3, 1, 0), rs('new', 0, 0), [rs('old', 3, 3)], { new: 1 }],
    ['surge 1, unavailable 0: once the new pod is available, one old goes', deployment(3, 1, 0), rs('new', 1, 1), [rs('old', 3, 3)], { old: 2 }],
    ['surge 0, unavailable 1: an old pod goes first', deployment(3, 0, 1), rs('new', 0, 0), [rs('old', 3, 3)], { old: 2 }],
    ['25%/25% of 4: one up, one down', deployment(4, '25%', '25%'), rs('new', 0, 0), [rs('old', 4, 4)], { new: 1, old: 3 }],
    ['unhealthy old pods go first', deployment(2, 0, 1), rs('new', 2, 1), [rs('old', 1, 0)], { old: 0 }],
    ['done: nothing to change', deployment(2, 1, 0), rs('new', 2, 2), [rs('old', 0, 0)], {}],
  ];
  for (const [name, d, newRS, oldRSs, expected] of cases) {
    it(name, () => {
      assert.deepEqual(Object.fromEntries(planRollingUpdate(d, newRS, oldRSs)), expected);
    });
  }
});

describe('ReplicaSet deletion order', () => {
  it('unscheduled, then pending, then not ready, then the newest', () => {
    const pod = (name: string, nodeName: string | undefined, phase: 'Pending' | 'Running', ready: boolean, created: string): Pod => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, creationTimestamp: created },
      spec: { containers: [], ...(nodeName ? { nodeName } : {}) },
      status: { phase, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
    const order = deletionOrder([
      pod('old-ready', 'n', 'Running', true, '2026-01-01T00:00:00Z'),
      pod('new-ready', 'n', 'Running', true, '2026-01-02T00:00:00Z'),
      pod('not-ready', 'n', 'Running', false, '2026-01-01T00:00:00Z'),
      pod('pending', 'n', 'Pending', false, '2026-01-01T00:00:00Z'),
      pod('unscheduled', undefined, 'Pending', false, '2026-01-01T00:00:00Z'),
    ]).map((p) => p.metadata.name);
    assert.deepEqual(order, ['unscheduled', 'pending', 'not-ready', 'new-ready', 'old-ready']);
  });
});

describe('workload kinds: defaults and validation', () => {
  it('defaults a StatefulSet as Kubernetes does', () => {
    const set = sts();
    statefulSetStrategy.defaults?.(set);
    assert.equal(set.spec.podManagementPolicy, 'OrderedReady');
    assert.deepEqual(set.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
    assert.deepEqual(set.spec.persistentVolumeClaimRetentionPolicy, { whenDeleted: 'Retain', whenScaled: 'Retain' });
    assert.equal(set.spec.revisionHistoryLimit, 10);
    assert.equal(set.spec.volumeClaimTemplates?.[0]?.spec.volumeMode, 'Filesystem');
    assert.equal(set.spec.template.spec.restartPolicy, 'Always');
  });

  it('defaults a Deployment to RollingUpdate 25%/25%', () => {
    const d = deployment(1, 1, 1);
    delete d.spec.strategy;
    deploymentStrategy.defaults?.(d);
    assert.deepEqual(d.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } });
    assert.equal(d.spec.progressDeadlineSeconds, 600);
  });

  const invalid: [string, () => string[]][] = [
    [
      'a selector that does not match the template',
      () => {
        const set = sts({ selector: { matchLabels: { app: 'other' } } });
        statefulSetStrategy.defaults?.(set);
        return statefulSetStrategy.validate(set).map(errorMessage);
      },
    ],
    [
      'a StatefulSet pod that does not restart Always',
      () => {
        const set = sts();
        set.spec.template.spec.restartPolicy = 'Never';
        statefulSetStrategy.defaults?.(set);
        return statefulSetStrategy.validate(set).map(errorMessage);
      },
    ],
    [
      'a Job whose pods restart Always',
      () => {
        const job: Job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', uid: 'u' }, spec: { template: { spec: { containers: [{ name: 'c', image: 'i' }] } } } };
        jobStrategy.prepareForCreate?.(job);
        jobStrategy.defaults?.(job);
        return jobStrategy.validate(job).map(errorMessage);
      },
    ],
  ];
  const expected = [
    'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`',
    'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
    'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"',
  ];
  invalid.forEach(([name, run], i) => {
    it(`refuses ${name}`, () => {
      assert.deepEqual(run(), [expected[i]]);
    });
  });

  it('gives a Job a selector on its uid and the job labels on its template', () => {
    const job: Job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', uid: 'u-1' }, spec: { template: { spec: { containers: [{ name: 'c', image: 'i' }], restartPolicy: 'Never' } } } };
    jobStrategy.prepareForCreate?.(job);
    jobStrategy.defaults?.(job);
    assert.deepEqual(job.spec.selector, { matchLabels: { 'batch.kubernetes.io/controller-uid': 'u-1' } });
    assert.equal(job.spec.template.metadata?.labels?.['job-name'], 'j');
    assert.equal(job.spec.completions, 1);
    assert.equal(job.spec.backoffLimit, 6);
    assert.deepEqual(jobStrategy.validate(job), []);
  });
});

describe('planJob', () => {
  const job = (spec: Partial<Job['spec']> = {}, status: Job['status'] = undefined): Job => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'j', namespace: 'default', uid: 'job-uid' },
    spec: { completions: 3, parallelism: 2, backoffLimit: 1, template: { spec: { containers: [{ name: 'c' }], restartPolicy: 'Never' } }, ...spec },
    ...(status ? { status } : {}),
  });
  const pod = (phase: 'Running' | 'Succeeded' | 'Failed', restartCount = 0): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p-${phase}-${Math.random()}` },
    spec: { containers: [] },
    status: { phase, containerStatuses: [{ restartCount }] },
  });
  const NOW = Date.parse('2026-01-01T00:00:10Z');

  it('starts parallelism pods, never more than the completions still missing', () => {
    assert.equal(planJob(job(), [], NOW).create, 2);
    assert.equal(planJob(job(), [pod('Succeeded'), pod('Succeeded')], NOW).create, 1);
    assert.equal(planJob(job(), [pod('Running'), pod('Running')], NOW).create, 0);
  });

  it('completes at `completions` successes with upstream\'s reason, and sets completionTime', () => {
    const plan = planJob(job(), [pod('Succeeded'), pod('Succeeded'), pod('Succeeded')], NOW);
    assert.equal(plan.finished?.condition.type, 'Complete');
    assert.equal(plan.finished?.condition.reason, 'CompletionsReached');
    assert.equal(plan.status.succeeded, 3);
    assert.equal(plan.status.completionTime, '2026-01-01T00:00:10Z');
  });

  it('fails past backoffLimit, counting failed pods (Never) or restarts (OnFailure), and stops what runs', () => {
    const running = pod('Running');
    const never = planJob(job(), [pod('Failed'), pod('Failed'), running], NOW);
    assert.equal(never.finished?.condition.reason, 'BackoffLimitExceeded');
    assert.deepEqual(never.remove, [running]);
    const onFailure = job({ template: { spec: { containers: [{ name: 'c' }], restartPolicy: 'OnFailure' } } });
    assert.equal(planJob(onFailure, [pod('Running', 2)], NOW).finished?.condition.type, 'Failed');
    assert.equal(planJob(onFailure, [pod('Running', 1)], NOW).finished, undefined);
  });

  it('fails once activeDeadlineSeconds have passed since startTime', () => {
    const plan = planJob(job({ activeDeadlineSeconds: 5 }, { startTime: '2026-01-01T00:00:00Z' }), [pod('Running')], NOW);
    assert.equal(plan.finished?.condition.reason, 'DeadlineExceeded');
  });

  it('without completions, is done once one pod succeeded and none runs', () => {
    const plan = planJob(job({ completions: undefined, parallelism: 2 }), [pod('Succeeded')], NOW);
    assert.equal(plan.finished?.condition.type, 'Complete');
  });
});

describe('DaemonSet placement', () => {
  const ds = (nodeSelector?: Record<string, string>): DaemonSet => ({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace: 'default', uid: 'ds-uid' },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'c' }], ...(nodeSelector ? { nodeSelector } : {}) } } },
  });
  const node = (name: string, labels: Record<string, string> = {}, taints: Node['spec'] = {}): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: taints });

  const cases: [string, DaemonSet, Node, boolean][] = [
    ['any node without a selector', ds(), node('a'), true],
    ['a node matching the nodeSelector', ds({ disk: 'ssd' }), node('a', { disk: 'ssd' }), true],
    ['not a node that does not match it', ds({ disk: 'ssd' }), node('a', { disk: 'hdd' }), false],
    ['not a node with an untolerated NoSchedule taint', ds(), node('a', {}, { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] }), false],
    ['an unschedulable node (daemon pods tolerate it)', ds(), node('a', {}, { unschedulable: true, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] }), true],
  ];
  for (const [name, set, n, expected] of cases) {
    it(name, () => assert.equal(shouldRun(set, n), expected));
  }

  it('pins its pod to the node by a metadata.name affinity, as upstream does', () => {
    const pod = newDaemonPod(ds(), 'node-b', 'rev');
    assert.deepEqual(pod.spec.affinity, { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-b'] }] }] } } });
    assert.equal(pod.spec.nodeName, undefined);
    assert.ok(pod.spec.tolerations?.some((t) => t.key === 'node.kubernetes.io/not-ready' && t.effect === 'NoExecute'));
  });
});
