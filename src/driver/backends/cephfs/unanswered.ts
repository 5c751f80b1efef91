/**
 * Mgr commands the driver sent for a volume (or snapshot) and stopped waiting for, by its ID,
 * until the mgr answers them. Such a command may still take effect (../ceph/mgr-wait.ts): a
 * DeleteVolume that ran before a late `fs subvolume snapshot clone` or `fs subvolume create`
 * would find nothing to remove, and the mgr would then make a subvolume no journal names, left in
 * the group forever. So the next call on that ID waits for these answers first (as long as its own
 * caller waits), and answers ABORTED, which the CO retries, while any is still out.
 *
 * Kept in memory: a driver restarted meanwhile no longer knows of them (the mgr keeps the
 * commands of a client that went away), which is what `stowage gc` is for.
 */
import { pollUntil } from './poll.js';

export class UnansweredCommands {
  private readonly byKey = new Map<string, Set<Promise<void>>>();

  /** Tracks answer (which never rejects) under key until it settles. */
  add(key: string, answer: Promise<void>): void {
    let set = this.byKey.get(key);
    if (!set) this.byKey.set(key, (set = new Set()));
    set.add(answer);
    void answer.then(() => {
      set.delete(answer);
      if (set.size === 0 && this.byKey.get(key) === set) this.byKey.delete(key);
    });
  }

  /** Commands still unanswered for key. */
  count(key: string): number {
    return this.byKey.get(key)?.size ?? 0;
  }

  /**
   * Waits until every command tracked under key is answered, the signal aborts or limitMs
   * passes; the number still unanswered then (0: none).
   */
  async settle(key: string, opts: { signal?: AbortSignal | undefined; limitMs: number }): Promise<number> {
    if (this.count(key) === 0) return 0;
    const r = await pollUntil(
      async () => this.count(key),
      (n) => n === 0,
      { signal: opts.signal, limitMs: opts.limitMs, firstIntervalMs: 100, maxIntervalMs: 500 },
    );
    return r.value;
  }
}
