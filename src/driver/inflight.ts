import { AbortedError } from '../csi/errors.js';

/**
 * Keys (volume names, volume IDs, snapshot IDs) that an RPC is working on right now.
 * The CSI spec wants a second call on the same volume to fail fast with ABORTED rather than
 * queue behind the first, so this is a try-lock, never a wait.
 */
export class InFlight {
  private readonly held = new Set<string>();

  /** Takes every key or none; throws ABORTED naming the busy key. */
  acquire(...keys: string[]): () => void {
    const unique = [...new Set(keys)];
    const busy = unique.find((k) => this.held.has(k));
    if (busy !== undefined) {
      throw new AbortedError(`an operation on ${busy} is already in progress`);
    }
    for (const k of unique) this.held.add(k);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of unique) this.held.delete(k);
    };
  }

  /** Runs fn while holding the keys. */
  async with<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const release = this.acquire(...keys);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  get size(): number {
    return this.held.size;
  }
}
