/**
 * cls_rbd calls on an image's ID and header objects, for the few things the controller asks of an
 * image it does not otherwise need open. Opening an image costs several round trips (ID object,
 * header, snapshots, parent) and, read-write, a watch registered and later removed; setting one
 * metadata key through an open image adds a header-update notify that waits for every watcher.
 * The same state is one object-class call each on the objects librbd itself uses:
 *
 *   rbd_id.<name>      rbd.get_id        → the image's ID (ENOENT: no image of that name)
 *   rbd_header.<id>    rbd.metadata_get  → one image-metadata value (ENOENT: key not set)
 *   rbd_header.<id>    rbd.metadata_set  → sets image-metadata keys (what rbd_metadata_set sends)
 *
 * Only for images nobody has open (a clone this call just made): an open image would not see the
 * change until its next refresh, since no notify is sent.
 */
import { isCephError, type IoCtx } from '../ceph/rados.js';

/** Ceph's encoding of a string or bufferlist: u32 little-endian length, then the bytes. */
function encodeBytes(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length, 0);
  return Buffer.concat([len, b]);
}

/** The bytes of an encoded string or bufferlist at the start of buf. */
function decodeBytes(buf: Buffer, what: string): Buffer {
  if (buf.length < 4) throw new Error(`${what}: short reply (${buf.length} bytes)`);
  const n = buf.readUInt32LE(0);
  if (buf.length < 4 + n) throw new Error(`${what}: reply says ${n} bytes, has ${buf.length - 4}`);
  return buf.subarray(4, 4 + n);
}

/** The image's ID, or undefined when no image has that name (never made, removed, or in the trash). */
export async function imageId(io: IoCtx, name: string): Promise<string | undefined> {
  try {
    const out = await io.exec(`rbd_id.${name}`, 'rbd', 'get_id', Buffer.alloc(0), 256);
    return decodeBytes(out, `rbd.get_id ${io.poolName}/${name}`).toString('utf8');
  } catch (e) {
    if (isCephError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** One image-metadata value, or undefined when the key is not set (or the header is gone). */
export async function headerMetadataGet(io: IoCtx, id: string, key: string): Promise<string | undefined> {
  try {
    const out = await io.exec(`rbd_header.${id}`, 'rbd', 'metadata_get', encodeBytes(Buffer.from(key, 'utf8')), 64 * 1024);
    const text = decodeBytes(out, `rbd.metadata_get ${io.poolName}/${id} ${key}`).toString('utf8');
    // rbd_metadata_set stores the C string; some writers include its NUL.
    return text.endsWith('\0') ? text.slice(0, -1) : text;
  } catch (e) {
    if (isCephError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** Sets one image-metadata key on the header of image `id` (a map of one entry, as librbd sends). */
export async function headerMetadataSet(io: IoCtx, id: string, key: string, value: string): Promise<void> {
  const count = Buffer.alloc(4);
  count.writeUInt32LE(1, 0);
  const input = Buffer.concat([count, encodeBytes(Buffer.from(key, 'utf8')), encodeBytes(Buffer.from(value, 'utf8'))]);
  await io.exec(`rbd_header.${id}`, 'rbd', 'metadata_set', input, 16);
}

/** CEPH_NOSNAP: the image head, not one of its snapshots. */
const NOSNAP = 0xfffffffffffffffen;

/** The size of image `id`'s head in bytes (rbd.get_size); undefined when its header is gone. */
export async function headerSize(io: IoCtx, id: string): Promise<number | undefined> {
  const input = Buffer.alloc(8);
  input.writeBigUInt64LE(NOSNAP, 0);
  try {
    const out = await io.exec(`rbd_header.${id}`, 'rbd', 'get_size', input, 64);
    if (out.length < 9) throw new Error(`rbd.get_size ${io.poolName}/${id}: short reply (${out.length} bytes)`);
    return Number(out.readBigUInt64LE(1)); // after the u8 object order
  } catch (e) {
    if (isCephError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** Where an image's parent is: its pool and image ID. */
export interface ParentRef {
  poolId: number;
  imageId: string;
}

/**
 * The parent of image `id` (rbd.parent_get: cls::rbd::ParentImageSpec, versioned: u8 version,
 * u8 compat, u32 length, then i64 pool, string namespace, string image ID, u64 snapshot ID).
 * undefined when it has none (pool -1) or its header is gone. Like librbd's refresh, a head
 * without a parent key reports the one its oldest snapshot recorded, if any: an image flattened
 * after a snapshot still counts as a clone here (the safe side for a depth limit).
 */
export async function headerParent(io: IoCtx, id: string): Promise<ParentRef | undefined> {
  let out: Buffer;
  try {
    out = await io.exec(`rbd_header.${id}`, 'rbd', 'parent_get', Buffer.alloc(0), 1024);
  } catch (e) {
    if (isCephError(e, 'ENOENT')) return undefined;
    throw e;
  }
  const what = `rbd.parent_get ${io.poolName}/${id}`;
  if (out.length < 6 + 8) throw new Error(`${what}: short reply (${out.length} bytes)`);
  let at = 6;
  const poolId = Number(out.readBigInt64LE(at));
  at += 8;
  const namespace = decodeBytes(out.subarray(at), what);
  at += 4 + namespace.length;
  const imageId = decodeBytes(out.subarray(at), what).toString('utf8');
  return poolId < 0 || imageId === '' ? undefined : { poolId, imageId };
}
