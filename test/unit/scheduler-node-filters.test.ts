// The node-level plugins on in-memory nodes, with kube-scheduler's reasons: NodeUnschedulable,
// NodeName, TaintToleration (NoSchedule / NoExecute filter, PreferNoSchedule score), NodeAffinity
// (nodeSelector and required terms filter, preferred terms score) and NodePorts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod, Taint, Toleration } from '../../src/control/api/types/core.js';
import { CycleState, type NodeScore } from '../../src/control/scheduler/framework.js';
import { NodeAffinity } from '../../src/control/scheduler/plugins/node-affinity.js';
import { NodeName } from '../../src/control/scheduler/plugins/node-name.js';
import { NodePorts } from '../../src/control/scheduler/plugins/node-ports.js';
import { NodeUnschedulable } from '../../src/control/scheduler/plugins/node-unschedulable.js';
import { TaintToleration } from '../../src/control/scheduler/plugins/taint-toleration.js';
import { ctr, info, node, podOf } from './scheduler-helpers.js';

const plain = (spec: Partial<Pod['spec']> = {}): Pod => podOf('p', [ctr('c')], spec);

describe('NodeUnschedulable and NodeName', () => {
  const cases = [
    { name: 'a schedulable node', pod: plain(), node: node('n'), reasons: [] },
    { name: 'a cordoned node', pod: plain(), node: node('n', { unschedulable: true }), reasons: ['node(s) were unschedulable'] },
    {
      name: 'a cordoned node, tolerated',
      pod: plain({ tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] }),
      node: node('n', { unschedulable: true }),
      reasons: [],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(new NodeUnschedulable().filter(undefined, c.pod, info(c.node)).reasons, c.reasons));

  it('NodeName: only the node the pod names', () => {
    const p = plain({ nodeName: 'a' });
    assert.equal(new NodeName().filter(undefined, p, info(node('a'))).code, 'Success');
    assert.deepEqual(new NodeName().filter(undefined, p, info(node('b'))).reasons, ["node(s) didn't match the requested node name"]);
  });
});

describe('TaintToleration', () => {
  const taint = (key: string, effect: Taint['effect'], value?: string): Taint => ({ key, effect, ...(value === undefined ? {} : { value }) });
  const cases: { name: string; taints: Taint[]; tolerations?: Toleration[]; reasons: string[] }[] = [
    { name: 'no taints', taints: [], reasons: [] },
    { name: 'NoSchedule, not tolerated', taints: [taint('dedicated', 'NoSchedule', 'db')], reasons: ['node(s) had untolerated taint {dedicated: db}'] },
    { name: 'NoExecute, not tolerated', taints: [taint('node.kubernetes.io/not-ready', 'NoExecute')], reasons: ['node(s) had untolerated taint {node.kubernetes.io/not-ready: }'] },
    { name: 'tolerated by Equal', taints: [taint('dedicated', 'NoSchedule', 'db')], tolerations: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }], reasons: [] },
    { name: 'Equal with another value', taints: [taint('dedicated', 'NoSchedule', 'db')], tolerations: [{ key: 'dedicated', value: 'web' }], reasons: ['node(s) had untolerated taint {dedicated: db}'] },
    { name: 'tolerated by Exists without a key', taints: [taint('a', 'NoSchedule'), taint('b', 'NoExecute')], tolerations: [{ operator: 'Exists' }], reasons: [] },
    { name: 'PreferNoSchedule never filters', taints: [taint('soft', 'PreferNoSchedule')], reasons: [] },
  ];
  for (const c of cases) {
    it(`filter: ${c.name}`, () => {
      const s = new TaintToleration().filter(new CycleState(), plain(c.tolerations ? { tolerations: c.tolerations } : {}), info(node('n', { taints: c.taints })));
      assert.deepEqual(s.reasons, c.reasons);
      if (c.reasons.length > 0) assert.equal(s.code, 'UnschedulableAndUnresolvable');
    });
  }

  it('score: fewer untolerated PreferNoSchedule taints score higher (normalized in reverse)', () => {
    const plugin = new TaintToleration();
    const soft = (k: string): Taint => taint(k, 'PreferNoSchedule');
    const nodes = [node('none'), node('one', { taints: [soft('a')] }), node('two', { taints: [soft('a'), soft('b')] }), node('tolerated', { taints: [soft('b')] })];
    const p = plain({ tolerations: [{ key: 'b', operator: 'Exists', effect: 'PreferNoSchedule' }] });
    const scores: NodeScore[] = nodes.map((n) => ({ name: n.metadata.name ?? '', score: plugin.score(new CycleState(), p, info(n)) }));
    assert.deepEqual(scores.map((s) => s.score), [0, 1, 1, 0]);
    plugin.normalizeScore(new CycleState(), p, scores);
    assert.deepEqual(scores.map((s) => s.score), [100, 0, 0, 100]);
  });
});

