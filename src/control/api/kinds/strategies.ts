// The strategy of every resource in the registry.
import type { ResourceInfo, ResourceName } from '../registry.js';
import { configMapStrategy } from './config-map.js';
import { csiDriverStrategy } from './csi-driver.js';
import { daemonSetStrategy } from './daemon-set.js';
import { deploymentStrategy } from './deployment.js';
import { jobStrategy } from './job.js';
import { replicaSetStrategy } from './replica-set.js';
import { statefulSetStrategy } from './stateful-set.js';
import { csiNodeStrategy } from './csi-node.js';
import { csiStorageCapacityStrategy } from './csi-storage-capacity.js';
import { eventStrategy } from './event.js';
import { leaseStrategy } from './lease.js';
import { limitRangeStrategy } from './limit-range.js';
import { namespaceStrategy } from './namespace.js';
import { nodeStrategy } from './node.js';
import { persistentVolumeClaimStrategy } from './persistent-volume-claim.js';
import { persistentVolumeStrategy } from './persistent-volume.js';
import { podStrategy } from './pod.js';
import { priorityClassStrategy } from './priority-class.js';
import { resourceQuotaStrategy } from './resource-quota.js';
import { clusterRoleBindingStrategy, clusterRoleStrategy, roleBindingStrategy, roleStrategy } from './rbac.js';
import { secretStrategy } from './secret.js';
import { serviceAccountStrategy } from './service-account.js';
import { storageClassStrategy } from './storage-class.js';
import type { KindStrategy } from './strategy.js';
import { volumeAttachmentStrategy } from './volume-attachment.js';
import { volumeSnapshotClassStrategy } from './volume-snapshot-class.js';
import { volumeSnapshotContentStrategy } from './volume-snapshot-content.js';
import { volumeSnapshotStrategy } from './volume-snapshot.js';
import { podDisruptionBudgetStrategy } from './pod-disruption-budget.js';

const STRATEGIES: Record<ResourceName, KindStrategy> = {
  namespaces: namespaceStrategy,
  nodes: nodeStrategy,
  secrets: secretStrategy,
  configmaps: configMapStrategy,
  events: eventStrategy,
  persistentvolumes: persistentVolumeStrategy,
  persistentvolumeclaims: persistentVolumeClaimStrategy,
  pods: podStrategy,
  limitranges: limitRangeStrategy,
  resourcequotas: resourceQuotaStrategy,
  storageclasses: storageClassStrategy,
  csidrivers: csiDriverStrategy,
  csinodes: csiNodeStrategy,
  volumeattachments: volumeAttachmentStrategy,
  csistoragecapacities: csiStorageCapacityStrategy,
  volumesnapshots: volumeSnapshotStrategy,
  volumesnapshotclasses: volumeSnapshotClassStrategy,
  volumesnapshotcontents: volumeSnapshotContentStrategy,
  priorityclasses: priorityClassStrategy,
  poddisruptionbudgets: podDisruptionBudgetStrategy,
  leases: leaseStrategy,
  serviceaccounts: serviceAccountStrategy,
  roles: roleStrategy,
  clusterroles: clusterRoleStrategy,
  rolebindings: roleBindingStrategy,
  clusterrolebindings: clusterRoleBindingStrategy,
  statefulsets: statefulSetStrategy,
  deployments: deploymentStrategy,
  replicasets: replicaSetStrategy,
  daemonsets: daemonSetStrategy,
  jobs: jobStrategy,
};

export function strategyFor(resource: ResourceInfo): KindStrategy {
  return STRATEGIES[resource.plural as ResourceName];
}
