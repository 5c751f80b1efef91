// A pod's priority as the scheduler reads it (corev1helpers.PodPriority: spec.priority, absent 0,
// set by the Priority admission from the pod's PriorityClass), whether it may preempt
// (spec.preemptionPolicy, absent PreemptLowerPriority), and kube-scheduler's MoreImportantPod
// (higher priority, then the earlier start time) that orders victims.
import type { Pod } from '../api/types/core.js';

export function podPriority(pod: Pod): number {
  return typeof pod.spec?.priority === 'number' ? pod.spec.priority : 0;
}

export function preemptsOthers(pod: Pod): boolean {
  return pod.spec?.['preemptionPolicy'] !== 'Never';
}

/** status.startTime in ms; a pod not started yet counts as starting now (util.GetPodStartTime). */
export function podStartMs(pod: Pod, now = Date.now()): number {
  const t = pod.status?.startTime === undefined ? Number.NaN : Date.parse(pod.status.startTime);
  return Number.isNaN(t) ? now : t;
}

/** Whether a is more important than b: higher priority, then started earlier. */
export function moreImportantPod(a: Pod, b: Pod): boolean {
  const pa = podPriority(a);
  const pb = podPriority(b);
  if (pa !== pb) return pa > pb;
  return podStartMs(a) < podStartMs(b);
}
