// `stowage gc`'s judgement against in-memory objects: which volumes, snapshots, PVs and
// VolumeSnapshotContents are orphans and why, what the grace period keeps, when a driver's
// listing is too partial to call a volume gone, which Secret a delete carries, and the table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PersistentVolume } from '../../src/control/api/types/core.js';
import type { VolumeSnapshotContent } from '../../src/control/api/types/snapshot.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { credentialsOf } from '../../src/cli/gc/ceph-inventory.js';
import { type EndpointListing, inventoriesOf } from '../../src/cli/gc/csi-inventory.js';
import { parseDuration } from '../../src/cli/gc/duration.js';
import { type ApiState, type Finding, findOrphans, type Inventory } from '../../src/cli/gc/find.js';
import { type ApiView, deletionSecretRef, formatFindings } from '../../src/cli/gc/run.js';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const HOUR = 3_600_000;
const ago = (ms: number): string => new Date(NOW - ms).toISOString();
const D = 'local.csi.stowage.dev';

function pv(name: string, handle: string, opts: { driver?: string; phase?: string; reclaim?: 'Delete' | 'Retain'; created?: string; deleting?: boolean } = {}): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, creationTimestamp: opts.created ?? ago(2 * HOUR), ...(opts.deleting ? { deletionTimestamp: ago(1000) } : {}) },
    spec: { csi: { driver: opts.driver ?? D, volumeHandle: handle }, persistentVolumeReclaimPolicy: opts.reclaim ?? 'Delete' },
    status: { phase: (opts.phase ?? 'Bound') as 'Bound' },
  } as PersistentVolume;
}

function vsc(name: string, handle: string | undefined, driver = D): VolumeSnapshotContent {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotContent',
    metadata: { name, creationTimestamp: ago(2 * HOUR) },
    spec: { driver, deletionPolicy: 'Delete', source: { volumeHandle: 'v' }, volumeSnapshotRef: { name: 's', namespace: 'default' } },
    ...(handle === undefined ? {} : { status: { snapshotHandle: handle } }),
  } as VolumeSnapshotContent;
}

const inventory = (over: Partial<Inventory> = {}): Inventory => ({ driver: D, volumes: [], snapshots: [], volumesComplete: true, snapshotsComplete: true, ...over });
const api = (over: Partial<ApiState> = {}): ApiState => ({ pvs: [], contents: [], csiDrivers: [D], nodeDrivers: [D], ...over });
const old = (id: string, where = 'node-1') => ({ id, where, createdAt: ago(2 * HOUR), endpoint: '/s' });
const brief = (fs: Finding[]) => fs.map((f) => `${f.kind} ${f.name}: ${f.why}${f.neverTouched ? ' (never touched)' : f.young ? ' (young)' : ''}${f.driverGone ? ' (driver gone)' : ''}`);

