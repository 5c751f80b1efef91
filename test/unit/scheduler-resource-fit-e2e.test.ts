// Resource fit through the whole control plane (store, informers, scheduler, events), as a user
// sees it: a pod asking more CPU than any node has stays Pending with kube-scheduler's "0/3 nodes
// are available: 3 Insufficient cpu." on PodScheduled and a FailedScheduling event, and is placed
// once a node big enough joins; pods with requests go to the least allocated node; a node refused
// by an earlier plugin (cordoned, tainted) is counted under that plugin's reason only.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Event, Node, Pod } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, settle, waitFor } from './control-controllers-helpers.js';
import { node, podRequesting } from './scheduler-helpers.js';

describe('scheduler: NodeResourcesFit end to end', () => {
  let store: Store;
  let ctl: Controllers;

  beforeEach(() => {
    store = open(':memory:');
    for (const [name, cpu] of [['n1', '2'], ['n2', '4'], ['n3', '4']] as const) store.create(node(name, { allocatable: { cpu, memory: '8Gi', pods: '110' } }));
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, maxDelayMs: 200 });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
  });

  const getPod = (name: string) => store.get('pods', 'default', name) as Pod | undefined;
  const condition = (name: string) => getPod(name)?.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const events = (name: string): Event[] => store.list('events', { fieldSelector: `involvedObject.name=${name}` }).items;

  it('a pod requesting more cpu than any node has stays Pending, in kube-scheduler\'s words, until a node fits', async () => {
    assert.equal((store.get('nodes', undefined, 'n1') as { status?: { allocatable?: Record<string, string> } }).status?.allocatable?.['cpu'], '2');
    store.create(podRequesting('huge', { cpu: '6' }));
    const cond = await waitFor(() => (condition('huge')?.status === 'False' ? condition('huge') : undefined), 'huge refused');
    assert.equal(cond.reason, 'Unschedulable');
    assert.equal(cond.message, '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');
    await settle(() => ctl.idle());
    const failed = events('huge').find((e) => e.reason === 'FailedScheduling');
    assert.equal(failed?.type, 'Warning');
    assert.equal(failed?.message, '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');
    assert.equal(getPod('huge')?.spec.nodeName, undefined);

    store.create(node('n4', { allocatable: { cpu: '8', memory: '8Gi', pods: '110' } }));
    assert.equal(await waitFor(() => getPod('huge')?.spec.nodeName, 'huge placed'), 'n4');
  });

  it('each node is counted under the first plugin that refuses it, in kube-scheduler\'s order', async () => {
    // n1: cordoned (NodeUnschedulable runs before NodeResourcesFit); n2: tainted (TaintToleration
    // too); n3: only short of cpu and memory (both counted).
    const n1 = store.get('nodes', undefined, 'n1') as Node;
    store.update({ ...n1, spec: { ...n1.spec, unschedulable: true } });
    const n2 = store.get('nodes', undefined, 'n2') as Node;
    store.update({ ...n2, spec: { ...n2.spec, taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] } });
    store.create(podRequesting('big', { cpu: '6', memory: '9Gi' }));
    const cond = await waitFor(() => (condition('big')?.status === 'False' ? condition('big') : undefined), 'big refused');
    assert.equal(cond.message, '0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.');
  });

  it('requests add up on a node; the least allocated node is chosen', async () => {
    store.create(podRequesting('a', { cpu: '3' }));
    // n2 and n3 (4 cpu) both leave 1 cpu: the tie goes by name; n1 (2 cpu) cannot take it.
    assert.equal(await waitFor(() => getPod('a')?.spec.nodeName, 'a placed'), 'n2');
    store.create(podRequesting('b', { cpu: '1500m' }));
    // n3 is empty: least allocated (n1 would be 75% full, n2 over).
    assert.equal(await waitFor(() => getPod('b')?.spec.nodeName, 'b placed'), 'n3');
    store.create(podRequesting('c', { cpu: '3' }));
    const cond = await waitFor(() => (condition('c')?.status === 'False' ? condition('c') : undefined), 'c refused');
    assert.equal(cond.message, '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.');
    // a finishing frees n2 (a pod being deleted would still hold its requests until it is gone).
    const a = getPod('a') as Pod;
    store.update({ ...a, status: { ...a.status, phase: 'Succeeded' } }, { subresource: 'status' });
    assert.equal(await waitFor(() => getPod('c')?.spec.nodeName, 'c placed'), 'n2');
  });
});
