// The protocol buffers wire format, read: varints, length-delimited fields and fixed-width values,
// each bounds-checked against the buffer, so a truncated or hostile body fails with a
// ProtobufError (which the server answers as a 400) and never reads past its end or loops. Only
// what Kubernetes' generated.proto messages use is decoded; groups (wire types 3 and 4) are
// refused, as proto2 messages without groups never contain them.

/** A body that is not a well-formed protobuf message of the type it claims to be. */
export class ProtobufError extends Error {}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_BYTES = 2;
export const WIRE_FIXED32 = 5;

export interface Field {
  number: number;
  wireType: number;
  /** The varint, for wire type 0. */
  varint: bigint;
  /** The field's bytes, for wire type 2 (a view, not a copy). */
  bytes: Uint8Array;
}

/** Reads one varint at `pos`: its value and the position after it. At most 10 bytes, as the format allows. */
export function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  // The common short varint (under 2^28: tags, lengths, small integers) without BigInt arithmetic.
  let small = 0;
  for (let i = 0; i < 4; i++) {
    if (pos + i >= buf.length) throw new ProtobufError('truncated varint');
    const byte = buf[pos + i]!;
    small |= (byte & 0x7f) << (7 * i);
    if ((byte & 0x80) === 0) return [BigInt(small), pos + i + 1];
  }
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new ProtobufError('truncated varint');
    const byte = buf[pos++]!;
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return [value, pos];
  }
  throw new ProtobufError('varint longer than 10 bytes');
}

/** A field key or length: a varint that must fit in 32 bits (without BigInt arithmetic). */
function readUint32(buf: Uint8Array, pos: number, what: string): [number, number] {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    if (pos >= buf.length) throw new ProtobufError('truncated varint');
    const byte = buf[pos++]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (value > 0xffffffff) break;
      return [value, pos];
    }
  }
  throw new ProtobufError(`${what} is not a 32-bit varint`);
}

const NO_BYTES = new Uint8Array();

/** The fields of one message, in wire order (a repeated or re-sent field appears as often as it was sent). */
export function* fields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = readUint32(buf, pos, 'a field key');
    pos = afterKey;
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (number < 1 || number > 536870911) throw new ProtobufError(`invalid field number ${number}`);
    switch (wireType) {
      case WIRE_VARINT: {
        const [varint, next] = readVarint(buf, pos);
        pos = next;
        yield { number, wireType, varint, bytes: NO_BYTES };
        break;
      }
      case WIRE_BYTES: {
        const [length, start] = readUint32(buf, pos, `the length of field ${number}`);
        if (length > buf.length - start) throw new ProtobufError(`field ${number} is ${length} bytes long but only ${buf.length - start} remain`);
        pos = start + length;
        yield { number, wireType, varint: 0n, bytes: buf.subarray(start, pos) };
        break;
      }
      case WIRE_FIXED64:
      case WIRE_FIXED32: {
        const size = wireType === WIRE_FIXED64 ? 8 : 4;
        if (pos + size > buf.length) throw new ProtobufError(`truncated fixed-width field ${number}`);
        pos += size;
        yield { number, wireType, varint: 0n, bytes: buf.subarray(pos - size, pos) };
        break;
      }
      default:
        throw new ProtobufError(`field ${number} has unsupported wire type ${wireType}`);
    }
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A string field's text; protobuf strings are UTF-8, and JSON cannot carry anything else. */
export function utf8(bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new ProtobufError(`${what} is not valid UTF-8`);
  }
}
