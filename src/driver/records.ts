import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** What every durable record carries: the CO's name for it and our ID. */
export interface NamedRecord {
  id: string;
  name: string;
}

/**
 * A directory of JSON records, one file per ID, with an in-memory index by ID and by name.
 *
 * Writes are atomic (temp file, fsync, rename, fsync of the directory), so after a crash a
 * record is either the old or the new version, never torn. `put(..., { durable: false })`
 * skips the fsyncs for writes whose loss is harmless (the caller can redo them on retry);
 * that keeps the hot path of CreateVolume at one durable write.
 */
export class RecordStore<T extends NamedRecord> {
  private readonly byId = new Map<string, T>();
  private readonly idByName = new Map<string, string>();

  private constructor(private readonly dir: string) {}

  static async open<T extends NamedRecord>(dir: string): Promise<RecordStore<T>> {
    const store = new RecordStore<T>(dir);
    await mkdir(dir, { recursive: true });
    for (const file of await readdir(dir)) {
      const full = join(dir, file);
      if (file.includes('.tmp-')) {
        // An interrupted write: the rename never happened, so the old version (if any) stands.
        await unlink(full).catch(() => undefined);
        continue;
      }
      if (!file.endsWith('.json')) continue;
      const rec = JSON.parse(await readFile(full, 'utf8')) as T;
      store.index(rec);
    }
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

  async put(rec: T, opts: { durable: boolean } = { durable: true }): Promise<void> {
    const final = this.path(rec.id);
    const tmp = `${final}.tmp-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(rec, null, 1));
      if (opts.durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    if (opts.durable) await this.syncDir();
    const previous = this.byId.get(rec.id);
    if (previous && previous.name !== rec.name) this.idByName.delete(previous.name);
    this.index(rec);
  }

  async remove(id: string): Promise<void> {
    const rec = this.byId.get(id);
    await unlink(this.path(id)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    await this.syncDir();
    if (rec) {
      this.byId.delete(id);
      if (this.idByName.get(rec.name) === id) this.idByName.delete(rec.name);
    }
  }

  private index(rec: T): void {
    this.byId.set(rec.id, rec);
    this.idByName.set(rec.name, rec.id);
  }

  private path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  private async syncDir(): Promise<void> {
    const fh = await open(this.dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
