// initContainers as the kubelet runs them: one at a time, in order, each to completion (exit 0)
// before the next starts, and the app containers only once all have completed. A failed one is
// restarted (with the usual back-off) unless the pod's restartPolicy is Never, in which case the
// pod fails. This file decides which step comes next from what the runtime says; the agent does it.
import type { Container, Pod } from '../api/types/core.js';
import type { ContainerStatus } from './runtime-api.js';

export type InitStep =
  /** Every init container has completed: the app containers may run. */
  | { kind: 'done' }
  /** One failed and restartPolicy is Never: the pod has failed. */
  | { kind: 'failed'; index: number }
  /** Container `index` is to be started, restarted or watched; the ones after it wait. */
  | { kind: 'run'; index: number };

/** The restart policy an init container follows: Never stays Never, anything else is OnFailure. */
export function initRestartPolicy(pod: Pod): 'Never' | 'OnFailure' {
  return pod.spec.restartPolicy === 'Never' ? 'Never' : 'OnFailure';
}

export function nextInitStep(pod: Pod, statuses: readonly (ContainerStatus | undefined)[]): InitStep {
  const inits = pod.spec.initContainers ?? [];
  for (let i = 0; i < inits.length; i++) {
    const s = statuses[i];
    if (s?.state === 'exited' && s.exitCode === 0) continue;
    if (s?.state === 'exited' && initRestartPolicy(pod) === 'Never') return { kind: 'failed', index: i };
    return { kind: 'run', index: i };
  }
  return { kind: 'done' };
}

/** Names of init containers that have not completed, for the Initialized condition's message. */
export function incompleteInits(inits: readonly Container[], statuses: readonly (ContainerStatus | undefined)[]): string[] {
  return inits.filter((_, i) => !(statuses[i]?.state === 'exited' && statuses[i]?.exitCode === 0)).map((c) => c.name);
}
