// PodTopologySpread on in-memory clusters: DoNotSchedule constraints filter with kube-scheduler's
// skew rule (maxSkew, minDomains, node inclusion policies, matchLabelKeys, terminating pods and other
// namespaces not counted) and its two reasons; ScheduleAnyway constraints and the system default
// spreading (by the controlling ReplicaSet's or StatefulSet's selector) score.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { PodTopologySpread, type TopologySpreadConstraintSpec } from '../../src/control/scheduler/plugins/pod-topology-spread.js';
import { node } from './scheduler-helpers.js';
import { attempt, fakeContext, HOST, labelled, type Placed, scores, ZONE, zoned } from './scheduler-topology-helpers.js';

const SPREAD = "node(s) didn't match pod topology spread constraints";
const LABEL = "node(s) didn't match pod topology spread constraints (missing required label)";

const spread = (topologyKey: string, maxSkew: number, extra: Partial<TopologySpreadConstraintSpec> = {}): TopologySpreadConstraintSpec => ({
  topologyKey,
  maxSkew,
  whenUnsatisfiable: 'DoNotSchedule',
  labelSelector: { matchLabels: { app: 'web' } },
  ...extra,
});
const web = (name: string, spec: Partial<Pod['spec']> = {}, labels: Record<string, string> = {}) => labelled(name, { app: 'web', ...labels }, spec);
const withSpread = (...c: TopologySpreadConstraintSpec[]) => web('p', { topologySpreadConstraints: c });

// n1, n2 in zone a; n3, n4 in zone b.
const cluster = (on: Record<string, Pod[]> = {}): Placed[] => ['n1', 'n2', 'n3', 'n4'].map((n, i) => ({ node: zoned(n, i < 2 ? 'a' : 'b'), pods: on[n] ?? [] }));

