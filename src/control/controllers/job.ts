// kube-controller-manager's job controller, for NonIndexed jobs: up to `parallelism` pods at a time
// until `completions` have succeeded (or, without completions, until one has and none is left
// running); failures (failed pods under Never, container restarts under OnFailure) beyond
// backoffLimit, or activeDeadlineSeconds passed, fail the job and stop its pods. Status carries
// startTime, active / ready / succeeded / failed, completionTime and the Complete or Failed
// condition with upstream's reasons; `get job` prints STATUS, COMPLETIONS and DURATION from it.
// Not done: Indexed completion, podFailurePolicy, successPolicy, suspend, backoff delays between
// retries, ttlSecondsAfterFinished.
import type { Logger } from 'pino';
import type { WorkloadCondition } from '../api/types/apps.js';
import type { Job, JobStatus } from '../api/types/batch.js';
import type { Pod } from '../api/types/core.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { controllerOf, indexPodsByController, isFinished, isReady, isTerminating, podFromTemplate, podsOwnedBy, setCondition } from './workload-util.js';

const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

function restarts(pod: Pod): number {
  const statuses = (pod.status?.['containerStatuses'] as { restartCount?: number }[] | undefined) ?? [];
  return statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0);
}

export interface JobPlan {
  create: number;
  /** Active pods to delete (surplus, or all of them once the job is finished). */
  remove: Pod[];
  status: JobStatus;
  /** Set once the job has just finished: the condition to add and the event to record. */
  finished?: { condition: WorkloadCondition; event: { type: 'Normal' | 'Warning'; reason: string; message: string } };
  /** When the active deadline falls, if it is ahead. */
  deadlineInMs?: number;
}

