// Strategic merge patch (application/strategic-merge-patch+json) with apimachinery's semantics:
// maps merge recursively and null deletes; a list whose patch strategy is "merge" merges its
// elements by the merge key (maps) or as a set (scalars); any other list is replaced. The
// directives kubectl sends are honoured: "$patch" (replace, delete, merge) in a map or a list
// element, "$setElementOrder/<list>", "$retainKeys" and "$deleteFromPrimitiveList/<list>".
//
// The metadata comes from the kinds' schemas (api/patch-meta.ts). A malformed patch is a 400 in
// apimachinery's words ("invalid patch format of primitive list", …); "$retainKeys" that leaves out
// a key the patch sets is kube-apiserver's generic 422. Where kube-apiserver answers a 500 (an
// unknown "$patch", an element without its merge key), this server answers a 400 with the same words.
import type { PatchMeta } from '../api/patch-meta.js';
import { ApiError, BadRequestError } from '../store/errors.js';

const PATCH = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ELEMENT_ORDER = '$setElementOrder/';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList/';

type JsonMap = Record<string, unknown>;

function isObject(value: unknown): value is JsonMap {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function setMember(obj: JsonMap, key: string, value: unknown): void {
  // "__proto__" is a member like any other, never the prototype.
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Go's %v of a decoded JSON value, as apimachinery's error messages print patches. */
function goValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(goValue).join(' ')}]`;
  if (isObject(value)) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${k}:${goValue(value[k])}`);
    return `map[${entries.join(' ')}]`;
  }
  if (value === null) return '<nil>';
  return String(value);
}

/** Identity of a scalar or merge-key value: its JSON text (lookups stay linear on hostile lists). */
function identity(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined';
}

function isDirective(key: string): boolean {
  return key === PATCH || key === RETAIN_KEYS || key.startsWith(SET_ELEMENT_ORDER) || key.startsWith(DELETE_FROM_PRIMITIVE_LIST);
}

function badRequest(message: string): BadRequestError {
  return new BadRequestError(message);
}

/** Applies a strategic merge patch to a copy of `original` described by `meta`. */
export function strategicMergePatch(original: unknown, patch: unknown, meta: PatchMeta): unknown {
  if (!isObject(patch)) throw badRequest(`json: cannot unmarshal ${Array.isArray(patch) ? 'array' : patch === null ? 'null' : typeof patch} into Go value of type map[string]interface {}`);
  return mergeMap(isObject(original) ? original : undefined, patch, meta);
}

function mergeMap(original: JsonMap | undefined, patch: JsonMap, meta: PatchMeta): JsonMap {
  const directive = patch[PATCH];
  if (directive !== undefined) {
    if (directive === 'replace') return withoutDirectives(patch, meta);
    if (directive === 'delete') return {};
    if (directive !== 'merge') throw badRequest(`unknown patch type: ${goValue(directive)} in map: ${goValue(patch)}`);
  }
  const out: JsonMap = {};
  for (const [k, v] of Object.entries(original ?? {})) setMember(out, k, v);

  if (Object.hasOwn(patch, RETAIN_KEYS)) {
    const retain = patch[RETAIN_KEYS];
    if (!Array.isArray(retain) || retain.some((k) => typeof k !== 'string')) throw badRequest('invalid patch format of retainKeys');
    for (const k of Object.keys(patch)) {
      if (!k.startsWith('$') && !retain.includes(k)) {
        // kube-apiserver's generic 422 for apimachinery's ErrPatchContentNotMatchRetainKeys.
        throw new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', {});
      }
    }
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }

  for (const [k, v] of Object.entries(patch)) {
    if (!k.startsWith(DELETE_FROM_PRIMITIVE_LIST)) continue;
    const field = k.slice(DELETE_FROM_PRIMITIVE_LIST.length);
    if (!Array.isArray(v)) throw badRequest('invalid patch format of primitive list');
    const current = out[field];
    const gone = new Set(v.map(identity));
    if (Array.isArray(current)) setMember(out, field, current.filter((item) => !gone.has(identity(item))));
  }

  for (const [k, v] of Object.entries(patch)) {
    // Any other member whose name begins with "$" is an ordinary member.
    if (isDirective(k)) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    const field = meta.field(k);
    const current = Object.hasOwn(out, k) ? out[k] : undefined;
    if (isObject(v)) setMember(out, k, mergeMap(isObject(current) ? current : undefined, v, field));
    else if (Array.isArray(v)) setMember(out, k, mergeList(Array.isArray(current) ? current : [], v, field));
    else setMember(out, k, v);
  }

  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith(SET_ELEMENT_ORDER)) continue;
    const field = k.slice(SET_ELEMENT_ORDER.length);
    if (!Array.isArray(order)) throw badRequest('invalid patch format of setElementOrder list');
    const list = out[field];
    const live = original !== undefined && Array.isArray(original[field]) ? (original[field] as unknown[]) : [];
    if (Array.isArray(list)) setMember(out, field, orderElements(list, order, live, meta.field(field)));
  }
  return out;
}

