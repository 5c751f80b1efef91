// InterPodAffinity on in-memory clusters: required affinity and anti-affinity of the incoming pod
// and of placed pods, on hostname and zone domains, namespaces / namespaceSelector / matchLabelKeys,
// the first pod of a self-affine group, with kube-scheduler's reasons, codes and the FitError text
// the scheduler writes; then preferred terms scoring.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import { NodeInfo } from '../../src/control/scheduler/node-info.js';
import { InterPodAffinity } from '../../src/control/scheduler/plugins/inter-pod-affinity.js';
import { attempt, fakeContext, HOST, labelled, namespace, type Placed, scores, ZONE, zoned } from './scheduler-topology-helpers.js';

type Term = { labelSelector?: object; topologyKey: string; namespaces?: string[]; namespaceSelector?: object; matchLabelKeys?: string[] };
const sel = (labels: Record<string, string>) => ({ matchLabels: labels });
const term = (labels: Record<string, string>, topologyKey: string, extra: Partial<Term> = {}): Term => ({ labelSelector: sel(labels), topologyKey, ...extra });
const affinity = (...terms: Term[]) => ({ affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms } } });
const anti = (...terms: Term[]) => ({ affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms } } });

const A = "node(s) didn't match pod affinity rules";
const ANTI = "node(s) didn't match pod anti-affinity rules";
const EXISTING = "node(s) didn't satisfy existing pods anti-affinity rules";

// n1, n2 in zone a; n3 in zone b.
const cluster = (on: Record<string, Pod[]> = {}): Placed[] => [
  { node: zoned('n1', 'a'), pods: on['n1'] ?? [] },
  { node: zoned('n2', 'a'), pods: on['n2'] ?? [] },
  { node: zoned('n3', 'b'), pods: on['n3'] ?? [] },
];

const plugin = (objects = {}) => new InterPodAffinity(fakeContext({ namespaces: [namespace('default'), namespace('team-a', { team: 'a' }), namespace('team-b', { team: 'b' })], ...objects }));

