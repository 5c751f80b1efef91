// The node lifecycle on an in-memory store with a fake clock: the node-lifecycle-controller (silent
// nodes Unknown in Kubernetes' words, pods marked not ready, taints from conditions and
// spec.unschedulable, taints gone when the node is back), the taint-eviction-controller (NoExecute
// evicts at once without a toleration, after tolerationSeconds with one, never with one without
// seconds, cancelled when the taint goes), DefaultTolerationSeconds admission, the node Lease and
// the leader-election Leases, and the flags `up` takes for them.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Lease } from '../../src/control/api/types/coordination.js';
import type { Node, NodeCondition, Pod, Taint, Toleration } from '../../src/control/api/types/core.js';
import { InformerFactory } from '../../src/control/controllers/informer.js';
import { LeaderLease } from '../../src/control/controllers/leader-lease.js';
import { desiredTaints, NodeLifecycleController, zoneModes } from '../../src/control/controllers/node-lifecycle.js';
import { evictionTime, TaintEvictionController } from '../../src/control/controllers/taint-eviction.js';
import { microTime, renewNodeLease } from '../../src/control/node/node-lease.js';
import { memAvailableBytes, pressureCondition, processCount, underPidPressure } from '../../src/control/node/node-pressure.js';
import { lifecycleFlags } from '../../src/cli/up.js';
import { admitDefaultTolerationSeconds } from '../../src/control/store/default-toleration-seconds.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, RecordingSink } from './control-controllers-helpers.js';

const T0 = Date.parse('2026-03-01T10:00:00Z');
const at = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
const GRACE = 40_000;

function readyNode(name: string, heartbeat: number, extra: NodeCondition[] = [], spec: Node['spec'] = {}): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec,
    status: {
      conditions: [
        ...extra,
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ready', lastHeartbeatTime: at(heartbeat), lastTransitionTime: at(heartbeat) },
      ],
    },
  };
}

function runningPod(name: string, node: string, tolerations?: Toleration[]): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }], ...(tolerations ? { tolerations } : {}) } } as Pod;
}

