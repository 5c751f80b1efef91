// What `kubectl explain` says about the main fields of the storage kinds: descriptions by field
// path, laid over the schemas generated from the zod schemas (openapi-schemas.ts), which keep
// the structure. A description the zod schema carries itself (.describe or .meta) wins; a path
// that names no field is a test failure, so these cannot drift from the schemas.

/** Kind → dotted field path → description. */
export const FIELD_DESCRIPTIONS: Record<string, Record<string, string>> = {
  PersistentVolumeClaim: {
    spec: 'The desired characteristics of the volume requested by the claim.',
    'spec.accessModes': 'The access modes the volume should have: ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod.',
    'spec.selector': 'A label query over the volumes to consider for binding.',
    'spec.resources': 'The minimum resources the volume should have; the storage request may grow later if the class allows expansion.',
    'spec.resources.requests': 'The minimum amount of each resource required, e.g. storage: 1Gi.',
    'spec.resources.limits': 'The maximum amount of each resource allowed.',
    'spec.volumeName': 'The binding reference to the PersistentVolume backing this claim.',
    'spec.storageClassName': 'The name of the StorageClass required by the claim; unset means the default class, "" means no class.',
    'spec.volumeMode': 'Whether the volume is used with a formatted filesystem (Filesystem, the default) or as a raw block device (Block).',
    'spec.dataSource': 'An existing object to populate the volume from: a VolumeSnapshot or another PersistentVolumeClaim.',
    'spec.dataSourceRef': 'The object to populate the volume from, any kind a volume populator supports.',
    status: 'The current information about the claim. Populated by the system. Read-only.',
    'status.phase': 'The current phase of the claim: Pending, Bound or Lost.',
    'status.accessModes': 'The access modes the bound volume actually has.',
    'status.capacity': 'The actual resources of the bound volume.',
    'status.allocatedResources': 'The resources allocated to the claim, which may exceed the request while an expansion is in progress.',
    'status.allocatedResourceStatuses': 'The state of an expansion of each resource, e.g. ControllerResizeInProgress.',
  },
  PersistentVolume: {
    spec: 'The actual characteristics of the volume, as provided by the administrator or the provisioner.',
    'spec.capacity': 'The capacity of the volume, e.g. storage: 10Gi.',
    'spec.accessModes': 'All the ways the volume can be mounted.',
    'spec.claimRef': 'The claim this volume is bound to (part of a bi-directional binding).',
    'spec.persistentVolumeReclaimPolicy': 'What happens to the volume when released from its claim: Retain (the default for manually created volumes) or Delete (the default for dynamically provisioned ones).',
    'spec.storageClassName': 'The name of the StorageClass this volume belongs to; empty means no class.',
    'spec.mountOptions': 'Mount options, as passed to mount; not validated.',
    'spec.volumeMode': 'Whether the volume is meant to be used with a formatted filesystem or as a raw block device.',
    'spec.nodeAffinity': 'The nodes this volume can be accessed from.',
    'spec.hostPath': 'A directory on the host, for single-node testing only.',
    'spec.nfs': 'An NFS export.',
    'spec.local': 'A local disk or directory of one node.',
    'spec.csi': 'A volume managed by an external CSI driver.',
    'spec.csi.driver': 'The name of the CSI driver that manages the volume.',
    'spec.csi.volumeHandle': 'The volume identifier the CSI driver returned when it created the volume.',
    'spec.csi.fsType': 'The filesystem type to mount, e.g. ext4 or xfs.',
    'spec.csi.volumeAttributes': 'Attributes the driver needs to use the volume, passed to its publish calls.',
    status: 'The current information about the volume. Populated by the system. Read-only.',
    'status.phase': 'The phase of the volume: Pending, Available, Bound, Released or Failed.',
    'status.message': 'A human-readable message saying why the volume is in this state.',
    'status.reason': 'A brief CamelCase string describing any failure.',
  },
  StorageClass: {
    provisioner: 'The name of the volume plugin (CSI driver) that provisions volumes of this class.',
    parameters: 'Parameters for the provisioner, which it interprets.',
    reclaimPolicy: 'The reclaim policy of volumes provisioned for this class: Delete (the default) or Retain.',
    mountOptions: 'Mount options of volumes provisioned for this class, e.g. ["ro", "soft"]; not validated.',
    allowVolumeExpansion: 'Whether claims of this class may be expanded.',
    volumeBindingMode: 'When volumes are provisioned and bound: Immediate (the default) or WaitForFirstConsumer.',
    allowedTopologies: 'The topologies where volumes may be provisioned dynamically; empty means anywhere.',
  },
  VolumeSnapshot: {
    spec: 'What the user requests: the source of the snapshot, and its class. Required.',
    'spec.source': 'Where the snapshot comes from: exactly one of persistentVolumeClaimName (take a new snapshot) or volumeSnapshotContentName (bind an existing one). Immutable.',
    'spec.source.persistentVolumeClaimName': 'The name of the PersistentVolumeClaim, in the snapshot\'s namespace, to take a snapshot of.',
    'spec.source.volumeSnapshotContentName': 'The name of a pre-existing VolumeSnapshotContent that represents an existing snapshot.',
    'spec.volumeSnapshotClassName': 'The name of the VolumeSnapshotClass requested; unset means the default class of the driver.',
    status: 'The current information about the snapshot. Populated by the system.',
    'status.boundVolumeSnapshotContentName': 'The name of the VolumeSnapshotContent this snapshot is bound to.',
    'status.creationTime': 'When the storage system took the point-in-time snapshot.',
    'status.restoreSize': 'The minimum size of a volume restored from this snapshot.',
  },
  ResourceQuota: {
    spec: 'The limits the namespace must stay within.',
    'spec.hard': 'The most the namespace may use of each named resource, e.g. requests.storage: 100Gi, persistentvolumeclaims: "10", <class>.storageclass.storage.k8s.io/requests.storage, count/deployments.apps.',
    'spec.scopes': 'Pod scopes the quota is restricted to (Terminating, NotTerminating, BestEffort, NotBestEffort); all must match.',
    'spec.scopeSelector': 'Further scope requirements (scopeName, operator, values), e.g. pods of given PriorityClasses; all must match.',
    status: 'What the namespace uses, counted by the system. Read-only.',
    'status.hard': 'The limits being enforced: spec.hard as last counted.',
    'status.used': 'What the namespace uses of each limited resource.',
  },
};

