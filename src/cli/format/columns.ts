// kubectl's columns for every kind Stowage serves (k8s.io/kubernetes pkg/printers/internalversion,
// and the external-snapshotter CRDs' printer columns), and the table `get` prints from them.
import type { ResourceInfo } from '../../control/api/registry.js';
import type { ConfigMap, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret } from '../../control/api/types/core.js';
import type { KubeObject } from '../../control/api/types/meta.js';
import type { PriorityClass } from '../../control/api/types/scheduling.js';
import type { VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent } from '../../control/api/types/snapshot.js';
import type { CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment } from '../../control/api/types/storage.js';
import { accessModes, age, formatTable } from './table.js';

export const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';
const BETA_DEFAULT_CLASS_ANNOTATION = 'storageclass.beta.kubernetes.io/is-default-class';
const BETA_CLASS_ANNOTATION = 'volume.beta.kubernetes.io/storage-class';

interface Columns {
  headers: string[];
  /** Extra columns of -o wide. */
  wide?: string[];
  /** The cells of one object: the normal ones, then the wide ones (cut off unless wide). */
  cells(obj: KubeObject, now: number): string[];
}

function define<T extends KubeObject>(headers: string[], cells: (obj: T, now: number) => string[], wide?: string[]): Columns {
  return { headers, ...(wide ? { wide } : {}), cells: cells as (obj: KubeObject, now: number) => string[] };
}

/** Whether a StorageClass carries the default-class annotation (GA or beta), as kubectl checks. */
export function isDefaultClass(obj: KubeObject): boolean {
  const a = obj.metadata.annotations ?? {};
  return a[DEFAULT_CLASS_ANNOTATION] === 'true' || a[BETA_DEFAULT_CLASS_ANNOTATION] === 'true';
}

export function pvcClass(pvc: PersistentVolumeClaim): string {
  return pvc.metadata.annotations?.[BETA_CLASS_ANNOTATION] ?? pvc.spec?.storageClassName ?? '';
}

export function pvClass(pv: PersistentVolume): string {
  return pv.metadata.annotations?.[BETA_CLASS_ANNOTATION] ?? pv.spec?.storageClassName ?? '';
}

/** A phase, or Terminating once deletion has begun (kubectl's PV/PVC STATUS). */
function phaseOf(obj: KubeObject, phase: string | undefined): string {
  return obj.metadata.deletionTimestamp ? 'Terminating' : (phase ?? '');
}

function str(value: unknown): string {
  return value === undefined || value === null ? '' : String(value);
}

/** Go's %v of a bool pointer that kubectl prints with a default. */
function bool(value: boolean | undefined, fallback: boolean): string {
  return String(value ?? fallback);
}