describe('node-lifecycle-controller', () => {
  let store: Store;
  let informers: InformerFactory;
  let events: RecordingSink;
  let clock: number;
  let c: NodeLifecycleController;

  beforeEach(() => {
    store = open(':memory:');
    informers = new InformerFactory(store, { resyncMs: 0, logger: quiet });
    events = new RecordingSink();
    clock = T0;
    c = new NodeLifecycleController({ store, nodes: informers.for('nodes'), leases: informers.for('leases'), pods: informers.for('pods'), events, logger: quiet, gracePeriodMs: GRACE, now: () => clock });
    informers.start();
  });
  afterEach(() => {
    informers.stop();
    store.close();
  });

  const node = (name: string): Node => store.get('nodes', undefined, name) as Node;
  const cond = (name: string, type: string): NodeCondition | undefined => node(name).status?.conditions?.find((x) => x.type === type);
  const taints = (name: string): string[] => (node(name).spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`);

  it('a node heard from within the grace period stays as it is, and is looked at again when the period ends', () => {
    store.create(readyNode('n1', T0));
    clock = T0 + 30_000;
    const r = c.syncNode('n1');
    assert.equal(cond('n1', 'Ready')?.status, 'True');
    assert.deepEqual(taints('n1'), []);
    assert.equal(r?.requeueAfterMs, 10_001);
  });

  it("a silent node's conditions become Unknown in Kubernetes' words, with the unreachable taints, an event and its pods not ready", () => {
    store.create(readyNode('n1', T0, [{ type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', lastHeartbeatTime: at(T0) }]));
    store.create(readyNode('n2', T0 + 60_000));
    const p = store.create(runningPod('web', 'n1'));
    store.update({ ...p, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
    clock = T0 + GRACE + 1;
    c.syncNode('n1');
    for (const type of ['Ready', 'MemoryPressure']) {
      const x = cond('n1', type);
      assert.equal(x?.status, 'Unknown', type);
      assert.equal(x?.reason, 'NodeStatusUnknown');
      assert.equal(x?.message, 'Kubelet stopped posting node status.');
      assert.equal(x?.lastHeartbeatTime, at(T0), 'the last heartbeat is kept');
      assert.equal(x?.lastTransitionTime, at(clock));
    }
    // Conditions it never posted are added as never updated.
    assert.equal(cond('n1', 'PIDPressure')?.reason, 'NodeStatusNeverUpdated');
    assert.equal(cond('n1', 'PIDPressure')?.message, 'Kubelet never posted node status.');
    assert.deepEqual(taints('n1'), ['node.kubernetes.io/unreachable:NoSchedule', 'node.kubernetes.io/unreachable:NoExecute']);
    assert.equal(node('n1').spec?.taints?.find((t) => t.effect === 'NoExecute')?.timeAdded, at(clock));
    assert.deepEqual(events.about('n1').map((e) => [e.type, e.reason, e.message]), [['Normal', 'NodeNotReady', 'Node n1 status is now: NodeNotReady']]);
    const pod = store.get('pods', 'default', 'web') as Pod;
    assert.equal(pod.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'False');
    assert.deepEqual(events.about('web').map((e) => [e.type, e.reason, e.message]), [['Warning', 'NodeNotReady', 'Node is not ready']]);
    // Again: nothing more to say.
    clock += 5_000;
    c.syncNode('n1');
    assert.equal(events.events.length, 2);
  });

  it('a renewed Lease keeps a node whose status heartbeat is old', () => {
    store.create(readyNode('n1', T0));
    renewNodeLease(store, 'n1', 40, new Date(T0 + 35_000));
    clock = T0 + GRACE + 10_000;
    c.syncNode('n1');
    assert.equal(cond('n1', 'Ready')?.status, 'True');
    clock = T0 + 35_000 + GRACE + 1;
    c.syncNode('n1');
    assert.equal(cond('n1', 'Ready')?.status, 'Unknown');
  });

  it('taints go when the node is back, and other taints are left alone', () => {
    store.create(readyNode('n1', T0, [], { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] }));
    store.create(readyNode('n2', T0 + 60_000));
    clock = T0 + GRACE + 1;
    c.syncNode('n1');
    assert.deepEqual(taints('n1'), ['dedicated:NoSchedule', 'node.kubernetes.io/unreachable:NoSchedule', 'node.kubernetes.io/unreachable:NoExecute']);
    // The kubelet posts again.
    const n = node('n1');
    store.update({ ...n, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: at(clock) }] } }, { subresource: 'status' });
    c.syncNode('n1');
    assert.deepEqual(taints('n1'), ['dedicated:NoSchedule']);
  });

  it('no node Ready at all: Unknown and NoSchedule, but no NoExecute taint (master disruption mode), and one left is removed', () => {
    store.create(readyNode('n1', T0));
    store.create(readyNode('n2', T0, [], { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: at(T0) }] }));
    clock = T0 + GRACE + 1;
    c.syncNode('n1');
    c.syncNode('n2');
    for (const n of ['n1', 'n2']) {
      assert.equal(cond(n, 'Ready')?.status, 'Unknown');
      assert.deepEqual(taints(n), ['node.kubernetes.io/unreachable:NoSchedule'], n);
    }
  });

  const zones: { name: string; ready: number; notReady: number; want: string }[] = [
    { name: 'all Ready', ready: 3, notReady: 0, want: 'add' },
    { name: 'one of two down', ready: 1, notReady: 1, want: 'add' },
    { name: 'none Ready', ready: 0, notReady: 2, want: 'remove' },
    { name: '3 of 5 down: partial disruption', ready: 2, notReady: 3, want: 'keep' },
    { name: '3 of 10 down: below 55%', ready: 7, notReady: 3, want: 'add' },
    { name: '2 of 3 down: not more than 2', ready: 1, notReady: 2, want: 'add' },
    { name: '36 of 60 down: a large zone', ready: 24, notReady: 36, want: 'add' },
  ];
  for (const row of zones) {
    it(`zone state: ${row.name} → ${row.want}`, () => {
      const nodes: Node[] = [];
      for (let i = 0; i < row.ready + row.notReady; i++) {
        nodes.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: `z${i}` }, status: { conditions: [{ type: 'Ready', status: i < row.ready ? 'True' : 'Unknown' }] } });
      }
      assert.deepEqual([...zoneModes(nodes).values()], [row.want]);
    });
  }

  const table: { name: string; conditions: [string, NodeCondition['status']][]; unschedulable?: boolean; want: string[] }[] = [
    { name: 'Ready', conditions: [['Ready', 'True']], want: [] },
    { name: 'Ready False', conditions: [['Ready', 'False']], want: ['node.kubernetes.io/not-ready:NoSchedule', 'node.kubernetes.io/not-ready:NoExecute'] },
    { name: 'Ready Unknown', conditions: [['Ready', 'Unknown']], want: ['node.kubernetes.io/unreachable:NoSchedule', 'node.kubernetes.io/unreachable:NoExecute'] },
    { name: 'memory pressure', conditions: [['MemoryPressure', 'True'], ['Ready', 'True']], want: ['node.kubernetes.io/memory-pressure:NoSchedule'] },
    { name: 'disk pressure', conditions: [['DiskPressure', 'True'], ['Ready', 'True']], want: ['node.kubernetes.io/disk-pressure:NoSchedule'] },
    { name: 'pid pressure', conditions: [['PIDPressure', 'True'], ['Ready', 'True']], want: ['node.kubernetes.io/pid-pressure:NoSchedule'] },
    { name: 'network unavailable', conditions: [['NetworkUnavailable', 'True'], ['Ready', 'True']], want: ['node.kubernetes.io/network-unavailable:NoSchedule'] },
    { name: 'no pressure', conditions: [['MemoryPressure', 'False'], ['DiskPressure', 'False'], ['Ready', 'True']], want: [] },
    { name: 'cordoned', conditions: [['Ready', 'True']], unschedulable: true, want: ['node.kubernetes.io/unschedulable:NoSchedule'] },
  ];
  for (const row of table) {
    it(`TaintNodesByCondition: ${row.name}`, () => {
      const n: Node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: row.unschedulable ? { unschedulable: true } : {}, status: { conditions: row.conditions.map(([type, status]) => ({ type, status })) } };
      assert.deepEqual(desiredTaints(n, T0).map((t) => `${t.key}:${t.effect}`), row.want);
    });
  }

  it('Ready False → Unknown swaps not-ready for unreachable; a taint that stays keeps its timeAdded', () => {
    const first = desiredTaints({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, status: { conditions: [{ type: 'Ready', status: 'False' }] } }, T0);
    const same = desiredTaints({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: { taints: first }, status: { conditions: [{ type: 'Ready', status: 'False' }] } }, T0 + 9_000);
    assert.equal(same.find((t) => t.effect === 'NoExecute')?.timeAdded, at(T0));
    const swapped = desiredTaints({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: { taints: first }, status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } }, T0 + 9_000);
    assert.deepEqual(swapped.map((t) => `${t.key}:${t.effect}`), ['node.kubernetes.io/unreachable:NoSchedule', 'node.kubernetes.io/unreachable:NoExecute']);
  });
});

describe('taint-eviction-controller', () => {
  const taint = (key: string, timeAdded?: number): Taint => ({ key, effect: 'NoExecute', ...(timeAdded === undefined ? {} : { timeAdded: at(timeAdded) }) });
  const unreachable = taint('node.kubernetes.io/unreachable', T0);
  const table: { name: string; tolerations?: Toleration[]; taints: Taint[]; want: number | undefined }[] = [
    { name: 'no NoExecute taint: never', taints: [{ key: 'k', effect: 'NoSchedule' }], want: undefined },
    { name: 'untolerated: now', taints: [taint('k', T0)], want: T0 + 5_000 },
    { name: 'tolerated for 300 s: 300 s after the taint was added', tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }], taints: [unreachable], want: T0 + 300_000 },
    { name: 'tolerated without seconds: never', tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' }], taints: [unreachable], want: undefined },
    { name: 'tolerating everything: never', tolerations: [{ operator: 'Exists' }], taints: [unreachable, taint('k', T0)], want: undefined },
    { name: 'one of two taints untolerated: now', tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', tolerationSeconds: 300 }], taints: [unreachable, taint('k', T0)], want: T0 + 5_000 },
    {
      name: 'the smallest tolerationSeconds of the tolerations used',
      tolerations: [
        { key: 'a', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 },
        { key: 'b', operator: 'Equal', value: 'x', effect: 'NoExecute', tolerationSeconds: 10 },
      ],
      taints: [taint('a', T0), { key: 'b', value: 'x', effect: 'NoExecute', timeAdded: at(T0) }],
      want: T0 + 10_000,
    },
    { name: 'a toleration for NoSchedule does not cover NoExecute', tolerations: [{ key: 'k', operator: 'Exists', effect: 'NoSchedule' }], taints: [taint('k', T0)], want: T0 + 5_000 },
    { name: 'negative seconds: now', tolerations: [{ key: 'k', operator: 'Exists', tolerationSeconds: -5 }], taints: [taint('k', T0)], want: T0 },
  ];
  for (const row of table) {
    it(row.name, () => {
      assert.equal(evictionTime(row.tolerations, row.taints, T0 + 5_000, (t) => Date.parse(t.timeAdded ?? '')), row.want);
    });
  }

  let store: Store;
  let informers: InformerFactory;
  let events: RecordingSink;
  let clock: number;
  let c: TaintEvictionController;
  beforeEach(() => {
    store = open(':memory:', { defaultTolerationSeconds: { notReady: 30, unreachable: 30 } });
    informers = new InformerFactory(store, { resyncMs: 0, logger: quiet });
    events = new RecordingSink();
    clock = T0;
    c = new TaintEvictionController({ store, nodes: informers.for('nodes'), pods: informers.for('pods'), events, logger: quiet, now: () => clock });
    informers.start();
  });
  afterEach(() => {
    informers.stop();
    store.close();
  });

  const setTaints = (name: string, taints: Taint[]): void => {
    const n = store.get('nodes', undefined, name) as Node;
    store.update({ ...n, spec: { ...n.spec, taints } });
  };

  it('deletes a pod that does not tolerate a NoExecute taint added by hand, with the DisruptionTarget condition and the event', () => {
    store.create(readyNode('n1', T0));
    store.create(runningPod('web', 'n1'));
    setTaints('n1', [{ key: 'k', value: 'v', effect: 'NoExecute', timeAdded: at(T0) }]);
    let seenCondition: unknown;
    const unwatch = store.watch('pods', { namespace: 'default' }, (ev) => {
      if (ev.type === 'MODIFIED') seenCondition = (ev.object as Pod).status?.conditions?.find((x) => x.type === 'DisruptionTarget');
    });
    c.syncPod('default/web');
    unwatch();
    // Deleted gracefully: Terminating until its node has stopped it.
    assert.ok(store.get('pods', 'default', 'web')?.metadata.deletionTimestamp, 'deleted');
    assert.deepEqual(seenCondition, { type: 'DisruptionTarget', status: 'True', reason: 'DeletionByTaintManager', message: 'Taint manager: deleting due to NoExecute taint', lastTransitionTime: at(T0) });
    assert.deepEqual(events.about('web').map((e) => [e.type, e.reason, e.message]), [['Normal', 'TaintManagerEviction', 'Marking for deletion Pod default/web']]);
  });

  it("waits the default toleration's seconds on an unreachable node, then deletes; a node back in time cancels", () => {
    store.create(readyNode('n1', T0));
    store.create(runningPod('stays', 'n1'));
    store.create(runningPod('goes', 'n1'));
    const pod = store.get('pods', 'default', 'goes') as Pod;
    assert.deepEqual(pod.spec.tolerations?.map((t) => [t.key, t.effect, t.tolerationSeconds]), [
      ['node.kubernetes.io/not-ready', 'NoExecute', 30],
      ['node.kubernetes.io/unreachable', 'NoExecute', 30],
    ]);
    setTaints('n1', [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: at(T0) }]);
    clock = T0 + 10_000;
    assert.deepEqual(c.syncPod('default/goes'), { requeueAfterMs: 20_000 });
    assert.deepEqual(c.syncPod('default/stays'), { requeueAfterMs: 20_000 });
    assert.equal(store.get('pods', 'default', 'goes')?.metadata.deletionTimestamp, undefined, 'still there within its tolerationSeconds');
    // The node comes back for "stays" only (its taint removed before the time).
    clock = T0 + 30_000;
    c.syncPod('default/goes');
    assert.ok(store.get('pods', 'default', 'goes')?.metadata.deletionTimestamp, 'deleted once its tolerationSeconds passed');
    setTaints('n1', []);
    assert.equal(c.syncPod('default/stays'), undefined);
    assert.equal(store.get('pods', 'default', 'stays')?.metadata.deletionTimestamp, undefined);
    assert.deepEqual(events.about('stays').map((e) => e.message), ['Cancelling deletion of Pod default/stays']);
  });
});

describe('DefaultTolerationSeconds admission', () => {
  const table: { name: string; tolerations?: Toleration[]; want: string[] }[] = [
    { name: 'none: both added', want: ['node.kubernetes.io/not-ready:Exists:NoExecute:300', 'node.kubernetes.io/unreachable:Exists:NoExecute:300'] },
    {
      name: 'one tolerated already: only the other',
      tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 5 }],
      want: ['node.kubernetes.io/unreachable:Exists:NoExecute:5', 'node.kubernetes.io/not-ready:Exists:NoExecute:300'],
    },
    { name: 'tolerating every taint: nothing', tolerations: [{ operator: 'Exists' }], want: [':Exists::'] },
    { name: 'NoSchedule only does not count', tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoSchedule' }], want: ['node.kubernetes.io/not-ready:Exists:NoSchedule:', 'node.kubernetes.io/not-ready:Exists:NoExecute:300', 'node.kubernetes.io/unreachable:Exists:NoExecute:300'] },
  ];
  for (const row of table) {
    it(row.name, () => {
      const pod = runningPod('p', 'n', row.tolerations);
      admitDefaultTolerationSeconds(pod);
      assert.deepEqual(pod.spec.tolerations?.map((t) => `${t.key ?? ''}:${t.operator}:${t.effect ?? ''}:${t.tolerationSeconds ?? ''}`), row.want);
    });
  }
});

describe('node and leader Leases', () => {
  it("renews the node's Lease in kube-node-lease, owned by its Node, with a MicroTime renewTime", () => {
    const store = open(':memory:');
    try {
      const n = store.create(readyNode('n1', T0));
      renewNodeLease(store, 'n1', 40, new Date(T0));
      const lease = renewNodeLease(store, 'n1', 40, new Date(T0 + 10_000));
      assert.equal(lease.metadata.namespace, 'kube-node-lease');
      assert.ok(store.get('namespaces', undefined, 'kube-node-lease'));
      assert.deepEqual(lease.spec, { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2026-03-01T10:00:10.000000Z' });
      assert.deepEqual(lease.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'n1', uid: n.metadata.uid }]);
      // Deleting the Node takes its Lease with it (the garbage collector follows the owner).
      store.delete('nodes', undefined, 'n1');
      assert.equal(store.get('leases', 'kube-node-lease', 'n1'), undefined);
    } finally {
      store.close();
    }
  });

  it('acquires a leader Lease, renews it, and takes over only an expired one (leaseTransitions counted)', () => {
    const store = open(':memory:');
    try {
      let now = T0;
      const a = new LeaderLease({ store, name: 'kube-scheduler', logger: quiet, identity: 'host_a', now: () => new Date(now) });
      const b = new LeaderLease({ store, name: 'kube-scheduler', logger: quiet, identity: 'host_b', now: () => new Date(now) });
      assert.equal(a.tryAcquireOrRenew(), true);
      const lease = (): Lease => store.get('leases', 'kube-system', 'kube-scheduler') as Lease;
      assert.deepEqual(lease().spec, { holderIdentity: 'host_a', leaseDurationSeconds: 15, acquireTime: microTime(new Date(T0)), renewTime: microTime(new Date(T0)), leaseTransitions: 0 });
      now += 2_000;
      assert.equal(a.tryAcquireOrRenew(), true);
      assert.equal(lease().spec?.renewTime, microTime(new Date(now)));
      assert.equal(b.tryAcquireOrRenew(), false, 'held by a, not expired');
      now += 16_000;
      assert.equal(b.tryAcquireOrRenew(), true, 'expired: b takes over');
      assert.equal(lease().spec?.holderIdentity, 'host_b');
      assert.equal(lease().spec?.leaseTransitions, 1);
    } finally {
      store.close();
    }
  });
});

describe('node pressure from the machine', () => {
  it("words MemoryPressure and PIDPressure as the kubelet, with an event only on a change", () => {
    const first = pressureCondition('MemoryPressure', undefined, false, at(T0));
    assert.deepEqual(first, { condition: { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available', lastHeartbeatTime: at(T0), lastTransitionTime: at(T0) }, event: 'NodeHasSufficientMemory' });
    const same = pressureCondition('MemoryPressure', first.condition, false, at(T0 + 10_000));
    assert.equal(same.event, undefined);
    assert.equal(same.condition.lastTransitionTime, at(T0));
    const pid = pressureCondition('PIDPressure', first.condition, true, at(T0));
    assert.equal(pid.condition.reason, 'KubeletHasInsufficientPID');
    assert.equal(pid.condition.message, 'kubelet has insufficient PID available');
    assert.equal(pid.event, 'NodeHasInsufficientPID');
  });

  it('reads MemAvailable and the process count; PID pressure below 10% of pid_max', () => {
    assert.equal(memAvailableBytes('MemTotal:       16000000 kB\nMemFree:  1 kB\nMemAvailable:     102400 kB\n'), 100 * 1024 * 1024);
    assert.equal(memAvailableBytes('MemTotal: 1 kB\n'), undefined);
    assert.equal(processCount('0.10 0.20 0.30 2/1234 5678\n'), 1234);
    assert.equal(underPidPressure(32768, 1000), false);
    assert.equal(underPidPressure(32768, 30000), true);
  });
});

describe('up: the node lifecycle flags', () => {
  it('defaults to upstream figures and takes durations and seconds', () => {
    assert.deepEqual(lifecycleFlags({}), { gracePeriodMs: 40_000, leaseDurationSeconds: 40, notReady: 300, unreachable: 300 });
    assert.deepEqual(lifecycleFlags({ nodeMonitorGracePeriod: '1m', nodeLeaseDurationSeconds: '4', defaultNotReadyTolerationSeconds: '0', defaultUnreachableTolerationSeconds: '8' }), {
      gracePeriodMs: 60_000,
      leaseDurationSeconds: 4,
      notReady: 0,
      unreachable: 8,
    });
  });

  const refused: [string, Parameters<typeof lifecycleFlags>[0], RegExp][] = [
    ['a grace period below 1s', { nodeMonitorGracePeriod: '500ms' }, /--node-monitor-grace-period must be at least 1s/],
    ['a grace period that is not a duration', { nodeMonitorGracePeriod: 'soon' }, /invalid duration "soon"/],
    ['a lease of 0 s', { nodeLeaseDurationSeconds: '0' }, /--node-lease-duration-seconds must be a whole number of seconds, at least 1, not "0"/],
    ['negative toleration seconds', { defaultUnreachableTolerationSeconds: '-1' }, /--default-unreachable-toleration-seconds must be a whole number of seconds, at least 0/],
    ['fractional toleration seconds', { defaultNotReadyTolerationSeconds: '1.5' }, /--default-not-ready-toleration-seconds must be a whole number/],
  ];
  for (const [name, flags, message] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(() => lifecycleFlags(flags), message);
    });
  }
});
