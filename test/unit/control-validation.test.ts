// Defaulting, validation messages and update rules of the control plane's kinds, through the
// store (the path every client takes).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import type { StorageClass, VolumeAttachment } from '../../src/control/api/types/storage.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';
import { ForbiddenError, InvalidError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

function pvc(name: string, spec: Partial<PersistentVolumeClaim['spec']> = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, ...spec },
  };
}

function pv(name: string, spec: Partial<PersistentVolume['spec']> = {}): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name },
    spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], csi: { driver: 'local.csi.stowage.dev', volumeHandle: name }, ...spec },
  };
}

function sc(name: string, extra: Partial<StorageClass> = {}): StorageClass {
  return { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name }, provisioner: 'local.csi.stowage.dev', ...extra };
}

function pod(name: string, spec: Partial<Pod['spec']> = {}): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'nginx' }], ...spec } };
}

/** The field errors of a write that must be refused as Invalid. */
function causes(write: () => unknown): string[] {
  try {
    write();
  } catch (err) {
    assert.ok(err instanceof InvalidError, `expected Invalid, got ${String(err)}`);
    assert.equal(err.code, 422);
    return err.causes.map(errorMessage);
  }
  assert.fail('the write was accepted');
}

describe('control plane defaulting', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('fills the defaults Kubernetes fills', () => {
    const v = store.create(pv('pv1'));
    assert.equal(v.spec.persistentVolumeReclaimPolicy, 'Retain');
    assert.equal(v.spec.volumeMode, 'Filesystem');
    assert.equal(v.status?.phase, 'Pending');

    const c = store.create(pvc('c1', { resources: { requests: { storage: '1024Mi' } } }));
    assert.equal(c.spec.volumeMode, 'Filesystem');
    assert.equal(c.spec.resources?.requests?.['storage'], '1Gi', 'quantities are stored canonical');
    assert.equal(c.status?.phase, 'Pending');

    const s = store.create(sc('fast'));
    assert.equal(s.reclaimPolicy, 'Delete');
    assert.equal(s.volumeBindingMode, 'Immediate');

    const p = store.create(pod('p1', { containers: [{ name: 'a', image: 'nginx', ports: [{ containerPort: 80 }] }, { name: 'b', image: 'nginx:1.7.9' }] }));
    assert.equal(p.spec.restartPolicy, 'Always');
    assert.equal(p.spec.dnsPolicy, 'ClusterFirst');
    assert.equal(p.spec.terminationGracePeriodSeconds, 30);
    assert.equal(p.spec.containers[0]?.imagePullPolicy, 'Always');
    assert.equal(p.spec.containers[1]?.imagePullPolicy, 'IfNotPresent');
    assert.equal(p.spec.containers[0]?.ports?.[0]?.protocol, 'TCP');
    assert.equal(p.status?.phase, 'Pending');

    const driver = store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: 'local.csi.stowage.dev' }, spec: {} });
    assert.deepEqual(driver.spec, {
      attachRequired: true,
      podInfoOnMount: false,
      volumeLifecycleModes: ['Persistent'],
      storageCapacity: false,
      fsGroupPolicy: 'ReadWriteOnceWithFSType',
      requiresRepublish: false,
      seLinuxMount: false,
    });

    const ns = store.create<Namespace>({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } });
    assert.deepEqual(ns.spec, { finalizers: ['kubernetes'] });
    assert.equal(ns.status?.phase, 'Active');

    const secret = store.create<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'default' }, stringData: { key: 'value' } });
    assert.equal(secret.type, 'Opaque');
    assert.deepEqual(secret.data, { key: Buffer.from('value').toString('base64') });
    assert.equal(secret.stringData, undefined);
  });

  it('gives a claim without a class the default StorageClass', () => {
    store.create(sc('standard', { metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } }));
    assert.equal(store.create(pvc('implicit')).spec.storageClassName, 'standard');
    assert.equal(store.create(pvc('explicit-none', { storageClassName: '' })).spec.storageClassName, '');
  });
});

