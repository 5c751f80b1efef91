// Generic ephemeral volumes and ReadWriteOncePod end to end, on real mounts with the local driver:
// a pod's `ephemeral.volumeClaimTemplate` becomes claim "<pod>-<volume>" owned by the pod, which
// is provisioned, mounted where the pod writes, and goes — with its volume — when the pod goes; a
// second pod of a ReadWriteOncePod claim waits Pending with kube-scheduler's reason and runs, with
// the first pod's data, once the first has left.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { mountAt } from '../support/host-state.js';
import { CLASS, claim, deletePod, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

function running(cluster: NodeCluster, name: string): Promise<Pod> {
  return until(() => {
    const pod = podNamed(cluster.plane, name);
    return pod?.status?.phase === 'Running' ? pod : undefined;
  }, `pod ${name} to be Running`);
}

const getClaim = (cluster: NodeCluster, name: string) => cluster.plane.store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;

describe('generic ephemeral volumes and ReadWriteOncePod on real mounts', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-a');
    await cluster.addNode('node-b');
  });

  after(async () => {
    await cluster?.cleanup();
  });

  it('an ephemeral volume is provisioned for its pod, holds what the pod writes, and goes with the pod', async () => {
    const { plane } = cluster;
    const pod = shellPod('scratcher', 'echo scratch > /scratch/note; while true; do sleep 0.2; done', { mounts: [{ name: 'scratch', mountPath: '/scratch' }] });
    pod.spec.volumes = [
      {
        name: 'scratch',
        ephemeral: { volumeClaimTemplate: { metadata: { labels: { kind: 'scratch' } }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: '32Mi' } } } } },
      },
    ];
    const created = plane.store.create(pod);
    const running1 = await running(cluster, 'scratcher');
    const pvc = getClaim(cluster, 'scratcher-scratch');
    assert.equal(pvc?.status?.phase, 'Bound');
    assert.equal(pvc?.metadata.labels?.kind, 'scratch');
    assert.deepEqual(pvc?.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]), [['Pod', 'scratcher', created.metadata.uid, true]]);
    const pvName = pvc?.spec.volumeName ?? '';
    const node = running1.spec.nodeName ?? '';
    const root = cluster.nodes.get(node)!.root;
    const target = join(root, 'pods', running1.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
    await until(() => existsSync(join(target, 'note')), 'the pod to write into its ephemeral volume');
    assert.equal(readFileSync(join(target, 'note'), 'utf8'), 'scratch\n');

    await deletePod(plane, 'scratcher');
    await until(() => getClaim(cluster, 'scratcher-scratch') === undefined, 'the claim to go with its pod');
    await until(() => plane.store.get('persistentvolumes', undefined, pvName) === undefined, 'the volume to be deleted (reclaim policy Delete)');
    assert.equal(mountAt(target), undefined, 'nothing stays mounted');
  });

  it('a second pod of a ReadWriteOncePod claim waits with the reason, then runs with the data', async () => {
    const { plane } = cluster;
    plane.store.create(claim('solo', '32Mi', ['ReadWriteOncePod']));
    const dataVolume = [{ name: 'data', persistentVolumeClaim: { claimName: 'solo' } }];
    const mounts = [{ name: 'data', mountPath: '/data' }];
    plane.store.create(shellPod('solo-1', 'echo first > /data/who; while true; do sleep 0.2; done', { volumes: dataVolume, mounts }));
    await running(cluster, 'solo-1');
    plane.store.create(shellPod('solo-2', 'cat /data/who; while true; do sleep 0.2; done', { volumes: dataVolume, mounts }));
    const waiting = await until(() => {
      const c = podNamed(plane, 'solo-2')?.status?.conditions?.find((x) => x.type === 'PodScheduled');
      return c?.status === 'False' ? c : undefined;
    }, 'the second pod to be unschedulable');
    assert.equal(waiting.reason, 'Unschedulable');
    assert.equal(waiting.message, '0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.');
    assert.equal(podNamed(plane, 'solo-2')?.spec.nodeName, undefined);

    await deletePod(plane, 'solo-1');
    const second = await running(cluster, 'solo-2');
    const log = cluster.nodes.get(second.spec.nodeName ?? '')!.runtime.logPath(second.metadata.uid ?? '', 'main');
    await until(() => existsSync(log) && readFileSync(log, 'utf8').includes('first'), 'the second pod to read what the first wrote');
    await deletePod(plane, 'solo-2');
  });
});
