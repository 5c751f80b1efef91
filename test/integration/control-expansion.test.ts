// Volume expansion through the control plane, on real mounts: a bound claim's request raised while
// its pod runs is grown by the resizer (ControllerExpandVolume on the volume's node) and the node
// agent (NodeExpandVolume on the published volume), and the pod sees the new size in its mount:
// df inside the pod for ext4 and xfs images, a write past the old size for a btrfs subvolume (its
// df shows the pool; its qgroup is the limit). Also: admission refusals, a growth the node's pool
// cannot hold (OUT_OF_RANGE → VolumeResizeFailed, retried), and an agent that was down while the
// controller part ran (the node part is finished from the objects once it is back). Where the
// driver cannot grow a mounted ext4 (no CAP_SYS_RESOURCE, as in this sandbox) the ext4 claims take
// the offline path: NodeExpandVolume refused while published, the pod restarted, grown at its stage.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Event, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { ANN_PRE_RESIZE_CAPACITY } from '../../src/control/controllers/volume-util.js';
import { ForbiddenError, InvalidError } from '../../src/control/store/errors.js';
import { needsRoot } from '../support/driver-harness.js';
import { CAP_SYS_RESOURCE, hasCapability } from '../support/csi-helpers.js';
import { DRIVER, deletePod, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

const MiB = 1024 * 1024;
const NODE = 'node-x';

function expandableClass(name: string, fsType: string | undefined, allowVolumeExpansion = true): StorageClass {
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name },
    provisioner: DRIVER,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
    allowVolumeExpansion,
    ...(fsType ? { parameters: { 'csi.storage.k8s.io/fstype': fsType } } : {}),
  };
}

function claimOf(name: string, className: string, size: string): PersistentVolumeClaim {
  return { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } }, storageClassName: className } };
}

function getClaim(cluster: NodeCluster, name: string): PersistentVolumeClaim | undefined {
  return cluster.plane.store.get('persistentvolumeclaims', 'default', name);
}

async function bound(cluster: NodeCluster, name: string): Promise<PersistentVolumeClaim> {
  return until(() => {
    const c = getClaim(cluster, name);
    return c?.status?.phase === 'Bound' ? c : undefined;
  }, `claim ${name} to be Bound`);
}

function grow(cluster: NodeCluster, name: string, size: string): void {
  const c = getClaim(cluster, name);
  assert.ok(c);
  cluster.plane.store.update({ ...c, spec: { ...c.spec, resources: { requests: { storage: size } } } });
}

function events(cluster: NodeCluster, name: string): Event[] {
  return cluster.plane.store.list('events', { namespace: 'default' }).items.filter((e) => e.involvedObject.name === name);
}

function reasons(cluster: NodeCluster, name: string): string[] {
  return events(cluster, name).map((e) => e.reason ?? '');
}

async function running(cluster: NodeCluster, name: string): Promise<string> {
  const pod = await until(() => {
    const p = podNamed(cluster.plane, name);
    return p?.status?.phase === 'Running' && (p.status['containerStatuses'] as { ready?: boolean }[] | undefined)?.[0]?.ready === true ? p : undefined;
  }, `pod ${name} to be Running`, 120_000);
  return pod.metadata.uid ?? '';
}

/** Runs a command inside the pod's container (as `stowage exec`); its exit code and output. */
async function execIn(cluster: NodeCluster, uid: string, command: string[]): Promise<{ code: number; out: string }> {
  const child = cluster.nodes.get(NODE)!.runtime.exec(uid, 'main', command, 'pipe');
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  return { code, out };
}

/** The size of /data as df inside the pod reports it, in bytes. */
async function dfSize(cluster: NodeCluster, uid: string): Promise<number> {
  const { code, out } = await execIn(cluster, uid, ['df', '-B1', '/data']);
  assert.equal(code, 0, out);
  const fields = out.trim().split('\n').at(-1)?.trim().split(/\s+/) ?? [];
  const size = Number(fields[1]);
  assert.ok(Number.isFinite(size) && size > 0, `df output: ${out}`);
  return size;
}

