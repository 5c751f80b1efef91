// The resource plugins' per-node fast paths (NodeInfo's plain figures) against their general forms,
// on random nodes and pods: NodeResourcesFit's verdict against the per-resource check of the
// reasons, LeastAllocated / MostAllocated over cpu and memory against the same resources listed the
// other way round (the general path), and BalancedAllocation against balancedScore. Nodes may
// leave out any allocatable figure (unlimited) or report 0.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Node, Pod } from '../../src/control/api/types/core.js';
import { CycleState } from '../../src/control/scheduler/framework.js';
import { NodeInfo } from '../../src/control/scheduler/node-info.js';
import { balancedScore, NodeResourcesBalancedAllocation } from '../../src/control/scheduler/plugins/node-resources-balanced-allocation.js';
import { fitShortfalls } from '../../src/control/scheduler/plugins/node-resources-fit.js';
import { strategyScorer } from '../../src/control/scheduler/plugins/scoring-strategy.js';
import { podRequests } from '../../src/control/scheduler/resources.js';
import { ctr, podOf } from './scheduler-helpers.js';

const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

const nodeArb = fc.record({
  cpu: maybe(fc.integer({ min: 0, max: 8000 })),
  memory: maybe(fc.integer({ min: 0, max: 16 * 1024 })),
  eph: maybe(fc.integer({ min: 0, max: 100 })),
  pods: maybe(fc.integer({ min: 0, max: 6 })),
});
const requestArb = fc.record({ cpu: maybe(fc.integer({ min: 0, max: 4000 })), memory: maybe(fc.integer({ min: 0, max: 8 * 1024 })), eph: maybe(fc.integer({ min: 0, max: 50 })) });

function node(n: { cpu?: number | undefined; memory?: number | undefined; eph?: number | undefined; pods?: number | undefined }): Node {
  const allocatable: Record<string, string> = {};
  if (n.cpu !== undefined) allocatable['cpu'] = `${n.cpu}m`;
  if (n.memory !== undefined) allocatable['memory'] = `${n.memory}Mi`;
  if (n.eph !== undefined) allocatable['ephemeral-storage'] = `${n.eph}Gi`;
  if (n.pods !== undefined) allocatable['pods'] = String(n.pods);
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: {}, status: { allocatable } };
}

function pod(name: string, r: { cpu?: number | undefined; memory?: number | undefined; eph?: number | undefined }): Pod {
  const requests: Record<string, string> = {};
  if (r.cpu !== undefined) requests['cpu'] = `${r.cpu}m`;
  if (r.memory !== undefined) requests['memory'] = `${r.memory}Mi`;
  if (r.eph !== undefined) requests['ephemeral-storage'] = `${r.eph}Gi`;
  return podOf(name, [ctr('c', Object.keys(requests).length > 0 ? requests : undefined)]);
}

describe('resource figures: fast paths agree with the general ones', () => {
  const cases = fc.record({ node: nodeArb, placed: fc.array(requestArb, { maxLength: 4 }), incoming: requestArb });

  it('NodeResourcesFit: fits exactly when no resource is short', () => {
    fc.assert(
      fc.property(cases, (c) => {
        const info = new NodeInfo(node(c.node), c.placed.map((r, i) => pod(`p${i}`, r)));
        const request = podRequests(pod('in', c.incoming));
        const short = fitShortfalls(request, info);
        // The general check, resource by resource, from the objects rather than the figures.
        const a = info.allocatable;
        const used = info.requested;
        const expected = [
          ...(a.pods !== undefined && info.podCount + 1 > a.pods ? ['Too many pods'] : []),
          ...(request.milliCPU > 0 && a.milliCPU !== undefined && request.milliCPU > a.milliCPU - used.milliCPU ? ['Insufficient cpu'] : []),
          ...(request.memory > 0 && a.memory !== undefined && request.memory > a.memory - used.memory ? ['Insufficient memory'] : []),
          ...(request.ephemeralStorage > 0 && a.ephemeralStorage !== undefined && request.ephemeralStorage > a.ephemeralStorage - used.ephemeralStorage ? ['Insufficient ephemeral-storage'] : []),
        ];
        assert.deepEqual(
          short.map((s) => s.reason),
          expected,
        );
      }),
      { numRuns: 500 },
    );
  });

  for (const type of ['LeastAllocated', 'MostAllocated'] as const) {
    it(`${type}: cpu and memory scored as the general path scores them`, () => {
      const fast = strategyScorer({ type });
      const general = strategyScorer({ type, resources: [{ name: 'memory' }, { name: 'cpu' }] });
      fc.assert(
        fc.property(cases, (c) => {
          const info = new NodeInfo(node(c.node), c.placed.map((r, i) => pod(`p${i}`, r)));
          const request = podRequests(pod('in', c.incoming), true);
          assert.equal(fast(request, info), general(request, new NodeInfo(info.node, info.pods)));
        }),
        { numRuns: 500 },
      );
    });
  }

  it('BalancedAllocation: as balancedScore over cpu and memory', () => {
    const plugin = new NodeResourcesBalancedAllocation();
    fc.assert(
      fc.property(cases, (c) => {
        const incoming = pod('in', c.incoming);
        const state = new CycleState();
        if (plugin.preScore(state, incoming).code === 'Skip') return;
        const info = new NodeInfo(node(c.node), c.placed.map((r, i) => pod(`p${i}`, r)));
        const r = podRequests(incoming);
        const want = balancedScore([
          [info.requested.milliCPU + r.milliCPU, info.allocatable.milliCPU],
          [info.requested.memory + r.memory, info.allocatable.memory],
        ]);
        assert.equal(plugin.score(state, incoming, info), want);
      }),
      { numRuns: 500 },
    );
  });
});
