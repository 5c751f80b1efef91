// `stowage gc` on a real `stowage up` (local backend), through YAML, the API server and the CLI:
// an orphaned volume (its Retain PV deleted), a volume and a snapshot made straight through CSI,
// a dangling PV (its volume deleted behind it) and seed 000's leftover (a PV whose driver is not
// registered) are listed with the right WHY; the grace period keeps them; --delete without --yes
// and without a terminal refuses, on a terminal it asks; `gc --delete --yes --grace-period 0` removes exactly those, and
// the Bound volume of a running pod keeps its data.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nodeSocket } from '../../src/control/node/embedded-nodes.js';
import { CsiClient } from '../../src/csi/client.js';
import { needsRoot } from '../support/driver-harness.js';
import { runCaptured } from '../support/processes.js';
import { BIN, startUp, type Up } from '../support/stowage-up.js';

const NODE = 'gc-node';
const MiB = 1024 * 1024;

const MANIFESTS = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: retain}
provisioner: local.csi.stowage.dev
reclaimPolicy: Retain
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: keep}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo precious > /data/file; while true; do sleep 1; done"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: keep}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: retained}
spec:
  storageClassName: retain
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: dangling}
spec:
  storageClassName: retain
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
`;

// Seed 000: the driver was removed, its PV (with the provisioner's finalizer) and claim stayed.
const LEFTOVER = `apiVersion: v1
kind: PersistentVolume
metadata:
  name: leftover
  finalizers: [external-provisioner.volume.kubernetes.io/finalizer]
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: ceph-rbd
  claimRef: {namespace: default, name: leftover}
  csi: {driver: rbd.csi.ceph.com, volumeHandle: 0001-0009-rook-ceph-0000000000000002-5f1e2a3b-0000-0000-0000-000000000000}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: leftover}
