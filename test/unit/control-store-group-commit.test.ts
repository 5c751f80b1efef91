// Group commit: the writes of one turn of the event loop share one transaction and one fsync;
// flushed() resolves once the commit covering every write so far is done; a write that fails
// undoes only itself; a failed commit poisons the store (every later operation refused, flushed()
// rejects, onFailure listeners told). Also: the garbage collector's work is proportional to what
// a write touches, not to everything waiting on finalizers.
import assert from 'node:assert/strict';
import { fdatasync, fdatasyncSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ConfigMap, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import type { WatchEvent } from '../../src/control/api/types/meta.js';
import { BrokenTransactionError } from '../../src/control/store/database.js';
import { StoreFailedError } from '../../src/control/store/errors.js';
import { startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

function pvc(name: string): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}

function configMap(name: string, finalizers?: string[]): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', ...(finalizers ? { finalizers } : {}) }, data: { k: 'v' } };
}

/** The store's SQLite layer, reached past `private` to count or break what it does. */
interface DbInternals {
  commit(): void;
  writeStep(fn: () => void): void;
  appendEvent(row: unknown): void;
  deleting(): unknown[];
}

function internals(store: Store): DbInternals {
  return (store as unknown as { db: DbInternals }).db;
}

/** Counts the store's commits (each one fsync). */
function countCommits(store: Store): { readonly count: number } {
  const db = internals(store);
  const commit = db.commit.bind(db);
  const counter = { count: 0 };
  db.commit = () => {
    commit();
    counter.count++;
  };
  return counter;
}

