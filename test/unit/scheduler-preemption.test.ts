// Priority and preemption in the scheduler: the queue takes the highest spec.priority first (then
// the order queued) with the work queue's backoff kept; DefaultPreemption's victim selection
// (remove every lower-priority pod, add back the most important ones that still let the pod fit)
// and its node choice (upstream's criteria in order), table-driven on in-memory objects; and the
// whole flow on the store with the controllers: victims get DisruptionTarget, a graceful delete
// and the Preempted event, the preemptor is nominated and bound once they are gone (not a pod of lower
// priority arriving at that moment), preemptionPolicy Never does not preempt, and the
// FitError carries upstream's "preemption: …" suffix.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Event, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import type { PodDisruptionBudget } from '../../src/control/api/types/policy.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { SUCCESS, type Status, unschedulable } from '../../src/control/scheduler/framework.js';
import type { NodeInfo } from '../../src/control/scheduler/node-info.js';
import { type Candidate, numCandidates, pickOneNodeForPreemption, selectVictimsOnNode, splitByBudgetViolation } from '../../src/control/scheduler/plugins/default-preemption.js';
import { fitShortfalls } from '../../src/control/scheduler/plugins/node-resources-fit.js';
import { podRequests } from '../../src/control/scheduler/resources.js';
import { SchedulingQueue } from '../../src/control/scheduler/scheduling-queue.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, settle, waitFor } from './control-controllers-helpers.js';
import { info, node, podRequesting } from './scheduler-helpers.js';

/** A pod bound to n1 with a priority, a cpu request and a start time (minutes after 10:00). */
function running(name: string, priority: number, cpu: string, startedMin = 0): Pod {
  const p = podRequesting(name, { cpu });
  p.spec.nodeName = 'n1';
  p.spec.priority = priority;
  p.status = { phase: 'Running', startTime: `2026-01-01T10:${String(startedMin).padStart(2, '0')}:00Z` };
  return p;
}

function preemptor(priority: number, cpu: string): Pod {
  const p = podRequesting('preemptor', { cpu });
  p.spec.priority = priority;
  return p;
}

/** NodeResourcesFit's filter alone. */
function fitsCpu(pod: Pod): (n: NodeInfo) => Status {
  return (n) => {
    const short = fitShortfalls(podRequests(pod), n);
    return short.length === 0 ? SUCCESS : unschedulable(...short.map((s) => s.reason));
  };
}

const n1 = node('n1', { allocatable: { cpu: '4', memory: '8Gi', pods: '110' } });

describe('DefaultPreemption: victims on a node', () => {
  const cases: { name: string; pods: Pod[]; pod: Pod; victims?: string[]; status?: { code: string; reasons: string[] } }[] = [
    {
      name: 'equal priorities: the pod started last is the victim, the earlier one reprieved',
      pods: [running('early', 0, '2', 1), running('late', 0, '2', 5)],
      pod: preemptor(100, '2'),
      victims: ['late'],
    },
    {
      name: 'reprieved from the highest priority down: only the lowest goes',
      pods: [running('p10', 10, '1'), running('p5', 5, '1'), running('p1', 1, '2')],
      pod: preemptor(100, '2'),
      victims: ['p1'],
    },
    {
      name: 'as many as needed, most important kept',
      pods: [running('a', 1, '1', 1), running('b', 1, '1', 2), running('c', 1, '1', 3), running('d', 2, '1')],
      pod: preemptor(100, '2'),
      victims: ['b', 'c'],
    },
    {
      name: 'pods of equal or higher priority are never victims',
      pods: [running('same', 100, '2'), running('higher', 200, '2')],
      pod: preemptor(100, '1'),
      status: { code: 'UnschedulableAndUnresolvable', reasons: ['No preemption victims found for incoming pod'] },
    },
    {
      name: 'removing every lower-priority pod is not enough: the filter says why',
      pods: [running('higher', 200, '3'), running('low', 0, '1')],
      pod: preemptor(100, '2'),
      status: { code: 'Unschedulable', reasons: ['Insufficient cpu'] },
    },
    {
      name: 'a pod only assumed on the node (not bound) is no victim',
      pods: [{ ...running('assumed', 0, '4'), spec: { ...running('assumed', 0, '4').spec, nodeName: undefined } } as Pod],
      pod: preemptor(100, '1'),
      status: { code: 'UnschedulableAndUnresolvable', reasons: ['No preemption victims found for incoming pod'] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { victims, status } = selectVictimsOnNode(c.pod, info(n1, c.pods), fitsCpu(c.pod));
      if (c.victims !== undefined) {
        assert.equal(status.code, 'Success');
        assert.deepEqual(
          victims.map((v) => v.metadata.name),
          c.victims,
        );
      } else {
        assert.deepEqual({ code: status.code, reasons: [...status.reasons] }, c.status);
        assert.deepEqual(victims, []);
      }
    });
  }
});

