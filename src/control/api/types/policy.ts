// policy/v1: PodDisruptionBudget (how many of an application's pods may be down for voluntary
// disruptions: evictions, drains, preemption) and Eviction (the body POSTed to a pod's /eviction).
import type { KubeObject, LabelSelector, ObjectMeta } from './meta.js';

/** metav1.Condition (with observedGeneration), as PodDisruptionBudget's status has it. */
export interface PodDisruptionBudgetCondition {
  type: string;
  status: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export interface PodDisruptionBudgetSpec {
  /** A count or a percentage ("50%") of the selected pods that must stay available. */
  minAvailable?: number | string;
  selector?: LabelSelector;
  /** A count or a percentage that may be unavailable; exclusive with minAvailable. */
  maxUnavailable?: number | string;
  /** IfHealthyBudget (default) or AlwaysAllow: whether unready pods may be evicted regardless. */
  unhealthyPodEvictionPolicy?: string;
}

export interface PodDisruptionBudgetStatus {
  observedGeneration?: number;
  /** Pods the eviction API has let go but the controller has not seen deleted yet: name → when. */
  disruptedPods?: Record<string, string>;
  disruptionsAllowed?: number;
  currentHealthy?: number;
  desiredHealthy?: number;
  expectedPods?: number;
  conditions?: PodDisruptionBudgetCondition[];
}

export interface PodDisruptionBudget extends KubeObject {
  apiVersion: 'policy/v1';
  kind: 'PodDisruptionBudget';
  spec?: PodDisruptionBudgetSpec;
  status?: PodDisruptionBudgetStatus;
}

export interface Eviction {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  /** A DeleteOptions object (checked as the DELETE body is). */
  deleteOptions?: unknown;
}
