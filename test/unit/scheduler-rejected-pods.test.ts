// Which waiting pods InterPodAffinity and PodTopologySpread send back to the queue on pod events
// (kube-scheduler's events to register, with its queueing hints for placements): a pod the plugin
// turned away goes back when a pod it could use is placed, when a placed pod is relabelled or
// deleted; not when an unrelated pod is placed, and never once it is placed itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import type { EventHandlers } from '../../src/control/controllers/informer.js';
import type { Status } from '../../src/control/scheduler/framework.js';
import { CycleState } from '../../src/control/scheduler/framework.js';
import type { PluginContext } from '../../src/control/scheduler/plugin-context.js';
import { InterPodAffinity } from '../../src/control/scheduler/plugins/inter-pod-affinity.js';
import { PodTopologySpread } from '../../src/control/scheduler/plugins/pod-topology-spread.js';
import { HOST, labelled, namespace, ZONE } from './scheduler-topology-helpers.js';

/** A context whose pod informer serves `pods` and records its handlers, and whose queue records keys. */
function harness(pods: Pod[]) {
  const handlers: EventHandlers<Pod>[] = [];
  const enqueued: string[] = [];
  const ctx = {
    pods: { addEventHandler: (h: EventHandlers<Pod>) => handlers.push(h), get: (key: string) => pods.find((p) => `${p.metadata.namespace}/${p.metadata.name}` === key) },
    enqueue: (key: string) => enqueued.push(key),
    informers: { for: (r: string) => ({ get: (n: string) => (r === 'namespaces' ? namespace(n) : undefined), getByName: () => undefined, list: () => (r === 'namespaces' ? [namespace('default')] : []) }) },
  } as unknown as PluginContext;
  return { ctx, handlers, enqueued };
}

const bound = (p: Pod, node = 'n1'): Pod => ({ ...p, spec: { ...p.spec, nodeName: node } });
const refusedBy = (plugin: string): Map<string, Status> => new Map([['n1', { code: 'Unschedulable', reasons: ['x'], plugin }]]);

describe('pods turned away, back in the queue', () => {
  const follower = labelled('follower', { app: 'web' }, { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'db' } }, topologyKey: ZONE }] } } });
  const loner = labelled('loner', { app: 'web' }, { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'db' } }, topologyKey: HOST }] } } });
  const spreader = labelled('spreader', { app: 'web' }, { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: HOST, whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'web' } } }] });
  const db = labelled('db', { app: 'db' });
  const other = labelled('other', { app: 'web' });
  const cases: { name: string; plugin: 'InterPodAffinity' | 'PodTopologySpread'; waiting: Pod; event: (h: EventHandlers<Pod>) => void; requeued: boolean }[] = [
    { name: 'affinity: a pod it matches is placed', plugin: 'InterPodAffinity', waiting: follower, event: (h) => h.add?.(bound(db)), requeued: true },
    { name: 'affinity: a pod it matches is bound', plugin: 'InterPodAffinity', waiting: follower, event: (h) => h.update?.(db, bound(db)), requeued: true },
    { name: 'affinity: an unrelated pod is placed', plugin: 'InterPodAffinity', waiting: follower, event: (h) => h.add?.(bound(other)), requeued: false },
    { name: 'anti-affinity: any placement only adds pods', plugin: 'InterPodAffinity', waiting: loner, event: (h) => h.add?.(bound(db)), requeued: false },
    { name: 'anti-affinity: a placed pod relabelled', plugin: 'InterPodAffinity', waiting: loner, event: (h) => h.update?.(bound(db), bound({ ...db, metadata: { ...db.metadata, labels: { app: 'cache' } } })), requeued: true },
    { name: 'anti-affinity: a placed pod deleted', plugin: 'InterPodAffinity', waiting: loner, event: (h) => h.delete?.(bound(db)), requeued: true },
    { name: 'anti-affinity: a pending pod deleted', plugin: 'InterPodAffinity', waiting: loner, event: (h) => h.delete?.(db), requeued: false },
    { name: 'spread: a pod its constraint selects is placed', plugin: 'PodTopologySpread', waiting: spreader, event: (h) => h.add?.(bound(other)), requeued: true },
    { name: 'spread: a pod of another group is placed', plugin: 'PodTopologySpread', waiting: spreader, event: (h) => h.add?.(bound(db)), requeued: false },
    { name: 'spread: a selected pod of another namespace is placed', plugin: 'PodTopologySpread', waiting: spreader, event: (h) => h.add?.(bound(labelled('o', { app: 'web' }, {}, 'team-a'))), requeued: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { ctx, handlers, enqueued } = harness([c.waiting]);
      const plugin = c.plugin === 'InterPodAffinity' ? new InterPodAffinity(ctx) : new PodTopologySpread(ctx);
      plugin.postFilter(new CycleState(), c.waiting, refusedBy(c.plugin));
      for (const h of handlers) c.event(h);
      assert.deepEqual(enqueued, c.requeued ? [`default/${c.waiting.metadata.name}`] : []);
    });
  }

  it('a pod refused only by other plugins is not tracked; a tracked pod once placed is forgotten', () => {
    const { ctx, handlers, enqueued } = harness([follower]);
    const plugin = new InterPodAffinity(ctx);
    plugin.postFilter(new CycleState(), follower, refusedBy('NodeResourcesFit'));
    for (const h of handlers) h.add?.(bound(db));
    assert.deepEqual(enqueued, []);
    plugin.postFilter(new CycleState(), follower, refusedBy('InterPodAffinity'));
    for (const h of handlers) h.update?.(follower, bound(follower, 'n2'));
    for (const h of handlers) h.add?.(bound(db));
    assert.deepEqual(enqueued, []);
  });
});