describe('gc: what is an orphan', () => {
  const cases: { name: string; inv: Inventory[]; api: ApiState; want: string[] }[] = [
    { name: 'a volume a PV refers to is not', inv: [inventory({ volumes: [old('v1')] })], api: api({ pvs: [pv('pv-1', 'v1')] }), want: [] },
    { name: 'an unreferenced volume is', inv: [inventory({ volumes: [old('v1'), old('v2')] })], api: api({ pvs: [pv('pv-1', 'v1')] }), want: ['Volume v2: no PersistentVolume refers to it'] },
    { name: 'a PV of another driver with the same handle does not count', inv: [inventory({ volumes: [old('v1')] })], api: api({ pvs: [pv('pv-1', 'v1', { driver: 'other' })], nodeDrivers: [D, 'other'] }), want: ['Volume v1: no PersistentVolume refers to it'] },
    {
      name: 'a create in flight (or abandoned) is shown, never a target, however old',
      inv: [inventory({ volumes: [{ ...old('v1'), inFlight: true }], snapshots: [{ ...old('s1'), inFlight: true }] })],
      api: api(),
      want: [
        "Snapshot s1: reserved in the driver's journal, not complete (a CreateSnapshot in flight or abandoned) (never touched)",
        "Volume v1: reserved in the driver's journal, not complete (a CreateVolume in flight or abandoned) (never touched)",
      ],
    },
    {
      name: 'a member of a group snapshot goes with its group, never alone',
      inv: [inventory({ snapshots: [{ ...old('s1'), groupSnapshotId: 'g1' }] })],
      api: api(),
      want: ['Snapshot s1: no VolumeSnapshotContent refers to it, but it is a member of group snapshot g1 (DeleteVolumeGroupSnapshot removes it) (never touched)'],
    },
    { name: 'an unreferenced snapshot is', inv: [inventory({ snapshots: [old('s1'), old('s2')] })], api: api({ contents: [vsc('c1', 's1')] }), want: ['Snapshot s2: no VolumeSnapshotContent refers to it'] },
    { name: "a PV whose volume the driver no longer has", inv: [inventory({ volumes: [old('v1')] })], api: api({ pvs: [pv('pv-1', 'v1'), pv('pv-2', 'gone')] }), want: ['PersistentVolume pv-2: volume gone does not exist in the driver'] },
    { name: 'a partial listing calls nothing gone', inv: [inventory({ volumes: [old('v1')], volumesComplete: false })], api: api({ pvs: [pv('pv-1', 'v1'), pv('pv-2', 'gone')] }), want: [] },
    {
      name: 'a listing of some pools calls nothing gone outside them',
      inv: [inventory({ volumes: [old('p1-a')], covers: (id) => id.startsWith('p1-') })],
      api: api({ pvs: [pv('pv-1', 'p1-gone'), pv('pv-2', 'p2-elsewhere')] }),
      want: ['Volume p1-a: no PersistentVolume refers to it', 'PersistentVolume pv-1: volume p1-gone does not exist in the driver'],
    },
    { name: 'a driver that does not list calls nothing gone', inv: [], api: api({ pvs: [pv('pv-2', 'gone')] }), want: [] },
    { name: 'a PV being deleted is the provisioner\'s', inv: [inventory()], api: api({ pvs: [pv('pv-2', 'gone', { deleting: true })] }), want: [] },
    { name: 'a Released PV with reclaim Delete is the provisioner\'s', inv: [inventory()], api: api({ pvs: [pv('pv-2', 'gone', { phase: 'Released' })] }), want: [] },
    { name: 'a Released PV with reclaim Retain whose volume is gone is dangling', inv: [inventory()], api: api({ pvs: [pv('pv-2', 'gone', { phase: 'Released', reclaim: 'Retain' })] }), want: ['PersistentVolume pv-2: volume gone does not exist in the driver'] },
    {
      name: "a PV of a driver nobody registers (seed 000's leftover), even while being deleted",
      inv: [],
      api: api({ pvs: [pv('pv-x', 'h', { driver: 'rbd.csi.ceph.com', deleting: true })] }),
      want: ['PersistentVolume pv-x: driver rbd.csi.ceph.com is not registered (no CSIDriver, no CSINode lists it) (driver gone)'],
    },
    { name: 'a CSIDriver object alone keeps a driver registered', inv: [], api: api({ pvs: [pv('pv-x', 'h', { driver: 'x' })], csiDrivers: ['x'], nodeDrivers: [] }), want: [] },
    { name: 'a CSINode entry alone keeps a driver registered', inv: [], api: api({ pvs: [pv('pv-x', 'h', { driver: 'x' })], csiDrivers: [], nodeDrivers: ['x'] }), want: [] },
    { name: 'a content whose snapshot is gone', inv: [inventory({ snapshots: [old('s1')] })], api: api({ contents: [vsc('c1', 's1'), vsc('c2', 's9')] }), want: ['VolumeSnapshotContent c2: snapshot s9 does not exist in the driver'] },
    { name: 'a content still being cut (no handle yet) is not', inv: [inventory()], api: api({ contents: [vsc('c1', undefined)] }), want: [] },
    { name: 'a content of an unregistered driver', inv: [], api: api({ contents: [vsc('c1', 's1', 'gone.example.com')] }), want: ['VolumeSnapshotContent c1: driver gone.example.com is not registered (no CSIDriver, no CSINode lists it) (driver gone)'] },
    {
      name: 'snapshots come before volumes, objects last (the order they are deleted in)',
      inv: [inventory({ volumes: [old('v1')], snapshots: [old('s1')] })],
      api: api({ pvs: [pv('pv-2', 'gone')], contents: [vsc('c2', 's9')] }),
      want: ['Snapshot s1: no VolumeSnapshotContent refers to it', 'Volume v1: no PersistentVolume refers to it', 'VolumeSnapshotContent c2: snapshot s9 does not exist in the driver', 'PersistentVolume pv-2: volume gone does not exist in the driver'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(brief(findOrphans(c.inv, c.api, { now: NOW, graceMs: HOUR })), c.want));
  }
});

describe('gc: the grace period', () => {
  const cases: { name: string; createdAt: string | undefined; graceMs: number; young: boolean }[] = [
    { name: 'older than the grace period: deletable', createdAt: ago(2 * HOUR), graceMs: HOUR, young: false },
    { name: 'younger: kept', createdAt: ago(HOUR - 1000), graceMs: HOUR, young: true },
    { name: 'unknown age: kept', createdAt: undefined, graceMs: HOUR, young: true },
    { name: 'grace 0: everything with an age is deletable', createdAt: ago(0), graceMs: 0, young: false },
    { name: 'a clock ahead of ours: age 0, kept', createdAt: ago(-HOUR), graceMs: 1, young: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const item = { id: 'v1', where: 'n', ...(c.createdAt === undefined ? {} : { createdAt: c.createdAt }) };
      const [f] = findOrphans([inventory({ volumes: [item] })], api(), { now: NOW, graceMs: c.graceMs });
      assert.equal(f?.young, c.young);
    });
  }
  it('applies to API objects by their creationTimestamp', () => {
    const fresh = pv('pv-new', 'gone', { created: ago(60_000) });
    const [f] = findOrphans([inventory()], api({ pvs: [fresh] }), { now: NOW, graceMs: HOUR });
    assert.equal(f?.young, true);
    assert.equal(f?.ageMs, 60_000);
  });
});

