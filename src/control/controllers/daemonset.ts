// kube-controller-manager's daemonset controller: one pod of the template on every node it fits
// (nodeSelector, required node affinity, taints its tolerations cover, plus the tolerations
// upstream adds to every daemon pod), placed as upstream places it: a required node affinity on
// metadata.name, so the scheduler binds it (and its WaitForFirstConsumer claims) to that node.
// Surplus and misplaced pods go, failed ones are replaced, a changed template rolls out at most
// maxUnavailable pods at a time; status is what `get ds` prints.
import type { Logger } from 'pino';
import type { DaemonSet, DaemonSetStatus } from '../api/types/apps.js';
import type { Node, Pod, Toleration } from '../api/types/core.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { podMatchesNode } from '../scheduler/plugins/node-affinity.js';
import { untoleratedTaint } from '../scheduler/plugins/taint-toleration.js';
import { scaledValue } from '../api/kinds/deployment.js';
import { controllerOf, indexPodsByController, isAvailable, isFinished, isReady, isTerminating, podFromTemplate, podsOwnedBy, templateHash } from './workload-util.js';

const REVISION_LABEL = 'controller-revision-hash';

/** The tolerations every daemon pod gets (util.AddOrUpdateDaemonPodTolerations). */
const DAEMON_TOLERATIONS: Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];

/** The pod for one node: the template, the daemon tolerations, and affinity to that node alone. */
export function newDaemonPod(ds: DaemonSet, node: string, revision: string): Pod {
  const pod = podFromTemplate(ds.spec.template, ds, { generateName: `${ds.metadata.name ?? ''}-` }, { [REVISION_LABEL]: revision });
  const tolerations = [...(pod.spec.tolerations ?? [])];
  for (const t of DAEMON_TOLERATIONS) if (!tolerations.some((x) => x.key === t.key && x.effect === t.effect)) tolerations.push(t);
  pod.spec.tolerations = tolerations;
  const affinity = (pod.spec.affinity ?? {}) as Record<string, unknown>;
  pod.spec.affinity = {
    ...affinity,
    nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] } },
  };
  return pod;
}

/** Whether a daemon pod of this set belongs on the node (NodeShouldRunDaemonPod). */
export function shouldRun(ds: DaemonSet, node: Node): boolean {
  const probe = newDaemonPod(ds, node.metadata.name ?? '', '');
  // The template's own affinity and selector decide; the per-node affinity trivially matches.
  const own = { ...probe, spec: { ...probe.spec, affinity: ds.spec.template.spec.affinity } } as Pod;
  return podMatchesNode(own, node) && untoleratedTaint(node, probe.spec.tolerations) === undefined;
}

/** The node a daemon pod is for: its node, or the one its affinity names. */
function nodeOf(pod: Pod): string | undefined {
  if (pod.spec.nodeName) return pod.spec.nodeName;
  const terms = (pod.spec.affinity as { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: { matchFields?: { key: string; values?: string[] }[] }[] } } } | undefined)?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  return terms?.[0]?.matchFields?.find((f) => f.key === 'metadata.name')?.values?.[0];
}

