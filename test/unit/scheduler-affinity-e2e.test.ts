// InterPodAffinity and PodTopologySpread through the whole control plane (store, informers,
// deployment and replicaset controllers, scheduler, events), as a user sees them: a Deployment with
// required anti-affinity puts one replica per node and the extra one stays Pending in
// kube-scheduler's words until a node joins; a pod waiting for affinity, or blocked by anti-affinity,
// is placed as soon as another pod is placed, relabelled or deleted (no node event needed); and
// maxSkew 1 spreads pods evenly over zones.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Event, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, settle, waitFor } from './control-controllers-helpers.js';
import { HOST, labelled, ZONE, zoned } from './scheduler-topology-helpers.js';

const ANTI = "node(s) didn't match pod anti-affinity rules";
/** What DefaultPreemption adds when every pod in the way has the same priority (0). */
const NO_VICTIMS = ' preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.';
const anti = (app: string, key = HOST) => ({ affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app } }, topologyKey: key }] } } });

for (const thread of [false, true]) {
  describe(`scheduler: InterPodAffinity and PodTopologySpread end to end${thread ? ' (on its own thread)' : ''}`, () => {
    let store: Store;
    let ctl: Controllers;

    beforeEach(() => {
      store = open(':memory:');
      // n1, n2 in zone a; n3 in zone b.
      for (const [name, zone] of [['n1', 'a'], ['n2', 'a'], ['n3', 'b']] as const) store.create(zoned(name, zone));
      ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, maxDelayMs: 200, schedulerThread: thread });
    });

    afterEach(async () => {
      await ctl.stop();
      store.close();
    });

    const pods = (): Pod[] => store.list('pods').items as Pod[];
    const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
    const refusal = (name: string) => {
      const c = getPod(name)?.status?.conditions?.find((x) => x.type === 'PodScheduled');
      return c?.status === 'False' ? c.message : undefined;
    };
    const events = (name: string): Event[] => store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items as Event[];

    it('a Deployment with required anti-affinity: one replica per node; the fourth waits for a new node', async () => {
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'default' },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }], ...anti('web') } },
        },
      } as KubeObject;
      store.create(deployment);
      const placed = await waitFor(() => {
        const bound = pods().filter((p) => p.spec.nodeName);
        return bound.length === 3 ? bound.map((p) => p.spec.nodeName).sort() : undefined;
      }, 'three replicas placed');
      assert.deepEqual(placed, ['n1', 'n2', 'n3']);

      const current = store.get('deployments', 'default', 'web') as KubeObject & { spec: { replicas: number } };
      store.update({ ...current, spec: { ...current.spec, replicas: 4 } });
      const pending = await waitFor(() => pods().find((p) => !p.spec.nodeName && refusal(p.metadata.name ?? '')), 'the fourth refused');
      const name = pending.metadata.name ?? '';
      assert.equal(refusal(name), `0/3 nodes are available: 3 ${ANTI}.${NO_VICTIMS}`);
      await settle(() => ctl.idle());
      assert.equal(events(name).find((e) => e.reason === 'FailedScheduling')?.message, `0/3 nodes are available: 3 ${ANTI}.${NO_VICTIMS}`);

      store.create(zoned('n4', 'b'));
      assert.equal(await waitFor(() => getPod(name)?.spec.nodeName, 'the fourth placed on the new node'), 'n4');
    });

    it('a pod with required affinity waits for its partner and follows it to its zone', async () => {
      const follower = labelled('follower', { app: 'web' }, { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'db' } }, topologyKey: ZONE }] } } });
      store.create(follower);
      assert.equal(await waitFor(() => refusal('follower'), 'follower refused'), "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.");
      // The partner can only go to n3 (zone b): once it is placed, the follower goes to zone b too.
      store.create(labelled('db', { app: 'db' }, { nodeSelector: { 'kubernetes.io/hostname': 'n3' } }));
      assert.equal(await waitFor(() => getPod('follower')?.spec.nodeName, 'follower placed'), 'n3');
    });

    it('a pod blocked by anti-affinity is placed when the blocking pods are relabelled or deleted', async () => {
      // One "db" pod on each node; the newcomer refuses to share a node with any.
      for (const n of ['n1', 'n2', 'n3']) store.create(labelled(`db-${n}`, { app: 'db' }, { nodeName: n }));
      store.create(labelled('loner', { app: 'web' }, anti('db')));
      assert.equal(await waitFor(() => refusal('loner'), 'loner refused'), `0/3 nodes are available: 3 ${ANTI}.${NO_VICTIMS}`);

      const db2 = getPod('db-n2') as Pod;
      store.update({ ...db2, metadata: { ...db2.metadata, labels: { app: 'cache' } } });
      assert.equal(await waitFor(() => getPod('loner')?.spec.nodeName, 'loner placed after the relabel'), 'n2');

      // Another newcomer avoids db and web pods: every node holds one again.
      const either = { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] }, topologyKey: HOST }] } } };
      store.create(labelled('loner2', { app: 'other' }, either));
      assert.equal(await waitFor(() => refusal('loner2'), 'loner2 refused'), `0/3 nodes are available: 3 ${ANTI}.${NO_VICTIMS}`);
      store.delete('pods', 'default', 'db-n3', { gracePeriodSeconds: 0 });
      assert.equal(await waitFor(() => getPod('loner2')?.spec.nodeName, 'loner2 placed after the delete'), 'n3');
    });

    it('topologySpreadConstraints maxSkew 1 over zones: six pods, three per zone', async () => {
      for (let i = 0; i < 6; i++) {
        store.create(labelled(`s${i}`, { app: 'spread' }, { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: ZONE, whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'spread' } } }] }));
        await waitFor(() => getPod(`s${i}`)?.spec.nodeName, `s${i} placed`);
      }
      const perZone = { a: 0, b: 0 };
      for (const p of pods()) perZone[p.spec.nodeName === 'n3' ? 'b' : 'a']++;
      assert.deepEqual(perZone, { a: 3, b: 3 });
    });
  });
}
