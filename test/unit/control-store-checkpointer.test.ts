// Checkpoints off the event loop (checkpointer.ts) and one process per store file (file-lock.ts),
// on real files: a store that keeps writing starts a thread that copies the WAL into the
// database while writes go on, the thread goes away when the store idles, closing leaves only the
// database file, and everything written is there on reopening. A second process opening the
// same store is refused while the first has it, and may open it once the first has closed it or
// has been killed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigMap } from '../../src/control/api/types/core.js';
import { BACKSTOP_PAGES, Checkpointer, DEFAULT_AUTOCHECKPOINT_PAGES } from '../../src/control/store/checkpointer.js';
import { open, type Store } from '../../src/control/store/store.js';

const STORE_MODULE = new URL('../../src/control/store/store.js', import.meta.url).href;

function configMap(name: string): ConfigMap {
  // ~4 KiB each: a few hundred of them fill well past a checkpoint's worth of pages.
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' }, data: { blob: `${name}:`.padEnd(4096, 'x') } };
}

/** Writes `turns` turns of `perTurn` configmaps, each turn flushed (its own commit). */
async function writeTurns(store: Store, prefix: string, turns: number, perTurn: number): Promise<string[]> {
  const names: string[] = [];
  for (let t = 0; t < turns; t++) {
    for (let k = 0; k < perTurn; k++) {
      const name = `${prefix}-${t}-${k}`;
      store.create(configMap(name));
      names.push(name);
    }
    await store.flushed();
  }
  return names;
}

/** Runs a second process that opens the store and reports "opened" or the error's message. */
function openInChild(path: string): Promise<string> {
  const script = `
const { open } = await import(process.env.STORE_MODULE);
try { open(process.env.STORE_PATH).close(); process.stdout.write('opened'); }
catch (err) { process.stdout.write(err.message); }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, STORE_MODULE, STORE_PATH: path },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', () => resolve(out));
  });
}

describe('store: checkpoints on a thread of their own', () => {
  let dir: string;
  let path: string;
  let store: Store | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-checkpointer-'));
    path = join(dir, 'store.db');
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies the WAL into the database from its thread while the store writes, and stops when idle', async () => {
    store = open(path, { checkpointThread: { commitsPerSecond: 8, intervalMs: 0, idleMs: 300 } });
    const before = statSync(path).size;
    const first = await writeTurns(store, 'a', 100, 4);
    const busy = store.checkpointThread;
    assert.equal(busy.started, 1, 'a store committing 100 times in a row starts one thread');
    assert.ok(busy.running);
    // Give the thread's last asked-for checkpoint time to land.
    for (let i = 0; i < 50 && store.checkpointThread.checkpoints === 0; i++) await sleep(20);
    assert.ok(store.checkpointThread.checkpoints > 0, 'the thread made checkpoints');
    assert.equal(store.checkpointThread.lastError, undefined);
    // The store's own connection checkpoints only past 10 000 pages now: what grew the database
    // file (400 configmaps of 4 KiB, well past SQLite's default 1000 pages) is the thread's work.
    assert.ok(statSync(path).size > before + 1024 * 1024, `the database file grew from ${before} to ${statSync(path).size} bytes`);

    // Idle: the thread goes; the store checkpoints by itself again and keeps working.
    for (let i = 0; i < 100 && store.checkpointThread.running; i++) await sleep(20);
    assert.equal(store.checkpointThread.running, false, 'the thread is closed after idleMs without commits');
    const second = await writeTurns(store, 'b', 3, 2);
    assert.equal(store.checkpointThread.running, false, 'a few commits do not start it again');

    store.close();
    store = undefined;
    // The store's connection was the last one: it removed the WAL and shared-memory files.
    assert.deepEqual(readdirSync(dir), ['store.db']);
    const reopened = open(path);
    try {
      for (const name of [...first, ...second]) assert.equal(reopened.get('configmaps', 'default', name)?.data?.blob?.startsWith(`${name}:`), true, name);
    } finally {
      reopened.close();
    }
  });

  it('closes while its thread is running, leaving only the database file', async () => {
    store = open(path, { checkpointThread: { commitsPerSecond: 1, intervalMs: 0 } });
    const names = await writeTurns(store, 'c', 20, 8);
    assert.ok(store.checkpointThread.running);
    // Writes of this turn are not committed yet: close commits them first.
    store.create(configMap('last'));
    store.close();
    store = undefined;
    assert.equal(existsSync(`${path}-wal`), false);
    assert.equal(existsSync(`${path}-shm`), false);
    const reopened = open(path);
    try {
      for (const name of [...names, 'last']) assert.ok(reopened.get('configmaps', 'default', name), name);
    } finally {
      reopened.close();
    }
  });

  it('never starts a thread for a store that writes seldom, or when told not to', async () => {
    store = open(path);
    await writeTurns(store, 'd', 5, 1);
    assert.deepEqual(store.checkpointThread, { started: 0, checkpoints: 0, running: false, lastError: undefined });
    store.close();
    store = open(path, { checkpointThread: false });
    await writeTurns(store, 'e', 60, 1);
    assert.equal(store.checkpointThread.started, 0);
  });
});

describe('checkpointer: a thread that fails', () => {
  it('hands checkpoints back to the connection of the store, says why, and is not started again at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stowage-checkpointer-fail-'));
    try {
      // Not a database: the thread's connection fails as it starts.
      const path = join(dir, 'garbage.db');
      writeFileSync(path, 'this is not a database '.repeat(200));
      const pages: number[] = [];
      const c = new Checkpointer(path, { setAutoCheckpoint: (n) => pages.push(n) }, { commitsPerSecond: 1, intervalMs: 0 });
      c.committed();
      assert.equal(c.running, true);
      assert.deepEqual(pages, [BACKSTOP_PAGES]);
      for (let i = 0; i < 250 && c.running; i++) await sleep(20);
      assert.equal(c.running, false, 'the failed thread is gone');
      assert.deepEqual(pages, [BACKSTOP_PAGES, DEFAULT_AUTOCHECKPOINT_PAGES], "the store's connection checkpoints by itself again");
      assert.match(c.lastError ?? '', /not a database/);
      for (let i = 0; i < 10; i++) c.committed();
      assert.equal(c.threadsStarted, 1, 'not started again right away');
      c.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('store: one process per file', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'stowage-store-lock-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a second process while the store is open, and lets it in after close', async () => {
    const path = join(dir, 'store.db');
    const store = open(path);
    try {
      store.create(configMap('held'));
      store.flushSync();
      assert.match(await openInChild(path), /^the store .*store\.db is in use by another process$/);
      // Refused before touching anything: the store is unharmed and still writes.
      store.create(configMap('after'));
      store.flushSync();
    } finally {
      store.close();
    }
    assert.equal(await openInChild(path), 'opened');
  });

  it('lets a new process in once the holder is killed with SIGKILL', async () => {
    const path = join(dir, 'store.db');
    const holder = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const { open } = await import(process.env.STORE_MODULE); open(process.env.STORE_PATH); process.stdout.write('open'); setInterval(() => {}, 1000);`],
      { env: { ...process.env, STORE_MODULE, STORE_PATH: path }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    try {
      assert.throws(() => open(path), /in use by another process/);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    const store = open(path);
    store.close();
  });
});
