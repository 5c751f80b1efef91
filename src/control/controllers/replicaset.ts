// kube-controller-manager's replicaset controller: keeps spec.replicas pods of the template alive
// (named <set>-<random>, owned by the set), deletes the surplus least-advanced first (unscheduled,
// then pending, then not ready, then the newest), and reports replicas / fullyLabeledReplicas /
// readyReplicas / availableReplicas and a ReplicaFailure condition when pods cannot be created.
import type { Logger } from 'pino';
import { selectorMatches } from '../api/label-selector.js';
import type { ReplicaSet, ReplicaSetStatus } from '../api/types/apps.js';
import type { Pod } from '../api/types/core.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { controllerOf, indexPodsByController, isAvailable, isFinished, isReady, isTerminating, podFromTemplate, podsOwnedBy, setCondition, untilAvailable } from './workload-util.js';

/** Pods that count toward replicas: neither finished nor being deleted (controller.FilterActivePods). */
export function activePods(pods: readonly Pod[]): Pod[] {
  return pods.filter((p) => !isFinished(p) && !isTerminating(p));
}

/**
 * The pods to delete first (controller.ActivePods ordering): unscheduled before scheduled, Pending
 * before Unknown before Running, not ready before ready, then the most recently created.
 */
export function deletionOrder(pods: readonly Pod[]): Pod[] {
  const ranks: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };
  const phaseRank = (p: Pod): number => ranks[p.status?.phase ?? 'Pending'] ?? 0;
  return [...pods].sort((a, b) => {
    const scheduled = Number(Boolean(a.spec.nodeName)) - Number(Boolean(b.spec.nodeName));
    if (scheduled !== 0) return scheduled;
    const phase = phaseRank(a) - phaseRank(b);
    if (phase !== 0) return phase;
    const ready = Number(isReady(a)) - Number(isReady(b));
    if (ready !== 0) return ready;
    return (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '');
  });
}

/** The status a set's pods give it (calculateStatus). */
export function replicaSetStatus(rs: ReplicaSet, pods: readonly Pod[], now = Date.now()): { status: ReplicaSetStatus; requeueAfterMs?: number } {
  const active = activePods(pods);
  const minReady = rs.spec.minReadySeconds ?? 0;
  let requeueAfterMs: number | undefined;
  const templateLabels = rs.spec.template?.metadata?.labels ?? {};
  const status: ReplicaSetStatus = {
    replicas: active.length,
    fullyLabeledReplicas: active.filter((p) => selectorMatches({ matchLabels: templateLabels }, p.metadata.labels)).length,
    readyReplicas: active.filter(isReady).length,
    availableReplicas: active.filter((p) => isAvailable(p, minReady, now)).length,
    observedGeneration: rs.metadata.generation ?? 0,
  };
  for (const p of active) {
    const wait = untilAvailable(p, minReady, now);
    if (wait !== undefined) requeueAfterMs = Math.min(requeueAfterMs ?? wait, wait);
  }
  return requeueAfterMs === undefined ? { status } : { status, requeueAfterMs };
}

export interface ReplicaSetControllerOptions {
  store: Store;
  sets: Informer<ReplicaSet>;
  pods: Informer<Pod>;
  events: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class ReplicaSetController {
  readonly loop: ControllerLoop;
  private readonly o: ReplicaSetControllerOptions;

  constructor(options: ReplicaSetControllerOptions) {
    this.o = options;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'replicaset', logger: options.logger, sync: (key) => this.sync(key), workers: 2, ...backoff });
    indexPodsByController(options.pods);
    const enqueue = (rs: ReplicaSet): void => this.loop.enqueue(keyOf(rs));
    options.sets.addEventHandler({ add: enqueue, update: (_o, rs) => enqueue(rs), delete: enqueue });
    const enqueueOwner = (p: Pod): void => {
      const ref = controllerOf(p);
      if (ref?.kind === 'ReplicaSet') this.loop.enqueue(`${p.metadata.namespace ?? ''}/${ref.name}`);
    };
    options.pods.addEventHandler({ add: enqueueOwner, update: (_o, p) => enqueueOwner(p), delete: enqueueOwner });
  }

  private sync(key: string): SyncResult | undefined {
    const { store, sets, pods, events } = this.o;
    const rs = sets.get(key);
    if (rs === undefined || isTerminating(rs)) return undefined;
    const owned = podsOwnedBy(pods, rs);
    const active = activePods(owned);
    const want = rs.spec.replicas ?? 1;
    let failure: string | undefined;
    if (active.length < want) {
      for (let i = active.length; i < want; i++) {
        const pod = podFromTemplate(rs.spec.template, rs, { generateName: `${rs.metadata.name ?? ''}-` });
        try {
          const created = store.create(pod);
          events.event(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name ?? ''}`);
        } catch (err) {
          failure = (err as Error).message;
          events.event(rs, 'Warning', 'FailedCreate', `Error creating: ${failure}`);
          break;
        }
      }
    } else if (active.length > want) {
      for (const pod of deletionOrder(active).slice(0, active.length - want)) {
        try {
          store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', { preconditions: { uid: pod.metadata.uid ?? '' } });
          events.event(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name ?? ''}`);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
    }
    const current = sets.get(key);
    if (current === undefined || current.metadata.uid !== rs.metadata.uid) return undefined;
    const { status, requeueAfterMs } = replicaSetStatus(current, podsOwnedBy(pods, current));
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    let conditions = current.status?.conditions;
    // As upstream's calculateStatus: set once, not rewritten by later failures (their messages name
    // other generated pods, and each rewrite would wake this controller again at once).
    if (failure !== undefined) {
      if (!conditions?.some((c) => c.type === 'ReplicaFailure')) {
        conditions = setCondition(conditions, { type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure, lastTransitionTime: now });
      }
    }
    else if (conditions?.some((c) => c.type === 'ReplicaFailure')) conditions = conditions.filter((c) => c.type !== 'ReplicaFailure');
    const next = { ...current.status, ...status, ...(conditions !== undefined && conditions.length > 0 ? { conditions } : {}) };
    if (conditions !== undefined && conditions.length === 0) delete next.conditions;
    if (JSON.stringify(next) !== JSON.stringify(current.status)) store.update({ ...current, status: next }, { subresource: 'status' });
    if (failure !== undefined) throw new Error(`creating pods of ReplicaSet ${key}: ${failure}`);
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

/** kube-controller-manager's replicaset controller (registry.ts). */
export const REPLICASET: ControllerDescriptor = {
  name: 'replicaset-controller',
  aliases: ['replicaset'],
  description: 'ReplicaSets: spec.replicas pods of a template',
  init(ctx) {
    const c = new ReplicaSetController({
      store: ctx.store,
      sets: ctx.informers.for('replicasets'),
      pods: ctx.informers.for('pods'),
      events: ctx.events.recorder('replicaset-controller'),
      logger: ctx.logger,
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
