// Local PersistentVolumes and volumes this machine cannot mount, end to end through YAML and the
// CLI: a `local:` PV with required node affinity is bound through a WaitForFirstConsumer class, its
// pod scheduled to that node and given the directory (what it writes is there on the node); an nfs
// PV fails with one FailedMount event that says why (no nfs in this kernel, or a pointer to CSI).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const local = (path: string, node: string): string => `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-storage
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv
spec:
  capacity:
    storage: 100Mi
  accessModes: [ReadWriteOnce]
  storageClassName: local-storage
  local:
    path: ${path}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - key: kubernetes.io/hostname
          operator: In
          values: [${node}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: local-claim
spec:
  storageClassName: local-storage
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 100Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: local-user
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo from-the-pod > /data/written; while true; do sleep 0.2; done"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: local-claim
`;

const NFS = `apiVersion: v1
kind: PersistentVolume
metadata:
  name: nfs-pv
spec:
  storageClassName: manual
  capacity:
    storage: 1Gi
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  nfs:
    path: /data/k8s
    server: 10.151.30.11
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: nfs-pvc
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: nfs-user
spec:
  containers:
  - name: web
    image: nginx
    command: ["sleep", "60"]
    volumeMounts:
    - name: nfs
      subPath: test-volumes
      mountPath: /usr/share/nginx/html
  volumes:
  - name: nfs
    persistentVolumeClaim:
      claimName: nfs-pvc
`;

describe('local PVs, and volumes this node cannot mount', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-local-', 'local-node');
  });

  after(async () => {
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  const events = async (name: string) => {
    const ran = await up.cli('get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'json');
    return (JSON.parse(ran.stdout) as { items: { reason: string; message: string }[] }).items;
  };

  it('schedules the pod to the local PV\'s node and gives it the directory', async () => {
    const path = join(up.dir, 'local-disk');
    mkdirSync(path);
    await up.apply(local(path, up.node));
    const pod = await until('the pod to run', 90_000, async () => {
      const p = await up.pod('local-user');
      return p?.status?.phase === 'Running' ? p : undefined;
    });
    assert.equal(pod.spec.nodeName, up.node);
    await until('the pod to write', 30_000, async () => existsSync(join(path, 'written')));
    assert.equal(readFileSync(join(path, 'written'), 'utf8'), 'from-the-pod\n', 'the pod wrote into the local directory');
    assert.equal((await up.cli('delete', 'pod', 'local-user')).code, 0);
    assert.ok(existsSync(join(path, 'written')), 'a local volume keeps its data when the pod goes');
  });

  it('refuses an nfs PV with one event that says why', async () => {
    await up.apply(NFS);
    const failed = await until('a FailedMount event', 60_000, async () => (await events('nfs-user')).find((e) => e.reason === 'FailedMount'));
    const kernelHasNfs = readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.trim().endsWith('\tnfs') || l.trim() === 'nfs');
    assert.equal(
      failed.message,
      kernelHasNfs
        ? 'MountVolume.SetUp failed for volume "nfs-pv" : nfs volumes are not mounted by the embedded node agent (it mounts CSI, hostPath, local, emptyDir, configMap and secret volumes): use a CSI driver for nfs'
        : 'MountVolume.SetUp failed for volume "nfs-pv" : nfs volumes cannot be mounted on this node: it has no nfs filesystem (not in /proc/filesystems)',
    );
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal((await events('nfs-user')).filter((e) => e.reason === 'FailedMount').length, 1, 'one event, not one per retry');
    assert.equal((await up.cli('delete', 'pod', 'nfs-user')).code, 0);
  });
});
