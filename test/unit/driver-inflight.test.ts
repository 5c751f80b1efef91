// The driver's in-flight keys: a call on a busy key is ABORTED at once (never queued), restores
// from one snapshot share its key, and a call that needs the snapshot alone (DeleteSnapshot) is
// ABORTED while they run and goes once the last of them released it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CsiError } from '../../src/csi/errors.js';
import { InFlight } from '../../src/driver/inflight.js';

const aborted = (fn: () => unknown, key: string): void =>
  assert.throws(fn, (e: unknown) => e instanceof CsiError && e.message === `an operation on ${key} is already in progress`);

describe('InFlight', () => {
  it('exclusive keys: a second holder is ABORTED naming the key; released, the key is free', () => {
    const f = new InFlight();
    const release = f.acquire('vol:a', 'name:x');
    aborted(() => f.acquire('vol:b', 'vol:a'), 'vol:a');
    assert.equal(f.size, 2, 'a refused call takes nothing');
    release();
    release(); // twice is harmless
    assert.equal(f.size, 0);
    f.acquire('vol:a')();
  });

  it('shared keys: restores from one snapshot together; its deletion waits for the last one', () => {
    const f = new InFlight();
    const r1 = f.acquireWith(['name:r1'], ['snap:s']);
    const r2 = f.acquireWith(['name:r2'], ['snap:s']);
    aborted(() => f.acquire('snap:s'), 'snap:s');
    r1();
    aborted(() => f.acquire('snap:s'), 'snap:s');
    r2();
    const del = f.acquire('snap:s');
    // While the snapshot is held alone, a restore from it is ABORTED too.
    aborted(() => f.acquireWith(['name:r3'], ['snap:s']), 'snap:s');
    del();
    assert.equal(f.size, 0);
  });

  it('a key asked for both ways counts as exclusive', () => {
    const f = new InFlight();
    const release = f.acquireWith(['k'], ['k']);
    aborted(() => f.acquireWith([], ['k']), 'k');
    release();
    assert.equal(f.size, 0);
  });
});