describe('store: group commit', () => {
  let dir: string;
  let path: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-group-'));
    path = join(dir, 'store.db');
    store = open(path);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits the writes of one turn together, and flushed() resolves after that commit', async () => {
    const commits = countCommits(store);
    const seen: string[] = [];
    const stop = store.watch('persistentvolumeclaims', {}, (e: WatchEvent) => seen.push(`${e.type} ${e.object.metadata.name ?? ''}`));
    const created = [];
    for (let i = 0; i < 50; i++) created.push(store.create(pvc(`c${i}`)));
    for (const c of created.slice(0, 10)) store.update({ ...c, status: { phase: 'Bound' } }, { subresource: 'status' });
    // Visible in-process at once: reads and watch handlers see every write as it returns.
    assert.equal(store.list('persistentvolumeclaims').items.length, 50);
    assert.equal(seen.length, 60, 'watch handlers ran per write, before any commit');
    assert.equal(commits.count, 0, 'nothing committed within the turn');
    let resolvedAfter = -1;
    const flushed = store.flushed().then(() => (resolvedAfter = commits.count));
    const again = store.flushed();
    await Promise.all([flushed, again]);
    assert.equal(resolvedAfter, 1, 'flushed() resolved after the one commit covering all 60 writes');
    assert.equal(commits.count, 1);
    // Nothing pending: resolves at once, commits nothing.
    await store.flushed();
    assert.equal(commits.count, 1);
    // Writes in different turns are different commits.
    store.create(pvc('x'));
    await nextTurn();
    await nextTurn();
    store.create(pvc('y'));
    await store.flushed();
    assert.equal(commits.count, 3);
    stop();
  });

  it('commits even when nobody waits, and flushSync()/close() commit at once', async () => {
    store.create(pvc('unawaited'));
    await nextTurn();
    await nextTurn();
    const commits = countCommits(store);
    await store.flushed();
    assert.equal(commits.count, 0, 'the end-of-turn commit had already happened');
    store.create(pvc('sync'));
    store.flushSync();
    assert.equal(commits.count, 1);
    store.create(pvc('at-close'));
    store.close();
    store = open(path);
    for (const name of ['unawaited', 'sync', 'at-close']) assert.ok(store.get('persistentvolumeclaims', 'default', name), name);
  });

  it('commits a long turn once its transaction is maxTransactionMs old', async () => {
    store.close();
    // Each WAL sync asked for (wal-sync.ts), with the revision committed when it was asked.
    const syncs: number[] = [];
    store = open(path, {
      maxTransactionMs: 20,
      syncCalls: {
        fdatasync: (fd, callback) => {
          syncs.push(Number(store.resourceVersion));
          fdatasync(fd, callback);
        },
        fdatasyncSync,
      },
    });
    const commits = countCommits(store);
    let waited = false;
    store.create(pvc('first'));
    void store.flushed().then(() => (waited = true));
    const start = performance.now();
    let i = 0;
    // One turn that keeps writing for at least 100 ms, and until three commits happened inside it
    // (each commit's fsync may take tens of ms on a loaded machine; 5 s is the give-up bound).
    while (performance.now() - start < 100 || (commits.count < 3 && performance.now() - start < 5000)) store.create(pvc(`long-${i++}`));
    assert.ok(commits.count >= 3, `${commits.count} commits during a ${Math.round(performance.now() - start)} ms turn of ${i} writes`);
    // The first in-turn commit asked for its sync at once, not when the turn ended.
    assert.equal(syncs.length, 1, 'one WAL sync at a time');
    assert.ok((syncs[0] ?? Infinity) < Number(store.resourceVersion) - 1, `sync asked at revision ${syncs[0]}, the turn ended at ${store.resourceVersion}`);
    await store.flushed();
    assert.equal(waited, true, 'the first write was acknowledged');
    assert.equal(store.committedResourceVersion, store.resourceVersion);
  });

  it('undoes only the write that failed; the others of its turn commit', async () => {
    const db = internals(store);
    const append = db.appendEvent.bind(db);
    const rv = Number(store.resourceVersion);
    store.create(pvc('before'));
    db.appendEvent = () => {
      throw new Error('injected statement failure');
    };
    assert.throws(() => store.create(pvc('failing')), /injected statement failure/);
    db.appendEvent = append;
    store.create(pvc('after'));
    await store.flushed();
    assert.equal(store.failed, undefined, 'an ordinary write failure does not fail the store');
    assert.equal(store.get('persistentvolumeclaims', 'default', 'failing'), undefined);
    assert.equal(Number(store.resourceVersion), rv + 2, 'the failed write took no resourceVersion');
    store.close();
    store = open(path);
    assert.ok(store.get('persistentvolumeclaims', 'default', 'before'));
    assert.ok(store.get('persistentvolumeclaims', 'default', 'after'));
    assert.equal(store.get('persistentvolumeclaims', 'default', 'failing'), undefined);
  });

  it('a failed commit poisons the store: writes and reads refused, flushed() rejects, listeners told', async () => {
    store.create(pvc('committed'));
    await store.flushed();
    const failures: StoreFailedError[] = [];
    store.onFailure((err) => failures.push(err));
    const db = internals(store);
    db.commit = () => {
      throw new Error('disk I/O error');
    };
    const lost = store.create(pvc('lost'));
    assert.equal(store.get('persistentvolumeclaims', 'default', 'lost')?.metadata.uid, lost.metadata.uid, 'seen in-process before the commit');
    await assert.rejects(store.flushed(), (err: unknown) => err instanceof StoreFailedError && /disk I\/O error/.test(err.message) && err.code === 500);
    assert.equal(failures.length, 1);
    assert.ok(store.failed instanceof StoreFailedError);
    assert.throws(() => store.create(pvc('refused')), StoreFailedError);
    assert.throws(() => store.get('persistentvolumeclaims', 'default', 'committed'), StoreFailedError);
    assert.throws(() => store.list('persistentvolumeclaims'), StoreFailedError);
    assert.throws(() => store.watch('persistentvolumeclaims', {}, () => undefined), StoreFailedError);
    await assert.rejects(store.flushed(), StoreFailedError);
    let late: StoreFailedError | undefined;
    store.onFailure((err) => (late = err));
    assert.equal(late, failures[0], 'a listener added later is told at once');
    store.close();
    // On disk: the last committed state, without the write whose commit failed.
    store = open(path);
    assert.ok(store.get('persistentvolumeclaims', 'default', 'committed'));
    assert.equal(store.get('persistentvolumeclaims', 'default', 'lost'), undefined);
  });

  it('a write failure that takes the transaction down poisons the store too', async () => {
    const db = internals(store);
    store.create(pvc('in-the-lost-transaction'));
    const waiting = store.flushed();
    db.writeStep = () => {
      throw new BrokenTransactionError(new Error('database or disk is full'));
    };
    assert.throws(() => store.create(pvc('x')), StoreFailedError);
    await assert.rejects(waiting, StoreFailedError);
    assert.throws(() => store.create(pvc('y')), StoreFailedError);
  });
});

