// Ownership bookkeeping, as structured-merge-diff's Updater does it. An Update (create, PUT, any
// non-apply patch) takes every field it added or changed from whoever owned it, without
// conflicts, and adds them to its manager's entry. An Apply merges the configuration into the
// live object, removes what the same manager applied last time and no longer states (unless
// someone else owns it), and fails with conflicts when it would change a field another manager
// owns, unless forced, in which case it takes the field.
import type { KubeObject } from '../../api/types/meta.js';
import { ApiError } from '../../store/errors.js';
import { cloneData, jsonEqual } from '../../store/json.js';
import { FieldSet, type Path, pathString } from './field-set.js';
import { BEFORE_FIRST_APPLY, capUpdateManagers, describeManager, identity, type Managed, type ManagerSet, now } from './managed-fields.js';
import { compare, type Comparison, merge, removeFields, type Schema, toFieldSet } from './typed-value.js';

/** Paths nobody owns: the identity and bookkeeping fields of metadata (upstream's stripMetaManager). */
const STRIPPED = FieldSet.of(
  ['f:apiVersion'],
  ['f:kind'],
  ['f:metadata'],
  ['f:metadata', 'f:name'],
  ['f:metadata', 'f:namespace'],
  ['f:metadata', 'f:creationTimestamp'],
  ['f:metadata', 'f:selfLink'],
  ['f:metadata', 'f:uid'],
  ['f:metadata', 'f:clusterName'],
  ['f:metadata', 'f:generation'],
  ['f:metadata', 'f:managedFields'],
  ['f:metadata', 'f:resourceVersion'],
);

export interface Scope extends Schema {
  /** 'status' for writes through the status subresource. */
  subresource?: string;
}

/** The fields a write through `scope` may own: status only through /status, never status on the main resource of a kind with the subresource. */
export function ownable(scope: Scope, set: FieldSet): FieldSet {
  const rest = set.difference(STRIPPED).without(['f:metadata', 'f:managedFields']);
  if (scope.subresource === 'status') return rest.only(['f:status']);
  return scope.resource.hasStatus ? rest.without(['f:status']) : rest;
}

function filtered(scope: Scope, c: Comparison): Comparison {
  return { added: ownable(scope, c.added), modified: ownable(scope, c.modified), removed: ownable(scope, c.removed) };
}

/** The object as ownership sees it: without its managedFields. */
export function withoutManagedFields<T extends KubeObject>(obj: T): T {
  const copy = cloneData(obj);
  delete (copy.metadata as { managedFields?: unknown }).managedFields;
  return copy;
}

export interface Conflict {
  manager: ManagerSet;
  path: Path;
}

