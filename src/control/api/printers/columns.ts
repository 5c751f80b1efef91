// The table columns of every kind Stowage serves, as kube-apiserver defines them
// (k8s.io/kubernetes pkg/printers/internalversion, and the external-snapshotter CRDs'
// additionalPrinterColumns): names, types, priorities (1 = shown by `-o wide` only) and the cells
// of one object. The API server's Table responses and the CLI's `get` both print from these.
import type { ResourceInfo } from '../registry.js';
import type { ConfigMap, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, Secret } from '../types/core.js';
import type { KubeObject } from '../types/meta.js';
import type { Lease } from '../types/coordination.js';
import type { PodDisruptionBudget } from '../types/policy.js';
import type { PriorityClass } from '../types/scheduling.js';
import type { VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent } from '../types/snapshot.js';
import type { CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment } from '../types/storage.js';
import { accessModes, age } from './values.js';
import { daemonSetColumns, deploymentColumns, jobColumns, replicaSetColumns, statefulSetColumns } from './workload-columns.js';

export const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';
const BETA_DEFAULT_CLASS_ANNOTATION = 'storageclass.beta.kubernetes.io/is-default-class';
const BETA_CLASS_ANNOTATION = 'volume.beta.kubernetes.io/storage-class';

/** A meta.k8s.io TableColumnDefinition. */
export interface ColumnDefinition {
  /** As kube-apiserver names it ("Access Modes"); kubectl prints it upper-cased. */
  name: string;
  /** An OpenAPI type: string, integer, number, boolean or date. */
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  /** "name" marks the column that holds the object's name. */
  format: string;
  description: string;
  /** 0: always shown; 1: `-o wide` only. */
  priority: number;
}

export interface KindColumns {
  columns: readonly ColumnDefinition[];
  /** One printed cell per column, in column order. */
  cells(obj: KubeObject, now: number): string[];
}

type Spec = [name: string, type?: ColumnDefinition['type'], priority?: number, description?: string];

const NAME_DESCRIPTION = 'Name must be unique within a namespace. It is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.';
const AGE_DESCRIPTION = 'CreationTimestamp is a timestamp representing the server time when this object was created, shown as the time since then.';

function column([name, type = 'string', priority = 0, description]: Spec): ColumnDefinition {
  const isName = name === 'Name';
  const fallback = isName ? NAME_DESCRIPTION : name === 'Age' ? AGE_DESCRIPTION : `${name} of the object.`;
  return { name, type, format: isName ? 'name' : '', description: description ?? fallback, priority };
}

function define<T extends KubeObject>(specs: Spec[], cells: (obj: T, now: number) => string[]): KindColumns {
  return { columns: specs.map(column), cells: cells as (obj: KubeObject, now: number) => string[] };
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
  [
    ['Name'],
    ['Status', 'string', 0, 'The phase of the claim: Pending, Bound or Lost.'],
    ['Volume', 'string', 0, 'The name of the PersistentVolume bound to the claim.'],
    ['Capacity', 'string', 0, 'The actual storage of the bound volume.'],
    ['Access Modes', 'string', 0, 'The access modes of the bound volume.'],
    ['StorageClass', 'string', 0, 'StorageClass of the pvc'],
    ['VolumeAttributesClass', 'string', 0, 'VolumeAttributesClass of the pvc'],
    ['Age'],
    ['VolumeMode', 'string', 1, 'The volume mode the claim requires: Filesystem or Block.'],
  ],
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
);

const pv = define<PersistentVolume>(
  [
    ['Name'],
    ['Capacity', 'string', 0, 'The storage capacity of the volume.'],
    ['Access Modes', 'string', 0, 'The ways the volume can be mounted.'],
    ['Reclaim Policy', 'string', 0, 'What happens to the volume when released from its claim.'],
    ['Status', 'string', 0, 'The phase of the volume: Pending, Available, Bound, Released or Failed.'],
    ['Claim', 'string', 0, 'The namespace/name of the claim bound to the volume.'],
    ['StorageClass', 'string', 0, 'StorageClass of the pv'],
    ['VolumeAttributesClass', 'string', 0, 'VolumeAttributesClass of the pv'],
    ['Reason', 'string', 0, 'A brief CamelCase string describing any failure.'],
    ['Age'],
    ['VolumeMode', 'string', 1, 'The volume mode: Filesystem or Block.'],
  ],
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
);

