import { AbortedError } from '../csi/errors.js';

/**
 * Keys (volume names, volume IDs, snapshot IDs) that an RPC is working on right now.
 * The CSI spec wants a second call on the same volume to fail fast with ABORTED rather than
 * queue behind the first, so this is a try-lock, never a wait.
 */
export class InFlight {
  private readonly held = new Set<string>();
  /** Keys read by calls that may share them (restores from one snapshot), with how many hold each. */
  private readonly shared = new Map<string, number>();

  /** Takes every key or none; throws ABORTED naming the busy key. */
  acquire(...keys: string[]): () => void {
    return this.acquireWith(keys, []);
  }

  /**
   * Takes `exclusive` keys for this call alone and `shared` keys alongside other calls that only
   * share them (a key held exclusively, or shared while asked for exclusively, is busy); every key
   * or none. ceph-csi lets restores from one snapshot run together, while a deletion of that
   * snapshot waits for them.
   */
  acquireWith(exclusive: readonly string[], shared: readonly string[]): () => void {
    const mine = [...new Set(exclusive)];
    const theirs = [...new Set(shared)].filter((k) => !mine.includes(k));
    const busy = mine.find((k) => this.held.has(k) || this.shared.has(k)) ?? theirs.find((k) => this.held.has(k));
    if (busy !== undefined) {
      throw new AbortedError(`an operation on ${busy} is already in progress`);
    }
    for (const k of mine) this.held.add(k);
    for (const k of theirs) this.shared.set(k, (this.shared.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of mine) this.held.delete(k);
      for (const k of theirs) {
        const n = (this.shared.get(k) ?? 1) - 1;
        if (n <= 0) this.shared.delete(k);
        else this.shared.set(k, n);
      }
    };
  }

  /** Runs fn while holding the keys (`shared`: alongside other calls that share them). */
  async with<T>(keys: string[], fn: () => Promise<T>, shared: readonly string[] = []): Promise<T> {
    const release = this.acquireWith(keys, shared);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  get size(): number {
    return this.held.size + this.shared.size;
  }
}