/** 409 Conflict as kube-apiserver words it, one FieldManagerConflict cause per field. */
export class ApplyConflictError extends ApiError {
  constructor(conflicts: readonly Conflict[]) {
    super(409, 'Conflict', conflictMessage(conflicts), {
      causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${describeManager(c.manager)}`, field: pathString(c.path) })),
    });
  }
}

function conflictMessage(conflicts: readonly Conflict[]): string {
  const [only] = conflicts;
  if (conflicts.length === 1 && only !== undefined) return `Apply failed with 1 conflict: conflict with ${describeManager(only.manager)}: ${pathString(only.path)}`;
  const byManager = new Map<string, Path[]>();
  for (const c of conflicts) byManager.set(describeManager(c.manager), [...(byManager.get(describeManager(c.manager)) ?? []), c.path]);
  const lines = [...byManager.keys()].sort().flatMap((m) => [`conflicts with ${m}:`, ...(byManager.get(m) ?? []).map((p) => `- ${pathString(p)}`)]);
  return `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
}

/**
 * Takes what changed from `before` to `after` away from every manager but `skip`; the changed
 * fields of others are conflicts, refused unless `force`. Returns what changed.
 */
function transfer(scope: Scope, before: unknown, after: unknown, managed: Managed, skip: string | undefined, force: boolean): Comparison {
  const c = filtered(scope, compare(scope, before, after));
  const changed = c.modified.union(c.added);
  const conflicts: Conflict[] = [];
  for (const [id, m] of managed) {
    if (id === skip) continue;
    for (const path of m.set.intersection(changed).members()) conflicts.push({ manager: m, path });
  }
  if (conflicts.length > 0 && !force) throw new ApplyConflictError(conflicts.sort((a, b) => identity(a.manager).localeCompare(identity(b.manager))));
  for (const [id, m] of managed) {
    if (id === skip) continue;
    const rest = m.set.difference(changed).difference(c.removed);
    if (rest.isEmpty()) managed.delete(id);
    else managed.set(id, { ...m, set: rest });
  }
  return c;
}

export interface Writer {
  manager: string;
  apiVersion: string;
}

function entryOf(scope: Scope, writer: Writer, operation: 'Apply' | 'Update'): Omit<ManagerSet, 'set'> {
  return { manager: writer.manager, operation, apiVersion: writer.apiVersion, ...(scope.subresource ? { subresource: scope.subresource } : {}) };
}

/**
 * Records an Update from `before` (undefined on create: an empty object) to `after` in `managed`
 * (changed in place): the writer's entry gains what it changed and its time is now; nothing
 * changed, nothing recorded.
 */
export function recordUpdate(scope: Scope, writer: Writer, before: KubeObject | undefined, after: KubeObject, managed: Managed): void {
  // managedFields themselves are an atomic list nobody owns (STRIPPED): compared, never recorded.
  const c = transfer(scope, before ?? emptyLike(after), after, managed, undefined, true);
  const taken = c.modified.union(c.added);
  if (!taken.isEmpty()) {
    const entry = entryOf(scope, writer, 'Update');
    const id = identity(entry);
    const previous = managed.get(id)?.set ?? new FieldSet();
    managed.set(id, { ...entry, set: previous.union(taken), time: now() });
  }
  capUpdateManagers(managed);
}

/** The object an update creates from: the top-level structs exist, as in a Go zero value. */
function emptyLike(obj: KubeObject): KubeObject {
  const empty: Record<string, unknown> = { apiVersion: obj.apiVersion, kind: obj.kind, metadata: {} };
  for (const key of ['spec', 'status']) if (key in obj) empty[key] = {};
  return empty as unknown as KubeObject;
}

/**
 * Applies `config` for `writer` to `live` (undefined: the object does not exist yet). Returns the
 * object to store and updates `managed` in place; throws ApplyConflictError.
 */
export function apply(scope: Scope, writer: Writer, live: KubeObject | undefined, config: KubeObject, managed: Managed, force: boolean): KubeObject {
  const base = live === undefined ? emptyLike(config) : withoutManagedFields(live);
  if (live !== undefined && managed.size === 0) {
    // Fields set before anyone applied belong to someone: an applier must not silently take them.
    recordUpdate(scope, { manager: BEFORE_FIRST_APPLY, apiVersion: writer.apiVersion }, emptyLike(base), base, managed);
  }
  const entry = entryOf(scope, writer, 'Apply');
  const id = identity(entry);
  const last = managed.get(id);
  const set = ownable(scope, toFieldSet(scope, config));
  managed.set(id, { ...entry, set, ...(last?.time === undefined ? {} : { time: last.time }) });

  const merged = merge(scope, base, config) as KubeObject;
  if (last !== undefined) {
    // Prune: what this manager applied last time, no longer applies, and nobody else owns.
    let owned = new FieldSet();
    for (const m of managed.values()) owned = owned.union(m.set);
    const gone = last.set.difference(owned);
    removeFields(merged as unknown as Record<string, unknown>, prunable(gone, owned));
  }
  transfer(scope, base, merged, managed, id, force);
  if (!jsonEqual(base, merged)) {
    const mine = managed.get(id);
    if (mine !== undefined) managed.set(id, { ...mine, time: now() });
  }
  capUpdateManagers(managed);
  return merged;
}

/**
 * The paths of `gone` to remove: not one with an owned field below it (the owner keeps it), and
 * not the key fields of a list item that stays.
 */
function prunable(gone: FieldSet, owned: FieldSet): Path[] {
  return gone.members().filter((path) => {
    if (owned.hasBelow(path)) return false;
    const parent = path[path.length - 2];
    const leaf = path[path.length - 1] ?? '';
    if (parent?.startsWith('k:') && leaf.startsWith('f:')) {
      const itemPath = path.slice(0, -1);
      const itemRemoved = gone.has(itemPath) && !owned.hasBelow(itemPath);
      const isKey = Object.hasOwn(JSON.parse(parent.slice(2)) as object, leaf.slice(2));
      if (isKey && !itemRemoved) return false;
    }
    return true;
  });
}
