// Durability under kill -9: a child process writes as fast as it can and reports each write on a
// pipe only after store.create/update has returned (i.e. after the fsynced commit). The child is
// killed with SIGKILL at a random moment; on reopening, every reported write must be there.
// Several rounds run against the same file, so recovery of a killed store is tested too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { open } from '../../src/control/store/store.js';

const STORE_MODULE = new URL('../../src/control/store/store.js', import.meta.url).href;

/** The writer: creates claim <round>-<i>, reports "c <name>", marks it Bound, reports "u <name>". */
const CHILD = `
import { writeSync } from 'node:fs';
const { open } = await import(process.env.STORE_MODULE);
const store = open(process.env.STORE_PATH);
const ack = (line) => {
  const buf = Buffer.from(line + '\\n');
  for (let off = 0; off < buf.length; ) {
    try { off += writeSync(3, buf, off); } catch (err) { if (err.code !== 'EAGAIN') throw err; }
  }
};
for (let i = 0; ; i++) {
  const name = process.env.ROUND + '-' + i;
  const pvc = store.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
  ack('c ' + name);
  store.update({ ...pvc, status: { phase: 'Bound' } }, { subresource: 'status' });
  ack('u ' + name);
}
`;

interface Round {
  created: string[];
  updated: string[];
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
    for (let round = 1; round <= 3; round++) {
      const acked = await runAndKill(path, round);
      assert.ok(acked.created.length > 0, 'the writer made progress before the kill');
      const store = open(path);
      try {
        for (const name of acked.created) assert.ok(store.get('persistentvolumeclaims', 'default', name), `acknowledged create of ${name} survived`);
        for (const name of acked.updated) {
          assert.equal(store.get('persistentvolumeclaims', 'default', name)?.status?.phase, 'Bound', `acknowledged update of ${name} survived`);
        }
        // Nothing half-written either: every stored claim of the round is complete and valid.
        const stored = store.list('persistentvolumeclaims').items.filter((o) => o.metadata.name?.startsWith(`${round}-`));
        assert.ok(stored.length >= acked.created.length && stored.length <= acked.created.length + 1);
        const rvs = store.list('persistentvolumeclaims').items.map((o) => Number(o.metadata.resourceVersion));
        assert.ok(Math.max(...rvs) <= Number(store.resourceVersion), 'the resourceVersion counter survived with the objects');
        total += acked.created.length + acked.updated.length;
      } finally {
        store.close();
      }
    }
    t.diagnostic(`${total} acknowledged writes over 3 SIGKILLed writers, all present after reopening`);
  });
});
