// Kubernetes' protobuf request bodies (Content-Type application/vnd.kubernetes.protobuf), turned
// into the JSON object the rest of the server handles. The body is the 4-byte magic "k8s\0" and a
// runtime.Unknown: {typeMeta{apiVersion=1, kind=2}=1, raw=2, contentEncoding=3, contentType=4},
// whose raw bytes are the object encoded by its kind's generated.proto (protobuf-messages.ts).
//
// Decoding is bounded: the body is already size-limited, every read is bounds-checked
// (protobuf-wire.ts), and the message tables are not recursive, so nesting is as deep as the
// deepest table (ClusterRole → AggregationRule → LabelSelector → requirement). Anything malformed
// is a BadRequestError (400) naming what was wrong. Endpoints of kinds without a table do not take
// protobuf at all (a 415: http-io.ts bodyTypesFor); an envelope naming such a kind is a 400.
import { rfc3339 } from '../api/time.js';
import { checkJsonTextDepth, NestingError } from '../api/nesting.js';
import { BadRequestError } from '../store/errors.js';
import { type FieldSpec, type MessageSpec, PROTOBUF_KINDS } from './protobuf-messages.js';
import { type Field, fields, ProtobufError, utf8, WIRE_BYTES, WIRE_VARINT } from './protobuf-wire.js';

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

const MAGIC = [0x6b, 0x38, 0x73, 0x00];

/** Whether a kind ("apiVersion kind", as "v1 Secret") is decoded from protobuf. */
export function decodesProtobuf(apiVersion: string, kind: string): boolean {
  return PROTOBUF_KINDS.has(`${apiVersion} ${kind}`);
}

/** The object a protobuf body carries, as JSON with apiVersion and kind; a 400 when it is not one. */
export function decodeProtobufBody(body: Uint8Array): Record<string, unknown> {
  try {
    return decodeEnvelope(body);
  } catch (err) {
    if (err instanceof ProtobufError) throw new BadRequestError(`the request body is not a valid Kubernetes protobuf object: ${err.message}`);
    throw err;
  }
}

function decodeEnvelope(body: Uint8Array): Record<string, unknown> {
  if (body.length < MAGIC.length || MAGIC.some((b, i) => body[i] !== b)) throw new ProtobufError('it does not start with the "k8s\\x00" prefix');
  let apiVersion = '';
  let kind = '';
  let raw: Uint8Array | undefined;
  let contentEncoding = '';
  for (const f of fields(body.subarray(MAGIC.length))) {
    if (f.number === 1) {
      expectWire(f, WIRE_BYTES, 'Unknown.typeMeta');
      for (const t of fields(f.bytes)) {
        if (t.number === 1) apiVersion = utf8(expectWire(t, WIRE_BYTES, 'TypeMeta.apiVersion').bytes, 'TypeMeta.apiVersion');
        else if (t.number === 2) kind = utf8(expectWire(t, WIRE_BYTES, 'TypeMeta.kind').bytes, 'TypeMeta.kind');
      }
    } else if (f.number === 2) raw = expectWire(f, WIRE_BYTES, 'Unknown.raw').bytes;
    else if (f.number === 3) contentEncoding = utf8(expectWire(f, WIRE_BYTES, 'Unknown.contentEncoding').bytes, 'Unknown.contentEncoding');
  }
  if (contentEncoding !== '') throw new ProtobufError(`content encoding "${contentEncoding}" is not supported`);
  if (kind === '' || apiVersion === '') throw new ProtobufError('its type (apiVersion and kind) is missing');
  const spec = PROTOBUF_KINDS.get(`${apiVersion} ${kind}`);
  if (spec === undefined) throw new BadRequestError(`no kind "${kind}" is registered for protobuf decoding in version "${apiVersion}"`);
  return { apiVersion, kind, ...decodeMessage(raw ?? new Uint8Array(), spec, kind) };
}

function expectWire(f: Field, wireType: number, path: string): Field {
  if (f.wireType !== wireType) throw new ProtobufError(`${path} (field ${f.number}) has wire type ${f.wireType}, expected ${wireType}`);
  return f;
}