function isFinishedJob(job: Job): boolean {
  return (job.status?.conditions ?? []).some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

/** What to do for a job given its pods (syncJob's arithmetic, NonIndexed). */
export function planJob(job: Job, pods: readonly Pod[], now = Date.now()): JobPlan {
  const active = pods.filter((p) => !isFinished(p) && !isTerminating(p));
  const succeeded = pods.filter((p) => p.status?.phase === 'Succeeded').length;
  const onFailure = job.spec.template.spec.restartPolicy === 'OnFailure';
  const failed = pods.filter((p) => p.status?.phase === 'Failed').length + (onFailure ? pods.reduce((n, p) => n + restarts(p), 0) : 0);
  const startTime = job.status?.startTime ?? rfc3339(now);
  const status: JobStatus = {
    ...job.status,
    startTime,
    active: active.length,
    ready: active.filter(isReady).length,
    succeeded,
    failed,
    terminating: pods.filter(isTerminating).length,
  };
  for (const k of ['succeeded', 'failed', 'terminating'] as const) if (status[k] === 0) delete status[k];
  if (isFinishedJob(job)) return { create: 0, remove: active, status };

  const completions = job.spec.completions;
  const parallelism = job.spec.parallelism ?? 1;
  const backoffLimit = job.spec.backoffLimit ?? 6;
  const deadline = job.spec.activeDeadlineSeconds;
  const at = rfc3339(now);
  let finished: JobPlan['finished'];
  if (failed > backoffLimit) {
    finished = {
      condition: { type: 'Failed', status: 'True', lastProbeTime: at, lastTransitionTime: at, reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' } as WorkloadCondition,
      event: { type: 'Warning', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' },
    };
  } else if (deadline !== undefined && now - Date.parse(startTime) >= deadline * 1000) {
    finished = {
      condition: { type: 'Failed', status: 'True', lastProbeTime: at, lastTransitionTime: at, reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' } as WorkloadCondition,
      event: { type: 'Warning', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' },
    };
  } else if ((completions !== undefined && succeeded >= completions) || (completions === undefined && succeeded > 0 && active.length === 0)) {
    finished = {
      condition: { type: 'Complete', status: 'True', lastProbeTime: at, lastTransitionTime: at, reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' } as WorkloadCondition,
      event: { type: 'Normal', reason: 'Completed', message: 'Job completed' },
    };
  }
  if (finished !== undefined) {
    status.conditions = setCondition(status.conditions, finished.condition);
    if (finished.condition.type === 'Complete') status.completionTime = at;
    status.active = 0;
    delete status.ready;
    return { create: 0, remove: active, status, finished };
  }
  // How many should run now: parallelism, but no more than the completions still missing.
  let want = parallelism;
  if (completions !== undefined) want = Math.min(parallelism, completions - succeeded);
  else if (succeeded > 0) want = 0;
  const plan: JobPlan = { create: Math.max(0, want - active.length), remove: active.length > want ? active.slice(want) : [], status };
  if (deadline !== undefined) plan.deadlineInMs = Math.max(0, Date.parse(startTime) + deadline * 1000 - now);
  return plan;
}

export interface JobControllerOptions {
  store: Store;
  jobs: Informer<Job>;
  pods: Informer<Pod>;
  events: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class JobController {
  readonly loop: ControllerLoop;
  private readonly o: JobControllerOptions;

  constructor(options: JobControllerOptions) {
    this.o = options;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'job', logger: options.logger, sync: (key) => this.sync(key), workers: 2, ...backoff });
    indexPodsByController(options.pods);
    const enqueue = (j: Job): void => this.loop.enqueue(keyOf(j));
    options.jobs.addEventHandler({ add: enqueue, update: (_o, j) => enqueue(j), delete: enqueue });
    const enqueueOwner = (p: Pod): void => {
      const ref = controllerOf(p);
      if (ref?.kind === 'Job') this.loop.enqueue(`${p.metadata.namespace ?? ''}/${ref.name}`);
    };
    options.pods.addEventHandler({ add: enqueueOwner, update: (_o, p) => enqueueOwner(p), delete: enqueueOwner });
  }

  private sync(key: string): SyncResult | undefined {
    const { store, jobs, pods, events } = this.o;
    const job = jobs.get(key);
    if (job === undefined || isTerminating(job)) return undefined;
    const plan = planJob(job, podsOwnedBy(pods, job));
    for (const pod of plan.remove) {
      try {
        store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', { preconditions: { uid: pod.metadata.uid ?? '' } });
        events.event(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name ?? ''}`);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    for (let i = 0; i < plan.create; i++) {
      try {
        const created = store.create(podFromTemplate(job.spec.template, job, { generateName: `${job.metadata.name ?? ''}-` }));
        events.event(job, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name ?? ''}`);
      } catch (err) {
        events.event(job, 'Warning', 'FailedCreate', `Error creating: ${(err as Error).message}`);
        throw err;
      }
    }
    if (plan.finished !== undefined) events.event(job, plan.finished.event.type, plan.finished.event.reason, plan.finished.event.message);
    const current = jobs.get(key);
    if (current !== undefined && current.metadata.uid === job.metadata.uid) {
      // Counts as they are after this sync's own writes.
      const status = plan.create > 0 || plan.remove.length > 0 ? { ...plan.status, active: (plan.status.active ?? 0) + plan.create - (plan.finished ? 0 : plan.remove.length) } : plan.status;
      if (JSON.stringify(status) !== JSON.stringify(current.status)) store.update({ ...current, status }, { subresource: 'status' });
    }
    return plan.deadlineInMs === undefined ? undefined : { requeueAfterMs: plan.deadlineInMs + 10 };
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

/** kube-controller-manager's job controller (registry.ts). */
export const JOB: ControllerDescriptor = {
  name: 'job-controller',
  aliases: ['job'],
  description: 'Jobs: pods run to completion, with parallelism and a backoff limit',
  init(ctx) {
    const c = new JobController({
      store: ctx.store,
      jobs: ctx.informers.for('jobs'),
      pods: ctx.informers.for('pods'),
      events: ctx.events.recorder('job-controller'),
      logger: ctx.logger,
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
