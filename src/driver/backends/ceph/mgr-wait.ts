/**
 * How long the driver waits for the mgr to answer a command, and what it knows when it stops
 * waiting first.
 *
 * A mgr command cannot be taken back once sent: librados keeps it queued in the mgr (rados.ts
 * keeps the native call and its buffers alive until the answer comes), and the mgr may carry it
 * out long after the driver stopped waiting. The mgr `volumes` module of Pacific answers late
 * exactly when it is busiest (see ../cephfs/clone-flow.ts for why), so "no answer yet" must never
 * be read as "not done": the error here is an ETIMEDOUT CephError that also carries `answer`, a
 * promise that settles once the mgr has answered after all, so that the caller can hold later
 * operations on the same volume (a DeleteVolume that would otherwise run before a late `fs
 * subvolume snapshot clone` and leave its clone behind) until then.
 *
 * Each command waits `waitMs` (the driver's --ceph-timeout unless the caller asks for more), or
 * less when the caller's `signal` aborts first (its gRPC deadline passed, or it cancelled).
 */
import { constants as osConstants } from 'node:os';
import { CephError } from './ceph-error.js';

/** How long one mgr command may go unanswered. */
export interface MgrPatience {
  /** The longest wait; default the connection's --ceph-timeout. */
  waitMs?: number;
  /** The caller's signal: aborted, the wait ends at once. */
  signal?: AbortSignal | undefined;
  /** Told of every command this wait gave up on: its answer settles once the mgr answers. */
  onUnanswered?: (answer: Promise<void>, op: string) => void;
}

/** A command sent to the mgr that did not answer while the caller waited; it may still take effect. */
export class UnansweredMgrCommand extends CephError {
  constructor(
    op: string,
    /** Settles (never rejects) when the mgr finally answers, whatever the answer. */
    readonly answer: Promise<void>,
    readonly waitedMs: number,
    /** 'caller': the caller's signal ended the wait; 'limit': waitMs passed. */
    readonly gaveUp: 'caller' | 'limit',
  ) {
    const s = (waitedMs / 1000).toFixed(1);
    super(
      op,
      osConstants.errno.ETIMEDOUT,
      gaveUp === 'caller'
        ? `the caller stopped waiting after ${s} s without an answer from the mgr; the command may still take effect`
        : `no answer from the mgr within ${s} s; the command may still take effect`,
    );
  }
}

/**
 * The native call's result if it comes within the wait, else UnansweredMgrCommand. onAbandon is
 * called (once) when the wait ends without an answer; the native call keeps running.
 */
export async function awaitAnswer<T>(native: Promise<T>, op: string, wait: { waitMs: number; signal?: AbortSignal | undefined; onAbandon?: () => void }): Promise<T> {
  const started = performance.now();
  let settled = false;
  const answer = native.then(
    () => undefined,
    () => undefined,
  );
  void answer.then(() => (settled = true));
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    const stop = (why: 'caller' | 'limit') => {
      if (settled) return;
      wait.onAbandon?.();
      reject(new UnansweredMgrCommand(op, answer, performance.now() - started, why));
    };
    timer = setTimeout(() => stop('limit'), wait.waitMs);
    if (wait.signal) {
      if (wait.signal.aborted) queueMicrotask(() => stop('caller'));
      onAbort = () => stop('caller');
      wait.signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  gaveUp.catch(() => undefined);
  try {
    return await Promise.race([native, gaveUp]);
  } finally {
    clearTimeout(timer);
    if (onAbort) wait.signal?.removeEventListener('abort', onAbort);
  }
}

/** Whether e (or what it was caused by) is a mgr command left unanswered. */
export function unansweredIn(e: unknown): UnansweredMgrCommand | undefined {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 8; x = x.cause, depth++) {
    if (x instanceof UnansweredMgrCommand) return x;
  }
  return undefined;
}
