// The checkpointer's thread (see checkpointer.ts): its own connection to the store's file, which
// copies the pages of committed transactions from the WAL into the database (a PASSIVE
// checkpoint: it never waits for, nor holds up, the store's writer) each time it is asked to.
// With synchronous=FULL the WAL is fsynced before the copy and the database after it, so the WAL
// is only reused once what it held is durable in the database.
//
// Protocol: { path, state } in workerData. 'checkpoint' messages ask for one checkpoint, answered
// with a CheckpointReport; 'close' closes the connection, sets state[0] to 1 and wakes the store's
// thread, which waits on it synchronously.
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointReport {
  /** Frames in the WAL, and how many of them are in the database now (-1, -1: a checkpoint was already running). */
  log: number;
  checkpointed: number;
  /** Why the checkpoint failed (it is tried again at the next request). */
  error?: string;
}

const { path, state } = workerData as { path: string; state: Int32Array };
const port = parentPort;
if (port === null) throw new Error('checkpoint-worker runs as a worker thread');

const db = new DatabaseSync(path);
db.exec('PRAGMA synchronous = FULL; PRAGMA busy_timeout = 0;');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

port.on('message', (message: string) => {
  if (message === 'close') {
    try {
      db.close();
    } finally {
      Atomics.store(state, 0, 1);
      Atomics.notify(state, 0);
      port.close();
    }
    return;
  }
  let report: CheckpointReport;
  try {
    const row = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    report = { log: row.log, checkpointed: row.checkpointed };
  } catch (err) {
    report = { log: -1, checkpointed: -1, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(report);
});
