// kube-controller-manager's taint-eviction-controller (the NoExecute taint manager). Why: a pod on
// a node that went unreachable, or that an admin tainted NoExecute by hand (`kubectl taint node n
// k=v:NoExecute`), stayed there for good. For each pod bound to a node with NoExecute taints:
//   - a taint the pod does not tolerate: the pod is deleted now;
//   - all tolerated: deleted after the smallest tolerationSeconds of the tolerations used (the
//     first one covering each taint),
//     counted from when its taint was added (its timeAdded; when it has none, from when this
//     controller first saw it); tolerations without tolerationSeconds keep the pod for good;
//   - the taints gone before that: nothing happens ("Cancelling deletion of Pod ns/name").
// Deleting means, as upstream: the pod's DisruptionTarget condition (reason
// DeletionByTaintManager, "Taint manager: deleting due to NoExecute taint"), the event Normal
// TaintManagerEviction "Marking for deletion Pod ns/name", then a graceful delete; a pod on a dead
// node stays Terminating while its controller (ReplicaSet, StatefulSet…) replaces it.
import type { Logger } from 'pino';
import { rfc3339 } from '../api/time.js';
import type { Node, Pod, Taint, Toleration } from '../api/types/core.js';
import { tolerates } from '../scheduler/plugins/taint-toleration.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';

const POD_NODE_INDEX = 'taint-eviction/nodeName';

/**
 * When a pod on a node with these NoExecute taints is to be deleted, in ms: `now` when a taint is
 * not tolerated, undefined when never (no taint, or a matching toleration without tolerationSeconds).
 * since(taint) gives when each taint was added.
 */
export function evictionTime(tolerations: readonly Toleration[] | undefined, taints: readonly Taint[], now: number, since: (t: Taint) => number): number | undefined {
  const noExecute = taints.filter((t) => t.effect === 'NoExecute');
  if (noExecute.length === 0) return undefined;
  let at: number | undefined;
  let forever = false;
  for (const taint of noExecute) {
    // As upstream's GetMatchingTolerations: the first toleration that covers the taint is the one used.
    const used = (tolerations ?? []).find((t) => tolerates(t, taint));
    if (used === undefined) return now;
    if (used.tolerationSeconds === undefined || used.tolerationSeconds === null) {
      forever = true;
      continue;
    }
    const when = since(taint) + Math.max(0, used.tolerationSeconds) * 1000;
    at = at === undefined ? when : Math.min(at, when);
  }
  // Upstream takes the smallest tolerationSeconds of all used tolerations; only when none has one is it forever.
  return at ?? (forever ? undefined : now);
}

export interface TaintEvictionOptions {
  store: Store;
  nodes: Informer<Node>;
  pods: Informer<Pod>;
  events: EventSink;
  logger: Logger;
  now?: () => number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class TaintEvictionController {
  readonly loop: ControllerLoop;
  private readonly o: TaintEvictionOptions;
  private readonly now: () => number;
  /** Pods with a deletion scheduled: key → when. */
  private readonly scheduled = new Map<string, number>();
  /** When a taint without timeAdded was first seen: "node\0key\0effect" → ms. */
  private readonly firstSeen = new Map<string, number>();

  constructor(options: TaintEvictionOptions) {
    this.o = options;
    this.now = options.now ?? Date.now;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.loop = new ControllerLoop({ name: 'taint-eviction', logger: options.logger, sync: (key) => this.syncPod(key), workers: 2, ...backoff });
    options.pods.addIndex(POD_NODE_INDEX, (p) => (p.spec.nodeName ? [p.spec.nodeName] : []));
    const enqueuePod = (p: Pod): void => {
      if (p.spec.nodeName) this.loop.enqueue(keyOf(p));
    };
    options.pods.addEventHandler({ add: enqueuePod, update: (_o, p) => enqueuePod(p) });
    const noExecute = (n: Node | undefined): string =>
      JSON.stringify((n?.spec?.taints ?? []).filter((t) => t.effect === 'NoExecute').map((t) => [t.key, t.value ?? '', t.timeAdded ?? '']));
    const enqueueNode = (old: Node | undefined, n: Node): void => {
      if (old !== undefined && noExecute(old) === noExecute(n)) return;
      for (const key of options.pods.indexKeys(POD_NODE_INDEX, n.metadata.name ?? '')) this.loop.enqueue(key);
    };
    options.nodes.addEventHandler({ add: (n) => enqueueNode(undefined, n), update: enqueueNode });
  }

  private since(nodeName: string, taint: Taint, now: number): number {
    const added = taint.timeAdded === undefined ? Number.NaN : Date.parse(taint.timeAdded);
    if (!Number.isNaN(added)) return added;
    const id = `${nodeName}\0${taint.key}\0${taint.effect}`;
    let seen = this.firstSeen.get(id);
    if (seen === undefined) this.firstSeen.set(id, (seen = now));
    return seen;
  }

  syncPod(key: string): SyncResult | undefined {
    // From the informers (kube-controller-manager's listers): every pod bound or changed comes
    // here, and two store reads each cost more than the decision. evict() writes what the store has.
    const pod = this.o.pods.get(key);
    const nodeName = pod?.spec.nodeName;
    if (pod === undefined || !nodeName || pod.metadata.deletionTimestamp !== undefined) {
      this.scheduled.delete(key);
      return undefined;
    }
    const node = this.o.nodes.get(nodeName);
    const taints = node?.spec?.taints ?? [];
    const now = this.now();
    const at = evictionTime(pod.spec.tolerations, taints, now, (t) => this.since(nodeName, t, now));
    if (at === undefined) {
      if (this.scheduled.delete(key)) this.o.events.event(pod, 'Normal', 'TaintManagerEviction', `Cancelling deletion of Pod ${key}`);
      return undefined;
    }
    if (at > now) {
      this.scheduled.set(key, at);
      return { requeueAfterMs: at - now };
    }
    this.scheduled.delete(key);
    this.evict(pod, key, now);
    return undefined;
  }

  private evict(pod: Pod, key: string, now: number): void {
    const { store } = this.o;
    const conditions = pod.status?.conditions ?? [];
    if (!conditions.some((c) => c.type === 'DisruptionTarget')) {
      const target = { type: 'DisruptionTarget', status: 'True', reason: 'DeletionByTaintManager', message: 'Taint manager: deleting due to NoExecute taint', lastTransitionTime: rfc3339(new Date(now)) };
      try {
        store.update<Pod>({ ...pod, status: { ...pod.status, conditions: [...conditions, target] } }, { subresource: 'status' });
      } catch (err) {
        if (err instanceof NotFoundError) return;
        throw err;
      }
    }
    this.o.events.event(pod, 'Normal', 'TaintManagerEviction', `Marking for deletion Pod ${key}`);
    this.o.logger.info({ pod: key, node: pod.spec.nodeName }, 'deleting a pod for a NoExecute taint');
    try {
      store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', { preconditions: { uid: pod.metadata.uid ?? '' } });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

/** kube-controller-manager's taint-eviction-controller (registry.ts). */
export const TAINT_EVICTION: ControllerDescriptor = {
  name: 'taint-eviction-controller',
  description: 'pods on nodes with NoExecute taints they do not tolerate deleted (after tolerationSeconds)',
  init(ctx) {
    const c = new TaintEvictionController({
      store: ctx.store,
      nodes: ctx.informers.for('nodes'),
      pods: ctx.informers.for('pods'),
      events: ctx.events.recorder('taint-eviction-controller'),
      logger: ctx.logger.child({ controller: 'taint-eviction' }),
      ...ctx.backoff,
    });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
