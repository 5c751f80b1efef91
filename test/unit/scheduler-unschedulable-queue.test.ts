// kube-scheduler's unschedulable pods: a pod no node fits waits for an event that could change
// that (here a node's labels changing), is tried once per such event, and, with no event at all,
// again after podMaxInUnschedulablePodsDuration; the pod placed once a node fits.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Node, Pod } from '../../src/control/api/types/core.js';
import { DriverRegistry } from '../../src/control/controllers/driver-registry.js';
import { InformerFactory } from '../../src/control/controllers/informer.js';
import { Scheduler } from '../../src/control/scheduler/scheduler.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, waitFor } from './control-controllers-helpers.js';
import { node, podRequesting } from './scheduler-helpers.js';

describe('unschedulable pods', () => {
  let store: Store;
  let informers: InformerFactory;
  let scheduler: Scheduler;
  let attempts: string[];

  function start(maxUnschedulableMs?: number): void {
    store = open(':memory:');
    informers = new InformerFactory(store, { resyncMs: 0, logger: quiet });
    const registry = new DriverRegistry({ csiDrivers: informers.for('csidrivers'), csiNodes: informers.for('csinodes'), logger: quiet });
    attempts = [];
    const recorder = { event: (obj: { metadata: { name?: string } }, _t: string, reason: string) => attempts.push(`${reason} ${obj.metadata.name}`) };
    scheduler = new Scheduler({ store, informers, registry, recorder, logger: quiet, ...(maxUnschedulableMs === undefined ? {} : { maxUnschedulableMs }) });
    store.create(node('small', { allocatable: { cpu: '1', memory: '1Gi', pods: '10' } }));
    informers.start();
    scheduler.start();
  }

  afterEach(async () => {
    await scheduler.stop();
    informers.stop();
    store.close();
  });

  const failures = (name: string): number => attempts.filter((a) => a === `FailedScheduling ${name}`).length;
  const relabel = (value: string): void => {
    const n = store.get('nodes', '', 'small') as Node;
    store.update({ ...n, metadata: { ...n.metadata, labels: { ...n.metadata.labels, rack: value } } });
  };

  it('is tried once per event that could make it fit, and placed when one does', async () => {
    start();
    store.create(podRequesting('big', { cpu: '2' }));
    await waitFor(() => failures('big') === 1 || undefined, 'first attempt');
    await waitFor(() => scheduler.loop.idle || undefined, 'idle');
    await sleep(100);
    assert.equal(failures('big'), 1, 'no event: no second attempt');
    relabel('a');
    await waitFor(() => failures('big') === 2 || undefined, 'tried again after the node changed');
    relabel('b');
    await waitFor(() => failures('big') === 3 || undefined, 'and after the next change');
    // A node that fits: the pod goes there.
    store.create(node('large', { allocatable: { cpu: '4', memory: '4Gi', pods: '10' } }));
    assert.equal(await waitFor(() => (store.get('pods', 'default', 'big') as Pod | undefined)?.spec.nodeName, 'placed'), 'large');
  });

  it('with no event, is tried again after podMaxInUnschedulablePodsDuration', async () => {
    start(300);
    store.create(podRequesting('big', { cpu: '2' }));
    await waitFor(() => failures('big') === 1 || undefined, 'first attempt');
    await waitFor(() => failures('big') >= 2 || undefined, 'tried again without any event');
  });
});
