// The WAL synced off the event loop (wal-sync.ts): a store on a file commits without syncing and
// acknowledges a write (flushed(), committedResourceVersion) only once a later fdatasync of the
// WAL has finished; one sync runs at a time and covers every commit made meanwhile; a failed sync
// fails the store; flushSync() and close() sync on the spot. The fdatasync calls are replaced
// here to hold, count or fail them; the real ones run underneath.
import assert from 'node:assert/strict';
import { fdatasync, fdatasyncSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ConfigMap } from '../../src/control/api/types/core.js';
import { StoreFailedError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';
import type { SyncCalls } from '../../src/control/store/wal-sync.js';

function configMap(name: string): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' }, data: { k: name } };
}

/** fdatasync calls that wait until released (or failed) by the test; sync ones are counted. */
class HeldSyncs implements SyncCalls {
  readonly held: { fd: number; callback: (err: NodeJS.ErrnoException | null) => void }[] = [];
  asked = 0;
  syncNow = 0;
  fdatasync(fd: number, callback: (err: NodeJS.ErrnoException | null) => void): void {
    this.asked++;
    this.held.push({ fd, callback });
  }
  fdatasyncSync(fd: number): void {
    this.syncNow++;
    fdatasyncSync(fd);
  }
  /** Lets the oldest held sync run for real. */
  async release(): Promise<void> {
    const next = this.held.shift();
    assert.ok(next, 'a sync was asked for');
    await new Promise<void>((resolve) => {
      fdatasync(next.fd, (err) => {
        next.callback(err);
        resolve();
      });
    });
  }
  /** Ends the oldest held sync with an I/O error. */
  fail(): void {
    const next = this.held.shift();
    assert.ok(next, 'a sync was asked for');
    next.callback(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' }));
  }
}

/** Whether the promise has settled after the pending turns of the event loop. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await nextTurn();
  await nextTurn();
  return done;
}

describe('store: the WAL synced off the event loop', () => {
  let dir: string;
  let path: string;
  let syncs: HeldSyncs;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-walsync-'));
    path = join(dir, 'store.db');
    syncs = new HeldSyncs();
    store = open(path, { syncCalls: syncs, checkpointThread: false });
    // Opening syncs what it wrote (the system namespaces) on the spot.
    assert.equal(syncs.syncNow, 1);
    assert.equal(syncs.asked, 0, 'opening started no sync of its own');
    syncs.syncNow = 0;
  });
  afterEach(() => {
    try {
      store.close();
    } catch {
      // a test that failed the store on purpose
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('acknowledges a write only once the WAL is synced after its commit', async () => {
    const before = store.committedResourceVersion;
    store.create(configMap('a'));
    const ack = store.flushed();
    assert.equal(await settled(ack), false, 'committed but not synced: not acknowledged');
    assert.equal(syncs.asked, 1);
    assert.equal(store.committedResourceVersion, before, 'watch bookmarks do not get ahead of the disk');
    await syncs.release();
    assert.equal(await settled(ack), true);
    assert.equal(store.committedResourceVersion, store.resourceVersion);
    // Nothing new: answered at once, no sync.
    assert.equal(await settled(store.flushed()), true);
    assert.equal(syncs.asked, 1);
  });

  it('runs one sync at a time; the next covers every commit made meanwhile', async () => {
    store.create(configMap('a'));
    const first = store.flushed();
    await nextTurn();
    store.create(configMap('b'));
    const second = store.flushed();
    await nextTurn();
    store.create(configMap('c'));
    const third = store.flushed();
    await nextTurn();
    assert.equal(syncs.asked, 1, 'three commits, one sync running');
    await syncs.release();
    assert.equal(await settled(first), true);
    assert.equal(await settled(second), false, 'committed after the running sync began');
    assert.equal(syncs.asked, 2, 'the next sync started when the first ended');
    await syncs.release();
    assert.equal(await settled(second), true);
    assert.equal(await settled(third), true);
    assert.equal(syncs.asked, 2);
  });

  it('fails the store when a sync fails: waiters rejected, listeners told, writes refused', async () => {
    const failures: StoreFailedError[] = [];
    store.onFailure((err) => failures.push(err));
    store.create(configMap('lost'));
    const ack = store.flushed();
    await nextTurn();
    syncs.fail();
    await assert.rejects(ack, (err: unknown) => err instanceof StoreFailedError && /EIO/.test(err.message));
    assert.equal(failures.length, 1);
    assert.throws(() => store.create(configMap('refused')), StoreFailedError);
    await assert.rejects(store.flushed(), StoreFailedError);
  });

  it('syncs on the spot at flushSync() and close(), and keeps what was acknowledged', async () => {
    store.create(configMap('sync'));
    store.flushSync();
    assert.equal(syncs.syncNow, 1);
    assert.equal(store.committedResourceVersion, store.resourceVersion);
    assert.equal(await settled(store.flushed()), true);
    store.create(configMap('at-close'));
    const ack = store.flushed();
    await nextTurn();
    assert.equal(syncs.held.length, 1, 'an async sync is running');
    store.close();
    assert.equal(syncs.syncNow, 2, 'close() synced what the running sync may not cover');
    assert.equal(await settled(ack), true, 'acknowledged by the sync at close');
    // The sync that was running ends after close: nothing happens.
    await syncs.release();
    store = open(path, { checkpointThread: false });
    for (const name of ['sync', 'at-close']) assert.ok(store.get('configmaps', 'default', name), name);
  });

  it('needs no sync for a store in memory', async () => {
    const calls = new HeldSyncs();
    const memory = open(':memory:', { syncCalls: calls });
    memory.create(configMap('m'));
    await memory.flushed();
    assert.equal(memory.committedResourceVersion, memory.resourceVersion);
    assert.equal(calls.asked + calls.syncNow, 0);
    memory.close();
  });
});
