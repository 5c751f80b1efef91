import { OutOfRangeError, ResourceExhaustedError } from '../../../csi/errors.js';

/**
 * What the local pool can promise, as pure arithmetic (the I/O that feeds it is in local-backend.ts).
 *
 * Why: a qgroup limit caps each volume, but nothing capped their sum, so ten 100Mi claims on a
 * 300Mi pool were all Bound and the third one to be written hit ENOSPC after 19 MiB. A volume is a
 * promise of its full size; the pool admits a new promise only while the promises it has made fit.
 *
 * The pool's size is its **data capacity**: the bytes of file data btrfs will accept, measured
 * (allocation/data/bytes_used + statfs f_bavail) when the driver opens the pool. On a fresh 300Mi
 * pool (mkfs.btrfs defaults, btrfs-progs 6.2: metadata DUP 32 MiB, system DUP 8 MiB) that is
 * 229,638,144 bytes (219 MiB), and exactly that much data was written before ENOSPC. What btrfs
 * needs for metadata is not part of it. From that figure a headroom of HEADROOM_FRACTION is taken
 * explicitly: the unallocated space f_bavail counts as data is also where btrfs grows metadata
 * (checksums are ~0.1% of data, DUP doubles it), so a pool filled to the last data byte could not
 * store the metadata of its own writes on larger pools.
 *
 * limit     = floor(usable × overcommit)           (--local-overcommit, default 1: none)
 * committed = Σ volume sizes (every journal record, `creating` ones included: a create in flight
 *             has been promised its size) + Σ snapshot exclusive bytes (qgroup excl for subvolume
 *             snapshots; allocated bytes for image snapshots, which have no qgroup of their own)
 * available = max(0, limit − committed); a request is admitted when committed + bytes ≤ limit.
 */

/** Kept back from the measured data capacity for metadata growth (see above). */
export const HEADROOM_FRACTION = 0.01;
const MiB = 1024 * 1024;

/** The bytes the pool promises at most with no overcommit: the data capacity less the headroom, in whole MiB. */
export function usableBytes(dataCapacityBytes: number): number {
  const usable = dataCapacityBytes * (1 - HEADROOM_FRACTION);
  return Math.max(0, Math.floor(usable / MiB) * MiB);
}

export function poolLimit(usable: number, overcommit: number): number {
  if (!(overcommit >= 1) || !Number.isFinite(overcommit)) throw new RangeError(`overcommit must be a number ≥ 1, not ${overcommit}`);
  return Math.floor(usable * overcommit);
}

export interface Commitments {
  /** capacityBytes of every volume record, whatever its state. */
  volumeBytes: readonly number[];
  /** Exclusive bytes of every snapshot. */
  snapshotExclusiveBytes: readonly number[];
}

export function committedBytes(c: Commitments): number {
  let sum = 0;
  for (const b of c.volumeBytes) sum += b;
  for (const b of c.snapshotExclusiveBytes) sum += b;
  return sum;
}

export interface PoolFigures {
  usable: number;
  overcommit: number;
  committed: number;
}

export function availableBytes(p: PoolFigures): number {
  return Math.max(0, poolLimit(p.usable, p.overcommit) - p.committed);
}

/**
 * Throws when `bytes` more would pass the limit: RESOURCE_EXHAUSTED for a create (the CO may try
 * another node, or later), OUT_OF_RANGE for an expansion, the CSI spec's only capacity error for
 * ControllerExpandVolume ("Unsupported capacity_range": the caller must change the request).
 */
export function checkAdmission(p: PoolFigures, bytes: number, purpose: 'create' | 'expand'): void {
  const limit = poolLimit(p.usable, p.overcommit);
  if (bytes <= 0 || p.committed + bytes <= limit) return;
  const left = Math.max(0, limit - p.committed);
  const how =
    p.overcommit === 1
      ? `the pool's usable size is ${limit} bytes`
      : `the pool promises at most ${limit} bytes (usable ${p.usable} × overcommit ${p.overcommit})`;
  const message = `not enough pool capacity: ${bytes} bytes requested, ${left} left (${how}, ${p.committed} already promised to volumes and snapshots)`;
  throw purpose === 'create' ? new ResourceExhaustedError(message) : new OutOfRangeError(message);
}

/** A FIFO lock: the check and the journal write it admits run as one step. */
export class AdmissionLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
