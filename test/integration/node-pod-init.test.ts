// initContainers end to end through YAML and the CLI: they run in order, each to completion, with
// the pod's volumes (a claim and an emptyDir), before the app container starts, which sees what they
// wrote; `get pod` shows Init:0/2, Init:1/2 on the way, as kubectl does. A failing one follows the
// restart policy: Never fails the pod (Init:Error, the app never starts), Always restarts it with
// back-off (Init:CrashLoopBackOff).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const ORDERED = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: init-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: ordered
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: first
    image: busybox
    command: ["sh", "-c", "sleep 2; echo first > /data/seed; echo first > /scratch/order"]
    volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /scratch}]
  - name: second
    image: busybox
    command: ["sh", "-c", "sleep 2; test -f /data/seed && echo second >> /scratch/order"]
    volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /scratch}]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; cat /data/seed /scratch/order; while true; do sleep 0.2; done"]
    volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /scratch}]
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: init-data
  - name: scratch
    emptyDir: {}
`;

const failing = (name: string, policy: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  restartPolicy: ${policy}
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: broken
    image: busybox
    command: ["sh", "-c", "exit 3"]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo app ran; sleep 60"]
`;

describe('initContainers', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-init-', 'init-node');
  });

  after(async () => {
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  /** The STATUS column of `stowage get pod NAME`. */
  const statusColumn = async (name: string): Promise<string> => {
    const ran = await up.cli('get', 'pod', name, '--no-headers');
    return ran.stdout.trim().split(/\s+/)[2] ?? '';
  };

  it('runs them in order with their volumes before the app, which sees their files', async () => {
    await up.apply(ORDERED);
    const seen = new Set<string>();
    await until('the pod to run', 120_000, async () => {
      seen.add(await statusColumn('ordered'));
      return seen.has('Running');
    });
    assert.ok(seen.has('Init:0/2'), `Init:0/2 shown while the first runs (seen: ${[...seen].join(', ')})`);
    assert.ok(seen.has('Init:1/2'), `Init:1/2 shown while the second runs (seen: ${[...seen].join(', ')})`);
    const logs = await up.cli('logs', 'ordered');
    assert.equal(logs.stdout, 'first\nfirst\nsecond\n', 'the app saw both init containers\' files, in order');
    const initLogs = await up.cli('logs', 'ordered', '-c', 'first');
    assert.equal(initLogs.code, 0, `logs -c names an init container, as in kubectl: ${initLogs.stderr}`);
    const pod = await up.pod('ordered');
    const inits = (pod?.status?.['initContainerStatuses'] ?? []) as { name: string; ready: boolean; state: { terminated?: { exitCode: number; reason: string } } }[];
    assert.deepEqual(
      inits.map((s) => [s.name, s.ready, s.state.terminated?.exitCode, s.state.terminated?.reason]),
      [
        ['first', true, 0, 'Completed'],
        ['second', true, 0, 'Completed'],
      ],
    );
    assert.equal(pod?.status?.conditions?.find((c) => c.type === 'Initialized')?.status, 'True');
    assert.equal((await up.cli('delete', 'pod', 'ordered')).code, 0);
  });

  it('restartPolicy Never: a failed init container fails the pod, Init:Error, and the app never runs', async () => {
    await up.apply(failing('never', 'Never'));
    const pod = await until('the pod to fail', 60_000, async () => {
      const p = await up.pod('never');
      return p?.status?.phase === 'Failed' ? p : undefined;
    });
    assert.equal(await statusColumn('never'), 'Init:Error');
    const initialized = pod.status?.conditions?.find((c) => c.type === 'Initialized');
    assert.deepEqual([initialized?.status, initialized?.reason, initialized?.message], ['False', 'ContainersNotInitialized', 'containers with incomplete status: [broken]']);
    const app = ((pod.status?.['containerStatuses'] ?? []) as { state: { waiting?: { reason: string } } }[])[0];
    assert.equal(app?.state.waiting?.reason, 'PodInitializing', 'the app container was never started');
    assert.equal((await up.cli('logs', 'never', '-c', 'app')).stdout, '');
    assert.equal((await up.cli('delete', 'pod', 'never')).code, 0);
  });

  it('restartPolicy Always: a failed init container is restarted with back-off (Init:CrashLoopBackOff)', async () => {
    await up.apply(failing('always', 'Always'));
    await until('Init:CrashLoopBackOff', 60_000, async () => (await statusColumn('always')) === 'Init:CrashLoopBackOff');
    const pod = await until('the init container to be restarted', 60_000, async () => {
      const p = await up.pod('always');
      const restarts = ((p?.status?.['initContainerStatuses'] ?? []) as { restartCount: number }[])[0]?.restartCount ?? 0;
      return restarts >= 1 ? p : undefined;
    });
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal((await up.cli('logs', 'always', '-c', 'app')).stdout, '', 'the app container never started');
    assert.equal((await up.cli('delete', 'pod', 'always')).code, 0);
  });
});