describe('NodeAffinity', () => {
  const ssd = node('ssd', { labels: { disk: 'ssd', zone: 'a' } });
  const hdd = node('hdd', { labels: { disk: 'hdd', zone: 'b' } });
  const required = (values: string[]) => ({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'disk', operator: 'In', values }] }] } } });
  const cases = [
    { name: 'nodeSelector matches', pod: plain({ nodeSelector: { disk: 'ssd' } }), node: ssd, ok: true },
    { name: 'nodeSelector does not match', pod: plain({ nodeSelector: { disk: 'ssd' } }), node: hdd, ok: false },
    { name: 'required term matches', pod: plain({ affinity: required(['hdd', 'nvme']) }), node: hdd, ok: true },
    { name: 'required term does not match', pod: plain({ affinity: required(['nvme']) }), node: hdd, ok: false },
    { name: 'both must hold', pod: plain({ nodeSelector: { zone: 'a' }, affinity: required(['hdd']) }), node: hdd, ok: false },
  ];
  for (const c of cases) {
    it(`filter: ${c.name}`, () => {
      const s = new NodeAffinity().filter(new CycleState(), c.pod, info(c.node));
      assert.deepEqual(s.reasons, c.ok ? [] : ["node(s) didn't match Pod's node affinity/selector"]);
    });
  }

  it('score: the weights of the preferred terms a node matches, scaled to the best node', () => {
    const plugin = new NodeAffinity();
    const p = plain({
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 80, preference: { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] } },
            { weight: 20, preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] } },
          ],
        },
      },
    });
    const state = new CycleState();
    assert.equal(plugin.preScore(state, p).code, 'Success');
    const third = node('third', { labels: { disk: 'ssd', zone: 'b' } });
    const scores: NodeScore[] = [ssd, hdd, third].map((n) => ({ name: n.metadata.name ?? '', score: plugin.score(state, p, info(n)) }));
    assert.deepEqual(scores.map((s) => s.score), [80, 20, 100]);
    plugin.normalizeScore(state, p, scores);
    assert.deepEqual(scores.map((s) => s.score), [80, 20, 100]);
    assert.equal(plugin.preScore(new CycleState(), plain()).code, 'Skip');
  });
});

describe('NodePorts', () => {
  const withPort = (name: string, hostPort: number, extra: { protocol?: 'TCP' | 'UDP'; hostIP?: string } = {}): Pod =>
    podOf(name, [ctr('c', undefined, undefined, { ports: [{ containerPort: 80, hostPort, ...extra }] })]);
  const cases = [
    { name: 'a free port', pod: withPort('p', 8080), on: [withPort('a', 9090)], ok: true },
    { name: 'the same port and protocol', pod: withPort('p', 8080), on: [withPort('a', 8080)], ok: false },
    { name: 'the same port, another protocol', pod: withPort('p', 8080, { protocol: 'UDP' }), on: [withPort('a', 8080)], ok: true },
    { name: 'the same port on two specific addresses', pod: withPort('p', 8080, { hostIP: '10.0.0.1' }), on: [withPort('a', 8080, { hostIP: '10.0.0.2' })], ok: true },
    { name: 'a specific address against 0.0.0.0', pod: withPort('p', 8080, { hostIP: '10.0.0.1' }), on: [withPort('a', 8080)], ok: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plugin = new NodePorts();
      const state = new CycleState();
      assert.equal(plugin.preFilter(state, c.pod).code, 'Success');
      assert.deepEqual(plugin.filter(state, c.pod, info(node('n'), c.on)).reasons, c.ok ? [] : ["node(s) didn't have free ports for the requested pod ports"]);
    });
  }
  it('a pod without host ports skips the plugin', () => assert.equal(new NodePorts().preFilter(new CycleState(), plain()).code, 'Skip'));
});
