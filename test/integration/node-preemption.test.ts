// Preemption end to end, through `stowage up`, YAML and the CLI: two PriorityClasses; a low-priority
// Deployment whose two replicas take 90% of the cpu the node reports (requests relative to its
// allocatable, read from the API); then a high-priority pod asking 45%. The scheduler nominates
// the node for it (status.nominatedNodeName), evicts one replica (DisruptionTarget, a graceful
// delete, the Normal Preempted event "Preempted by pod <uid> on node <node>"), and binds it once
// the victim is gone: it runs. The replica the ReplicaSet makes in its place stays Pending with
// kube-scheduler's words (no victims of lower priority than it). Ends with nothing left mounted.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Event, Node, Pod } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const NODE = 'pre-node';
const LOW = 100;
const HIGH = 1_000_000;

const classes = `apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: bench-low
value: ${LOW}
description: fillers
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: bench-high
value: ${HIGH}
description: preempts the fillers
`;

// spec.priority is what the Priority admission sets from the class; given here as well (equal to
// the class's value, which the admission accepts) so the test does not depend on it.
const spec = (cls: string, priority: number, milliCpu: number, indent: string): string =>
  `terminationGracePeriodSeconds: 1
priorityClassName: ${cls}
priority: ${priority}
containers:
- name: main
  image: busybox
  command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  resources:
    requests:
      cpu: ${milliCpu}m
      memory: 16Mi
`
    .split('\n')
    .map((l) => (l === '' ? l : indent + l))
    .join('\n');

const filler = (milliCpu: number): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: filler
spec:
  replicas: 2
  selector:
    matchLabels: {app: filler}
  template:
    metadata:
      labels: {app: filler}
    spec:
${spec('bench-low', LOW, milliCpu, '      ')}`;

const vip = (milliCpu: number): string => `apiVersion: v1
kind: Pod
metadata:
  name: vip
spec:
${spec('bench-high', HIGH, milliCpu, '  ')}`;

describe('preemption through stowage up', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-pre-', NODE);
  });

  after(async () => {
    if (up === undefined) return;
    await up.cli('delete', 'deployment', 'filler');
    assert.deepEqual(await up.stop(), []);
  });

  const fillerPods = async (): Promise<Pod[]> => {
    const ran = await up.cli('get', 'pods', '-l', 'app=filler', '-o', 'json');
    assert.equal(ran.code, 0, ran.stderr);
    return (JSON.parse(ran.stdout) as { items: Pod[] }).items;
  };

  it('a high-priority pod evicts one low-priority replica, is nominated, and runs once it is gone', async () => {
    const node = await until('the node to report allocatable cpu', 60_000, async () => {
      const ran = await up.cli('get', 'node', NODE, '-o', 'json');
      const n = ran.code === 0 ? (JSON.parse(ran.stdout) as Node) : undefined;
      return n?.status?.allocatable?.['cpu'] !== undefined ? n : undefined;
    });
    const cpu = node.status?.allocatable?.['cpu'] ?? '';
    const allocMilli = cpu.endsWith('m') ? Number(cpu.slice(0, -1)) : Number(cpu) * 1000;
    assert.ok(allocMilli >= 1000, `allocatable cpu ${cpu}`);
    const share = Math.floor(allocMilli * 0.45);

    await up.apply(classes);
    await up.apply(filler(share));
    const running = await until('both fillers to run', 120_000, async () => {
      const pods = await fillerPods();
      return pods.length === 2 && pods.every((p) => p.status?.phase === 'Running') ? pods : undefined;
    });
    const fillerNames = new Set(running.map((p) => p.metadata.name ?? ''));

    await up.apply(vip(share));
    const nominated = await until('vip to be nominated', 60_000, async () => {
      const p = await up.pod('vip');
      return p?.status?.nominatedNodeName ? p : undefined;
    });
    assert.equal(nominated.status?.nominatedNodeName, NODE);
    const uid = nominated.metadata.uid ?? '';

    const preempted = await until('a Preempted event', 60_000, async () => {
      const ran = await up.cli('get', 'events', '-o', 'json');
      const events = ran.code === 0 ? (JSON.parse(ran.stdout) as { items: Event[] }).items : [];
      return events.find((e) => e.reason === 'Preempted');
    });
    assert.equal(preempted.type, 'Normal');
    assert.equal(preempted.message, `Preempted by pod ${uid} on node ${NODE}`);
    const victim = preempted.involvedObject.name ?? '';
    assert.ok(fillerNames.has(victim), `the victim ${victim} is a filler`);

    const vipRunning = await until('vip to run', 120_000, async () => {
      const p = await up.pod('vip');
      return p?.status?.phase === 'Running' ? p : undefined;
    });
    assert.equal(vipRunning.spec.nodeName, NODE);
    assert.equal(await up.pod(victim), undefined, 'the victim is gone');

    // One filler survived; its replacement waits, in kube-scheduler's words.
    const { survivors, waiting } = await until('the replacement filler to be refused', 60_000, async () => {
      const pods = await fillerPods();
      const survivors = pods.filter((p) => fillerNames.has(p.metadata.name ?? ''));
      const waiting = pods.filter((p) => !fillerNames.has(p.metadata.name ?? '') && p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False'));
      return waiting.length === 1 ? { survivors, waiting } : undefined;
    });
    assert.equal(survivors.length, 1);
    assert.equal(survivors[0]?.status?.phase, 'Running');
    const condition = waiting[0]?.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(condition?.message, '0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.');
    assert.equal(waiting[0]?.spec.nodeName, undefined);

    // kubectl's wide table shows where it runs and where it was nominated.
    const wide = await up.cli('get', 'pod', 'vip', '-o', 'wide');
    assert.equal(wide.code, 0, wide.stderr);
    assert.match(wide.stdout, /NOMINATED NODE/);
    assert.match(wide.stdout, new RegExp(`^vip\\s+1/1\\s+Running\\s.*\\s${NODE}\\s+${NODE}\\s`, 'm'));
  });
});
