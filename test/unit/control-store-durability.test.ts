// Durability under kill -9. The store commits in groups (one transaction per turn of the event
// loop); a write is acknowledged once store.flushed() has resolved. A child process writes as fast
// as it can, in bursts of 1–20 creates (and updates of every other one) issued in one turn. Before
// a burst is flushed it reports the burst on a pipe as *issued*; after flushed() resolves, as
// *acknowledged*. The child is killed with SIGKILL at a random moment; on reopening:
//  - every acknowledged create and update is there (no acknowledged write is lost);
//  - nothing that was never issued is there, and every issued burst is all there or not at all
//    (a turn's writes commit atomically, one fsync).
// Several rounds run against the same file, so recovery of a killed store is tested too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { open } from '../../src/control/store/store.js';

const STORE_MODULE = new URL('../../src/control/store/store.js', import.meta.url).href;

/**
 * The writer. Per burst: "i <names…>" (issued: created, every other one marked Bound, not yet
 * committed), then after flushed(): "c <name>" for each create and "u <name>" for each update.
 */
const CHILD = `
import { writeSync } from 'node:fs';
const { open } = await import(process.env.STORE_MODULE);
// Checkpoints on their own thread from the first commit, as often as it can: the kill also lands
// while that thread copies the WAL into the database.
const store = open(process.env.STORE_PATH, { checkpointThread: { commitsPerSecond: 1, intervalMs: 5 } });
const report = (lines) => {
  const buf = Buffer.from(lines.join('\\n') + '\\n');
  for (let off = 0; off < buf.length; ) {
    try { off += writeSync(3, buf, off); } catch (err) { if (err.code !== 'EAGAIN') throw err; }
  }
};
for (let i = 0; ; ) {
  const burst = 1 + Math.floor(Math.random() * 20);
  const names = [];
  const acks = [];
  for (let k = 0; k < burst; k++, i++) {
    const name = process.env.ROUND + '-' + i;
    names.push(name);
    const pvc = store.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: 'default' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    acks.push('c ' + name);
    if (k % 2 === 0) {
      store.update({ ...pvc, status: { phase: 'Bound' } }, { subresource: 'status' });
      acks.push('u ' + name);
    }
  }
  report(['i ' + names.join(' ')]);
  await store.flushed();
  report([...acks, 'k ' + store.checkpointThread.checkpoints]);
}
`;

interface Round {
  created: string[];
  updated: string[];
  /** The bursts issued (each committed as a whole or not at all). */
  issued: string[][];
  /** Checkpoints the store's checkpoint thread had made at the last acknowledgement. */
  checkpoints: number;
}

function runAndKill(path: string, round: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, STORE_MODULE, STORE_PATH: path, ROUND: String(round) },
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    const acks = child.stdio[3];
    if (acks === null || acks === undefined || !('on' in acks)) {
      reject(new Error('no ack pipe'));
      return;
    }
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let text = '';
    let killTimer: NodeJS.Timeout | undefined;
    acks.on('data', (d: Buffer) => {
      text += d.toString();
      // Kill at a random moment once writes are flowing.
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), 50 + Math.floor(Math.random() * 700));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited with ${code ?? signal}: ${stderr}`));
        return;
      }
      // Only complete lines were acknowledged; a torn last line was not.
      const lines = text.split('\n').slice(0, -1);
      resolve({
        created: lines.filter((l) => l.startsWith('c ')).map((l) => l.slice(2)),
        updated: lines.filter((l) => l.startsWith('u ')).map((l) => l.slice(2)),
        issued: lines.filter((l) => l.startsWith('i ')).map((l) => l.slice(2).split(' ')),
        checkpoints: Math.max(0, ...lines.filter((l) => l.startsWith('k ')).map((l) => Number(l.slice(2)))),
      });
    });
  });
}

describe('store durability', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-durability-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loses no acknowledged write when the writer is killed with SIGKILL', async (t) => {
    const path = join(dir, 'store.db');
    let total = 0;
    let unacked = 0;
    let checkpoints = 0;
    for (let round = 1; round <= 3; round++) {
      const acked = await runAndKill(path, round);
      assert.ok(acked.created.length > 0, 'the writer made progress before the kill');
      checkpoints += acked.checkpoints;
      const store = open(path);
      try {
        for (const name of acked.created) assert.ok(store.get('persistentvolumeclaims', 'default', name), `acknowledged create of ${name} survived`);
        for (const name of acked.updated) {
          assert.equal(store.get('persistentvolumeclaims', 'default', name)?.status?.phase, 'Bound', `acknowledged update of ${name} survived`);
        }
        // Nothing half-written either: every stored claim of the round was issued, and every issued
        // burst is there completely (creates and updates) or not at all.
        const stored = new Map(
          store
            .list('persistentvolumeclaims')
            .items.filter((o) => o.metadata.name?.startsWith(`${round}-`))
            .map((o) => [o.metadata.name ?? '', o]),
        );
        const issued = new Set(acked.issued.flat());
        for (const name of stored.keys()) assert.ok(issued.has(name), `stored claim ${name} was issued`);
        for (const burst of acked.issued) {
          const present = burst.filter((name) => stored.has(name));
          assert.ok(present.length === 0 || present.length === burst.length, `burst ${burst[0]}… committed whole or not at all (${present.length}/${burst.length})`);
          if (present.length > 0) {
            burst.forEach((name, k) => {
              if (k % 2 === 0) assert.equal(stored.get(name)?.status?.phase, 'Bound', `update of ${name} committed with its burst`);
            });
          }
        }
        assert.ok(acked.issued.length >= 1);
        const rvs = store.list('persistentvolumeclaims').items.map((o) => Number(o.metadata.resourceVersion));
        assert.ok(Math.max(...rvs) <= Number(store.resourceVersion), 'the resourceVersion counter survived with the objects');
        unacked += stored.size - acked.created.length;
        total += acked.created.length + acked.updated.length;
      } finally {
        store.close();
      }
    }
    assert.ok(checkpoints > 0, 'the checkpoint threads of the writers copied the WAL into the database before the kills');
    t.diagnostic(`${total} acknowledged writes over 3 SIGKILLed writers, all present after reopening (${unacked} issued but unacknowledged creates also survived; ${checkpoints} checkpoints made on the writers' threads)`);
  });
});
