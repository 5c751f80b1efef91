// kube-controller-manager's statefulset controller: pods `<set>-<ordinal>` with stable claims
// `<template>-<set>-<ordinal>` made from volumeClaimTemplates, started in order (OrderedReady: the
// next pod only once the previous is Running and Ready) or all at once (Parallel), stopped from
// the highest ordinal down, recreated under the same name (and so with the same claims) when
// deleted or failed, rolled to a new template from the highest ordinal down, and the claims'
// ownerReferences kept as persistentVolumeClaimRetentionPolicy says (upstream's scheme: the set
// owns them under whenDeleted: Delete, a condemned pod under whenScaled: Delete, so the garbage
// collector removes them with their owner).
//
// planStatefulSet is the pure decision (unit-tested); the controller carries its actions out.
import type { Logger } from 'pino';
import { selectorMatches } from '../api/label-selector.js';
import type { StatefulSet, StatefulSetStatus } from '../api/types/apps.js';
import type { PersistentVolumeClaim, Pod, Volume } from '../api/types/core.js';
import type { OwnerReference } from '../api/types/meta.js';
import { AlreadyExistsError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, keyOf, splitKey } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { controllerOf, controllerRef, indexPodsByController, isAvailable, isFinished, isRunningAndReady, isTerminating, podFromTemplate, podsOwnedBy, templateHash, untilAvailable } from './workload-util.js';

export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';
export const REVISION_LABEL = 'controller-revision-hash';

export type StatefulSetAction =
  | { type: 'updateClaim'; claim: PersistentVolumeClaim }
  | { type: 'createClaims'; pod: string; claims: PersistentVolumeClaim[] }
  | { type: 'createPod'; pod: Pod }
  | { type: 'deletePod'; pod: Pod };

export interface StatefulSetPlan {
  actions: StatefulSetAction[];
  status: StatefulSetStatus;
  /** Look again after this long (a claim still being deleted, a pod not yet available). */
  requeueAfterMs?: number;
}

/** The ordinal of a pod of this set, from its name "<set>-<n>", or undefined. */
export function ordinalOf(setName: string, podName: string): number | undefined {
  const m = /^(.*)-([0-9]+)$/.exec(podName);
  if (m === null || m[1] !== setName) return undefined;
  return Number(m[2]);
}

export function claimName(template: string, setName: string, ordinal: number): string {
  return `${template}-${setName}-${ordinal}`;
}

function setRef(set: StatefulSet): OwnerReference {
  // The KEP's reference: the set as controller, not blocking the set's own deletion (the claim
  // must outlive its pods, which pvc-protection enforces anyway).
  return { apiVersion: 'apps/v1', kind: 'StatefulSet', name: set.metadata.name ?? '', uid: set.metadata.uid ?? '', controller: true, blockOwnerDeletion: false };
}

function podRef(pod: Pod): OwnerReference {
  return { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name ?? '', uid: pod.metadata.uid ?? '' };
}

/**
 * A claim's ownerReferences under the retention policy (upstream's updateClaimOwnerRefForSetAndPod):
 * the set's reference present iff whenDeleted is Delete (and, under whenScaled Delete, the pod is
 * still in range); the pod's iff whenScaled is Delete and the pod is condemned. Others kept.
 */
export function claimOwners(claim: PersistentVolumeClaim, set: StatefulSet, pod: Pod, inRange: boolean): OwnerReference[] | undefined {
  const policy = set.spec.persistentVolumeClaimRetentionPolicy ?? {};
  const whenDeleted = policy.whenDeleted ?? 'Retain';
  const whenScaled = policy.whenScaled ?? 'Retain';
  const wantSet = whenDeleted === 'Delete' && (whenScaled !== 'Delete' || inRange);
  const wantPod = whenScaled === 'Delete' && !inRange;
  const refs = claim.metadata.ownerReferences ?? [];
  const sRef = setRef(set);
  const pRef = podRef(pod);
  let next = refs.filter((r) => r.uid !== sRef.uid && r.uid !== pRef.uid);
  if (wantSet) next = [...next, refs.find((r) => r.uid === sRef.uid) ?? sRef];
  if (wantPod) next = [...next, refs.find((r) => r.uid === pRef.uid) ?? pRef];
  const same = next.length === refs.length && next.every((r) => refs.includes(r));
  return same ? undefined : next;
}

