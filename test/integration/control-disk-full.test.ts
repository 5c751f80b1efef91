// The state dir's disk fills up under the control plane (issue 11's environment fault). The state
// dir is a small tmpfs of its own (a real ENOSPC, nothing else on the host fills), filled with a
// file once some objects are stored. Then:
//   - writes fail with a clear API error: 503 ServiceUnavailable saying the disk is full (the
//     store refuses a write it has no room for before anyone sees it), never a silent success or
//     a hang; reads are still served;
//   - service resumes once space returns, without a restart;
//   - nothing acknowledged is lost: everything is read back after a restart.
// And the last line, when the space check is off (or someone else fills the disk between the
// check and the commit): the commit fails, the request gets a 500 naming the full disk, the
// control plane stops serving, and a restart resumes from what was committed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { ConfigMap } from '../../src/control/api/types/core.js';
import type { KubeList, Status } from '../../src/control/api/types/meta.js';
import { type ControlPlane, SERVER_INFO_FILE, startControlPlane } from '../../src/control/control-plane.js';
import type { StoreOptions } from '../../src/control/store/store.js';
import { needsRoot } from '../support/driver-harness.js';

const CONFIGMAPS = '/api/v1/namespaces/default/configmaps';
/** Big enough that a few dozen writes fill what the filler leaves, small enough to be quick. */
const TMPFS_SIZE = '8m';

function configMap(name: string, size: number): ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { blob: name.repeat(Math.ceil(size / name.length)).slice(0, size) } };
}

interface Reply<T> {
  status: number;
  body: T;
}

/** A request; a connection the server closed (it stopped serving) is status 0. */
async function call<T = Status>(base: string, method: string, path: string, body?: unknown): Promise<Reply<T>> {
  try {
    const res = await fetch(base + path, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, body: (await res.json()) as T };
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw err;
    return { status: 0, body: { message: String((err as Error).cause ?? err) } as T };
  }
}

