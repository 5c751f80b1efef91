/**
 * A small cache of connected clusters, keyed by monitors + user + (a hash of) the key: connecting
 * costs a round of cephx with the monitors (~30 ms here), an RPC should not pay it every time.
 * A connection nobody used for `idleMs` is shut down; one whose connect failed is not kept, so the
 * next call tries again (the cluster may be back, or the secret fixed).
 *
 * A connection is never shut down under a call that still uses it: librados frees the client and
 * its I/O contexts in rados_shutdown, and a call still running on a worker thread (an RPC whose
 * caller gave up, a poll started just before the driver stopped) would then touch freed memory and
 * take the whole process down. close() waits for the users to finish (their operations have
 * librados timeouts); one still busy after that is left to the process's exit rather than freed.
 */
import { createHash } from 'node:crypto';
import { Rados, type ConnectOptions } from './rados.js';

interface Entry {
  conn: Promise<Rados>;
  users: number;
  lastUsed: number;
  /** Resolved whenever users drops to 0. */
  idle?: () => void;
}

export class Connections {
  private readonly entries = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;
  private closing = false;

  constructor(
    private readonly timeoutSeconds: number,
    private readonly idleMs = 60_000,
    private readonly connect: (o: ConnectOptions) => Promise<Rados> = (o) => Rados.connect(o),
  ) {
    this.timer = setInterval(() => void this.closeIdle(), Math.max(1_000, Math.min(idleMs, 30_000)));
    this.timer.unref();
  }

  /** Runs use with a connection to the cluster as user; the connection stays cached afterwards. */
  async with<T>(monitors: string[], user: string, key: string, use: (rados: Rados) => Promise<T>): Promise<T> {
    if (this.closing) throw new Error('the rbd backend is shutting down');
    const id = `${monitors.join(',')}|${user}|${createHash('sha256').update(key).digest('hex')}`;
    let entry = this.entries.get(id);
    if (!entry) {
      const conn = this.connect({ monitors, user, key, timeoutSeconds: this.timeoutSeconds });
      const fresh: Entry = { conn, users: 0, lastUsed: Date.now() };
      entry = fresh;
      this.entries.set(id, fresh);
      conn.catch(() => {
        if (this.entries.get(id) === fresh) this.entries.delete(id);
      });
    }
    entry.users++;
    try {
      return await use(await entry.conn);
    } finally {
      entry.users--;
      entry.lastUsed = Date.now();
      if (entry.users === 0) entry.idle?.();
    }
  }

  /** Resolves once nobody uses the entry, or after waitMs (false: still in use). */
  private drained(entry: Entry, waitMs: number): Promise<boolean> {
    if (entry.users === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), waitMs);
      entry.idle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  private async closeIdle(): Promise<void> {
    const now = Date.now();
    for (const [id, e] of this.entries) {
      if (e.users === 0 && now - e.lastUsed > this.idleMs) {
        this.entries.delete(id);
        await e.conn.then((c) => c.shutdown()).catch(() => undefined);
      }
    }
  }

  /**
   * Refuses new calls, waits for running ones (up to twice the librados timeout and a little) and
   * shuts the connections down. Returns how many were left open because a call still used them.
   */
  async close(waitMs = this.timeoutSeconds * 2_000 + 5_000): Promise<number> {
    this.closing = true;
    clearInterval(this.timer);
    const all = [...this.entries.values()];
    this.entries.clear();
    const left = await Promise.all(
      all.map(async (e) => {
        if (!(await this.drained(e, waitMs))) return 1;
        const freed = await e.conn.then((c) => c.shutdown()).catch(() => true);
        return freed ? 0 : 1;
      }),
    );
    return left.reduce<number>((a, b) => a + b, 0);
  }
}
