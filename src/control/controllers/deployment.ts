// kube-controller-manager's deployment controller: one ReplicaSet per pod template, named
// <deployment>-<pod-template-hash> and selecting that label; a RollingUpdate moves replicas from
// the old sets to the new one within maxSurge (pods above spec.replicas) and maxUnavailable (pods
// below it that are not available); Recreate scales the old sets to zero and waits for their pods
// to be gone before the new set gets any. Revisions (deployment.kubernetes.io/revision), old sets
// beyond revisionHistoryLimit removed, and the status and conditions `kubectl rollout status` and
// the READY / UP-TO-DATE / AVAILABLE columns read.
//
// The arithmetic (planRollout) is pure and unit-tested; the controller carries it out.
import type { Logger } from 'pino';
import { scaledValue } from '../api/kinds/deployment.js';
import type { Deployment, DeploymentStatus, PodTemplateSpec, ReplicaSet, WorkloadCondition } from '../api/types/apps.js';
import type { Pod } from '../api/types/core.js';
import { AlreadyExistsError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, keyOf, splitKey } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { controllerOf, controllerRef, indexPodsByController, isTerminating, podsOwnedBy, setCondition, templateHash } from './workload-util.js';

export const POD_TEMPLATE_HASH = 'pod-template-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
const DESIRED_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
const MAX_ANNOTATION = 'deployment.kubernetes.io/max-replicas';
const IDX_RS_BY_CONTROLLER = 'workloads:replicasets-by-controller-uid';

/** maxSurge and maxUnavailable as counts (deploymentutil.ResolveFenceposts): both 0 means 1 unavailable. */
export function fenceposts(d: Deployment): { maxSurge: number; maxUnavailable: number } {
  const replicas = d.spec.replicas ?? 1;
  const ru = d.spec.strategy?.rollingUpdate;
  const maxSurge = scaledValue(ru?.maxSurge, replicas, true);
  let maxUnavailable = scaledValue(ru?.maxUnavailable, replicas, false);
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable };
}

const specReplicas = (rs: ReplicaSet): number => rs.spec.replicas ?? 0;
const available = (rs: ReplicaSet): number => rs.status?.availableReplicas ?? 0;

/** New replica counts per set name for one step of a rolling update (reconcileNewReplicaSet + reconcileOldReplicaSets). */
export function planRollingUpdate(d: Deployment, newRS: ReplicaSet, oldRSs: readonly ReplicaSet[]): Map<string, number> {
  const replicas = d.spec.replicas ?? 1;
  const { maxSurge, maxUnavailable } = fenceposts(d);
  const scale = new Map<string, number>();
  const all = [newRS, ...oldRSs];
  const total = (): number => all.reduce((n, rs) => n + (scale.get(rs.metadata.name ?? '') ?? specReplicas(rs)), 0);
  // The new set grows as far as maxSurge allows (or shrinks to spec.replicas).
  const newCount = specReplicas(newRS);
  if (newCount > replicas) scale.set(newRS.metadata.name ?? '', replicas);
  else if (newCount < replicas) {
    const room = replicas + maxSurge - total();
    if (room > 0) scale.set(newRS.metadata.name ?? '', newCount + Math.min(room, replicas - newCount));
  }
  // The old sets shrink as far as maxUnavailable allows, the unhealthy ones first.
  const minAvailable = replicas - maxUnavailable;
  const newUnavailable = specReplicas(newRS) - available(newRS);
  let budget = total() - minAvailable - newUnavailable;
  const oldest = [...oldRSs].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
  for (const rs of oldest) {
    if (budget <= 0) break;
    const unhealthy = specReplicas(rs) - available(rs);
    const cut = Math.min(unhealthy, budget);
    if (cut > 0) {
      scale.set(rs.metadata.name ?? '', specReplicas(rs) - cut);
      budget -= cut;
    }
  }
  let availableNow = all.reduce((n, rs) => n + available(rs), 0);
  for (const rs of oldest) {
    const current = scale.get(rs.metadata.name ?? '') ?? specReplicas(rs);
    const surplus = availableNow - minAvailable;
    if (surplus <= 0 || budget <= 0) break;
    const cut = Math.min(current, surplus, budget);
    if (cut > 0) {
      scale.set(rs.metadata.name ?? '', current - cut);
      availableNow -= cut;
      budget -= cut;
    }
  }
  return scale;
}