/** ObjectMeta's fields (io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta). */
export const OBJECT_META_DESCRIPTIONS: Record<string, string> = {
  name: 'The name of the object, unique within its namespace (or cluster-wide for cluster-scoped kinds). Required when creating, unless generateName is set. Cannot be updated.',
  generateName: 'A prefix the server uses to generate a unique name when name is not given: the prefix plus a random suffix.',
  namespace: 'The namespace the object lives in; empty for cluster-scoped kinds. Cannot be updated.',
  uid: 'The unique identifier of this object, generated by the server on creation. Read-only.',
  resourceVersion: 'An opaque value identifying the version of this object, for optimistic concurrency and watches. Read-only.',
  generation: 'A sequence number of changes to the desired state, incremented by the system. Read-only.',
  creationTimestamp: 'When this object was created (RFC 3339, UTC). Read-only.',
  deletionTimestamp: 'When this object will be deleted, set by the server when deletion is requested; the object stays while finalizers remain. Read-only.',
  deletionGracePeriodSeconds: 'Seconds allowed for this object to terminate gracefully before it is removed. Read-only.',
  labels: 'Key/value pairs to organize and select objects (label selectors).',
  annotations: 'Key/value pairs of arbitrary, non-identifying metadata that tools may set and read.',
  ownerReferences: 'The objects this object depends on: when all owners are deleted, the garbage collector deletes it.',
  finalizers: 'Entries that must be removed before the object is deleted; each names the component responsible for removing it.',
};

type Node = { properties?: Record<string, Node>; description?: string; [key: string]: unknown };

/** The schema node of a dotted field path, or undefined. */
export function fieldAt(schema: Node, path: string): Node | undefined {
  let node: Node | undefined = schema;
  for (const name of path.split('.')) node = node?.properties?.[name];
  return node;
}

/** Adds the kind's field descriptions to its generated schema. */
export function describeFields(kind: string, schema: Node): void {
  for (const [path, description] of Object.entries(FIELD_DESCRIPTIONS[kind] ?? {})) {
    const node = fieldAt(schema, path);
    if (node !== undefined) node.description ??= description;
  }
}
