// In-use protection (pvc-protection, pv-protection), events (aggregation, deferred writing), the
// driver registry (registration from the driver's own answers, cached clients dropped on change)
// and the control plane's start/stop contract.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Event, PersistentVolume, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import { SERVER_INFO_FILE, startControlPlane } from '../../src/control/control-plane.js';
import {
  CONTROLLER_ENDPOINT_ANNOTATION,
  DriverRegistry,
  NODE_ENDPOINTS_ANNOTATION,
  nodeEndpointsOf,
  registerDriver,
  resolveControllerClient,
  unregisterDriver,
} from '../../src/control/controllers/driver-registry.js';
import { EventBroadcaster } from '../../src/control/controllers/events.js';
import { InformerFactory } from '../../src/control/controllers/informer.js';
import { ProtectionController } from '../../src/control/controllers/protection.js';
import { PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER } from '../../src/control/controllers/volume-util.js';
import { open, type Store } from '../../src/control/store/store.js';
import { claim, csiDriverObject, pod, quiet, settle, startFakeDriver, volume, waitFor } from './control-controllers-helpers.js';

describe('protection', () => {
  let store: Store;
  let factory: InformerFactory;
  let protection: ProtectionController;

  beforeEach(() => {
    store = open(':memory:');
    factory = new InformerFactory(store);
    protection = new ProtectionController({ store, informers: factory, logger: quiet, claimFinalizerGraceMs: 0 });
    factory.start();
    protection.start();
  });

  afterEach(async () => {
    await protection.stop();
    factory.stop();
    store.close();
  });

  const idle = () => settle(() => protection.claims.idle && protection.volumes.idle && protection.claims.queue.length === 0);
  const getClaim = (name: string) => store.get('persistentvolumeclaims', 'default', name) as PersistentVolumeClaim | undefined;

  it('keeps a claim a running pod uses until the pod finishes', async () => {
    store.create(claim('used'));
    store.create(claim('free'));
    await waitFor(() => getClaim('used')?.metadata.finalizers?.includes(PVC_PROTECTION_FINALIZER) && getClaim('free')?.metadata.finalizers?.length, 'finalizers');
    store.create(pod('web', ['used']));
    const done = store.create(pod('done', ['free']));
    store.update({ ...done, status: { phase: 'Succeeded' } }, { subresource: 'status' });
    store.delete('persistentvolumeclaims', 'default', 'used');
    store.delete('persistentvolumeclaims', 'default', 'free');
    await idle();
    assert.ok(getClaim('used')?.metadata.deletionTimestamp, 'in use: terminating, not gone');
    assert.equal(getClaim('free'), undefined, 'only a finished pod uses it: gone');
    assert.equal(protection.claimInUse('default/used'), true);

    const web = store.get('pods', 'default', 'web') as Pod;
    store.update({ ...web, status: { phase: 'Running' } }, { subresource: 'status' });
    await idle();
    assert.ok(getClaim('used'), 'still running');
    store.update({ ...(store.get('pods', 'default', 'web') as Pod), status: { phase: 'Failed' } }, { subresource: 'status' });
    await waitFor(() => getClaim('used') === undefined, 'the claim to go once its pod failed');
  });

  it('keeps a claim until the pod using it is deleted', async () => {
    store.create(claim('data'));
    store.create(pod('app', ['data']));
    await waitFor(() => getClaim('data')?.metadata.finalizers?.length, 'finalizer');
    store.delete('persistentvolumeclaims', 'default', 'data');
    await idle();
    assert.ok(getClaim('data'));
    store.delete('pods', 'default', 'app');
    await waitFor(() => getClaim('data') === undefined, 'the claim to go');
  });

  it('protects volumes while Bound', async () => {
    store.create(volume('pv1'));
    await waitFor(() => (store.get('persistentvolumes', undefined, 'pv1') as PersistentVolume).metadata.finalizers?.includes(PV_PROTECTION_FINALIZER), 'finalizer');
    const pv = store.get('persistentvolumes', undefined, 'pv1') as PersistentVolume;
    store.update({ ...pv, status: { phase: 'Bound' } }, { subresource: 'status' });
    store.delete('persistentvolumes', undefined, 'pv1');
    await idle();
    assert.ok(store.get('persistentvolumes', undefined, 'pv1'), 'Bound: kept');
    store.update({ ...(store.get('persistentvolumes', undefined, 'pv1') as PersistentVolume), status: { phase: 'Released' } }, { subresource: 'status' });
    await waitFor(() => store.get('persistentvolumes', undefined, 'pv1') === undefined, 'the PV to go');
  });
});