/** The template without the pod-template-hash label, for comparing a set's template with the deployment's. */
function bareTemplate(t: PodTemplateSpec): PodTemplateSpec {
  const copy = structuredClone(t);
  if (copy.metadata?.labels) delete copy.metadata.labels[POD_TEMPLATE_HASH];
  return copy;
}

export function deploymentStatus(d: Deployment, newRS: ReplicaSet | undefined, all: readonly ReplicaSet[], now: string): DeploymentStatus {
  const sum = (f: (rs: ReplicaSet) => number): number => all.reduce((n, rs) => n + f(rs), 0);
  const replicas = d.spec.replicas ?? 1;
  const availableReplicas = sum(available);
  const status: DeploymentStatus = {
    observedGeneration: d.metadata.generation ?? 0,
    replicas: sum((rs) => rs.status?.replicas ?? 0),
    updatedReplicas: newRS?.status?.replicas ?? 0,
    readyReplicas: sum((rs) => rs.status?.readyReplicas ?? 0),
    availableReplicas,
    unavailableReplicas: Math.max(0, sum(specReplicas) - availableReplicas),
  };
  if (d.status?.collisionCount !== undefined) status.collisionCount = d.status.collisionCount;
  const minAvailable = replicas - (d.spec.strategy?.type === 'Recreate' ? 0 : fenceposts(d).maxUnavailable);
  const availableCond: WorkloadCondition =
    availableReplicas >= minAvailable
      ? { type: 'Available', status: 'True', lastUpdateTime: now, lastTransitionTime: now, reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }
      : { type: 'Available', status: 'False', lastUpdateTime: now, lastTransitionTime: now, reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' };
  let conditions = setCondition(d.status?.conditions, availableCond);
  if (newRS !== undefined) {
    const name = newRS.metadata.name ?? '';
    const complete = (newRS.status?.availableReplicas ?? 0) >= replicas && specReplicas(newRS) === replicas && status.replicas === replicas;
    const progressing: WorkloadCondition = complete
      ? { type: 'Progressing', status: 'True', lastUpdateTime: now, lastTransitionTime: now, reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${name}" has successfully progressed.` }
      : { type: 'Progressing', status: 'True', lastUpdateTime: now, lastTransitionTime: now, reason: 'ReplicaSetUpdated', message: `ReplicaSet "${name}" is progressing.` };
    conditions = setCondition(conditions, progressing);
  }
  status.conditions = conditions;
  return status;
}

export interface DeploymentControllerOptions {
  store: Store;
  deployments: Informer<Deployment>;
  sets: Informer<ReplicaSet>;
  pods: Informer<Pod>;
  events: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class DeploymentController {
  readonly loop: ControllerLoop;
  private readonly o: DeploymentControllerOptions;

  constructor(options: DeploymentControllerOptions) {
    this.o = options;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'deployment', logger: options.logger, sync: (key) => this.sync(key), workers: 2, ...backoff });
    indexPodsByController(options.pods);
    options.sets.addIndex(IDX_RS_BY_CONTROLLER, (rs) => {
      const ref = controllerOf(rs);
      return ref === undefined ? [] : [ref.uid];
    });
    const enqueue = (d: Deployment): void => this.loop.enqueue(keyOf(d));
    options.deployments.addEventHandler({ add: enqueue, update: (_o, d) => enqueue(d), delete: enqueue });
    const enqueueOwner = (rs: ReplicaSet): void => {
      const ref = controllerOf(rs);
      if (ref?.kind === 'Deployment') this.loop.enqueue(`${rs.metadata.namespace ?? ''}/${ref.name}`);
    };
    options.sets.addEventHandler({ add: enqueueOwner, update: (_o, rs) => enqueueOwner(rs), delete: enqueueOwner });
    // Recreate waits for the old pods to be gone: a pod's deletion must wake the deployment.
    options.pods.addEventHandler({
      delete: (p) => {
        const ref = controllerOf(p);
        const rs = ref?.kind === 'ReplicaSet' ? options.sets.getByName(p.metadata.namespace, ref.name) : undefined;
        if (rs !== undefined) enqueueOwner(rs);
      },
    });
  }

  private scale(d: Deployment, rs: ReplicaSet, to: number): void {
    const from = specReplicas(rs);
    if (from === to) return;
    const annotations = { ...rs.metadata.annotations, [DESIRED_ANNOTATION]: String(d.spec.replicas ?? 1), [MAX_ANNOTATION]: String((d.spec.replicas ?? 1) + (d.spec.strategy?.type === 'Recreate' ? 0 : fenceposts(d).maxSurge)) };
    this.o.store.update({ ...rs, metadata: { ...rs.metadata, annotations }, spec: { ...rs.spec, replicas: to } });
    this.o.events.event(d, 'Normal', 'ScalingReplicaSet', `Scaled ${to > from ? 'up' : 'down'} replica set ${rs.metadata.name ?? ''} from ${from} to ${to}`);
  }

  private sync(key: string): SyncResult | undefined {
    const { store, deployments, sets, pods } = this.o;
    const d = deployments.get(key);
    if (d === undefined || isTerminating(d)) return undefined;
    const { namespace } = splitKey(key);
    const owned = sets.byIndex(IDX_RS_BY_CONTROLLER, d.metadata.uid ?? '').filter((rs) => !isTerminating(rs));
    const hash = templateHash(d.spec.template, d.status?.collisionCount ?? 0);
    const bare = JSON.stringify(d.spec.template);
    let newRS = owned.find((rs) => rs.metadata.labels?.[POD_TEMPLATE_HASH] === hash) ?? owned.find((rs) => JSON.stringify(bareTemplate(rs.spec.template)) === bare);
    const oldRSs = owned.filter((rs) => rs !== newRS);
    const revisions = owned.map((rs) => Number(rs.metadata.annotations?.[REVISION_ANNOTATION] ?? '0'));
    const maxRevision = revisions.length === 0 ? 0 : Math.max(...revisions);
    const replicas = d.spec.replicas ?? 1;
    const recreate = d.spec.strategy?.type === 'Recreate';
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    let createdNew = false;

    if (newRS === undefined && d.spec.paused !== true) {
      const name = `${d.metadata.name ?? ''}-${hash}`;
      const template = structuredClone(d.spec.template);
      template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, [POD_TEMPLATE_HASH]: hash } };
      const oldTotal = oldRSs.reduce((n, rs) => n + specReplicas(rs), 0);
      const { maxSurge } = fenceposts(d);
      const initial = recreate ? 0 : oldRSs.length === 0 ? replicas : Math.max(0, Math.min(replicas, replicas + maxSurge - oldTotal));
      const rs: ReplicaSet = {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name,
          namespace,
          labels: template.metadata.labels,
          annotations: {
            [REVISION_ANNOTATION]: String(maxRevision + 1),
            [DESIRED_ANNOTATION]: String(replicas),
            [MAX_ANNOTATION]: String(replicas + (recreate ? 0 : maxSurge)),
          },
          ownerReferences: [controllerRef(d)],
        },
        spec: {
          replicas: initial,
          minReadySeconds: d.spec.minReadySeconds ?? 0,
          selector: { ...d.spec.selector, matchLabels: { ...d.spec.selector.matchLabels, [POD_TEMPLATE_HASH]: hash } },
          template,
        },
      };
      try {
        newRS = store.create(rs);
        createdNew = true;
        this.o.events.event(d, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${name} from 0 to ${initial}`);
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        // A set of that name that is not ours (or not yet seen): a hash collision, as upstream counts it.
        const status = { ...d.status, collisionCount: (d.status?.collisionCount ?? 0) + 1 };
        store.update({ ...d, status }, { subresource: 'status' });
        return { requeue: true };
      }
    } else if (newRS !== undefined && newRS.metadata.annotations?.[REVISION_ANNOTATION] !== String(maxRevision) && oldRSs.some((rs) => Number(rs.metadata.annotations?.[REVISION_ANNOTATION] ?? '0') > Number(newRS?.metadata.annotations?.[REVISION_ANNOTATION] ?? '0'))) {
      // A rollback to an older template: it becomes the newest revision.
      newRS = store.update({ ...newRS, metadata: { ...newRS.metadata, annotations: { ...newRS.metadata.annotations, [REVISION_ANNOTATION]: String(maxRevision + 1) } } });
    }

    if (d.spec.paused !== true && newRS !== undefined && !createdNew) {
      if (recreate) {
        for (const rs of oldRSs) this.scale(d, rs, 0);
        const oldPodsLeft = oldRSs.some((rs) => podsOwnedBy(pods, rs).length > 0);
        if (!oldPodsLeft) this.scale(d, newRS, replicas);
      } else {
        const plan = planRollingUpdate(d, newRS, oldRSs);
        for (const rs of [newRS, ...oldRSs]) {
          const to = plan.get(rs.metadata.name ?? '');
          if (to !== undefined) this.scale(d, rs, to);
        }
      }
    } else if (d.spec.paused === true && newRS !== undefined && oldRSs.length === 0 && specReplicas(newRS) !== replicas) {
      this.scale(d, newRS, replicas);
    }

    // Old sets scaled to zero beyond revisionHistoryLimit go (cleanupDeployment).
    const limit = d.spec.revisionHistoryLimit ?? 10;
    const idle = oldRSs
      .map((rs) => sets.getByName(namespace, rs.metadata.name ?? '') ?? rs)
      .filter((rs) => specReplicas(rs) === 0 && (rs.status?.replicas ?? 0) === 0)
      .sort((a, b) => Number(a.metadata.annotations?.[REVISION_ANNOTATION] ?? '0') - Number(b.metadata.annotations?.[REVISION_ANNOTATION] ?? '0'));
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit))) store.delete('replicasets', namespace, rs.metadata.name ?? '');

    const current = deployments.get(key);
    if (current === undefined || current.metadata.uid !== d.metadata.uid) return undefined;
    const all = sets.byIndex(IDX_RS_BY_CONTROLLER, d.metadata.uid ?? '');
    const fresh = newRS === undefined ? undefined : sets.getByName(namespace, newRS.metadata.name ?? '');
    const status = deploymentStatus(current, fresh, all, now);
    const strip = (s: DeploymentStatus | undefined): string => JSON.stringify({ ...s, conditions: (s?.conditions ?? []).map((c) => ({ ...c, lastUpdateTime: '', lastTransitionTime: '' })) });
    if (strip(status) !== strip(current.status)) store.update({ ...current, status }, { subresource: 'status' });
    return undefined;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

/** kube-controller-manager's deployment controller (registry.ts). */
export const DEPLOYMENT: ControllerDescriptor = {
  name: 'deployment-controller',
  aliases: ['deployment'],
  description: 'Deployments: a ReplicaSet per template, rolled with maxSurge/maxUnavailable or Recreate',
  init(ctx) {
    const c = new DeploymentController({
      store: ctx.store,
      deployments: ctx.informers.for('deployments'),
      sets: ctx.informers.for('replicasets'),
      pods: ctx.informers.for('pods'),
      events: ctx.events.recorder('deployment-controller'),
      logger: ctx.logger,
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
