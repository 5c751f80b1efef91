// Node lifecycle end to end through `stowage up --nodes 2` and the real kubectl, with short
// timings (grace period 6 s, leases of 4 s renewed every second, default tolerations of 8 s): the
// node Leases and the leader-election Leases exist and move; a node whose agent freezes (the test
// hook: a hung kubelet) goes NotReady with its conditions Unknown and the unreachable taints
// (`kubectl get node`, `kubectl describe node`); its Deployment pod is evicted after its
// tolerationSeconds (TaintManagerEviction) and recreated on the other node; the node comes back
// and its taints go; `kubectl taint node … k=v:NoExecute` evicts a pod at once.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pod } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, type Up } from '../support/stowage-up.js';

const WEB = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox:1
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
`;

describe('node lifecycle: leases, NotReady, taints and eviction', { skip: needsRoot, timeout: 600_000 }, () => {
  let up: Up;

  const paused = async (nodes: string[]): Promise<void> => {
    await writeFile(join(up.state, 'paused-agents'), nodes.join('\n'));
    up.signal('SIGUSR2');
  };

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await up.kubectl(...args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  const webPods = async (): Promise<Pod[]> => (JSON.parse(await kubectl('get', 'pods', '-l', 'app=web', '-o', 'json')) as { items: Pod[] }).items;

  const runningWebPod = async (except?: string): Promise<Pod> => {
    let found: Pod | undefined;
    await up.until('a running web pod', async () => {
      found = (await webPods()).find((p) => p.metadata.name !== except && p.metadata.deletionTimestamp === undefined && p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return found !== undefined;
    });
    return found as Pod;
  };

  before(async () => {
    up = await startUp('stowage-lifecycle-', 'node-1', '512Mi', {
      args: ['--nodes', '2', '--node-monitor-grace-period', '6s', '--node-lease-duration-seconds', '4', '--default-not-ready-toleration-seconds', '8', '--default-unreachable-toleration-seconds', '8'],
      env: { STOWAGE_TEST_HOOKS: '1' },
    });
  });

  after(async () => {
    if (up !== undefined) {
      await paused([]).catch(() => undefined);
      await up.cleanup();
    }
  });

  it('serves the node Leases and the leader-election Leases, and renews them', async () => {
    const table = await kubectl('get', 'lease', '-A');
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAMESPACE\s+NAME\s+HOLDER\s+AGE$/);
    for (const [ns, name, holder] of [
      ['kube-node-lease', 'node-1', /^node-1$/],
      ['kube-node-lease', 'node-2', /^node-2$/],
      ['kube-system', 'kube-controller-manager', /^.+_[0-9a-f-]{36}$/],
      ['kube-system', 'kube-scheduler', /^.+_[0-9a-f-]{36}$/],
    ] as const) {
      const row = lines.find((l) => l.split(/\s+/)[0] === ns && l.split(/\s+/)[1] === name);
      assert.ok(row, `${ns}/${name} listed:\n${table}`);
      assert.match(row.split(/\s+/)[2] ?? '', holder);
    }
    const lease = JSON.parse(await kubectl('get', 'lease', '-n', 'kube-node-lease', 'node-1', '-o', 'json')) as { metadata: { ownerReferences?: { kind: string; name: string }[] }; spec: { leaseDurationSeconds: number; renewTime: string } };
    assert.equal(lease.spec.leaseDurationSeconds, 4);
    assert.match(lease.spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime');
    assert.deepEqual(lease.metadata.ownerReferences?.map((r) => `${r.kind}/${r.name}`), ['Node/node-1']);
    const leader = await kubectl('get', 'lease', '-n', 'kube-system', 'kube-scheduler', '-o', 'jsonpath={.spec.renewTime}');
    await sleep(2_500);
    assert.notEqual(await kubectl('get', 'lease', '-n', 'kube-node-lease', 'node-1', '-o', 'jsonpath={.spec.renewTime}'), lease.spec.renewTime, 'the node lease moved');
    assert.notEqual(await kubectl('get', 'lease', '-n', 'kube-system', 'kube-scheduler', '-o', 'jsonpath={.spec.renewTime}'), leader, 'the leader lease moved');
    // kubectl describe node finds the node's Lease as on a cluster.
    assert.match(await kubectl('describe', 'node', 'node-1'), /\nLease:\n\s+HolderIdentity:\s+node-1\n\s+AcquireTime:\s+<unset>\n\s+RenewTime:\s+\w{3}, \d\d \w{3} \d{4}/);
    // The nodes report the machine's pressure conditions, in the kubelet's words.
    const conditions = await kubectl('get', 'node', 'node-1', '-o', 'jsonpath={range .status.conditions[*]}{.type}={.reason} {end}');
    assert.equal(conditions.trim(), 'MemoryPressure=KubeletHasSufficientMemory DiskPressure=KubeletHasNoDiskPressure PIDPressure=KubeletHasSufficientPID Ready=KubeletReady');
  });

  it('a node whose agent stops goes NotReady with the unreachable taints; its pod is evicted after its tolerationSeconds and recreated on the other node', async () => {
    await writeFile(join(up.dir, 'web.yaml'), WEB);
    await kubectl('apply', '-f', join(up.dir, 'web.yaml'));
    const first = await runningWebPod();
    const lost = first.spec.nodeName ?? '';
    const other = lost === 'node-1' ? 'node-2' : 'node-1';
    assert.deepEqual(
      first.spec.tolerations?.map((t) => `${t.key}:${t.effect}:${t.tolerationSeconds}`),
      ['node.kubernetes.io/not-ready:NoExecute:8', 'node.kubernetes.io/unreachable:NoExecute:8'],
      'DefaultTolerationSeconds with the configured seconds',
    );

    await paused([lost]);
    const frozenAt = Date.now();
    await up.until(`${lost} NotReady`, async () => {
      const row = (await kubectl('get', 'node', lost, '--no-headers')).split(/\s+/);
      return row[1] === 'NotReady';
    }, 60_000);
    const notReadyAfter = Date.now() - frozenAt;
    assert.ok(notReadyAfter >= 4_000, `not before the grace period (${notReadyAfter} ms)`);
    let taintedAt = 0;
    await up.until('the unreachable taints', async () => {
      const taints = await kubectl('get', 'node', lost, '-o', 'jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}');
      taintedAt = Date.now();
      return taints.trim() === 'node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute';
    });
    const described = await kubectl('describe', 'node', lost);
    const taintLines = /Taints:\s+(.+)\n\s+(.+)\n/.exec(described)?.slice(1).sort();
    assert.deepEqual(taintLines, ['node.kubernetes.io/unreachable:NoExecute', 'node.kubernetes.io/unreachable:NoSchedule'], described);
    for (const type of ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready']) {
      assert.match(described, new RegExp(`\\n\\s+${type}\\s+Unknown\\s+.+NodeStatusUnknown\\s+Kubelet stopped posting node status\\.`), `${type} Unknown in describe`);
    }
    assert.match(described, /NodeNotReady\s+.*Node .+ status is now: NodeNotReady/);
    // Its pod: not ready at once, still there within its 8 s.
    const ready = await kubectl('get', 'pod', first.metadata.name ?? '', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}');
    assert.equal(ready, 'False');
    const stillThere = await kubectl('get', 'pod', first.metadata.name ?? '', '-o', 'jsonpath={.metadata.deletionTimestamp}');
    assert.equal(stillThere, '', 'not evicted before its tolerationSeconds');

    let evictedAt = 0;
    await up.until('the pod to be evicted', async () => {
      evictedAt = Date.now();
      return (await kubectl('get', 'pod', first.metadata.name ?? '', '-o', 'jsonpath={.metadata.deletionTimestamp}')) !== '';
    }, 60_000);
    assert.ok(evictedAt - taintedAt >= 5_000, `evicted ${evictedAt - taintedAt} ms after the taint: not before its tolerationSeconds`);
    const events = await kubectl('get', 'events', '--field-selector', `involvedObject.name=${first.metadata.name ?? ''}`, '-o', 'jsonpath={range .items[*]}{.reason}|{.message}|{.source.component}{"\\n"}{end}');
    assert.match(events, new RegExp(`TaintManagerEviction\\|Marking for deletion Pod default/${first.metadata.name ?? ''}\\|taint-eviction-controller`));
    assert.match(events, /NodeNotReady\|Node is not ready\|node-controller/);
    const second = await runningWebPod(first.metadata.name);
    assert.equal(second.spec.nodeName, other, 'recreated on the node that answers');

    // The node comes back: Ready, its taints gone, the evicted pod finished there.
    await paused([]);
    await up.until(`${lost} Ready without taints`, async () => {
      const row = (await kubectl('get', 'node', lost, '--no-headers')).split(/\s+/);
      const taints = await kubectl('get', 'node', lost, '-o', 'jsonpath={.spec.taints}');
      return row[1] === 'Ready' && taints === '';
    });
    await up.until('the evicted pod to be gone', async () => (await up.kubectl('get', 'pod', first.metadata.name ?? '')).code !== 0);
    const nodeEvents = await kubectl('get', 'events', '--field-selector', `involvedObject.kind=Node,involvedObject.name=${lost}`, '-o', 'jsonpath={range .items[*]}{.reason}|{.source.component}{"\\n"}{end}');
    assert.match(nodeEvents, /^NodeNotReady\|node-controller$/m);
    assert.match(nodeEvents, /^NodeReady\|kubelet$/m, 'the agent says it is back');
  });

  it('kubectl taint … :NoExecute evicts a pod that does not tolerate it, at once', async () => {
    const pod = await runningWebPod();
    const node = pod.spec.nodeName ?? '';
    const out = await kubectl('taint', 'node', node, 'maintenance=now:NoExecute');
    assert.equal(out, `node/${node} tainted\n`);
    try {
      await up.until('the pod to be evicted', async () => (await kubectl('get', 'pod', pod.metadata.name ?? '', '--ignore-not-found', '-o', 'jsonpath={.metadata.deletionTimestamp}')) !== '' || (await up.kubectl('get', 'pod', pod.metadata.name ?? '')).code !== 0, 20_000);
      const replacement = await runningWebPod(pod.metadata.name);
      assert.notEqual(replacement.spec.nodeName, node, 'not on the tainted node');
    } finally {
      await kubectl('taint', 'node', node, 'maintenance=now:NoExecute-');
    }
  });
});
