// The local pool's capacity arithmetic (src/driver/backends/local/pool-capacity.ts), table-driven:
// usable size from the measured data capacity, the limit with overcommit, what is committed, what
// is admitted and with which status, and that the admission lock runs check-and-commit one at a time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { CsiError } from '../../src/csi/errors.js';
import {
  AdmissionLock,
  availableBytes,
  checkAdmission,
  committedBytes,
  HEADROOM_FRACTION,
  poolLimit,
  usableBytes,
} from '../../src/driver/backends/local/pool-capacity.js';

const MiB = 1024 * 1024;
/** Measured: a fresh 300Mi pool (mkfs.btrfs defaults) took exactly this much data before ENOSPC. */
const DATA_300MI = 229_638_144;

describe('pool capacity: usable size and limit', () => {
  const usableCases: [string, number, number][] = [
    ['300Mi pool (measured 219 MiB of data) → 216 MiB', DATA_300MI, 216 * MiB],
    ['exactly 100 MiB → 99 MiB', 100 * MiB, 99 * MiB],
    ['nothing → nothing', 0, 0],
    ['less than a MiB after headroom → 0', MiB / 2, 0],
  ];
  for (const [what, data, want] of usableCases) {
    it(what, () => {
      assert.equal(usableBytes(data), want);
      assert.ok(usableBytes(data) <= data * (1 - HEADROOM_FRACTION));
    });
  }

  const limitCases: [string, number, number, number | 'throws'][] = [
    ['no overcommit', 216 * MiB, 1, 216 * MiB],
    ['overcommit 2 doubles', 216 * MiB, 2, 432 * MiB],
    ['overcommit 1.5, rounded down to a byte', 101, 1.5, 151],
    ['below 1 is refused', 216 * MiB, 0.5, 'throws'],
    ['NaN is refused', 216 * MiB, Number.NaN, 'throws'],
    ['Infinity is refused', 216 * MiB, Number.POSITIVE_INFINITY, 'throws'],
  ];
  for (const [what, usable, overcommit, want] of limitCases) {
    it(`limit: ${what}`, () => {
      if (want === 'throws') assert.throws(() => poolLimit(usable, overcommit), RangeError);
      else assert.equal(poolLimit(usable, overcommit), want);
    });
  }
});

describe('pool capacity: committed and available', () => {
  const cases: [string, number[], number[], number][] = [
    ['empty pool', [], [], 0],
    ['volumes count at their full size', [100 * MiB, 100 * MiB], [], 200 * MiB],
    ['snapshots count by exclusive bytes', [100 * MiB], [60 * MiB, 0], 160 * MiB],
    ['a fresh snapshot shares everything: 0', [100 * MiB], [0], 100 * MiB],
  ];
  for (const [what, volumes, snapshots, want] of cases) {
    it(what, () => assert.equal(committedBytes({ volumeBytes: volumes, snapshotExclusiveBytes: snapshots }), want));
  }

  const avail: [string, number, number, number, number][] = [
    ['all free', 216 * MiB, 1, 0, 216 * MiB],
    ['two 100Mi promised', 216 * MiB, 1, 200 * MiB, 16 * MiB],
    ['overcommitted past the limit (lowered overcommit after the fact) → 0, never negative', 216 * MiB, 1, 400 * MiB, 0],
    ['overcommit 2 with four 100Mi promised', 216 * MiB, 2, 400 * MiB, 32 * MiB],
  ];
  for (const [what, usable, overcommit, committed, want] of avail) {
    it(`available: ${what}`, () => assert.equal(availableBytes({ usable, overcommit, committed }), want));
  }
});

describe('pool capacity: admission', () => {
  const U = 216 * MiB;
  const cases: [string, { overcommit: number; committed: number; bytes: number; purpose: 'create' | 'expand' }, status | 'ok'][] = [
    ['first 100Mi fits', { overcommit: 1, committed: 0, bytes: 100 * MiB, purpose: 'create' }, 'ok'],
    ['second 100Mi fits', { overcommit: 1, committed: 100 * MiB, bytes: 100 * MiB, purpose: 'create' }, 'ok'],
    ['third 100Mi is RESOURCE_EXHAUSTED', { overcommit: 1, committed: 200 * MiB, bytes: 100 * MiB, purpose: 'create' }, status.RESOURCE_EXHAUSTED],
    ['exactly to the limit fits', { overcommit: 1, committed: 200 * MiB, bytes: 16 * MiB, purpose: 'create' }, 'ok'],
    ['one byte past the limit does not', { overcommit: 1, committed: 200 * MiB, bytes: 16 * MiB + 1, purpose: 'create' }, status.RESOURCE_EXHAUSTED],
    ['overcommit 2: the fourth 100Mi fits', { overcommit: 2, committed: 300 * MiB, bytes: 100 * MiB, purpose: 'create' }, 'ok'],
    ['overcommit 2: the fifth does not', { overcommit: 2, committed: 400 * MiB, bytes: 100 * MiB, purpose: 'create' }, status.RESOURCE_EXHAUSTED],
    ['expansion past the limit is OUT_OF_RANGE', { overcommit: 1, committed: 200 * MiB, bytes: 50 * MiB, purpose: 'expand' }, status.OUT_OF_RANGE],
    ['no growth is always admitted, even over the limit', { overcommit: 1, committed: 400 * MiB, bytes: 0, purpose: 'expand' }, 'ok'],
  ];
  for (const [what, c, want] of cases) {
    it(what, () => {
      const call = () => checkAdmission({ usable: U, overcommit: c.overcommit, committed: c.committed }, c.bytes, c.purpose);
      if (want === 'ok') {
        call();
        return;
      }
      assert.throws(call, (e: unknown) => {
        assert.ok(e instanceof CsiError);
        assert.equal(e.code, want);
        assert.match(e.message, new RegExp(`${c.bytes} bytes requested`));
        assert.match(e.message, /already promised/);
        return true;
      });
    });
  }

  it('the admission lock runs check-and-commit one at a time, in order, and survives a refusal', async () => {
    const lock = new AdmissionLock();
    let committed = 0;
    const admitted: number[] = [];
    const attempt = (i: number) =>
      lock.run(async () => {
        const seen = committed;
        await new Promise((r) => setTimeout(r, 2)); // the journal write takes a while
        checkAdmission({ usable: U, overcommit: 1, committed: seen }, 100 * MiB, 'create');
        committed = seen + 100 * MiB;
        admitted.push(i);
      });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => attempt(i)));
    assert.deepEqual(admitted, [0, 1]);
    assert.equal(results.filter((r) => r.status === 'rejected').length, 8);
    assert.equal(committed, 200 * MiB);
  });
});
