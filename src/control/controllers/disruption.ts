// disruption-controller: keeps each PodDisruptionBudget's status as kube-controller-manager's
// does, so that the eviction subresource (server/eviction.ts), `kubectl drain` and preemption know
// how many of an application's pods may go now.
//
// Per budget: the pods of its namespace its selector matches (policy/v1: a missing selector
// matches none, an empty one every pod); expectedPods and desiredHealthy from the spec:
//   minAvailable N          desiredHealthy N, expectedPods = the matching pods
//   minAvailable P%         expectedPods = the pods' controllers' replicas summed, desiredHealthy
//                           = P% of it rounded up
//   maxUnavailable N or P%  expectedPods as above, desiredHealthy = expectedPods - N (P% rounded up)
// currentHealthy = Ready pods not being deleted and not in status.disruptedPods (evictions the API
// has allowed whose deletion the controller has not seen yet; an entry older than 2 minutes is
// dropped: that pod was not deleted after all, and gets the Warning event NotDeleted).
// disruptionsAllowed = currentHealthy -
// desiredHealthy, never below 0 (and 0 when expectedPods is 0). The DisruptionAllowed condition
// says SufficientPods or InsufficientPods; a budget whose pods' controllers cannot be found (a
// pod with a percentage budget owned by something with no replica count) gets disruptionsAllowed 0
// and SyncFailed, as upstream fails safe. Replica counts come from Deployments (through their
// ReplicaSets), ReplicaSets and StatefulSets.
import type { Logger } from 'pino';
import { scaledValue } from '../api/kinds/deployment.js';
import { selectorMatches } from '../api/label-selector.js';
import { rfc3339 } from '../api/time.js';
import type { Deployment, ReplicaSet, StatefulSet } from '../api/types/apps.js';
import type { Pod } from '../api/types/core.js';
import type { LabelSelector } from '../api/types/meta.js';
import type { PodDisruptionBudget, PodDisruptionBudgetCondition, PodDisruptionBudgetStatus } from '../api/types/policy.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import { writeStatus } from './status-write.js';
import type { EventSink } from './events.js';
import { type Informer, type InformerFactory, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { controllerOf, isReady } from './workload-util.js';

/** How long an eviction the API allowed may take to show as a deletion (upstream's DeletionTimeout). */
export const DELETION_TIMEOUT_MS = 2 * 60 * 1000;
export const DISRUPTION_ALLOWED = 'DisruptionAllowed';
export const SUFFICIENT_PODS = 'SufficientPods';
export const INSUFFICIENT_PODS = 'InsufficientPods';
export const SYNC_FAILED = 'SyncFailed';

const IDX_NAMESPACE = 'disruption:namespace';

/** What the controller reads besides the budget: the pods' controllers' replica counts. */
export interface ScaleSource {
  replicaSet(namespace: string, name: string): ReplicaSet | undefined;
  deployment(namespace: string, name: string): Deployment | undefined;
  statefulSet(namespace: string, name: string): StatefulSet | undefined;
}

/** Whether a budget's selector takes the pod (policy/v1: no selector takes none, {} takes all). */
export function budgetSelects(pdb: PodDisruptionBudget, pod: Pod): boolean {
  const selector = pdb.spec?.selector;
  if (selector === undefined) return false;
  return pod.metadata.namespace === pdb.metadata.namespace && selectorMatches(selector, pod.metadata.labels);
}

/** A selector as kube-controller-manager's events print it (Go's %v of a *metav1.LabelSelector). */
export function goSelector(selector: LabelSelector | undefined): string {
  if (selector === undefined) return 'nil';
  const labels = Object.keys(selector.matchLabels ?? {})
    .sort()
    .map((k) => `${k}: ${selector.matchLabels?.[k] ?? ''},`)
    .join('');
  const expressions = (selector.matchExpressions ?? []).map((e) => `LabelSelectorRequirement{Key:${e.key},Operator:${e.operator},Values:[${(e.values ?? []).join(' ')}],},`).join('');
  return `&LabelSelector{MatchLabels:map[string]string{${labels}},MatchExpressions:[]LabelSelectorRequirement{${expressions}},}`;
}

/** The replicas of each distinct controller of the pods, summed (getExpectedScale); unmanaged pods apart. */
function expectedScale(pods: readonly Pod[], scales: ScaleSource): { expected: number; unmanaged: string[] } {
  const seen = new Set<string>();
  let expected = 0;
  const unmanaged: string[] = [];
  for (const pod of pods) {
    const ref = controllerOf(pod);
    if (ref === undefined) {
      unmanaged.push(pod.metadata.name ?? '');
      continue;
    }
    if (seen.has(ref.uid)) continue;
    const ns = pod.metadata.namespace ?? '';
    let replicas: number | undefined;
    let uid = ref.uid;
    if (ref.kind === 'ReplicaSet') {
      const rs = scales.replicaSet(ns, ref.name);
      if (rs !== undefined && rs.metadata.uid === ref.uid) {
        const owner = controllerOf(rs);
        const d = owner?.kind === 'Deployment' ? scales.deployment(ns, owner.name) : undefined;
        if (owner?.kind === 'Deployment' && d !== undefined && d.metadata.uid === owner.uid) {
          uid = owner.uid;
          replicas = d.spec?.replicas ?? 1;
        } else if (owner?.kind !== 'Deployment') replicas = rs.spec?.replicas ?? 1;
      }
    } else if (ref.kind === 'StatefulSet') {
      const sts = scales.statefulSet(ns, ref.name);
      if (sts !== undefined && sts.metadata.uid === ref.uid) replicas = sts.spec?.replicas ?? 1;
    }
    if (replicas === undefined) throw new Error(`found no controllers for pod "${pod.metadata.name ?? ''}"`);
    seen.add(ref.uid);
    if (uid !== ref.uid) {
      if (seen.has(uid)) continue;
      seen.add(uid);
    }
    expected += replicas;
  }
  return { expected, unmanaged };
}

export interface BudgetFigures {
  status: PodDisruptionBudgetStatus;
  /** When an entry of disruptedPods expires and the budget must be looked at again (ms from now). */
  recheckAfterMs?: number;
  /** Pods without a controller that a percentage or maxUnavailable could not count. */
  unmanaged: string[];
  /** Pods whose eviction was allowed over DELETION_TIMEOUT_MS ago and that were not deleted. */
  notDeleted: string[];
}

/** The budget's status for these pods (those its selector takes), as the disruption controller works it out. */
export function budgetStatus(pdb: PodDisruptionBudget, pods: readonly Pod[], scales: ScaleSource, now = Date.now()): BudgetFigures {
  const spec = pdb.spec ?? {};
  let expectedPods: number;
  let desiredHealthy: number;
  let unmanaged: string[] = [];
  if (spec.maxUnavailable !== undefined) {
    ({ expected: expectedPods, unmanaged } = expectedScale(pods, scales));
    desiredHealthy = Math.max(0, expectedPods - scaledValue(spec.maxUnavailable, expectedPods, true));
  } else if (typeof spec.minAvailable === 'string') {
    ({ expected: expectedPods, unmanaged } = expectedScale(pods, scales));
    desiredHealthy = scaledValue(spec.minAvailable, expectedPods, true);
  } else {
    desiredHealthy = spec.minAvailable ?? 0;
    expectedPods = pods.length;
  }

  // Evictions allowed but not yet seen as deletions: kept until the pod is deleted or the entry expires.
  const disrupted: Record<string, string> = {};
  let recheckAfterMs: number | undefined;
  const notDeleted: string[] = [];
  const before = pdb.status?.disruptedPods ?? {};
  for (const pod of pods) {
    const name = pod.metadata.name ?? '';
    const at = before[name];
    if (at === undefined || pod.metadata.deletionTimestamp !== undefined) continue;
    const expires = Date.parse(at) + DELETION_TIMEOUT_MS;
    if (Number.isNaN(expires) || expires <= now) {
      notDeleted.push(name);
      continue;
    }
    disrupted[name] = at;
    recheckAfterMs = Math.min(recheckAfterMs ?? Number.POSITIVE_INFINITY, expires - now);
  }
  let currentHealthy = 0;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp !== undefined || disrupted[pod.metadata.name ?? ''] !== undefined) continue;
    if (isReady(pod)) currentHealthy++;
  }
  let disruptionsAllowed = currentHealthy - desiredHealthy;
  if (expectedPods <= 0 || disruptionsAllowed <= 0) disruptionsAllowed = 0;
  const status: PodDisruptionBudgetStatus = {
    ...(Object.keys(disrupted).length > 0 ? { disruptedPods: disrupted } : {}),
    disruptionsAllowed,
    currentHealthy,
    desiredHealthy,
    expectedPods,
    observedGeneration: pdb.metadata.generation ?? 0,
  };
  status.conditions = withAllowedCondition(pdb.status?.conditions, status, now);
  return { status, unmanaged, notDeleted, ...(recheckAfterMs === undefined ? {} : { recheckAfterMs }) };
}

