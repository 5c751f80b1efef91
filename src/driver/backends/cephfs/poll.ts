/**
 * Waiting on the mgr without busy-looping: a CephFS clone is copied by the mgr's cloner threads
 * in the background, and an RPC that waits for it asks `fs clone status` again with a growing
 * interval until it is settled, the caller is gone (the call's signal: its gRPC deadline passed or
 * it cancelled), or a limit passes. The caller decides what an unsettled answer means.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** The caller's signal: aborted, the wait ends at once (even mid-sleep). */
  signal?: AbortSignal | undefined;
  /** The longest the wait may take, whatever the signal says. */
  limitMs: number;
  /** The first interval; each next one is 1.5 times longer, up to maxIntervalMs. */
  firstIntervalMs?: number;
  maxIntervalMs?: number;
  /** For tests: the clock and the sleep (which must reject when the signal aborts). */
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
}

export interface PollResult<T> {
  /** The last answer. */
  value: T;
  /** Whether that answer is settled; if not, why the wait ended. */
  settled: boolean;
  gaveUp?: 'caller' | 'limit';
  polls: number;
}

const defaultSleep = (ms: number, signal: AbortSignal | undefined) => sleep(ms, undefined, signal ? { signal } : {});

/** Polls until settled(value), the signal aborts or limitMs passes; never more often than the interval. */
export async function pollUntil<T>(poll: () => Promise<T>, settled: (value: T) => boolean, opts: PollOptions): Promise<PollResult<T>> {
  const now = opts.now ?? Date.now;
  const pause = opts.sleep ?? defaultSleep;
  const maxInterval = opts.maxIntervalMs ?? 2_000;
  const deadline = now() + opts.limitMs;
  let interval = opts.firstIntervalMs ?? 100;
  let value = await poll();
  let polls = 1;
  for (;;) {
    if (settled(value)) return { value, settled: true, polls };
    if (opts.signal?.aborted) return { value, settled: false, gaveUp: 'caller', polls };
    const left = deadline - now();
    if (left <= 0) return { value, settled: false, gaveUp: 'limit', polls };
    try {
      await pause(Math.min(interval, left), opts.signal);
    } catch (e) {
      if (opts.signal?.aborted) return { value, settled: false, gaveUp: 'caller', polls };
      throw e;
    }
    interval = Math.min(maxInterval, interval * 1.5);
    value = await poll();
    polls++;
  }
}