/** A map (or list) from a patch as a value: directives removed, nulls dropped. */
function withoutDirectives(patch: JsonMap, meta: PatchMeta): JsonMap {
  const rest: JsonMap = {};
  for (const [k, v] of Object.entries(patch)) if (k !== PATCH) setMember(rest, k, v);
  return mergeMap(undefined, rest, meta);
}

function mergeList(original: readonly unknown[], patch: readonly unknown[], meta: PatchMeta): unknown[] {
  const items = meta.items();
  if (!meta.strategies.includes('merge')) {
    return patch.map((p) => (isObject(p) ? mergeMap(undefined, p, items) : structuredClone(p)));
  }
  // A "{$patch: replace}" element: the rest of the patch list is the new list.
  const isReplace = (p: unknown): boolean => isObject(p) && p[PATCH] === 'replace';
  if (patch.some(isReplace)) return patch.filter((p) => !isReplace(p)).map((p) => (isObject(p) ? mergeMap(undefined, p, items) : structuredClone(p)));
  const mergeKey = meta.mergeKey;
  if (mergeKey === undefined) {
    // Scalars merged as a set: the original's order, then what the patch adds.
    const out = [...original];
    const present = new Set(original.map(identity));
    for (const p of patch) {
      if (isObject(p) || Array.isArray(p)) throw badRequest('invalid patch format of primitive list');
      if (!present.has(identity(p))) out.push(p);
      present.add(identity(p));
    }
    return out;
  }
  // As apimachinery: the "$patch: delete" elements first (by merge key), then the rest merged in.
  const deleted = new Set<string>();
  const rest: JsonMap[] = [];
  for (const p of patch) {
    if (!isObject(p)) throw badRequest(`invalid patch: element ${goValue(p)} of a list merged by ${mergeKey} is not a map`);
    if (!Object.hasOwn(p, PATCH)) {
      if (!Object.hasOwn(p, mergeKey)) throw badRequest(`map: ${goValue(p)} does not contain declared merge key: ${mergeKey}`);
      rest.push(p);
    } else if (p[PATCH] === 'delete') {
      if (!Object.hasOwn(p, mergeKey)) throw badRequest(`map: ${goValue(p)} does not contain declared merge key: ${mergeKey}`);
      deleted.add(identity(p[mergeKey]));
    } else if (p[PATCH] === 'merge') {
      throw badRequest('merging lists cannot yet be specified in the patch');
    } else {
      throw badRequest(`unknown patch type: ${goValue(p[PATCH])} in map: ${goValue(p)}`);
    }
  }
  // The first element with each merge key is the one a patch element merges into.
  const out: unknown[] = original.filter((o) => !(isObject(o) && deleted.has(identity(o[mergeKey]))));
  const positions = new Map<string, number>();
  out.forEach((o, i) => {
    if (!isObject(o)) return;
    const id = identity(o[mergeKey]);
    if (!positions.has(id)) positions.set(id, i);
  });
  for (const p of rest) {
    const id = identity(p[mergeKey]);
    const at = positions.get(id);
    if (at !== undefined) out[at] = mergeMap(out[at] as JsonMap, p, items);
    else {
      positions.set(id, out.length);
      out.push(mergeMap(undefined, p, items));
    }
  }
  return out;
}

/**
 * "$setElementOrder/<list>", as apimachinery orders: the elements the order names (the patch's)
 * sorted by it, the others (the server's own) in their live order, then the two merged, each
 * server element placed before the first patch element that follows it in the live list.
 */
function orderElements(list: readonly unknown[], order: readonly unknown[], live: readonly unknown[], meta: PatchMeta): unknown[] {
  const mergeKey = meta.mergeKey;
  const keyOf = (item: unknown): string => identity(mergeKey !== undefined && isObject(item) ? item[mergeKey] : item);
  const ranksIn = (items: readonly unknown[]): Map<string, number> => {
    const ranks = new Map<string, number>();
    items.forEach((o, i) => {
      if (!ranks.has(keyOf(o))) ranks.set(keyOf(o), i);
    });
    return ranks;
  };
  const wanted = ranksIn(order);
  const liveRank = ranksIn(live);
  const patchItems = list.filter((item) => wanted.has(keyOf(item)));
  const serverItems = list.filter((item) => !wanted.has(keyOf(item)));
  patchItems.sort((a, b) => (wanted.get(keyOf(a)) ?? 0) - (wanted.get(keyOf(b)) ?? 0));
  const out: unknown[] = [];
  let i = 0;
  let j = 0;
  while (i < serverItems.length || j < patchItems.length) {
    const left = serverItems[i];
    const right = patchItems[j];
    if (j >= patchItems.length) {
      out.push(left);
      i++;
    } else if (i >= serverItems.length) {
      out.push(right);
      j++;
    } else {
      const l = liveRank.get(keyOf(left));
      const r = liveRank.get(keyOf(right));
      if (l !== undefined && r !== undefined && l < r) {
        out.push(left);
        i++;
      } else {
        out.push(right);
        j++;
      }
    }
  }
  return out;
}