/** The DisruptionAllowed condition for the status's disruptionsAllowed (pdbhelper.UpdateDisruptionAllowedCondition). */
export function withAllowedCondition(conditions: readonly PodDisruptionBudgetCondition[] | undefined, status: PodDisruptionBudgetStatus, now = Date.now()): PodDisruptionBudgetCondition[] {
  const allowed = (status.disruptionsAllowed ?? 0) > 0;
  return setCondition(conditions, { type: DISRUPTION_ALLOWED, status: allowed ? 'True' : 'False', reason: allowed ? SUFFICIENT_PODS : INSUFFICIENT_PODS, message: '' }, status.observedGeneration, now);
}

function setCondition(conditions: readonly PodDisruptionBudgetCondition[] | undefined, next: Omit<PodDisruptionBudgetCondition, 'lastTransitionTime'>, generation: number | undefined, now: number): PodDisruptionBudgetCondition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const was = i < 0 ? undefined : list[i];
  const lastTransitionTime = was !== undefined && was.status === next.status && was.lastTransitionTime !== undefined ? was.lastTransitionTime : rfc3339(new Date(now));
  const condition: PodDisruptionBudgetCondition = { ...next, ...(generation === undefined ? {} : { observedGeneration: generation }), lastTransitionTime };
  if (i < 0) list.push(condition);
  else list[i] = condition;
  return list;
}

