// metadata.managedFields in and out: entries decoded into one field set per manager identity
// (manager, operation, subresource, and the apiVersion for Update entries: the same manager
// applying and updating owns two entries), encoded back in kube-apiserver's order (Apply before
// Update, then oldest first), and the cap on Update entries (beyond 10, the oldest merge into
// "ancient-changes").
import { rfc3339 } from '../../api/time.js';
import type { FieldSet } from './field-set.js';
import { decodeFieldsV1, encodeFieldsV1, type FieldsV1 } from './fields-v1.js';

export type Operation = 'Apply' | 'Update';

export interface ManagedFieldsEntry {
  manager: string;
  operation: Operation;
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: FieldsV1;
  subresource?: string;
}

export interface ManagerSet {
  manager: string;
  operation: Operation;
  apiVersion: string;
  subresource?: string;
  time?: string;
  set: FieldSet;
}

/** Field sets by manager identity (see identity()). */
export type Managed = Map<string, ManagerSet>;

export const MAX_UPDATE_MANAGERS = 10;
export const ANCIENT_CHANGES = 'ancient-changes';
/** Who owns the fields of an object that had no managedFields when it was first applied to. */
export const BEFORE_FIRST_APPLY = 'before-first-apply';

/** The identity of a manager, as upstream's BuildManagerIdentifier (appliers keep theirs across apiVersions). */
export function identity(m: Pick<ManagerSet, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  return JSON.stringify({
    manager: m.manager,
    operation: m.operation,
    ...(m.operation === 'Apply' ? {} : { apiVersion: m.apiVersion }),
    ...(m.subresource ? { subresource: m.subresource } : {}),
  });
}

/** A manager as conflict messages name it: "kubectl-label" using v1, "x" with subresource "status"… */
export function describeManager(m: Pick<ManagerSet, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  let text = JSON.stringify(m.manager);
  if (m.subresource) text += ` with subresource ${JSON.stringify(m.subresource)}`;
  return m.operation === 'Update' ? `${text} using ${m.apiVersion}` : text;
}

export class ManagedFieldsError extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The managers of an object's managedFields; ManagedFieldsError when they do not decode, as upstream's DecodeManagedFields. */
export function decodeManagedFields(entries: unknown): Managed {
  const managed: Managed = new Map();
  if (entries === undefined || entries === null) return managed;
  if (!Array.isArray(entries)) throw new ManagedFieldsError('managedFields must be a list');
  entries.forEach((entry: unknown, i) => {
    if (!isRecord(entry)) throw new ManagedFieldsError(`managed fields entry ${i} is not an object`);
    const { manager, operation, apiVersion, time, fieldsType, fieldsV1, subresource } = entry;
    if (operation !== 'Apply' && operation !== 'Update') throw new ManagedFieldsError('operation must be `Apply` or `Update`');
    if (typeof apiVersion !== 'string' || apiVersion === '') throw new ManagedFieldsError('apiVersion must not be empty');
    if (fieldsType === undefined || fieldsType === '') throw new ManagedFieldsError(`missing fieldsType in managed fields entry ${i}`);
    if (fieldsType !== 'FieldsV1') throw new ManagedFieldsError(`invalid fieldsType ${JSON.stringify(fieldsType)} in managed fields entry ${i}`);
    if (manager !== undefined && typeof manager !== 'string') throw new ManagedFieldsError(`managed fields entry ${i}: manager must be a string`);
    if (subresource !== undefined && typeof subresource !== 'string') throw new ManagedFieldsError(`managed fields entry ${i}: subresource must be a string`);
    if (time !== undefined && (typeof time !== 'string' || Number.isNaN(Date.parse(time)))) throw new ManagedFieldsError(`managed fields entry ${i}: time is not RFC 3339`);
    let set: FieldSet;
    try {
      set = decodeFieldsV1(fieldsV1 ?? {});
    } catch (err) {
      throw new ManagedFieldsError(`error decoding fieldsV1 of managed fields entry ${i}: ${(err as Error).message}`);
    }
    const m: ManagerSet = { manager: manager ?? '', operation, apiVersion, set, ...(subresource ? { subresource } : {}), ...(time ? { time } : {}) };
    managed.set(identity(m), m);
  });
  return managed;
}

function seconds(time: string | undefined): number {
  return time === undefined ? 0 : Math.floor(Date.parse(time) / 1000);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The managedFields list for `managed`: empty sets left out, in kube-apiserver's order. */
export function encodeManagedFields(managed: Managed): ManagedFieldsEntry[] {
  return [...managed.values()]
    .filter((m) => !m.set.isEmpty())
    .sort(
      (p, q) =>
        compareStrings(p.operation, q.operation) ||
        seconds(p.time) - seconds(q.time) ||
        compareStrings(p.manager, q.manager) ||
        compareStrings(p.apiVersion, q.apiVersion) ||
        compareStrings(p.subresource ?? '', q.subresource ?? ''),
    )
    .map((m) => ({
      manager: m.manager,
      operation: m.operation,
      apiVersion: m.apiVersion,
      ...(m.time === undefined ? {} : { time: m.time }),
      fieldsType: 'FieldsV1',
      fieldsV1: encodeFieldsV1(m.set),
      ...(m.subresource ? { subresource: m.subresource } : {}),
    }));
}

/**
 * At most MAX_UPDATE_MANAGERS Update entries: the oldest merge, per apiVersion, into one
 * "ancient-changes" entry that takes the time of the newest change merged into it.
 */
export function capUpdateManagers(managed: Managed, max = MAX_UPDATE_MANAGERS): void {
  const updaters = [...managed.entries()].filter(([, m]) => m.operation === 'Update');
  if (updaters.length <= max) return;
  updaters.sort(([ia, a], [ib, b]) => seconds(a.time) - seconds(b.time) || compareStrings(ia, ib));
  const firstByVersion = new Map<string, string>();
  let count = updaters.length;
  for (const [id, m] of updaters) {
    if (count <= max) break;
    const bucket = identity({ manager: ANCIENT_CHANGES, operation: 'Update', apiVersion: m.apiVersion });
    const first = firstByVersion.get(m.apiVersion);
    if (first === undefined) {
      firstByVersion.set(m.apiVersion, id);
      continue;
    }
    if (!managed.has(bucket)) {
      const firstSet = managed.get(first) as ManagerSet;
      managed.delete(first);
      managed.set(bucket, { ...firstSet, manager: ANCIENT_CHANGES, operation: 'Update' });
    }
    const into = managed.get(bucket) as ManagerSet;
    managed.set(bucket, { ...into, set: m.set.union(into.set), ...(m.time === undefined ? {} : { time: m.time }) });
    managed.delete(id);
    count--;
  }
}

export function now(): string {
  return rfc3339();
}
