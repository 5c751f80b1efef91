// A pod's claims as the volume plugins (VolumeRestrictions, NodeVolumeLimits, VolumeBinding) see
// them: the claim objects, looked up once per attempt and shared through the CycleState, and each
// claim's binding state (bound to a PV, or waiting for a consumer with maybe a PV already made).
import { podVolumeClaims } from '../api/pod-claims.js';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from '../api/types/core.js';
import type { StorageClass } from '../api/types/storage.js';
import { podIsFinished } from '../controllers/protection.js';
import { claimClass, isBoundToClaim, isDeleting } from '../controllers/volume-util.js';
import type { CycleState } from './framework.js';
import type { PluginContext } from './plugin-context.js';

export const REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind";
export const REASON_PV_NOT_EXIST = 'node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)';

export const IDX_PENDING_BY_CLAIM = 'scheduler:pending-by-claim';
export const IDX_ACTIVE_BY_CLAIM = 'scheduler:active-by-claim';
export const IDX_PV_AVAILABLE_BY_CLASS = 'scheduler:available-by-class';
export const IDX_PV_BY_CLAIM_UID = 'scheduler:by-claim-uid';

/** One pod volume backed by a claim: the claim's name and, if it exists, the claim. */
export interface PodClaim {
  name: string;
  /** Set for a generic ephemeral volume (claim "<pod>-<volume>", made by another controller). */
  ephemeral: boolean;
  pvc: PersistentVolumeClaim | undefined;
}

/** What the volume-binding filter decided for one claim. */
export type ClaimPlan =
  | { kind: 'bound'; pv: PersistentVolume }
  /** Unbound, WaitForFirstConsumer: needs selected-node. */
  | { kind: 'delayed'; pvc: PersistentVolumeClaim; sc: StorageClass; prebound: PersistentVolume | undefined };

/** The pod's claims: persistentVolumeClaim volumes and generic ephemeral volumes ("<pod>-<volume>"). */
export function podClaimNames(pod: Pod): { name: string; ephemeral: boolean }[] {
  return podVolumeClaims(pod).map((c) => ({ name: c.claimName, ephemeral: c.ephemeral }));
}

/** The indexes the volume plugins read (idempotent: each plugin may ask). */
export function addClaimIndexes(ctx: PluginContext, needsScheduling: (pod: Pod) => boolean): void {
  ctx.pods.addIndex(IDX_PENDING_BY_CLAIM, (pod) => {
    if (!needsScheduling(pod)) return [];
    const ns = pod.metadata.namespace ?? 'default';
    return podClaimNames(pod).map((c) => `${ns}/${c.name}`);
  });
  ctx.pods.addIndex(IDX_ACTIVE_BY_CLAIM, (pod) => (pod.spec?.nodeName && !podIsFinished(pod) ? podClaimNames(pod).map((c) => `${pod.metadata.namespace ?? 'default'}/${c.name}`) : []));
  ctx.pvs.addIndex(IDX_PV_AVAILABLE_BY_CLASS, (pv) => (pv.spec.claimRef === undefined && !isDeleting(pv) ? [pv.spec.storageClassName ?? ''] : []));
  ctx.pvs.addIndex(IDX_PV_BY_CLAIM_UID, (pv) => (pv.spec.claimRef?.uid ? [pv.spec.claimRef.uid] : []));
}

const STATE_CLAIMS = 'claims';

/** The pod's claims, looked up once per attempt. */
export function podClaims(ctx: PluginContext, state: CycleState, pod: Pod): PodClaim[] {
  let claims = state.read<PodClaim[]>(STATE_CLAIMS);
  if (claims === undefined) {
    const ns = pod.metadata.namespace ?? 'default';
    claims = podClaimNames(pod).map((c) => ({ ...c, pvc: ctx.pvcs.getByName(ns, c.name) }));
    state.write(STATE_CLAIMS, claims);
  }
  return claims;
}

const STATE_PLANS = 'claim-plans';

/** planClaim for each of the pod's claims that exists, once per attempt (the same for every node). */
export function podClaimPlans(ctx: PluginContext, state: CycleState, pod: Pod): { name: string; plan: ClaimPlan | string }[] {
  let plans = state.read<{ name: string; plan: ClaimPlan | string }[]>(STATE_PLANS);
  if (plans === undefined) {
    plans = podClaims(ctx, state, pod).flatMap((c) => (c.pvc === undefined ? [] : [{ name: c.name, plan: planClaim(ctx, c.pvc) }]));
    state.write(STATE_PLANS, plans);
  }
  return plans;
}

/** A claim's binding state, or the reason (for every node) it cannot be used. */
export function planClaim(ctx: PluginContext, pvc: PersistentVolumeClaim): ClaimPlan | string {
  if (pvc.spec.volumeName) {
    const pv = ctx.pvs.get(pvc.spec.volumeName);
    return pv === undefined ? REASON_PV_NOT_EXIST : { kind: 'bound', pv };
  }
  const sc = ctx.classes.get(claimClass(pvc));
  // VolumeBinding's PreFilter made sure of the class; this only guards a class deleted in between.
  if (sc === undefined) return REASON_BIND_CONFLICT;
  const prebound = ctx.pvs.byIndex(IDX_PV_BY_CLAIM_UID, pvc.metadata.uid ?? '').find((pv) => isBoundToClaim(pv, pvc) && !isDeleting(pv));
  return { kind: 'delayed', pvc, sc, prebound };
}