/** The pod of one ordinal (newStatefulSetPod): template, identity labels, hostname, claims as volumes. */
export function newStatefulSetPod(set: StatefulSet, ordinal: number, revision: string): Pod {
  const setName = set.metadata.name ?? '';
  const name = `${setName}-${ordinal}`;
  const pod = podFromTemplate(set.spec.template, set, { name }, { [POD_NAME_LABEL]: name, [POD_INDEX_LABEL]: String(ordinal), [REVISION_LABEL]: revision });
  pod.spec.hostname = name;
  if (set.spec.serviceName) pod.spec.subdomain = set.spec.serviceName;
  const volumes: Volume[] = [...(pod.spec.volumes ?? [])];
  for (const t of set.spec.volumeClaimTemplates ?? []) {
    const vName = t.metadata.name ?? '';
    const volume: Volume = { name: vName, persistentVolumeClaim: { claimName: claimName(vName, setName, ordinal) } };
    const at = volumes.findIndex((v) => v.name === vName);
    if (at >= 0) volumes[at] = volume;
    else volumes.push(volume);
  }
  if (volumes.length > 0) pod.spec.volumes = volumes;
  return pod;
}

/** The claims of one ordinal (getPersistentVolumeClaims): each template, named, labelled with the selector. */
export function newStatefulSetClaims(set: StatefulSet, ordinal: number): PersistentVolumeClaim[] {
  const setName = set.metadata.name ?? '';
  return (set.spec.volumeClaimTemplates ?? []).map((t) => {
    const claim = structuredClone(t);
    const metadata = { ...claim.metadata, name: claimName(t.metadata.name ?? '', setName, ordinal), namespace: set.metadata.namespace };
    metadata.labels = { ...metadata.labels, ...set.spec.selector.matchLabels };
    delete metadata.uid;
    delete metadata.resourceVersion;
    delete metadata.creationTimestamp;
    return { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata, spec: claim.spec };
  });
}

export function revisionOf(set: StatefulSet): string {
  return `${set.metadata.name ?? ''}-${templateHash(set.spec.template, set.status?.collisionCount ?? 0)}`;
}

/**
 * What to do next for a set, given its pods and a claim lookup: upstream's StatefulSetControl
 * (one step at a time for OrderedReady, everything at once for Parallel), and the status.
 */
