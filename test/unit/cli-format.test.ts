// The CLI's output: kubectl's table layout (checked against seed 000's `kubectl get pv`/`get pvc`
// tables), ages, access modes, the "(default)" marker, every kind's columns, and describe.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceForName, type ResourceInfo } from '../../src/control/api/registry.js';
import type { Event, PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { formatObjects, tableRows } from '../../src/cli/format/columns.js';
import { describeObject, fieldTitle } from '../../src/cli/format/describe.js';
import { accessModes, age, formatTable, humanDuration, tabwrite } from '../../src/cli/format/table.js';
import { humanLine } from '../../src/cli/human-log.js';
import { toJson, toYaml } from '../../src/cli/output.js';

const NOW = Date.parse('2024-05-06T12:00:00Z');
const ago = (ms: number): string => new Date(NOW - ms).toISOString().replace(/\.\d+Z$/, 'Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

function resource(name: string): ResourceInfo {
  const r = resourceForName(name);
  assert.ok(r, name);
  return r;
}

function pv(name: string, phase: string, created: string, extra: Partial<PersistentVolume['spec']> = {}): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, creationTimestamp: created },
    spec: {
      capacity: { storage: '1Gi' },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Delete',
      claimRef: { namespace: 'default', name: 'rbd-pvc' },
      storageClassName: 'csi-rbd-sc',
      volumeMode: 'Filesystem',
      ...extra,
    },
    status: { phase: phase as 'Bound' },
  };
}

function boundPvc(): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'rbd-pvc', namespace: 'default', creationTimestamp: ago(113 * MIN) },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: 'csi-rbd-sc', volumeName: 'pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765', volumeMode: 'Filesystem' },
    status: { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: { storage: '1Gi' } },
  };
}