describe('events', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());
  const events = () => store.list('events').items;

  it('aggregates repeats into one Event with a count, per object, reason and message', () => {
    const b = new EventBroadcaster({ store, logger: quiet, maxDelayMs: 0 });
    const rec = b.recorder('unit-test');
    const c = store.create(claim('x'));
    rec.event(c, 'Warning', 'FailedBinding', 'no volume');
    rec.event(c, 'Warning', 'FailedBinding', 'no volume');
    rec.event(c, 'Warning', 'FailedBinding', 'another reason');
    const pv = store.create(volume('pv'));
    rec.event(pv, 'Normal', 'Hello', 'cluster-scoped');
    const all = events();
    assert.equal(all.length, 3);
    const repeated = all.find((e) => e.message === 'no volume') as Event;
    assert.equal(repeated.count, 2);
    assert.equal(repeated.type, 'Warning');
    assert.equal(repeated.metadata.namespace, 'default');
    assert.deepEqual(
      { kind: repeated.involvedObject.kind, name: repeated.involvedObject.name, uid: repeated.involvedObject.uid, namespace: repeated.involvedObject.namespace },
      { kind: 'PersistentVolumeClaim', name: 'x', uid: c.metadata.uid, namespace: 'default' },
    );
    assert.equal(repeated.source?.component, 'unit-test');
    assert.ok(repeated.firstTimestamp && repeated.lastTimestamp);
    const clusterScoped = all.find((e) => e.reason === 'Hello') as Event;
    assert.equal(clusterScoped.metadata.namespace, 'default');
    assert.equal(clusterScoped.involvedObject.namespace, undefined);
  });

  it('lets busy controllers go first, but never holds an event longer than maxDelayMs', async () => {
    let busy = true;
    const b = new EventBroadcaster({ store, logger: quiet, busy: () => busy, maxDelayMs: 150, pollMs: 5 });
    const rec = b.recorder('unit-test');
    const c = store.create(claim('x'));
    rec.event(c, 'Normal', 'A', 'first');
    rec.event(c, 'Normal', 'A', 'first');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(events().length, 0, 'held while busy');
    await waitFor(() => events().length === 1, 'written after maxDelayMs', 2000);
    assert.equal(events()[0]?.count, 2, 'occurrences queued meanwhile are one write');
    rec.event(c, 'Normal', 'B', 'second');
    busy = false;
    await waitFor(() => events().length === 2, 'written once idle', 1000);
    rec.event(c, 'Normal', 'C', 'third');
    b.close();
    assert.equal(events().length, 3, 'close() writes what is queued');
    rec.event(c, 'Normal', 'D', 'after close');
    assert.equal(events().length, 3);
  });
});