export interface DaemonSetControllerOptions {
  store: Store;
  sets: Informer<DaemonSet>;
  pods: Informer<Pod>;
  nodes: Informer<Node>;
  events: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class DaemonSetController {
  readonly loop: ControllerLoop;
  private readonly o: DaemonSetControllerOptions;

  constructor(options: DaemonSetControllerOptions) {
    this.o = options;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'daemonset', logger: options.logger, sync: (key) => this.sync(key), ...backoff });
    indexPodsByController(options.pods);
    const enqueue = (ds: DaemonSet): void => this.loop.enqueue(keyOf(ds));
    options.sets.addEventHandler({ add: enqueue, update: (_o, ds) => enqueue(ds), delete: enqueue });
    const enqueueOwner = (p: Pod): void => {
      const ref = controllerOf(p);
      if (ref?.kind === 'DaemonSet') this.loop.enqueue(`${p.metadata.namespace ?? ''}/${ref.name}`);
    };
    options.pods.addEventHandler({ add: enqueueOwner, update: (_o, p) => enqueueOwner(p), delete: enqueueOwner });
    // A node added, relabelled, tainted or removed may change where every set belongs.
    const all = (): void => {
      for (const ds of options.sets.list()) enqueue(ds);
    };
    options.nodes.addEventHandler({ add: all, update: (o, n) => (JSON.stringify([o.metadata.labels, o.spec]) !== JSON.stringify([n.metadata.labels, n.spec]) ? all() : undefined), delete: all });
  }

  private deletePod(ds: DaemonSet, pod: Pod): void {
    try {
      this.o.store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', { preconditions: { uid: pod.metadata.uid ?? '' } });
      this.o.events.event(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name ?? ''}`);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  private sync(key: string): SyncResult | undefined {
    const { store, sets, pods, nodes, events } = this.o;
    const ds = sets.get(key);
    if (ds === undefined || isTerminating(ds)) return undefined;
    const revision = templateHash(ds.spec.template);
    const minReady = ds.spec.minReadySeconds ?? 0;
    const byNode = new Map<string, Pod[]>();
    for (const p of podsOwnedBy(pods, ds)) {
      const n = nodeOf(p);
      if (n !== undefined) byNode.set(n, [...(byNode.get(n) ?? []), p]);
    }
    const status: DaemonSetStatus = { currentNumberScheduled: 0, numberMisscheduled: 0, desiredNumberScheduled: 0, numberReady: 0, updatedNumberScheduled: 0, numberAvailable: 0, observedGeneration: ds.metadata.generation ?? 0 };
    const outdated: Pod[] = [];
    for (const node of nodes.list()) {
      const name = node.metadata.name ?? '';
      const here = (byNode.get(name) ?? []).filter((p) => !isTerminating(p));
      byNode.delete(name);
      if (!shouldRun(ds, node)) {
        if (here.length > 0) status.numberMisscheduled++;
        for (const p of here) this.deletePod(ds, p);
        continue;
      }
      status.desiredNumberScheduled++;
      const failed = here.filter(isFinished);
      for (const p of failed) this.deletePod(ds, p);
      const live = here.filter((p) => !isFinished(p));
      if (live.length === 0) {
        try {
          const created = store.create(newDaemonPod(ds, name, revision));
          events.event(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name ?? ''}`);
        } catch (err) {
          events.event(ds, 'Warning', 'FailedCreate', `Error creating: ${(err as Error).message}`);
          throw err;
        }
        continue;
      }
      // More than one on a node: keep the oldest.
      const sorted = [...live].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
      for (const extra of sorted.slice(1)) this.deletePod(ds, extra);
      const pod = sorted[0] as Pod;
      status.currentNumberScheduled++;
      if (isReady(pod)) status.numberReady++;
      if (isAvailable(pod, minReady)) status.numberAvailable = (status.numberAvailable ?? 0) + 1;
      if (pod.metadata.labels?.[REVISION_LABEL] === revision) status.updatedNumberScheduled = (status.updatedNumberScheduled ?? 0) + 1;
      else outdated.push(pod);
    }
    // Pods for nodes that no longer exist.
    for (const left of byNode.values()) for (const p of left) if (!isTerminating(p)) this.deletePod(ds, p);
    status.numberUnavailable = status.desiredNumberScheduled - (status.numberAvailable ?? 0);
    // Rolling update: old pods go while no more than maxUnavailable are unavailable.
    if ((ds.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate' && outdated.length > 0) {
      const maxUnavailable = Math.max(1, scaledValue(ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1, status.desiredNumberScheduled, true));
      let budget = maxUnavailable - status.numberUnavailable;
      for (const p of outdated.filter((x) => !isAvailable(x, minReady))) this.deletePod(ds, p);
      for (const p of outdated.filter((x) => isAvailable(x, minReady))) {
        if (budget <= 0) break;
        this.deletePod(ds, p);
        budget--;
      }
    }
    const current = sets.get(key);
    if (current !== undefined && current.metadata.uid === ds.metadata.uid) {
      const next = { ...current.status, ...status };
      if (JSON.stringify(next) !== JSON.stringify(current.status)) store.update({ ...current, status: next }, { subresource: 'status' });
    }
    return undefined;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

/** kube-controller-manager's daemonset controller (registry.ts). */
export const DAEMONSET: ControllerDescriptor = {
  name: 'daemonset-controller',
  aliases: ['daemonset'],
  description: 'DaemonSets: one pod of the template on every node it fits',
  init(ctx) {
    const c = new DaemonSetController({
      store: ctx.store,
      sets: ctx.informers.for('daemonsets'),
      pods: ctx.informers.for('pods'),
      nodes: ctx.informers.for('nodes'),
      events: ctx.events.recorder('daemonset-controller'),
      logger: ctx.logger,
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
