/**
 * The re-stage check (src/driver/backends/restage.ts), table-driven: a NodeStageVolume repeated at
 * a path that holds the volume is OK only for the same read-only flag and the same mount flags
 * (compared as sets); flags unknown to an old stash are not held against the call.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { CsiError } from '../../src/csi/errors.js';
import { requireSameStaging, stagingDifference, type StagingShape } from '../../src/driver/backends/restage.js';

describe('re-stage at the same path', () => {
  const rows: { name: string; had: StagingShape; asked: StagingShape; differs: RegExp | undefined }[] = [
    { name: 'the same staging', had: { readonly: false, mountFlags: ['noatime'] }, asked: { readonly: false, mountFlags: ['noatime'] }, differs: undefined },
    { name: 'the same flags in another order, one repeated', had: { readonly: false, mountFlags: ['a', 'b'] }, asked: { readonly: false, mountFlags: ['b', 'a', 'b'] }, differs: undefined },
    { name: 'read-only asked of a read-write staging', had: { readonly: false, mountFlags: [] }, asked: { readonly: true, mountFlags: [] }, differs: /read-write, not read-only/ },
    { name: 'read-write asked of a read-only staging', had: { readonly: true }, asked: { readonly: false }, differs: /read-only, not read-write/ },
    { name: 'another mount flag', had: { readonly: false, mountFlags: [] }, asked: { readonly: false, mountFlags: ['noatime'] }, differs: /mount flags \[\], not \[noatime\]/ },
    { name: 'a stash that did not note its flags', had: { readonly: false }, asked: { readonly: false, mountFlags: ['noatime'] }, differs: undefined },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const why = stagingDifference(row.had, row.asked);
      if (row.differs === undefined) {
        assert.equal(why, undefined);
        requireSameStaging('vol-1', '/k/stg', row.had, row.asked);
      } else {
        assert.match(why ?? '', row.differs);
        assert.throws(
          () => requireSameStaging('vol-1', '/k/stg', row.had, row.asked),
          (e: unknown) => e instanceof CsiError && e.code === status.ALREADY_EXISTS && /vol-1 is already staged at \/k\/stg/.test(e.message),
        );
      }
    });
  }
});
