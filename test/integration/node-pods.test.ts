// Node agents end to end, on real mounts: pods on embedded nodes get their PVCs staged and
// published by the real local driver, run as processes that see the volume at mountPath, and give
// everything back when deleted. Also: shared staging, the RWO Multi-Attach refusal, emptyDir,
// hostPath, configMap, subPath, restart policies, a restarted agent, and a driver that is down.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigMap, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { mountAt, mountsUnder } from '../support/host-state.js';
import { needsRoot } from '../support/driver-harness.js';
import { claim, deletePod, eventsFor, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

function running(cluster: NodeCluster, name: string): Promise<Pod> {
  return until(() => {
    const pod = podNamed(cluster.plane, name);
    return pod?.status?.phase === 'Running' && (pod.status['containerStatuses'] as { ready?: boolean }[] | undefined)?.[0]?.ready === true ? pod : undefined;
  }, `pod ${name} to be Running`);
}

async function bound(cluster: NodeCluster, name: string): Promise<string> {
  const pvc = await until(() => {
    const c = cluster.plane.store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
    return c?.status?.phase === 'Bound' ? c : undefined;
  }, `claim ${name} to be Bound`);
  return pvc.spec.volumeName ?? '';
}

function logOf(cluster: NodeCluster, node: string, pod: Pod): string {
  const path = cluster.nodes.get(node)!.runtime.logPath(pod.metadata.uid ?? '', 'main');
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** The node a local volume lives on (its PV's node affinity). */
function homeOf(cluster: NodeCluster, pvName: string): string {
  const pv = cluster.plane.store.get('persistentvolumes', undefined, pvName);
  const home = pv?.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values?.[0];
  assert.ok(home, `PV ${pvName} names its node`);
  return home;
}

const pvcVolume = (claimName: string): NonNullable<Pod['spec']['volumes']> => [{ name: 'data', persistentVolumeClaim: { claimName } }];
const dataMount = [{ name: 'data', mountPath: '/data' }];

describe('node agents run pods with their volumes', { skip: needsRoot, timeout: 600_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-a');
    await cluster.addNode('node-b');
  });

  after(async () => {
    await cluster?.cleanup();
  });

  it('stages and publishes a claim, and a recreated pod reads what the first one wrote', async () => {
    const { plane } = cluster;
    plane.store.create(claim('story'));
    const pvName = await bound(cluster, 'story');
    const home = homeOf(cluster, pvName);
    const script = 'cat /data/hello.txt 2>/dev/null || echo "no file yet"; echo "hello world" > /data/hello.txt; while true; do sleep 0.2; done';
    plane.store.create(shellPod('writer', script, { nodeName: home, volumes: pvcVolume('story'), mounts: dataMount }));
    const first = await running(cluster, 'writer');
    const root = cluster.nodes.get(home)!.root;
    const staging = join(root, 'plugins/kubernetes.io/csi/pv', pvName, 'globalmount');
    const target = join(root, 'pods', first.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
    assert.ok(mountAt(staging), `the volume is staged at ${staging}`);
    assert.ok(mountAt(target), `the volume is published at ${target}`);
    assert.ok(existsSync(join(root, 'pods', first.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'vol_data.json')));
    await until(() => logOf(cluster, home, first).includes('no file yet'), 'the first pod to log');
    await until(() => existsSync(join(target, 'hello.txt')), 'the file to appear in the volume');
    assert.equal(readFileSync(join(target, 'hello.txt'), 'utf8'), 'hello world\n');
    const node = plane.store.get('nodes', undefined, home);
    assert.ok(node?.status?.volumesInUse?.some((v) => v.startsWith('kubernetes.io/csi/local.csi.stowage.dev^')), 'the node reports the volume in use');

    await deletePod(plane, 'writer');
    assert.equal(mountAt(staging), undefined, 'unstaged after the last pod left');
    assert.equal(mountAt(target), undefined, 'unpublished');
    assert.equal(existsSync(join(root, 'pods', first.metadata.uid ?? '')), false, 'the pod directory is gone');

    plane.store.create(shellPod('writer', script, { nodeName: home, volumes: pvcVolume('story'), mounts: dataMount }));
    const second = await running(cluster, 'writer');
    assert.notEqual(second.metadata.uid, first.metadata.uid);
    await until(() => logOf(cluster, home, second).includes('hello world'), 'the recreated pod to read the file');
    assert.doesNotMatch(logOf(cluster, home, second), /no file yet/);
    await deletePod(plane, 'writer');
  });

  it('two pods on one node share one staging; unstage waits until both have left', async () => {
    const { plane } = cluster;
    plane.store.create(claim('shared'));
    const pvName = await bound(cluster, 'shared');
    const home = homeOf(cluster, pvName);
    const root = cluster.nodes.get(home)!.root;
    const staging = join(root, 'plugins/kubernetes.io/csi/pv', pvName, 'globalmount');
    plane.store.create(shellPod('one', 'echo one > /data/one; while true; do sleep 0.2; done', { nodeName: home, volumes: pvcVolume('shared'), mounts: dataMount }));
    plane.store.create(shellPod('two', 'echo two > /data/two; while true; do sleep 0.2; done', { nodeName: home, volumes: pvcVolume('shared'), mounts: dataMount }));
    const [one, two] = await Promise.all([running(cluster, 'one'), running(cluster, 'two')]);
    const targetOne = join(root, 'pods', one.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
    const targetTwo = join(root, 'pods', two.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
    await until(() => existsSync(join(targetOne, 'two')) && existsSync(join(targetTwo, 'one')), 'each pod to see the other\'s file');
    assert.equal(mountsUnder(staging).filter((m) => m.mountPoint === staging).length, 1, 'staged once');

    await deletePod(plane, 'one');
    assert.ok(mountAt(staging), 'still staged while pod two uses it');
    assert.ok(mountAt(targetTwo), 'pod two keeps its mount');
    assert.equal(readFileSync(join(targetTwo, 'one'), 'utf8'), 'one\n');
    await deletePod(plane, 'two');
    assert.equal(mountAt(staging), undefined, 'unstaged once both left');
  });

  it('refuses a ReadWriteOnce volume on a second node with a Multi-Attach event', async () => {
    const { plane } = cluster;
    plane.store.create(claim('rwo'));
    const home = homeOf(cluster, await bound(cluster, 'rwo'));
    const other = home === 'node-a' ? 'node-b' : 'node-a';
    plane.store.create(shellPod('holder', 'while true; do sleep 0.2; done', { nodeName: home, volumes: pvcVolume('rwo'), mounts: dataMount }));
    await running(cluster, 'holder');
    plane.store.create(shellPod('intruder', 'while true; do sleep 0.2; done', { nodeName: other, volumes: pvcVolume('rwo'), mounts: dataMount }));
    const event = await until(() => eventsFor(plane, 'intruder').find((e) => e.reason === 'FailedAttachVolume'), 'a FailedAttachVolume event');
    assert.match(event.message ?? '', /^Multi-Attach error for volume "pvc-[^"]+" Volume is already used by pod\(s\) holder on node node-[ab]$/);
    await sleep(500);
    assert.equal(podNamed(plane, 'intruder')?.status?.phase, 'Pending', 'the second pod does not start');
    assert.deepEqual(mountsUnder(cluster.nodes.get(other)!.root), [], 'nothing was mounted on the other node');
    await deletePod(plane, 'intruder');
    await deletePod(plane, 'holder');
  });

  it('sets up emptyDir, hostPath, configMap and subPath volumes, and checks hostPath types', async () => {
    const { plane } = cluster;
    const hostDir = mkdtempSync(join(tmpdir(), 'stowage-hostpath-'));
    try {
      plane.store.create<ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'default' }, data: { 'app.conf': 'color=blue\n' } });
      plane.store.create(claim('subpaths'));
      const pvName = await bound(cluster, 'subpaths');
      const home = homeOf(cluster, pvName);
      const pod = shellPod(
        'mixed',
        'echo scratch > /scratch/s; echo mem > /mem/m; echo host > /host/h; echo sub > /sub/f; cat /etc/app/app.conf; grep " /mem " /proc/mounts | cut -d" " -f3; while true; do sleep 0.2; done',
        {
          nodeName: home,
          volumes: [
            { name: 'scratch', emptyDir: {} },
            { name: 'mem', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
            { name: 'host', hostPath: { path: join(hostDir, 'made'), type: 'DirectoryOrCreate' } },
            { name: 'settings', configMap: { name: 'settings' } },
            ...pvcVolume('subpaths'),
          ],
          mounts: [
            { name: 'scratch', mountPath: '/scratch' },
            { name: 'mem', mountPath: '/mem' },
            { name: 'host', mountPath: '/host' },
            { name: 'settings', mountPath: '/etc/app', readOnly: true },
            { name: 'data', mountPath: '/sub', subPath: 'deep/dir' },
          ],
        },
      );
      plane.store.create(pod);
      const started = await running(cluster, 'mixed');
      await until(() => /color=blue\ntmpfs\n/.test(logOf(cluster, home, started)), 'the pod to read its configMap and see its tmpfs');
      const uid = started.metadata.uid ?? '';
      const root = cluster.nodes.get(home)!.root;
      await until(() => existsSync(join(hostDir, 'made', 'h')), 'the hostPath write');
      assert.equal(readFileSync(join(root, 'pods', uid, 'volumes/kubernetes.io~empty-dir/scratch/s'), 'utf8'), 'scratch\n');
      const publish = join(root, 'pods', uid, 'volumes/kubernetes.io~csi', pvName, 'mount');
      assert.equal(readFileSync(join(publish, 'deep/dir/f'), 'utf8'), 'sub\n', 'the subPath write lands in deep/dir of the volume');
      await deletePod(plane, 'mixed');
      assert.equal(existsSync(join(root, 'pods', uid)), false, 'emptyDirs go with the pod');
      assert.equal(readFileSync(join(hostDir, 'made', 'h'), 'utf8'), 'host\n', 'hostPath data stays');

      plane.store.create(shellPod('bad-host', 'true', { nodeName: 'node-a', volumes: [{ name: 'h', hostPath: { path: join(hostDir, 'missing'), type: 'Directory' } }], mounts: [{ name: 'h', mountPath: '/h' }] }));
      const failed = await until(() => eventsFor(plane, 'bad-host').find((e) => e.reason === 'FailedMount'), 'a FailedMount event');
      assert.equal(failed.message, `hostPath type check failed: ${join(hostDir, 'missing')} is not a directory`);
      assert.equal(podNamed(plane, 'bad-host')?.status?.phase, 'Pending');
      await deletePod(plane, 'bad-host');

      plane.store.create(shellPod('escape', 'true', { nodeName: 'node-a', volumes: [{ name: 's', emptyDir: {} }], mounts: [{ name: 's', mountPath: '/s', subPath: '../../etc' }] }));
      const refused = await until(() => eventsFor(plane, 'escape').find((e) => e.reason === 'Failed'), 'a Failed event for the subPath');
      assert.match(refused.message ?? '', /subPath "\.\.\/\.\.\/etc" must be a relative path without "\.\."/);
      await deletePod(plane, 'escape');
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it('follows restart policies and reports exit codes', async () => {
    const { plane } = cluster;
    plane.store.create(shellPod('once', 'exit 0', { nodeName: 'node-b', restartPolicy: 'Never' }));
    plane.store.create(shellPod('fails', 'exit 3', { nodeName: 'node-b', restartPolicy: 'Never' }));
    plane.store.create(shellPod('retries', 'exit 3', { nodeName: 'node-b', restartPolicy: 'OnFailure' }));
    const done = await until(() => podNamed(plane, 'once')?.status?.phase === 'Succeeded' && podNamed(plane, 'once'), 'pod once to succeed');
    const failed = await until(() => podNamed(plane, 'fails')?.status?.phase === 'Failed' && podNamed(plane, 'fails'), 'pod fails to fail');
    const terminated = (p: Pod) => ((p.status?.['containerStatuses'] ?? []) as { state: { terminated?: { exitCode: number; reason: string } } }[])[0]?.state.terminated;
    assert.deepEqual({ code: terminated(done)?.exitCode, reason: terminated(done)?.reason }, { code: 0, reason: 'Completed' });
    assert.deepEqual({ code: terminated(failed)?.exitCode, reason: terminated(failed)?.reason }, { code: 3, reason: 'Error' });
    const restarted = await until(() => {
      const p = podNamed(plane, 'retries');
      const s = (p?.status?.['containerStatuses'] as { restartCount: number }[] | undefined)?.[0];
      return s !== undefined && s.restartCount >= 2 ? p : undefined;
    }, 'pod retries to be restarted twice');
    assert.equal(restarted.status?.phase, 'Running', 'a restarting pod is Running, as Kubernetes reports it');
    assert.ok(eventsFor(plane, 'retries').some((e) => e.reason === 'BackOff'));
    for (const name of ['once', 'fails', 'retries']) await deletePod(plane, name);
  });

  it('a restarted agent keeps the running pods and their volumes', async () => {
    const { plane } = cluster;
    plane.store.create(claim('survivor'));
    const pvName = await bound(cluster, 'survivor');
    const home = homeOf(cluster, pvName);
    plane.store.create(shellPod('survivor', 'while true; do date +%s%N >> /data/ticks; sleep 0.1; done', { nodeName: home, volumes: pvcVolume('survivor'), mounts: dataMount }));
    const pod = await running(cluster, 'survivor');
    const node = cluster.nodes.get(home)!;
    const before = await node.runtime.status(pod.metadata.uid ?? '', 'main');
    // The agent goes away without any cleanup (its loop simply stops), then a new one starts.
    await node.agent.stop();
    await cluster.restartAgent(home);
    await sleep(1_000);
    const after = await node.runtime.status(pod.metadata.uid ?? '', 'main');
    assert.equal(after?.state, 'running');
    assert.equal(after?.pid, before?.pid, 'the same container process');
    const target = join(node.root, 'pods', pod.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
    assert.ok(mountAt(target), 'the volume stays published');
    const size = readFileSync(join(target, 'ticks'), 'utf8').length;
    await sleep(500);
    assert.ok(readFileSync(join(target, 'ticks'), 'utf8').length > size, 'the pod keeps writing into its volume');
    assert.equal(((podNamed(plane, 'survivor')?.status?.['containerStatuses'] ?? []) as { restartCount: number }[])[0]?.restartCount, 0);
    await deletePod(plane, 'survivor');
  });

  it('pods deleted while the driver is down are cleaned up once it is back', async () => {
    const { plane } = cluster;
    plane.store.create(claim('outage'));
    const pvName = await bound(cluster, 'outage');
    const home = homeOf(cluster, pvName);
    const node = cluster.nodes.get(home)!;
    plane.store.create(shellPod('outage', 'while true; do sleep 0.2; done', { nodeName: home, volumes: pvcVolume('outage'), mounts: dataMount }));
    const pod = await running(cluster, 'outage');
    const target = join(node.root, 'pods', pod.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pvName, 'mount');
    await node.driver.kill9();
    plane.store.delete('pods', 'default', 'outage');
    await sleep(2_000);
    assert.ok(podNamed(plane, 'outage')?.metadata.deletionTimestamp, 'the pod stays Terminating while its volume cannot be unpublished');
    assert.ok(mountAt(target), 'nothing is torn down behind the driver\'s back');
    await node.driver.restart();
    await until(() => podNamed(plane, 'outage') === undefined, 'the pod to be removed once the driver is back', 60_000);
    assert.deepEqual(
      mountsUnder(node.root).map((m) => m.mountPoint),
      [],
      'no mount of the node remains',
    );
  });
});