const pvc = define<PersistentVolumeClaim>(
  ['NAME', 'STATUS', 'VOLUME', 'CAPACITY', 'ACCESS MODES', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS', 'AGE'],
  (o, now) => {
    const bound = Boolean(o.spec?.volumeName);
    const vac = (o.spec as { volumeAttributesClassName?: string } | undefined)?.volumeAttributesClassName;
    return [
      o.metadata.name ?? '',
      phaseOf(o, o.status?.phase),
      o.spec?.volumeName ?? '',
      bound ? (o.status?.capacity?.['storage'] ?? '') : '',
      bound ? accessModes(o.status?.accessModes) : '',
      pvcClass(o),
      vac ?? '<unset>',
      age(o.metadata.creationTimestamp, now),
      o.spec?.volumeMode ?? '<unset>',
    ];
  },
  ['VOLUMEMODE'],
);

const pv = define<PersistentVolume>(
  ['NAME', 'CAPACITY', 'ACCESS MODES', 'RECLAIM POLICY', 'STATUS', 'CLAIM', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS', 'REASON', 'AGE'],
  (o, now) => {
    const ref = o.spec?.claimRef;
    const vac = (o.spec as { volumeAttributesClassName?: string } | undefined)?.volumeAttributesClassName;
    return [
      o.metadata.name ?? '',
      o.spec?.capacity?.['storage'] ?? '0',
      accessModes(o.spec?.accessModes),
      o.spec?.persistentVolumeReclaimPolicy ?? '',
      phaseOf(o, o.status?.phase),
      ref ? `${ref.namespace ?? ''}/${ref.name ?? ''}` : '',
      pvClass(o),
      vac ?? '<unset>',
      o.status?.reason ?? '',
      age(o.metadata.creationTimestamp, now),
      o.spec?.volumeMode ?? '<unset>',
    ];
  },
  ['VOLUMEMODE'],
);

const storageClass = define<StorageClass>(['NAME', 'PROVISIONER', 'RECLAIMPOLICY', 'VOLUMEBINDINGMODE', 'ALLOWVOLUMEEXPANSION', 'AGE'], (o, now) => [
  `${o.metadata.name ?? ''}${isDefaultClass(o) ? ' (default)' : ''}`,
  o.provisioner ?? '',
  o.reclaimPolicy ?? 'Delete',
  o.volumeBindingMode ?? 'Immediate',
  bool(o.allowVolumeExpansion, false),
  age(o.metadata.creationTimestamp, now),
]);

const csiDriver = define<CSIDriver>(
  ['NAME', 'ATTACHREQUIRED', 'PODINFOONMOUNT', 'STORAGECAPACITY', 'TOKENREQUESTS', 'REQUIRESREPUBLISH', 'MODES', 'AGE'],
  (o, now) => {
    const spec = o.spec ?? {};
    const tokens = (spec as { tokenRequests?: { audience: string }[] }).tokenRequests ?? [];
    const modes = (spec.volumeLifecycleModes ?? []).join(',');
    return [
      o.metadata.name ?? '',
      bool(spec.attachRequired, true),
      bool(spec.podInfoOnMount, false),
      bool(spec.storageCapacity, false),
      tokens.length === 0 ? '<unset>' : tokens.map((t) => t.audience).join(','),
      bool(spec.requiresRepublish, false),
      modes === '' ? '<none>' : modes,
      age(o.metadata.creationTimestamp, now),
    ];
  },
);

const csiNode = define<CSINode>(['NAME', 'DRIVERS', 'AGE'], (o, now) => [o.metadata.name ?? '', String(o.spec?.drivers?.length ?? 0), age(o.metadata.creationTimestamp, now)]);

const volumeAttachment = define<VolumeAttachment>(['NAME', 'ATTACHER', 'PV', 'NODE', 'ATTACHED', 'AGE'], (o, now) => [
  o.metadata.name ?? '',
  o.spec?.attacher ?? '',
  o.spec?.source?.persistentVolumeName ?? '',
  o.spec?.nodeName ?? '',
  String(o.status?.attached ?? false),
  age(o.metadata.creationTimestamp, now),
]);

// kubectl prints no maximumVolumeSize column: NAME, STORAGECLASSNAME, CAPACITY, AGE.
const csiStorageCapacity = define<CSIStorageCapacity>(['NAME', 'STORAGECLASSNAME', 'CAPACITY', 'AGE'], (o, now) => [
  o.metadata.name ?? '',
  o.storageClassName ?? '',
  o.capacity === undefined ? '<unset>' : String(o.capacity),
  age(o.metadata.creationTimestamp, now),
]);

/** When an event last happened: lastTimestamp, else eventTime (events.k8s.io style), else firstTimestamp. */
export function eventLastSeen(e: Event): string | undefined {
  return e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp;
}

export function eventFirstSeen(e: Event): string | undefined {
  return e.firstTimestamp || e.eventTime || e.metadata.creationTimestamp;
}

/** "component, host" as kubectl's formatEventSource, falling back to the reporting controller. */
export function eventSource(e: Event): string {
  const component = e.source?.component || e.reportingComponent || '';
  const host = e.source?.host || e.reportingInstance || '';
  return host ? `${component}, ${host}` : component;
}

const event = define<Event>(
  ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'],
  (o, now) => {
    const io = o.involvedObject ?? {};
    const target = io.name ? `${(io.kind ?? '').toLowerCase()}/${io.name}` : (io.kind ?? '').toLowerCase();
    const message = (o.message ?? '').trim();
    return [age(eventLastSeen(o), now), o.type ?? '', o.reason ?? '', target, message, io.fieldPath ?? '', eventSource(o), age(eventFirstSeen(o), now), String(o.count ?? 1), o.metadata.name ?? ''];
  },
  // kubectl's wide event table puts SUBOBJECT and SOURCE before MESSAGE; see eventCells below.
  ['SUBOBJECT', 'SOURCE', 'FIRST SEEN', 'COUNT', 'NAME'],
);

interface ContainerStatusView {
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string }; running?: object; terminated?: { reason?: string; exitCode?: number; signal?: number } };
}

