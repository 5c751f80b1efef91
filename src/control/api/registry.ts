// The resource registry: which kinds exist, and every name they go by — kind and apiVersion in
// objects, group/version/plural in URLs, singular and short names on the command line.
import type { DaemonSet, Deployment, ReplicaSet, StatefulSet } from './types/apps.js';
import type { Job } from './types/batch.js';
import type { Lease } from './types/coordination.js';
import type { ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, Secret } from './types/core.js';
import type { ClusterRole, ClusterRoleBinding, Role, RoleBinding, ServiceAccount } from './types/rbac.js';
import type { PodDisruptionBudget } from './types/policy.js';
import type { PriorityClass } from './types/scheduling.js';
import type { VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent } from './types/snapshot.js';
import type { CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment } from './types/storage.js';

export interface ResourceInfo {
  /** API group; '' for the core group. */
  group: string;
  version: string;
  /** "v1" or "<group>/<version>", as written in objects. */
  apiVersion: string;
  kind: string;
  /** The resource name in URLs and in the Store API, e.g. "persistentvolumeclaims". */
  plural: string;
  singular: string;
  shortNames: readonly string[];
  namespaced: boolean;
  /** Whether status is a subresource: main updates then ignore status and /status ignores the rest. */
  hasStatus: boolean;
  /** Field selectors beyond metadata.name and metadata.namespace (see field-selector.ts). */
  fieldSelectors: readonly string[];
  /** Whether it has the scale subresource (autoscaling/v1 Scale of spec.replicas; scale.ts). */
  hasScale?: boolean;
}

/** The object type behind each resource name, for typed Store calls. */
export interface ResourceTypeMap {
  namespaces: Namespace;
  nodes: Node;
  secrets: Secret;
  configmaps: ConfigMap;
  events: Event;
  persistentvolumes: PersistentVolume;
  persistentvolumeclaims: PersistentVolumeClaim;
  pods: Pod;
  limitranges: LimitRange;
  resourcequotas: ResourceQuota;
  storageclasses: StorageClass;
  csidrivers: CSIDriver;
  csinodes: CSINode;
  volumeattachments: VolumeAttachment;
  csistoragecapacities: CSIStorageCapacity;
  volumesnapshots: VolumeSnapshot;
  volumesnapshotclasses: VolumeSnapshotClass;
  volumesnapshotcontents: VolumeSnapshotContent;
  priorityclasses: PriorityClass;
  poddisruptionbudgets: PodDisruptionBudget;
  leases: Lease;
  serviceaccounts: ServiceAccount;
  roles: Role;
  clusterroles: ClusterRole;
  rolebindings: RoleBinding;
  clusterrolebindings: ClusterRoleBinding;
  statefulsets: StatefulSet;
  deployments: Deployment;
  replicasets: ReplicaSet;
  daemonsets: DaemonSet;
  jobs: Job;
}

export type ResourceName = keyof ResourceTypeMap;

interface Entry {
  plural: ResourceName;
  kind: string;
  singular: string;
  shortNames?: string[];
  namespaced: boolean;
  hasStatus?: boolean;
  hasScale?: boolean;
  fieldSelectors?: string[];
}

function group(groupName: string, version: string, entries: Entry[]): ResourceInfo[] {
  return entries.map((e) => ({
    group: groupName,
    version,
    apiVersion: groupName === '' ? version : `${groupName}/${version}`,
    kind: e.kind,
    plural: e.plural,
    singular: e.singular,
    shortNames: e.shortNames ?? [],
    namespaced: e.namespaced,
    hasStatus: e.hasStatus ?? false,
    fieldSelectors: e.fieldSelectors ?? [],
    hasScale: e.hasScale ?? false,
  }));
}

