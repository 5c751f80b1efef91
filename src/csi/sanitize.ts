// Redaction of CSI messages for logging. Which fields are secret is read from
// the proto itself (`[(csi_secret) = true]`), so a field the spec marks secret
// in a future version is covered as soon as csi.proto is updated.
import protobuf from 'protobufjs/light.js';
import { messageType } from './proto.js';

export const STRIPPED = '***stripped***';

function isSecret(field: protobuf.Field): boolean {
  return field.options?.['(csi_secret)'] === true;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function stripField(field: protobuf.Field, value: unknown): unknown {
  if (isSecret(field)) return STRIPPED;
  const sub = field.resolvedType;
  if (!(sub instanceof protobuf.Type) || !isObject(value)) return structuredClone(value);
  if (field.map) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stripValue(sub, v)]));
  }
  if (Array.isArray(value)) return value.map((v: unknown) => stripValue(sub, v));
  return stripMessage(sub, value);
}

function stripValue(type: protobuf.Type, value: unknown): unknown {
  return isObject(value) ? stripMessage(type, value) : structuredClone(value);
}

function stripMessage(type: protobuf.Type, message: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message)) {
    const field = type.fields[key];
    // Keys that are not fields (a oneof's virtual name) are copied as they are.
    out[key] = field ? stripField(field, value) : structuredClone(value);
  }
  return out;
}

/**
 * A deep copy of `message` (decoded or input shape) in which every field
 * marked csi_secret, at any depth, is replaced by "***stripped***". The input
 * is never modified. `type` is a CSI message name ('NodeStageVolumeRequest')
 * or a protobufjs Type.
 */
export function stripSecrets(type: string | protobuf.Type, message: object): Record<string, unknown> {
  return stripMessage(typeof type === 'string' ? messageType(type) : type, message);
}
