// The SQLite file behind the store: its layout, durability settings and every statement, prepared
// once. Objects are stored as JSON text keyed by (resource, namespace, name); each write also
// appends to an event log (for watches from a resourceVersion) in the same transaction.
//
// The objects table is an ordinary (rowid) table with its key as a unique index. Stores made
// before 2026-12 kept it WITHOUT ROWID, where a row above ~1 KB spills into overflow pages: with
// Kubernetes objects of 1-4 KB a read cost 2-3x what it costs now
// (bench/store-layout-bench.ts). Opening such a store moves its rows over, in one transaction.
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { type FileLock, FileLockedError, lockFile } from './file-lock.js';

export interface ObjectKey {
  resource: string;
  namespace: string;
  name: string;
}

export interface EventRow {
  rv: number;
  resource: string;
  namespace: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: string;
  previous: string | null;
}

const OBJECTS_COLUMNS = `
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    uid TEXT NOT NULL UNIQUE,
    deleting INTEGER NOT NULL,       -- 1 while metadata.deletionTimestamp is set
    body TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
  `;

/** Moves the objects of a store made with the WITHOUT ROWID layout into the rowid one (same columns). */
const MIGRATE_OBJECTS_TO_ROWID = `
  CREATE TABLE objects_rowid (${OBJECTS_COLUMNS});
  INSERT INTO objects_rowid (resource, namespace, name, uid, deleting, body)
    SELECT resource, namespace, name, uid, deleting, body FROM objects;
  DROP TABLE objects;
  ALTER TABLE objects_rowid RENAME TO objects;
  CREATE INDEX objects_deleting ON objects (deleting) WHERE deleting = 1;
`;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS objects (${OBJECTS_COLUMNS});
  CREATE INDEX IF NOT EXISTS objects_deleting ON objects (deleting) WHERE deleting = 1;
  CREATE TABLE IF NOT EXISTS owner_refs (
    owner_uid TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (owner_uid, resource, namespace, name)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS owner_refs_dependent ON owner_refs (resource, namespace, name);
  CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL,
    type TEXT NOT NULL, object TEXT NOT NULL, previous TEXT
  );
`;

const SQL = {
  begin: 'BEGIN IMMEDIATE',
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: 'SAVEPOINT w',
  release: 'RELEASE w',
  rollbackToSavepoint: 'ROLLBACK TO w',
  getCounter: 'SELECT value FROM counters WHERE name = ?',
  setCounter: 'INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
  get: 'SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?',
  listAll: 'SELECT body FROM objects WHERE resource = ? ORDER BY namespace, name',
  listNamespace: 'SELECT body FROM objects WHERE resource = ? AND namespace = ? ORDER BY name',
  put: `INSERT INTO objects (resource, namespace, name, uid, deleting, body) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (resource, namespace, name) DO UPDATE SET uid = excluded.uid, deleting = excluded.deleting, body = excluded.body`,
  // An update of a stored object: its uid never changes, so its index is left alone (an upsert
  // rewrote it each time: 3x the cost of the write).
  update: 'UPDATE objects SET deleting = ?, body = ? WHERE resource = ? AND namespace = ? AND name = ?',
  remove: 'DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?',
  uidExists: 'SELECT 1 FROM objects WHERE uid = ?',
  deleting: 'SELECT resource, namespace, name FROM objects WHERE deleting = 1 ORDER BY resource, namespace, name',
  byUid: 'SELECT resource, namespace, name, deleting FROM objects WHERE uid = ?',
  liveInNamespace: 'SELECT name FROM objects WHERE resource = ? AND namespace = ? AND deleting = 0 ORDER BY name',
  anyInNamespace: 'SELECT 1 FROM objects WHERE resource = ? AND namespace = ? LIMIT 1',
  clearOwners: 'DELETE FROM owner_refs WHERE resource = ? AND namespace = ? AND name = ?',
  addOwner: 'INSERT OR IGNORE INTO owner_refs (owner_uid, resource, namespace, name) VALUES (?, ?, ?, ?)',
  dependents: 'SELECT resource, namespace, name FROM owner_refs WHERE owner_uid = ? ORDER BY resource, namespace, name',
  ownersLive: `SELECT COUNT(*) AS owners, COUNT(o.uid) AS live FROM owner_refs r LEFT JOIN objects o ON o.uid = r.owner_uid
               WHERE r.resource = ? AND r.namespace = ? AND r.name = ?`,
  orphans: `SELECT DISTINCT d.resource, d.namespace, d.name FROM owner_refs d
            WHERE NOT EXISTS (
              SELECT 1 FROM owner_refs r JOIN objects o ON o.uid = r.owner_uid
              WHERE r.resource = d.resource AND r.namespace = d.namespace AND r.name = d.name)
            ORDER BY d.resource, d.namespace, d.name`,
  appendEvent: 'INSERT INTO events (rv, resource, namespace, type, object, previous) VALUES (?, ?, ?, ?, ?, ?)',
  eventsAfter: 'SELECT rv, resource, namespace, type, object, previous FROM events WHERE rv > ? AND resource = ? ORDER BY rv',
  oldestEvent: 'SELECT MIN(rv) AS rv FROM events',
  pruneEvents: 'DELETE FROM events WHERE rv <= ?',
} as const;

type StatementName = keyof typeof SQL;

/** A write failed in a way that took the transaction (and the writes before it in it) down. */
export class BrokenTransactionError extends Error {
  constructor(cause: unknown, undo?: unknown) {
    super(`the store's transaction was lost: ${cause instanceof Error ? cause.message : String(cause)}${undo instanceof Error ? ` (undo: ${undo.message})` : ''}`, { cause });
    this.name = 'BrokenTransactionError';
  }
}

