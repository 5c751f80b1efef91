// Fast helpers for JSON-shaped data (what the store keeps: plain objects, arrays, strings,
// numbers, booleans, null). Each write compares and copies objects several times; doing that by
// serialising (JSON.stringify + JSON.parse + a deep compare) or with structuredClone was a large
// share of a write's CPU. Anything that is not plain data (a Date, a class instance, an object
// with toJSON) falls back to the exact, slower way, so the results never differ.
import { isDeepStrictEqual } from 'node:util';

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && typeof (value as { toJSON?: unknown }).toJSON !== 'function';
}

/** JSON leaves undefined, functions and symbols out of objects (and writes null for them in arrays). */
function isOmitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

/** What a primitive becomes in JSON: NaN and ±Infinity are null. */
function jsonPrimitive(value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

function slowEqual(a: unknown, b: unknown): boolean {
  const sa = JSON.stringify(a);
  const sb = JSON.stringify(b);
  if (sa === undefined || sb === undefined) return sa === sb;
  return isDeepStrictEqual(JSON.parse(sa), JSON.parse(sb));
}

/** Equal as JSON would store them: members whose value is undefined are absent, key order does not matter. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    if ((typeof a === 'object' && a !== null) || (typeof b === 'object' && b !== null)) return slowEqual(a, b);
    if (isOmitted(a) || isOmitted(b)) return isOmitted(a) && isOmitted(b);
    return jsonPrimitive(a) === jsonPrimitive(b);
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      const x: unknown = a[i];
      const y: unknown = b[i];
      if (!jsonEqual(isOmitted(x) ? null : x, isOmitted(y) ? null : y)) return false;
    }
    return true;
  }
  if (Array.isArray(b)) return false;
  if (!isPlainObject(a) || !isPlainObject(b)) return slowEqual(a, b);
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let present = 0;
  for (const key of Object.keys(ra)) {
    const x = ra[key];
    if (isOmitted(x)) continue;
    present++;
    if (!Object.hasOwn(rb, key)) return false;
    const y = rb[key];
    if (isOmitted(y) || !jsonEqual(x, y)) return false;
  }
  for (const key of Object.keys(rb)) if (!isOmitted(rb[key])) present--;
  return present === 0;
}

function setOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  // A "__proto__" member (JSON.parse makes it an own property) must stay a member.
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

/** A deep copy, as structuredClone makes it, but quicker for plain data. */
export function cloneData<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = cloneData(value[i] as unknown);
    return out as T;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return structuredClone(value);
  const out: Record<string, unknown> = {};
  const rec = value as Record<string, unknown>;
  for (const key of Object.keys(rec)) setOwn(out, key, cloneData(rec[key]));
  return out as T;
}

/** A copy without null members ("absent" in Kubernetes objects); nulls inside arrays stay. */
export function withoutNulls(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = withoutNulls(value[i] as unknown);
    return out;
  }
  const out: Record<string, unknown> = {};
  const rec = value as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    const v = rec[key];
    if (v !== null) setOwn(out, key, withoutNulls(v));
  }
  return out;
}
