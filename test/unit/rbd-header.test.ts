/**
 * header.ts without a cluster: the cls_rbd calls it makes (object, class, method, input bytes)
 * and how it reads their replies, against an in-memory IoCtx. A wrong byte here would mark no
 * clone whole (every retry removing and remaking it) or count depths wrong; the integration test
 * rbd-clone-path checks the same calls against a real OSD.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { describe, it } from 'node:test';
import { CephError } from '../../src/driver/backends/ceph/ceph-error.js';
import type { IoCtx } from '../../src/driver/backends/ceph/rados.js';
import { headerMetadataGet, headerMetadataSet, headerParent, headerSize, imageId } from '../../src/driver/backends/rbd/header.js';

/** Ceph's u32-length-prefixed bytes. */
const bytes = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  return Buffer.concat([len, b]);
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n, 0);
  return b;
};
const i64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(n, 0);
  return b;
};
/** cls::rbd::ParentImageSpec as parent_get encodes it. */
const parentSpec = (pool: bigint, ns: string, id: string, snap: bigint) => {
  const body = Buffer.concat([i64(pool), bytes(ns), bytes(id), u64(snap)]);
  const head = Buffer.alloc(6);
  head.writeUInt8(1, 0);
  head.writeUInt8(1, 1);
  head.writeUInt32LE(body.length, 2);
  return Buffer.concat([head, body]);
};

interface Call {
  oid: string;
  cls: string;
  method: string;
  input: Buffer;
}

/** An IoCtx whose exec answers from `reply` (a Buffer, or an errno to fail with). */
function fakeIo(reply: (c: Call) => Buffer | number): { io: IoCtx; calls: Call[] } {
  const calls: Call[] = [];
  const io = {
    poolName: 'rbd',
    poolId: 2,
    async exec(oid: string, cls: string, method: string, input: Buffer): Promise<Buffer> {
      const c = { oid, cls, method, input };
      calls.push(c);
      const r = reply(c);
      if (typeof r === 'number') throw new CephError(`${cls}.${method} on rbd/${oid}`, r);
      return r;
    },
  } as unknown as IoCtx;
  return { io, calls };
}

const ENOENT = constants.errno.ENOENT;
const EIO = constants.errno.EIO;

describe('rbd header calls (cls_rbd on rbd_id.<name> / rbd_header.<id>)', () => {
  it('imageId: rbd.get_id on rbd_id.<name>; ENOENT is "no image"; other errors are thrown', async () => {
    const cases: { reply: Buffer | number; want: string | undefined | 'throws' }[] = [
      { reply: bytes('10293e8bf5e'), want: '10293e8bf5e' },
      { reply: ENOENT, want: undefined },
      { reply: EIO, want: 'throws' },
      { reply: Buffer.from([9, 0, 0, 0, 0x61]), want: 'throws' }, // says 9 bytes, has 1
    ];
    for (const c of cases) {
      const { io, calls } = fakeIo(() => c.reply);
      if (c.want === 'throws') await assert.rejects(imageId(io, 'csi-vol-x'));
      else assert.equal(await imageId(io, 'csi-vol-x'), c.want);
      assert.deepEqual(calls.map((x) => [x.oid, x.cls, x.method, x.input.length]), [['rbd_id.csi-vol-x', 'rbd', 'get_id', 0]]);
    }
  });

  it('headerMetadataGet: the key as an encoded string; value up to a trailing NUL; ENOENT is "not set"', async () => {
    const cases: { reply: Buffer | number; want: string | undefined }[] = [
      { reply: bytes('csi-vol-x'), want: 'csi-vol-x' },
      { reply: bytes('csi-vol-x\0'), want: 'csi-vol-x' },
      { reply: ENOENT, want: undefined },
    ];
    for (const c of cases) {
      const { io, calls } = fakeIo(() => c.reply);
      assert.equal(await headerMetadataGet(io, 'abc', 'stowage.complete'), c.want);
      assert.equal(calls[0]!.oid, 'rbd_header.abc');
      assert.equal(calls[0]!.method, 'metadata_get');
      assert.deepEqual(calls[0]!.input, bytes('stowage.complete'));
    }
  });

  it('headerMetadataSet: a map of one entry (u32 count, key, value), as rbd_metadata_set sends', async () => {
    const { io, calls } = fakeIo(() => Buffer.alloc(0));
    await headerMetadataSet(io, 'abc', 'stowage.complete', 'csi-vol-x');
    assert.equal(calls[0]!.oid, 'rbd_header.abc');
    assert.equal(calls[0]!.method, 'metadata_set');
    assert.deepEqual(calls[0]!.input, Buffer.concat([Buffer.from([1, 0, 0, 0]), bytes('stowage.complete'), bytes('csi-vol-x')]));
  });

  it('headerSize: get_size of the head (CEPH_NOSNAP); the size after the order byte', async () => {
    const { io, calls } = fakeIo(() => Buffer.concat([Buffer.from([22]), u64(64n * 1024n * 1024n)]));
    assert.equal(await headerSize(io, 'abc'), 64 * 1024 * 1024);
    assert.deepEqual(calls[0]!.input, u64(0xfffffffffffffffen));
    assert.equal(await headerSize(fakeIo(() => ENOENT).io, 'gone'), undefined);
    await assert.rejects(headerSize(fakeIo(() => Buffer.from([22])).io, 'abc'), /short reply/);
  });

  it('headerParent: pool and image ID from ParentImageSpec; pool -1 or a missing header is "no parent"', async () => {
    const cases: { reply: Buffer | number; want: { poolId: number; imageId: string } | undefined | 'throws' }[] = [
      { reply: parentSpec(2n, '', '1029c4dd9252', 4n), want: { poolId: 2, imageId: '1029c4dd9252' } },
      { reply: parentSpec(7n, 'tenant-a', 'beef', 9n), want: { poolId: 7, imageId: 'beef' } },
      { reply: parentSpec(-1n, '', '', 0xfffffffffffffffen), want: undefined },
      { reply: ENOENT, want: undefined },
      { reply: parentSpec(2n, '', 'abc', 1n).subarray(0, 10), want: 'throws' },
    ];
    for (const c of cases) {
      const { io, calls } = fakeIo(() => c.reply);
      if (c.want === 'throws') await assert.rejects(headerParent(io, 'child'));
      else assert.deepEqual(await headerParent(io, 'child'), c.want);
      assert.deepEqual([calls[0]!.oid, calls[0]!.method], ['rbd_header.child', 'parent_get']);
    }
  });
});