describe('PodTopologySpread: Filter (DoNotSchedule)', () => {
  const cases: { name: string; pod: Pod; on?: Record<string, Pod[]>; nodes?: Placed[]; feasible: string[]; message?: string }[] = [
    { name: 'maxSkew 1 on the hostname: not onto the node already ahead', pod: withSpread(spread(HOST, 1)), on: { n1: [web('w1')] }, feasible: ['n2', 'n3', 'n4'], message: `0/4 nodes are available: 1 ${SPREAD}.` },
    { name: 'maxSkew 1 on the hostname: balanced, every node fits', pod: withSpread(spread(HOST, 1)), on: { n1: [web('w1')], n2: [web('w2')], n3: [web('w3')], n4: [web('w4')] }, feasible: ['n1', 'n2', 'n3', 'n4'] },
    { name: 'maxSkew 2 tolerates one more', pod: withSpread(spread(HOST, 2)), on: { n1: [web('w1'), web('w2')], n2: [web('w3')] }, feasible: ['n2', 'n3', 'n4'] },
    { name: 'maxSkew 1 on the zone: the zone ahead is refused', pod: withSpread(spread(ZONE, 1)), on: { n1: [web('w1')] }, feasible: ['n3', 'n4'], message: `0/4 nodes are available: 2 ${SPREAD}.` },
    { name: 'pods not matching the selector do not count', pod: withSpread(spread(HOST, 1)), on: { n1: [labelled('db', { app: 'db' })] }, feasible: ['n1', 'n2', 'n3', 'n4'] },
    { name: 'pods of another namespace do not count', pod: withSpread(spread(HOST, 1)), on: { n1: [labelled('w', { app: 'web' }, {}, 'team-a')] }, feasible: ['n1', 'n2', 'n3', 'n4'] },
    { name: 'terminating pods do not count', pod: withSpread(spread(HOST, 1)), on: { n1: [labelled('w', { app: 'web' }, {}, 'default', { deletionTimestamp: '2026-01-01T00:00:00Z' })] }, feasible: ['n1', 'n2', 'n3', 'n4'] },
    {
      name: 'an incoming pod outside its own selector adds nothing to its node',
      pod: labelled('p', { app: 'other' }, { topologySpreadConstraints: [spread(HOST, 1)] }),
      on: { n1: [web('w1')] },
      feasible: ['n1', 'n2', 'n3', 'n4'],
    },
    {
      name: 'a node without the topology key: missing required label',
      pod: withSpread(spread(ZONE, 1)),
      nodes: [{ node: zoned('n1', 'a') }, { node: zoned('n2', undefined) }, { node: zoned('n3', 'b'), pods: [web('w1')] }],
      feasible: ['n1'],
      message: `0/3 nodes are available: 1 ${SPREAD}, 1 ${LABEL}.`,
    },
    {
      name: 'minDomains above the domains there are: the global minimum is 0',
      pod: withSpread(spread(ZONE, 1, { minDomains: 3 })),
      on: { n1: [web('w1')], n3: [web('w2')] },
      feasible: [],
      message: `0/4 nodes are available: 4 ${SPREAD}.`,
    },
    { name: 'minDomains met: the usual rule', pod: withSpread(spread(ZONE, 1, { minDomains: 2 })), on: { n1: [web('w1')], n3: [web('w2')] }, feasible: ['n1', 'n2', 'n3', 'n4'] },
    {
      name: 'nodeAffinityPolicy Honor (default): nodes the pod cannot go to are no domain',
      pod: web('p', { nodeSelector: { [ZONE]: 'a' }, topologySpreadConstraints: [spread(ZONE, 1)] }),
      on: { n1: [web('w1')] },
      feasible: ['n1', 'n2', 'n3', 'n4'],
    },
    {
      name: 'nodeAffinityPolicy Ignore: they are',
      pod: web('p', { nodeSelector: { [ZONE]: 'a' }, topologySpreadConstraints: [spread(ZONE, 1, { nodeAffinityPolicy: 'Ignore' })] }),
      on: { n1: [web('w1')] },
      feasible: ['n3', 'n4'],
    },
    {
      name: 'nodeTaintsPolicy Ignore (default): a tainted empty node still holds the minimum down',
      pod: withSpread(spread(HOST, 1)),
      nodes: [{ node: node('n1'), pods: [web('w1')] }, { node: node('n2', { taints: [{ key: 'k', effect: 'NoSchedule' }] }) }],
      feasible: ['n2'],
    },
    {
      name: 'nodeTaintsPolicy Honor: an untolerated tainted node is no domain',
      pod: withSpread(spread(HOST, 1, { nodeTaintsPolicy: 'Honor' })),
      nodes: [{ node: node('n1'), pods: [web('w1')] }, { node: node('n2', { taints: [{ key: 'k', effect: 'NoSchedule' }] }) }],
      feasible: ['n1', 'n2'],
    },
    {
      name: 'matchLabelKeys: only pods of the same revision count',
      pod: web('p', { topologySpreadConstraints: [spread(HOST, 1, { matchLabelKeys: ['pod-template-hash'] })] }, { 'pod-template-hash': 'v2' }),
      on: { n1: [web('old1', {}, { 'pod-template-hash': 'v1' }), web('old2', {}, { 'pod-template-hash': 'v1' })], n2: [web('new', {}, { 'pod-template-hash': 'v2' })] },
      feasible: ['n1', 'n3', 'n4'],
    },
    {
      name: 'every constraint must hold',
      pod: withSpread(spread(ZONE, 1), spread(HOST, 1)),
      on: { n1: [web('w1')], n3: [web('w2')], n4: [web('w3')] },
      feasible: ['n2'],
    },
    { name: 'ScheduleAnyway constraints do not filter', pod: withSpread(spread(HOST, 1, { whenUnsatisfiable: 'ScheduleAnyway' })), on: { n1: [web('w1'), web('w2')] }, feasible: ['n1', 'n2', 'n3', 'n4'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = attempt(new PodTopologySpread(fakeContext()), c.pod, c.nodes ?? cluster(c.on));
      assert.deepEqual(r.feasible, c.feasible);
      if (c.message !== undefined) assert.equal(r.message, c.message);
    });
  }

  it('codes: a missing label cannot be helped by preemption, a skew might', () => {
    const r = attempt(new PodTopologySpread(fakeContext()), withSpread(spread(ZONE, 1)), [{ node: zoned('n1', undefined) }, { node: zoned('n2', 'a'), pods: [web('w1')] }, { node: zoned('n3', 'b') }]);
    assert.equal(r.statuses.get('n1')?.code, 'UnschedulableAndUnresolvable');
    assert.equal(r.statuses.get('n2')?.code, 'Unschedulable');
  });

  it('a pod without DoNotSchedule constraints skips the Filter', () => {
    assert.equal(attempt(new PodTopologySpread(fakeContext()), web('p'), cluster()).preFilter.code, 'Skip');
  });
});