describe('API server: acknowledged means committed', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-group-http-'));
    store = open(join(dir, 'store.db'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers writes and streams watch events only once the writes behind them are committed', async () => {
    const server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    // What was committed at the moment each response body (or watch chunk) left the server.
    const sent: { text: string; committed: number }[] = [];
    const { write, end } = ServerResponse.prototype;
    const record = (chunk: unknown): void => {
      if (typeof chunk === 'string' && chunk.includes('resourceVersion')) sent.push({ text: chunk, committed: Number(store.committedResourceVersion) });
    };
    ServerResponse.prototype.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      record(chunk);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    ServerResponse.prototype.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      record(chunk);
      return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    } as typeof end;
    const watch = new AbortController();
    try {
      const base = `${server.url}/api/v1/namespaces/default/persistentvolumeclaims`;
      const stream = await fetch(`${base}?watch=1`, { signal: watch.signal });
      const reader = stream.body?.getReader();
      for (let i = 0; i < 5; i++) {
        const res = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pvc(`h${i}`)) });
        assert.equal(res.status, 201);
        const created = (await res.json()) as PersistentVolumeClaim;
        assert.ok(Number(created.metadata.resourceVersion) <= Number(store.committedResourceVersion));
      }
      // A burst of in-process writes in one turn: streamed after their one commit.
      for (let i = 0; i < 5; i++) store.create(pvc(`b${i}`));
      let text = '';
      while ((text.match(/\n/g) ?? []).length < 10) {
        const chunk = await reader?.read();
        if (chunk === undefined || chunk.done) break;
        text += Buffer.from(chunk.value).toString();
      }
      assert.equal((text.match(/"ADDED"/g) ?? []).length, 10);
    } finally {
      ServerResponse.prototype.write = write;
      ServerResponse.prototype.end = end;
      watch.abort();
      await server.close();
    }
    let checked = 0;
    for (const { text, committed } of sent) {
      for (const m of text.matchAll(/"resourceVersion":"(\d+)"/g)) {
        assert.ok(Number(m[1]) <= committed, `sent rv ${m[1]} with only rv ${committed} committed`);
        checked++;
      }
    }
    assert.ok(checked >= 15, `checked ${checked} resourceVersions as they were sent`);
  });
});

describe('store: deletion scales with what it touches', () => {
  let store: Store;
  beforeEach(() => (store = open(':memory:')));
  afterEach(() => store.close());

  it('finishes deletions without scanning every object that waits on finalizers', (t) => {
    const n = 2000;
    for (let i = 0; i < n; i++) store.create(configMap(`held-${i}`, ['example.com/hold']));
    let scans = 0;
    const db = internals(store);
    const deleting = db.deleting.bind(db);
    db.deleting = () => {
      scans++;
      return deleting();
    };
    let start = performance.now();
    for (let i = 0; i < n; i++) store.delete('configmaps', 'default', `held-${i}`);
    const markMs = performance.now() - start;
    assert.equal(store.list('configmaps').items.filter((o) => o.metadata.deletionTimestamp !== undefined).length, n);
    start = performance.now();
    for (let i = 0; i < n; i++) {
      const obj = store.get('configmaps', 'default', `held-${i}`);
      assert.ok(obj);
      store.update({ ...obj, metadata: { ...obj.metadata, finalizers: [] } });
    }
    const finishMs = performance.now() - start;
    assert.equal(store.list('configmaps').items.length, 0);
    assert.equal(scans, 0, 'no full scan of deleting objects after open');
    t.diagnostic(`${n} objects: marked for deletion in ${markMs.toFixed(0)} ms, finalized and removed in ${finishMs.toFixed(0)} ms`);
  });

  it('still finds the work a write makes: a blocking dependent that lets go, the last owner going', () => {
    const owner = store.create(configMap('owner'));
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid ?? '', blockOwnerDeletion: true };
    const dep = store.create({ ...configMap('dep', ['example.com/hold']), metadata: { name: 'dep', namespace: 'default', finalizers: ['example.com/hold'], ownerReferences: [ref] } });
    store.delete('configmaps', 'default', 'owner', { propagationPolicy: 'Foreground' });
    assert.ok(store.get('configmaps', 'default', 'owner'), 'the owner waits for its blocking dependent');
    // The dependent stops blocking (still terminating, still held): the owner may go now.
    const held = store.get('configmaps', 'default', 'dep');
    assert.ok(held?.metadata.deletionTimestamp);
    let scans = 0;
    const db = internals(store);
    const deleting = db.deleting.bind(db);
    db.deleting = () => {
      scans++;
      return deleting();
    };
    store.update({ ...held, metadata: { ...held.metadata, ownerReferences: [{ ...ref, blockOwnerDeletion: false }] } });
    // The collector runs after every deletion (as before): it has the owner queued, no scan needed.
    store.create(configMap('trigger'));
    store.delete('configmaps', 'default', 'trigger');
    assert.equal(store.get('configmaps', 'default', 'owner'), undefined);
    assert.equal(scans, 0);
    assert.equal(dep.metadata.name, 'dep');

    // A dependent of two owners goes with the second.
    const a = store.create(configMap('a'));
    const b = store.create(configMap('b'));
    const refTo = (o: ConfigMap) => ({ apiVersion: 'v1', kind: 'ConfigMap', name: o.metadata.name ?? '', uid: o.metadata.uid ?? '' });
    store.create({ ...configMap('shared'), metadata: { name: 'shared', namespace: 'default', ownerReferences: [refTo(a), refTo(b)] } });
    store.delete('configmaps', 'default', 'a');
    assert.ok(store.get('configmaps', 'default', 'shared'));
    store.delete('configmaps', 'default', 'b');
    assert.equal(store.get('configmaps', 'default', 'shared'), undefined);
  });
});