/** Fills the filesystem with one file until ENOSPC; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  try {
    for (;;) {
      try {
        writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
    // The last partial chunk too: nothing left at all.
    for (let size = 32 * 1024; size >= 1; size = Math.floor(size / 2)) {
      try {
        writeSync(fd, chunk.subarray(0, size));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

describe('control plane: the state dir runs out of space', { skip: needsRoot, timeout: 300_000 }, () => {
  let base: string;
  let stateDir: string;
  let mounted = false;
  let cp: ControlPlane | undefined;
  const log = pino({ level: 'silent' });
  const start = async (store?: StoreOptions): Promise<ControlPlane> => {
    cp = await startControlPlane({ stateDir, listen: 'http://127.0.0.1:0', logger: log, controllers: { resyncMs: 60_000 }, ...(store === undefined ? {} : { store }) });
    return cp;
  };

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'stowage-disk-full-'));
    stateDir = join(base, 'state');
    mkdirSync(stateDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'stowage-disk-full', stateDir]);
    mounted = true;
  });

  after(async () => {
    await cp?.stop().catch(() => undefined);
    if (mounted) execFileSync('umount', [stateDir]);
    rmSync(base, { recursive: true, force: true });
  });

  /** Writes until one is refused; returns the refusal. Acknowledged writes are recorded. */
  const writeUntilRefused = async (url: string, prefix: string, acknowledged: Map<string, string>): Promise<Reply<Status>> => {
    for (let i = 0; i < 400; i++) {
      const cm = configMap(`${prefix}-${i}`, 32 * 1024);
      const reply = await call<ConfigMap | Status>(url, 'POST', CONFIGMAPS, cm);
      if (reply.status !== 201) return reply as Reply<Status>;
      acknowledged.set(cm.metadata.name ?? '', cm.data?.['blob'] ?? '');
    }
    assert.fail('no write was refused on a full disk');
  };

  const assertAllThere = async (url: string, acknowledged: Map<string, string>): Promise<void> => {
    const list = await call<KubeList<ConfigMap>>(url, 'GET', CONFIGMAPS);
    assert.equal(list.status, 200);
    const stored = new Map(list.body.items.map((c) => [c.metadata.name ?? '', c.data?.['blob'] ?? '']));
    for (const [name, blob] of acknowledged) assert.equal(stored.get(name), blob, `${name} was acknowledged and must be there`);
  };

  const acknowledged = new Map<string, string>();

  it('refuses writes with 503 while the disk is full, serves reads, and resumes by itself once space returns', async () => {
    let plane = await start();
    for (let i = 0; i < 20; i++) {
      const cm = configMap(`before-${i}`, 4096);
      const created = await call<ConfigMap>(plane.url, 'POST', CONFIGMAPS, cm);
      assert.equal(created.status, 201);
      acknowledged.set(cm.metadata.name ?? '', cm.data?.['blob'] ?? '');
    }

    const filler = fill(stateDir);
    const refused = await writeUntilRefused(plane.url, 'full', acknowledged);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.kind, 'Status');
    assert.equal(refused.body.status, 'Failure');
    assert.equal(refused.body.reason, 'ServiceUnavailable');
    assert.equal(refused.body.code, 503);
    assert.match(refused.body.message ?? '', /^the store's disk is full: \d+ bytes free in .*, a write needs \d+; writes resume once space is freed/);
    // Still refused, still nothing half-done, and reads are served all along.
    assert.equal((await call(plane.url, 'POST', CONFIGMAPS, configMap('still-full', 10))).status, 503);
    assert.equal(plane.store.failed, undefined, 'the store did not fail');
    assert.ok(existsSync(join(stateDir, SERVER_INFO_FILE)), 'the control plane still serves');
    await assertAllThere(plane.url, acknowledged);

    // Space returns: writes go through again, no restart.
    unlinkSync(filler);
    const resumed = await call<ConfigMap>(plane.url, 'POST', CONFIGMAPS, configMap('after-space', 1024));
    assert.equal(resumed.status, 201, JSON.stringify(resumed.body));
    acknowledged.set('after-space', configMap('after-space', 1024).data?.['blob'] ?? '');

    // And everything acknowledged is on disk.
    await plane.stop();
    plane = await start();
    await assertAllThere(plane.url, acknowledged);
    await plane.stop();
    cp = undefined;
  });

  it('without the space check, a commit that hits ENOSPC is a 500 naming the full disk; a restart loses nothing', async () => {
    let plane = await start({ reserveBytes: 0 });
    const filler = fill(stateDir);
    const failure = await writeUntilRefused(plane.url, 'unchecked', acknowledged);
    assert.ok(failure.status >= 500, `a full disk is the server's trouble, not the client's: ${JSON.stringify(failure)}`);
    const status = failure.body;
    assert.equal(status.kind, 'Status');
    assert.equal(status.status, 'Failure');
    assert.equal(status.code, failure.status);
    assert.match(status.message ?? '', /the store failed to commit .*: database or disk is full/);
    // Nothing is acknowledged after that: the store failed for good (watchers saw writes that
    // were never committed), and the control plane stops serving.
    const again = await call<Status>(plane.url, 'POST', CONFIGMAPS, configMap('after-failure', 10));
    assert.ok(again.status === 0 || again.status >= 500, JSON.stringify(again));
    for (let i = 0; i < 100 && existsSync(join(stateDir, SERVER_INFO_FILE)); i++) await sleep(50);
    assert.equal(existsSync(join(stateDir, SERVER_INFO_FILE)), false, 'the control plane stopped serving');
    await plane.stop();

    unlinkSync(filler);
    plane = await start();
    await assertAllThere(plane.url, acknowledged);
    assert.equal((await call<ConfigMap>(plane.url, 'POST', CONFIGMAPS, configMap('after-restart', 1024))).status, 201);
  });
});
