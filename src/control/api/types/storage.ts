// storage.k8s.io/v1 kinds: StorageClass, CSIDriver, CSINode, VolumeAttachment, CSIStorageCapacity.
import type { PersistentVolumeReclaimPolicy, PersistentVolumeSpec } from './core.js';
import type { KubeObject, LabelSelector, Time } from './meta.js';

export type VolumeBindingMode = 'Immediate' | 'WaitForFirstConsumer';

export interface TopologySelectorTerm {
  matchLabelExpressions?: { key: string; values: string[] }[];
}

/** A StorageClass has no spec: its fields sit at the top level, as in Kubernetes. */
export interface StorageClass extends KubeObject {
  apiVersion: 'storage.k8s.io/v1';
  kind: 'StorageClass';
  provisioner: string;
  parameters?: Record<string, string>;
  reclaimPolicy?: Exclude<PersistentVolumeReclaimPolicy, 'Recycle'>;
  mountOptions?: string[];
  allowVolumeExpansion?: boolean;
  volumeBindingMode?: VolumeBindingMode;
  allowedTopologies?: TopologySelectorTerm[];
}

export interface CSIDriverSpec {
  attachRequired?: boolean;
  podInfoOnMount?: boolean;
  volumeLifecycleModes?: ('Persistent' | 'Ephemeral')[];
  storageCapacity?: boolean;
  fsGroupPolicy?: 'ReadWriteOnceWithFSType' | 'File' | 'None';
  requiresRepublish?: boolean;
  seLinuxMount?: boolean;
}

export interface CSIDriver extends KubeObject {
  apiVersion: 'storage.k8s.io/v1';
  kind: 'CSIDriver';
  spec: CSIDriverSpec;
}

export interface CSINodeDriver {
  name: string;
  nodeID: string;
  topologyKeys?: string[];
  allocatable?: { count?: number };
}

export interface CSINode extends KubeObject {
  apiVersion: 'storage.k8s.io/v1';
  kind: 'CSINode';
  spec: { drivers: CSINodeDriver[] };
}

export interface VolumeError {
  time?: Time;
  message?: string;
}

export interface VolumeAttachmentSpec {
  attacher: string;
  nodeName: string;
  source: { persistentVolumeName?: string; inlineVolumeSpec?: PersistentVolumeSpec };
}

export interface VolumeAttachmentStatus {
  attached: boolean;
  attachmentMetadata?: Record<string, string>;
  attachError?: VolumeError;
  detachError?: VolumeError;
}

export interface VolumeAttachment extends KubeObject {
  apiVersion: 'storage.k8s.io/v1';
  kind: 'VolumeAttachment';
  spec: VolumeAttachmentSpec;
  status?: VolumeAttachmentStatus;
}

/**
 * The room a driver reports for volumes of one class on the nodes a selector picks (what
 * external-provisioner publishes from GetCapacity and kube-scheduler reads). No spec: its fields
 * sit at the top level, as in Kubernetes.
 */
export interface CSIStorageCapacity extends KubeObject {
  apiVersion: 'storage.k8s.io/v1';
  kind: 'CSIStorageCapacity';
  nodeTopology?: LabelSelector;
  storageClassName: string;
  capacity?: string;
  maximumVolumeSize?: string;
}
