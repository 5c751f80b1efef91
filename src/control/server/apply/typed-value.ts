// The operations structured-merge-diff performs on objects given their list types: the field set
// an object (an apply configuration) sets, the comparison of two versions of an object (what an
// update added, modified and removed), the merge of an apply configuration into a live object,
// and the removal of fields by path. Maps (structs and string maps alike) are granular; lists
// are as their ListType says (see list-types.ts).
import type { ResourceInfo } from '../../api/registry.js';
import { cloneData, jsonEqual } from '../../store/json.js';
import { FieldSet, fieldElement, keyElement, keyFields, type Path, pathString, valueElement } from './field-set.js';
import type { ListType, ListTypes } from './list-types.js';

export interface Schema {
  resource: ResourceInfo;
  listTypes: ListTypes;
}

type Obj = Record<string, unknown>;

function isMap(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function elementOf(item: unknown, type: ListType): string | undefined {
  if (type.type === 'map') return isMap(item) ? keyElement(item, type.keys, type.defaults) : undefined;
  return item !== null && typeof item === 'object' ? undefined : valueElement(item);
}

/**
 * The items of a granular list by path element; undefined when the list is atomic, or its items
 * do not fit its type or repeat a key (such a list is then handled whole).
 */
function itemsOf(list: readonly unknown[], type: ListType): Map<string, unknown> | undefined {
  if (type.type === 'atomic') return undefined;
  const items = new Map<string, unknown>();
  for (const item of list) {
    const element = elementOf(item, type);
    if (element === undefined || items.has(element)) return undefined;
    items.set(element, item);
  }
  return items;
}

export class DuplicateKeyError extends Error {}

/** Refuses an apply configuration whose keyed list or set repeats an item, as structured-merge-diff does. */
export function checkNoDuplicates(schema: Schema, value: unknown): void {
  const walk = (v: unknown, path: string[], names: string[]): void => {
    if (granularMap(schema, names, v)) {
      for (const [k, child] of Object.entries(v)) walk(child, [...path, fieldElement(k)], [...names, k]);
      return;
    }
    if (!Array.isArray(v)) return;
    const type = schema.listTypes.listType(schema.resource, names);
    if (type.type === 'atomic') return;
    const seen = new Set<string>();
    for (const item of v) {
      const element = elementOf(item, type);
      if (element === undefined) continue;
      if (seen.has(element)) {
        const what = type.type === 'map' ? 'key' : 'value';
        throw new DuplicateKeyError(`${pathString(path)}: duplicate entries for ${what} ${pathString([element])}`);
      }
      seen.add(element);
      if (isMap(item)) walk(item, [...path, element], names);
    }
  };
  walk(value, [], []);
}

/** A map whose members are owned one by one: any but an atomic one (the object itself always is). */
function granularMap(schema: Schema, names: readonly string[], value: unknown): value is Obj {
  return isMap(value) && (names.length === 0 || schema.listTypes.atomicMap?.(schema.resource, names) !== true);
}

function granularItems(schema: Schema, names: readonly string[], value: unknown): Map<string, unknown> | undefined {
  if (!Array.isArray(value)) return undefined;
  return itemsOf(value, schema.listTypes.listType(schema.resource, names));
}

/** The fields `value` sets (structured-merge-diff's ToFieldSet): leaves and list items, never the maps holding them. */
export function toFieldSet(schema: Schema, value: unknown): FieldSet {
  const set = new FieldSet();
  const walk = (v: unknown, path: string[], names: string[]): void => {
    if (granularMap(schema, names, v)) {
      for (const [k, child] of Object.entries(v)) if (child !== undefined) walk(child, [...path, fieldElement(k)], [...names, k]);
      return;
    }
    const items = granularItems(schema, names, v);
    if (items === undefined) {
      if (path.length > 0) set.insert(path);
      return;
    }
    for (const [element, item] of items) {
      set.insert([...path, element]);
      if (isMap(item)) walk(item, [...path, element], names);
    }
  };
  walk(value, [], []);
  return set;
}

export interface Comparison {
  added: FieldSet;
  modified: FieldSet;
  removed: FieldSet;
}

/** What changed from `before` to `after`: every node of an added or removed subtree, and each changed leaf. */
export function compare(schema: Schema, before: unknown, after: unknown): Comparison {
  const out: Comparison = { added: new FieldSet(), modified: new FieldSet(), removed: new FieldSet() };
  const all = (v: unknown, path: string[], names: string[], into: FieldSet): void => {
    if (path.length > 0) into.insert(path);
    if (granularMap(schema, names, v)) {
      for (const [k, child] of Object.entries(v)) if (child !== undefined) all(child, [...path, fieldElement(k)], [...names, k], into);
      return;
    }
    for (const [element, item] of granularItems(schema, names, v) ?? []) all(item, [...path, element], names, into);
  };
  const walk = (a: unknown, b: unknown, path: string[], names: string[]): void => {
    if (a === undefined && b === undefined) return;
    if (a === undefined || b === undefined) {
      all(a ?? b, path, names, a === undefined ? out.added : out.removed);
      return;
    }
    if (granularMap(schema, names, a) && granularMap(schema, names, b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[k], b[k], [...path, fieldElement(k)], [...names, k]);
      return;
    }
    const itemsA = granularItems(schema, names, a);
    const itemsB = granularItems(schema, names, b);
    if (itemsA !== undefined && itemsB !== undefined) {
      for (const element of new Set([...itemsA.keys(), ...itemsB.keys()])) walk(itemsA.get(element), itemsB.get(element), [...path, element], names);
      return;
    }
    if (!jsonEqual(a, b) && path.length > 0) out.modified.insert(path);
  };
  walk(before, after, [], []);
  return out;
}

/**
 * The order of a merged list, as structured-merge-diff orders it: the configuration's items in
 * its order, the live object's other items where they were relative to them.
 */
export function mergeOrder(live: readonly string[], config: readonly string[]): string[] {
  const inConfig = new Set(config);
  const out: string[] = [];
  const emitted = new Set<string>();
  const emit = (element: string): void => {
    out.push(element);
    emitted.add(element);
  };
  let l = 0;
  let c = 0;
  while (l < live.length || c < config.length) {
    const lk = live[l];
    const ck = config[c];
    if (lk !== undefined && emitted.has(lk)) l++;
    else if (lk !== undefined && ck !== undefined) {
      if (lk === ck) {
        emit(lk);
        l++;
        c++;
      } else if (inConfig.has(lk)) {
        emit(ck);
        c++;
      } else {
        emit(lk);
        l++;
      }
    } else if (lk !== undefined) {
      emit(lk);
      l++;
    } else if (ck !== undefined) {
      if (!emitted.has(ck)) emit(ck);
      c++;
    }
  }
  return out;
}

/** `config` merged into `live`: maps and granular lists merge member by member, anything else is replaced. */
export function merge(schema: Schema, live: unknown, config: unknown): unknown {
  const walk = (a: unknown, b: unknown, names: string[]): unknown => {
    if (b === undefined) return cloneData(a);
    if (granularMap(schema, names, a) && granularMap(schema, names, b)) {
      const out: Obj = cloneData(a);
      for (const [k, child] of Object.entries(b)) if (child !== undefined) out[k] = walk(a[k], child, [...names, k]);
      return out;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      const type = schema.listTypes.listType(schema.resource, names);
      const itemsA = itemsOf(a, type);
      const itemsB = itemsOf(b, type);
      if (itemsA !== undefined && itemsB !== undefined) {
        return mergeOrder([...itemsA.keys()], [...itemsB.keys()]).map((element) =>
          itemsB.has(element) ? walk(itemsA.get(element), itemsB.get(element), names) : cloneData(itemsA.get(element)),
        );
      }
    }
    return cloneData(b);
  };
  return walk(live, config, []);
}

/** Where `element` leads inside `container`: the key for a map, the index for a list item. */
function locate(container: unknown, element: string): { map: Obj; key: string } | { list: unknown[]; index: number } | undefined {
  const body = element.slice(2);
  if (element.startsWith('f:')) return isMap(container) && body in container ? { map: container, key: body } : undefined;
  if (!Array.isArray(container)) return undefined;
  let index = -1;
  if (element.startsWith('k:')) {
    const keys = Object.entries(keyFields(element));
    index = container.findIndex((item) => isMap(item) && keys.every(([k, v]) => jsonEqual(item[k], v)));
  } else if (element.startsWith('v:')) {
    const value: unknown = JSON.parse(body);
    index = container.findIndex((item) => jsonEqual(item, value));
  } else {
    index = Number(body);
  }
  return index >= 0 && index < container.length ? { list: container, index } : undefined;
}

/**
 * Removes the field at each path from `obj` (in place). Maps left empty by a removal go too, as
 * an empty map is not written back by the API server's own types.
 */
export function removeFields(obj: Obj, paths: readonly Path[]): void {
  for (const path of paths) {
    const chain: unknown[] = [obj];
    for (const element of path.slice(0, -1)) {
      const at = locate(chain[chain.length - 1], element);
      if (at === undefined) break;
      chain.push('map' in at ? at.map[at.key] : at.list[at.index]);
    }
    if (chain.length !== path.length) continue;
    const at = locate(chain[chain.length - 1], path[path.length - 1] as string);
    if (at === undefined) continue;
    if ('map' in at) delete at.map[at.key];
    else at.list.splice(at.index, 1);
    // Maps emptied by the removal disappear with their last member (metadata itself stays).
    for (let depth = chain.length - 1; depth >= 1; depth--) {
      const node = chain[depth];
      if (depth === 1 && path[0] === 'f:metadata') break;
      if (!isMap(node) || Object.keys(node).length > 0) break;
      const parent = chain[depth - 1];
      const slot = locate(parent, path[depth - 1] as string);
      if (slot === undefined || !('map' in slot)) break;
      delete slot.map[slot.key];
    }
  }
}
