// The store's file layout across versions: a store written with the old objects table (WITHOUT
// ROWID, before 2026-12) opens with every object, its resourceVersions and its watch history
// intact, moved into the current rowid table once; a store opened again is left as it is.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ConfigMap } from '../../src/control/api/types/core.js';
import type { WatchEvent } from '../../src/control/api/types/meta.js';
import { open } from '../../src/control/store/store.js';

function configMap(name: string, data: Record<string, string>): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' }, data };
}

/** Turns a store file's objects table back into the layout of stores made before 2026-12. */
function toLegacyLayout(path: string): void {
  const db = new DatabaseSync(path);
  db.exec(`BEGIN IMMEDIATE;
    CREATE TABLE objects_legacy (
      resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
      uid TEXT NOT NULL UNIQUE, deleting INTEGER NOT NULL, body TEXT NOT NULL,
      PRIMARY KEY (resource, namespace, name)
    ) WITHOUT ROWID;
    INSERT INTO objects_legacy SELECT resource, namespace, name, uid, deleting, body FROM objects;
    DROP TABLE objects;
    ALTER TABLE objects_legacy RENAME TO objects;
    CREATE INDEX objects_deleting ON objects (deleting) WHERE deleting = 1;
    COMMIT;`);
  db.close();
}

function objectsTableSql(path: string): string {
  const db = new DatabaseSync(path);
  try {
    return (db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'objects'").get() as { sql: string }).sql;
  } finally {
    db.close();
  }
}

describe('store: file layout', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-store-layout-'));
    path = join(dir, 'store.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens a store of the old layout with every object, resourceVersion and watch event, moved to the rowid table', () => {
    const first = open(path);
    const big = 'x'.repeat(3000); // above the old layout's inline limit: spilled into overflow pages there
    const a = first.create(configMap('a', { v: '1', big }));
    const b = first.create(configMap('b', { v: '1' }));
    first.update({ ...b, data: { v: '2' } });
    first.delete('configmaps', 'default', 'a');
    const kept = first.create(configMap('c', { v: '1', big }));
    const rvBefore = first.resourceVersion;
    first.flushSync();
    first.close();
    toLegacyLayout(path);
    assert.match(objectsTableSql(path), /WITHOUT ROWID/);

    const store = open(path);
    try {
      assert.equal(store.resourceVersion, rvBefore, 'the resourceVersion sequence goes on');
      assert.equal(store.get('configmaps', 'default', 'a'), undefined, 'a deleted object stays deleted');
      assert.deepEqual(store.get('configmaps', 'default', 'b')?.data, { v: '2' });
      const c = store.get('configmaps', 'default', 'c');
      assert.equal(c?.data?.big, big, 'a large object is read back whole');
      assert.equal(c?.metadata.uid, kept.metadata.uid);
      assert.equal(c?.metadata.resourceVersion, kept.metadata.resourceVersion);
      assert.deepEqual(
        store.list('configmaps', { namespace: 'default' }).items.map((o) => o.metadata.name),
        ['b', 'c'],
      );
      // The event log is untouched: a watch from before the first write replays all of it.
      const seen: string[] = [];
      const stop = store.watch('configmaps', { namespace: 'default', resourceVersion: String(Number(a.metadata.resourceVersion) - 1) }, (e: WatchEvent) => {
        seen.push(`${e.type} ${e.object.metadata.name}`);
      });
      stop();
      assert.deepEqual(seen, ['ADDED a', 'ADDED b', 'MODIFIED b', 'DELETED a', 'ADDED c']);
      // Unique uids and the deleting index still hold in the new table.
      store.update({ ...(c as ConfigMap), data: { v: '2' } });
      store.delete('configmaps', 'default', 'b');
      assert.equal(store.get('configmaps', 'default', 'b'), undefined);
      store.flushSync();
    } finally {
      store.close();
    }
    // (Read once the store is closed: it holds its file's lock while open.)
    assert.doesNotMatch(objectsTableSql(path), /WITHOUT ROWID/, 'moved to the rowid layout');

    // Opened again: nothing to move, everything there.
    const again = open(path);
    try {
      assert.deepEqual(again.get('configmaps', 'default', 'c')?.data, { v: '2' });
    } finally {
      again.close();
    }
    assert.doesNotMatch(objectsTableSql(path), /WITHOUT ROWID/);
  });
});
