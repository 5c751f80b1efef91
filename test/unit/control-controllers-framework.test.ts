// The controller framework: the deduplicating, rate-limited work queue, the worker loop, and
// shared informers (list + watch, indexes, resync, relist on an expired watch).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigMap } from '../../src/control/api/types/core.js';
import { ControllerLoop, driverUnavailable, UNAVAILABLE_RETRY_MAX_MS } from '../../src/control/controllers/controller.js';
import { NotFoundError, UnavailableError } from '../../src/csi/errors.js';
import { Informer, InformerFactory, keyOf, splitKey } from '../../src/control/controllers/informer.js';
import { ExponentialRateLimiter, WorkQueue } from '../../src/control/controllers/work-queue.js';
import { ConflictError, ExpiredError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';
import { quiet, settle, waitFor } from './control-controllers-helpers.js';

function configMap(name: string, labels: Record<string, string> = {}): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', labels }, data: {} };
}

describe('work queue', () => {
  it('hands out a key once however often it is added while waiting', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
    assert.equal(q.length, 0);
  });

  it('never hands out a key being processed; a re-add runs after done()', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    assert.equal(key, 'a');
    q.add('a'); // changed while being worked on
    q.add('b');
    assert.equal(await q.get(), 'b', 'a is still being processed, so b comes first');
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await sleep(5);
    assert.equal(second, undefined, 'a is not handed out before done()');
    q.done('a');
    await sleep(0);
    assert.equal(second, 'a');
  });

  it('backs off exponentially per key, from 5 ms to a 1000 s cap, and forgets on success', () => {
    const r = new ExponentialRateLimiter();
    assert.deepEqual([r.when('k'), r.when('k'), r.when('k'), r.when('k')], [5, 10, 20, 40]);
    assert.equal(r.when('other'), 5, 'per key');
    for (let i = 0; i < 40; i++) r.when('k');
    assert.equal(r.when('k'), 1_000_000);
    assert.equal(r.numRequeues('k'), 45);
    r.forget('k');
    assert.equal(r.when('k'), 5);
  });

  it('re-adds after a delay, keeping the earliest of several, and wakes waiters with undefined on shutdown', async () => {
    const q = new WorkQueue();
    q.addAfter('late', 200);
    q.addAfter('late', 10);
    const started = Date.now();
    assert.equal(await q.get(), 'late');
    assert.ok(Date.now() - started < 150, 'the earlier delay wins');
    const waiting = q.get();
    q.addAfter('never', 10);
    q.shutDown();
    assert.equal(await waiting, undefined);
    await sleep(20);
    assert.equal(q.length, 0, 'timers are cancelled by shutDown');
    q.add('x');
    assert.equal(await q.get(), undefined);
  });
});

describe('controller loop', () => {
  it('retries a failing sync with backoff until it succeeds, then forgets the failures', async () => {
    let calls = 0;
    const loop = new ControllerLoop({
      name: 't',
      logger: quiet,
      sync: () => {
        calls++;
        if (calls < 4) throw new Error('not yet');
      },
    });
    loop.start();
    const started = Date.now();
    loop.enqueue('k');
    await waitFor(() => calls === 4, 'four attempts');
    // 5 + 10 + 20 ms of backoff between the attempts.
    assert.ok(Date.now() - started >= 30, `retried too fast (${Date.now() - started} ms)`);
    await settle(() => loop.idle);
    assert.equal(loop.queue.numRequeues('k'), 0);
    await loop.stop();
  });

  it('retries conflicts and honours requeue / requeueAfterMs', async () => {
    const seen: string[] = [];
    let conflicted = false;
    const loop = new ControllerLoop({
      name: 't',
      logger: quiet,
      sync: (key) => {
        seen.push(key);
        if (key === 'conflict' && !conflicted) {
          conflicted = true;
          throw new ConflictError({ group: '', version: 'v1', apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', singular: 'configmap', shortNames: [], namespaced: true, hasStatus: false, fieldSelectors: [] }, 'x');
        }
        if (key === 'later' && seen.filter((k) => k === 'later').length === 1) return { requeueAfterMs: 30 };
        return undefined;
      },
    });
    loop.start();
    loop.enqueue('conflict');
    loop.enqueue('later');
    await waitFor(() => seen.filter((k) => k === 'conflict').length === 2 && seen.filter((k) => k === 'later').length === 2, 'retries');
    await loop.stop();
  });

  it('runs different keys concurrently, one key at a time, and waits for in-flight syncs on stop', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const running = new Set<string>();
    let overlap = false;
    const loop = new ControllerLoop({
      name: 't',
      logger: quiet,
      workers: 4,
      sync: async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(10);
        inFlight--;
        running.delete(key);
      },
    });
    loop.start();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 10; i++) loop.enqueue(`k${i}`);
      await sleep(3);
    }
    await settle(() => loop.idle);
    assert.equal(maxInFlight, 4);
    assert.equal(overlap, false, 'a key was synced twice at once');
    loop.enqueue('slow');
    await sleep(1);
    await loop.stop();
    assert.equal(inFlight, 0, 'stop() waited for the running sync');
  });
});

