// meta.k8s.io Table objects, as kube-apiserver answers a request whose Accept header asks for
// `as=Table`: the column definitions of the kind (columns.ts) and one row per object, each with
// its cells and, as ?includeObject says, nothing (None), the object's metadata as a
// PartialObjectMetadata (Metadata, the default) or the whole object (Object).
import type { ResourceInfo } from '../registry.js';
import type { KubeObject } from '../types/meta.js';
import { type ColumnDefinition, columnsFor } from './columns.js';

export type IncludeObject = 'None' | 'Metadata' | 'Object';
export const INCLUDE_OBJECT_VALUES: readonly IncludeObject[] = ['None', 'Metadata', 'Object'];

export interface TableRow {
  cells: (string | number | boolean)[];
  object?: object;
}

export interface Table {
  kind: 'Table';
  apiVersion: string;
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  columnDefinitions: ColumnDefinition[];
  rows: TableRow[];
}

export interface TableOptions {
  /** "meta.k8s.io/v1" or "meta.k8s.io/v1beta1", as the client asked. */
  apiVersion?: string;
  includeObject?: IncludeObject;
  /** For ages; default Date.now(). */
  now?: number;
  metadata?: Table['metadata'];
}

/** A printed cell as its column's JSON type: counts as numbers, flags as booleans. */
function typed(cell: string, type: ColumnDefinition['type']): string | number | boolean {
  if ((type === 'integer' || type === 'number') && cell !== '' && Number.isFinite(Number(cell))) return Number(cell);
  if (type === 'boolean' && (cell === 'true' || cell === 'false')) return cell === 'true';
  return cell;
}

function rowObject(obj: KubeObject, include: IncludeObject, apiVersion: string): object | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return obj;
  return { kind: 'PartialObjectMetadata', apiVersion, metadata: obj.metadata };
}

export function buildTable(resource: ResourceInfo, objects: readonly KubeObject[], options: TableOptions = {}): Table {
  const { columns, cells } = columnsFor(resource);
  const apiVersion = options.apiVersion ?? 'meta.k8s.io/v1';
  const include = options.includeObject ?? 'Metadata';
  const now = options.now ?? Date.now();
  return {
    kind: 'Table',
    apiVersion,
    metadata: options.metadata ?? {},
    columnDefinitions: [...columns],
    rows: objects.map((obj) => {
      const printed = cells(obj, now);
      const object = rowObject(obj, include, apiVersion);
      return { cells: columns.map((c, i) => typed(printed[i] ?? '', c.type)), ...(object === undefined ? {} : { object }) };
    }),
  };
}