describe('driver registry', () => {
  it('registers a driver from its own answers, resolves cached clients, and drops them on change', async () => {
    const store = open(':memory:');
    const fake = await startFakeDriver('reg.csi.test', {
      node: {
        async NodeGetInfo() {
          return { node_id: 'node-a', max_volumes_per_node: 7, accessible_topology: { segments: { 'topology.reg/zone': 'z9' } } };
        },
      },
      controllerCapabilities: ['CREATE_DELETE_VOLUME', 'PUBLISH_UNPUBLISH_VOLUME'],
    });
    const factory = new InformerFactory(store);
    const registry = new DriverRegistry({ csiDrivers: factory.for('csidrivers'), csiNodes: factory.for('csinodes'), logger: quiet });
    const changes: string[] = [];
    registry.onChange((d) => changes.push(d));
    factory.start();
    try {
      const reg = await registerDriver(store, { endpoint: fake.endpoint });
      assert.deepEqual(reg, { driverName: 'reg.csi.test', controller: true, nodeName: 'node-a', nodeID: 'node-a', topology: { 'topology.reg/zone': 'z9' } });
      const driver = store.get('csidrivers', undefined, 'reg.csi.test');
      assert.equal(driver?.metadata.annotations?.[CONTROLLER_ENDPOINT_ANNOTATION], fake.endpoint);
      assert.equal(driver?.spec.attachRequired, true, 'it can ControllerPublish');
      assert.deepEqual(store.get('nodes', undefined, 'node-a')?.metadata.labels, { 'kubernetes.io/hostname': 'node-a', 'topology.reg/zone': 'z9' });
      const csiNode = store.get('csinodes', undefined, 'node-a');
      assert.deepEqual(csiNode?.spec.drivers, [{ name: 'reg.csi.test', nodeID: 'node-a', topologyKeys: ['topology.reg/zone'], allocatable: { count: 7 } }]);
      assert.deepEqual(JSON.parse(csiNode?.metadata.annotations?.[NODE_ENDPOINTS_ANNOTATION] ?? '{}'), { 'reg.csi.test': fake.endpoint });
      assert.ok(changes.includes('reg.csi.test'));

      // Idempotent.
      const rv = store.resourceVersion;
      await registerDriver(store, { endpoint: fake.endpoint });
      assert.equal(store.resourceVersion, rv);

      const client = resolveControllerClient(registry, 'reg.csi.test');
      assert.equal(registry.controllerClient('reg.csi.test'), client, 'one client per endpoint');
      assert.equal(registry.nodeEndpoint('reg.csi.test', 'node-a'), fake.endpoint);
      assert.ok((await registry.controllerCapabilities('reg.csi.test')).has('PUBLISH_UNPUBLISH_VOLUME'));
      assert.equal(registry.nodesWithDriver('reg.csi.test').length, 1);

      const d = store.get('csidrivers', undefined, 'reg.csi.test');
      if (d === undefined) throw new Error('no CSIDriver');
      store.update({ ...d, metadata: { ...d.metadata, annotations: { [CONTROLLER_ENDPOINT_ANNOTATION]: 'unix:///elsewhere/csi.sock' } } });
      assert.notEqual(registry.controllerClient('reg.csi.test'), client, 'a new endpoint, a new client');
      assert.equal(registry.controllerEndpoint('reg.csi.test'), 'unix:///elsewhere/csi.sock');

      unregisterDriver(store, 'reg.csi.test');
      assert.equal(registry.isRegistered('reg.csi.test'), false);
      assert.throws(() => resolveControllerClient(registry, 'reg.csi.test'), /not registered/);
      assert.deepEqual(store.get('csinodes', undefined, 'node-a')?.spec.drivers, []);
      assert.deepEqual(nodeEndpointsOf(store.get('csinodes', undefined, 'node-a')), {});
      store.create(csiDriverObject('other.csi.test', 'unix:///x/y.sock'));
      assert.equal(registry.isRegistered('other.csi.test'), true);
    } finally {
      factory.stop();
      registry.close();
      store.close();
      await fake.stop();
    }
  });
});

describe('control plane', () => {
  it('serves the API on <stateDir>/api.sock, announces itself in server.json, and cleans up on stop', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'stowage-cp-'));
    try {
      const cp = await startControlPlane({ stateDir, logger: quiet, controllers: { resyncMs: 0 } });
      const socket = join(stateDir, 'api.sock');
      assert.equal(cp.url, `unix://${socket}`);
      const info = JSON.parse(readFileSync(join(stateDir, SERVER_INFO_FILE), 'utf8')) as { url: string; pid: number };
      assert.deepEqual({ url: info.url, pid: info.pid }, { url: cp.url, pid: process.pid });
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: socket, path: '/api/v1/namespaces/default/persistentvolumeclaims', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end(JSON.stringify(claim('via-api')));
      });
      assert.equal((JSON.parse(body) as PersistentVolumeClaim).metadata.name, 'via-api');
      // The controllers run: a claim with no class and no volume gets its event.
      await waitFor(() => cp.store.list('events', { fieldSelector: 'involvedObject.name=via-api' }).items.length > 0, 'an event', 10_000);
      await assert.rejects(startControlPlane({ stateDir, logger: quiet }), /in use/);
      await cp.stop();
      await cp.stop();
      assert.equal(existsSync(join(stateDir, SERVER_INFO_FILE)), false);
      assert.equal(existsSync(socket), false);

      // Reopens the same store; also on loopback HTTP alongside the socket.
      const again = await startControlPlane({ stateDir, logger: quiet, listen: [`unix://${socket}`, 'http://127.0.0.1:0'] });
      assert.equal(again.urls.length, 2);
      assert.match(again.urls[1] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(again.store.get('persistentvolumeclaims', 'default', 'via-api'));
      const res = await fetch(`${again.urls[1]}/api/v1/namespaces/default/persistentvolumeclaims/via-api`);
      assert.equal(res.status, 200);
      await again.stop();
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