describe('controller loop: an unreachable CSI driver', () => {
  it('recognises UNAVAILABLE in an error or its causes, and nothing else', () => {
    const down = new UnavailableError('connect ENOENT /x/csi.sock');
    assert.equal(driverUnavailable(down), down);
    assert.equal(driverUnavailable(new Error('DeleteVolume failed', { cause: down })), down);
    assert.equal(driverUnavailable(new NotFoundError('no such volume')), undefined);
    assert.equal(driverUnavailable(new Error('UNAVAILABLE in the text only')), undefined, 'never read from the message');
    assert.equal(driverUnavailable('UNAVAILABLE'), undefined);
  });

  it('retries an `unavailable` outcome or a thrown UNAVAILABLE with backoff capped at UNAVAILABLE_RETRY_MAX_MS; other failures are not capped', async () => {
    const attempts = new Map<string, number>();
    const loop = new ControllerLoop({
      name: 't',
      logger: quiet,
      sync: (key) => {
        const n = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, n);
        if (n >= 3) return undefined;
        const down = new UnavailableError('connect ECONNREFUSED');
        if (key === 'outcome') return { unavailable: down };
        if (key === 'thrown') throw new Error('CreateVolume failed', { cause: down });
        throw new NotFoundError('gone');
      },
    });
    const caps: [string, number | undefined][] = [];
    const addRateLimited = loop.queue.addRateLimited.bind(loop.queue);
    loop.queue.addRateLimited = (key: string, capMs?: number): number => {
      caps.push([key, capMs]);
      return addRateLimited(key, capMs);
    };
    loop.start();
    for (const key of ['outcome', 'thrown', 'other']) loop.enqueue(key);
    await waitFor(() => [...attempts.values()].every((n) => n >= 3) && attempts.size === 3, 'three attempts of each key');
    await settle(() => loop.idle);
    await loop.stop();
    for (const key of ['outcome', 'thrown']) assert.deepEqual(caps.filter(([k]) => k === key).map(([, cap]) => cap), [UNAVAILABLE_RETRY_MAX_MS, UNAVAILABLE_RETRY_MAX_MS], key);
    assert.deepEqual(caps.filter(([k]) => k === 'other').map(([, cap]) => cap), [undefined, undefined]);
    assert.equal(loop.queue.numRequeues('outcome'), 0, 'forgotten after the success');
  });

  it('caps the delay the work queue would otherwise grow to', () => {
    const q = new WorkQueue({ baseDelayMs: 4_000 });
    assert.equal(q.addRateLimited('k', 5_000), 4_000);
    assert.equal(q.addRateLimited('k', 5_000), 5_000, 'not 8000');
    assert.equal(q.addRateLimited('k'), 16_000, 'the failures still count');
    q.shutDown();
  });
});

describe('informers', () => {
  it('list + watch: a cache with add/update/delete events and secondary indexes', () => {
    const store = open(':memory:');
    try {
      store.create(configMap('a', { tier: 'web' }));
      const inf = new Informer<ConfigMap>(store, 'configmaps');
      inf.addIndex('tier', (cm) => (cm.metadata.labels?.['tier'] ? [cm.metadata.labels['tier']] : []));
      const log: string[] = [];
      inf.addEventHandler({
        add: (o) => log.push(`add ${o.metadata.name}`),
        update: (_old, o) => log.push(`update ${o.metadata.name}`),
        delete: (o) => log.push(`delete ${o.metadata.name}`),
      });
      inf.start();
      assert.deepEqual(log, ['add a']);
      const b = store.create(configMap('b', { tier: 'web' }));
      assert.equal(inf.get('default/b')?.metadata.uid, b.metadata.uid, 'the cache is current as soon as the write returns');
      assert.deepEqual(inf.indexKeys('tier', 'web').sort(), ['default/a', 'default/b']);
      store.update({ ...b, metadata: { ...b.metadata, labels: { tier: 'db' } } });
      assert.deepEqual(inf.indexKeys('tier', 'web'), ['default/a']);
      assert.deepEqual(inf.byIndex('tier', 'db').map((o) => o.metadata.name), ['b']);
      store.delete('configmaps', 'default', 'a');
      assert.deepEqual(inf.indexKeys('tier', 'web'), []);
      assert.deepEqual(log, ['add a', 'add b', 'update b', 'delete a']);
      inf.resync();
      assert.deepEqual(log.slice(4), ['update b']);
      inf.stop();
      store.create(configMap('c'));
      assert.equal(inf.get('default/c'), undefined, 'no events after stop');
      assert.throws(() => inf.addIndex('late', () => []), /after it started/);
    } finally {
      store.close();
    }
  });

  it('resyncs on its period and shares one informer per resource', async () => {
    const store = open(':memory:');
    try {
      const factory = new InformerFactory(store, { resyncMs: 20 });
      const a = factory.for('configmaps');
      assert.equal(factory.for('configmaps'), a);
      let resyncs = 0;
      a.addEventHandler({ update: (old, obj) => old === obj && resyncs++ });
      store.create(configMap('x'));
      factory.start();
      await waitFor(() => resyncs >= 2, 'two resyncs');
      factory.stop();
    } finally {
      store.close();
    }
  });

  it('relists when its watch has expired', () => {
    const store = open(':memory:');
    try {
      store.create(configMap('a'));
      let attempts = 0;
      const flaky = new Proxy(store, {
        get(target, prop, receiver) {
          if (prop === 'watch') {
            return (...args: Parameters<Store['watch']>) => {
              if (attempts++ === 0) {
                target.create(configMap('written-between-list-and-watch'));
                throw new ExpiredError(1, 2);
              }
              return target.watch(...args);
            };
          }
          const value: unknown = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const inf = new Informer<ConfigMap>(flaky, 'configmaps');
      inf.start();
      assert.equal(attempts, 2);
      assert.deepEqual(inf.list().map((o) => o.metadata.name).sort(), ['a', 'written-between-list-and-watch']);
      inf.stop();
    } finally {
      store.close();
    }
  });

  it('keys objects as namespace/name', () => {
    assert.equal(keyOf(configMap('x')), 'default/x');
    assert.deepEqual(splitKey('ns/x'), { namespace: 'ns', name: 'x' });
    assert.deepEqual(splitKey('pv-1'), { namespace: undefined, name: 'pv-1' });
  });
});
