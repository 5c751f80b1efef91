// The scheduler's cache (pods counted per node, with their summed requests, from pod events and
// Reserve) and how many feasible nodes an attempt looks for (kube-scheduler's adaptive
// percentageOfNodesToScore).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SchedulerCache } from '../../src/control/scheduler/cache.js';
import { NodeInfo } from '../../src/control/scheduler/node-info.js';
import { numFeasibleNodesToFind } from '../../src/control/scheduler/scheduler.js';
import { node, podRequesting } from './scheduler-helpers.js';

describe('SchedulerCache', () => {
  const a = podRequesting('a', { cpu: '1' });
  const b = podRequesting('b', { cpu: '500m' });

  it('counts bound pods and assumed ones, and moves an assumed pod to bound without counting it twice', () => {
    const cache = new SchedulerCache();
    cache.setBound('default/a', a, 'n1');
    cache.assume('default/b', b, 'n1');
    assert.equal(cache.node('n1').pods.size, 2);
    assert.equal(cache.node('n1').requested.milliCPU, 1500);
    assert.equal(cache.assumedOn('default/b'), 'n1');
    cache.setBound('default/b', b, 'n1'); // the informer shows the binding
    assert.equal(cache.node('n1').requested.milliCPU, 1500);
    assert.equal(cache.assumedOn('default/b'), undefined);
    cache.forget('default/b'); // forgetting a bound pod does nothing
    assert.equal(cache.node('n1').pods.size, 2);
  });

  it('an update that is not bound leaves an assumed pod assumed; finishing or deleting a bound pod frees the node', () => {
    const cache = new SchedulerCache();
    cache.assume('default/b', b, 'n1');
    cache.setBound('default/b', b, undefined);
    assert.equal(cache.node('n1').requested.milliCPU, 500);
    cache.forget('default/b');
    assert.equal(cache.node('n1').pods.size, 0);
    cache.setBound('default/a', a, 'n2');
    cache.setBound('default/a', a, undefined);
    assert.equal(cache.node('n2').requested.milliCPU, 0);
  });

  it('NodeInfo leaves the pod being scheduled out of its own node\'s figures', () => {
    const cache = new SchedulerCache();
    cache.setBound('default/a', a, 'n1');
    cache.assume('default/b', b, 'n1');
    const view = new NodeInfo(node('n1'), cache.node('n1'), 'default/b');
    assert.deepEqual([view.podCount, view.pods.length, view.requested.milliCPU], [1, 1, 1000]);
    const other = new NodeInfo(node('n1'), cache.node('n1'), 'default/c');
    assert.deepEqual([other.podCount, other.requested.milliCPU], [2, 1500]);
  });
});

describe('numFeasibleNodesToFind', () => {
  it('every node up to 100, then 50% less 1% per 125 nodes (at least 5%), never under 100', () => {
    const table: [number, number][] = [
      [3, 3],
      [99, 99],
      [100, 100],
      [150, 100],
      [1000, 420],
      [5000, 500],
      [10000, 500],
    ];
    for (const [nodes, want] of table) assert.equal(numFeasibleNodesToFind(nodes), want, `${nodes} nodes`);
  });
});
