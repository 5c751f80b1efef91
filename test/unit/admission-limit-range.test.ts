// The LimitRanger admission plugin through the store: defaults filled into new pods (and noted in
// the kubernetes.io/limit-ranger annotation), min/max/maxLimitRequestRatio per Container and per
// Pod, min/max storage per PersistentVolumeClaim on create and resize, with Kubernetes' messages;
// and what the API sets on every pod: requests from limits, and status.qosClass.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Container, LimitRangeItem, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { open, type Store } from '../../src/control/store/store.js';

function limitRange(name: string, limits: LimitRangeItem[]) {
  return { apiVersion: 'v1' as const, kind: 'LimitRange' as const, metadata: { name, namespace: 'default' }, spec: { limits } };
}

function pod(name: string, containers: Partial<Container>[], initContainers: Partial<Container>[] = []): Pod {
  const c = (x: Partial<Container>, i: number): Container => ({ name: `c${i}`, image: 'busybox', ...x }) as Container;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { containers: containers.map(c), ...(initContainers.length > 0 ? { initContainers: initContainers.map((x, i) => c({ name: `init${i}`, ...x }, i)) } : {}) },
  };
}

function claim(name: string, storage: string): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'grow', resources: { requests: { storage } } },
  };
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return 'admitted';
}

const res = (requests?: Record<string, string>, limits?: Record<string, string>): Partial<Container> => ({ resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } });

describe('LimitRanger admission', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  it('fills missing requests and limits from the Container defaults, and says so in the annotation', () => {
    store.create(limitRange('defaults', [{ type: 'Container', default: { cpu: '500m', memory: '256Mi' }, defaultRequest: { cpu: '100m', memory: '128Mi' } }]));
    const p = store.create(pod('p', [{}, res({ cpu: '200m' })], [{}]));
    assert.deepEqual(p.spec.containers[0]?.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } });
    assert.deepEqual(p.spec.containers[1]?.resources, { requests: { cpu: '200m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } });
    assert.equal(
      p.metadata.annotations?.['kubernetes.io/limit-ranger'],
      'LimitRanger plugin set: cpu, memory request for container c0; cpu, memory limit for container c0; memory request for container c1; cpu, memory limit for container c1; cpu, memory request for init container init0; cpu, memory limit for init container init0',
    );
    assert.equal(p.status?.['qosClass'], 'Burstable');
  });

  it('derives a Container item\'s missing defaults as Kubernetes does: max → default → defaultRequest, min → defaultRequest', () => {
    const lr = store.create(limitRange('derived', [{ type: 'Container', max: { cpu: '2' }, default: { memory: '1Gi' }, min: { 'ephemeral-storage': '1Mi' } }]));
    assert.deepEqual(lr.spec.limits[0]?.default, { memory: '1Gi', cpu: '2' });
    assert.deepEqual(lr.spec.limits[0]?.defaultRequest, { memory: '1Gi', cpu: '2', 'ephemeral-storage': '1Mi' });
    const pvcItem = store.create(limitRange('claims', [{ type: 'PersistentVolumeClaim', max: { storage: '1Gi' } }])).spec.limits[0];
    assert.equal(pvcItem?.default, undefined, 'only Container items get defaults');
  });

  it('a default limit alone is also the default request: the pod is Guaranteed', () => {
    store.create(limitRange('defaults', [{ type: 'Container', default: { cpu: '1', memory: '1Gi' } }]));
    const p = store.create(pod('p', [{}]));
    assert.deepEqual(p.spec.containers[0]?.resources, { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1', memory: '1Gi' } });
    assert.equal(p.status?.['qosClass'], 'Guaranteed');
  });

  const cases: { name: string; limits: LimitRangeItem[]; pod: Pod; want: string }[] = [
    {
      name: 'a request under the Container min',
      limits: [{ type: 'Container', min: { cpu: '100m' } }],
      pod: pod('x', [res({ cpu: '50m' })]),
      want: 'pods "x" is forbidden: minimum cpu usage per Container is 100m, but request is 50m',
    },
    {
      name: 'no request under a Pod min',
      limits: [{ type: 'Pod', min: { memory: '64Mi' } }],
      pod: pod('x', [{}]),
      want: 'pods "x" is forbidden: minimum memory usage per Pod is 64Mi.  No request is specified',
    },
    {
      name: 'a limit over the Container max',
      limits: [{ type: 'Container', max: { memory: '1Gi' } }],
      pod: pod('x', [res(undefined, { memory: '2Gi' })]),
      want: 'pods "x" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi',
    },
    {
      name: 'no limit under a Pod max',
      limits: [{ type: 'Pod', max: { cpu: '2' } }],
      pod: pod('x', [res({ cpu: '1' })]),
      want: 'pods "x" is forbidden: maximum cpu usage per Pod is 2.  No limit is specified',
    },
    {
      name: 'a request over the Container max (its limit defaulted from the max: invalid before the max is checked)',
      limits: [{ type: 'Container', max: { cpu: '2' } }],
      pod: pod('x', [res({ cpu: '3' })]),
      want: 'Pod "x" is invalid: spec.containers[0].resources.requests: Invalid value: "3": must be less than or equal to cpu limit of 2',
    },
    {
      name: 'a limit/request ratio over maxLimitRequestRatio',
      limits: [{ type: 'Container', maxLimitRequestRatio: { cpu: '2' } }],
      pod: pod('x', [res({ cpu: '100m' }, { cpu: '300m' })]),
      want: 'pods "x" is forbidden: cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000',
    },
    {
      name: 'a ratio without a limit',
      limits: [{ type: 'Container', maxLimitRequestRatio: { memory: '4' } }],
      pod: pod('x', [res({ memory: '1Gi' })]),
      want: 'pods "x" is forbidden: memory max limit to request ratio per Container is 4, but no limit is specified or limit is 0',
    },
    {
      name: 'the containers summed over the Pod max',
      limits: [{ type: 'Pod', max: { cpu: '1' } }],
      pod: pod('x', [res({ cpu: '600m' }, { cpu: '600m' }), res({ cpu: '600m' }, { cpu: '600m' })]),
      want: 'pods "x" is forbidden: maximum cpu usage per Pod is 1, but limit is 1200m',
    },
    {
      name: 'an init container above the sum, over the Pod max',
      limits: [{ type: 'Pod', max: { memory: '1Gi' } }],
      pod: pod('x', [res(undefined, { memory: '512Mi' })], [res(undefined, { memory: '2Gi' })]),
      want: 'pods "x" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 2Gi',
    },
    {
      name: 'several violations at once, as one aggregate',
      limits: [{ type: 'Container', min: { cpu: '100m' }, max: { cpu: '1' } }],
      pod: pod('x', [res({ cpu: '50m' }, { cpu: '2' })]),
      want: 'pods "x" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, maximum cpu usage per Container is 1, but limit is 2]',
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      store.create(limitRange('lr', c.limits));
      assert.equal(message(() => store.create(c.pod)), c.want);
      assert.equal(store.get('pods', 'default', 'x'), undefined);
    });
  }

  it('validates the pod after the defaults: a default limit below the request is Invalid, as upstream', () => {
    store.create(limitRange('lr', [{ type: 'Container', default: { cpu: '200m' } }]));
    assert.equal(
      message(() => store.create(pod('x', [res({ cpu: '500m' })]))),
      'Pod "x" is invalid: spec.containers[0].resources.requests: Invalid value: "500m": must be less than or equal to cpu limit of 200m',
    );
  });

  it('admits a pod within every bound', () => {
    store.create(limitRange('lr', [{ type: 'Container', min: { cpu: '100m' }, max: { cpu: '1' }, maxLimitRequestRatio: { cpu: '4' } }, { type: 'Pod', max: { cpu: '2' } }]));
    const p = store.create(pod('ok', [res({ cpu: '250m' }, { cpu: '1' }), res({ cpu: '500m' }, { cpu: '1' })]));
    assert.equal(p.metadata.name, 'ok');
  });

  it('checks claims against PersistentVolumeClaim min and max, at creation and when they grow', () => {
    store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'grow' }, provisioner: 'x', allowVolumeExpansion: true });
    store.create(limitRange('storage', [{ type: 'PersistentVolumeClaim', min: { storage: '1Gi' }, max: { storage: '10Gi' } }]));
    assert.equal(message(() => store.create(claim('small', '500Mi'))), 'persistentvolumeclaims "small" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi');
    assert.equal(message(() => store.create(claim('big', '20Gi'))), 'persistentvolumeclaims "big" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi');
    store.create(claim('ok', '5Gi'));
    // Only a bound claim may change its request.
    const ok = store.update({ ...(store.get('persistentvolumeclaims', 'default', 'ok') as PersistentVolumeClaim), status: { phase: 'Bound' } }, { subresource: 'status' });
    assert.equal(
      message(() => store.update({ ...ok, spec: { ...ok.spec, resources: { requests: { storage: '11Gi' } } } })),
      'persistentvolumeclaims "ok" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 11Gi',
    );
    store.update({ ...ok, spec: { ...ok.spec, resources: { requests: { storage: '10Gi' } } } });
  });
});

