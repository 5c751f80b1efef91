// A pod's requests as kube-scheduler computes them (containers summed, init containers as a
// maximum, sidecars counted beside the app, overhead, limits where requests are absent, the
// non-zero defaults for scoring) and a node's allocatable (absent figures: unlimited).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { milliValue, nodeAllocatable, podRequests } from '../../src/control/scheduler/resources.js';
import { ctr, node, podOf } from './scheduler-helpers.js';

const Mi = 1024 * 1024;

describe('scheduler resources: podRequests', () => {
  const cases = [
    { name: 'one container', pod: podOf('p', [ctr('a', { cpu: '250m', memory: '64Mi' })]), cpu: 250, mem: 64 * Mi },
    { name: 'containers are summed', pod: podOf('p', [ctr('a', { cpu: '1' }), ctr('b', { cpu: '500m', memory: '1Gi' })]), cpu: 1500, mem: 1024 * Mi },
    { name: 'a limit stands for a missing request', pod: podOf('p', [ctr('a', undefined, { cpu: '2', memory: '1Gi' })]), cpu: 2000, mem: 1024 * Mi },
    { name: 'the request wins over the limit', pod: podOf('p', [ctr('a', { cpu: '100m' }, { cpu: '2' })]), cpu: 100, mem: 0 },
    {
      name: 'an init container larger than the app containers decides',
      pod: podOf('p', [ctr('a', { cpu: '100m' }), ctr('b', { cpu: '100m' })], { initContainers: [ctr('i', { cpu: '1', memory: '10Mi' })] }),
      cpu: 1000,
      mem: 10 * Mi,
    },
    {
      name: 'a sidecar (restartPolicy Always) runs beside the app and the later init containers',
      pod: podOf('p', [ctr('a', { cpu: '100m' })], { initContainers: [ctr('s', { cpu: '200m' }, undefined, { restartPolicy: 'Always' }), ctr('i', { cpu: '500m' })] }),
      cpu: 700, // max(app 100 + sidecar 200, init 500 + sidecar 200)
      mem: 0,
    },
    { name: 'overhead is added', pod: podOf('p', [ctr('a', { cpu: '100m' })], { overhead: { cpu: '250m', memory: '120Mi' } }), cpu: 350, mem: 120 * Mi },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = podRequests(c.pod);
      assert.equal(r.milliCPU, c.cpu);
      assert.equal(r.memory, c.mem);
    });
  }

  it('extended resources and ephemeral-storage are counted; nonZero gives 100m / 200Mi to containers asking nothing', () => {
    const p = podOf('p', [ctr('a', { 'example.com/gpu': '2', 'ephemeral-storage': '1Gi' }), ctr('b')]);
    const r = podRequests(p);
    assert.equal(r.scalar.get('example.com/gpu'), 2);
    assert.equal(r.ephemeralStorage, 1024 * Mi);
    assert.equal(r.milliCPU, 0);
    const nz = podRequests(p, true);
    assert.equal(nz.milliCPU, 200);
    assert.equal(nz.memory, 400 * Mi);
  });

  it('milliValue rounds up as Quantity.MilliValue()', () => {
    assert.deepEqual(['1', '0.5', '100m', '1.0001'].map(milliValue), [1000, 500, 100, 1001]);
  });
});

describe('scheduler resources: nodeAllocatable', () => {
  it('reads cpu, memory, pods and extended resources; what is absent is unlimited (undefined)', () => {
    const a = nodeAllocatable(node('n', { allocatable: { cpu: '4', memory: '8Gi', pods: '110', 'example.com/gpu': '1' } }));
    assert.deepEqual([a.milliCPU, a.memory, a.pods, a.ephemeralStorage, a.scalar.get('example.com/gpu')], [4000, 8 * 1024 * Mi, 110, undefined, 1]);
    const none = nodeAllocatable(node('m'));
    assert.deepEqual([none.milliCPU, none.memory, none.pods], [undefined, undefined, undefined]);
  });
});
