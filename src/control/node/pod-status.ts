// A pod's status as the kubelet reports it, computed from what the runtime says about each
// container: phase, conditions and containerStatuses.
import type { Container, Pod, PodStatus } from '../api/types/core.js';
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

function containerStatus(pod: Pod, view: ContainerView): Record<string, unknown> {
  const s = view.status;
  const running = s?.state === 'running';
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
    ready: running,
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

function condition(previous: Condition[] | undefined, type: string, ok: boolean, now: string, reason?: string): Condition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    ...(reason && !ok ? { reason } : {}),
    lastTransitionTime: before?.status === status && before.lastTransitionTime ? before.lastTransitionTime : now,
  };
}

export interface StatusInput {
  pod: Pod;
  views: ContainerView[];
  /** Volumes are set up (else the pod waits in ContainerCreating). */
  volumesReady: boolean;
  hostIP: string;
  now?: string;
}

export function computePodStatus(input: StatusInput): PodStatus {
  const { pod, views } = input;
  const now = input.now ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const previous = pod.status?.conditions;
  const phase = podPhase(pod, views);
  const allRunning = views.length > 0 && views.every((v) => v.status?.state === 'running' && v.waiting === undefined);
  const finished = phase === 'Succeeded' || phase === 'Failed';
  const notReadyReason = finished ? 'PodCompleted' : 'ContainersNotReady';
  const scheduled = previous?.find((c) => c.type === 'PodScheduled');
  return {
    ...pod.status,
    phase,
    conditions: [
      condition(previous, 'PodReadyToStartContainers', input.volumesReady, now),
      condition(previous, 'Initialized', true, now),
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
    containerStatuses: views.map((v) => containerStatus(pod, v)),
    qosClass: pod.status?.['qosClass'] ?? 'BestEffort',
  };
}