describe('pod resources as the API sets them', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  const cases: { name: string; containers: Partial<Container>[]; inits?: Partial<Container>[]; qos: string }[] = [
    { name: 'nothing requested', containers: [{}], qos: 'BestEffort' },
    { name: 'zero requests', containers: [res({ cpu: '0' })], qos: 'BestEffort' },
    { name: 'limits only (requests default to them)', containers: [res(undefined, { cpu: '1', memory: '1Gi' })], qos: 'Guaranteed' },
    { name: 'requests equal to limits', containers: [res({ cpu: '1', memory: '1Gi' }, { cpu: '1000m', memory: '1024Mi' })], qos: 'Guaranteed' },
    { name: 'requests below limits', containers: [res({ cpu: '500m', memory: '1Gi' }, { cpu: '1', memory: '1Gi' })], qos: 'Burstable' },
    { name: 'a cpu limit only', containers: [res(undefined, { cpu: '1' })], qos: 'Burstable' },
    { name: 'one Guaranteed container beside a BestEffort one', containers: [res(undefined, { cpu: '1', memory: '1Gi' }), {}], qos: 'Burstable' },
    { name: 'an init container with requests only', containers: [{}], inits: [res({ memory: '1Gi' })], qos: 'Burstable' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.qos}`, () => {
      const p = store.create(pod('p', c.containers, c.inits));
      assert.equal(p.status?.['qosClass'], c.qos);
    });
  }

  it('a request above its limit is Invalid', () => {
    assert.throws(
      () => store.create(pod('p', [res({ memory: '2Gi' }, { memory: '1Gi' })])),
      (err: unknown) => err instanceof Error && err.message === 'Pod "p" is invalid: spec.containers[0].resources.requests: Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi',
    );
  });

  it('a limit without a request becomes the request, on pods only', () => {
    const p = store.create(pod('p', [res({ memory: '1Gi' }, { cpu: '2', memory: '2Gi' })]));
    assert.deepEqual(p.spec.containers[0]?.resources, { requests: { cpu: '2', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } });
    const rs = store.create({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'r', namespace: 'default' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'busybox', resources: { limits: { cpu: '1' } } }] } } },
    });
    assert.deepEqual((rs as unknown as { spec: { template: { spec: Pod['spec'] } } }).spec.template.spec.containers[0]?.resources, { limits: { cpu: '1' } });
  });
});
