// NodeResourcesFit and NodeResourcesBalancedAllocation on in-memory nodes: kube-scheduler's reasons
// ("Insufficient cpu", "Insufficient memory", "Too many pods", "Insufficient <extended>"), nodes
// without allocatable taking anything, and the LeastAllocated and balanced scores.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CycleState } from '../../src/control/scheduler/framework.js';
import { balancedScore } from '../../src/control/scheduler/plugins/node-resources-balanced-allocation.js';
import { leastRequestedScore, mostRequestedScore, NodeResourcesFit } from '../../src/control/scheduler/plugins/node-resources-fit.js';
import type { ScoringStrategy } from '../../src/control/scheduler/plugins/scoring-strategy.js';
import { NodeResourcesBalancedAllocation } from '../../src/control/scheduler/plugins/node-resources-balanced-allocation.js';
import { ctr, info, node, podOf, podRequesting } from './scheduler-helpers.js';

const small = node('small', { allocatable: { cpu: '2', memory: '4Gi', pods: '3', 'example.com/gpu': '1' } });

describe('NodeResourcesFit: Filter', () => {
  const cases = [
    { name: 'fits an empty node', pod: podRequesting('p', { cpu: '1', memory: '1Gi' }), on: [], code: 'Success', reasons: [] },
    { name: 'more cpu than the node has', pod: podRequesting('p', { cpu: '3' }), on: [], code: 'UnschedulableAndUnresolvable', reasons: ['Insufficient cpu'] },
    { name: 'cpu taken by the pods already there', pod: podRequesting('p', { cpu: '1500m' }), on: [podRequesting('a', { cpu: '1' })], code: 'Unschedulable', reasons: ['Insufficient cpu'] },
    { name: 'cpu and memory both short: one reason each', pod: podRequesting('p', { cpu: '2', memory: '4Gi' }), on: [podRequesting('a', { cpu: '1', memory: '1Gi' })], code: 'Unschedulable', reasons: ['Insufficient cpu', 'Insufficient memory'] },
    { name: 'pods allocatable reached', pod: podRequesting('p', {}), on: [podOf('a', [ctr('c')]), podOf('b', [ctr('c')]), podOf('c', [ctr('c')])], code: 'Unschedulable', reasons: ['Too many pods'] },
    { name: 'an extended resource the node has too few of', pod: podRequesting('p', { 'example.com/gpu': '2' }), on: [], code: 'UnschedulableAndUnresolvable', reasons: ['Insufficient example.com/gpu'] },
    { name: 'an extended resource the node does not list', pod: podRequesting('p', { 'example.com/fpga': '1' }), on: [], code: 'UnschedulableAndUnresolvable', reasons: ['Insufficient example.com/fpga'] },
    { name: 'ephemeral-storage is unlimited when not reported', pod: podRequesting('p', { 'ephemeral-storage': '1Ti' }), on: [], code: 'Success', reasons: [] },
    { name: 'a pod asking nothing fits a full node', pod: podOf('p', [ctr('c')]), on: [podRequesting('a', { cpu: '2', memory: '4Gi' })], code: 'Success', reasons: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plugin = new NodeResourcesFit();
      const state = new CycleState();
      plugin.preFilter(state, c.pod);
      const s = plugin.filter(state, c.pod, info(small, c.on));
      assert.equal(s.code, c.code);
      assert.deepEqual(s.reasons, c.reasons);
    });
  }

  it('a node without allocatable takes any request', () => {
    const plugin = new NodeResourcesFit();
    const p = podRequesting('p', { cpu: '64', memory: '1Ti' });
    const state = new CycleState();
    plugin.preFilter(state, p);
    assert.equal(plugin.filter(state, p, info(node('bare'))).code, 'Success');
  });
});

describe('NodeResourcesFit: LeastAllocated score', () => {
  it('leastRequestedScore is (capacity - requested) * 100 / capacity, 0 when over', () => {
    const table: [number, number, number][] = [
      [0, 4000, 100],
      [1000, 4000, 75],
      [3000, 4000, 25],
      [5000, 4000, 0],
      [1, 0, 0],
    ];
    for (const [req, cap, want] of table) assert.equal(leastRequestedScore(req, cap), want, `${req}/${cap}`);
  });

  it('prefers the emptier node, counting 100m / 200Mi for containers that request nothing', () => {
    const plugin = new NodeResourcesFit();
    const big = node('big', { allocatable: { cpu: '1', memory: '1000Mi' } });
    const p = podOf('p', [ctr('c')]);
    const state = new CycleState();
    plugin.preScore(state, p);
    // cpu (1000-100)*100/1000 = 90, memory (1000-200)*100/1000 = 80 → 85
    assert.equal(plugin.score(state, p, info(big)), 85);
    // one more empty pod there: cpu 80, memory 60 → 70
    assert.equal(plugin.score(state, p, info(big, [podOf('a', [ctr('c')])])), 70);
    assert.equal(plugin.score(state, p, info(node('bare'))), 0);
  });
});

