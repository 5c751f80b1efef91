/**
 * How the cephfs backend waits on the mgr (a clone being copied, a cancelled clone stopping):
 * until the answer is settled, the caller is gone or a limit passes, asking less and less often,
 * never in a busy loop. A fake clock and sleep make the intervals exact; one case uses real time
 * to show that a caller going away ends a sleep at once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pollUntil, type PollOptions } from '../../src/driver/backends/cephfs/poll.js';

type State = 'pending' | 'in-progress' | 'complete' | undefined;

/** A scripted poll (the last answer repeats), a fake clock advanced only by the fake sleep. */
function script(answers: State[], opts: { abortAfterSleeps?: number } = {}) {
  let clock = 0;
  let i = 0;
  const sleeps: number[] = [];
  const abort = new AbortController();
  const poll = async () => answers[Math.min(i++, answers.length - 1)];
  const fake: Pick<PollOptions, 'now' | 'sleep' | 'signal'> = {
    now: () => clock,
    signal: abort.signal,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
      if (opts.abortAfterSleeps !== undefined && sleeps.length >= opts.abortAfterSleeps) abort.abort();
    },
  };
  return { poll, fake, sleeps, polls: () => i };
}

const running = (s: State) => s === 'pending' || s === 'in-progress';

describe('pollUntil: waiting on the mgr', () => {
  const table: {
    what: string;
    answers: State[];
    limitMs: number;
    abortAfterSleeps?: number;
    want: { settled: boolean; gaveUp?: 'caller' | 'limit'; value: State; sleeps: number[] };
  }[] = [
    { what: 'already settled: one question, no sleep', answers: ['complete'], limitMs: 60_000, want: { settled: true, value: 'complete', sleeps: [] } },
    { what: 'gone (undefined) counts as settled', answers: [undefined], limitMs: 60_000, want: { settled: true, value: undefined, sleeps: [] } },
    {
      what: 'settles after a few polls; the interval grows by half each time',
      answers: ['pending', 'pending', 'in-progress', 'in-progress', 'complete'],
      limitMs: 60_000,
      want: { settled: true, value: 'complete', sleeps: [100, 150, 225, 337.5] },
    },
    {
      what: 'the interval stops growing at 2 s',
      answers: [...Array<State>(12).fill('in-progress'), 'complete'],
      limitMs: 600_000,
      want: { settled: true, value: 'complete', sleeps: [100, 150, 225, 337.5, 506.25, 759.375, 1139.0625, 1708.59375, 2000, 2000, 2000, 2000] },
    },
    {
      what: 'the limit ends the wait, the last sleep cut to what is left',
      answers: ['in-progress'],
      limitMs: 600,
      want: { settled: false, gaveUp: 'limit', value: 'in-progress', sleeps: [100, 150, 225, 125] },
    },
    {
      what: 'the caller going away ends the wait, unsettled',
      answers: ['pending'],
      limitMs: 60_000,
      abortAfterSleeps: 2,
      want: { settled: false, gaveUp: 'caller', value: 'pending', sleeps: [100, 150] },
    },
  ];
  for (const c of table) {
    it(c.what, async () => {
      const s = script(c.answers, c.abortAfterSleeps === undefined ? {} : { abortAfterSleeps: c.abortAfterSleeps });
      const r = await pollUntil(s.poll, (v) => !running(v), { ...s.fake, limitMs: c.limitMs });
      assert.equal(r.settled, c.want.settled);
      assert.equal(r.gaveUp, c.want.gaveUp);
      assert.equal(r.value, c.want.value);
      assert.deepEqual(s.sleeps, c.want.sleeps);
      assert.equal(r.polls, s.polls());
      assert.equal(r.polls, c.want.sleeps.length + 1, 'one question per sleep, plus the first');
    });
  }

  it('a caller that goes away mid-sleep ends the wait at once (real timers)', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const started = Date.now();
    const r = await pollUntil(async () => 'pending' as State, (v) => !running(v), { signal: abort.signal, limitMs: 60_000, firstIntervalMs: 10_000 });
    const took = Date.now() - started;
    assert.equal(r.gaveUp, 'caller');
    assert.ok(took < 2_000, `took ${took} ms; the 10 s sleep should have been cut short`);
  });

  it('a failing poll is the caller’s error, not a settled answer', async () => {
    await assert.rejects(
      pollUntil(async () => { throw new Error('mgr down'); }, () => true, { limitMs: 1_000 }),
      /mgr down/,
    );
  });
});