describe('DefaultPreemption: PodDisruptionBudgets', () => {
  const labelled = (name: string, priority: number, app: string, startedMin = 0): Pod => {
    const p = running(name, priority, '2', startedMin);
    p.metadata.labels = { app };
    return p;
  };
  const budget = (app: string, allowed: number, extra: Partial<PodDisruptionBudget['status']> = {}, selector: PodDisruptionBudget['spec'] = { selector: { matchLabels: { app } } }): PodDisruptionBudget => ({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: app, namespace: 'default' },
    spec: selector,
    status: { disruptionsAllowed: allowed, ...extra },
  });
  const cases: { name: string; pods: Pod[]; pdbs: PodDisruptionBudget[]; victims: string[]; violations: number }[] = [
    {
      // Without budgets the later-started "guarded" would go (the earlier one is more important).
      name: 'a pod whose budget allows no disruption is reprieved before one without a budget',
      pods: [labelled('guarded', 1, 'db', 5), labelled('free', 1, 'web', 1)],
      pdbs: [budget('db', 0)],
      victims: ['free'],
      violations: 0,
    },
    {
      name: 'a budget allowing one disruption: the first of its pods is no violation, the second is',
      pods: [labelled('db-1', 1, 'db', 1), labelled('db-2', 1, 'db', 2)],
      pdbs: [budget('db', 1)],
      victims: ['db-1', 'db-2'],
      violations: 1,
    },
    {
      name: 'a pod already in the budget’s disruptedPods is not counted against it',
      pods: [labelled('db-1', 1, 'db', 1), labelled('db-2', 1, 'db', 2)],
      pdbs: [budget('db', 0, { disruptedPods: { 'db-1': '2026-01-01T10:00:00Z' } })],
      victims: ['db-1', 'db-2'],
      violations: 1,
    },
    {
      name: 'a budget with an empty selector protects nothing (kube-scheduler)',
      pods: [labelled('db-1', 1, 'db', 1), labelled('db-2', 1, 'db', 2)],
      pdbs: [budget('db', 0, {}, { selector: {} })],
      victims: ['db-1', 'db-2'],
      violations: 0,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const pod = preemptor(100, c.victims.length === 1 ? '2' : '4');
      const r = selectVictimsOnNode(pod, info(n1, c.pods), fitsCpu(pod), c.pdbs);
      assert.equal(r.status.code, 'Success');
      assert.deepEqual(r.victims.map((v) => v.metadata.name).sort(), [...c.victims].sort());
      assert.equal(r.numPDBViolations, c.violations);
    });
  }

  it('lists victims most important first even when a budget put a lower one first, and the node is picked by the highest', () => {
    // n1: a guarded pod of priority 1 (its budget allows none) and a free one of priority 5 must both go.
    const onN1 = [labelled('guarded', 1, 'db', 1), labelled('free', 5, 'web', 2)];
    const pod = preemptor(100, '4');
    const r = selectVictimsOnNode(pod, info(n1, onN1), fitsCpu(pod), [budget('db', 0)]);
    assert.deepEqual(r.victims.map((v) => v.metadata.name), ['free', 'guarded']);
    assert.equal(r.numPDBViolations, 1);
    // n2: one guarded victim of priority 3. Both violate one budget; n2's highest victim is lower.
    const onN2 = { ...labelled('other', 3, 'db', 1), spec: { ...labelled('other', 3, 'db', 1).spec, nodeName: 'n2' } };
    const candidates: Candidate[] = [
      { node: 'n1', victims: r.victims, numPDBViolations: r.numPDBViolations },
      { node: 'n2', victims: [onN2], numPDBViolations: 1 },
    ];
    assert.equal(pickOneNodeForPreemption(candidates)?.node, 'n2');
  });

  it('splits pods by violation in their order, each budget counted down once per pod', () => {
    const pods = [labelled('a', 1, 'db'), labelled('b', 1, 'db'), labelled('c', 1, 'db'), labelled('w', 1, 'web')];
    const { violating, nonViolating } = splitByBudgetViolation(pods, [budget('db', 1)]);
    assert.deepEqual(violating.map((p) => p.metadata.name), ['b', 'c']);
    assert.deepEqual(nonViolating.map((p) => p.metadata.name), ['a', 'w']);
  });
});

