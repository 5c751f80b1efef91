import { RecordStore, type RecordStoreOptions } from '../../records.js';
import type { Journal } from '../backend.js';

/**
 * The local backend keeps its journal as record files inside the pool, next to the data. The
 * OpContext every Journal call gets is not needed here: the journal is on this machine.
 */
export class FileJournal<T extends { id: string; name: string }> implements Journal<T> {
  private constructor(private readonly store: RecordStore<T>) {}

  static async open<T extends { id: string; name: string }>(dir: string, opts: RecordStoreOptions = {}): Promise<FileJournal<T>> {
    return new FileJournal(await RecordStore.open<T>(dir, opts));
  }

  async get(id: string): Promise<T | undefined> {
    return this.store.get(id);
  }

  async byName(name: string): Promise<T | undefined> {
    return this.store.byName(name);
  }

  async list(): Promise<T[]> {
    return this.store.list();
  }

  async put(rec: T, durable: boolean): Promise<void> {
    await this.store.put(rec, { durable });
  }

  async remove(id: string): Promise<void> {
    await this.store.remove(id);
  }
}