describe('NodeResourcesBalancedAllocation', () => {
  it('scores (1 - std of the fractions) * 100', () => {
    assert.equal(balancedScore([[500, 1000], [500, 1000]]), 100);
    assert.equal(balancedScore([[1000, 1000], [0, 1000]]), 50);
    assert.equal(balancedScore([[2000, 1000], [0, 1000]]), 50); // fractions capped at 1
    assert.equal(balancedScore([[300, 1000], [100, 1000]]), 90);
    assert.equal(balancedScore([[300, 1000], [100, undefined]]), 100); // one resource: no deviation
  });

  it('skips pods that request neither cpu nor memory', () => {
    const plugin = new NodeResourcesBalancedAllocation();
    assert.equal(plugin.preScore(new CycleState(), podOf('p', [ctr('c')])).code, 'Skip');
    const state = new CycleState();
    const p = podRequesting('p', { cpu: '500m', memory: '100Mi' });
    assert.equal(plugin.preScore(state, p).code, 'Success');
    const n = node('n', { allocatable: { cpu: '1', memory: '1000Mi' } });
    assert.equal(plugin.score(state, p, info(n)), 80); // |0.5 - 0.1| / 2 = 0.2
  });
});

describe('NodeResourcesFit: scoring strategies', () => {
  const n = node('n', { allocatable: { cpu: '4', memory: '4000Mi', 'example.com/gpu': '4' } });
  const on = [podRequesting('a', { cpu: '1', memory: '1000Mi' })];
  const p = podRequesting('p', { cpu: '1', memory: '1000Mi', 'example.com/gpu': '1' });
  const scoreWith = (scoringStrategy: ScoringStrategy): number => {
    const plugin = new NodeResourcesFit({ scoringStrategy });
    const state = new CycleState();
    plugin.preScore(state, p);
    return plugin.score(state, p, info(n, on));
  };
  const cases: { name: string; strategy: ScoringStrategy; want: number }[] = [
    // cpu and memory half used with the pod: 50 either way
    { name: 'LeastAllocated (default)', strategy: {}, want: 50 },
    { name: 'MostAllocated', strategy: { type: 'MostAllocated' }, want: 50 },
    { name: 'MostAllocated over the gpu only', strategy: { type: 'MostAllocated', resources: [{ name: 'example.com/gpu', weight: 1 }] }, want: 25 },
    { name: 'LeastAllocated weighted 3:1 cpu and gpu', strategy: { resources: [{ name: 'cpu', weight: 3 }, { name: 'example.com/gpu', weight: 1 }] }, want: 56 }, // (50*3 + 75) / 4
    // shape 0→0, 100→10 (bin-packing): 50% utilization → 50
    { name: 'RequestedToCapacityRatio, rising shape', strategy: { type: 'RequestedToCapacityRatio', requestedToCapacityRatio: { shape: [{ utilization: 0, score: 0 }, { utilization: 100, score: 10 }] } }, want: 50 },
    // shape 0→10, 100→0 (spreading); 40→8 between: at 50% → 8*10 + (0-80)*(50-40)/60 = 80 - 13 = 67
    {
      name: 'RequestedToCapacityRatio, broken shape',
      strategy: { type: 'RequestedToCapacityRatio', requestedToCapacityRatio: { shape: [{ utilization: 0, score: 10 }, { utilization: 40, score: 8 }, { utilization: 100, score: 0 }] } },
      want: 67,
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(scoreWith(c.strategy), c.want));

  it('mostRequestedScore counts a request above capacity as full', () => {
    assert.deepEqual([mostRequestedScore(0, 100), mostRequestedScore(30, 100), mostRequestedScore(300, 100), mostRequestedScore(5, 0)], [0, 30, 100, 0]);
  });
});
