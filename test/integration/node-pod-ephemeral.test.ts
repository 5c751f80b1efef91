// Generic ephemeral volumes on the node, through YAML and the CLI: the node agent mounts the claim
// "<pod>-<volume>" that the pod owns (made here as the ephemeral-volume controller makes it, unless
// a controller already did), and refuses a claim of that name the pod does not own, with the
// kubelet's words; and a CSI ephemeral inline volume of a driver that does not allow Ephemeral is
// refused as the kubelet refuses it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const pod = (name: string, nodeName?: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1${nodeName ? `\n  nodeName: ${nodeName}` : ''}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo scratch > /scratch/file; while true; do sleep 0.2; done"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - name: scratch
    ephemeral:
      volumeClaimTemplate:
        spec:
          accessModes: [ReadWriteOnce]
          resources:
            requests:
              storage: 64Mi
`;

const claim = (name: string, owner?: { name: string; uid: string }): string => `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${name}${owner ? `\n  ownerReferences:\n  - apiVersion: v1\n    kind: Pod\n    name: ${owner.name}\n    uid: ${owner.uid}\n    controller: true\n    blockOwnerDeletion: true` : ''}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
`;

describe('generic ephemeral volumes on the node', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-ephemeral-', 'eph-node');
  });

  after(async () => {
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  it('mounts the claim the pod owns', async () => {
    await up.apply(pod('scratcher'));
    const created = await up.pod('scratcher');
    await sleep(2_000);
    if ((await up.cli('get', 'pvc', 'scratcher-scratch')).code !== 0) {
      await up.apply(claim('scratcher-scratch', { name: 'scratcher', uid: created?.metadata.uid ?? '' }));
    }
    await until('the pod to run', 90_000, async () => (await up.pod('scratcher'))?.status?.phase === 'Running');
    const read = await up.cli('exec', 'scratcher', '--', 'sh', '-c', 'cat /scratch/file; grep -c " /scratch " /proc/self/mountinfo');
    assert.equal(read.stdout, 'scratch\n1\n', `the claim is mounted at /scratch (${read.stderr})`);
    assert.equal((await up.cli('delete', 'pod', 'scratcher')).code, 0);
  });

  it('refuses a claim of that name the pod does not own', async () => {
    await up.apply(claim('squatter-scratch'));
    await up.apply(pod('squatter', up.node));
    const event = await until('a FailedMount event', 60_000, async () => {
      const ran = await up.cli('get', 'events', '--field-selector', 'involvedObject.name=squatter', '-o', 'json');
      return (JSON.parse(ran.stdout) as { items: { reason: string; message: string }[] }).items.find((e) => e.reason === 'FailedMount');
    });
    assert.equal(event.message, 'PVC default/squatter-scratch was not created for pod default/squatter (pod is not owner)');
    assert.equal((await up.pod('squatter'))?.status?.phase, 'Pending');
    assert.equal((await up.cli('delete', 'pod', 'squatter')).code, 0);
  });
});

describe('CSI ephemeral inline volumes', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-inline-', 'inline-node');
  });

  after(async () => {
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  it('refuses an inline volume of a driver whose CSIDriver does not list Ephemeral, with the kubelet\'s words', async () => {
    await up.apply(`apiVersion: v1
kind: Pod
metadata:
  name: inline
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "60"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - name: scratch
    csi:
      driver: local.csi.stowage.dev
      volumeAttributes:
        size: 64Mi
`);
    const event = await until('a FailedMount event', 60_000, async () => {
      const ran = await up.cli('get', 'events', '--field-selector', 'involvedObject.name=inline', '-o', 'json');
      return (JSON.parse(ran.stdout) as { items: { reason: string; message: string }[] }).items.find((e) => e.reason === 'FailedMount');
    });
    assert.equal(event.message, 'MountVolume.NewMounter initialization failed for volume "scratch" : volume mode "Ephemeral" not supported by driver local.csi.stowage.dev (only supports ["Persistent"])');
    assert.equal((await up.pod('inline'))?.status?.phase, 'Pending');
    assert.equal((await up.cli('delete', 'pod', 'inline')).code, 0);
  });
});
