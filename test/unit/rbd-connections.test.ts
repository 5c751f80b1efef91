// The Ceph connection cache never frees a librados client under a call that still uses it: a
// shutdown under a running call is a use-after-free that takes the whole driver process down
// (seen as a test process dying mid-suite with its dev cluster left running).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Connections } from '../../src/driver/backends/ceph/connections.js';
import type { Rados } from '../../src/driver/backends/ceph/rados.js';

function fakeRados(log: string[]): Rados {
  return {
    shutdown: async () => {
      log.push('shutdown');
      return true;
    },
  } as unknown as Rados;
}

describe('Ceph connections at close', () => {
  it('waits for a running call before shutting its connection down, and refuses new calls', async () => {
    const log: string[] = [];
    const conns = new Connections(10, 60_000, async () => fakeRados(log));
    let finish = (): void => undefined;
    const call = conns.with(['mon'], 'admin', 'key', async () => {
      log.push('call started');
      await new Promise<void>((resolve) => (finish = resolve));
      log.push('call done');
    });
    await new Promise((r) => setImmediate(r));
    const closed = conns.close(5_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(log, ['call started'], 'nothing shut down while the call runs');
    await assert.rejects(conns.with(['mon'], 'admin', 'key', async () => undefined), /shutting down/);
    finish();
    await call;
    assert.equal(await closed, 0);
    assert.deepEqual(log, ['call started', 'call done', 'shutdown']);
  });

  it('leaves a connection open rather than free it under a call that outlives the wait', async () => {
    const log: string[] = [];
    const conns = new Connections(10, 60_000, async () => fakeRados(log));
    let finish = (): void => undefined;
    const call = conns.with(['mon'], 'admin', 'key', () => new Promise<void>((resolve) => (finish = resolve)));
    await new Promise((r) => setImmediate(r));
    assert.equal(await conns.close(30), 1, 'one connection left open');
    assert.deepEqual(log, []);
    finish();
    await call;
  });

  it('shuts idle connections down at once', async () => {
    const log: string[] = [];
    const conns = new Connections(10, 60_000, async () => fakeRados(log));
    await conns.with(['mon'], 'admin', 'key', async () => undefined);
    await conns.with(['mon2'], 'admin', 'key', async () => undefined);
    assert.equal(await conns.close(5_000), 0);
    assert.deepEqual(log, ['shutdown', 'shutdown']);
  });
});
