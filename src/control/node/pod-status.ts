// A pod's status as the kubelet reports it, computed from what the runtime says about each
// container: phase, conditions, initContainerStatuses and containerStatuses.
import { podQOSClass } from '../api/qos.js';
import type { Container, Pod, PodStatus } from '../api/types/core.js';
import { incompleteInits, nextInitStep } from './init-containers.js';
import type { ContainerStatus } from './runtime-api.js';

export interface ContainerView {
  container: Container;
  /** undefined: not created yet. */
  status: ContainerStatus | undefined;
  /** Earlier attempt's final status (lastState). */
  last?: ContainerStatus | undefined;
  /** Why it is not running, when it is waiting (ContainerCreating, CrashLoopBackOff, CreateContainerError…). */
  waiting?: { reason: string; message?: string };
}

type Condition = NonNullable<PodStatus['conditions']>[number];

/** Kubernetes' metav1.Time: RFC 3339 with whole seconds. */
function seconds(time: string | undefined): string | undefined {
  return time === undefined ? undefined : time.replace(/\.\d+Z$/, 'Z');
}

function terminated(s: ContainerStatus): Record<string, unknown> {
  return {
    terminated: {
      exitCode: s.exitCode ?? 255,
      ...(s.signal ? { signal: s.signal } : {}),
      reason: s.reason ?? ((s.exitCode ?? 255) === 0 ? 'Completed' : 'Error'),
      ...(s.startedAt ? { startedAt: seconds(s.startedAt) } : {}),
      ...(s.finishedAt ? { finishedAt: seconds(s.finishedAt) } : {}),
      containerID: '',
    },
  };
}

function containerStatus(pod: Pod, view: ContainerView, init = false): Record<string, unknown> {
  const s = view.status;
  const running = s?.state === 'running';
  // An init container is ready once it has completed (the kubelet's word for "done").
  const ready = init ? s?.state === 'exited' && s.exitCode === 0 && view.waiting === undefined : running;
  let state: Record<string, unknown>;
  if (view.waiting !== undefined || s === undefined) state = { waiting: view.waiting ?? { reason: 'ContainerCreating' } };
  else if (running) state = { running: { ...(s.startedAt ? { startedAt: seconds(s.startedAt) } : {}) } };
  else state = terminated(s);
  const restartCount = s?.attempt ?? 0;
  const uid = pod.metadata.uid ?? '';
  return {
    name: view.container.name,
    image: view.container.image ?? '',
    imageID: '',
    ...(s ? { containerID: `stowage://${uid}/${view.container.name}/${s.attempt}` } : {}),
    ready,
    started: running,
    restartCount,
    state,
    lastState: view.last ? terminated(view.last) : {},
  };
}

/** The pod phase from its containers and restart policy (Kubernetes' getPhase). */
export function podPhase(pod: Pod, views: readonly ContainerView[]): NonNullable<PodStatus['phase']> {
  const policy = pod.spec.restartPolicy ?? 'Always';
  let waiting = 0;
  let running = 0;
  let succeeded = 0;
  let failed = 0;
  for (const v of views) {
    const s = v.status;
    if (s === undefined || (v.waiting !== undefined && s.state !== 'exited')) waiting++;
    else if (s.state === 'running') running++;
    else if (s.state === 'exited' && s.exitCode === 0) succeeded++;
    else failed++;
  }
  // A container waiting for a restart counts as running, as in Kubernetes.
  const restarting = views.filter((v) => v.waiting !== undefined && v.status?.state === 'exited').length;
  if (waiting > 0 && running === 0 && restarting === 0 && succeeded + failed === 0) return 'Pending';
  if (running > 0 || restarting > 0) return 'Running';
  if (waiting > 0) return 'Pending';
  // All containers have exited.
  if (policy === 'Always') return 'Running';
  if (failed > 0) return policy === 'Never' ? 'Failed' : 'Running';
  return 'Succeeded';
}

function condition(previous: Condition[] | undefined, type: string, ok: boolean, now: string, reason?: string, message?: string): Condition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    ...(reason && !ok ? { reason } : {}),
    ...(message && !ok ? { message } : {}),
    lastTransitionTime: before?.status === status && before.lastTransitionTime ? before.lastTransitionTime : now,
  };
}

export interface StatusInput {
  pod: Pod;
  views: ContainerView[];
  /** The init containers, in spec order (absent or empty when the pod has none). */
  initViews?: ContainerView[];
  /** Volumes are set up (else the pod waits in ContainerCreating). */
  volumesReady: boolean;
  hostIP: string;
  now?: string;
}

export function computePodStatus(input: StatusInput): PodStatus {
  const { pod, views } = input;
  const now = input.now ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const previous = pod.status?.conditions;
  const initViews = input.initViews ?? [];
  const initStatuses = initViews.map((v) => v.status);
  const step = nextInitStep(pod, initStatuses);
  // Kubernetes' getPhase: Pending until every init container has completed, Failed when one
  // failed under restartPolicy Never.
  const phase = step.kind === 'failed' ? 'Failed' : step.kind === 'run' ? 'Pending' : podPhase(pod, views);
  const incomplete = incompleteInits(pod.spec.initContainers ?? [], initStatuses);
  const allRunning = views.length > 0 && views.every((v) => v.status?.state === 'running' && v.waiting === undefined);
  const finished = phase === 'Succeeded' || phase === 'Failed';
  const notReadyReason = finished ? 'PodCompleted' : 'ContainersNotReady';
  const scheduled = previous?.find((c) => c.type === 'PodScheduled');
  return {
    ...pod.status,
    phase,
    conditions: [
      condition(previous, 'PodReadyToStartContainers', input.volumesReady, now),
      condition(previous, 'Initialized', step.kind === 'done', now, 'ContainersNotInitialized', `containers with incomplete status: [${incomplete.join(' ')}]`),
      condition(previous, 'Ready', allRunning, now, notReadyReason),
      condition(previous, 'ContainersReady', allRunning, now, notReadyReason),
      scheduled ?? { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
    ],
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    // Containers share the node's network namespace (hostNetwork), so the pod IP is the node's.
    podIP: input.hostIP,
    podIPs: [{ ip: input.hostIP }],
    startTime: pod.status?.startTime ?? now,
    ...(initViews.length > 0 ? { initContainerStatuses: initViews.map((v) => containerStatus(pod, v, true)) } : {}),
    containerStatuses: views.map((v) => containerStatus(pod, v)),
    qosClass: pod.status?.['qosClass'] ?? podQOSClass(pod),
  };
}