describe('DefaultPreemption: the node', () => {
  const v = (name: string, priority: number, startedMin = 0): Pod => running(name, priority, '1', startedMin);
  const cases: { name: string; candidates: Candidate[]; want: string }[] = [
    {
      name: 'fewest PodDisruptionBudget violations first',
      candidates: [
        { node: 'a', victims: [v('x', 1)], numPDBViolations: 1 },
        { node: 'b', victims: [v('y', 5), v('z', 5)], numPDBViolations: 0 },
      ],
      want: 'b',
    },
    {
      name: 'then the lowest highest-priority victim',
      candidates: [
        { node: 'a', victims: [v('x', 10)], numPDBViolations: 0 },
        { node: 'b', victims: [v('y', 5), v('z', 5), v('w', 5)], numPDBViolations: 0 },
      ],
      want: 'b',
    },
    {
      name: 'then the smallest sum of priorities',
      candidates: [
        { node: 'a', victims: [v('x', 5), v('x2', 4)], numPDBViolations: 0 },
        { node: 'b', victims: [v('y', 5), v('y2', 1)], numPDBViolations: 0 },
      ],
      want: 'b',
    },
    {
      name: 'negative priorities: fewer victims is still the smaller sum',
      candidates: [
        { node: 'a', victims: [v('x', -5), v('x2', -5)], numPDBViolations: 0 },
        { node: 'b', victims: [v('y', -5)], numPDBViolations: 0 },
      ],
      want: 'b',
    },
    {
      name: 'then the latest start among the highest-priority victims',
      candidates: [
        { node: 'a', victims: [v('x', 5, 1)], numPDBViolations: 0 },
        { node: 'b', victims: [v('y', 5, 9)], numPDBViolations: 0 },
        { node: 'c', victims: [v('z', 5, 3)], numPDBViolations: 0 },
      ],
      want: 'b',
    },
    {
      name: 'a full tie: the first candidate',
      candidates: [
        { node: 'a', victims: [v('x', 5, 1)], numPDBViolations: 0 },
        { node: 'b', victims: [v('y', 5, 1)], numPDBViolations: 0 },
      ],
      want: 'a',
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(pickOneNodeForPreemption(c.candidates)?.node, c.want));

  it('looks for 10% of the potential nodes as candidates, at least 100', () => {
    assert.deepEqual([3, 100, 1000, 5000].map(numCandidates), [3, 100, 100, 500]);
  });
});

describe('scheduling queue: PrioritySort', () => {
  it('hands out the highest priority first, then in the order queued; duplicates once', async () => {
    const priorities: Record<string, number> = { a: 0, b: 10, c: 0, d: 1000, e: 10, f: -5 };
    const q = new SchedulingQueue((k) => priorities[k] ?? 0);
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f', 'a', 'd']) q.add(k);
    assert.equal(q.length, 6);
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const k = (await q.get()) as string;
      order.push(k);
      q.done(k);
    }
    assert.deepEqual(order, ['d', 'b', 'e', 'a', 'c', 'f']);
    q.shutDown();
  });

  it('keeps the work queue\'s backoff: a retried pod waits, then goes before lower priorities', async () => {
    const priorities: Record<string, number> = { high: 100, low: 0 };
    const q = new SchedulingQueue((k) => priorities[k] ?? 0, { baseDelayMs: 40 });
    q.add('low');
    assert.equal(q.addRateLimited('high'), 40);
    assert.equal(q.length, 1, 'high waits out its backoff');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'high');
    q.shutDown();
  });
});

