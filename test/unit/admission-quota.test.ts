// ResourceQuota: admission through the store and the API server (Kubernetes' exact Forbidden
// messages; concurrent creates cannot together pass a quota), the usage counted per resource name,
// scopes, and the resourcequota-controller's status.used.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Container, PersistentVolumeClaim, Pod, ResourceQuota } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { ResourceQuotaController } from '../../src/control/controllers/resource-quota.js';
import { InformerFactory } from '../../src/control/controllers/informer.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, waitFor } from './control-controllers-helpers.js';

function quota(name: string, hard: Record<string, string>, extra: Partial<NonNullable<ResourceQuota['spec']>> = {}): ResourceQuota {
  return { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name, namespace: 'default' }, spec: { hard, ...extra } };
}

function claim(name: string, storage: string, storageClassName = 'fast'): PersistentVolumeClaim {
  return { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName, resources: { requests: { storage } } } };
}

function pod(name: string, containers: Partial<Container>[], extra: Partial<Pod['spec']> = {}): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: containers.map((c, i) => ({ name: `c${i}`, image: 'busybox', ...c }) as Container), ...extra } };
}

const res = (requests?: Record<string, string>, limits?: Record<string, string>): Partial<Container> => ({ resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } });

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return 'admitted';
}

describe('ResourceQuota admission', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  const cases: { name: string; quotas: ResourceQuota[]; before: (Pod | PersistentVolumeClaim)[]; obj: Pod | PersistentVolumeClaim | Record<string, unknown>; want: string }[] = [
    {
      name: 'requests.storage',
      quotas: [quota('q', { 'requests.storage': '10Gi' })],
      before: [claim('a', '9Gi')],
      obj: claim('b', '2Gi'),
      want: 'persistentvolumeclaims "b" is forbidden: exceeded quota: q, requested: requests.storage=2Gi, used: requests.storage=9Gi, limited: requests.storage=10Gi',
    },
    {
      name: 'persistentvolumeclaims and requests.storage at once (sorted)',
      quotas: [quota('q', { persistentvolumeclaims: '1', 'requests.storage': '1Gi' })],
      before: [claim('a', '1Gi')],
      obj: claim('b', '1Gi'),
      want: 'persistentvolumeclaims "b" is forbidden: exceeded quota: q, requested: persistentvolumeclaims=1,requests.storage=1Gi, used: persistentvolumeclaims=1,requests.storage=1Gi, limited: persistentvolumeclaims=1,requests.storage=1Gi',
    },
    {
      name: "a class's requests.storage",
      quotas: [quota('per-class', { 'fast.storageclass.storage.k8s.io/requests.storage': '5Gi', 'slow.storageclass.storage.k8s.io/requests.storage': '100Gi' })],
      before: [claim('a', '4Gi'), claim('other', '50Gi', 'slow')],
      obj: claim('b', '2Gi'),
      want: 'persistentvolumeclaims "b" is forbidden: exceeded quota: per-class, requested: fast.storageclass.storage.k8s.io/requests.storage=2Gi, used: fast.storageclass.storage.k8s.io/requests.storage=4Gi, limited: fast.storageclass.storage.k8s.io/requests.storage=5Gi',
    },
    {
      name: "a class's claim count",
      quotas: [quota('n', { 'fast.storageclass.storage.k8s.io/persistentvolumeclaims': '0' })],
      before: [],
      obj: claim('b', '1Gi'),
      want: 'persistentvolumeclaims "b" is forbidden: exceeded quota: n, requested: fast.storageclass.storage.k8s.io/persistentvolumeclaims=1, used: fast.storageclass.storage.k8s.io/persistentvolumeclaims=0, limited: fast.storageclass.storage.k8s.io/persistentvolumeclaims=0',
    },
    {
      name: 'pods and requests.cpu',
      quotas: [quota('compute', { pods: '5', 'requests.cpu': '1' })],
      before: [pod('a', [res({ cpu: '600m' })])],
      obj: pod('b', [res({ cpu: '300m' }), res({ cpu: '200m' })]),
      want: 'pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1',
    },
    {
      name: 'limits.memory',
      quotas: [quota('mem', { 'limits.memory': '1Gi' })],
      before: [],
      obj: pod('b', [res(undefined, { memory: '2Gi' })]),
      want: 'pods "b" is forbidden: exceeded quota: mem, requested: limits.memory=2Gi, used: limits.memory=0, limited: limits.memory=1Gi',
    },
    {
      name: 'a pod that does not declare what the quota limits',
      quotas: [quota('compute', { 'requests.cpu': '4', 'limits.memory': '4Gi' })],
      before: [],
      obj: pod('b', [res({ memory: '1Gi' }), res({ cpu: '1' }, { memory: '1Gi' })]),
      want: 'pods "b" is forbidden: failed quota: compute: must specify limits.memory for: c0; requests.cpu for: c0',
    },
    {
      name: 'count/configmaps',
      quotas: [quota('objects', { 'count/configmaps': '0' })],
      before: [],
      obj: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'default' }, data: {} },
      want: 'configmaps "cm" is forbidden: exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=0, limited: count/configmaps=0',
    },
    {
      name: 'count/deployments.apps',
      quotas: [quota('objects', { 'count/deployments.apps': '0' })],
      before: [],
      obj: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'd', namespace: 'default' },
        spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
      },
      want: 'deployments.apps "d" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=0, limited: count/deployments.apps=0',
    },
    {
      name: 'secrets (the legacy name)',
      quotas: [quota('objects', { secrets: '0' })],
      before: [],
      obj: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'default' } },
      want: 'secrets "s" is forbidden: exceeded quota: objects, requested: secrets=1, used: secrets=0, limited: secrets=0',
    },
    {
      name: 'a scoped quota (BestEffort pods)',
      quotas: [quota('best-effort', { pods: '1' }, { scopes: ['BestEffort'] })],
      before: [pod('a', [{}]), pod('burstable', [res({ cpu: '1' })])],
      obj: pod('b', [{}]),
      want: 'pods "b" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1',
    },
    {
      name: 'a PriorityClass scope selector',
      quotas: [quota('critical', { pods: '0' }, { scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['system-node-critical'] }] } })],
      before: [pod('a', [{}])],
      obj: pod('b', [{}], { priorityClassName: 'system-node-critical' }),
      want: 'pods "b" is forbidden: exceeded quota: critical, requested: pods=1, used: pods=0, limited: pods=0',
    },
  ];
  for (const c of cases) {
    it(`refuses what exceeds ${c.name}`, () => {
      for (const q of c.quotas) store.create(q);
      for (const o of c.before) store.create(o);
      assert.equal(message(() => store.create(c.obj as Pod)), c.want);
    });
  }

  it('charges status.used as it admits, up to the limit; a scope leaves out what it does not select', () => {
    store.create(quota('q', { pods: '2', 'count/pods': '3' }));
    store.create(pod('a', [{}]));
    assert.deepEqual(store.get('resourcequotas', 'default', 'q')?.status?.used, { 'count/pods': '1', pods: '1' });
    store.create(pod('b', [{}]));
    assert.match(message(() => store.create(pod('c', [{}]))), /exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2/);
    assert.deepEqual(store.get('resourcequotas', 'default', 'q')?.status?.used, { 'count/pods': '2', pods: '2' }, 'a refused create charges nothing');
    store.create(quota('scoped', { pods: '0' }, { scopes: ['Terminating'] }));
    assert.match(message(() => store.create(pod('d', [{}], { activeDeadlineSeconds: 30 }))), /exceeded quota: q/, 'q refuses first (names in order)');
  });

  it('a quota is counted as it is created, and a resource added to spec.hard is counted on the spot', () => {
    store.create(claim('a', '3Gi'));
    store.create(claim('b', '2Gi'));
    const q = store.create(quota('q', { persistentvolumeclaims: '10' }));
    assert.deepEqual(q.status, { hard: { persistentvolumeclaims: '10' }, used: { persistentvolumeclaims: '2' } });
    store.update({ ...q, spec: { hard: { persistentvolumeclaims: '10', 'requests.storage': '6Gi' } } });
    assert.equal(
      message(() => store.create(claim('c', '2Gi'))),
      'persistentvolumeclaims "c" is forbidden: exceeded quota: q, requested: requests.storage=2Gi, used: requests.storage=5Gi, limited: requests.storage=6Gi',
    );
    store.create(claim('c', '1Gi'));
    assert.deepEqual(store.get('resourcequotas', 'default', 'q')?.status?.used, { persistentvolumeclaims: '3', 'requests.storage': '6Gi' });
  });

  it('a resize counts its growth against requests.storage', () => {
    store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'fast' }, provisioner: 'x', allowVolumeExpansion: true });
    store.create(quota('q', { 'requests.storage': '10Gi' }));
    store.create(claim('a', '4Gi'));
    store.create(claim('b', '4Gi'));
    const bound = store.update({ ...(store.get('persistentvolumeclaims', 'default', 'a') as PersistentVolumeClaim), status: { phase: 'Bound' } }, { subresource: 'status' });
    assert.equal(
      message(() => store.update({ ...bound, spec: { ...bound.spec, resources: { requests: { storage: '7Gi' } } } })),
      'persistentvolumeclaims "a" is forbidden: exceeded quota: q, requested: requests.storage=3Gi, used: requests.storage=8Gi, limited: requests.storage=10Gi',
    );
    const grown = store.update({ ...bound, spec: { ...bound.spec, resources: { requests: { storage: '6Gi' } } } });
    assert.equal(grown.spec.resources?.requests?.['storage'], '6Gi');
  });

  it('a dry run is checked but counts nothing', () => {
    store.create(quota('q', { persistentvolumeclaims: '1' }));
    store.create(claim('a', '1Gi'), { dryRun: true });
    store.create(claim('a', '1Gi'));
    assert.match(message(() => store.create(claim('b', '1Gi'), { dryRun: true })), /exceeded quota: q/);
  });
});

