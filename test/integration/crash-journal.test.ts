/**
 * Crash safety of the record journal itself (src/driver/records.ts, the local backend's store of
 * names and IDs): a child process puts, updates and removes records as fast as it can, 8 at a
 * time, large enough to span pages and often enough to compact the journal while it runs, and
 * prints each change the store acknowledged; it is SIGKILLed at random points. Reopening must show
 * every acknowledged change (the last acknowledged version of each record, and none of the
 * acknowledged removals), never a torn record, and no temp file. (STOWAGE_CRASH_SEED reseeds.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { RecordStore } from '../../src/driver/records.js';

interface Rec {
  id: string;
  name: string;
  version: number;
  pad: string;
}

const SEED = Number(process.env['STOWAGE_CRASH_SEED'] ?? 0x5eed);
const storeModule = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'driver', 'records.js')).href;

/**
 * The writer: 8 workers, each with its own 5 records (so the order of changes to one record is
 * the order of its acknowledgements); every 7th change of a worker is a removal.
 */
const WRITER = `
const { RecordStore } = await import(${JSON.stringify(storeModule)});
const [dir, round] = process.argv.slice(1);
const store = await RecordStore.open(dir);
const pad = 'x'.repeat(3000);
async function worker(w) {
  for (let k = 0; ; k++) {
    const id = 'w' + w + '-' + (k % 5);
    if (k % 7 === 6) {
      await store.remove(id);
      process.stdout.write('del ' + w + ' ' + k + ' ' + id + '\\n');
    } else {
      const version = Number(round) * 1e6 + k;
      await store.put({ id, name: 'name-' + id, version, pad });
      process.stdout.write('put ' + w + ' ' + k + ' ' + id + ' ' + version + '\\n');
    }
  }
}
process.stdout.write('ready\\n');
await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
`;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('crash safety: the record journal under kill -9', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-journal-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('every acknowledged change survives, nothing is torn, no temp file remains', async () => {
    const next = rng(SEED);
    let totalAcks = 0;
    for (let round = 1; round <= 8; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, dir, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      while (!out.includes('ready\n')) {
        if (child.exitCode !== null) assert.fail(`writer exited early: ${err}`);
        await sleep(5);
      }
      // Up to 1.5 s: long enough for some rounds to pass a compaction (every ~1000 changes here).
      await sleep(20 + Math.floor(next() * 1500));
      child.kill('SIGKILL');
      await exited;
      assert.equal(err, '', 'the writer printed no error');

      const acked = out.split('\n').filter((l) => l.startsWith('put ') || l.startsWith('del '));
      totalAcks += acked.length;
      /** Per record, what its last acknowledged change left: a version, or null (removed). */
      const expected = new Map<string, number | null>();
      /** Per worker, the index of its last acknowledged change: the one after it may have landed too. */
      const lastK = new Map<number, number>();
      for (const line of acked) {
        const [op, w, k, id, v] = line.split(' ') as [string, string, string, string, string?];
        expected.set(id, op === 'put' ? Number(v) : null);
        lastK.set(Number(w), Number(k));
      }
      const inFlight = new Set([...lastK].map(([w, k]) => `w${w}-${(k + 1) % 5}`));

      const leftover = (await readdir(dir)).filter((f) => f !== 'journal.log');
      assert.ok(leftover.every((f) => f.endsWith('.tmp')), `only a compaction temp file may be left by a kill: ${leftover.join(', ')}`);
      const store = await RecordStore.open<Rec>(dir);
      try {
        assert.deepEqual(await readdir(dir), ['journal.log'], 'opening removes temp files');
        for (const rec of store.list()) {
          assert.equal(rec.name, `name-${rec.id}`, 'records are never torn');
          assert.equal(rec.pad.length, 3000, 'records are never torn');
          assert.equal(store.byName(rec.name)?.id, rec.id);
        }
        for (const [id, version] of expected) {
          const rec = store.get(id);
          if (inFlight.has(id)) {
            // Its next change may or may not have landed: the acknowledged state or a newer one.
            if (rec && version !== null) assert.ok(rec.version >= version, `record ${id}: version ${rec.version} is not older than the acknowledged ${version}`);
            continue;
          }
          if (version === null) assert.equal(rec, undefined, `record ${id}: its acknowledged removal stands`);
          else assert.equal(rec?.version, version, `record ${id}: the last acknowledged version ${version} is what is stored`);
        }
      } finally {
        await store.close();
      }
      process.stdout.write(`# round ${round}: ${acked.length} acknowledged changes before the kill\n`);
    }
    assert.ok(totalAcks > 1000, `the writer got real work done before the kills (${totalAcks} changes)`);
  });

  it('a torn last line (power loss mid-append) is dropped, a corrupt middle line refuses to open', async () => {
    const d = await mkdtemp(join(tmpdir(), 'stowage-journal-torn-'));
    try {
      const store = await RecordStore.open<Rec>(d);
      await store.put({ id: 'a', name: 'a', version: 1, pad: '' });
      await store.put({ id: 'b', name: 'b', version: 1, pad: '' });
      await store.close();
      const { appendFile, readFile } = await import('node:fs/promises');
      await appendFile(join(d, 'journal.log'), '{"put":{"id":"c","name":"c","vers');
      const reopened = await RecordStore.open<Rec>(d);
      assert.deepEqual(reopened.list().map((r) => r.id), ['a', 'b']);
      await reopened.close();
      const text = await readFile(join(d, 'journal.log'), 'utf8');
      assert.ok(text.endsWith('\n') && !text.includes('"c"'), 'the torn line is gone from the file');
      await writeFile(join(d, 'journal.log'), `not json\n${text}`);
      await assert.rejects(RecordStore.open<Rec>(d), /corrupt/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