describe('tables: the layout of kubectl get', () => {
  // Seed 000, `kubectl get pv` (kubectl of 2020: no VOLUMEATTRIBUTESCLASS column). Its CLAIM column
  // is padded far beyond its cells in the seed (an artifact of the copy); everything else is kubectl's
  // tabwriter: each column as wide as its widest cell plus three spaces, the last unpadded.
  const SEED_PV = [
    'NAME                                       CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS     CLAIM                                                                                                            STORAGECLASS   REASON   AGE',
    'pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765   1Gi        RWO            Delete           Bound      default/rbd-pvc                                                                                                  csi-rbd-sc              105m',
    'pvc-ad66c618-a2b0-48db-bea1-9f822f39d47b   1Gi        RWO            Delete           Released   default/rbd-pvc                                                                                                  csi-rbd-sc              3d22h',
  ];
  const SEED_PVC = [
    'NAME                                                                                                     STATUS   VOLUME                                     CAPACITY   ACCESS MODES   STORAGECLASS   AGE',
    'rbd-pvc                                                                                                  Bound    pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765   1Gi        RWO            csi-rbd-sc     113m',
  ];

  it('lays out the seed\'s PV table exactly, apart from its over-wide CLAIM column', () => {
    const rows = [
      ['NAME', 'CAPACITY', 'ACCESS MODES', 'RECLAIM POLICY', 'STATUS', 'CLAIM', 'STORAGECLASS', 'REASON', 'AGE'],
      ['pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765', '1Gi', 'RWO', 'Delete', 'Bound', 'default/rbd-pvc', 'csi-rbd-sc', '', age(ago(105 * MIN), NOW)],
      ['pvc-ad66c618-a2b0-48db-bea1-9f822f39d47b', '1Gi', 'RWO', 'Delete', 'Released', 'default/rbd-pvc', 'csi-rbd-sc', '', age(ago(3 * DAY + 22 * HOUR), NOW)],
    ];
    const mine = formatTable(rows).split('\n').slice(0, -1);
    assert.equal(mine.length, 3);
    mine.forEach((line, i) => {
      const seed = SEED_PV[i] ?? '';
      const claimAt = SEED_PV[0]!.indexOf('CLAIM');
      assert.equal(line.slice(0, claimAt), seed.slice(0, claimAt), 'columns before CLAIM');
      const seedTail = seed.slice(SEED_PV[0]!.indexOf('STORAGECLASS'));
      const myTail = line.slice(mine[0]!.indexOf('STORAGECLASS'));
      assert.equal(myTail, seedTail, 'columns from STORAGECLASS on');
      assert.equal(line.replace(/ {3,}/g, '|'), seed.replace(/ {3,}/g, '|'));
    });
  });

  it('lays out the seed\'s PVC table exactly from STATUS on', () => {
    const rows = [
      ['NAME', 'STATUS', 'VOLUME', 'CAPACITY', 'ACCESS MODES', 'STORAGECLASS', 'AGE'],
      ['rbd-pvc', 'Bound', 'pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765', '1Gi', 'RWO', 'csi-rbd-sc', '113m'],
    ];
    const mine = formatTable(rows).split('\n').slice(0, -1);
    mine.forEach((line, i) => {
      const seed = SEED_PVC[i] ?? '';
      assert.equal(line.slice(mine[0]!.indexOf('STATUS')), seed.slice(SEED_PVC[0]!.indexOf('STATUS')));
    });
  });

  it('prints kubectl 1.32\'s PVC columns, capacity and modes only once bound', () => {
    const pending: PersistentVolumeClaim = { ...boundPvc(), metadata: { name: 'pending', namespace: 'default', creationTimestamp: ago(5000) }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Pending' } };
    const text = formatObjects(resource('pvc'), [boundPvc(), pending], { now: NOW });
    assert.equal(
      text,
      [
        'NAME      STATUS    VOLUME                                     CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE',
        'rbd-pvc   Bound     pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765   1Gi        RWO            csi-rbd-sc     <unset>                 113m',
        'pending   Pending                                                                                       <unset>                 5s',
        '',
      ].join('\n'),
    );
    const wide = tableRows(resource('pvc'), [boundPvc()], { now: NOW, wide: true });
    assert.deepEqual(wide[0]?.slice(-2), ['AGE', 'VOLUMEMODE']);
    assert.deepEqual(wide[1]?.slice(-1), ['Filesystem']);
  });

  it('prints kubectl 1.32\'s PV columns, Terminating while deleting', () => {
    const deleting = pv('pv-b', 'Bound', ago(3 * DAY + 22 * HOUR));
    deleting.metadata.deletionTimestamp = ago(0);
    const rows = tableRows(resource('pv'), [pv('pv-a', 'Bound', ago(105 * MIN)), deleting], { now: NOW });
    assert.deepEqual(rows, [
      ['NAME', 'CAPACITY', 'ACCESS MODES', 'RECLAIM POLICY', 'STATUS', 'CLAIM', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS', 'REASON', 'AGE'],
      ['pv-a', '1Gi', 'RWO', 'Delete', 'Bound', 'default/rbd-pvc', 'csi-rbd-sc', '<unset>', '', '105m'],
      ['pv-b', '1Gi', 'RWO', 'Delete', 'Terminating', 'default/rbd-pvc', 'csi-rbd-sc', '<unset>', '', '3d22h'],
    ]);
  });

  it('marks the default StorageClass and fills kubectl\'s defaults', () => {
    const sc = (name: string, extra: Partial<StorageClass> = {}): StorageClass => ({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name, creationTimestamp: ago(2 * DAY) },
      provisioner: 'local.csi.stowage.dev',
      ...extra,
    });
    const text = formatObjects(
      resource('sc'),
      [
        sc('local', { metadata: { name: 'local', creationTimestamp: ago(2 * DAY), annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } }, reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate', allowVolumeExpansion: true }),
        sc('beta', { metadata: { name: 'beta', creationTimestamp: ago(2 * DAY), annotations: { 'storageclass.beta.kubernetes.io/is-default-class': 'true' } } }),
        sc('plain', { metadata: { name: 'plain', creationTimestamp: ago(2 * DAY), annotations: { 'storageclass.kubernetes.io/is-default-class': 'false' } }, reclaimPolicy: 'Retain', volumeBindingMode: 'WaitForFirstConsumer' }),
      ],
      { now: NOW },
    );
    assert.equal(
      text,
      [
        'NAME              PROVISIONER             RECLAIMPOLICY   VOLUMEBINDINGMODE      ALLOWVOLUMEEXPANSION   AGE',
        'local (default)   local.csi.stowage.dev   Delete          Immediate              true                   2d',
        'beta (default)    local.csi.stowage.dev   Delete          Immediate              false                  2d',
        'plain             local.csi.stowage.dev   Retain          WaitForFirstConsumer   false                  2d',
        '',
      ].join('\n'),
    );
  });

  it('adds NAMESPACE with -A and kind/name with several kinds; --no-headers drops the header', () => {
    const rows = tableRows(resource('pvc'), [boundPvc()], { now: NOW, withNamespace: true, withKind: true });
    assert.equal(rows[0]?.[0], 'NAMESPACE');
    assert.equal(rows[1]?.[0], 'default');
    assert.equal(rows[1]?.[1], 'persistentvolumeclaim/rbd-pvc');
    const scRows = tableRows(resource('sc'), [{ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'x' }, provisioner: 'p' } as StorageClass], { withKind: true, withNamespace: true, noHeaders: true });
    assert.deepEqual(scRows[0]?.[0], 'storageclass.storage.k8s.io/x', 'cluster-scoped kinds get no NAMESPACE column');
  });

  it('has kubectl\'s columns for every kind it serves', () => {
    const headers = (name: string, wide = false) => tableRows(resource(name), [], { wide })[0];
    assert.deepEqual(headers('pod'), ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
    assert.deepEqual(headers('pod', true), ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES']);
    assert.deepEqual(headers('node'), ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION']);
    assert.deepEqual(headers('csistoragecapacities'), ['NAME', 'STORAGECLASSNAME', 'CAPACITY', 'AGE']);
    const capacity = { apiVersion: 'storage.k8s.io/v1', kind: 'CSIStorageCapacity', metadata: { name: 'csisc-a', namespace: 'default', creationTimestamp: ago(5 * MIN) }, storageClassName: 'fast', capacity: '1Gi' };
    assert.deepEqual(tableRows(resource('csistoragecapacity'), [capacity], { now: NOW })[1], ['csisc-a', 'fast', '1Gi', '5m']);
    assert.deepEqual(headers('csidriver'), ['NAME', 'ATTACHREQUIRED', 'PODINFOONMOUNT', 'STORAGECAPACITY', 'TOKENREQUESTS', 'REQUIRESREPUBLISH', 'MODES', 'AGE']);
    assert.deepEqual(headers('csinode'), ['NAME', 'DRIVERS', 'AGE']);
    assert.deepEqual(headers('volumeattachment'), ['NAME', 'ATTACHER', 'PV', 'NODE', 'ATTACHED', 'AGE']);
    assert.deepEqual(headers('event'), ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']);
    assert.deepEqual(headers('event', true), ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'SUBOBJECT', 'SOURCE', 'MESSAGE', 'FIRST SEEN', 'COUNT', 'NAME']);
    assert.deepEqual(headers('ns'), ['NAME', 'STATUS', 'AGE']);
    assert.deepEqual(headers('secret'), ['NAME', 'TYPE', 'DATA', 'AGE']);
    assert.deepEqual(headers('cm'), ['NAME', 'DATA', 'AGE']);
    assert.deepEqual(headers('vs'), ['NAME', 'READYTOUSE', 'SOURCEPVC', 'SOURCESNAPSHOTCONTENT', 'RESTORESIZE', 'SNAPSHOTCLASS', 'SNAPSHOTCONTENT', 'CREATIONTIME', 'AGE']);
    assert.deepEqual(headers('vsclass'), ['NAME', 'DRIVER', 'DELETIONPOLICY', 'AGE']);
    assert.deepEqual(headers('vsc'), ['NAME', 'READYTOUSE', 'RESTORESIZE', 'DELETIONPOLICY', 'DRIVER', 'VOLUMESNAPSHOTCLASS', 'VOLUMESNAPSHOT', 'VOLUMESNAPSHOTNAMESPACE', 'AGE']);
  });

  it('prints events as kind/name with their last time seen', () => {
    const e: Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'data.1', namespace: 'default' },
      involvedObject: { kind: 'PersistentVolumeClaim', name: 'data', namespace: 'default' },
      reason: 'ProvisioningSucceeded',
      message: ' Successfully provisioned volume pvc-1 ',
      type: 'Normal',
      firstTimestamp: ago(3 * MIN),
      lastTimestamp: ago(30_000),
      count: 2,
    };
    assert.deepEqual(tableRows(resource('ev'), [e], { now: NOW })[1], ['30s', 'Normal', 'ProvisioningSucceeded', 'persistentvolumeclaim/data', 'Successfully provisioned volume pvc-1']);
  });
});

describe('ages, access modes, tabwriter', () => {
  it('prints ages as apimachinery\'s HumanDuration', () => {
    const cases: [number, string][] = [
      [-5000, '<invalid>'],
      [-1000, '0s'],
      [0, '0s'],
      [5000, '5s'],
      [119_000, '119s'],
      [2 * MIN, '2m'],
      [3 * MIN + 7000, '3m7s'],
      [10 * MIN + 59_000, '10m'],
      [179 * MIN, '179m'],
      [3 * HOUR, '3h'],
      [5 * HOUR + 12 * MIN, '5h12m'],
      [8 * HOUR + 30 * MIN, '8h'],
      [47 * HOUR, '47h'],
      [2 * DAY, '2d'],
      [3 * DAY + 22 * HOUR, '3d22h'],
      [8 * DAY, '8d'],
      [400 * DAY, '400d'],
      [2 * 365 * DAY, '2y'],
      [3 * 365 * DAY + 10 * DAY, '3y10d'],
      [9 * 365 * DAY, '9y'],
    ];
    for (const [ms, text] of cases) assert.equal(humanDuration(ms), text, `${ms} ms`);
    assert.equal(age(undefined, NOW), '<unknown>');
    assert.equal(age(ago(5 * 1000), NOW), '5s');
  });

  it('abbreviates access modes once each, in kubectl\'s order', () => {
    assert.equal(accessModes(['ReadWriteOnce']), 'RWO');
    assert.equal(accessModes(['ReadWriteOncePod', 'ReadWriteMany', 'ReadOnlyMany', 'ReadWriteOnce', 'ReadWriteOnce']), 'RWO,ROX,RWX,RWOP');
    assert.equal(accessModes([]), '');
    assert.equal(accessModes(undefined), '');
  });

  it('aligns like Go\'s text/tabwriter: blocks end at a line with fewer cells, minimum width', () => {
    assert.equal(tabwrite('a:\tb\nlonger:\tc\nno tabs\nx:\ty\n', { minWidth: 0, padding: 2 }), 'a:       b\nlonger:  c\nno tabs\nx:  y\n');
    assert.equal(formatTable([['A', 'B'], ['x', 'y']]), 'A     B\nx     y\n', 'minimum width 6');
    assert.equal(formatTable([['ÄÖÜ', 'B']]), 'ÄÖÜ   B\n', 'widths count characters');
  });
});

describe('describe', () => {
  it('describes a bound PVC as kubectl does, with its events', () => {
    const pvc = boundPvc();
    pvc.metadata.annotations = {
      'pv.kubernetes.io/bind-completed': 'yes',
      'pv.kubernetes.io/bound-by-controller': 'yes',
      'volume.beta.kubernetes.io/storage-provisioner': 'csi.block.bigtera.com',
      'kubectl.kubernetes.io/last-applied-configuration': '{"kind":"PersistentVolumeClaim"}',
    };
    pvc.metadata.finalizers = ['kubernetes.io/pvc-protection'];
    // Seed 000's `kubectl describe pvc rbd-pvc`, in kubectl 1.32's words ("Used By", not "Mounted By").
    assert.equal(
      describeObject(resource('pvc'), pvc, { events: [], now: NOW }),
      [
        'Name:          rbd-pvc',
        'Namespace:     default',
        'StorageClass:  csi-rbd-sc',
        'Status:        Bound',
        'Volume:        pvc-7a4097ef-5d59-4c78-bd5d-d3e8a50b0765',
        'Labels:        <none>',
        'Annotations:   pv.kubernetes.io/bind-completed: yes',
        '               pv.kubernetes.io/bound-by-controller: yes',
        '               volume.beta.kubernetes.io/storage-provisioner: csi.block.bigtera.com',
        'Finalizers:    [kubernetes.io/pvc-protection]',
        'Capacity:      1Gi',
        'Access Modes:  RWO',
        'VolumeMode:    Filesystem',
        'Used By:       <none>',
        'Events:        <none>',
        '',
      ].join('\n'),
    );
    const events: Event[] = [
      { apiVersion: 'v1', kind: 'Event', metadata: { name: 'b' }, involvedObject: {}, type: 'Normal', reason: 'ProvisioningSucceeded', message: 'Successfully provisioned volume pvc-1', source: { component: 'stowage-csi-provisioner' }, firstTimestamp: ago(10_000), lastTimestamp: ago(10_000), count: 1 },
      { apiVersion: 'v1', kind: 'Event', metadata: { name: 'a' }, involvedObject: {}, type: 'Warning', reason: 'ProvisioningFailed', message: 'driver not ready', reportingComponent: 'stowage-csi-provisioner', firstTimestamp: ago(5 * MIN), lastTimestamp: ago(20_000), count: 3 },
    ];
    const text = describeObject(resource('pvc'), pvc, { events, pods: [], now: NOW });
    assert.ok(
      text.endsWith(
        [
          'Used By:       <none>',
          'Events:',
          '  Type     Reason                 Age               From                     Message',
          '  ----     ------                 ----              ----                     -------',
          '  Warning  ProvisioningFailed     20s (x3 over 5m)  stowage-csi-provisioner  driver not ready',
          '  Normal   ProvisioningSucceeded  10s               stowage-csi-provisioner  Successfully provisioned volume pvc-1',
          '',
        ].join('\n'),
      ),
      text,
    );
  });

  it('lists the pods using a PVC', () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [], volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'rbd-pvc' } }] } } as KubeObject;
    assert.match(describeObject(resource('pvc'), boundPvc(), { events: [], pods: [pod as never], now: NOW }), /\nUsed By: {7}web\n/);
  });

  it('describes a CSI PV with its node affinity and source', () => {
    const p = pv('pvc-1', 'Bound', ago(MIN), {
      csi: { driver: 'local.csi.stowage.dev', volumeHandle: 'vol-1', fsType: 'ext4', volumeAttributes: { b: '2', a: '1' } },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.stowage.dev/node', operator: 'In', values: ['node-1'] }] }] } },
    });
    const text = describeObject(resource('pv'), p, { events: [], now: NOW });
    assert.match(text, /^Name: {14}pvc-1\n/);
    assert.match(text, /\nNode Affinity: {5}\n {2}Required Terms: {2}\n {4}Term 0: {8}topology\.stowage\.dev\/node in \[node-1\]\n/);
    assert.match(text, /\nSource:\n {4}Type: {14}CSI \(a Container Storage Interface \(CSI\) volume source\)\n {4}Driver: {12}local\.csi\.stowage\.dev\n/);
    assert.match(text, /\n {4}VolumeAttributes: {2}a=1\n {23}b=2\nEvents: {16}<none>\n$/);
  });

  it('describes a StorageClass and never shows a Secret\'s values', () => {
    const sc: StorageClass = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'local', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
      provisioner: 'local.csi.stowage.dev',
      parameters: { 'csi.storage.k8s.io/fstype': 'ext4' },
      allowVolumeExpansion: true,
      mountOptions: ['discard'],
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
    };
    const text = describeObject(resource('sc'), sc, { events: [], now: NOW });
    assert.match(text, /^Name: {18}local\nIsDefaultClass: {8}Yes\nAnnotations: {11}storageclass\.kubernetes\.io\/is-default-class=true\nProvisioner: {11}local\.csi\.stowage\.dev\nParameters: {12}csi\.storage\.k8s\.io\/fstype=ext4\nAllowVolumeExpansion: {2}True\nMountOptions:\n {2}discard\n/);
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'default' }, type: 'Opaque', data: { userKey: Buffer.from('very secret').toString('base64') } } as KubeObject;
    const shown = describeObject(resource('secret'), secret, { events: [], now: NOW });
    assert.match(shown, /userKey: {2}11 bytes/);
    assert.doesNotMatch(shown, /very secret|dmVyeS/);
  });

  it('describes a ResourceQuota as kubectl does: scopes explained, used/hard per status.hard resource', () => {
    const q = {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'q', namespace: 'team', labels: { a: 'b' } },
      spec: { hard: { pods: '4', 'requests.storage': '10Gi' }, scopes: ['NotTerminating', 'BestEffort'] },
      status: { hard: { pods: '4', 'requests.storage': '10Gi' }, used: { pods: '1' } },
    } as KubeObject;
    assert.equal(
      describeObject(resource('quota'), q, { events: [], now: NOW }),
      [
        // The help lines have no tab: they end the first column block, as in Go's tabwriter.
        'Name:       q',
        'Namespace:  team',
        'Scopes:     BestEffort, NotTerminating',
        ' * Matches all pods that do not have resource requirements set. These pods have a best effort quality of service.',
        ' * Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate.',
        'Resource          Used  Hard',
        '--------          ----  ----',
        'pods              1     4',
        'requests.storage  0     10Gi',
        '',
      ].join('\n'),
    );
  });

  it('describes other kinds field by field', () => {
    assert.equal(fieldTitle('volumeBindingMode'), 'Volume Binding Mode');
    assert.equal(fieldTitle('nodeID'), 'Node ID');
    const csiNode = { apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name: 'n1', uid: 'u', resourceVersion: '3' }, spec: { drivers: [{ name: 'local.csi.stowage.dev', nodeID: 'n1' }] } } as KubeObject;
    const text = describeObject(resource('csinode'), csiNode, { events: [], now: NOW });
    assert.match(text, /\nSpec:\n {2}Drivers:\n {4}Name: {5}local\.csi\.stowage\.dev\n {4}Node ID: {2}n1\n/);
    assert.match(text, /Events: +<none>\n$/);
  });
});