spec:
  storageClassName: ceph-rbd
  volumeName: leftover
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`;

interface Row {
  kind: string;
  driver: string;
  name: string;
  where: string;
  age: string;
  why: string;
}

/** The table's rows (the header gives the column starts: WHY holds spaces). */
function rows(table: string): Row[] {
  const [header = '', ...lines] = table.split('\n').filter((l) => l.trim() !== '' && !/^(volume|snapshot|persistentvolume|volumesnapshotcontent) /.test(l));
  const starts = ['KIND', 'DRIVER', 'ID/NAME', 'WHERE', 'AGE', 'WHY'].map((h) => header.indexOf(h));
  assert.ok(starts.every((s) => s >= 0), `a table header: ${header}`);
  return lines
    .filter((l) => /^(Volume|Snapshot|PersistentVolume|VolumeSnapshotContent) /.test(l))
    .map((l) => {
      const cell = (i: number) => l.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : undefined).trim();
      return { kind: cell(0), driver: cell(1), name: cell(2), where: cell(3), age: cell(4), why: cell(5) };
    });
}

describe('stowage gc (local backend)', { skip: needsRoot, timeout: 600_000 }, () => {
  let up: Up;
  let csi: CsiClient;
  let keepHandle = '';
  let orphanHandle = '';
  let directHandle = '';
  let danglingHandle = '';
  let danglingPv = '';
  let snapshotId = '';

  const pvOf = async (claim: string): Promise<string> => up.field('pvc', claim, '.spec.volumeName');

  before(async () => {
    up = await startUp('stowage-gc-', NODE, '512Mi');
    csi = CsiClient.connect(`unix://${nodeSocket(up.state, NODE)}`);
  });

  after(async () => {
    csi?.close();
    await up?.cleanup();
  });

  it('lists each kind of orphan with its WHY, and the grace period keeps them', async () => {
    const file = join(up.dir, 'gc.yaml');
    await writeFile(file, MANIFESTS);
    await up.ok('apply', '-f', file);
    await up.until('the writer to run', async () => (await up.field('pod', 'writer', '.status.phase')) === 'Running');
    await up.until('the data to be written', async () => (await up.stowage('exec', 'writer', '--', 'cat', '/data/file')).stdout === 'precious\n');
    await up.until('both Retain claims to bind', async () => (await up.field('pvc', 'retained', '.status.phase')) === 'Bound' && (await up.field('pvc', 'dangling', '.status.phase')) === 'Bound');
    keepHandle = await up.field('pv', await pvOf('keep'), '.spec.csi.volumeHandle');
    const retainedPv = await pvOf('retained');
    orphanHandle = await up.field('pv', retainedPv, '.spec.csi.volumeHandle');
    danglingPv = await pvOf('dangling');
    danglingHandle = await up.field('pv', danglingPv, '.spec.csi.volumeHandle');

    // An orphan: the claim and then the Retain PV deleted; the volume stays in the pool.
    await up.ok('delete', 'pvc', 'retained');
    await up.until('the retained PV to be Released', async () => (await up.field('pv', retainedPv, '.status.phase')) === 'Released');
    await up.ok('delete', 'pv', retainedPv);
    // A dangling PV: its claim gone (Released, Retain), its volume deleted behind its back.
    await up.ok('delete', 'pvc', 'dangling');
    await up.until('the dangling PV to be Released', async () => (await up.field('pv', danglingPv, '.status.phase')) === 'Released');
    await csi.controller.DeleteVolume({ volume_id: danglingHandle, secrets: {} });
    // Straight through CSI: a volume and a snapshot of the bound volume that no object knows.
    const cap = { access_mode: { mode: 'SINGLE_NODE_WRITER' as const }, mount: { fs_type: '', mount_flags: [] } };
    directHandle = (await csi.controller.CreateVolume({ name: 'made-by-hand', capacity_range: { required_bytes: 8 * MiB }, volume_capabilities: [cap] })).volume?.volume_id ?? '';
    snapshotId = (await csi.controller.CreateSnapshot({ name: 'snap-by-hand', source_volume_id: keepHandle })).snapshot?.snapshot_id ?? '';
    assert.ok(directHandle && snapshotId);
    // Seed 000's leftover.
    const leftover = join(up.dir, 'leftover.yaml');
    await writeFile(leftover, LEFTOVER);
    await up.ok('apply', '-f', leftover);

    const listed = await up.stowage('gc');
    assert.equal(listed.code, 0, listed.stderr);
    const got = rows(listed.stdout);
    const want = [
      { kind: 'Snapshot', name: snapshotId, why: /^no VolumeSnapshotContent refers to it; younger than the grace period \(60m\): kept$/ },
      { kind: 'Volume', name: directHandle, why: /^no PersistentVolume refers to it; younger than the grace period/ },
      { kind: 'Volume', name: orphanHandle, why: /^no PersistentVolume refers to it; younger than the grace period/ },
      { kind: 'PersistentVolume', name: danglingPv, why: new RegExp(`^volume ${danglingHandle} does not exist in the driver; younger`) },
      { kind: 'PersistentVolume', name: 'leftover', why: /^driver rbd\.csi\.ceph\.com is not registered \(no CSIDriver, no CSINode lists it\); younger/ },
    ];
    assert.equal(got.length, want.length, `exactly the orphans:\n${listed.stdout}`);
    for (const w of want) {
      const row = got.find((r) => r.kind === w.kind && r.name === w.name);
      assert.ok(row, `${w.kind} ${w.name} is listed:\n${listed.stdout}`);
      assert.match(row.why, w.why);
    }
    assert.ok(!got.some((r) => r.name === keepHandle), 'the bound volume is not an orphan');
    const volumeRow = got.find((r) => r.name === orphanHandle);
    assert.equal(volumeRow?.where, NODE);
    assert.equal(volumeRow?.driver, 'local.csi.stowage.dev');
    assert.equal(got.find((r) => r.name === 'leftover')?.where, 'api');

    // Everything is younger than the default hour: --delete removes nothing.
    const kept = await up.stowage('gc', '--delete', '--yes');
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /nothing to delete: everything listed is younger than the grace period or still being made/);
    assert.equal(rows(kept.stdout).length, want.length);
  });

  it('--delete without --yes and without a terminal refuses', async () => {
    const r = await up.stowage('gc', '--delete', '--grace-period', '0');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--delete needs a confirmation: run it on a terminal, or pass --yes/);
    assert.equal((await up.stowage('get', 'pv', 'leftover')).code, 0, 'nothing was deleted');
  });

  it('on a terminal, --delete asks first, and no means nothing is deleted', async () => {
    // script(1) gives gc a terminal; its argument is one command line (our paths hold no quotes).
    const line = [process.execPath, BIN, '--state-dir', up.state, 'gc', '--delete', '--grace-period', '0'].map((a) => `'${a}'`).join(' ');
    const r = await runCaptured('script', ['-qec', line, '/dev/null'], { stdin: 'n\n' });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /Delete these 5 \(the rows not marked "kept"\)\? \[y\/N\] /);
    assert.match(r.stdout, /nothing deleted/);
    assert.equal((await up.stowage('get', 'pv', 'leftover')).code, 0, 'nothing was deleted');
    assert.equal((await csi.controller.ListVolumes({})).entries.length, 3, 'the volumes are all there');
  });

  it('--delete --yes --grace-period 0 removes exactly the orphans; the bound volume keeps its data', async () => {
    const r = await up.stowage('gc', '--delete', '--yes', '--grace-period', '0');
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^snapshot ${snapshotId} deleted through local\\.csi\\.stowage\\.dev$`, 'm'));
    assert.match(r.stdout, new RegExp(`^volume ${directHandle} deleted through`, 'm'));
    assert.match(r.stdout, new RegExp(`^volume ${orphanHandle} deleted through`, 'm'));
    assert.match(r.stdout, new RegExp(`^persistentvolume ${danglingPv} deleted$`, 'm'));
    assert.match(r.stdout, /^persistentvolume leftover deleted \(finalizers .*external-provisioner\.volume\.kubernetes\.io\/finalizer.* removed: driver rbd\.csi\.ceph\.com is not registered\)$/m);

    const volumes = (await csi.controller.ListVolumes({})).entries.map((e) => e.volume?.volume_id);
    assert.deepEqual(volumes, [keepHandle], 'only the bound volume is left in the pool');
    assert.deepEqual((await csi.controller.ListSnapshots({})).entries, [], 'the snapshot is gone');
    assert.notEqual((await up.stowage('get', 'pv', danglingPv)).code, 0, 'the dangling PV is gone');
    assert.notEqual((await up.stowage('get', 'pv', 'leftover')).code, 0, 'the leftover PV is gone');
    assert.equal(await up.field('pvc', 'keep', '.status.phase'), 'Bound');
    assert.equal((await up.ok('exec', 'writer', '--', 'cat', '/data/file')), 'precious\n', 'the bound volume kept its data');

    const again = await up.ok('gc');
    assert.equal(again, 'No orphans found.\n');
  });
});