describe('PodTopologySpread: AddPod / RemovePod (for preemption)', () => {
  it('the domain counts and the minimum follow a pod removed from or added to a node', () => {
    const plugin = new PodTopologySpread(fakeContext());
    const pod = withSpread(spread(HOST, 1));
    const w1 = web('w1');
    const r = attempt(plugin, pod, cluster({ n1: [w1] }));
    assert.deepEqual(r.feasible, ['n2', 'n3', 'n4']);
    const fits = () => r.infos.filter((i) => plugin.filter(r.state, pod, i).code === 'Success').map((i) => i.name);
    plugin.removePod(r.state, pod, w1, r.infos[0] as never);
    assert.deepEqual(fits(), ['n1', 'n2', 'n3', 'n4']);
    for (const i of [1, 2, 3]) plugin.addPod(r.state, pod, web(`x${i}`), r.infos[i] as never);
    assert.deepEqual(fits(), ['n1'], 'three domains at 1, the emptied one at 0');
    plugin.addPod(r.state, pod, labelled('other', { app: 'web' }, {}, 'team-a'), r.infos[0] as never);
    assert.deepEqual(fits(), ['n1'], 'a pod of another namespace changes nothing');
  });
});

describe('PodTopologySpread: Score (ScheduleAnyway and the system defaults)', () => {
  const anyway = (key: string, maxSkew: number) => spread(key, maxSkew, { whenUnsatisfiable: 'ScheduleAnyway' });
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-1', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'web' } } } } as KubeObject;
  const owned = (name: string, labels: Record<string, string> = { app: 'web' }) =>
    labelled(name, labels, {}, 'default', { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'u', controller: true }] });
  const plugin = () => new PodTopologySpread(fakeContext({ replicasets: [rs] }));

  it('hostname: fewer matching pods score higher', () => {
    // counts 2, 1, 0, 0 times log(4 + 2) = 1.79 → 4, 2, 0, 0; reversed against the highest.
    assert.deepEqual(scores(plugin(), web('p', { topologySpreadConstraints: [anyway(HOST, 1)] }), cluster({ n1: [web('a'), web('b')], n2: [web('c')] })), { n1: 0, n2: 50, n3: 100, n4: 100 });
  });

  it('zone: the emptier zone scores higher for both its nodes', () => {
    const got = scores(plugin(), web('p', { topologySpreadConstraints: [anyway(ZONE, 1)] }), cluster({ n1: [web('a'), web('b')] }));
    assert.deepEqual(got, { n1: 0, n2: 0, n3: 100, n4: 100 });
  });

  it('explicit constraints: a node without the key is ignored (scores 0)', () => {
    const nodes: Placed[] = [{ node: zoned('n1', 'a'), pods: [web('a')] }, { node: zoned('n2', 'b') }, { node: zoned('n3', undefined) }];
    assert.deepEqual(scores(plugin(), web('p', { topologySpreadConstraints: [anyway(ZONE, 1)] }), nodes), { n1: 0, n2: 100, n3: 0 });
  });

  it("system defaults: the controlling ReplicaSet's pods spread over hostnames", () => {
    // No zone labels: hostname only (maxSkew 3: +2 each), counts 2, 1, 0 times log(3 + 2) = 1.61 → 5, 4, 2;
    // reversed: 100 × (5 + 2 − score) / 5.
    const nodes: Placed[] = [{ node: node('n1'), pods: [owned('a'), owned('b')] }, { node: node('n2'), pods: [owned('c'), labelled('x', { app: 'other' })] }, { node: node('n3') }];
    assert.deepEqual(scores(plugin(), owned('p'), nodes), { n1: 40, n2: 60, n3: 100 });
  });

  it("system defaults: a StatefulSet's pods spread by its selector", () => {
    const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'db' } } } } as KubeObject;
    const member = (name: string) => labelled(name, { app: 'db' }, {}, 'default', { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'u', controller: true }] });
    const nodes: Placed[] = [{ node: node('n1'), pods: [member('db-0')] }, { node: node('n2') }];
    // counts 1, 0 times log(2 + 2) = 1.39, plus 2 → 3, 2; reversed: 100 × (3 + 2 − score) / 3.
    assert.deepEqual(scores(new PodTopologySpread(fakeContext({ statefulsets: [sts] })), member('db-1'), nodes), { n1: 66, n2: 100 });
  });

  it('system defaults: a pod nobody controls, or a controller Stowage does not know, is not spread', () => {
    assert.equal(scores(plugin(), web('p'), cluster({ n1: [web('a')] })), 'Skip');
    const orphan = labelled('p', { app: 'web' }, {}, 'default', { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'gone', uid: 'u', controller: true }] });
    assert.equal(scores(plugin(), orphan, cluster({ n1: [web('a')] })), 'Skip');
  });

  it('no ScheduleAnyway constraint: skipped', () => {
    assert.equal(scores(plugin(), withSpread(spread(HOST, 1)), cluster()), 'Skip');
  });
});
