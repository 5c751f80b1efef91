// The StorageObjectInUseProtection admission plugin kube-apiserver runs by default: every claim is
// created with the finalizer kubernetes.io/pvc-protection and every volume with
// kubernetes.io/pv-protection, in the create itself. Why here and not in a controller: the
// protection then holds from the first moment (a claim deleted before any controller has seen it
// still waits until no pod uses it), and a claim costs no extra write to protect; the pvc- and
// pv-protection controllers (controllers/protection.ts) remove the finalizers when the object is
// no longer in use, and the binder still adds the claim's to claims stored without it.
import type { PersistentVolume, PersistentVolumeClaim } from '../api/types/core.js';

export const PVC_PROTECTION_FINALIZER = 'kubernetes.io/pvc-protection';
export const PV_PROTECTION_FINALIZER = 'kubernetes.io/pv-protection';

/** Adds the resource's protection finalizer to an object being created, unless it has it. */
export function admitStorageObjectInUseProtection(resource: 'persistentvolumeclaims' | 'persistentvolumes', obj: PersistentVolumeClaim | PersistentVolume): void {
  const finalizer = resource === 'persistentvolumeclaims' ? PVC_PROTECTION_FINALIZER : PV_PROTECTION_FINALIZER;
  const finalizers = obj.metadata.finalizers ?? [];
  if (!finalizers.includes(finalizer)) obj.metadata.finalizers = [...finalizers, finalizer];
}