/** READY, STATUS and RESTARTS as kubectl prints them (a container's waiting or terminated reason wins). */
function podStatus(o: Pod): { ready: string; status: string; restarts: string } {
  const statuses = (o.status?.['containerStatuses'] as ContainerStatusView[] | undefined) ?? [];
  const total = o.spec?.containers?.length ?? 0;
  const ready = statuses.filter((s) => s.ready).length;
  const restarts = statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0);
  let status = o.status?.reason || o.status?.phase || 'Pending';
  let running = false;
  for (const c of [...statuses].reverse()) {
    const waiting = c.state?.waiting?.reason;
    const terminated = c.state?.terminated;
    if (waiting) status = waiting;
    else if (terminated) status = terminated.reason || (terminated.signal ? `Signal:${terminated.signal}` : `ExitCode:${terminated.exitCode ?? 0}`);
    else if (c.state?.running && c.ready) running = true;
  }
  if (status === 'Completed' && running) status = 'Running';
  if (o.metadata.deletionTimestamp) status = 'Terminating';
  return { ready: `${ready}/${total}`, status, restarts: String(restarts) };
}

const pod = define<Pod>(
  ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'],
  (o, now) => {
    const s = podStatus(o);
    return [
      o.metadata.name ?? '',
      s.ready,
      s.status,
      s.restarts,
      age(o.metadata.creationTimestamp, now),
      o.status?.podIP || '<none>',
      o.spec?.nodeName || '<none>',
      o.status?.nominatedNodeName || '<none>',
      '<none>',
    ];
  },
  ['IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES'],
);

const node = define<Node>(
  ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION'],
  (o, now) => {
    const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
    let status = ready === undefined ? 'Unknown' : ready.status === 'True' ? 'Ready' : ready.status === 'False' ? 'NotReady' : 'Unknown';
    if (o.spec?.unschedulable) status += ',SchedulingDisabled';
    const roles = Object.keys(o.metadata.labels ?? {})
      .filter((k) => k.startsWith('node-role.kubernetes.io/'))
      .map((k) => k.slice('node-role.kubernetes.io/'.length))
      .filter((r) => r !== '');
    const role = o.metadata.labels?.['kubernetes.io/role'];
    if (role) roles.push(role);
    const address = (type: string) => o.status?.addresses?.find((a) => a.type === type)?.address ?? '<none>';
    const info = o.status?.nodeInfo ?? {};
    return [
      o.metadata.name ?? '',
      status,
      roles.length === 0 ? '<none>' : [...new Set(roles)].sort().join(','),
      age(o.metadata.creationTimestamp, now),
      info['kubeletVersion'] ?? '',
      address('InternalIP'),
      address('ExternalIP'),
      info['osImage'] || '<unknown>',
      info['kernelVersion'] || '<unknown>',
      info['containerRuntimeVersion'] || '<unknown>',
    ];
  },
  ['INTERNAL-IP', 'EXTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME'],
);

const namespace = define<Namespace>(['NAME', 'STATUS', 'AGE'], (o, now) => [o.metadata.name ?? '', o.status?.phase ?? '', age(o.metadata.creationTimestamp, now)]);

const secret = define<Secret>(['NAME', 'TYPE', 'DATA', 'AGE'], (o, now) => [
  o.metadata.name ?? '',
  o.type ?? 'Opaque',
  String(Object.keys(o.data ?? {}).length),
  age(o.metadata.creationTimestamp, now),
]);

const configMap = define<ConfigMap>(['NAME', 'DATA', 'AGE'], (o, now) => [
  o.metadata.name ?? '',
  String(Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length),
  age(o.metadata.creationTimestamp, now),
]);

const limitRange = define<KubeObject>(['NAME', 'CREATED AT'], (o) => [o.metadata.name ?? '', o.metadata.creationTimestamp ?? '']);

const priorityClass = define<PriorityClass>(['NAME', 'VALUE', 'GLOBAL-DEFAULT', 'AGE', 'PREEMPTIONPOLICY'], (o, now) => [
  o.metadata.name ?? '',
  String(o.value ?? 0),
  String(o.globalDefault ?? false),
  age(o.metadata.creationTimestamp, now),
  o.preemptionPolicy ?? '',
]);

