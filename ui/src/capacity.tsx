// Capacity per node pool (node × class): what the volumes there use (kubelet volume stats), what
// is provisioned to them (their PVs' sizes) and what the driver still offers (CSIStorageCapacity),
// as one bar each.
import { useEffect, useState } from 'preact/hooks';
import type { Api } from './api.js';
import { bytes, metricValues, quantity } from './format.js';
import type { KObject } from './types.js';
import { UsageBar } from './usage-bar.js';

interface Pool {
  node: string;
  storageClass: string;
  used: number;
  provisioned: number;
  free: number | undefined;
}

function pvNode(pv: KObject): string | undefined {
  for (const term of pv.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? []) {
    for (const expr of term.matchExpressions ?? []) if (expr.operator === 'In' && String(expr.key).endsWith('/node') && expr.values?.[0]) return expr.values[0];
  }
  return undefined;
}

export function Capacity(props: { api: Api; volumes: KObject[]; capacities: KObject[] }) {
  const [metrics, setMetrics] = useState('');
  useEffect(() => {
    let live = true;
    const load = (): void => {
      props.api.text('/metrics').then(
        (t) => live && setMetrics(t),
        () => undefined,
      );
    };
    load();
    const timer = setInterval(load, 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [props.api]);
  const usedByClaim = new Map(metricValues(metrics, 'kubelet_volume_stats_used_bytes').map((m) => [`${m.labels['namespace']}/${m.labels['persistentvolumeclaim']}`, m.value]));
  const pools = new Map<string, Pool>();
  const pool = (node: string, storageClass: string): Pool => {
    const k = `${node}|${storageClass}`;
    let p = pools.get(k);
    if (p === undefined) pools.set(k, (p = { node, storageClass, used: 0, provisioned: 0, free: undefined }));
    return p;
  };
  for (const c of props.capacities) {
    const labels: Record<string, string> = c.spec?.nodeTopology?.matchLabels ?? (c as KObject & { nodeTopology?: { matchLabels?: Record<string, string> } }).nodeTopology?.matchLabels ?? {};
    const node = Object.entries(labels).find(([k]) => k.endsWith('/node'))?.[1] ?? Object.values(labels).join(',');
    const o = c as KObject & { storageClassName?: string; capacity?: string };
    const p = pool(node || '(any node)', o.storageClassName ?? '');
    p.free = (p.free ?? 0) + (quantity(o.capacity) || 0);
  }
  for (const pv of props.volumes) {
    const node = pvNode(pv) ?? '(any node)';
    const p = pool(node, pv.spec?.storageClassName ?? '');
    p.provisioned += quantity(pv.spec?.capacity?.storage) || 0;
    const ref = pv.spec?.claimRef as { namespace?: string; name?: string } | undefined;
    if (ref) p.used += usedByClaim.get(`${ref.namespace}/${ref.name}`) ?? 0;
  }
  const rows = [...pools.values()].sort((a, b) => `${a.node}|${a.storageClass}`.localeCompare(`${b.node}|${b.storageClass}`));
  return (
    <section class="card" aria-label="Capacity">
      <p class="muted">
        Per node pool: <span class="swatch used" /> used · <span class="swatch provisioned" /> provisioned · <span class="swatch free" /> free to provision (CSIStorageCapacity)
      </p>
      {rows.length === 0 && <p class="muted">No volumes and no published capacity yet.</p>}
      <table data-testid="capacity">
        <thead>
          <tr>
            <th>node</th>
            <th>class</th>
            <th class="num">used</th>
            <th class="num">provisioned</th>
            <th class="num">free</th>
            <th class="hide-narrow wide" />
          </tr>
        </thead>
        <tbody>
          {rows.map((p) => (
            <tr key={`${p.node}|${p.storageClass}`}>
              <td>{p.node}</td>
              <td>{p.storageClass}</td>
              <td class="num">{bytes(p.used)}</td>
              <td class="num">{bytes(p.provisioned)}</td>
              <td class="num">{p.free === undefined ? '—' : bytes(p.free)}</td>
              <td class="hide-narrow">
                <UsageBar used={p.used} provisioned={p.provisioned} free={p.free} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