describe('ResourceQuota through the API server', () => {
  let store: Store;
  let server: ApiServer;
  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  it('of 20 concurrent creates, exactly as many pass as the quota allows; the others get 403 Forbidden', async () => {
    store.create(quota('one', { persistentvolumeclaims: '1' }));
    const replies = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const r = await fetch(`${server.url}/api/v1/namespaces/default/persistentvolumeclaims`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claim(`c${i}`, '1Gi')) });
        return { status: r.status, body: (await r.json()) as { reason?: string; message?: string; code?: number } };
      }),
    );
    assert.equal(replies.filter((r) => r.status === 201).length, 1);
    const refused = replies.filter((r) => r.status !== 201);
    assert.equal(refused.length, 19);
    for (const r of refused) {
      assert.equal(r.status, 403);
      assert.equal(r.body.reason, 'Forbidden');
      assert.match(r.body.message ?? '', /^persistentvolumeclaims "c\d+" is forbidden: exceeded quota: one, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=1, limited: persistentvolumeclaims=1$/);
    }
    assert.equal(store.list('persistentvolumeclaims', { namespace: 'default' }).items.length, 1);
  });
});

describe('resourcequota-controller', () => {
  let store: Store;
  let informers: InformerFactory;
  let controller: ResourceQuotaController;
  beforeEach(() => {
    store = open(':memory:');
    informers = new InformerFactory(store);
    controller = new ResourceQuotaController({ store, informers, logger: quiet, resyncMs: 60_000 });
    informers.start();
    controller.start();
  });
  afterEach(async () => {
    await controller.stop();
    informers.stop();
    store.close();
  });

  it('keeps status.hard as spec.hard and status.used as the namespace uses it, 0 for what nothing uses', async () => {
    store.create(quota('q', { pods: '10', 'requests.cpu': '2', 'limits.memory': '4Gi', 'requests.storage': '10Gi', persistentvolumeclaims: '5', services: '3' }));
    store.create(pod('a', [res({ cpu: '500m' }, { memory: '1Gi' })]));
    store.create(claim('c', '3Gi'));
    const used = (): Record<string, string> | undefined => store.get('resourcequotas', 'default', 'q')?.status?.used;
    await waitFor(() => used()?.['requests.storage'] === '3Gi' && used()?.['pods'] === '1', 'status.used counted');
    assert.deepEqual(used(), { 'limits.memory': '1Gi', persistentvolumeclaims: '1', pods: '1', 'requests.cpu': '500m', 'requests.storage': '3Gi', services: '0' });
    assert.deepEqual(store.get('resourcequotas', 'default', 'q')?.status?.hard, { pods: '10', 'requests.cpu': '2', 'limits.memory': '4Gi', 'requests.storage': '10Gi', persistentvolumeclaims: '5', services: '3' });
    store.delete('pods', 'default', 'a');
    await waitFor(() => used()?.['pods'] === '0', 'the deleted pod uncounted');
    assert.equal(used()?.['requests.cpu'], '0');
  });

  it('gives back what a finished pod held: pods counts it no more, count/pods still does', async () => {
    store.create(quota('q', { pods: '1', 'count/pods': '5' }));
    const a = store.create(pod('a', [{}]));
    assert.match(message(() => store.create(pod('b', [{}]))), /exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1/);
    store.update({ ...a, status: { ...a.status, phase: 'Succeeded' } }, { subresource: 'status' });
    const used = (): Record<string, string> | undefined => store.get('resourcequotas', 'default', 'q')?.status?.used;
    await waitFor(() => used()?.['pods'] === '0', 'the finished pod uncounted');
    assert.equal(used()?.['count/pods'], '1');
    store.create(pod('b', [{}]));
  });
});

