// What the node agents last learned of their pods' CSI volumes from NodeGetVolumeStats, kept per
// node and served as the kubelet serves it: the kubelet_volume_stats_* gauges, labelled by the
// claim's namespace and name, at the kubelet's metrics endpoint as the API server proxies it
// (`kubectl get --raw /api/v1/nodes/<node>/proxy/metrics`) and, for every node at once, at
// `stowage up`'s /metrics. The agents refresh their figures with each heartbeat (the kubelet's
// volume stats period is a minute; ours is the heartbeat's); a scrape reads the cache, never a
// driver. prom-client renders the exposition format; it is loaded on the first scrape only.

/** One published volume's figures (NodeGetVolumeStats' usage, by unit), and its health when the driver reports it. */
export interface VolumeStats {
  namespace: string;
  claim: string;
  capacityBytes?: number;
  availableBytes?: number;
  usedBytes?: number;
  inodes?: number;
  inodesFree?: number;
  inodesUsed?: number;
  /** The driver's VolumeCondition: true abnormal, false healthy, undefined not reported. */
  abnormal?: boolean;
}

/** kubelet's gauges (pkg/kubelet/metrics: the volume stats collector), name → help. */
const GAUGES: readonly [keyof VolumeStats, string, string][] = [
  ['capacityBytes', 'kubelet_volume_stats_capacity_bytes', 'Capacity in bytes of the volume'],
  ['availableBytes', 'kubelet_volume_stats_available_bytes', 'Number of available bytes in the volume'],
  ['usedBytes', 'kubelet_volume_stats_used_bytes', 'Number of used bytes in the volume'],
  ['inodes', 'kubelet_volume_stats_inodes', 'Maximum number of inodes in the volume'],
  ['inodesFree', 'kubelet_volume_stats_inodes_free', 'Number of free inodes in the volume'],
  ['inodesUsed', 'kubelet_volume_stats_inodes_used', 'Number of used inodes in the volume'],
];
const HEALTH = ['kubelet_volume_stats_health_status_abnormal', 'Abnormal volume health status. The count is either 1 or 0. 1 indicates the volume is unhealthy, 0 indicates volume is healthy'] as const;
const LABELS = ['namespace', 'persistentvolumeclaim'] as const;

/** Figures from NodeGetVolumeStats' usage list (BYTES and INODES entries). */
export function statsFromUsage(usage: readonly { unit: string; total: number; available: number; used: number }[]): Omit<VolumeStats, 'namespace' | 'claim'> {
  const out: Omit<VolumeStats, 'namespace' | 'claim'> = {};
  for (const u of usage) {
    if (u.unit === 'BYTES') Object.assign(out, { capacityBytes: Number(u.total), availableBytes: Number(u.available), usedBytes: Number(u.used) });
    else if (u.unit === 'INODES') Object.assign(out, { inodes: Number(u.total), inodesFree: Number(u.available), inodesUsed: Number(u.used) });
  }
  return out;
}

export class VolumeStatsCache {
  private readonly byNode = new Map<string, readonly VolumeStats[]>();

  /** A node's whole current set (what it no longer publishes disappears from the metrics). */
  replace(node: string, stats: readonly VolumeStats[]): void {
    this.byNode.set(node, stats);
  }

  forget(node: string): void {
    this.byNode.delete(node);
  }

  get(node: string): readonly VolumeStats[] | undefined {
    return this.byNode.get(node);
  }

  /** The Prometheus text of one node's volumes, or of every node's; undefined for a node never heard of. */
  async render(node?: string): Promise<string | undefined> {
    const stats = node === undefined ? [...this.byNode.values()].flat() : this.byNode.get(node);
    if (stats === undefined) return undefined;
    const { Gauge, Registry } = await import('prom-client');
    const registry = new Registry();
    for (const [field, name, help] of GAUGES) {
      const gauge = new Gauge({ name, help, labelNames: LABELS, registers: [registry] });
      for (const s of stats) {
        const value = s[field];
        if (typeof value === 'number') gauge.set({ namespace: s.namespace, persistentvolumeclaim: s.claim }, value);
      }
    }
    const health = new Gauge({ name: HEALTH[0], help: HEALTH[1], labelNames: LABELS, registers: [registry] });
    for (const s of stats) if (s.abnormal !== undefined) health.set({ namespace: s.namespace, persistentvolumeclaim: s.claim }, s.abnormal ? 1 : 0);
    return registry.metrics();
  }
}