const storageClass = define<StorageClass>(
  [['Name'], ['Provisioner'], ['ReclaimPolicy'], ['VolumeBindingMode'], ['AllowVolumeExpansion'], ['Age']],
  (o, now) => [
    `${o.metadata.name ?? ''}${isDefaultClass(o) ? ' (default)' : ''}`,
    o.provisioner ?? '',
    o.reclaimPolicy ?? 'Delete',
    o.volumeBindingMode ?? 'Immediate',
    bool(o.allowVolumeExpansion, false),
    age(o.metadata.creationTimestamp, now),
  ],
);

const csiDriver = define<CSIDriver>(
  [['Name'], ['AttachRequired', 'boolean'], ['PodInfoOnMount', 'boolean'], ['StorageCapacity', 'boolean'], ['TokenRequests'], ['RequiresRepublish', 'boolean'], ['Modes'], ['Age']],
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

const csiNode = define<CSINode>([['Name'], ['Drivers', 'integer'], ['Age']], (o, now) => [
  o.metadata.name ?? '',
  String(o.spec?.drivers?.length ?? 0),
  age(o.metadata.creationTimestamp, now),
]);

const volumeAttachment = define<VolumeAttachment>([['Name'], ['Attacher'], ['PV'], ['Node'], ['Attached', 'boolean'], ['Age']], (o, now) => [
  o.metadata.name ?? '',
  o.spec?.attacher ?? '',
  o.spec?.source?.persistentVolumeName ?? '',
  o.spec?.nodeName ?? '',
  String(o.status?.attached ?? false),
  age(o.metadata.creationTimestamp, now),
]);

// kubectl prints no maximumVolumeSize column: NAME, STORAGECLASSNAME, CAPACITY, AGE.
const csiStorageCapacity = define<CSIStorageCapacity>([['Name'], ['StorageClassName'], ['Capacity'], ['Age']], (o, now) => [
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
  [['Last Seen'], ['Type'], ['Reason'], ['Object'], ['Subobject', 'string', 1], ['Source', 'string', 1], ['Message'], ['First Seen', 'string', 1], ['Count', 'integer', 1], ['Name', 'string', 1]],
  (o, now) => {
    const io = o.involvedObject ?? {};
    const target = io.name ? `${(io.kind ?? '').toLowerCase()}/${io.name}` : (io.kind ?? '').toLowerCase();
    const message = (o.message ?? '').trim();
    return [age(eventLastSeen(o), now), o.type ?? '', o.reason ?? '', target, io.fieldPath ?? '', eventSource(o), message, age(eventFirstSeen(o), now), String(o.count ?? 1), o.metadata.name ?? ''];
  },
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
  // Init containers first, as kubectl: the first one not completed says Init:<reason> or Init:i/n.
  const inits = (o.status?.['initContainerStatuses'] as ContainerStatusView[] | undefined) ?? [];
  let initRestarts = 0;
  let initializing = false;
  for (const [i, c] of inits.entries()) {
    initRestarts += c.restartCount ?? 0;
    const terminated = c.state?.terminated;
    const waiting = c.state?.waiting?.reason;
    if (terminated && (terminated.exitCode ?? 0) === 0) continue;
    if (terminated) status = terminated.reason ? `Init:${terminated.reason}` : terminated.signal ? `Init:Signal:${terminated.signal}` : `Init:ExitCode:${terminated.exitCode ?? 0}`;
    else if (waiting && waiting !== 'PodInitializing') status = `Init:${waiting}`;
    else status = `Init:${i}/${o.spec?.initContainers?.length ?? inits.length}`;
    initializing = true;
    break;
  }
  const initialized = o.status?.conditions?.some((c) => c.type === 'Initialized' && c.status === 'True') === true;
  if (initializing && !initialized) {
    if (o.metadata.deletionTimestamp) status = 'Terminating';
    return { ready: `${ready}/${total}`, status, restarts: String(initRestarts) };
  }
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
  [['Name'], ['Ready'], ['Status'], ['Restarts'], ['Age'], ['IP', 'string', 1], ['Node', 'string', 1], ['Nominated Node', 'string', 1], ['Readiness Gates', 'string', 1]],
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
);

const node = define<Node>(
  [
    ['Name'],
    ['Status'],
    ['Roles'],
    ['Age'],
    ['Version'],
    ['Internal-IP', 'string', 1],
    ['External-IP', 'string', 1],
    ['OS-Image', 'string', 1],
    ['Kernel-Version', 'string', 1],
    ['Container-Runtime', 'string', 1],
  ],
  (o, now) => {
    const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
    // kubectl's printNode: Ready True is Ready, any other status (False or Unknown) NotReady.
    let status = ready === undefined ? 'Unknown' : ready.status === 'True' ? 'Ready' : 'NotReady';
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
);

const namespace = define<Namespace>([['Name'], ['Status'], ['Age']], (o, now) => [o.metadata.name ?? '', o.status?.phase ?? '', age(o.metadata.creationTimestamp, now)]);

const secret = define<Secret>([['Name'], ['Type'], ['Data', 'integer'], ['Age']], (o, now) => [
  o.metadata.name ?? '',
  o.type ?? 'Opaque',
  String(Object.keys(o.data ?? {}).length),
  age(o.metadata.creationTimestamp, now),
]);

const configMap = define<ConfigMap>([['Name'], ['Data', 'integer'], ['Age']], (o, now) => [
  o.metadata.name ?? '',
  String(Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length),
  age(o.metadata.creationTimestamp, now),
]);

const limitRange = define<KubeObject>([['Name'], ['Created At', 'date']], (o) => [o.metadata.name ?? '', o.metadata.creationTimestamp ?? '']);

/** kubectl's REQUEST and LIMIT cells: `name: used/hard` for each status.hard resource, limits.* in LIMIT. */
const resourceQuota = define<ResourceQuota>(
  [
    ['Name'],
    ['Age'],
    ['Request', 'string', 0, 'Request represents a minimum amount of cpu/memory that a container may consume.'],
    ['Limit', 'string', 0, 'Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.'],
  ],
  (o, now) => {
    const hard = o.status?.hard ?? {};
    const used = o.status?.used ?? {};
    const request: string[] = [];
    const limit: string[] = [];
    for (const name of Object.keys(hard).sort()) {
      const pieces = name.split('.');
      (pieces.length > 1 && pieces[0] === 'limits' ? limit : request).push(`${name}: ${String(used[name] ?? '0')}/${String(hard[name])}`);
    }
    return [o.metadata.name ?? '', age(o.metadata.creationTimestamp, now), request.join(', '), limit.join(', ')];
  },
);

const priorityClass = define<PriorityClass>([['Name'], ['Value', 'integer'], ['Global-Default', 'boolean'], ['Age'], ['PreemptionPolicy']], (o, now) => [
  o.metadata.name ?? '',
  String(o.value ?? 0),
  String(o.globalDefault ?? false),
  age(o.metadata.creationTimestamp, now),
  o.preemptionPolicy ?? '',
]);

const volumeSnapshot = define<VolumeSnapshot>(
  [
    ['Name'],
    ['ReadyToUse', 'boolean', 0, 'Indicates if the snapshot is ready to be used to restore a volume.'],
    ['SourcePVC', 'string', 0, 'If a new snapshot needs to be created, this contains the name of the source PVC from which this snapshot was (or will be) created.'],
    ['SourceSnapshotContent', 'string', 0, 'If a snapshot already exists, this contains the name of the existing VolumeSnapshotContent object representing the existing snapshot.'],
    ['RestoreSize', 'string', 0, 'Represents the minimum size of volume required to rehydrate from this snapshot.'],
    ['SnapshotClass', 'string', 0, 'The name of the VolumeSnapshotClass requested by the VolumeSnapshot.'],
    ['SnapshotContent', 'string', 0, 'Name of the VolumeSnapshotContent object to which the VolumeSnapshot object intends to bind to.'],
    ['CreationTime', 'date', 0, 'Timestamp when the point-in-time snapshot was taken by the underlying storage system.'],
    ['Age', 'date'],
  ],
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

const volumeSnapshotClass = define<VolumeSnapshotClass>([['Name'], ['Driver'], ['DeletionPolicy', 'string', 0, 'Determines whether a VolumeSnapshotContent created through the VolumeSnapshotClass should be deleted when its bound VolumeSnapshot is deleted.'], ['Age', 'date']], (o, now) => [
  o.metadata.name ?? '',
  o.driver ?? '',
  o.deletionPolicy ?? '',
  age(o.metadata.creationTimestamp, now),
]);

const volumeSnapshotContent = define<VolumeSnapshotContent>(
  [
    ['Name'],
    ['ReadyToUse', 'boolean', 0, 'Indicates if a snapshot is ready to be used to restore a volume.'],
    ['RestoreSize', 'integer', 0, 'Represents the complete size of the snapshot in bytes'],
    ['DeletionPolicy', 'string', 0, 'Determines whether this VolumeSnapshotContent and its physical snapshot on the underlying storage system should be deleted when its bound VolumeSnapshot is deleted.'],
    ['Driver', 'string', 0, 'Name of the CSI driver used to create the physical snapshot on the underlying storage system.'],
    ['VolumeSnapshotClass', 'string', 0, 'Name of the VolumeSnapshotClass to which this snapshot belongs.'],
    ['VolumeSnapshot', 'string', 0, 'Name of the VolumeSnapshot object to which this VolumeSnapshotContent object is bound.'],
    ['VolumeSnapshotNamespace', 'string', 0, 'Namespace of the VolumeSnapshot object to which this VolumeSnapshotContent object is bound.'],
    ['Age', 'date'],
  ],
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

// kubectl's PodDisruptionBudget columns: N/A for the bound that is not set.
const podDisruptionBudget = define<PodDisruptionBudget>([['Name'], ['Min Available'], ['Max Unavailable'], ['Allowed Disruptions', 'integer'], ['Age']], (o, now) => [
  o.metadata.name ?? '',
  o.spec?.minAvailable === undefined ? 'N/A' : String(o.spec.minAvailable),
  o.spec?.maxUnavailable === undefined ? 'N/A' : String(o.spec.maxUnavailable),
  String(o.status?.disruptionsAllowed ?? 0),
  age(o.metadata.creationTimestamp, now),
]);

const lease = define<Lease>([['Name'], ['Holder', 'string', 0, 'The holder of the lease.'], ['Age']], (o, now) => [o.metadata.name ?? '', o.spec?.holderIdentity ?? '', age(o.metadata.creationTimestamp, now)]);

const generic = define<KubeObject>([['Name'], ['Age']], (o, now) => [o.metadata.name ?? '', age(o.metadata.creationTimestamp, now)]);

const COLUMNS: Record<string, KindColumns> = {
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
  resourcequotas: resourceQuota,
  priorityclasses: priorityClass,
  poddisruptionbudgets: podDisruptionBudget,
  volumesnapshots: volumeSnapshot,
  volumesnapshotclasses: volumeSnapshotClass,
  volumesnapshotcontents: volumeSnapshotContent,
  statefulsets: statefulSetColumns,
  deployments: deploymentColumns,
  replicasets: replicaSetColumns,
  daemonsets: daemonSetColumns,
  jobs: jobColumns,
  leases: lease,
};

/** The columns of a resource; NAME and AGE for a kind without its own. */
export function columnsFor(resource: ResourceInfo): KindColumns {
  return COLUMNS[resource.plural] ?? generic;
}