describe('InterPodAffinity: Filter', () => {
  const db = labelled('db', { app: 'db' });
  const web = labelled('web', { app: 'web' });
  const cases: { name: string; pod: Pod; on?: Record<string, Pod[]>; feasible: string[]; message?: string; codes?: Record<string, string> }[] = [
    { name: 'no terms, no placed anti-affinity: skipped, every node fits', pod: labelled('p', { app: 'x' }), on: { n1: [db] }, feasible: ['n1', 'n2', 'n3'] },
    {
      name: 'anti-affinity on the hostname: only nodes without a matching pod',
      pod: labelled('p', { app: 'web' }, anti(term({ app: 'web' }, HOST))),
      on: { n1: [web] },
      feasible: ['n2', 'n3'],
      codes: { n1: 'Unschedulable' },
      message: `0/3 nodes are available: 1 ${ANTI}.`,
    },
    {
      name: 'anti-affinity on the zone: every node of the zone is refused',
      pod: labelled('p', { app: 'web' }, anti(term({ app: 'web' }, ZONE))),
      on: { n1: [web] },
      feasible: ['n3'],
    },
    {
      name: 'anti-affinity: a pod of another namespace with the same labels does not count',
      pod: labelled('p', { app: 'web' }, anti(term({ app: 'web' }, HOST))),
      on: { n1: [labelled('other', { app: 'web' }, {}, 'team-a')] },
      feasible: ['n1', 'n2', 'n3'],
    },
    {
      name: 'anti-affinity: listed namespaces',
      pod: labelled('p', { app: 'web' }, anti(term({ app: 'web' }, HOST, { namespaces: ['team-a'] }))),
      on: { n1: [labelled('other', { app: 'web' }, {}, 'team-a')], n2: [web] },
      feasible: ['n2', 'n3'],
    },
    {
      name: 'anti-affinity: namespaceSelector by namespace labels',
      pod: labelled('p', { app: 'web' }, anti(term({ app: 'web' }, HOST, { namespaceSelector: sel({ team: 'b' }) }))),
      on: { n1: [labelled('a', { app: 'web' }, {}, 'team-a')], n2: [labelled('b', { app: 'web' }, {}, 'team-b')] },
      feasible: ['n1', 'n3'],
    },
    {
      name: 'anti-affinity: an empty namespaceSelector is every namespace',
      pod: labelled('p', { app: 'web' }, anti(term({ app: 'web' }, ZONE, { namespaceSelector: {} }))),
      on: { n3: [labelled('b', { app: 'web' }, {}, 'team-b')] },
      feasible: ['n1', 'n2'],
    },
    {
      name: 'anti-affinity without a labelSelector selects no pod',
      pod: labelled('p', { app: 'web' }, anti({ topologyKey: HOST })),
      on: { n1: [web] },
      feasible: ['n1', 'n2', 'n3'],
    },
    {
      name: 'anti-affinity with matchLabelKeys: only pods of the same version',
      pod: labelled('p', { app: 'web', version: 'v2' }, anti(term({ app: 'web' }, HOST, { matchLabelKeys: ['version'] }))),
      on: { n1: [labelled('old', { app: 'web', version: 'v1' })], n2: [labelled('new', { app: 'web', version: 'v2' })] },
      feasible: ['n1', 'n3'],
    },
    {
      name: 'affinity on the zone: nodes of the zone holding a match',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'db' }, ZONE))),
      on: { n1: [db] },
      feasible: ['n1', 'n2'],
      codes: { n3: 'UnschedulableAndUnresolvable' },
      message: `0/3 nodes are available: 1 ${A}.`,
    },
    {
      name: 'affinity on the hostname: the node holding a match',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'db' }, HOST))),
      on: { n2: [db] },
      feasible: ['n2'],
      message: `0/3 nodes are available: 2 ${A}.`,
    },
    {
      name: 'affinity: one pod must match every term',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'db' }, ZONE), term({ tier: 'cache' }, ZONE))),
      on: { n1: [db], n2: [labelled('cache', { tier: 'cache' })] },
      feasible: [],
    },
    {
      name: 'affinity to its own group: the first pod goes anywhere',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'web' }, ZONE))),
      feasible: ['n1', 'n2', 'n3'],
    },
    {
      name: 'affinity to its own group on the hostname: the first pod goes anywhere',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'web' }, HOST))),
      feasible: ['n1', 'n2', 'n3'],
    },
    {
      name: 'affinity to its own group: later pods follow the first',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'web' }, ZONE))),
      on: { n3: [web] },
      feasible: ['n3'],
    },
    {
      name: 'affinity to pods that do not exist (and not to itself): nowhere',
      pod: labelled('p', { app: 'web' }, affinity(term({ app: 'db' }, ZONE))),
      feasible: [],
      message: `0/3 nodes are available: 3 ${A}.`,
    },
    {
      name: "placed pods' anti-affinity on the hostname refuses their node",
      pod: labelled('p', { app: 'web' }),
      on: { n1: [labelled('lonely', { app: 'db' }, anti(term({ app: 'web' }, HOST)))] },
      feasible: ['n2', 'n3'],
      codes: { n1: 'Unschedulable' },
      message: `0/3 nodes are available: 1 ${EXISTING}.`,
    },
    {
      name: "placed pods' anti-affinity on the zone refuses the zone",
      pod: labelled('p', { app: 'web' }),
      on: { n3: [labelled('lonely', { app: 'db' }, anti(term({ app: 'web' }, ZONE)))] },
      feasible: ['n1', 'n2'],
    },
    {
      name: "placed pods' anti-affinity by namespaceSelector: matched against the incoming pod's namespace",
      pod: labelled('p', { app: 'web' }, {}, 'team-a'),
      on: { n1: [labelled('lonely', { app: 'db' }, anti(term({ app: 'web' }, HOST, { namespaceSelector: sel({ team: 'a' }) })))], n2: [labelled('other', { app: 'db' }, anti(term({ app: 'web' }, HOST, { namespaceSelector: sel({ team: 'b' }) })))] },
      feasible: ['n2', 'n3'],
    },
    {
      name: 'each node counted under its first failing check',
      pod: labelled('p', { app: 'web' }, { affinity: { ...affinity(term({ app: 'db' }, ZONE)).affinity, ...anti(term({ app: 'web' }, HOST)).affinity } }),
      on: { n1: [db, web], n2: [labelled('lonely', { app: 'x' }, anti(term({ app: 'web' }, HOST)))] },
      feasible: [],
      message: `0/3 nodes are available: 1 ${A}, 1 ${ANTI}, 1 ${EXISTING}.`,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = attempt(plugin(), c.pod, cluster(c.on));
      assert.deepEqual(r.feasible, c.feasible);
      if (c.message !== undefined) assert.equal(r.message, c.message);
      for (const [n, code] of Object.entries(c.codes ?? {})) assert.equal(r.statuses.get(n)?.code, code);
    });
  }

  it('a pod without terms skips the plugin unless a placed pod has required anti-affinity', () => {
    assert.equal(attempt(plugin(), labelled('p', {}), cluster({ n1: [labelled('db', { app: 'db' })] })).preFilter.code, 'Skip');
    assert.equal(attempt(plugin(), labelled('p', {}), cluster({ n1: [labelled('db', { app: 'db' }, anti(term({ app: 'x' }, HOST)))] })).preFilter.code, 'Success');
  });

  it('malformed fields (our API server stores affinity as given) are ignored instead of failing the attempt', () => {
    // The anti-affinity list is no list: no terms. The affinity term's expressions are no list: a selector of every pod.
    const odd = labelled('p', { app: 'web' }, { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: 'web' }, podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchExpressions: 'x' }, topologyKey: HOST }] } } });
    assert.deepEqual(attempt(plugin(), odd, cluster({ n1: [labelled('web', { app: 'web' })] })).feasible, ['n1']);
  });

  it('three replicas with anti-affinity to each other fill three nodes; the fourth fits nowhere', () => {
    const replica = (i: number) => labelled(`r${i}`, { app: 'web' }, anti(term({ app: 'web' }, HOST)));
    const r = attempt(plugin(), replica(4), cluster({ n1: [replica(1)], n2: [replica(2)], n3: [replica(3)] }));
    assert.equal(r.message, `0/3 nodes are available: 3 ${ANTI}.`);
    assert.ok([...r.statuses.values()].every((s) => s.code === 'Unschedulable'), 'preemption might help: Unschedulable, not Unresolvable');
  });
});

