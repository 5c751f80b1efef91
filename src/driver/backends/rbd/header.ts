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