export function planStatefulSet(set: StatefulSet, pods: readonly Pod[], claimOf: (name: string) => PersistentVolumeClaim | undefined, now = Date.now()): StatefulSetPlan {
  const setName = set.metadata.name ?? '';
  const start = set.spec.ordinals?.start ?? 0;
  const replicas = set.spec.replicas ?? 1;
  const end = start + replicas;
  const monotonic = set.spec.podManagementPolicy !== 'Parallel';
  const minReady = set.spec.minReadySeconds ?? 0;
  const updateRevision = revisionOf(set);
  const currentRevision = set.status?.currentRevision ?? updateRevision;
  const actions: StatefulSetAction[] = [];
  let requeueAfterMs: number | undefined;
  const later = (ms: number): void => {
    requeueAfterMs = requeueAfterMs === undefined ? ms : Math.min(requeueAfterMs, ms);
  };

  const inRange = new Map<number, Pod>();
  const condemned: [number, Pod][] = [];
  for (const pod of pods) {
    const ord = ordinalOf(setName, pod.metadata.name ?? '');
    if (ord === undefined) continue;
    if (ord >= start && ord < end) inRange.set(ord, pod);
    else condemned.push([ord, pod]);
  }
  condemned.sort((a, b) => b[0] - a[0]);

  // The claims' owners first: a condemned pod must own its claims (whenScaled: Delete) before it goes.
  for (const pod of pods) {
    const ord = ordinalOf(setName, pod.metadata.name ?? '');
    if (ord === undefined || isTerminating(pod)) continue;
    for (const t of set.spec.volumeClaimTemplates ?? []) {
      const claim = claimOf(claimName(t.metadata.name ?? '', setName, ord));
      if (claim === undefined || isTerminating(claim)) continue;
      const owners = claimOwners(claim, set, pod, ord >= start && ord < end);
      if (owners !== undefined) actions.push({ type: 'updateClaim', claim: { ...claim, metadata: { ...claim.metadata, ownerReferences: owners } } });
    }
  }

  // Status, from the pods as they are now (upstream computes it before acting too).
  const status: StatefulSetStatus = { observedGeneration: set.metadata.generation ?? 0, replicas: 0, readyReplicas: 0, currentReplicas: 0, updatedReplicas: 0, availableReplicas: 0 };
  for (const pod of pods) {
    status.replicas++;
    if (isRunningAndReady(pod)) {
      status.readyReplicas = (status.readyReplicas ?? 0) + 1;
      if (isAvailable(pod, minReady, now)) status.availableReplicas = (status.availableReplicas ?? 0) + 1;
      else {
        const wait = untilAvailable(pod, minReady, now);
        if (wait !== undefined) later(wait);
      }
    }
    if (!isTerminating(pod)) {
      const rev = pod.metadata.labels?.[REVISION_LABEL];
      if (rev === currentRevision) status.currentReplicas = (status.currentReplicas ?? 0) + 1;
      if (rev === updateRevision) status.updatedReplicas = (status.updatedReplicas ?? 0) + 1;
    }
  }

  // Make every ordinal in range exist and run, in order.
  let blocked = false;
  for (let ord = start; ord < end && !blocked; ord++) {
    const pod = inRange.get(ord);
    if (pod === undefined) {
      const claims = newStatefulSetClaims(set, ord);
      const existing = claims.map((c) => claimOf(c.metadata.name ?? ''));
      if (existing.some((c) => c !== undefined && isTerminating(c))) {
        // A claim of a scaled-down pod is still going: make it anew once it is gone.
        later(1000);
        blocked = monotonic;
        continue;
      }
      const missing = claims.filter((_c, i) => existing[i] === undefined);
      const next = newStatefulSetPod(set, ord, updateRevision);
      if (missing.length > 0) actions.push({ type: 'createClaims', pod: next.metadata.name ?? '', claims: missing });
      actions.push({ type: 'createPod', pod: next });
      blocked = monotonic;
      continue;
    }
    if (isTerminating(pod)) {
      blocked = monotonic;
      continue;
    }
    if (isFinished(pod)) {
      // A failed (or exited) pod is deleted and made again under the same name.
      actions.push({ type: 'deletePod', pod });
      blocked = monotonic;
      continue;
    }
    if (monotonic && !isRunningAndReady(pod)) blocked = true;
  }

  const unhealthy = [...inRange.values()].some((p) => !isRunningAndReady(p) || isTerminating(p)) || inRange.size < replicas;
  if (!blocked) {
    // Scale down from the highest ordinal: one at a time, and only when the rest are healthy (OrderedReady).
    for (const [, pod] of condemned) {
      if (isTerminating(pod)) {
        if (monotonic) {
          blocked = true;
          break;
        }
        continue;
      }
      if (monotonic && unhealthy) {
        blocked = true;
        break;
      }
      actions.push({ type: 'deletePod', pod });
      if (monotonic) {
        blocked = true;
        break;
      }
    }
  }
  // Rolling update: the highest ordinal not on the update revision goes first, one at a time,
  // ordinals below the partition untouched.
  const strategy = set.spec.updateStrategy;
  if (!blocked && condemned.length === 0 && !unhealthy && (strategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
    const partition = strategy?.rollingUpdate?.partition ?? 0;
    for (let ord = end - 1; ord >= Math.max(start, partition); ord--) {
      const pod = inRange.get(ord);
      if (pod !== undefined && pod.metadata.labels?.[REVISION_LABEL] !== updateRevision) {
        actions.push({ type: 'deletePod', pod });
        break;
      }
    }
  }

  // A finished rolling update: the update revision becomes the current one (completeRollingUpdate).
  if ((strategy?.type ?? 'RollingUpdate') === 'RollingUpdate' && status.updatedReplicas === replicas && status.readyReplicas === replicas && status.replicas === replicas) {
    status.currentRevision = updateRevision;
    status.currentReplicas = status.updatedReplicas;
  } else status.currentRevision = currentRevision;
  status.updateRevision = updateRevision;
  status.collisionCount = set.status?.collisionCount ?? 0;
  return { actions, status, ...(requeueAfterMs === undefined ? {} : { requeueAfterMs }) };
}

export interface StatefulSetControllerOptions {
  store: Store;
  sets: Informer<StatefulSet>;
  pods: Informer<Pod>;
  claims: Informer<PersistentVolumeClaim>;
  events: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class StatefulSetController {
  readonly loop: ControllerLoop;
  private readonly o: StatefulSetControllerOptions;

  constructor(options: StatefulSetControllerOptions) {
    this.o = options;
    this.loop = new ControllerLoop({ name: 'statefulset', logger: options.logger, sync: (key) => this.sync(key), workers: 2, ...backoffOf(options) });
    indexPodsByController(options.pods);
    const enqueue = (s: StatefulSet): void => this.loop.enqueue(keyOf(s));
    options.sets.addEventHandler({ add: enqueue, update: (_o, s) => enqueue(s), delete: enqueue });
    const enqueueOwner = (p: Pod): void => {
      const ref = controllerOf(p);
      if (ref?.kind === 'StatefulSet') this.loop.enqueue(`${p.metadata.namespace ?? ''}/${ref.name}`);
    };
    options.pods.addEventHandler({ add: enqueueOwner, update: (_o, p) => enqueueOwner(p), delete: enqueueOwner });
  }

  private sync(key: string): SyncResult | undefined {
    const { store, sets, pods, claims, events } = this.o;
    const set = sets.get(key);
    if (set === undefined || isTerminating(set)) return undefined;
    const { namespace } = splitKey(key);
    const plan = planStatefulSet(set, podsOwnedBy(pods, set), (name) => claims.getByName(namespace, name));
    const setName = set.metadata.name ?? '';
    for (const action of plan.actions) {
      switch (action.type) {
        case 'updateClaim':
          store.update(action.claim);
          break;
        case 'createClaims':
          for (const claim of action.claims) {
            try {
              store.create(claim);
              events.event(set, 'Normal', 'SuccessfulCreate', `create Claim ${claim.metadata.name ?? ''} Pod ${action.pod} in StatefulSet ${setName} success`);
            } catch (err) {
              if (err instanceof AlreadyExistsError) continue;
              events.event(set, 'Warning', 'FailedCreate', `create Claim ${claim.metadata.name ?? ''} for Pod ${action.pod} in StatefulSet ${setName} failed error: ${(err as Error).message}`);
              throw err;
            }
          }
          break;
        case 'createPod': {
          const name = action.pod.metadata.name ?? '';
          try {
            store.create(action.pod);
            events.event(set, 'Normal', 'SuccessfulCreate', `create Pod ${name} in StatefulSet ${setName} successful`);
          } catch (err) {
            if (err instanceof AlreadyExistsError) {
              this.adopt(set, namespace, name);
              break;
            }
            events.event(set, 'Warning', 'FailedCreate', `create Pod ${name} in StatefulSet ${setName} failed error: ${(err as Error).message}`);
            throw err;
          }
          break;
        }
        case 'deletePod': {
          const name = action.pod.metadata.name ?? '';
          try {
            store.delete('pods', namespace, name, { preconditions: { uid: action.pod.metadata.uid ?? '' } });
            events.event(set, 'Normal', 'SuccessfulDelete', `delete Pod ${name} in StatefulSet ${setName} successful`);
          } catch (err) {
            if (err instanceof NotFoundError) break;
            events.event(set, 'Warning', 'FailedDelete', `delete Pod ${name} in StatefulSet ${setName} failed error: ${(err as Error).message}`);
            throw err;
          }
          break;
        }
      }
    }
    const current = sets.get(key);
    if (current !== undefined && current.metadata.uid === set.metadata.uid && JSON.stringify(current.status) !== JSON.stringify({ ...current.status, ...plan.status })) {
      store.update({ ...current, status: { ...current.status, ...plan.status } }, { subresource: 'status' });
    }
    return plan.requeueAfterMs === undefined ? undefined : { requeueAfterMs: plan.requeueAfterMs };
  }

  /**
   * A pod of this name already there: if nothing controls it and the selector matches it (a set
   * deleted with --cascade=orphan and made again), it becomes this set's (ClaimPods' adoption).
   */
  private adopt(set: StatefulSet, namespace: string | undefined, name: string): void {
    const pod = this.o.pods.getByName(namespace, name);
    if (pod === undefined || controllerOf(pod) !== undefined || isTerminating(pod) || !selectorMatches(set.spec.selector, pod.metadata.labels)) return;
    this.o.store.update({ ...pod, metadata: { ...pod.metadata, ownerReferences: [...(pod.metadata.ownerReferences ?? []), controllerRef(set)] } });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

function backoffOf(o: { baseDelayMs?: number; maxDelayMs?: number }): { baseDelayMs?: number; maxDelayMs?: number } {
  return { ...(o.baseDelayMs === undefined ? {} : { baseDelayMs: o.baseDelayMs }), ...(o.maxDelayMs === undefined ? {} : { maxDelayMs: o.maxDelayMs }) };
}

/** kube-controller-manager's statefulset controller (registry.ts). */
export const STATEFULSET: ControllerDescriptor = {
  name: 'statefulset-controller',
  aliases: ['statefulset'],
  description: 'StatefulSets: ordered pods <set>-<n> with their own claims from volumeClaimTemplates',
  init(ctx) {
    const c = new StatefulSetController({
      store: ctx.store,
      sets: ctx.informers.for('statefulsets'),
      pods: ctx.informers.for('pods'),
      claims: ctx.informers.for('persistentvolumeclaims'),
      events: ctx.events.recorder('statefulset-controller'),
      logger: ctx.logger,
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