export const RESOURCES: readonly ResourceInfo[] = [
  ...group('', 'v1', [
    { plural: 'namespaces', kind: 'Namespace', singular: 'namespace', shortNames: ['ns'], namespaced: false, hasStatus: true, fieldSelectors: ['status.phase'] },
    { plural: 'nodes', kind: 'Node', singular: 'node', shortNames: ['no'], namespaced: false, hasStatus: true, fieldSelectors: ['spec.unschedulable'] },
    { plural: 'secrets', kind: 'Secret', singular: 'secret', namespaced: true, fieldSelectors: ['type'] },
    { plural: 'configmaps', kind: 'ConfigMap', singular: 'configmap', shortNames: ['cm'], namespaced: true },
    {
      plural: 'events',
      kind: 'Event',
      singular: 'event',
      shortNames: ['ev'],
      namespaced: true,
      fieldSelectors: [
        'involvedObject.kind',
        'involvedObject.namespace',
        'involvedObject.name',
        'involvedObject.uid',
        'involvedObject.apiVersion',
        'involvedObject.resourceVersion',
        'involvedObject.fieldPath',
        'reason',
        'reportingComponent',
        'type',
      ],
    },
    {
      plural: 'persistentvolumes',
      kind: 'PersistentVolume',
      singular: 'persistentvolume',
      shortNames: ['pv'],
      namespaced: false,
      hasStatus: true,
      fieldSelectors: ['status.phase', 'spec.storageClassName', 'spec.claimRef.name', 'spec.claimRef.namespace'],
    },
    {
      plural: 'persistentvolumeclaims',
      kind: 'PersistentVolumeClaim',
      singular: 'persistentvolumeclaim',
      shortNames: ['pvc'],
      namespaced: true,
      hasStatus: true,
      fieldSelectors: ['status.phase', 'spec.storageClassName', 'spec.volumeName'],
    },
    {
      plural: 'pods',
      kind: 'Pod',
      singular: 'pod',
      shortNames: ['po'],
      namespaced: true,
      hasStatus: true,
      fieldSelectors: [
        'spec.nodeName',
        'spec.restartPolicy',
        'spec.schedulerName',
        'spec.serviceAccountName',
        'status.phase',
        'status.podIP',
        'status.nominatedNodeName',
      ],
    },
    { plural: 'limitranges', kind: 'LimitRange', singular: 'limitrange', shortNames: ['limits'], namespaced: true },
    { plural: 'resourcequotas', kind: 'ResourceQuota', singular: 'resourcequota', shortNames: ['quota'], namespaced: true, hasStatus: true },
    { plural: 'serviceaccounts', kind: 'ServiceAccount', singular: 'serviceaccount', shortNames: ['sa'], namespaced: true },
  ]),
  ...group('storage.k8s.io', 'v1', [
    { plural: 'storageclasses', kind: 'StorageClass', singular: 'storageclass', shortNames: ['sc'], namespaced: false, fieldSelectors: ['provisioner'] },
    { plural: 'csidrivers', kind: 'CSIDriver', singular: 'csidriver', namespaced: false },
    { plural: 'csinodes', kind: 'CSINode', singular: 'csinode', namespaced: false },
    {
      plural: 'volumeattachments',
      kind: 'VolumeAttachment',
      singular: 'volumeattachment',
      namespaced: false,
      hasStatus: true,
      fieldSelectors: ['spec.attacher', 'spec.nodeName', 'spec.source.persistentVolumeName'],
    },
    { plural: 'csistoragecapacities', kind: 'CSIStorageCapacity', singular: 'csistoragecapacity', namespaced: true },
  ]),
  ...group('snapshot.storage.k8s.io', 'v1', [
    {
      plural: 'volumesnapshots',
      kind: 'VolumeSnapshot',
      singular: 'volumesnapshot',
      shortNames: ['vs'],
      namespaced: true,
      hasStatus: true,
      fieldSelectors: ['spec.source.persistentVolumeClaimName'],
    },
    { plural: 'volumesnapshotclasses', kind: 'VolumeSnapshotClass', singular: 'volumesnapshotclass', shortNames: ['vsclass', 'vsclasses'], namespaced: false },
    {
      plural: 'volumesnapshotcontents',
      kind: 'VolumeSnapshotContent',
      singular: 'volumesnapshotcontent',
      shortNames: ['vsc', 'vscs'],
      namespaced: false,
      hasStatus: true,
    },
  ]),
  ...group('apps', 'v1', [
    { plural: 'statefulsets', kind: 'StatefulSet', singular: 'statefulset', shortNames: ['sts'], namespaced: true, hasStatus: true, hasScale: true },
    { plural: 'deployments', kind: 'Deployment', singular: 'deployment', shortNames: ['deploy'], namespaced: true, hasStatus: true, hasScale: true },
    { plural: 'replicasets', kind: 'ReplicaSet', singular: 'replicaset', shortNames: ['rs'], namespaced: true, hasStatus: true, hasScale: true, fieldSelectors: ['status.replicas'] },
    { plural: 'daemonsets', kind: 'DaemonSet', singular: 'daemonset', shortNames: ['ds'], namespaced: true, hasStatus: true },
  ]),
  ...group('batch', 'v1', [{ plural: 'jobs', kind: 'Job', singular: 'job', namespaced: true, hasStatus: true }]),
  ...group('scheduling.k8s.io', 'v1', [
    { plural: 'priorityclasses', kind: 'PriorityClass', singular: 'priorityclass', shortNames: ['pc'], namespaced: false },
  ]),
  ...group('policy', 'v1', [{ plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', singular: 'poddisruptionbudget', shortNames: ['pdb'], namespaced: true, hasStatus: true }]),
  ...group('coordination.k8s.io', 'v1', [{ plural: 'leases', kind: 'Lease', singular: 'lease', namespaced: true }]),
  ...group('rbac.authorization.k8s.io', 'v1', [
    { plural: 'roles', kind: 'Role', singular: 'role', namespaced: true },
    { plural: 'clusterroles', kind: 'ClusterRole', singular: 'clusterrole', namespaced: false },
    { plural: 'rolebindings', kind: 'RoleBinding', singular: 'rolebinding', namespaced: true },
    { plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', singular: 'clusterrolebinding', namespaced: false },
  ]),
];

const byKind = new Map(RESOURCES.map((r) => [`${r.apiVersion}|${r.kind}`, r]));
const byGroupVersionPlural = new Map(RESOURCES.map((r) => [`${r.group}|${r.version}|${r.plural}`, r]));
const byAlias = new Map<string, ResourceInfo>();
for (const r of RESOURCES) {
  for (const alias of [r.plural, r.singular, r.kind.toLowerCase(), ...r.shortNames]) {
    byAlias.set(alias, r);
    if (r.group !== '') byAlias.set(`${alias}.${r.group}`, r);
  }
}

/** The resource of an object's apiVersion and kind, or undefined (no matches for kind). */
export function resourceForKind(apiVersion: string, kind: string): ResourceInfo | undefined {
  return byKind.get(`${apiVersion}|${kind}`);
}

/**
 * The resource a user or caller names: plural ("persistentvolumeclaims"), singular, kind
 * (any case), short name ("pvc", "pv", "sc"), each optionally qualified by group
 * ("storageclasses.storage.k8s.io"), as kubectl accepts them.
 */
export function resourceForName(name: string): ResourceInfo | undefined {
  return byAlias.get(name) ?? byAlias.get(name.toLowerCase());
}

/** The resource a URL names, e.g. ("storage.k8s.io", "v1", "storageclasses"). */
export function resourceForPath(groupName: string, version: string, plural: string): ResourceInfo | undefined {
  return byGroupVersionPlural.get(`${groupName}|${version}|${plural}`);
}

export interface GroupVersion {
  group: string;
  version: string;
  resources: ResourceInfo[];
}

/** Every group/version the registry serves, core first, for discovery. */
export function groupVersions(): GroupVersion[] {
  const out = new Map<string, GroupVersion>();
  for (const r of RESOURCES) {
    const key = `${r.group}|${r.version}`;
    const gv = out.get(key) ?? { group: r.group, version: r.version, resources: [] };
    gv.resources.push(r);
    out.set(key, gv);
  }
  return [...out.values()];
}
