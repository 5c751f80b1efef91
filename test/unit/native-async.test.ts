// Native calls on koffi's worker threads: koffi refuses more than max_async_calls (256) running
// and queued at once; runAsync keeps the excess waiting in JavaScript instead, so a driver under
// load waits rather than failing a call with INTERNAL "Too many asynchronous calls are running".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import koffi from 'koffi';
import { asyncLoad, MAX_IN_FLIGHT, runAsync } from '../../src/driver/mount/native-async.js';

const libc = koffi.load('libc.so.6');
const usleep = libc.func('int usleep(uint32_t usec)');
const close = libc.func('int close(int fd)');

describe('native calls on worker threads', () => {
  it('koffi alone refuses a burst past its queue (what runAsync exists for)', async () => {
    const settled: Promise<unknown>[] = [];
    let refused: unknown;
    try {
      for (let i = 0; i < 600; i++) {
        let done: (v: unknown) => void = () => undefined;
        settled.push(new Promise((resolve) => (done = resolve)));
        usleep.async(1000, done);
      }
    } catch (e) {
      refused = e;
    }
    // The calls koffi took run to the end; the one it refused (and any after) never settles.
    await Promise.all(settled.slice(0, settled.length - 1));
    assert.match(String(refused), /Too many asynchronous calls/);
  });

  it('runs a burst of 2000 calls to the end, never more than MAX_IN_FLIGHT at once', async () => {
    let peak = 0;
    const calls = Array.from({ length: 2000 }, () =>
      runAsync<number>(usleep, [200]).then((r) => {
        peak = Math.max(peak, asyncLoad().inFlight);
        return r;
      }),
    );
    peak = Math.max(peak, asyncLoad().inFlight);
    assert.equal(asyncLoad().waiting, 2000 - MAX_IN_FLIGHT);
    const results = await Promise.all(calls);
    assert.equal(results.length, 2000);
    assert.ok(results.every((r) => r === 0));
    assert.ok(peak <= MAX_IN_FLIGHT, `peak ${peak}`);
    assert.deepEqual(asyncLoad(), { inFlight: 0, waiting: 0 });
  });

  it("reads the worker's errno inside the callback, and a failing settle rejects without leaking a slot", async () => {
    const errno = await runAsync<number, number>(close, [-1], (r) => (r < 0 ? koffi.errno() : 0));
    assert.equal(errno, 9, 'EBADF');
    await assert.rejects(
      runAsync<number>(close, [-1], () => {
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.deepEqual(asyncLoad(), { inFlight: 0, waiting: 0 });
  });
});
