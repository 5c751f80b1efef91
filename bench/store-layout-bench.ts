/**
 * The store's objects table as it is now (a rowid table; an update of a stored object an UPDATE of
 * its body) beside the table of stores made before 2026-12 (WITHOUT ROWID; every write an upsert,
 * which rewrote the uid index too), measured in the same run with the store's statements, durability
 * settings (WAL, synchronous=FULL, exclusive locking) and group commits. Not a test: it prints
 * microseconds per write (put + event + one read of another object, with the commit's share) and
 * the ratio.
 *
 * The first `objects` writes create, the rest update.
 *
 *   node dist/bench/store-layout-bench.js [--writes 30000] [--objects 15000] [--bytes 1000,2500,4000] [--per-commit 50]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const COLUMNS = `resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL UNIQUE,
  deleting INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (resource, namespace, name)`;

interface Figures {
  total: number;
  put: number;
  event: number;
  get: number;
  commit: number;
}

type Layout = 'current' | 'before';

function run(layout: Layout, bodyBytes: number, writes: number, objects: number, perCommit: number): Figures {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-layout-bench-'));
  const db = new DatabaseSync(join(dir, 'store.db'));
  try {
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA locking_mode = EXCLUSIVE;');
    db.exec(`CREATE TABLE objects (${COLUMNS}) ${layout === 'current' ? '' : 'WITHOUT ROWID'};
      CREATE TABLE events (rv INTEGER PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL, type TEXT NOT NULL, object TEXT NOT NULL, previous TEXT);`);
    const put = db.prepare(`INSERT INTO objects (resource, namespace, name, uid, deleting, body) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (resource, namespace, name) DO UPDATE SET uid = excluded.uid, deleting = excluded.deleting, body = excluded.body`);
    const update = db.prepare('UPDATE objects SET deleting = ?, body = ? WHERE resource = ? AND namespace = ? AND name = ?');
    const event = db.prepare('INSERT INTO events (rv, resource, namespace, type, object, previous) VALUES (?, ?, ?, ?, ?, ?)');
    const get = db.prepare('SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?');
    const prune = db.prepare('DELETE FROM events WHERE rv <= ?');
    // A JSON body of about the given size (a pod's shape, padded in an annotation).
    const body = (i: number): string =>
      JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `p-${i}`, namespace: 'bench', annotations: { pad: 'x'.repeat(Math.max(0, bodyBytes - 120)) } }, spec: {} });
    const f: Figures = { total: 0, put: 0, event: 0, get: 0, commit: 0 };
    const t0 = performance.now();
    db.exec('BEGIN IMMEDIATE');
    for (let i = 0; i < writes; i++) {
      const k = i % objects;
      const b = body(k);
      let a = performance.now();
      if (layout === 'current' && i >= objects) update.run(0, b, 'pods', 'bench', `p-${k}`);
      else put.run('pods', 'bench', `p-${k}`, `u-${k}`, 0, b);
      let c = performance.now();
      f.put += c - a;
      event.run(i + 1, 'pods', 'bench', i < objects ? 'ADDED' : 'MODIFIED', b, i < objects ? null : b);
      if ((i + 1) % 500 === 0) prune.run(i + 1 - 10_000);
      a = performance.now();
      f.event += a - c;
      get.get('pods', 'bench', `p-${(i * 7919) % Math.min(objects, i + 1)}`);
      c = performance.now();
      f.get += c - a;
      if (i % perCommit === perCommit - 1) {
        db.exec('COMMIT');
        db.exec('BEGIN IMMEDIATE');
        f.commit += performance.now() - c;
      }
    }
    db.exec('COMMIT');
    f.total = performance.now() - t0;
    for (const k of Object.keys(f) as (keyof Figures)[]) f[k] = (f[k] * 1000) / writes;
    return f;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      writes: { type: 'string', default: '30000' },
      objects: { type: 'string', default: '15000' },
      bytes: { type: 'string', default: '1000,2500,4000' },
      'per-commit': { type: 'string', default: '50' },
    },
  });
  const writes = Number(values.writes);
  const objects = Number(values.objects);
  const perCommit = Number(values['per-commit']);
  const fmt = (n: number): string => n.toFixed(1).padStart(7);
  process.stdout.write(`store objects table: ${writes} writes over ${objects} objects, ${perCommit} writes per commit (µs per write)\n`);
  process.stdout.write(`${'body'.padEnd(8)}${'layout'.padEnd(15)}${'total'.padStart(7)}${'put'.padStart(7)}${'event'.padStart(7)}${'get'.padStart(7)}${'commit'.padStart(7)}\n`);
  for (const bytes of (values.bytes ?? '').split(',').map(Number)) {
    // Alternated, twice each, the better of two kept: the machine's other load moves single runs.
    const best = (layout: Layout): Figures => {
      const a = run(layout, bytes, writes, objects, perCommit);
      const b = run(layout, bytes, writes, objects, perCommit);
      return a.total <= b.total ? a : b;
    };
    const old = best('before');
    const now = best('current');
    for (const [name, f] of [['before 2026-12', old], ['current', now]] as const) {
      process.stdout.write(`${`${bytes} B`.padEnd(8)}${name.padEnd(15)}${fmt(f.total)}${fmt(f.put)}${fmt(f.event)}${fmt(f.get)}${fmt(f.commit)}\n`);
    }
    process.stdout.write(`${''.padEnd(8)}current / before: write ${(now.total / old.total).toFixed(2)}x, read ${(now.get / old.get).toFixed(2)}x\n`);
  }
}

main();