describe('other output', () => {
  it('prints YAML and JSON with sorted keys, as kubectl', () => {
    const obj = { metadata: { name: 'x' }, kind: 'ConfigMap', apiVersion: 'v1', data: { b: '1', a: '2' }, list: ['p'] };
    assert.equal(toYaml(obj), 'apiVersion: v1\ndata:\n  a: "2"\n  b: "1"\nkind: ConfigMap\nlist:\n- p\nmetadata:\n  name: x\n');
    assert.equal(toJson({ b: 1, a: { d: 1, c: 2 } }), '{\n    "a": {\n        "c": 2,\n        "d": 1\n    },\n    "b": 1\n}\n');
  });

  it('turns pino lines into short human lines', () => {
    const line = JSON.stringify({ level: 30, time: Date.parse('2024-05-06T12:00:00'), pid: 1, hostname: 'h', component: 'driver', msg: 'volume created', volumeId: 'v 1', bytes: 5 });
    assert.equal(humanLine(line), '12:00:00 INFO  [driver] volume created volumeId="v 1" bytes=5');
    const err = JSON.stringify({ level: 50, time: Date.parse('2024-05-06T12:00:00'), msg: 'failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n at x' } });
    assert.equal(humanLine(err), '12:00:00 ERROR failed err=boom');
    assert.equal(humanLine('not json'), 'not json');
  });
});
