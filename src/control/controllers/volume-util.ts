// What the volume controllers share: Kubernetes' annotation and finalizer names, and the
// predicates of its PV controller (class of a claim, "is this volume bound to this claim",
// "does this volume satisfy this claim", node affinity).
import { selectorMatches } from '../api/label-selector.js';
import { compareQuantities, isQuantity } from '../api/quantity.js';
import type { NodeSelector, NodeSelectorRequirement, PersistentVolume, PersistentVolumeAccessMode, PersistentVolumeClaim } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';

/** On a PVC: the binder has finished its part of the binding. */
export const ANN_BIND_COMPLETED = 'pv.kubernetes.io/bind-completed';
/** On a PV or PVC: the binder (not the user) set claimRef / volumeName. */
export const ANN_BOUND_BY_CONTROLLER = 'pv.kubernetes.io/bound-by-controller';
/** On a PV: the provisioner that created it (the CSI driver's name). */
export const ANN_PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
/** On a PVC: the provisioner asked to provision it (set by the binder). */
export const ANN_STORAGE_PROVISIONER = 'volume.kubernetes.io/storage-provisioner';
export const ANN_BETA_STORAGE_PROVISIONER = 'volume.beta.kubernetes.io/storage-provisioner';
/** On a PVC: the node the scheduler picked (WaitForFirstConsumer). */
export const ANN_SELECTED_NODE = 'volume.kubernetes.io/selected-node';
/** The old way to name a claim's or volume's class. */
export const ANN_BETA_STORAGE_CLASS = 'volume.beta.kubernetes.io/storage-class';
/** On a provisioned PV: the secret DeleteVolume needs (external-provisioner's annotations). */
export const ANN_DELETION_SECRET_NAME = 'volume.kubernetes.io/provisioner-deletion-secret-name';
export const ANN_DELETION_SECRET_NAMESPACE = 'volume.kubernetes.io/provisioner-deletion-secret-namespace';

/**
 * On a PV the resizer grew whose filesystem still needs growing on a node: the claim's capacity
 * before the expansion (Kubernetes' AnnPreResizeCapacity); the node removes it once done.
 */
export const ANN_PRE_RESIZE_CAPACITY = 'volume.alpha.kubernetes.io/pre-resize-capacity';

export { PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER } from '../store/storage-object-in-use-protection.js';

/** A class whose volumes are only ever created by hand (local PVs). */
export const NO_PROVISIONER = 'kubernetes.io/no-provisioner';

/**
 * Held on a claim from before its CreateVolume until it is bound to the PV made for it (or the
 * volume made for it is deleted again): the durable record that a volume of this name may exist.
 * Without it, a claim deleted while CreateVolume ran, with the control plane restarted before the
 * call's answer was acted on, left a volume nothing would ever delete (external-provisioner#486
 * proposes the same). The provisioner adds it; the binder's write that binds the claim to that PV
 * takes it off (no write of its own); a claim being deleted before that is let go by the
 * provisioner, which first gives it CreateVolume once more by the same name, to learn the volume's
 * ID, then DeleteVolume, unless the PV exists already.
 */
export const PROVISIONING_FINALIZER = 'provisioner.stowage.dev/volume-being-created';

export function holdsProvisioningFinalizer(pvc: PersistentVolumeClaim): boolean {
  return pvc.metadata.finalizers?.includes(PROVISIONING_FINALIZER) === true;
}

/** The PV (and CSI volume) name a claim is provisioned under: pvc-<uid>, as Kubernetes names it. */
export function volumeNameFor(pvc: PersistentVolumeClaim): string {
  return `pvc-${pvc.metadata.uid ?? ''}`;
}

export function annotation(obj: KubeObject, name: string): string | undefined {
  return obj.metadata.annotations?.[name];
}

export function hasAnnotation(obj: KubeObject, name: string): boolean {
  return obj.metadata.annotations?.[name] !== undefined;
}

export function withAnnotations<T extends KubeObject>(obj: T, set: Record<string, string>, remove: readonly string[] = []): T {
  const annotations = { ...obj.metadata.annotations, ...set };
  for (const name of remove) delete annotations[name];
  return { ...obj, metadata: { ...obj.metadata, annotations } };
}

export function claimKey(pvc: PersistentVolumeClaim): string {
  return `${pvc.metadata.namespace ?? 'default'}/${pvc.metadata.name ?? ''}`;
}

export function claimRefKey(pv: PersistentVolume): string | undefined {
  const ref = pv.spec.claimRef;
  return ref?.name ? `${ref.namespace || 'default'}/${ref.name}` : undefined;
}

/** The class a claim asks for: "" means "no class" (only class-less volumes match). */
export function claimClass(pvc: PersistentVolumeClaim): string {
  return annotation(pvc, ANN_BETA_STORAGE_CLASS) ?? pvc.spec.storageClassName ?? '';
}

