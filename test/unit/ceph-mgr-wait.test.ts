// How long a mgr command is waited for, and what the driver knows when it stops waiting first:
// the command may still take effect, and its answer is kept so later calls can wait for it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { awaitAnswer, unansweredIn, UnansweredMgrCommand } from '../../src/driver/backends/ceph/mgr-wait.js';
import { UnansweredCommands } from '../../src/driver/backends/cephfs/unanswered.js';

/** A native call the test answers when it likes. */
function pending<T>(): { promise: Promise<T>; answer: (v: T) => void; fail: (e: Error) => void } {
  let answer!: (v: T) => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    answer = res;
    fail = rej;
  });
  return { promise, answer, fail };
}

describe('mgr commands: waiting for the answer', () => {
  const cases: { name: string; waitMs: number; abortAfterMs?: number; abortBefore?: boolean; answerAfterMs: number; answerFails?: boolean; expect: 'value' | 'limit' | 'caller' | 'error' }[] = [
    { name: 'answered within the wait: the answer', waitMs: 200, answerAfterMs: 10, expect: 'value' },
    { name: 'an error answered within the wait: that error', waitMs: 200, answerAfterMs: 10, answerFails: true, expect: 'error' },
    { name: 'no answer within waitMs: unanswered (limit), answered later', waitMs: 30, answerAfterMs: 120, expect: 'limit' },
    { name: 'the caller gives up first: unanswered (caller), answered later', waitMs: 5_000, abortAfterMs: 30, answerAfterMs: 120, expect: 'caller' },
    { name: 'a caller already gone: unanswered (caller) at once', waitMs: 5_000, abortBefore: true, answerAfterMs: 60, expect: 'caller' },
    { name: 'an error answered after the wait: the answer still settles, never rejects', waitMs: 30, answerAfterMs: 80, answerFails: true, expect: 'limit' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const native = pending<string>();
      setTimeout(() => (c.answerFails ? native.fail(new Error('EEXIST')) : native.answer('ok')), c.answerAfterMs);
      const abort = new AbortController();
      if (c.abortBefore) abort.abort();
      if (c.abortAfterMs !== undefined) setTimeout(() => abort.abort(), c.abortAfterMs);
      let abandoned = 0;
      const started = performance.now();
      const r = await awaitAnswer(native.promise, 'mgr command "fs subvolume snapshot clone"', { waitMs: c.waitMs, signal: abort.signal, onAbandon: () => abandoned++ }).then(
        (v) => ({ v }),
        (e: unknown) => ({ e }),
      );
      const took = performance.now() - started;
      if (c.expect === 'value') {
        assert.deepEqual(r, { v: 'ok' });
        assert.equal(abandoned, 0);
        return;
      }
      if (c.expect === 'error') {
        assert.ok('e' in r && r.e instanceof Error && r.e.message === 'EEXIST', 'the mgr’s own error');
        assert.equal(abandoned, 0);
        return;
      }
      assert.ok('e' in r && r.e instanceof UnansweredMgrCommand, 'unanswered');
      const e = r.e as UnansweredMgrCommand;
      assert.equal(e.gaveUp, c.expect);
      assert.equal(e.code, 'ETIMEDOUT', 'still an ETIMEDOUT CephError for code that only knows those');
      assert.match(e.message, /may still take effect/);
      assert.ok(took < c.answerAfterMs, `gave up before the answer came (${took} ms)`);
      assert.equal(abandoned, 1);
      assert.equal(unansweredIn(new Error('wrapped', { cause: e })), e, 'found behind a cause');
      // The answer settles once the mgr answers, whatever it says.
      await e.answer;
      assert.ok(performance.now() - started >= c.answerAfterMs - 5);
    });
  }
});

describe('mgr commands left unanswered, by the ID they were sent for', () => {
  it('settle: 0 at once when none; waits for the answers; the count left when the caller gives up or the limit passes', async () => {
    const u = new UnansweredCommands();
    assert.equal(await u.settle('vol-a', { limitMs: 10 }), 0);
    const first = pending<void>();
    const second = pending<void>();
    u.add('vol-a', first.promise);
    u.add('vol-a', second.promise);
    u.add('vol-b', new Promise(() => undefined));
    assert.equal(u.count('vol-a'), 2);
    setTimeout(() => first.answer(), 20);
    assert.equal(await u.settle('vol-a', { limitMs: 150 }), 1, 'one still out after the limit');
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 20);
    assert.equal(await u.settle('vol-a', { limitMs: 5_000, signal: abort.signal }), 1, 'the caller gave up');
    setTimeout(() => second.answer(), 20);
    assert.equal(await u.settle('vol-a', { limitMs: 5_000 }), 0);
    assert.equal(u.count('vol-a'), 0);
    assert.equal(u.count('vol-b'), 1, 'another ID is not affected');
    await sleep(1);
  });
});
