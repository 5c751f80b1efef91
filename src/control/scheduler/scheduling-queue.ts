// kube-scheduler's activeQ with the PrioritySort plugin: the pods waiting for an attempt are taken
// highest spec.priority first, and among equal priorities in the order they were queued. It is the
// controller work queue (work-queue.ts) with its FIFO swapped for a binary heap, so everything else
// is kept: one attempt per pod at a time, the per-pod exponential backoff after an error, timed
// retries. kube-scheduler's unschedulable queue is the scheduler's event handlers: an unschedulable
// pod is not queued again until a node, pod, claim or volume event could make it fit.
//
// A pod's priority is read when it is queued (absent: 0, as corev1helpers.PodPriority).
import { type RateLimiterOptions, WorkQueue } from '../controllers/work-queue.js';

interface Item {
  key: string;
  priority: number;
  seq: number;
}

/** Whether a goes before b: higher priority, then queued earlier. */
function before(a: Item, b: Item): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq;
}

export class SchedulingQueue extends WorkQueue {
  private readonly heap: Item[] = [];
  private seq = 0;

  constructor(
    private readonly priorityOf: (key: string) => number,
    options: RateLimiterOptions = {},
  ) {
    super(options);
  }

  override get length(): number {
    return this.heap.length;
  }

  protected override push(key: string): void {
    const item = { key, priority: this.priorityOf(key), seq: this.seq++ };
    const h = this.heap;
    let i = h.push(item) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, h[parent] as Item)) break;
      h[i] = h[parent] as Item;
      i = parent;
    }
    h[i] = item;
  }

  protected override pop(): string | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop() as Item;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const child = r < h.length && before(h[r] as Item, h[l] as Item) ? r : l;
        if (!before(h[child] as Item, last)) break;
        h[i] = h[child] as Item;
        i = child;
      }
      h[i] = last;
    }
    return top.key;
  }

  protected override clearWaiting(): void {
    this.heap.length = 0;
  }
}