describe('a ReplicaSet under a pod quota', () => {
  let store: Store;
  let ctl: Controllers;
  beforeEach(() => {
    store = open(':memory:');
    ctl = startControllers(store, quiet, { controllers: 'replicaset-controller,resourcequota-controller' });
  });
  afterEach(async () => {
    await ctl.stop();
    store.close();
  });

  it('creates what fits, says why not the rest once (ReplicaFailure), and backs off instead of spinning', async () => {
    store.create(quota('pods', { pods: '1' }));
    const writes: string[] = [];
    const stop = store.watch('replicasets', {}, (e) => writes.push(e.type));
    store.create({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: { replicas: 3, selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    const condition = (): { reason?: string; message?: string } | undefined => store.get('replicasets', 'default', 'web')?.status?.conditions?.find((c) => c.type === 'ReplicaFailure');
    await waitFor(() => condition(), 'the ReplicaFailure condition');
    assert.equal(condition()?.reason, 'FailedCreate');
    assert.match(condition()?.message ?? '', /^pods "web-[a-z0-9]+" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1$/);
    await new Promise((r) => setTimeout(r, 300));
    stop();
    assert.ok(writes.length <= 4, `the ReplicaSet was written ${writes.length} times: ${writes.join(' ')}`);
    assert.equal(store.list('pods', { namespace: 'default' }).items.length, 1);
  });
});
