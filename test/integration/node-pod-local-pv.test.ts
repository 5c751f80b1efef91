// Local PersistentVolumes (seed 002's `local:` with required node affinity) and volume types this
// machine cannot mount, end to end: a WaitForFirstConsumer claim binds to the local PV of the one
// node it lives on, the scheduler sends the pod there, and the pod writes into the node's directory;
// seed 003's nfs PV leaves its pod ContainerCreating with one FailedMount event that says why (no
// NFS client here), not a generic refusal — and so does an inline nfs volume. A Block local PV (a
// device on the node) is served through volumeDevices, and a directory one gets the pod's fsGroup.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { detachIfOurs } from '../support/host-state.js';
import { deletePod, eventsFor, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

describe('local PVs and volumes this machine cannot mount', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-a');
    await cluster.addNode('node-b');
  });

  after(async () => {
    await cluster?.cleanup();
  });

  it('binds a WaitForFirstConsumer claim to the local PV of its node, and the pod runs there on that directory', async () => {
    const { plane } = cluster;
    const disk = join(cluster.dir, 'node-b-disk');
    mkdirSync(disk);
    plane.store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'local-storage' }, provisioner: 'kubernetes.io/no-provisioner', volumeBindingMode: 'WaitForFirstConsumer' });
    plane.store.create<PersistentVolume>({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'local-b' },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: 'local-storage',
        local: { path: disk },
        nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-b'] }] }] } },
      },
    });
    plane.store.create<PersistentVolumeClaim>({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'local-claim', namespace: 'default' },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-storage', resources: { requests: { storage: '500Mi' } } },
    });
    plane.store.create(shellPod('local-user', 'echo on-node-b > /data/where; while true; do sleep 0.2; done', { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'local-claim' } }], mounts: [{ name: 'data', mountPath: '/data' }] }));
    const pod = await until(() => {
      const p = podNamed(plane, 'local-user') as Pod | undefined;
      return p?.status?.phase === 'Running' ? p : undefined;
    }, 'the pod to run');
    assert.equal(pod.spec.nodeName, 'node-b', 'the scheduler sent the pod where its volume is');
    assert.equal((plane.store.get('persistentvolumeclaims', 'default', 'local-claim') as PersistentVolumeClaim).spec.volumeName, 'local-b');
    await until(() => existsSync(join(disk, 'where')), 'the pod to write into the node\'s directory');
    assert.equal(readFileSync(join(disk, 'where'), 'utf8'), 'on-node-b\n');
    await deletePod(plane, 'local-user');
    assert.equal(readFileSync(join(disk, 'where'), 'utf8'), 'on-node-b\n', 'a local volume keeps its data');
  });

  it('serves a Block local PV (a device on the node) through volumeDevices, and gives a directory one the fsGroup', async () => {
    const { plane } = cluster;
    const image = join(cluster.dir, 'node-a-disk.img');
    writeFileSync(image, '');
    truncateSync(image, 16 * 1024 * 1024);
    const { stdout } = await promisify(execFile)('losetup', ['-f', '--show', image]);
    const device = stdout.trim();
    const dir = join(cluster.dir, 'node-a-dir');
    mkdirSync(dir);
    try {
      const onNodeA = { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In' as const, values: ['node-a'] }] }] } };
      const localPv = (name: string, path: string, volumeMode: 'Block' | 'Filesystem'): PersistentVolume => ({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name },
        spec: { capacity: { storage: '16Mi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', storageClassName: 'local-storage', volumeMode, local: { path }, nodeAffinity: onNodeA },
      });
      const localClaim = (name: string, pv: string, volumeMode: 'Block' | 'Filesystem'): PersistentVolumeClaim => ({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name, namespace: 'default' },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-storage', volumeMode, volumeName: pv, resources: { requests: { storage: '16Mi' } } },
      });
      plane.store.create(localPv('local-raw', device, 'Block'));
      plane.store.create(localPv('local-dir', dir, 'Filesystem'));
      plane.store.create(localClaim('raw-claim', 'local-raw', 'Block'));
      plane.store.create(localClaim('dir-claim', 'local-dir', 'Filesystem'));
      const pod = shellPod('local-both', "printf local-raw-pattern | dd of=/dev/xvdb bs=512 count=1 conv=sync 2>/dev/null; touch /data/made; while true; do sleep 0.2; done", {
        volumes: [
          { name: 'raw', persistentVolumeClaim: { claimName: 'raw-claim' } },
          { name: 'data', persistentVolumeClaim: { claimName: 'dir-claim' } },
        ],
        mounts: [{ name: 'data', mountPath: '/data' }],
        nodeName: 'node-a',
      });
      const main = pod.spec.containers[0]!;
      main.volumeDevices = [{ name: 'raw', devicePath: '/dev/xvdb' }];
      pod.spec['securityContext'] = { fsGroup: 2345 };
      plane.store.create(pod);
      const running = await until(() => {
        const p = podNamed(plane, 'local-both') as Pod | undefined;
        return p?.status?.phase === 'Running' ? p : undefined;
      }, 'the pod to run');
      assert.equal(running.spec.nodeName, 'node-a');
      await until(() => existsSync(join(dir, 'made')), 'the pod to write into the directory');
      assert.equal(statSync(dir).gid, 2345, 'the local directory has the pod\'s fsGroup');
      assert.equal(statSync(join(dir, 'made')).gid, 2345, 'and what the pod makes there');
      await until(() => readFileSync(device).subarray(0, 17).toString() === 'local-raw-pattern', 'the pattern on the node\'s device');
      await deletePod(plane, 'local-both');
    } finally {
      await detachIfOurs(device, cluster.dir);
    }
  });

  it("leaves seed 003's nfs PV and an inline nfs volume ContainerCreating with one clear FailedMount event", async () => {
    const { plane } = cluster;
    plane.store.create<PersistentVolume>({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'nfs-pv' },
      spec: { storageClassName: 'manual', capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', nfs: { path: '/data/k8s', server: '10.151.30.11' } },
    });
    plane.store.create<PersistentVolumeClaim>({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'nfs-pvc', namespace: 'default' },
      spec: { storageClassName: 'manual', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    });
    plane.store.create(shellPod('nfs-user', 'sleep 100', { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'nfs-pvc' } }], mounts: [{ name: 'data', mountPath: '/data' }] }));
    plane.store.create(shellPod('nfs-inline', 'sleep 100', { volumes: [{ name: 'share', nfs: { server: '10.0.0.1', path: '/export' } }], mounts: [{ name: 'share', mountPath: '/share' }] }));
    // The reason names what is missing when the kernel has no NFS client (as here), else a CSI driver to use.
    const kernelHasNfs = readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t').at(-1)?.trim() === 'nfs');
    const reason = kernelHasNfs ? 'nfs volumes are not mounted by the embedded node agent' : 'nfs volumes cannot be mounted on this node: it has no nfs filesystem (not in /proc/filesystems)';
    for (const [pod, volume] of [
      ['nfs-user', 'nfs-pv'],
      ['nfs-inline', 'share'],
    ] as const) {
      const events = await until(() => {
        const e = eventsFor(plane, pod).filter((x) => x.reason === 'FailedMount');
        return e.length > 0 ? e : undefined;
      }, `${pod}'s FailedMount event`);
      assert.ok((events[0]?.message ?? '').startsWith(`MountVolume.SetUp failed for volume "${volume}" : ${reason}`), events[0]?.message);
      const status = podNamed(plane, pod)?.status as { phase?: string; containerStatuses?: { state?: { waiting?: { reason?: string } } }[] } | undefined;
      assert.equal(status?.phase, 'Pending');
      assert.equal(status?.containerStatuses?.[0]?.state?.waiting?.reason, 'ContainerCreating');
    }
    // Retried, but the same failure is not a new event each time.
    await new Promise((r) => setTimeout(r, 3_000));
    for (const pod of ['nfs-user', 'nfs-inline']) assert.equal(eventsFor(plane, pod).filter((x) => x.reason === 'FailedMount').length, 1, `${pod}: one event`);
    await deletePod(plane, 'nfs-user');
    await deletePod(plane, 'nfs-inline');
  });
});