describe('control plane validation', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('reports names in Kubernetes wording', () => {
    assert.deepEqual(causes(() => store.create(pvc('Bad_Name'))), [
      "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ]);
    assert.deepEqual(causes(() => store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } })), [
      "metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    ]);
    assert.deepEqual(causes(() => store.create({ ...pvc('x'), metadata: { namespace: 'default' } })), ['metadata.name: Required value: name or generateName is required']);
  });

  it('checks claims', () => {
    assert.deepEqual(causes(() => store.create(pvc('a', { resources: { requests: {} } }))), ['spec.resources.requests[storage]: Required value']);
    assert.deepEqual(causes(() => store.create(pvc('a', { accessModes: [] }))), ['spec.accessModes: Required value: at least 1 access mode is required']);
    assert.deepEqual(causes(() => store.create(pvc('a', { resources: { requests: { storage: '1 Gi' } } }))), [
      "spec.resources.requests[storage]: Invalid value: \"1 Gi\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    ]);
    assert.deepEqual(causes(() => store.create(pvc('a', { resources: { requests: { storage: '0' } } }))), [
      'spec.resources.requests[storage]: Invalid value: "0": must be greater than zero',
    ]);
    assert.deepEqual(causes(() => store.create(pvc('a', { volumeMode: 'Raw' as 'Block' }))), ['spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem"']);
    // Several causes are listed together in the message, as Kubernetes does.
    const err = (() => {
      try {
        store.create(pvc('a', { accessModes: ['ReadWriteOncePod', 'ReadOnlyMany'], storageClassName: 'No' }));
      } catch (e) {
        return e as InvalidError;
      }
      return undefined;
    })();
    assert.equal(
      err?.message,
      'PersistentVolumeClaim "a" is invalid: [spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes, spec.storageClassName: Invalid value: "No": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character (e.g. \'example.com\', regex used for validation is \'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\')]',
    );
  });

  it('checks volumes', () => {
    const noSource = pv('a');
    delete noSource.spec.csi;
    assert.deepEqual(causes(() => store.create(noSource)), ['spec: Required value: must specify a volume type']);
    assert.deepEqual(causes(() => store.create(pv('a', { nfs: { server: 'nfs.local', path: 'data' } }))), [
      'spec.csi: Forbidden: may not specify more than 1 volume type',
      'spec.nfs.path: Invalid value: "data": must be an absolute path',
    ]);
    assert.deepEqual(causes(() => store.create(pv('a', { capacity: {} }))), ['spec.capacity: Required value']);
    assert.deepEqual(causes(() => store.create(pv('a', { persistentVolumeReclaimPolicy: 'Keep' as 'Retain' }))), [
      'spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"',
    ]);
    const local = pv('a', { local: { path: '/mnt/disk' } });
    delete local.spec.csi;
    assert.deepEqual(causes(() => store.create(local)), ['spec.nodeAffinity: Required value: Local volume requires node affinity']);
    assert.deepEqual(causes(() => store.create(pv('a', { csi: { driver: '', volumeHandle: '' } }))), ['spec.csi.driver: Required value', 'spec.csi.volumeHandle: Required value']);
  });

  it('checks storage classes, pods and CSI objects', () => {
    assert.deepEqual(causes(() => store.create(sc('a', { reclaimPolicy: 'Recycle' as 'Delete' }))), ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"']);
    assert.deepEqual(causes(() => store.create(sc('a', { volumeBindingMode: 'Later' as 'Immediate' }))), [
      'volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"',
    ]);
    assert.deepEqual(causes(() => store.create({ ...sc('a'), provisioner: '' })), ['provisioner: Required value']);
    assert.deepEqual(causes(() => store.create(pod('a', { containers: [{ name: 'app', image: 'nginx', volumeMounts: [{ name: 'data', mountPath: '/data' }] }] }))), [
      'spec.containers[0].volumeMounts[0].name: Not found: "data"',
    ]);
    assert.deepEqual(causes(() => store.create(pod('a', { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: '' } }] }))), [
      'spec.volumes[0].persistentVolumeClaim.claimName: Required value',
    ]);
    assert.deepEqual(causes(() => store.create(pod('a', { containers: [] }))), ['spec.containers: Required value']);
    const attachment: VolumeAttachment = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'VolumeAttachment',
      metadata: { name: 'va' },
      spec: { attacher: 'local.csi.stowage.dev', nodeName: 'node-1', source: {} },
    };
    assert.deepEqual(causes(() => store.create(attachment)), ['spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName']);
  });

  it('reports JSON type mismatches at their field path', () => {
    const bad = { ...pvc('a'), metadata: { name: 'a', labels: { env: true } } } as unknown as KubeObject;
    assert.deepEqual(causes(() => store.create(bad)), ['metadata.labels[env]: Invalid value: true: must be of type string']);
    const badModes = { ...pvc('a'), spec: { accessModes: 'ReadWriteOnce', resources: { requests: { storage: '1Gi' } } } } as unknown as KubeObject;
    assert.deepEqual(causes(() => store.create(badModes)), ['spec.accessModes: Invalid value: "ReadWriteOnce": must be of type array']);
    // JSON numbers are quantities too, and null means "absent".
    const numeric = { ...pvc('n'), metadata: { name: 'n', creationTimestamp: null }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: 5 } } } };
    assert.equal(store.create(numeric as unknown as PersistentVolumeClaim).spec.resources?.requests?.['storage'], '5');
  });
});

