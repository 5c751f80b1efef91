// The table `get` prints: kubectl's columns for every kind (defined once in the control plane's
// printers, which the API server's Table responses use too), laid out as kubectl lays out a
// server-side table: priority-0 columns, plus the priority-1 ones with -o wide, headers upper-cased.
import { columnsFor } from '../../control/api/printers/columns.js';
import type { ResourceInfo } from '../../control/api/registry.js';
import type { KubeObject } from '../../control/api/types/meta.js';
import { formatTable } from './table.js';

export { DEFAULT_CLASS_ANNOTATION, eventFirstSeen, eventLastSeen, eventSource, isDefaultClass, pvcClass, pvClass } from '../../control/api/printers/columns.js';

export interface TableOptions {
  /** -o wide: the extra columns. */
  wide?: boolean;
  /** -A: a NAMESPACE column first (namespaced resources only). */
  withNamespace?: boolean;
  /** Several kinds at once: names as kind[.group]/name, as kubectl does. */
  withKind?: boolean;
  noHeaders?: boolean;
  /** For ages; default Date.now(). */
  now?: number;
}

/** `persistentvolumeclaim` or `storageclass.storage.k8s.io`: how kubectl names a kind in output. */
export function kindPrefix(resource: ResourceInfo): string {
  return resource.group === '' ? resource.singular : `${resource.singular}.${resource.group}`;
}

/** The rows of a `get` table (header first), without layout. */
export function tableRows(resource: ResourceInfo, objects: readonly KubeObject[], options: TableOptions = {}): string[][] {
  const { columns, cells } = columnsFor(resource);
  const now = options.now ?? Date.now();
  const shown = columns.map((c, i) => ({ c, i })).filter(({ c }) => c.priority === 0 || options.wide);
  const namespaceColumn = options.withNamespace && resource.namespaced;
  const rows: string[][] = [];
  if (!options.noHeaders) {
    const header = shown.map(({ c }) => c.name.toUpperCase());
    rows.push(namespaceColumn ? ['NAMESPACE', ...header] : header);
  }
  for (const obj of objects) {
    const all = cells(obj, now);
    const row = shown.map(({ i }) => all[i] ?? '');
    // kubectl prefixes the name with the kind when the first column is the name.
    if (options.withKind && columns[0]?.format === 'name') row[0] = `${kindPrefix(resource)}/${row[0]}`;
    rows.push(namespaceColumn ? [obj.metadata.namespace ?? '', ...row] : row);
  }
  return rows;
}

/** The text of a `get` table, kubectl's layout. */
export function formatObjects(resource: ResourceInfo, objects: readonly KubeObject[], options: TableOptions = {}): string {
  return formatTable(tableRows(resource, objects, options));
}
