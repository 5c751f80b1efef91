// Which claim a pod volume uses, in one place for the scheduler, the protection controller, the
// ephemeral-volume controller and the node agent: a persistentVolumeClaim volume names its claim;
// a generic ephemeral volume uses claim "<pod>-<volume>", made for the pod by the ephemeral-volume
// controller and usable only if the pod controls it (Kubernetes' component-helpers ephemeral
// package: VolumeClaimName, VolumeIsForPod).
import type { Pod, Volume } from './types/core.js';
import type { KubeObject } from './types/meta.js';

export interface VolumeClaim {
  claimName: string;
  readOnly: boolean;
  /** A generic ephemeral volume's claim: the pod must control it. */
  ephemeral: boolean;
}

/** The claim a generic ephemeral volume uses: "<pod>-<volume>". */
export function ephemeralClaimName(pod: Pod, volume: Volume): string {
  return `${pod.metadata.name ?? ''}-${volume.name}`;
}

/** The claim behind a pod volume, if it is backed by one. */
export function volumeClaim(pod: Pod, volume: Volume): VolumeClaim | undefined {
  if (volume.persistentVolumeClaim?.claimName) return { claimName: volume.persistentVolumeClaim.claimName, readOnly: volume.persistentVolumeClaim.readOnly === true, ephemeral: false };
  if (volume.ephemeral !== undefined) return { claimName: ephemeralClaimName(pod, volume), readOnly: false, ephemeral: true };
  return undefined;
}

/** Every claim the pod's volumes use, in volume order. */
export function podVolumeClaims(pod: Pod): VolumeClaim[] {
  return (pod.spec?.volumes ?? []).flatMap((v) => volumeClaim(pod, v) ?? []);
}

/** metav1.IsControlledBy: the object's controller reference names the owner's UID. */
export function isControlledBy(obj: KubeObject, owner: KubeObject): boolean {
  const uid = owner.metadata.uid;
  return uid !== undefined && (obj.metadata.ownerReferences ?? []).some((o) => o.controller === true && o.uid === uid);
}

/** Why a pod may not use an ephemeral volume's existing claim (the scheduler's and the kubelet's words), or undefined. */
export function ephemeralClaimConflict(pod: Pod, claim: KubeObject): string | undefined {
  if (isControlledBy(claim, pod)) return undefined;
  return `PVC ${claim.metadata.namespace ?? 'default'}/${claim.metadata.name ?? ''} was not created for pod ${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''} (pod is not owner)`;
}