describe('control plane update rules', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  const SPEC_IMMUTABLE = 'spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims';

  it('keeps a claim spec immutable except binding and expansion', () => {
    store.create(sc('expandable', { allowVolumeExpansion: true }));
    store.create(sc('fixed'));
    const claim = store.create(pvc('c', { storageClassName: 'expandable' }));
    assert.deepEqual(causes(() => store.update({ ...claim, spec: { ...claim.spec, accessModes: ['ReadWriteMany'] } })), [SPEC_IMMUTABLE]);
    // Growing a claim that is not bound is a spec change like any other.
    assert.deepEqual(causes(() => store.update({ ...claim, spec: { ...claim.spec, resources: { requests: { storage: '2Gi' } } } })), [SPEC_IMMUTABLE]);

    const bound = store.update({ ...claim, spec: { ...claim.spec, volumeName: 'pv-1' } });
    assert.equal(bound.spec.volumeName, 'pv-1');
    assert.deepEqual(causes(() => store.update({ ...bound, spec: { ...bound.spec, volumeName: 'pv-2' } })), [SPEC_IMMUTABLE]);

    const boundStatus = store.update({ ...bound, status: { phase: 'Bound' } }, { subresource: 'status' });
    const grown = store.update({ ...boundStatus, spec: { ...boundStatus.spec, resources: { requests: { storage: '2Gi' } } } });
    assert.equal(grown.spec.resources?.requests?.['storage'], '2Gi');
    assert.equal(grown.metadata.generation, 3);
    assert.deepEqual(causes(() => store.update({ ...grown, spec: { ...grown.spec, resources: { requests: { storage: '1Gi' } } } })), [
      'spec.resources.requests[storage]: Forbidden: field can not be less than previous value',
    ]);

    const other = store.create(pvc('d', { storageClassName: 'fixed', volumeName: 'pv-3' }));
    const otherBound = store.update({ ...other, status: { phase: 'Bound' } }, { subresource: 'status' });
    assert.throws(() => store.update({ ...otherBound, spec: { ...otherBound.spec, resources: { requests: { storage: '5Gi' } } } }), (err: unknown) => {
      assert.ok(err instanceof ForbiddenError);
      assert.equal(
        err.message,
        'persistentvolumeclaims "d" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize',
      );
      return true;
    });
  });

  it('keeps a volume source, a class and a pod spec fixed', () => {
    const v = store.create(pv('v'));
    assert.deepEqual(causes(() => store.update({ ...v, spec: { ...v.spec, csi: { driver: 'other.csi.dev', volumeHandle: 'v' } } })), [
      'spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation',
    ]);
    assert.equal(store.update({ ...v, spec: { ...v.spec, persistentVolumeReclaimPolicy: 'Delete' } }).spec.persistentVolumeReclaimPolicy, 'Delete');

    const s = store.create(sc('s', { parameters: { type: 'ssd' } }));
    assert.deepEqual(
      causes(() => store.update({ ...s, parameters: { type: 'hdd' }, provisioner: 'other.csi.dev', reclaimPolicy: 'Retain', volumeBindingMode: 'WaitForFirstConsumer' })),
      [
        'parameters: Forbidden: updates to parameters are forbidden.',
        'provisioner: Forbidden: updates to provisioner are forbidden.',
        'reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.',
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable',
      ],
    );
    assert.equal(store.update({ ...s, allowVolumeExpansion: true }).allowVolumeExpansion, true);

    const p = store.create(pod('p'));
    const [first] = p.spec.containers;
    assert.ok(first);
    const updated = store.update({ ...p, spec: { ...p.spec, containers: [{ ...first, image: 'nginx:2' }] } });
    assert.equal(updated.spec.containers[0]?.image, 'nginx:2');
    const [message] = causes(() => store.update({ ...updated, spec: { ...updated.spec, nodeName: 'node-2' } }));
    assert.match(message ?? '', /^spec: Forbidden: pod updates may not change fields other than `spec.containers\[\*\].image`/);
  });

  it('keeps identity and attachments fixed', () => {
    const c = store.create(pvc('c'));
    assert.deepEqual(causes(() => store.update({ ...c, metadata: { ...c.metadata, uid: 'another' } })), ['metadata.uid: Invalid value: "another": field is immutable']);
    const va = store.create({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'VolumeAttachment',
      metadata: { name: 'va' },
      spec: { attacher: 'local.csi.stowage.dev', nodeName: 'node-1', source: { persistentVolumeName: 'pv-1' } },
    });
    const [message] = causes(() => store.update({ ...va, spec: { ...va.spec, nodeName: 'node-2' } }));
    assert.match(message ?? '', /^spec: Invalid value: .*: field is immutable$/);
    const secret = store.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'default' }, data: { a: 'YQ==' }, immutable: true });
    assert.deepEqual(causes(() => store.update({ ...secret, data: { a: 'Yg==' } })), ['data: Forbidden: field is immutable when `immutable` is set']);
  });
});