/** The claim once its capacity is the given size and no expansion condition is left. */
async function expanded(cluster: NodeCluster, name: string, size: string, timeoutMs = 90_000): Promise<PersistentVolumeClaim> {
  try {
    return await until(() => {
      const c = getClaim(cluster, name);
      return c?.status?.capacity?.['storage'] === size && (c.status.conditions ?? []).length === 0 && c.status.allocatedResourceStatuses === undefined ? c : undefined;
    }, `claim ${name} to be expanded to ${size}`, timeoutMs);
  } catch (err) {
    const seen = [...events(cluster, name), ...events(cluster, `pod-${name}`)].map((e) => `${e.reason ?? ''}: ${e.message ?? ''}`);
    throw new Error(`${(err as Error).message}; status ${JSON.stringify(getClaim(cluster, name)?.status)}; events ${seen.join(' | ')}`);
  }
}

/** Whether this machine lets the driver grow a mounted ext4 (CAP_SYS_RESOURCE); without, ext4 grows at the next stage. */
const ONLINE_EXT4 = hasCapability(CAP_SYS_RESOURCE);

function podWith(name: string, claimName: string) {
  return shellPod(name, 'while true; do sleep 0.2; done', { nodeName: NODE, volumes: [{ name: 'data', persistentVolumeClaim: { claimName } }], mounts: [{ name: 'data', mountPath: '/data' }] });
}

/**
 * Without CAP_SYS_RESOURCE a mounted ext4 cannot grow: the node's NodeExpandVolume fails (the
 * claim stays FileSystemResizePending, its capacity unchanged, VolumeResizeFailed on the pod), and
 * the user restarts the pod, as Kubernetes' message asks: the next stage grows it (offline).
 */
async function restartForOfflineGrowth(cluster: NodeCluster, claimName: string, oldSize: string): Promise<string> {
  const podName = `pod-${claimName}`;
  const failed = await until(() => events(cluster, podName).find((e) => e.reason === 'VolumeResizeFailed'), `VolumeResizeFailed on ${podName}`);
  assert.equal(failed.type, 'Warning');
  assert.match(failed.message ?? '', /^MountVolume\.NodeExpandVolume failed for volume "pvc-[^"]+" : rpc error: code = FailedPrecondition desc = .*CAP_SYS_RESOURCE/);
  const waiting = getClaim(cluster, claimName);
  assert.equal(waiting?.status?.capacity?.['storage'], oldSize);
  assert.equal(waiting?.status?.allocatedResourceStatuses?.['storage'], 'NodeResizePending');
  assert.deepEqual(waiting?.status?.conditions?.map((c) => c.type), ['FileSystemResizePending', 'NodeResizeError']);
  await deletePod(cluster.plane, podName);
  cluster.plane.store.create(podWith(podName, claimName));
  return running(cluster, podName);
}