export function volumeClass(pv: PersistentVolume): string {
  return annotation(pv, ANN_BETA_STORAGE_CLASS) ?? pv.spec.storageClassName ?? '';
}

/** The provisioner asked to provision a claim, if any. */
export function storageProvisioner(pvc: PersistentVolumeClaim): string | undefined {
  return annotation(pvc, ANN_STORAGE_PROVISIONER) ?? annotation(pvc, ANN_BETA_STORAGE_PROVISIONER);
}

/** Whether the volume's claimRef names this claim (and, when it records a uid, this very claim). */
export function isBoundToClaim(pv: PersistentVolume, pvc: PersistentVolumeClaim): boolean {
  const ref = pv.spec.claimRef;
  if (ref === undefined) return false;
  if (ref.name !== pvc.metadata.name || (ref.namespace || 'default') !== pvc.metadata.namespace) return false;
  return !ref.uid || ref.uid === pvc.metadata.uid;
}

export function volumeModeOf(spec: { volumeMode?: string | undefined }): string {
  return spec.volumeMode ?? 'Filesystem';
}

export function requestedStorage(pvc: PersistentVolumeClaim): string {
  return pvc.spec.resources?.requests?.['storage'] ?? '0';
}

export function volumeStorage(pv: PersistentVolume): string {
  return pv.spec.capacity?.['storage'] ?? '0';
}

export function missingAccessModes(claim: readonly PersistentVolumeAccessMode[] | undefined, volume: readonly PersistentVolumeAccessMode[] | undefined): PersistentVolumeAccessMode[] {
  const have = new Set(volume ?? []);
  return (claim ?? []).filter((m) => !have.has(m));
}

function compareStorage(a: string, b: string): number {
  if (!isQuantity(a) || !isQuantity(b)) return a === b ? 0 : isQuantity(a) ? 1 : -1;
  return compareQuantities(a, b);
}

/** Why this volume cannot serve this claim's size, access modes and volume mode; undefined if it can. */
export function capacityModesMismatch(pv: PersistentVolume, pvc: PersistentVolumeClaim): string | undefined {
  if (volumeModeOf(pv.spec) !== volumeModeOf(pvc.spec)) return `volume mode ${volumeModeOf(pv.spec)} is not the requested ${volumeModeOf(pvc.spec)}`;
  const missing = missingAccessModes(pvc.spec.accessModes, pv.spec.accessModes);
  if (missing.length > 0) return `lacks access mode ${missing.join(', ')}`;
  const requested = requestedStorage(pvc);
  if (compareStorage(volumeStorage(pv), requested) < 0) return `capacity ${volumeStorage(pv)} is less than the requested ${requested}`;
  return undefined;
}

/** As capacityModesMismatch, plus the class (Kubernetes' checkVolumeSatisfyClaim). */
export function volumeSatisfiesClaim(pv: PersistentVolume, pvc: PersistentVolumeClaim): string | undefined {
  if (volumeClass(pv) !== claimClass(pvc)) return `storageClassName does not match`;
  return capacityModesMismatch(pv, pvc);
}

export function selectorAccepts(pvc: PersistentVolumeClaim, pv: PersistentVolume): boolean {
  const selector = pvc.spec.selector;
  if (selector === undefined) return true;
  return selectorMatches(selector, pv.metadata.labels);
}

/** Whether a claim's selector asks for anything (an empty selector selects everything). */
export function hasSelector(pvc: PersistentVolumeClaim): boolean {
  const s = pvc.spec.selector;
  return s !== undefined && (Object.keys(s.matchLabels ?? {}).length > 0 || (s.matchExpressions ?? []).length > 0);
}

function requirementMatches(req: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || values.length !== 1) return false;
      const have = Number.parseInt(value, 10);
      const limit = Number.parseInt(values[0] ?? '', 10);
      if (!Number.isFinite(have) || !Number.isFinite(limit)) return false;
      return req.operator === 'Gt' ? have > limit : have < limit;
    }
  }
}

/** Whether a node (its name and labels) satisfies a required node selector: terms OR'ed, expressions AND'ed. */
export function nodeSelectorMatches(selector: NodeSelector | undefined, nodeName: string, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined) return true;
  const terms = selector.nodeSelectorTerms ?? [];
  if (terms.length === 0) return false;
  return terms.some((term) => {
    const exprs = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((r) => requirementMatches(r, labels?.[r.key])) &&
      fields.every((r) => requirementMatches(r, r.key === 'metadata.name' ? nodeName : undefined))
    );
  });
}

export function volumeFitsNode(pv: PersistentVolume, nodeName: string, labels: Record<string, string> | undefined): boolean {
  return nodeSelectorMatches(pv.spec.nodeAffinity?.required, nodeName, labels);
}

export function isDeleting(obj: KubeObject): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}
