// The chaos campaign's PRNG: a seed must give the same stream every time (that is what makes a
// failing round's plan reproducible from its seed), different seeds different streams, and the
// values must stay in [0, 1) so that picks index within their lists.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prng } from '../../bench/chaos-campaign.js';

describe('chaos prng', () => {
  it('is deterministic from its seed', () => {
    const a = prng(42);
    const b = prng(42);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(Array.from({ length: 1000 }, () => b()), xs);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });

  it('gives different streams for different seeds, spread over [0, 1)', () => {
    const a = Array.from({ length: 100 }, prng(1));
    const b = Array.from({ length: 100 }, prng(2));
    assert.notDeepEqual(a, b);
    const buckets = new Array<number>(10).fill(0);
    const r = prng(7);
    for (let i = 0; i < 10_000; i++) buckets[Math.floor(r() * 10)]! += 1;
    assert.ok(buckets.every((n) => n > 800 && n < 1200), `buckets ${buckets.join(',')}`);
  });
});