describe('InterPodAffinity: AddPod / RemovePod (for preemption)', () => {
  it('the counts follow a pod removed from or added to a node, without touching the state they were copied from', () => {
    const web = labelled('web', { app: 'web' });
    const lonely = labelled('lonely', { app: 'db' }, anti(term({ app: 'x' }, ZONE)));
    const pod = labelled('p', { app: 'x' }, anti(term({ app: 'web' }, ZONE)));
    const p = plugin();
    const r = attempt(p, pod, cluster({ n1: [web], n3: [lonely] }));
    assert.deepEqual(r.feasible, []);
    const [n1, , n3] = r.infos;
    const before = r.state.read('PreFilterInterPodAffinity');
    p.removePod(r.state, pod, web, n1 as never);
    p.removePod(r.state, pod, lonely, n3 as never);
    assert.deepEqual(r.infos.filter((i) => p.filter(r.state, pod, i).code === 'Success').map((i) => i.name), ['n1', 'n2', 'n3']);
    p.addPod(r.state, pod, web, n3 as never);
    assert.deepEqual(r.infos.map((i) => p.filter(r.state, pod, i).reasons[0] ?? 'fits'), ['fits', 'fits', ANTI]);
    r.state.write('PreFilterInterPodAffinity', before);
    assert.deepEqual(r.infos.map((i) => p.filter(r.state, pod, i).reasons[0] ?? 'fits'), [ANTI, ANTI, EXISTING]);
  });
});