describe('gc: durations', () => {
  const cases: [string, number | undefined][] = [
    ['0', 0],
    ['90', 90_000],
    ['1h', HOUR],
    ['1h30m', 1.5 * HOUR],
    ['45s', 45_000],
    ['500ms', 500],
    ['1.5h', 1.5 * HOUR],
    ['', undefined],
    ['-1', undefined],
    ['1d', undefined],
    ['h', undefined],
  ];
  for (const [text, ms] of cases) it(`${JSON.stringify(text)} → ${ms}`, () => assert.equal(parseDuration(text), ms));
});

describe('gc: a driver listing is complete only if every endpoint of it answered', () => {
  const listing = (driver: string, where: string, over: Partial<EndpointListing> = {}): EndpointListing => ({ endpoint: { socket: `/${where}`, where }, driver, hasController: true, listsVolumes: true, listsSnapshots: true, volumes: [{ id: `${where}-v`, where }], snapshots: [], ...over });
  const cases: { name: string; listings: EndpointListing[]; want: { driver: string; volumes: string[]; complete: boolean }[] }[] = [
    { name: 'two nodes answered', listings: [listing(D, 'n1'), listing(D, 'n2')], want: [{ driver: D, volumes: ['n1-v', 'n2-v'], complete: true }] },
    { name: 'one node failed', listings: [listing(D, 'n1'), listing(D, 'n2', { error: 'UNAVAILABLE', listsVolumes: false, volumes: [] })], want: [{ driver: D, volumes: ['n1-v'], complete: false }] },
    { name: 'a driver that lists nothing has no inventory', listings: [listing('rbd', 'controller', { listsVolumes: false, listsSnapshots: false, volumes: [] })], want: [] },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.deepEqual(
        inventoriesOf(c.listings).map((i) => ({ driver: i.driver, volumes: i.volumes.map((v) => v.id), complete: i.volumesComplete })),
        c.want,
      ),
    );
  }
});

