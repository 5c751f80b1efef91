// ImageLocality: prefers nodes that already hold the pod's images (node status.images, as the
// kubelet reports them). Each image found on the node scores its size times the share of all nodes
// holding it (so one popular image does not pull every pod onto the same node); the sum, clamped to
// 23 MiB .. 1000 MiB per container, is scaled to 0..100. An image named without a tag is ":latest".
// Stowage's node agents do not report images yet, so today every node scores 0 unless its Node
// object lists them (hand-written or hollow nodes).
//
// How many nodes hold each image is kept from the node informer's events (kube-scheduler keeps it
// in its cache's imageStates), so PreScore does not walk every node for every pod.
import type { Node, Pod } from '../../api/types/core.js';
import { type CycleState, MAX_NODE_SCORE, type PreScorePlugin, type ScorePlugin, SKIP, SUCCESS, type Status } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';

const MiB = 1024 * 1024;
const MIN_THRESHOLD = 23 * MiB;
const MAX_CONTAINER_THRESHOLD = 1000 * MiB;
const STATE_KEY = 'ImageLocality';

/** An image reference as the runtime reports it: ":latest" when no tag is given. */
export function normalizedImageName(name: string): string {
  return name.lastIndexOf(':') <= name.lastIndexOf('/') ? `${name}:latest` : name;
}

/** Node objects are replaced, never changed in place: their image lists are read once. */
const imagesOf = new WeakMap<Node, Map<string, number>>();

function nodeImages(node: Node): Map<string, number> {
  const known = imagesOf.get(node);
  if (known !== undefined) return known;
  const out = new Map<string, number>();
  imagesOf.set(node, out);
  const images = (node.status as { images?: { names?: string[]; sizeBytes?: number }[] } | undefined)?.images ?? [];
  for (const img of images) for (const n of img.names ?? []) out.set(n, img.sizeBytes ?? 0);
  return out;
}

/** Kubernetes' calculatePriority: the summed image scores clamped and scaled to 0..100. */
export function imageScore(sum: number, containers: number): number {
  const max = MAX_CONTAINER_THRESHOLD * containers;
  const clamped = Math.min(Math.max(sum, MIN_THRESHOLD), max);
  return max <= MIN_THRESHOLD ? 0 : Math.floor((MAX_NODE_SCORE * (clamped - MIN_THRESHOLD)) / (max - MIN_THRESHOLD));
}

interface Spread {
  images: string[];
  /** image → how many nodes hold it */
  nodesWith: Map<string, number>;
  totalNodes: number;
}

/** image → how many nodes hold it, kept up to date from node events. */
class ImageCounts {
  readonly counts = new Map<string, number>();

  change(node: Node, by: 1 | -1): void {
    for (const img of nodeImages(node).keys()) {
      const n = (this.counts.get(img) ?? 0) + by;
      if (n > 0) this.counts.set(img, n);
      else this.counts.delete(img);
    }
  }
}

export class ImageLocality implements PreScorePlugin, ScorePlugin {
  readonly name = 'ImageLocality';
  /** Undefined when the context has no informer events to follow (tests): counted per pod then. */
  private readonly images: ImageCounts | undefined;

  constructor(private readonly ctx: PluginContext) {
    if (typeof ctx.nodes.addEventHandler !== 'function') return;
    const images = (this.images = new ImageCounts());
    ctx.nodes.addEventHandler({
      add: (n) => images.change(n, 1),
      update: (old, n) => {
        if (old === n) return;
        images.change(old, -1);
        images.change(n, 1);
      },
      delete: (n) => images.change(n, -1),
    });
  }

  preScore(state: CycleState, pod: Pod): Status {
    const images = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((c) => normalizedImageName(c.image ?? ''));
    const nodesWith = new Map<string, number>();
    let totalNodes: number;
    if (this.images !== undefined) {
      for (const img of images) {
        const n = this.images.counts.get(img);
        if (n !== undefined) nodesWith.set(img, n);
      }
      totalNodes = this.ctx.nodes.size;
    } else {
      const nodes = this.ctx.nodes.list();
      const unique = [...new Set(images)];
      for (const n of nodes) {
        const held = nodeImages(n);
        if (held.size === 0) continue;
        for (const img of unique) if (held.has(img)) nodesWith.set(img, (nodesWith.get(img) ?? 0) + 1);
      }
      totalNodes = nodes.length;
    }
    if (nodesWith.size === 0) return SKIP; // no node holds any of them: every node would score 0
    state.write(STATE_KEY, { images, nodesWith, totalNodes } satisfies Spread);
    return SUCCESS;
  }

  score(state: CycleState, _pod: Pod, node: NodeInfo): number {
    const spread = state.read<Spread>(STATE_KEY);
    if (spread === undefined || spread.totalNodes === 0) return 0;
    const held = nodeImages(node.node);
    let sum = 0;
    for (const img of spread.images) {
      const size = held.get(img);
      if (size !== undefined) sum += Math.trunc(size * ((spread.nodesWith.get(img) ?? 0) / spread.totalNodes));
    }
    return imageScore(sum, spread.images.length);
  }
}