export interface DisruptionOptions {
  store: Store;
  informers: InformerFactory;
  events: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class DisruptionController {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly budgets: Informer<PodDisruptionBudget>;
  private readonly pods: Informer<Pod>;
  private readonly scales: ScaleSource;
  private readonly events: EventSink;

  constructor(options: DisruptionOptions) {
    this.store = options.store;
    this.events = options.events;
    this.loop = new ControllerLoop({
      name: 'disruption-controller',
      logger: options.logger,
      sync: (key) => this.sync(key),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.budgets = options.informers.for('poddisruptionbudgets');
    this.pods = options.informers.for('pods');
    const replicaSets = options.informers.for('replicasets');
    const deployments = options.informers.for('deployments');
    const statefulSets = options.informers.for('statefulsets');
    this.scales = {
      replicaSet: (ns, name) => replicaSets.getByName(ns, name),
      deployment: (ns, name) => deployments.getByName(ns, name),
      statefulSet: (ns, name) => statefulSets.getByName(ns, name),
    };
    this.budgets.addIndex(IDX_NAMESPACE, (pdb) => [pdb.metadata.namespace ?? '']);
    this.pods.addIndex(IDX_NAMESPACE, (pod) => [pod.metadata.namespace ?? '']);
    const budgetChanged = (pdb: PodDisruptionBudget): void => this.loop.enqueue(keyOf(pdb));
    this.budgets.addEventHandler({ add: budgetChanged, update: (_old, pdb) => budgetChanged(pdb), delete: budgetChanged });
    // A pod's budgets (by its old labels and its new ones) are looked at again.
    const podChanged = (...pods: Pod[]): void => {
      for (const pdb of this.budgets.byIndex(IDX_NAMESPACE, pods[0]?.metadata.namespace ?? '')) if (pods.some((p) => budgetSelects(pdb, p))) this.loop.enqueue(keyOf(pdb));
    };
    this.pods.addEventHandler({ add: (p) => podChanged(p), update: (old, p) => podChanged(old, p), delete: (p) => podChanged(p) });
    // A controller's replica count changes expectedPods of percentage and maxUnavailable budgets.
    const scaleChanged = (o: { metadata: { namespace?: string } }): void => {
      for (const pdb of this.budgets.byIndex(IDX_NAMESPACE, o.metadata.namespace ?? '')) if (pdb.spec?.maxUnavailable !== undefined || typeof pdb.spec?.minAvailable === 'string') this.loop.enqueue(keyOf(pdb));
    };
    for (const informer of [replicaSets, deployments, statefulSets] as Informer<ReplicaSet | Deployment | StatefulSet>[]) {
      informer.addEventHandler({ add: scaleChanged, update: (_old, o) => scaleChanged(o), delete: scaleChanged });
    }
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private sync(key: string): SyncResult | undefined {
    const pdb = this.budgets.get(key);
    if (pdb === undefined || pdb.metadata.deletionTimestamp !== undefined) return undefined;
    const pods = this.pods.byIndex(IDX_NAMESPACE, pdb.metadata.namespace ?? '').filter((p) => budgetSelects(pdb, p));
    if (pods.length === 0) this.events.event(pdb, 'Normal', 'NoPods', 'No matching pods found');
    let figures: BudgetFigures;
    try {
      figures = budgetStatus(pdb, pods, this.scales);
    } catch (err) {
      // Fail safe: no disruption allowed while the budget cannot be worked out. The generation is
      // not marked observed (evictions meanwhile hear the budget is still being processed).
      const message = (err as Error).message;
      this.events.event(pdb, 'Warning', 'CalculateExpectedPodCountFailed', `Failed to calculate the number of expected pods: ${message}`);
      const status: PodDisruptionBudgetStatus = { ...pdb.status, disruptionsAllowed: 0 };
      status.conditions = setCondition(pdb.status?.conditions, { type: DISRUPTION_ALLOWED, status: 'False', reason: SYNC_FAILED, message }, pdb.status?.observedGeneration ?? 0, Date.now());
      return writeStatus(this.store, pdb, status);
    }
    if (figures.unmanaged.length > 0) {
      this.events.event(
        pdb,
        'Warning',
        'UnmanagedPods',
        `Pods selected by this PodDisruptionBudget (selector: ${goSelector(pdb.spec?.selector)}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to an integer value.`,
      );
    }
    // Upstream's words, the budget's namespace twice included.
    const ns = pdb.metadata.namespace ?? '';
    for (const name of figures.notDeleted) {
      const pod = pods.find((p) => p.metadata.name === name);
      if (pod !== undefined) this.events.event(pod, 'Warning', 'NotDeleted', `Pod was expected by PDB ${ns}/${ns} to be deleted but it wasn't`);
    }
    const written = writeStatus(this.store, pdb, figures.status);
    if (written !== undefined) return written;
    return figures.recheckAfterMs === undefined ? undefined : { requeueAfterMs: Math.ceil(figures.recheckAfterMs) };
  }
}

export const DISRUPTION: ControllerDescriptor = {
  name: 'disruption-controller',
  aliases: ['disruption'],
  description: "kube-controller-manager's disruption controller: each PodDisruptionBudget's healthy, desired and expected pods and the disruptions allowed",
  init(ctx) {
    const c = new DisruptionController({ store: ctx.store, informers: ctx.informers, events: ctx.events.recorder('controllermanager'), logger: ctx.logger, ...ctx.backoff });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