describe('CSIStorageCapacity', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  const capacity = (extra: Record<string, unknown>): KubeObject =>
    ({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIStorageCapacity', metadata: { name: 'csisc-a', namespace: 'default' }, ...extra }) as KubeObject;

  it('is stored with its quantities canonical', () => {
    const c = store.create(capacity({ storageClassName: 'fast', capacity: '1024Mi', maximumVolumeSize: '512Mi', nodeTopology: { matchLabels: { 'topology.stowage.dev/node': 'n1' } } }));
    assert.equal((c as unknown as { capacity: string }).capacity, '1Gi');
  });

  it('refuses a missing or bad class name and bad quantities (422)', () => {
    assert.deepEqual(causes(() => store.create(capacity({ capacity: '1Gi' }))), ['storageClassName: Required value']);
    const errs = causes(() => store.create(capacity({ storageClassName: 'Bad_Name', capacity: 'lots', maximumVolumeSize: '-1Gi' })));
    assert.equal(errs.length, 3, errs.join('\n'));
    assert.match(errs[0] ?? '', /^storageClassName: Invalid value: "Bad_Name"/);
    assert.match(errs[1] ?? '', /^capacity: Invalid value: "lots"/);
    assert.match(errs[2] ?? '', /^maximumVolumeSize: Invalid value: "-1Gi": must be greater than or equal to 0/);
  });

  it('keeps storageClassName and nodeTopology, updates the figures', () => {
    const c = store.create(capacity({ storageClassName: 'fast', capacity: '1Gi' })) as KubeObject & { capacity: string };
    const updated = store.update({ ...c, capacity: '2Gi' }) as KubeObject & { capacity: string };
    assert.equal(updated.capacity, '2Gi');
    assert.deepEqual(
      causes(() => store.update({ ...updated, storageClassName: 'slow' } as KubeObject)),
      ['storageClassName: Invalid value: "slow": field is immutable'],
    );
  });
});