const volumeSnapshot = define<VolumeSnapshot>(
  ['NAME', 'READYTOUSE', 'SOURCEPVC', 'SOURCESNAPSHOTCONTENT', 'RESTORESIZE', 'SNAPSHOTCLASS', 'SNAPSHOTCONTENT', 'CREATIONTIME', 'AGE'],
  (o, now) => [
    o.metadata.name ?? '',
    str(o.status?.readyToUse),
    o.spec?.source?.persistentVolumeClaimName ?? '',
    o.spec?.source?.volumeSnapshotContentName ?? '',
    str(o.status?.restoreSize),
    o.spec?.volumeSnapshotClassName ?? '',
    o.status?.boundVolumeSnapshotContentName ?? '',
    o.status?.creationTime ? age(o.status.creationTime, now) : '',
    age(o.metadata.creationTimestamp, now),
  ],
);

const volumeSnapshotClass = define<VolumeSnapshotClass>(['NAME', 'DRIVER', 'DELETIONPOLICY', 'AGE'], (o, now) => [
  o.metadata.name ?? '',
  o.driver ?? '',
  o.deletionPolicy ?? '',
  age(o.metadata.creationTimestamp, now),
]);

const volumeSnapshotContent = define<VolumeSnapshotContent>(
  ['NAME', 'READYTOUSE', 'RESTORESIZE', 'DELETIONPOLICY', 'DRIVER', 'VOLUMESNAPSHOTCLASS', 'VOLUMESNAPSHOT', 'VOLUMESNAPSHOTNAMESPACE', 'AGE'],
  (o, now) => [
    o.metadata.name ?? '',
    str(o.status?.readyToUse),
    str(o.status?.restoreSize),
    o.spec?.deletionPolicy ?? '',
    o.spec?.driver ?? '',
    o.spec?.volumeSnapshotClassName ?? '',
    o.spec?.volumeSnapshotRef?.name ?? '',
    o.spec?.volumeSnapshotRef?.namespace ?? '',
    age(o.metadata.creationTimestamp, now),
  ],
);

const generic = define<KubeObject>(['NAME', 'AGE'], (o, now) => [o.metadata.name ?? '', age(o.metadata.creationTimestamp, now)]);

const COLUMNS: Record<string, Columns> = {
  persistentvolumeclaims: pvc,
  persistentvolumes: pv,
  storageclasses: storageClass,
  csidrivers: csiDriver,
  csinodes: csiNode,
  volumeattachments: volumeAttachment,
  csistoragecapacities: csiStorageCapacity,
  events: event,
  pods: pod,
  nodes: node,
  namespaces: namespace,
  secrets: secret,
  configmaps: configMap,
  limitranges: limitRange,
  priorityclasses: priorityClass,
  volumesnapshots: volumeSnapshot,
  volumesnapshotclasses: volumeSnapshotClass,
  volumesnapshotcontents: volumeSnapshotContent,
};

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
  const columns = COLUMNS[resource.plural] ?? generic;
  const now = options.now ?? Date.now();
  const base = columns.headers.length;
  const wideCount = options.wide ? (columns.wide?.length ?? 0) : 0;
  const isEvent = resource.plural === 'events';
  const arrange = (cells: string[]): string[] => {
    if (isEvent && options.wide) {
      // LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME
      const [last = '', type = '', reason = '', object = '', message = '', sub = '', source = '', first = '', count = '', name = ''] = cells;
      return [last, type, reason, object, sub, source, message, first, count, name];
    }
    return cells.slice(0, base + wideCount);
  };
  const nameIndex = isEvent ? -1 : 0;
  const rows: string[][] = [];
  if (!options.noHeaders) {
    const header = arrange([...columns.headers, ...(columns.wide ?? [])]);
    rows.push(options.withNamespace && resource.namespaced ? ['NAMESPACE', ...header] : header);
  }
  for (const obj of objects) {
    const cells = arrange(columns.cells(obj, now));
    if (options.withKind && nameIndex === 0) cells[0] = `${kindPrefix(resource)}/${cells[0]}`;
    rows.push(options.withNamespace && resource.namespaced ? [obj.metadata.namespace ?? '', ...cells] : cells);
  }
  return rows;
}

/** The text of a `get` table, kubectl's layout. */
export function formatObjects(resource: ResourceInfo, objects: readonly KubeObject[], options: TableOptions = {}): string {
  return formatTable(tableRows(resource, objects, options));
}