describe('InterPodAffinity: RemovePod with hostname affinity (for preemption)', () => {
  it('a self-affine pod is no first of its group while one matching pod is left anywhere', () => {
    const db1 = labelled('db-1', { app: 'db' });
    const db2 = labelled('db-2', { app: 'db' });
    const pod = labelled('p', { app: 'db' }, affinity(term({ app: 'db' }, HOST)));
    const p = plugin();
    const r = attempt(p, pod, cluster({ n1: [db1], n2: [db2] }));
    assert.deepEqual(r.feasible, ['n1', 'n2']);
    const [, n2, n3] = r.infos as [NodeInfo, NodeInfo, NodeInfo];
    const without1 = new NodeInfo((r.infos[0] as NodeInfo).node, []);
    p.removePod(r.state, pod, db1, without1 as never);
    // db-2 is still on n2: only n2 takes the pod.
    const fits = (infos: NodeInfo[]): string[] => infos.filter((i) => p.filter(r.state, pod, i).code === 'Success').map((i) => i.name);
    assert.deepEqual(fits([without1, n2, n3]), ['n2']);
    const without2 = new NodeInfo((r.infos[1] as NodeInfo).node, []);
    p.removePod(r.state, pod, db2, without2 as never);
    // None left: the pod is the first of its group, and goes anywhere.
    assert.deepEqual(fits([without1, without2, n3]), ['n1', 'n2', 'n3']);
  });
});

describe('InterPodAffinity: Score', () => {
  const preferred = (kind: 'podAffinity' | 'podAntiAffinity', weight: number, t: Term) => ({ affinity: { [kind]: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight, podAffinityTerm: t }] } } });
  const db = labelled('db', { app: 'db' });
  const cases: { name: string; pod: Pod; on?: Record<string, Pod[]>; want: Record<string, number> | 'Skip' }[] = [
    { name: 'no preferred terms anywhere: skipped', pod: labelled('p', { app: 'web' }), on: { n1: [db] }, want: 'Skip' },
    { name: 'preferred affinity to the zone of a match', pod: labelled('p', {}, preferred('podAffinity', 10, term({ app: 'db' }, ZONE))), on: { n1: [db] }, want: { n1: 100, n2: 100, n3: 0 } },
    { name: 'preferred anti-affinity away from the node of a match', pod: labelled('p', {}, preferred('podAntiAffinity', 10, term({ app: 'db' }, HOST))), on: { n2: [db] }, want: { n1: 100, n2: 0, n3: 100 } },
    {
      name: "weights add up over a node's domains; pods of other namespaces do not count",
      pod: labelled('p', {}, { affinity: { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 20, podAffinityTerm: term({ app: 'db' }, ZONE) }, { weight: 60, podAffinityTerm: term({ app: 'db' }, HOST) }] } } }),
      on: { n1: [db], n3: [labelled('db2', { app: 'db' }, {}, 'team-a')] },
      want: { n1: 100, n2: 25, n3: 0 },
    },
    { name: "a placed pod's preferred affinity draws a matching pod", pod: labelled('p', { app: 'web' }), on: { n3: [labelled('cache', { app: 'cache' }, preferred('podAffinity', 5, term({ app: 'web' }, HOST)))] }, want: { n1: 0, n2: 0, n3: 100 } },
    { name: "a placed pod's preferred anti-affinity pushes a matching pod away", pod: labelled('p', { app: 'web' }), on: { n1: [labelled('cache', { app: 'cache' }, preferred('podAntiAffinity', 5, term({ app: 'web' }, ZONE)))] }, want: { n1: 0, n2: 0, n3: 100 } },
    { name: "a placed pod's required affinity counts with hardPodAffinityWeight 1", pod: labelled('p', { app: 'web' }), on: { n2: [labelled('cache', { app: 'cache' }, affinity(term({ app: 'web' }, HOST)))] }, want: { n1: 0, n2: 100, n3: 0 } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(scores(plugin(), c.pod, cluster(c.on)), c.want));
});
