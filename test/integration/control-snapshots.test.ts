// Snapshots, restores and clones end to end on the local backend, for btrfs (subvolumes), ext4 and
// xfs (image files): YAML applied to the embedded control plane, two embedded nodes with real local
// drivers, real pods and mounts. A pod writes; a VolumeSnapshot (default class) becomes readyToUse;
// the pod overwrites; a claim restored from the snapshot shows the old bytes and a clone the
// current ones, both on the source's node (a WaitForFirstConsumer restore too, with a
// FailedScheduling reason for a pod pinned elsewhere); the snapshot's `get`/`describe` read as
// kubectl's; deleting it with policy Delete removes the backend snapshot, with Retain keeps it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatObjects } from '../../src/cli/format/columns.js';
import { describeObject } from '../../src/cli/format/describe.js';
import { parseManifests } from '../../src/control/api/manifest.js';
import { resourceForName } from '../../src/control/api/registry.js';
import type { PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../src/control/api/types/snapshot.js';
import { REASON_DATA_SOURCE_NODE } from '../../src/control/scheduler/plugins/volume-binding.js';
import { needsRoot } from '../support/driver-harness.js';
import { deletePod, eventsFor, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

const SNAPSHOT_CLASSES = `
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: local-snapshots
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: local.csi.stowage.dev
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: local-retain
driver: local.csi.stowage.dev
deletionPolicy: Retain
`;

/** A StorageClass per filesystem (btrfs: subvolumes, the driver's default; ext4/xfs: image files), Immediate or WaitForFirstConsumer. */
const storageClassYaml = (name: string, fsType: string, mode: 'Immediate' | 'WaitForFirstConsumer'): string => `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${name}
provisioner: local.csi.stowage.dev
volumeBindingMode: ${mode}
${fsType === 'btrfs' ? '' : `parameters:\n  csi.storage.k8s.io/fstype: ${fsType}\n`}`;

const claimYaml = (name: string, className: string, size: string, source = ''): string => `
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${name}
spec:
  storageClassName: ${className}
${source}  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: ${size}
`;

const FROM_SNAPSHOT = `  dataSource:
    name: before
    kind: VolumeSnapshot
    apiGroup: snapshot.storage.k8s.io
`;
const FROM_CLAIM = `  dataSourceRef:
    name: source
    kind: PersistentVolumeClaim
`;

const snapshotYaml = (name: string, className?: string): string => `
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: ${name}
spec:
${className === undefined ? '' : `  volumeSnapshotClassName: ${className}\n`}  source:
    persistentVolumeClaimName: source
`;

/** Each filesystem the local driver serves, at a size it can be made at (xfs needs 300 MiB). */
const FILESYSTEMS = [
  { fs: 'btrfs', size: '64Mi', bytes: 64 * 1024 * 1024, smaller: '16Mi', smallerBytes: 16 * 1024 * 1024 },
  { fs: 'ext4', size: '64Mi', bytes: 64 * 1024 * 1024, smaller: '16Mi', smallerBytes: 16 * 1024 * 1024 },
  { fs: 'xfs', size: '320Mi', bytes: 320 * 1024 * 1024, smaller: '300Mi', smallerBytes: 300 * 1024 * 1024 },
] as const;

const dataMount = [{ name: 'data', mountPath: '/data' }];
const claimVolume = (claimName: string): NonNullable<Pod['spec']['volumes']> => [{ name: 'data', persistentVolumeClaim: { claimName } }];

describe('snapshots, restores and clones on the local backend', { skip: needsRoot, timeout: 240_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await Promise.all([cluster.addNode('node-a'), cluster.addNode('node-b')]);
  });

  after(async () => {
    await cluster?.cleanup();
  });

  const apply = (text: string): void => {
    for (const obj of parseManifests(text)) cluster.plane.store.create({ ...obj, metadata: { namespace: 'default', ...obj.metadata } });
  };

  for (const { fs, size, bytes, smaller, smallerBytes } of FILESYSTEMS) it(`${fs}: snapshot → overwrite → restore shows the old bytes, clone the new; Delete removes the backend snapshot, Retain keeps it`, async () => {
    const { plane } = cluster;
    const store = plane.store;
    const cls = `local-${fs}`;
    const lateClass = `local-late-${fs}`;
    if (store.get('volumesnapshotclasses', undefined, 'local-snapshots') === undefined) apply(SNAPSHOT_CLASSES);
    const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;
    const bound = (name: string) => until(() => getClaim(name)?.status?.phase === 'Bound' && getClaim(name), `claim ${name} Bound`);
    const getVs = (name: string) => store.get('volumesnapshots', 'default', name) as VolumeSnapshot | undefined;
    const ready = (name: string) => until(() => getVs(name)?.status?.readyToUse === true && getVs(name), `snapshot ${name} readyToUse`);
    const nodeOfPv = (pvName: string): string => {
      const pv = store.get('persistentvolumes', undefined, pvName);
      const node = pv?.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.find((e) => e.key === 'topology.stowage.dev/node')?.values?.[0];
      assert.ok(node, `PV ${pvName} names its node`);
      return node;
    };
    const podLog = (node: string, pod: Pod): string => {
      const path = cluster.nodes.get(node)?.runtime.logPath(pod.metadata.uid ?? '', 'main') ?? '';
      return existsSync(path) ? readFileSync(path, 'utf8') : '';
    };
    /** Waits for a pod's log to show text; a timeout says what the log did show, and the pod's state. */
    const logShows = (node: string, pod: Pod, text: string, what: string) =>
      until(() => podLog(node, pod).includes(text), what).catch((e: Error) => {
        const now = podNamed(plane, pod.metadata.name ?? '');
        throw new Error(`${e.message}; the log holds ${JSON.stringify(podLog(node, pod))}; pod status ${JSON.stringify(now?.status ?? {})}`);
      });
    const running = (name: string) => until(() => podNamed(plane, name)?.status?.phase === 'Running' && podNamed(plane, name), `pod ${name} Running`);
    /** Whether the backend still has the snapshot: in the node's pool, and as ListSnapshots says. */
    const backendHas = async (node: string, handle: string): Promise<boolean> => {
      const driver = cluster.nodes.get(node)?.driver;
      assert.ok(driver);
      const inPool = existsSync(join(driver.localDir, 'pool', 'snapshots', handle)) || existsSync(join(driver.localDir, 'pool', 'snapshots', `${handle}.img`));
      const listed = (await driver.client.controller.ListSnapshots({ snapshot_id: handle })).entries.length > 0;
      assert.equal(inPool, listed, 'the pool and ListSnapshots agree');
      return listed;
    };

    // 1. The classes and the source claim, as YAML; a pod writes the old bytes.
    apply(storageClassYaml(cls, fs, 'Immediate'));
    apply(claimYaml('source', cls, size));
    const source = await bound('source');
    const home = nodeOfPv(source.spec.volumeName ?? '');
    const trigger = '/data/.overwrite';
    store.create(
      shellPod('writer', `echo old-bytes > /data/f; sync; while [ ! -e ${trigger} ]; do sleep 0.1; done; echo new-bytes > /data/f; sync; while true; do sleep 0.2; done`, {
        volumes: claimVolume('source'),
        mounts: dataMount,
      }),
    );
    const writer = await running('writer');
    const root = cluster.nodes.get(home)?.root ?? '';
    const target = join(root, 'pods', writer.metadata.uid ?? '', 'volumes/kubernetes.io~csi', source.spec.volumeName ?? '', 'mount');
    await until(() => existsSync(join(target, 'f')) && readFileSync(join(target, 'f'), 'utf8') === 'old-bytes\n', 'the old bytes');

    // 2. A snapshot with the default class becomes readyToUse.
    apply(snapshotYaml('before'));
    const snap = await ready('before');
    assert.equal(snap.spec.volumeSnapshotClassName, 'local-snapshots', 'the default class of the source driver');
    assert.equal(snap.status?.restoreSize, size);
    assert.match(snap.status?.creationTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const contentName = snap.status?.boundVolumeSnapshotContentName ?? '';
    assert.equal(contentName, `snapcontent-${snap.metadata.uid}`);
    const content = store.get('volumesnapshotcontents', undefined, contentName) as VolumeSnapshotContent;
    const handle = content.status?.snapshotHandle ?? '';
    assert.ok(await backendHas(home, handle), 'the backend snapshot exists');
    assert.equal(content.metadata.annotations?.['stowage.dev/snapshot-node'], home);

    // kubectl's columns and describe with events.
    const [header, row] = formatObjects(resourceForName('vs')!, [snap]).trimEnd().split('\n').map((l) => l.trim().split(/\s+/));
    assert.deepEqual(header, ['NAME', 'READYTOUSE', 'SOURCEPVC', 'SOURCESNAPSHOTCONTENT', 'RESTORESIZE', 'SNAPSHOTCLASS', 'SNAPSHOTCONTENT', 'CREATIONTIME', 'AGE']);
    assert.deepEqual(row?.slice(0, 6), ['before', 'true', 'source', size, 'local-snapshots', contentName]);
    const [, contentRow] = formatObjects(resourceForName('vsc')!, [content]).trimEnd().split('\n').map((l) => l.trim().split(/\s+/));
    assert.deepEqual(contentRow?.slice(0, 8), [contentName, 'true', String(bytes), 'Delete', 'local.csi.stowage.dev', 'local-snapshots', 'before', 'default']);
    const described = describeObject(resourceForName('vs')!, snap, { events: eventsFor(plane, 'before') });
    for (const reason of ['CreatingSnapshot', 'SnapshotCreated', 'SnapshotReady']) assert.match(described, new RegExp(`Normal\\s+${reason}\\s`), described);

    // 3. The pod overwrites its data.
    writeFileSync(join(target, '.overwrite'), '');
    await until(() => readFileSync(join(target, 'f'), 'utf8') === 'new-bytes\n', 'the new bytes');

    // 4. A restore and a clone, on the source's node; pods read them.
    apply(claimYaml('restored', cls, size, FROM_SNAPSHOT));
    apply(claimYaml('cloned', cls, size, FROM_CLAIM));
    const restored = await bound('restored');
    const cloned = await bound('cloned');
    assert.equal(nodeOfPv(restored.spec.volumeName ?? ''), home, 'the restore is on the node holding the snapshot');
    assert.equal(nodeOfPv(cloned.spec.volumeName ?? ''), home, 'the clone is on the node holding its source');
    store.create(shellPod('read-restored', 'cat /data/f; while true; do sleep 0.2; done', { volumes: claimVolume('restored'), mounts: dataMount }));
    store.create(shellPod('read-cloned', 'cat /data/f; while true; do sleep 0.2; done', { volumes: claimVolume('cloned'), mounts: dataMount }));
    const [r1, r2] = await Promise.all([running('read-restored'), running('read-cloned')]);
    assert.equal(r1.spec.nodeName, home);
    assert.equal(r2.spec.nodeName, home);
    await logShows(home, r1, 'old-bytes', 'the restored claim to show the old bytes');
    await logShows(home, r2, 'new-bytes', 'the clone to show the new bytes');
    assert.doesNotMatch(podLog(home, r1), /new-bytes/);

    // WaitForFirstConsumer: a pod that can only run on the other node cannot have the restore
    // (FailedScheduling says why); one that may run anywhere is placed on the snapshot's node.
    const other = home === 'node-a' ? 'node-b' : 'node-a';
    apply(storageClassYaml(lateClass, fs, 'WaitForFirstConsumer'));
    apply(claimYaml('restored-late', lateClass, size, FROM_SNAPSHOT));
    store.create({ ...shellPod('late-elsewhere', 'cat /data/f; while true; do sleep 0.2; done', { volumes: claimVolume('restored-late'), mounts: dataMount }), spec: { ...shellPod('x', 'true').spec, nodeSelector: { 'kubernetes.io/hostname': other }, volumes: claimVolume('restored-late') } });
    const failed = await until(() => eventsFor(plane, 'late-elsewhere').find((e) => e.reason === 'FailedScheduling'), 'FailedScheduling for the pinned pod');
    assert.match(failed.message ?? '', new RegExp(`^0/2 nodes are available: .*1 ${REASON_DATA_SOURCE_NODE.replace(/[()]/g, '\\$&')}`));
    await deletePod(plane, 'late-elsewhere');
    store.create(shellPod('late-anywhere', 'cat /data/f; while true; do sleep 0.2; done', { volumes: claimVolume('restored-late'), mounts: dataMount }));
    const late = await running('late-anywhere');
    assert.equal(late.spec.nodeName, home);
    await logShows(home, late, 'old-bytes', 'the late restore to show the old bytes');

    // A restore smaller than the snapshot is refused with an event.
    apply(claimYaml('too-small', cls, smaller, FROM_SNAPSHOT));
    const refused = await until(() => eventsFor(plane, 'too-small').find((e) => e.reason === 'ProvisioningFailed'), 'the small restore refused');
    assert.match(refused.message ?? '', new RegExp(`requested volume size ${smallerBytes} is less than the size ${bytes} for the source snapshot before`));
    store.delete('persistentvolumeclaims', 'default', 'too-small');

    // 5. Deleting the snapshot (policy Delete) removes the backend snapshot; restored data stays.
    store.delete('volumesnapshots', 'default', 'before');
    await until(() => getVs('before') === undefined && store.get('volumesnapshotcontents', undefined, contentName) === undefined, 'snapshot and content gone');
    await until(async () => !(await backendHas(home, handle)), 'the backend snapshot removed');

    // 6. With Retain, the content and the backend snapshot stay.
    apply(snapshotYaml('kept', 'local-retain'));
    const kept = await ready('kept');
    const keptContent = kept.status?.boundVolumeSnapshotContentName ?? '';
    const keptHandle = (store.get('volumesnapshotcontents', undefined, keptContent) as VolumeSnapshotContent).status?.snapshotHandle ?? '';
    store.delete('volumesnapshots', 'default', 'kept');
    await until(() => getVs('kept') === undefined, 'snapshot kept deleted');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(store.get('volumesnapshotcontents', undefined, keptContent), 'the content stays');
    assert.ok(await backendHas(home, keptHandle), 'the backend snapshot stays');
    // Cleanup of the retained snapshot is the admin's: the content, then the backend snapshot.
    store.delete('volumesnapshotcontents', undefined, keptContent);
    await until(() => store.get('volumesnapshotcontents', undefined, keptContent) === undefined, 'retained content deleted');
    assert.ok(await backendHas(home, keptHandle), 'still there: Retain');
    await cluster.nodes.get(home)?.driver.client.controller.DeleteSnapshot({ snapshot_id: keptHandle });

    for (const name of ['writer', 'read-restored', 'read-cloned', 'late-anywhere']) await deletePod(plane, name);
    // The next filesystem's round reuses the names: everything of this one goes, storage included.
    for (const name of ['restored', 'cloned', 'restored-late', 'source']) store.delete('persistentvolumeclaims', 'default', name);
    await until(() => store.list('persistentvolumeclaims').items.length === 0 && store.list('persistentvolumes').items.length === 0, 'the claims and volumes gone');
    for (const event of store.list('events').items) store.delete('events', event.metadata.namespace, event.metadata.name ?? '');
  });
});
