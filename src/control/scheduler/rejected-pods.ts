// The pods a plugin turned away, put back in the queue when another pod could change the answer, as
// kube-scheduler's events to register for InterPodAffinity and PodTopologySpread: a pod placed on a
// node, deleted, or its labels changed while placed. (A node added or its labels or taints changed
// already send every pending pod back: scheduler.ts.) A pod counts as turned away by the plugin when
// no node fitted and at least one node was refused by it; it is forgotten once placed or deleted.
// For a placement the plugin's hint decides (kube-scheduler's QueueingHint): only waiting pods the
// new pod could help go back, so a burst of placements does not retry every waiting pod each time.
import { isDeepStrictEqual } from 'node:util';
import type { Pod } from '../api/types/core.js';
import { keyOf } from '../controllers/informer.js';
import type { Status } from './framework.js';
import type { PluginContext } from './plugin-context.js';

export class RejectedPods {
  private readonly keys = new Set<string>();

  constructor(
    private readonly ctx: Pick<PluginContext, 'pods' | 'enqueue'>,
    private readonly plugin: string,
    /** Whether a pod just placed could make the waiting pod fit (default: yes). */
    private readonly helpsWhenPlaced: (placed: Pod, waiting: Pod) => boolean = () => true,
  ) {
    ctx.pods.addEventHandler({
      add: (pod) => {
        if (pod.spec?.nodeName) this.requeue(pod);
      },
      update: (old, pod) => {
        if (!pod.spec?.nodeName) return;
        this.keys.delete(keyOf(pod));
        if (old === pod) return;
        if (!old.spec?.nodeName) this.requeue(pod);
        else if (!isDeepStrictEqual(old.metadata.labels, pod.metadata.labels)) this.requeue();
      },
      delete: (pod) => {
        this.keys.delete(keyOf(pod));
        if (pod.spec?.nodeName) this.requeue();
      },
    });
  }

  /** PostFilter: no node fitted; remember the pod if this plugin refused any. */
  note(pod: Pod, statuses: ReadonlyMap<string, Status>): void {
    for (const s of statuses.values()) {
      if (s.plugin === this.plugin) {
        this.keys.add(keyOf(pod));
        return;
      }
    }
  }

  get size(): number {
    return this.keys.size;
  }

  /** Every waiting pod, or those the pod just placed could help. */
  private requeue(placed?: Pod): void {
    for (const k of this.keys) {
      const waiting = placed === undefined ? undefined : this.ctx.pods.get(k);
      if (placed === undefined || waiting === undefined || this.helpsWhenPlaced(placed, waiting)) this.ctx.enqueue(k);
    }
  }
}