describe('volume expansion through the control plane', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode(NODE);
    for (const [name, fs] of [
      ['exp-btrfs', undefined],
      ['exp-ext4', 'ext4'],
      ['exp-xfs', 'xfs'],
    ] as const) {
      cluster.plane.store.create(expandableClass(name, fs));
    }
    cluster.plane.store.create(expandableClass('fixed', undefined, false));
  });

  after(async () => {
    await cluster?.cleanup();
  });

  it('refuses at admission to grow a claim whose class does not allow it, and to shrink one', async () => {
    cluster.plane.store.create(claimOf('fixed-claim', 'fixed', '16Mi'));
    await bound(cluster, 'fixed-claim');
    assert.throws(
      () => grow(cluster, 'fixed-claim', '32Mi'),
      (err: unknown) =>
        err instanceof ForbiddenError &&
        err.message === 'persistentvolumeclaims "fixed-claim" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize',
    );
    cluster.plane.store.create(claimOf('shrink', 'exp-btrfs', '32Mi'));
    await bound(cluster, 'shrink');
    assert.throws(
      () => grow(cluster, 'shrink', '16Mi'),
      (err: unknown) => err instanceof InvalidError && err.message.includes('spec.resources.requests[storage]: Forbidden: field can not be less than previous value'),
    );
    cluster.plane.store.delete('persistentvolumeclaims', 'default', 'fixed-claim');
    cluster.plane.store.delete('persistentvolumeclaims', 'default', 'shrink');
  });

  it('grows btrfs, ext4 and xfs volumes while their pods run, and the pods see the new size', async () => {
    const cases = [
      { claim: 'grow-btrfs', cls: 'exp-btrfs', from: '64Mi', to: '128Mi', node: false },
      { claim: 'grow-ext4', cls: 'exp-ext4', from: '64Mi', to: '128Mi', node: true },
      { claim: 'grow-xfs', cls: 'exp-xfs', from: '300Mi', to: '400Mi', node: true },
    ];
    const uids = new Map<string, string>();
    for (const c of cases) {
      cluster.plane.store.create(claimOf(c.claim, c.cls, c.from));
      cluster.plane.store.create(podWith(`pod-${c.claim}`, c.claim));
    }
    for (const c of cases) uids.set(c.claim, await running(cluster, `pod-${c.claim}`));

    // Before: the btrfs subvolume's qgroup stops a write past its size; the images' df shows the old size.
    const btrfsUid = uids.get('grow-btrfs') ?? '';
    const tooBig = await execIn(cluster, btrfsUid, ['dd', 'if=/dev/zero', 'of=/data/big', 'bs=1M', 'count=96', 'conv=fsync']);
    assert.notEqual(tooBig.code, 0, `a 96 MiB write into a 64Mi btrfs volume fails: ${tooBig.out}`);
    assert.equal((await execIn(cluster, btrfsUid, ['rm', '-f', '/data/big'])).code, 0);
    const before = new Map<string, number>();
    for (const c of cases.filter((x) => x.node)) {
      const size = await dfSize(cluster, uids.get(c.claim) ?? '');
      assert.ok(size <= Number.parseInt(c.from, 10) * MiB, `${c.claim}: df ${size} before`);
      before.set(c.claim, size);
    }

    for (const c of cases) grow(cluster, c.claim, c.to);
    if (!ONLINE_EXT4) uids.set('grow-ext4', await restartForOfflineGrowth(cluster, 'grow-ext4', '64Mi'));
    for (const c of cases) {
      const claim = await expanded(cluster, c.claim, c.to);
      assert.equal(claim.status?.allocatedResources?.['storage'], c.to, `${c.claim}: allocatedResources`);
      const pv = cluster.plane.store.get('persistentvolumes', undefined, claim.spec.volumeName ?? '');
      assert.equal(pv?.spec.capacity?.['storage'], c.to, `${c.claim}: the PV's capacity`);
      assert.equal(pv?.metadata.annotations?.[ANN_PRE_RESIZE_CAPACITY], undefined, `${c.claim}: no pre-resize annotation left`);
      const r = reasons(cluster, c.claim);
      assert.ok(r.includes('ExternalExpanding') && r.includes('Resizing'), `${c.claim}: events ${r.join(', ')}`);
      if (c.node) {
        assert.ok(r.includes('FileSystemResizeRequired') && r.includes('FileSystemResizeSuccessful'), `${c.claim}: events ${r.join(', ')}`);
        assert.ok(reasons(cluster, `pod-${c.claim}`).includes('FileSystemResizeSuccessful'), `${c.claim}: the pod's events`);
        const size = await dfSize(cluster, uids.get(c.claim) ?? '');
        assert.ok(size > Number.parseInt(c.from, 10) * MiB && size <= Number.parseInt(c.to, 10) * MiB, `${c.claim}: df ${size} after`);
        // The filesystem's own overhead stays: it grew by about what was added.
        const grown = size - (before.get(c.claim) ?? 0);
        const added = (Number.parseInt(c.to, 10) - Number.parseInt(c.from, 10)) * MiB;
        assert.ok(grown >= 0.9 * added, `${c.claim}: df grew by ${grown} bytes for ${added} added`);
      } else {
        assert.ok(r.includes('VolumeResizeSuccessful'), `${c.claim}: events ${r.join(', ')}`);
      }
    }
    // After: the btrfs pod writes past its old size.
    const fits = await execIn(cluster, btrfsUid, ['dd', 'if=/dev/zero', 'of=/data/big', 'bs=1M', 'count=96', 'conv=fsync']);
    assert.equal(fits.code, 0, `a 96 MiB write into the 128Mi btrfs volume: ${fits.out}`);
    await execIn(cluster, btrfsUid, ['rm', '-f', '/data/big']);
  });

  it('finishes a node expansion the agent missed once it is back (state from the objects)', async () => {
    const name = 'offline-ext4';
    cluster.plane.store.create(claimOf(name, 'exp-ext4', '32Mi'));
    cluster.plane.store.create(podWith(`pod-${name}`, name));
    let uid = await running(cluster, `pod-${name}`);
    await cluster.nodes.get(NODE)!.agent.stop();
    grow(cluster, name, '96Mi');
    // The controller's part is done; the claim waits for a node, its capacity unchanged.
    const pending = await until(() => {
      const c = getClaim(cluster, name);
      return c?.status?.allocatedResourceStatuses?.['storage'] === 'NodeResizePending' ? c : undefined;
    }, 'the claim to wait for node expansion');
    assert.equal(pending.status?.capacity?.['storage'], '32Mi');
    assert.deepEqual(
      pending.status?.conditions?.map((c) => c.type),
      ['FileSystemResizePending'],
    );
    const pv = cluster.plane.store.get('persistentvolumes', undefined, pending.spec.volumeName ?? '');
    assert.equal(pv?.spec.capacity?.['storage'], '96Mi');
    assert.equal(pv?.metadata.annotations?.[ANN_PRE_RESIZE_CAPACITY], '32Mi');
    assert.ok((await dfSize(cluster, uid)) <= 32 * MiB);

    await cluster.restartAgent(NODE);
    if (!ONLINE_EXT4) uid = await restartForOfflineGrowth(cluster, name, '32Mi');
    await expanded(cluster, name, '96Mi');
    const size = await dfSize(cluster, uid);
    assert.ok(size > 32 * MiB && size <= 96 * MiB, `df ${size} after the restarted agent expanded it`);
  });

  it('reports a growth the pool cannot hold as VolumeResizeFailed with the driver message, and retries it', async () => {
    const name = 'too-big';
    cluster.plane.store.create(claimOf(name, 'exp-btrfs', '16Mi'));
    await bound(cluster, name);
    grow(cluster, name, '1800Mi');
    // Each retry marks the claim ControllerResizeInProgress again before its call (as
    // external-resizer does): the claim is read between a failure and the next retry.
    const { failed, claim } = await until(() => {
      const e = events(cluster, name).find((x) => x.reason === 'VolumeResizeFailed');
      const c = getClaim(cluster, name);
      return e && (e.count ?? 1) >= 2 && c?.status?.allocatedResourceStatuses?.['storage'] === 'ControllerResizeInfeasible' ? { failed: e, claim: c } : undefined;
    }, 'VolumeResizeFailed, retried');
    assert.equal(failed.type, 'Warning');
    assert.match(failed.message ?? '', /^resize volume "pvc-[^"]+" by resizer "local\.csi\.stowage\.dev" failed: rpc error: code = OutOfRange desc = .*pool capacity/);
    assert.equal(claim?.status?.capacity?.['storage'], '16Mi');
    assert.equal(claim?.status?.allocatedResourceStatuses?.['storage'], 'ControllerResizeInfeasible');
    assert.equal(claim?.status?.allocatedResources?.['storage'], '1800Mi');
    assert.ok(claim?.status?.conditions?.some((c) => c.type === 'ControllerResizeError' && (c.message ?? '').includes('OutOfRange')));
    const pv = cluster.plane.store.get('persistentvolumes', undefined, claim?.spec.volumeName ?? '');
    assert.equal(pv?.spec.capacity?.['storage'], '16Mi');
    cluster.plane.store.delete('persistentvolumeclaims', 'default', name);
  });
});