function decodeMessage(buf: Uint8Array, spec: MessageSpec, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields(buf)) {
    const field = spec.fields[f.number];
    if (field === undefined) continue; // unknown fields are skipped, as Go's generated code does
    const at = `${path}.${field.name}`;
    if (field.map === true) {
      const [key, value] = decodeMapEntry(expectWire(f, WIRE_BYTES, at).bytes, field, at);
      const map = (out[field.name] ??= {}) as Record<string, unknown>;
      // An own property whatever the key ("__proto__" included), as JSON.parse makes it.
      Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
    } else if (field.repeated === true) {
      ((out[field.name] ??= []) as unknown[]).push(decodeValue(f, field, at) ?? null);
    } else {
      out[field.name] = decodeValue(f, field, at);
    }
  }
  for (const field of Object.values(spec.fields)) {
    if (!(field.name in out)) continue;
    if (out[field.name] === undefined || (field.keep !== true && isZero(out[field.name]))) delete out[field.name];
  }
  return out;
}

function decodeMapEntry(bytes: Uint8Array, field: FieldSpec, path: string): [string, unknown] {
  let key = '';
  let value: unknown = '';
  for (const f of fields(bytes)) {
    if (f.number === 1) key = utf8(expectWire(f, WIRE_BYTES, `${path} key`).bytes, `${path} key`);
    else if (f.number === 2) value = decodeValue(f, field, `${path}[${JSON.stringify(key)}]`);
  }
  return [key, value];
}

function decodeValue(f: Field, field: FieldSpec, path: string): unknown {
  const type = field.type;
  if (typeof type !== 'string') return decodeMessage(expectWire(f, WIRE_BYTES, path).bytes, type, path);
  switch (type) {
    case 'string':
      return utf8(expectWire(f, WIRE_BYTES, path).bytes, path);
    case 'bytes':
      return Buffer.from(expectWire(f, WIRE_BYTES, path).bytes).toString('base64');
    case 'bool':
      return expectWire(f, WIRE_VARINT, path).varint !== 0n;
    case 'int32':
      return Number(BigInt.asIntN(32, expectWire(f, WIRE_VARINT, path).varint));
    case 'int64':
      return int64(expectWire(f, WIRE_VARINT, path).varint, path);
    case 'time':
      return decodeTime(expectWire(f, WIRE_BYTES, path).bytes, path);
    case 'fieldsV1':
      return decodeFieldsV1(expectWire(f, WIRE_BYTES, path).bytes, path);
    case 'quantity': {
      let text = '';
      for (const q of fields(expectWire(f, WIRE_BYTES, path).bytes)) if (q.number === 1) text = utf8(expectWire(q, WIRE_BYTES, `${path}.string`).bytes, `${path}.string`);
      return text;
    }
  }
}

function int64(varint: bigint, path: string): number {
  const value = BigInt.asIntN(64, varint);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw new ProtobufError(`${path}: ${value} is out of range`);
  return Number(value);
}

/** The earliest and latest seconds metav1.Time allows: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
const MIN_SECONDS = -62135596800;
const MAX_SECONDS = 253402300799;

/** metav1.Time {seconds=1, nanos=2} as RFC 3339 with whole seconds; the zero time (an empty message) is left out. */
function decodeTime(bytes: Uint8Array, path: string): string | undefined {
  let seconds = 0;
  let nanos = 0;
  for (const f of fields(bytes)) {
    if (f.number === 1) seconds = int64(expectWire(f, WIRE_VARINT, `${path}.seconds`).varint, `${path}.seconds`);
    else if (f.number === 2) nanos = Number(BigInt.asIntN(32, expectWire(f, WIRE_VARINT, `${path}.nanos`).varint));
  }
  if (seconds === 0 && nanos === 0) return undefined;
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS) throw new ProtobufError(`${path}: ${seconds} seconds is outside years 1 to 9999`);
  if (nanos < 0 || nanos > 999_999_999) throw new ProtobufError(`${path}: nanos ${nanos} is outside 0 to 999999999`);
  return rfc3339(new Date(seconds * 1000));
}

/** FieldsV1 {Raw=1}: the managed field set, JSON text carried as bytes. */
function decodeFieldsV1(bytes: Uint8Array, path: string): unknown {
  let raw: Uint8Array | undefined;
  for (const f of fields(bytes)) if (f.number === 1) raw = expectWire(f, WIRE_BYTES, path).bytes;
  if (raw === undefined || raw.length === 0) return undefined;
  const text = utf8(raw, path);
  try {
    checkJsonTextDepth(text, path);
    return JSON.parse(text);
  } catch (err) {
    if (err instanceof NestingError) throw new ProtobufError(err.message);
    throw new ProtobufError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

function isZero(value: unknown): boolean {
  if (value === '' || value === 0 || value === false || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}
