// FieldsV1, the wire form of a field set in metadata.managedFields: a JSON trie whose keys are
// path elements (f:, k:, v:, i:) and "." for "this path itself", every leaf an empty object, e.g.
// {"f:metadata":{"f:labels":{".":{},"f:app":{}}}}. Keys are written in structured-merge-diff's
// order so the bytes match what kube-apiserver stores.
import { FieldSet, sortedKeys } from './field-set.js';

export type FieldsV1 = { [element: string]: FieldsV1 };

export function encodeFieldsV1(set: FieldSet): FieldsV1 {
  const out: FieldsV1 = {};
  for (const key of sortedKeys(set.children.keys())) {
    const child = set.children.get(key) as FieldSet;
    if (child.isEmpty()) continue;
    const inner = encodeFieldsV1(child);
    out[key] = child.member && Object.keys(inner).length > 0 ? { '.': {}, ...inner } : inner;
  }
  return out;
}

export class FieldsV1Error extends Error {}

const ELEMENT = /^(f:.*|k:\{.*\}|v:.+|i:\d+)$/s;

/** The set a FieldsV1 value describes; FieldsV1Error when it is not one. */
export function decodeFieldsV1(value: unknown): FieldSet {
  const set = new FieldSet();
  const walk = (node: unknown, into: FieldSet, where: string): void => {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) throw new FieldsV1Error(`${where}: expected an object`);
    const entries = Object.entries(node as Record<string, unknown>);
    if (entries.length === 0 && into !== set) into.member = true;
    for (const [key, child] of entries) {
      if (key === '.') {
        if (into === set) throw new FieldsV1Error('"." at the root of a field set');
        into.member = true;
        continue;
      }
      if (!ELEMENT.test(key)) throw new FieldsV1Error(`${where}: ${JSON.stringify(key)} is not a path element`);
      if (key.startsWith('k:') || key.startsWith('v:')) {
        try {
          JSON.parse(key.slice(2));
        } catch {
          throw new FieldsV1Error(`${where}: ${JSON.stringify(key)} is not a path element`);
        }
      }
      let next = into.children.get(key);
      if (next === undefined) {
        next = new FieldSet();
        into.children.set(key, next);
      }
      walk(child, next, `${where}.${key}`);
    }
  };
  walk(value, set, 'fieldsV1');
  return set;
}