export class Database {
  private readonly db: DatabaseSync;
  private readonly stmt: Record<StatementName, StatementSync>;
  private readonly lock: FileLock | undefined;

  /**
   * `syncOnCommit` false: COMMIT writes the WAL without syncing it (synchronous=NORMAL), and the
   * caller makes it durable itself (wal-sync.ts does, off the event loop).
   */
  constructor(path: string, options: { syncOnCommit?: boolean } = {}) {
    // One process at a time (file-lock.ts): SQLite's own locks admit the checkpointer's connection.
    const onFile = path !== ':memory:' && path !== '';
    try {
      this.lock = onFile ? lockFile(path) : undefined;
    } catch (err) {
      throw err instanceof FileLockedError ? new Error(`the store ${path} is in use by another process`, { cause: err }) : err;
    }
    this.db = new DatabaseSync(path);
    try {
      // WAL + synchronous=FULL: a commit returns only after the WAL is fsynced, so an
      // acknowledged write survives kill -9 and power loss. With NORMAL the store acknowledges a
      // write only once wal-sync.ts has synced the WAL after its commit: the same guarantee.
      // Checkpoints (copying the WAL into the database; each syncs the WAL first) are made by
      // this connection every 1000 pages, or by the checkpointer's thread (checkpointer.ts) while
      // the store is busy.
      this.db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${options.syncOnCommit === false ? 'NORMAL' : 'FULL'};`);
      this.db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`);
      if (this.objectsWithoutRowid()) this.db.exec(`BEGIN IMMEDIATE; ${MIGRATE_OBJECTS_TO_ROWID} COMMIT;`);
    } catch (err) {
      this.db.close();
      this.lock?.release();
      // A store locked by SQLite itself: a stowage from before file-lock.ts has it open.
      const busy = err instanceof Error && /locked|busy/i.test(err.message);
      throw busy ? new Error(`the store ${path} is in use by another process`, { cause: err }) : err;
    }
    this.stmt = Object.fromEntries(Object.entries(SQL).map(([name, sql]) => [name, this.db.prepare(sql)])) as Record<StatementName, StatementSync>;
  }

  /** Sets the WAL size (pages) at which a commit of this connection checkpoints (SQLite's wal_autocheckpoint). */
  setAutoCheckpoint(pages: number): void {
    this.db.exec(`PRAGMA wal_autocheckpoint = ${Math.max(0, Math.trunc(pages))}`);
  }

  /** Whether the objects table has the layout of stores made before 2026-12 (WITHOUT ROWID). */
  objectsWithoutRowid(): boolean {
    const row = this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'objects'").get() as { sql: string } | undefined;
    return row !== undefined && /WITHOUT\s+ROWID/i.test(row.sql);
  }

  /**
   * Transactions are driven by the store (group commit): begin() opens one, every write inside
   * it is a savepoint (writeStep) so that a failed write undoes only itself, and commit() makes
   * all of them durable with one fsync (or, without syncOnCommit, writes them for the caller to sync).
   */
  begin(): void {
    this.run('begin');
  }

  commit(): void {
    this.run('commit');
  }

  rollback(): void {
    this.run('rollback');
  }

  /** Whether a transaction is open (SQLite ends one by itself after some errors, e.g. I/O or full disk). */
  get inTransaction(): boolean {
    return this.db.isTransaction;
  }

  /**
   * Runs fn as one step of the open transaction: all of its statements or none of them. If the
   * step fails and cannot be undone on its own, the error is a BrokenTransactionError.
   */
  writeStep(fn: () => void): void {
    this.run('savepoint');
    try {
      fn();
    } catch (err) {
      try {
        this.run('rollbackToSavepoint');
        this.run('release');
      } catch (undo) {
        throw new BrokenTransactionError(err, undo);
      }
      if (!this.db.isTransaction) throw new BrokenTransactionError(err);
      throw err;
    }
    this.run('release');
  }

  close(): void {
    try {
      this.db.close();
    } finally {
      this.lock?.release();
    }
  }

  private run(name: StatementName, ...params: (string | number | null)[]): void {
    this.stmt[name].run(...params);
  }

  counter(name: string): number {
    const row = this.stmt.getCounter.get(name) as { value: number } | undefined;
    return row?.value ?? 0;
  }

  setCounter(name: string, value: number): void {
    this.run('setCounter', name, value);
  }

  get(key: ObjectKey): string | undefined {
    const row = this.stmt.get.get(key.resource, key.namespace, key.name) as { body: string } | undefined;
    return row?.body;
  }

  /** Bodies of one resource, in one namespace or all, ordered by namespace then name. */
  list(resource: string, namespace: string | undefined): string[] {
    const rows = namespace === undefined ? this.stmt.listAll.all(resource) : this.stmt.listNamespace.all(resource, namespace);
    return (rows as { body: string }[]).map((r) => r.body);
  }

  /** Stores the object; `stored`: it is stored already, under the same uid (an update). */
  put(key: ObjectKey, uid: string, deleting: boolean, body: string, stored = false): void {
    if (stored && this.stmt.update.run(deleting ? 1 : 0, body, key.resource, key.namespace, key.name).changes === 1) return;
    this.run('put', key.resource, key.namespace, key.name, uid, deleting ? 1 : 0, body);
  }

  remove(key: ObjectKey): void {
    this.run('remove', key.resource, key.namespace, key.name);
    this.run('clearOwners', key.resource, key.namespace, key.name);
  }

  uidExists(uid: string): boolean {
    return this.stmt.uidExists.get(uid) !== undefined;
  }

  /** Objects whose deletionTimestamp is set, waiting for finalizers. */
  deleting(): ObjectKey[] {
    return this.stmt.deleting.all() as unknown as ObjectKey[];
  }

  /** The object with this uid, and whether it is being deleted. */
  byUid(uid: string): (ObjectKey & { deleting: number }) | undefined {
    return this.stmt.byUid.get(uid) as (ObjectKey & { deleting: number }) | undefined;
  }

  /** Objects of a resource in a namespace that are not already being deleted. */
  liveInNamespace(resource: string, namespace: string): string[] {
    return (this.stmt.liveInNamespace.all(resource, namespace) as { name: string }[]).map((r) => r.name);
  }

  anyInNamespace(resource: string, namespace: string): boolean {
    return this.stmt.anyInNamespace.get(resource, namespace) !== undefined;
  }

  setOwners(key: ObjectKey, ownerUids: readonly string[]): void {
    this.run('clearOwners', key.resource, key.namespace, key.name);
    for (const uid of ownerUids) this.run('addOwner', uid, key.resource, key.namespace, key.name);
  }

  dependentsOf(uid: string): ObjectKey[] {
    return this.stmt.dependents.all(uid) as unknown as ObjectKey[];
  }

  /** Whether the object has owner references and none of them names an existing object. */
  isOrphan(key: ObjectKey): boolean {
    const row = this.stmt.ownersLive.get(key.resource, key.namespace, key.name) as { owners: number; live: number };
    return row.owners > 0 && row.live === 0;
  }

  /** Objects with owner references none of which names an existing object. */
  orphans(): ObjectKey[] {
    return this.stmt.orphans.all() as unknown as ObjectKey[];
  }

  appendEvent(row: EventRow): void {
    this.run('appendEvent', row.rv, row.resource, row.namespace, row.type, row.object, row.previous);
  }

  eventsAfter(rv: number, resource: string): EventRow[] {
    return this.stmt.eventsAfter.all(rv, resource) as unknown as EventRow[];
  }

  /** The oldest resourceVersion still in the event log, if any. */
  oldestEvent(): number | undefined {
    const row = this.stmt.oldestEvent.get() as { rv: number | null };
    return row.rv ?? undefined;
  }

  pruneEventsThrough(rv: number): void {
    this.run('pruneEvents', rv);
  }
}
