// What the scheduler cache keeps for InterPodAffinity and PodTopologySpread, through a sequence of
// pod events: the nodes holding pods with affinity terms (any, required anti-affinity, not on the
// hostname, scoring others), and per node the pods a label selector matches (built on first use,
// then kept through bindings, relabels, terminations and deletions), with the pod being scheduled
// left out of the snapshot's figures.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LabelRequirement } from '../../src/control/api/label-selector.js';
import type { Pod } from '../../src/control/api/types/core.js';
import { SchedulerCache } from '../../src/control/scheduler/cache.js';
import { NodeInfo } from '../../src/control/scheduler/node-info.js';
import { CacheSnapshot } from '../../src/control/scheduler/snapshot.js';
import { HOST, labelled, ZONE, zoned } from './scheduler-topology-helpers.js';

const anti = (key: string) => ({ affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'x' } }, topologyKey: key }] } } });
const preferred = { affinity: { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: { labelSelector: { matchLabels: { app: 'x' } }, topologyKey: ZONE } }] } } };
const web: LabelRequirement[] = [{ key: 'app', operator: 'Equals', values: ['web'] }];
const sorted = (s: ReadonlySet<string>) => [...s].sort();

describe('SchedulerCache: pods with affinity terms', () => {
  it('files nodes by the kinds of terms their pods have, and forgets them as the pods go', () => {
    const cache = new SchedulerCache();
    cache.setBound('default/plain', labelled('plain', {}), 'n1');
    cache.setBound('default/host', labelled('host', {}, anti(HOST)), 'n2');
    cache.setBound('default/zone', labelled('zone', {}, anti(ZONE)), 'n3');
    cache.assume('default/pref', labelled('pref', {}, preferred), 'n4');
    const table: [string, ReadonlySet<string>, string[]][] = [
      ['with affinity', cache.havePodsWithAffinity(), ['n2', 'n3', 'n4']],
      ['with required anti-affinity', cache.havePodsWithRequiredAntiAffinity(), ['n2', 'n3']],
      ['not on the hostname', cache.havePodsWithNonHostScopedAntiAffinity(), ['n3']],
      ['scoring others', cache.havePodsWithScoringAffinity(), ['n4']],
    ];
    for (const [what, got, want] of table) assert.deepEqual(sorted(got), want, what);
    cache.setBound('default/zone', undefined, undefined);
    cache.forget('default/pref');
    assert.deepEqual(sorted(cache.havePodsWithAffinity()), ['n2']);
    assert.deepEqual(sorted(cache.havePodsWithNonHostScopedAntiAffinity()), []);
    assert.deepEqual(sorted(cache.havePodsWithScoringAffinity()), []);
  });
});

describe('SchedulerCache: pods a selector matches per node', () => {
  it('follows bindings, relabels, terminations and deletions once asked for', () => {
    const cache = new SchedulerCache();
    cache.setBound('default/a', labelled('a', { app: 'web' }), 'n1');
    cache.setBound('team/b', labelled('b', { app: 'web' }, {}, 'team'), 'n1');
    const counts = cache.countMatching('default', web);
    const steps: [string, () => void, Record<string, number>][] = [
      ['built from the pods there (other namespaces aside)', () => undefined, { n1: 1 }],
      ['a pod bound', () => cache.setBound('default/c', labelled('c', { app: 'web' }), 'n2'), { n1: 1, n2: 1 }],
      ['a pod assumed', () => cache.assume('default/d', labelled('d', { app: 'web' }), 'n2'), { n1: 1, n2: 2 }],
      ['an assumed pod forgotten', () => cache.forget('default/d'), { n1: 1, n2: 1 }],
      ['a pod relabelled', () => cache.setBound('default/a', labelled('a', { app: 'db' }), 'n1'), { n2: 1 }],
      ['a pod terminating', () => cache.setBound('default/c', labelled('c', { app: 'web' }, {}, 'default', { deletionTimestamp: '2026-01-01T00:00:00Z' }), 'n2'), {}],
      ['a pod of another label bound', () => cache.setBound('default/e', labelled('e', { app: 'db' }), 'n3'), {}],
      [
        'a matching pod bound then deleted',
        () => {
          cache.setBound('default/f', labelled('f', { app: 'web' }), 'n3');
          cache.setBound('default/f', undefined, undefined);
        },
        {},
      ],
    ];
    for (const [what, step, want] of steps) {
      step();
      assert.deepEqual(Object.fromEntries(counts), want, what);
      assert.equal(cache.countMatching('default', web), counts, 'the same counter is kept');
    }
  });

  it("the snapshot leaves the pod being scheduled out of its node's count", () => {
    const cache = new SchedulerCache();
    const nodes = [zoned('n1', 'a'), zoned('n2', 'a')];
    const me: Pod = labelled('me', { app: 'web' });
    cache.setBound('default/a', labelled('a', { app: 'web' }), 'n1');
    cache.assume('default/me', me, 'n1'); // an earlier attempt, waiting in PreBind
    const snapshot = new CacheSnapshot(nodes, (i) => new NodeInfo(nodes[i] as never, cache.node(i === 0 ? 'n1' : 'n2'), 'default/me'), cache, (n) => nodes.find((x) => x.metadata.name === n), 'default/me');
    const count = snapshot.countMatching('default', web);
    assert.deepEqual(snapshot.list().map(count), [1, 0]);
  });
});
