// snapshot.storage.k8s.io/v1 kinds (the external-snapshotter CRDs): VolumeSnapshot,
// VolumeSnapshotClass, VolumeSnapshotContent.
import type { ObjectReference } from './core.js';
import type { KubeObject, Quantity, Time } from './meta.js';

export type DeletionPolicy = 'Delete' | 'Retain';

export interface VolumeSnapshotError {
  time?: Time;
  message?: string;
}

export interface VolumeSnapshot extends KubeObject {
  apiVersion: 'snapshot.storage.k8s.io/v1';
  kind: 'VolumeSnapshot';
  spec: {
    source: { persistentVolumeClaimName?: string; volumeSnapshotContentName?: string };
    volumeSnapshotClassName?: string;
  };
  status?: {
    boundVolumeSnapshotContentName?: string;
    creationTime?: Time;
    readyToUse?: boolean;
    restoreSize?: Quantity;
    error?: VolumeSnapshotError;
  };
}

export interface VolumeSnapshotClass extends KubeObject {
  apiVersion: 'snapshot.storage.k8s.io/v1';
  kind: 'VolumeSnapshotClass';
  driver: string;
  deletionPolicy: DeletionPolicy;
  parameters?: Record<string, string>;
}

export interface VolumeSnapshotContent extends KubeObject {
  apiVersion: 'snapshot.storage.k8s.io/v1';
  kind: 'VolumeSnapshotContent';
  spec: {
    volumeSnapshotRef: ObjectReference;
    driver: string;
    deletionPolicy: DeletionPolicy;
    source: { volumeHandle?: string; snapshotHandle?: string };
    volumeSnapshotClassName?: string;
    sourceVolumeMode?: 'Filesystem' | 'Block';
  };
  status?: {
    snapshotHandle?: string;
    /** Nanoseconds since the epoch, as the CRD defines it. */
    creationTime?: number;
    readyToUse?: boolean;
    restoreSize?: number;
    error?: VolumeSnapshotError;
  };
}