for (const thread of [false, true]) {
  describe(`preemption through the store and the controllers${thread ? ' (scheduler on its own thread)' : ''}`, () => {
    let store: Store;
    let ctl: Controllers;

    beforeEach(() => {
      store = open(':memory:');
      store.create(node('n1', { allocatable: { cpu: '4', memory: '8Gi', pods: '110' } }));
      ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, maxDelayMs: 200, schedulerThread: thread });
    });

    afterEach(async () => {
      await ctl.stop();
      store.close();
    });

    const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
    const events = (name: string): Event[] => store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items;
    /** A pod of that priority as a user makes one: through a PriorityClass (admission sets spec.priority and preemptionPolicy). */
    const create = (name: string, priority: number, cpu: string, extra: Partial<Pod['spec']> = {}): Pod => {
      const p = podRequesting(name, { cpu });
      const policy = extra.preemptionPolicy ?? 'PreemptLowerPriority';
      const { preemptionPolicy: _policy, ...rest } = extra;
      p.spec = { ...p.spec, ...rest };
      if (priority !== 0) {
        const className = `p${priority}-${policy.toLowerCase()}`;
        if (store.get('priorityclasses', undefined, className) === undefined) {
          store.create({ apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: className }, value: priority, preemptionPolicy: policy } as unknown as KubeObject);
        }
        p.spec.priorityClassName = className;
      }
      const created = store.create(p) as Pod;
      assert.equal(created.spec.priority, priority);
      assert.equal(created.spec.preemptionPolicy, policy);
      return created;
    };
    /** What the node agent does once a deleted pod's containers stopped. */
    const finishDeletion = (name: string): void => {
      store.delete('pods', 'default', name, { gracePeriodSeconds: 0 });
    };

    it('evicts the fewest lower-priority pods, nominates the node, binds when they are gone, keeps the room from lower priorities', async () => {
      create('low-1', 0, '2');
      await waitFor(() => getPod('low-1')?.spec.nodeName, 'low-1 bound');
      create('low-2', 0, '2');
      await waitFor(() => getPod('low-2')?.spec.nodeName, 'low-2 bound');
      const high = create('high', 1000, '2');

      const nominated = await waitFor(() => (getPod('high')?.status?.nominatedNodeName ? getPod('high') : undefined), 'high nominated');
      assert.equal(nominated.status?.nominatedNodeName, 'n1');
      assert.equal(nominated.spec.nodeName, undefined);
      const cond = nominated.status?.conditions?.find((c) => c.type === 'PodScheduled');
      assert.equal(cond?.message, '0/1 nodes are available: 1 Insufficient cpu.');
      // One victim of the two equal pods (neither reports a start time, so either may go).
      const victims = ['low-1', 'low-2'].filter((n) => getPod(n)?.metadata.deletionTimestamp);
      assert.equal(victims.length, 1, `one victim, got ${victims}`);
      const victim = victims[0] as string;
      const disruption = getPod(victim)?.status?.conditions?.find((c) => c.type === 'DisruptionTarget');
      assert.deepEqual(
        { status: disruption?.status, reason: disruption?.reason, message: disruption?.message },
        { status: 'True', reason: 'PreemptionByScheduler', message: 'default-scheduler: preempting to accommodate a higher priority pod' },
      );
      await settle(() => ctl.idle());
      const preempted = events(victim).find((e) => e.reason === 'Preempted');
      assert.equal(preempted?.type, 'Normal');
      assert.equal(preempted?.message, `Preempted by pod ${high.metadata.uid} on node n1`);

      // The victim goes and, in the same moment, a pod of lower priority arrives that would fit in its
      // room: the preemptor gets the room (it is counted on its nominated node and goes first).
      const survivor = victim === 'low-1' ? 'low-2' : 'low-1';
      create('late', 0, '2');
      finishDeletion(victim);
      const bound = await waitFor(() => getPod('high')?.spec.nodeName, 'high bound');
      assert.equal(bound, 'n1');
      const lateCond = await waitFor(() => getPod('late')?.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False'), 'late refused');
      assert.equal(lateCond.message, '0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.');
      await settle(() => ctl.idle());
      assert.equal(getPod('late')?.spec.nodeName, undefined);
      assert.equal(getPod(survivor)?.metadata.deletionTimestamp, undefined, 'no second victim');
    });

    it("a victim's own zone anti-affinity is taken away in the dry run (the plugins' RemovePod)", async () => {
      const n1 = store.get('nodes', undefined, 'n1') as KubeObject;
      store.update({ ...n1, metadata: { ...n1.metadata, labels: { ...n1.metadata.labels, 'topology.kubernetes.io/zone': 'z1' } } });
      // A low-priority pod that keeps every app=hi pod out of its zone: only its removal lets one in,
      // which the dry run sees only if InterPodAffinity's counts forget it.
      create('guard', 0, '1', {
        affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'hi' } }, topologyKey: 'topology.kubernetes.io/zone' }] } },
      });
      await waitFor(() => getPod('guard')?.spec.nodeName, 'guard bound');
      const hi = podRequesting('hi', { cpu: '1' });
      hi.metadata.labels = { app: 'hi' };
      store.create({ apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: 'hi' }, value: 1000 } as unknown as KubeObject);
      hi.spec.priorityClassName = 'hi';
      store.create(hi);
      const nominated = await waitFor(() => getPod('hi')?.status?.nominatedNodeName, 'hi nominated');
      assert.equal(nominated, 'n1');
      const cond = getPod('hi')?.status?.conditions?.find((c) => c.type === 'PodScheduled');
      assert.equal(cond?.message, "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.");
      assert.ok(getPod('guard')?.metadata.deletionTimestamp, 'the guard is the victim');
      finishDeletion('guard');
      assert.equal(await waitFor(() => getPod('hi')?.spec.nodeName, 'hi bound'), 'n1');
    });

    it('preemptionPolicy Never waits without evicting; equal priorities find no victims', async () => {
      create('low', 0, '4');
      await waitFor(() => getPod('low')?.spec.nodeName, 'low bound');
      create('polite', 1000, '1', { preemptionPolicy: 'Never' });
      create('peer', 0, '1');
      const polite = await waitFor(() => getPod('polite')?.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False'), 'polite refused');
      assert.equal(polite.message, '0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.');
      const peer = await waitFor(() => getPod('peer')?.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False'), 'peer refused');
      assert.equal(peer.message, '0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.');
      await settle(() => ctl.idle());
      assert.equal(getPod('low')?.metadata.deletionTimestamp, undefined);
      assert.equal(getPod('polite')?.status?.nominatedNodeName, undefined);
    });
  });
}
