// The workload controllers wired on an in-memory store, without nodes (pods stay unscheduled, so
// deleting one removes it at once): a Deployment's Recreate strategy scales the old ReplicaSet to
// zero and only then the new one up; a ReplicaSet replaces a deleted pod and removes surplus ones;
// a StatefulSet under OrderedReady waits for pod 0 to be Running and Ready before making pod 1.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Deployment, ReplicaSet, StatefulSet } from '../../src/control/api/types/apps.js';
import type { Pod } from '../../src/control/api/types/core.js';
import { type Controllers, startControllers } from '../../src/control/controllers/index.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, settle, waitFor } from './control-controllers-helpers.js';

const template = (app: string, image: string) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: 'c', image, command: ['true'] }] } });

describe('workload controllers on an in-memory store', () => {
  let store: Store;
  let ctl: Controllers;

  beforeEach(() => {
    store = open(':memory:');
    ctl = startControllers(store, quiet, { resyncMs: 0, eventMaxDelayMs: 0, maxDelayMs: 100, controllers: 'replicaset-controller,deployment-controller,statefulset-controller' });
  });

  afterEach(async () => {
    await ctl.stop();
    store.close();
  });

  const pods = (prefix: string): Pod[] => store.list('pods').items.filter((p) => (p.metadata.name ?? '').startsWith(prefix));
  const sets = (): ReplicaSet[] => store.list('replicasets').items;

  it('Recreate: the old ReplicaSet goes to zero, then the new one comes up', async () => {
    store.create<Deployment>({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'app', namespace: 'default' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'app' } }, strategy: { type: 'Recreate' }, template: template('app', 'v1') },
    });
    await waitFor(() => pods('app-').length === 2, 'two pods of v1');
    const [first] = sets();
    assert.equal(first?.spec.replicas, 2);
    const d = store.get('deployments', 'default', 'app') as Deployment;
    store.update({ ...d, spec: { ...d.spec, template: template('app', 'v2') } });
    await waitFor(() => sets().length === 2 && sets().every((rs) => rs.spec.replicas === (rs.metadata.name === first?.metadata.name ? 0 : 2)), 'the old set at 0 and the new one at 2');
    await settle(ctl.idle);
    const images = pods('app-').map((p) => p.spec.containers[0]?.image);
    assert.deepEqual(images, ['v2', 'v2']);
    const next = sets().find((rs) => rs.metadata.name !== first?.metadata.name);
    assert.equal(next?.metadata.annotations?.['deployment.kubernetes.io/revision'], '2');
    assert.match(next?.metadata.name ?? '', /^app-[a-z0-9]+$/);
    assert.equal(next?.spec.selector.matchLabels?.['pod-template-hash'], next?.metadata.labels?.['pod-template-hash']);
  });

  it('a ReplicaSet replaces a deleted pod and removes the surplus when scaled down', async () => {
    store.create<ReplicaSet>({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'rs', namespace: 'default' }, spec: { replicas: 3, selector: { matchLabels: { app: 'rs' } }, template: template('rs', 'v1') } });
    await waitFor(() => pods('rs-').length === 3, 'three pods');
    const victim = pods('rs-')[0]?.metadata.name ?? '';
    store.delete('pods', 'default', victim);
    await waitFor(() => pods('rs-').length === 3 && !pods('rs-').some((p) => p.metadata.name === victim), 'a replacement');
    const rs = store.get('replicasets', 'default', 'rs') as ReplicaSet;
    store.update({ ...rs, spec: { ...rs.spec, replicas: 1 } });
    await waitFor(() => pods('rs-').length === 1, 'one pod left');
    await settle(ctl.idle);
    assert.equal((store.get('replicasets', 'default', 'rs') as ReplicaSet).status?.replicas, 1);
  });

  it('OrderedReady makes pod 1 only once pod 0 is Running and Ready', async () => {
    store.create<StatefulSet>({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web', namespace: 'default' }, spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: template('web', 'v1') } });
    await waitFor(() => pods('web-').length === 1, 'pod 0');
    await settle(ctl.idle);
    assert.deepEqual(pods('web-').map((p) => p.metadata.name), ['web-0'], 'pod 1 waits');
    const zero = store.get('pods', 'default', 'web-0') as Pod;
    store.update({ ...zero, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
    await waitFor(() => pods('web-').length === 2, 'pod 1');
    await settle(ctl.idle);
    const set = store.get('statefulsets', 'default', 'web') as StatefulSet;
    assert.equal(set.status?.replicas, 2);
    assert.equal(set.status?.readyReplicas, 1);
  });
});