describe('gc: the Secret a delete carries', () => {
  const sc = (name: string, provisioner: string, parameters: Record<string, string>): StorageClass => ({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name }, provisioner, parameters });
  const view = (storageClasses: StorageClass[]): ApiView => ({ ...api(), storageClasses, snapshotClasses: [], embeddedNodes: [] });
  const finding: Finding = { kind: 'Volume', driver: 'rbd.csi.ceph.com', name: 'v', where: 'x', ageMs: 0, why: '', young: false };
  const secret = { 'csi.storage.k8s.io/provisioner-secret-name': 'ceph-admin', 'csi.storage.k8s.io/provisioner-secret-namespace': 'ceph' };
  const cases: { name: string; f: Finding; classes: StorageClass[]; want: { name: string; namespace: string } | undefined }[] = [
    { name: "the driver's class's provisioner secret", f: finding, classes: [sc('a', 'other', secret), sc('b', 'rbd.csi.ceph.com', secret)], want: { name: 'ceph-admin', namespace: 'ceph' } },
    { name: 'a templated one names no Secret', f: finding, classes: [sc('b', 'rbd.csi.ceph.com', { ...secret, 'csi.storage.k8s.io/provisioner-secret-name': '${pvc.name}' })], want: undefined },
    { name: 'none: no secrets (the local driver needs none)', f: finding, classes: [], want: undefined },
    { name: 'the one the item was found through wins', f: { ...finding, secretRef: { name: 'own', namespace: 'ns' } }, classes: [sc('b', 'rbd.csi.ceph.com', secret)], want: { name: 'own', namespace: 'ns' } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(deletionSecretRef(c.f, view(c.classes)), c.want));
});

describe("gc: the credentials a Ceph class's provisioner Secret gives", () => {
  const cases: { name: string; driver: string; secret: Record<string, string>; want: { user: string; key: string } | undefined }[] = [
    { name: 'rbd: userID/userKey', driver: 'rbd.csi.stowage.dev', secret: { userID: 'admin', userKey: 'K' }, want: { user: 'admin', key: 'K' } },
    { name: 'rbd: adminID alone is not enough', driver: 'rbd.csi.stowage.dev', secret: { adminID: 'admin', adminKey: 'K' }, want: undefined },
    { name: 'cephfs: adminID/adminKey first', driver: 'cephfs.csi.stowage.dev', secret: { adminID: 'a', adminKey: 'A', userID: 'u', userKey: 'U' }, want: { user: 'a', key: 'A' } },
    { name: "cephfs: else the user's", driver: 'cephfs.csi.stowage.dev', secret: { userID: 'u', userKey: 'U' }, want: { user: 'u', key: 'U' } },
    { name: 'a user without a key', driver: 'rbd.csi.stowage.dev', secret: { userID: 'u' }, want: undefined },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(credentialsOf(c.driver, c.secret), c.want));
});

describe('gc: the table', () => {
  it('says what is never touched', () => {
    const fs = findOrphans([inventory({ volumes: [{ ...old('v-made'), inFlight: true }] })], api(), { now: NOW, graceMs: 0 });
    assert.match(formatFindings(fs, 0), /v-made\s+node-1\s+120m\s+reserved in the driver's journal, not complete \(a CreateVolume in flight or abandoned\): never touched\n$/);
  });
  it('has KIND, DRIVER, ID/NAME, WHERE, AGE, WHY and says what the grace period keeps', () => {
    const fs = findOrphans([inventory({ volumes: [old('v-old'), { id: 'v-new', where: 'node-2', createdAt: ago(5 * 60_000) }] })], api(), { now: NOW, graceMs: HOUR });
    const lines = formatFindings(fs, HOUR).trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^KIND\s+DRIVER\s+ID\/NAME\s+WHERE\s+AGE\s+WHY$/);
    assert.match(lines[1] ?? '', /^Volume\s+local\.csi\.stowage\.dev\s+v-new\s+node-2\s+5m\s+no PersistentVolume refers to it; younger than the grace period \(60m\): kept$/);
    assert.match(lines[2] ?? '', /^Volume\s+local\.csi\.stowage\.dev\s+v-old\s+node-1\s+120m\s+no PersistentVolume refers to it$/);
  });
});
