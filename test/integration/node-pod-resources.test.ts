// Resource requests against what the node reports, through `stowage up`, YAML and the CLI: the
// embedded node's status.allocatable carries the machine's cpu, memory, nodefs size and 110 pods;
// a pod asking more CPU than the machine has stays Pending with kube-scheduler's "0/1 nodes are
// available: 1 Insufficient cpu." (PodScheduled condition and FailedScheduling event, in `describe
// pod`), while a modest one runs. Ends with nothing left mounted or attached.
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { after, before, describe, it } from 'node:test';
import type { Node } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const pod = (name: string, cpu: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    resources:
      requests:
        cpu: "${cpu}"
        memory: 16Mi
`;

describe('pod resource requests against the node\'s allocatable', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-res-', 'res-node');
  });

  after(async () => {
    if (up === undefined) return;
    assert.deepEqual(await up.stop(), []);
  });

  it('the node reports the machine as capacity and allocatable', async () => {
    const node = await until('the node to report allocatable cpu', 60_000, async () => {
      const ran = await up.cli('get', 'node', 'res-node', '-o', 'json');
      const n = ran.code === 0 ? (JSON.parse(ran.stdout) as Node) : undefined;
      return n?.status?.allocatable?.['cpu'] !== undefined ? n : undefined;
    });
    const alloc = node.status?.allocatable ?? {};
    assert.equal(alloc['cpu'], String(availableParallelism()));
    assert.equal(alloc['pods'], '110');
    assert.match(alloc['memory'] ?? '', /^\d+(Ki|Mi|Gi)?$/);
    assert.match(alloc['ephemeral-storage'] ?? '', /^\d+(Ki|Mi|Gi|Ti)?$/);
    assert.deepEqual(node.status?.capacity, alloc);
  });

  it('a pod asking more cpu than the machine has stays Pending with "Insufficient cpu"; a modest one runs', async () => {
    await up.apply(pod('greedy', String(availableParallelism() * 4)));
    await up.apply(pod('modest', '100m'));
    const running = await until('modest to run', 90_000, async () => {
      const p = await up.pod('modest');
      return p?.status?.phase === 'Running' ? p : undefined;
    });
    assert.equal(running.spec.nodeName, 'res-node');
    const greedy = await until('greedy to be refused', 30_000, async () => {
      const p = await up.pod('greedy');
      return p?.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False') ? p : undefined;
    });
    assert.equal(greedy.spec.nodeName, undefined);
    assert.equal(greedy.status?.phase, 'Pending');
    const cond = greedy.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(cond?.reason, 'Unschedulable');
    assert.equal(cond?.message, '0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.');
    const described = await up.cli('describe', 'pod', 'greedy');
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /Warning\s+FailedScheduling\s+.*0\/1 nodes are available: 1 Insufficient cpu\. preemption: 0\/1 nodes are available: 1 Preemption is not helpful for scheduling\./);
  });
});
