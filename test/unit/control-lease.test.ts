// Leases (coordination.k8s.io/v1) through the store, the path every client takes: what leader
// election writes is accepted and renewed with optimistic concurrency, and the ranges and pairings
// Kubernetes refuses are refused with its messages.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Lease, LeaseSpec } from '../../src/control/api/types/coordination.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';
import { ConflictError, InvalidError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

function lease(name: string, spec: LeaseSpec): Lease {
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-system' }, spec };
}

describe('Lease', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  const refused: { name: string; spec: LeaseSpec; want: string[] }[] = [
    { name: 'a zero duration', spec: { leaseDurationSeconds: 0 }, want: ['spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0'] },
    { name: 'negative transitions', spec: { leaseTransitions: -1 }, want: ['spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0'] },
    { name: 'an unknown strategy', spec: { strategy: 'Newest' }, want: ['spec.strategy: Unsupported value: "Newest": supported values: "OldestEmulationVersion"'] },
    { name: 'a preferred holder without a strategy', spec: { preferredHolder: 'b' }, want: ['spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined'] },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => {
      assert.throws(
        () => store.create(lease('x', c.spec)),
        (err: unknown) => err instanceof InvalidError && assert.deepEqual(err.causes.map(errorMessage), c.want) === undefined,
      );
    });
  }

  it('is acquired, renewed and taken over as leader election does it', () => {
    const now = '2026-01-02T03:04:05.000006Z';
    const created = store.create(lease('leader', { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: now, renewTime: now, leaseTransitions: 0 }));
    const renewed = store.update({ ...created, spec: { ...created.spec, renewTime: '2026-01-02T03:04:07.000001Z' } });
    assert.equal(renewed.spec?.renewTime, '2026-01-02T03:04:07.000001Z');
    // A second candidate that read the old version loses the race.
    assert.throws(() => store.update({ ...created, spec: { ...created.spec, holderIdentity: 'b', leaseTransitions: 1 } }), ConflictError);
    const taken = store.update({ ...renewed, spec: { ...renewed.spec, holderIdentity: 'b', leaseTransitions: 1 } });
    assert.equal(store.get('leases', 'kube-system', 'leader')?.spec?.holderIdentity, 'b');
    assert.equal(taken.spec?.leaseTransitions, 1);
  });
});
