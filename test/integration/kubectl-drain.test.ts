// `kubectl drain` against `stowage up --nodes 2`, as an operator takes a node down for
// maintenance: a PodDisruptionBudget that allows no disruption makes the real kubectl's evictions
// fail with Kubernetes' 429 ("Cannot evict pod as it would violate the pod's disruption budget.")
// and the drain times out with the pods still running; eased to minAvailable 1, the same drain
// evicts one pod at a time, the Deployment's replacements start on the other node, and the
// application never has fewer than one ready pod. The eviction subresource's refusals (a second
// budget over the same pods, a body naming another pod) come back in upstream's words. Everything
// `up` started is stopped and nothing stays mounted or attached.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import type { PodDisruptionBudget } from '../../src/control/api/types/policy.js';
import { needsRoot } from '../support/driver-harness.js';
import type { Ran } from '../support/processes.js';
import { startUp, type Up } from '../support/stowage-up.js';

const WEB = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web}
`;

const isReady = (p: Pod): boolean => p.metadata.deletionTimestamp === undefined && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

describe('`kubectl drain` honours PodDisruptionBudgets (stowage up --nodes 2)', { skip: needsRoot, timeout: 600_000 }, () => {
  let up: Up;
  const kubectlRun = (...args: string[]): Promise<Ran> => up.kubectl(...args);
  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await kubectlRun(...args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** Waits for a probe to give a value (up.until waits for true). */
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> => {
    let value: T | undefined;
    await up.until(what, async () => (value = await probe()) !== undefined, timeoutMs);
    return value as T;
  };
  const webPods = async (): Promise<Pod[]> => JSON.parse(await kubectl('get', 'pods', '-l', 'app=web', '-o', 'json')).items as Pod[];
  const budget = async (): Promise<PodDisruptionBudget> => JSON.parse(await kubectl('get', 'pdb', 'web', '-o', 'json')) as PodDisruptionBudget;

  before(async () => {
    up = await startUp('stowage-drain-', 'node-1', '256Mi', { args: ['--nodes', '2'] });
  });

  after(async () => {
    await up?.cleanup();
  });

  it('a budget that allows no disruption stops the drain; eased, the drain moves the pods one at a time', async () => {
    // Both replicas on node-1: node-2 is cordoned while they start.
    assert.equal(await kubectl('cordon', 'node-2'), 'node/node-2 cordoned\n');
    const file = join(up.dir, 'web.yaml');
    await writeFile(file, WEB);
    assert.equal(await kubectl('apply', '-f', file), 'deployment.apps/web created\npoddisruptionbudget.policy/web created\n');
    const before = await until('two web pods ready on node-1', async () => {
      const pods = await webPods();
      return pods.length === 2 && pods.every((p) => isReady(p) && p.spec.nodeName === 'node-1') ? pods : undefined;
    });
    assert.equal(await kubectl('uncordon', 'node-2'), 'node/node-2 uncordoned\n');

    // The disruption controller's figures, in kubectl's columns.
    const status = await until('the budget worked out', async () => {
      const b = await budget();
      return b.status?.currentHealthy === 2 && b.status.observedGeneration === b.metadata.generation ? b.status : undefined;
    });
    assert.deepEqual({ desired: status.desiredHealthy, expected: status.expectedPods, allowed: status.disruptionsAllowed }, { desired: 2, expected: 2, allowed: 0 });
    assert.deepEqual(
      status.conditions?.map((c) => [c.type, c.status, c.reason]),
      [['DisruptionAllowed', 'False', 'InsufficientPods']],
    );
    assert.match(await kubectl('get', 'pdb'), /^NAME\s+MIN AVAILABLE\s+MAX UNAVAILABLE\s+ALLOWED DISRUPTIONS\s+AGE\nweb\s+2\s+N\/A\s+0\s+\S+\n$/);

    // The drain cannot evict anything: kubectl reports the 429 and gives up at its timeout.
    const blocked = await kubectlRun('drain', 'node-1', '--timeout', '8s');
    assert.notEqual(blocked.code, 0, blocked.stdout);
    assert.match(blocked.stderr, /error when evicting pods\/"web-[a-z0-9-]+" -n "default" \(will retry after 5s\): Cannot evict pod as it would violate the pod's disruption budget\./);
    const still = await webPods();
    assert.deepEqual(
      still.map((p) => [p.metadata.uid, p.spec.nodeName, isReady(p)]).sort(),
      before.map((p) => [p.metadata.uid, 'node-1', true]).sort(),
      'both pods still run where they were',
    );

    // The eviction subresource's other refusals, through the real kubectl.
    const victim = before[0]?.metadata.name ?? '';
    const evictionOf = async (name: string): Promise<string> => {
      const f = join(up.dir, `eviction-${name}.json`);
      await writeFile(f, JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name } }));
      return f;
    };
    const wrongName = await kubectlRun('create', '--raw', `/api/v1/namespaces/default/pods/${victim}/eviction`, '-f', await evictionOf('someone-else'));
    assert.match(wrongName.stderr, /\(BadRequest\): name in URL does not match name in Eviction object/);
    await kubectl('create', 'pdb', 'web-too', '--selector', 'app=web', '--max-unavailable', '1');
    const twoBudgets = await kubectlRun('create', '--raw', `/api/v1/namespaces/default/pods/${victim}/eviction`, '-f', await evictionOf(victim));
    assert.match(twoBudgets.stderr, /This pod has more than one PodDisruptionBudget, which the eviction subresource does not support\./);
    await kubectl('delete', 'pdb', 'web-too');

    // Eased: one pod may go at a time. The drain waits for each replacement to be ready.
    await kubectl('patch', 'pdb', 'web', '--type', 'merge', '-p', '{"spec":{"minAvailable":1}}');
    let fewestReady = 2;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const ready = (await webPods()).filter(isReady).length;
        fewestReady = Math.min(fewestReady, ready);
        await sleep(150);
      }
    })();
    const drained = await kubectlRun('drain', 'node-1', '--timeout', '180s');
    watching = false;
    await watcher;
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /node\/node-1 drained/);
    for (const p of before) assert.match(drained.stdout, new RegExp(`pod/${p.metadata.name} evicted`));
    const after = await until('two web pods ready on node-2', async () => {
      const pods = await webPods();
      return pods.length === 2 && pods.every((p) => isReady(p) && p.spec.nodeName === 'node-2') ? pods : undefined;
    });
    assert.equal(after.filter((p) => before.some((b) => b.metadata.uid === p.metadata.uid)).length, 0, 'both pods were replaced');
    assert.ok(fewestReady >= 1, `the application kept a ready pod throughout (fewest seen: ${fewestReady})`);
    assert.match(await kubectl('get', 'node', 'node-1'), /Ready,SchedulingDisabled/);
  });
});
