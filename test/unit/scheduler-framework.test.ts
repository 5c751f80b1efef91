// The scheduling framework itself: extension points run in profile order (the first failing Filter
// names the node's reason, Skip leaves a plugin out, scores are weighted and normalized),
// Kubernetes' FitError aggregation, and profiles chosen by spec.schedulerName in one scheduler
// (a second profile runs its own plugin set; pods naming an unknown scheduler are left alone).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import { DriverRegistry } from '../../src/control/controllers/driver-registry.js';
import { InformerFactory } from '../../src/control/controllers/informer.js';
import { CycleState, defaultNormalizeScore, type FilterPlugin, Framework, type NodeScore, type PreFilterPlugin, type ScorePlugin, SKIP, SUCCESS, unschedulable } from '../../src/control/scheduler/framework.js';
import { DEFAULT_PROFILE } from '../../src/control/scheduler/profile.js';
import { fitErrorMessage, reasonCounts, Scheduler } from '../../src/control/scheduler/scheduler.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, waitFor } from './control-controllers-helpers.js';
import { ctr, info, node, podOf } from './scheduler-helpers.js';

describe('FitError message', () => {
  const cases = [
    { name: 'counts sorted', reasons: [['node(s) were unschedulable'], ['Insufficient cpu'], ['Insufficient cpu']], want: '0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.' },
    { name: 'a node short of two resources counts under both', reasons: [['Insufficient cpu', 'Insufficient memory'], ['Insufficient cpu']], want: '0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu.' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const counts = reasonCounts(c.reasons.map((r) => unschedulable(...r)));
      assert.equal(fitErrorMessage(c.reasons.length, counts), c.want);
    });
  }
  it('a PreFilter rejection is the message itself', () => {
    assert.equal(fitErrorMessage(2, new Map(), 'pod has unbound immediate PersistentVolumeClaims'), '0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.');
  });
});

describe('Framework', () => {
  const calls: string[] = [];
  const filter = (name: string, reject: boolean): FilterPlugin => ({
    name,
    filter: () => {
      calls.push(name);
      return reject ? unschedulable(`rejected by ${name}`) : SUCCESS;
    },
  });

  it('the first Filter that rejects decides, and later ones are not run', () => {
    calls.length = 0;
    const fw = new Framework('t', [{ plugin: filter('A', false) }, { plugin: filter('B', true) }, { plugin: filter('C', true) }]);
    const s = fw.runFilter(new CycleState(), podOf('p', [ctr('c')]), info(node('n')));
    assert.deepEqual([s.code, s.plugin, s.reasons], ['Unschedulable', 'B', ['rejected by B']]);
    assert.deepEqual(calls, ['A', 'B']);
  });

  it('a PreFilter Skip leaves that plugin\'s Filter out', () => {
    calls.length = 0;
    const skipper: PreFilterPlugin & FilterPlugin = { name: 'S', preFilter: () => SKIP, filter: filter('S', true).filter };
    const fw = new Framework('t', [{ plugin: skipper }, { plugin: filter('A', false) }]);
    const state = new CycleState();
    assert.equal(fw.runPreFilter(state, podOf('p', [ctr('c')])).code, 'Success');
    assert.equal(fw.runFilter(state, podOf('p', [ctr('c')]), info(node('n'))).code, 'Success');
    assert.deepEqual(calls, ['A']);
  });

  it('scores are normalized per plugin, then weighted and summed', () => {
    const byName = (table: Record<string, number>, normalize: boolean): ScorePlugin => ({
      name: `score-${Object.values(table).join()}`,
      score: (_s, _p, n) => table[n.name] ?? 0,
      ...(normalize ? { normalizeScore: (_s: CycleState, _p: Pod, scores: NodeScore[]) => defaultNormalizeScore(scores, false) } : {}),
    });
    const fw = new Framework('t', [
      { plugin: byName({ a: 10, b: 5 }, true), weight: 2 }, // → a 100, b 50
      { plugin: byName({ a: 0, b: 70 }, false), weight: 1 },
    ]);
    const totals = fw.runScore(new CycleState(), podOf('p', [ctr('c')]), [info(node('a')), info(node('b'))]);
    assert.deepEqual(totals, [200, 170]);
  });

  it('defaultNormalizeScore: scaled to the highest, or reversed', () => {
    const table: { raw: number[]; reverse: boolean; want: number[] }[] = [
      { raw: [1, 2, 4], reverse: false, want: [25, 50, 100] },
      { raw: [1, 2, 4], reverse: true, want: [75, 50, 0] },
      { raw: [0, 0], reverse: false, want: [0, 0] },
      { raw: [0, 0], reverse: true, want: [100, 100] },
    ];
    for (const c of table) {
      const scores = c.raw.map((score, i) => ({ name: `n${i}`, score }));
      defaultNormalizeScore(scores, c.reverse);
      assert.deepEqual(scores.map((s) => s.score), c.want);
    }
  });
});

describe('Scheduler profiles', () => {
  let store: Store;
  let informers: InformerFactory;
  let scheduler: Scheduler;
  const events: string[] = [];

  beforeEach(() => {
    store = open(':memory:');
    informers = new InformerFactory(store, { resyncMs: 0, logger: quiet });
    const registry = new DriverRegistry({ csiDrivers: informers.for('csidrivers'), csiNodes: informers.for('csinodes'), logger: quiet });
    // A second profile: the default plugins without taint checks.
    const lenient = { schedulerName: 'lenient-scheduler', plugins: DEFAULT_PROFILE.plugins.filter((p) => p.name !== 'TaintToleration') };
    events.length = 0;
    const sink = (component: string) => ({ event: (obj: { metadata: { name?: string } }, _t: string, reason: string) => events.push(`${component} ${reason} ${obj.metadata.name}`) });
    scheduler = new Scheduler({ store, informers, registry, recorder: sink('default-scheduler'), recorderFor: sink, logger: quiet, profiles: [DEFAULT_PROFILE, lenient] });
    store.create(node('tainted', { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] }));
    informers.start();
    scheduler.start();
  });

  afterEach(async () => {
    await scheduler.stop();
    informers.stop();
    store.close();
  });

  const get = (name: string) => store.get('pods', 'default', name) as Pod | undefined;

  it('each pod is scheduled by the profile its schedulerName names; other schedulers\' pods are left alone', async () => {
    store.create(podOf('strict', [ctr('c')]));
    store.create(podOf('lenient', [ctr('c')], { schedulerName: 'lenient-scheduler' }));
    store.create(podOf('foreign', [ctr('c')], { schedulerName: 'someone-else' }));
    assert.equal(await waitFor(() => get('lenient')?.spec.nodeName, 'lenient placed'), 'tainted');
    const cond = await waitFor(() => get('strict')?.status?.conditions?.find((c) => c.type === 'PodScheduled'), 'strict refused');
    assert.equal(cond.message, '0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.');
    await waitFor(() => scheduler.loop.idle, 'idle');
    const foreign = get('foreign');
    assert.equal(foreign?.spec.nodeName, undefined);
    assert.equal(foreign?.status?.conditions?.find((c) => c.type === 'PodScheduled'), undefined);
    // Each profile reports its own events, under its schedulerName.
    assert.deepEqual([...new Set(events)].sort(), ['default-scheduler FailedScheduling strict', 'lenient-scheduler Scheduled lenient']);
  });
});
