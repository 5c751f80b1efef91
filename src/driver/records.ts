import { closeSync, fdatasync, openSync, writeSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** What every durable record carries: the CO's name for it and our ID. */
export interface NamedRecord {
  id: string;
  name: string;
}

export interface RecordStoreOptions {
  /**
   * Makes everything written to the filesystem so far durable, the journal included (e.g. a
   * btrfs transaction commit). Used instead of the journal's own fdatasync, so that a durable
   * put or remove also makes durable whatever storage the caller changed before it.
   */
  sync?: () => Promise<void>;
}

/** One line of the journal: a record's new version, or its removal. */
type Entry<T> = { put: T } | { del: string };

const JOURNAL = 'journal.log';
/** Rewrite the journal once it holds this many more lines than there are live records (and at least twice as many). */
const COMPACT_SLACK = 1000;

/**
 * A directory of records with an in-memory index by ID and by name, kept durable as an
 * append-only journal (`DIR/journal.log`, one JSON line per put or removal).
 *
 * Why a journal rather than a file per record: making a new file durable costs an fsync of the
 * file and one of its directory, and on btrfs each of those is a log-tree commit that concurrent
 * callers barely share (≈235 writes/s at 8 concurrent callers on the local pool). An append plus
 * fdatasync is far cheaper, and concurrent durable writes share one fdatasync (group commit).
 *
 * Why appends are synchronous writes: appending a line to the page cache takes ~2 µs, while a
 * round trip through libuv's thread pool takes ~100 µs on a busy 2-core node, and appends must
 * not overlap (a line must never be interleaved with another), so queued asynchronous appends
 * capped the whole driver at a few thousand journal changes a second. Only the fdatasync, which
 * waits for the disk, runs on the thread pool, and appends carry on while it runs: a sync covers
 * every line written before it started, and the lines written meanwhile form the next batch.
 *
 * Guarantees: put and remove resolve only once the change is on disk (unless `durable: false`);
 * after a crash (process or power) every change that resolved is there, later ones may or may
 * not be, and a record is never torn: a line cut short by a power loss is the last one, and is
 * dropped (its caller was never told it succeeded). Lookups see a durable change only once it is
 * on disk.
 *
 * The journal is rewritten (compacted: one line per live record, written to a temp file, fsynced,
 * renamed over, directory fsynced) at open and whenever it has grown well past the live records.
 */
export class RecordStore<T extends NamedRecord> {
  /** Durable state: what lookups see. */
  private readonly byId = new Map<string, T>();
  private readonly idByName = new Map<string, string>();
  /** Everything appended so far, durable or not: what a compaction writes. */
  private readonly written = new Map<string, T>();
  private fd = -1;
  private lines = 0;
  /** A sync that has not started yet: callers arriving now share it. */
  private nextSync: Promise<void> | undefined;
  private lastSync: Promise<void> = Promise.resolve();
  /** The fdatasync running right now, if any (a compaction must not close its fd under it). */
  private syncing: Promise<void> | undefined;
  private compacting: Promise<void> | undefined;
  /** While a compaction runs: lines held back, written to the new journal once it is in place. */
  private held: Buffer[] | undefined;
  /** Set when a write or sync failed: what is on disk is then unknown, so every later change is refused. */
  private failure: Error | undefined;

  private constructor(
    private readonly dir: string,
    private readonly opts: RecordStoreOptions,
  ) {}

  static async open<T extends NamedRecord>(dir: string, opts: RecordStoreOptions = {}): Promise<RecordStore<T>> {
    const store = new RecordStore<T>(dir, opts);
    await mkdir(dir, { recursive: true });
    for (const file of await readdir(dir)) {
      // An interrupted compaction: the rename never happened, so the journal it would replace stands.
      if (file.includes('.tmp')) await unlink(join(dir, file)).catch(() => undefined);
    }
    await store.replay();
    for (const rec of store.written.values()) store.index(rec);
    // Start every run from a compact journal.
    await store.compact();
    return store;
  }

  get(id: string): T | undefined {
    return this.byId.get(id);
  }

  byName(name: string): T | undefined {
    const id = this.idByName.get(name);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** All records sorted by ID: a stable order for paginated listing. */
  list(): T[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get count(): number {
    return this.byId.size;
  }

  /** Stores rec (a copy of it). durable=false skips the wait for the disk: only for writes a retry redoes. */
  async put(rec: T, opts: { durable: boolean } = { durable: true }): Promise<void> {
    // The store keeps its own copy: what the caller changes later is not stored until it is put.
    const json = JSON.stringify(rec);
    const copy = JSON.parse(json) as T;
    this.append({ put: copy }, `{"put":${json}}\n`);
    if (opts.durable) await this.sync();
    const previous = this.byId.get(copy.id);
    if (previous && previous.name !== copy.name && this.idByName.get(previous.name) === copy.id) this.idByName.delete(previous.name);
    this.index(copy);
  }

  /** Removes the record (durably); a missing one is fine. */
  async remove(id: string): Promise<void> {
    if (!this.written.has(id) && !this.byId.has(id)) return;
    const entry = { del: id };
    this.append(entry, `${JSON.stringify(entry)}\n`);
    await this.sync();
    const rec = this.byId.get(id);
    if (rec) {
      this.byId.delete(id);
      if (this.idByName.get(rec.name) === id) this.idByName.delete(rec.name);
    }
  }

  /** Closes the journal file (tests and tools; the driver keeps it open for its lifetime). */
  async close(): Promise<void> {
    await this.compacting?.catch(() => undefined);
    await this.lastSync.catch(() => undefined);
    closeSync(this.fd);
    this.fd = -1;
  }

  private index(rec: T): void {
    this.byId.set(rec.id, rec);
    this.idByName.set(rec.name, rec.id);
  }

  /** Writes the line at once (or holds it during a compaction); the caller syncs if it must be durable. */
  private append(entry: Entry<T>, text: string): void {
    if (this.failure) throw this.failure;
    const line = Buffer.from(text);
    if (this.held) this.held.push(line);
    else {
      try {
        writeAll(this.fd, line);
      } catch (e) {
        this.fail(e as Error);
      }
    }
    if ('put' in entry) this.written.set(entry.put.id, entry.put);
    else this.written.delete(entry.del);
    this.lines++;
    if (this.lines > 2 * this.written.size + COMPACT_SLACK && !this.compacting) {
      this.compacting = this.compact()
        .catch((e: Error) => this.fail(e))
        .finally(() => (this.compacting = undefined));
      // Its failure is reported by the next append or sync.
      this.compacting.catch(() => undefined);
    }
  }

  /**
   * Group commit: resolves once an fdatasync that started after this call has finished. Callers
   * arriving while one runs share the next one.
   */
  private sync(): Promise<void> {
    if (this.nextSync) return this.nextSync;
    const mine: Promise<void> = this.lastSync
      .catch(() => undefined)
      .then(async () => {
        // Lines held by a compaction reach the new journal when it ends: sync that one.
        while (this.compacting) await this.compacting;
        if (this.nextSync === mine) this.nextSync = undefined;
        if (this.failure) throw this.failure;
        this.syncing = this.opts.sync ? this.opts.sync() : datasync(this.fd);
        try {
          await this.syncing;
        } finally {
          this.syncing = undefined;
        }
      })
      .catch((e: Error) => this.fail(e));
    this.nextSync = mine;
    this.lastSync = mine;
    return mine;
  }

  private fail(e: Error): never {
    this.failure ??= new Error(`the record journal in ${this.dir} could not be written (${e.message}); restart the driver`, { cause: e });
    throw this.failure;
  }

  /** Reads the journal into `written`, dropping a torn last line. */
  private async replay(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(this.dir, JOURNAL), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const lines = text.split('\n');
    // The last element is '' when the file ends with a newline, else a torn last line.
    lines.pop();
    lines.forEach((line, i) => {
      let entry: Entry<T>;
      try {
        entry = JSON.parse(line) as Entry<T>;
      } catch {
        throw new Error(`${join(this.dir, JOURNAL)} line ${i + 1} is corrupt: ${line.slice(0, 80)}`);
      }
      if ('put' in entry) this.written.set(entry.put.id, entry.put);
      else this.written.delete(entry.del);
    });
  }

  /**
   * Rewrites the journal as one line per record in `written`; durable before it returns. Lines
   * appended meanwhile are held and written to the new journal once it has replaced the old one.
   */
  private async compact(): Promise<void> {
    const final = join(this.dir, JOURNAL);
    const tmp = `${final}.tmp`;
    this.held = [];
    try {
      // Taken now, before any await: everything appended so far, and nothing held back.
      const records = [...this.written.values()];
      const body = records.map((rec) => `${JSON.stringify({ put: rec })}\n`).join('');
      const out = await open(tmp, 'w', 0o600);
      try {
        await out.writeFile(body);
        await out.sync();
      } finally {
        await out.close();
      }
      await rename(tmp, final);
      await syncDir(this.dir);
      const fd = openSync(final, 'a', 0o600);
      // A sync already running on the old file covers only lines now also in the new, durable one;
      // no other starts while we compact. Wait for it before closing the file under it.
      await this.syncing?.catch(() => undefined);
      const previous = this.fd;
      this.fd = fd;
      this.lines = records.length + this.held.length;
      for (const line of this.held) writeAll(fd, line);
      if (previous >= 0) closeSync(previous);
    } finally {
      this.held = undefined;
    }
  }
}

/** write(2) until the whole line is in the file (a regular file takes it in one call, but the API allows less). */
function writeAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
