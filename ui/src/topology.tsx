// The topology view: filters (namespace, class, node), the graph drawn as SVG from the layout, and
// a click (or Enter) on a claim opens its journey. Red boxes carry their latest Warning event.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { buildTopology, type Filters, type Graph } from './model.js';
import { clip, type Layout, layout } from './layout.js';
import type { CsiCall, KEvent, KObject } from './types.js';

export interface TopologyProps {
  classes: KObject[];
  claims: KObject[];
  volumes: KObject[];
  pods: KObject[];
  nodes: KObject[];
  events: KEvent[];
  calls: CsiCall[];
  /** Every collection listed once: until then a layout would be thrown away at once. */
  synced: boolean;
  onOpenClaim: (namespace: string, name: string) => void;
}

function Select(props: { label: string; value: string; options: string[]; onChange: (v: string) => void; name: string }) {
  return (
    <label>
      {props.label}
      <select name={props.name} value={props.value} onChange={(e) => props.onChange((e.currentTarget as HTMLSelectElement).value)}>
        <option value="">all</option>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

export function Topology(props: TopologyProps) {
  const [filters, setFilters] = useState<Filters>({ namespace: '', storageClass: '', node: '' });
  const graph: Graph = useMemo(
    () => buildTopology(props, filters),
    [props.classes, props.claims, props.volumes, props.pods, props.nodes, props.events, props.calls, filters],
  );
  const [placed, setPlaced] = useState<Layout | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    if (!props.synced) return;
    let current = true;
    const t0 = performance.now();
    layout(graph).then(
      (l) => {
        if (!current) return;
        setPlaced(l);
        setError(undefined);
        performance.measure('stowage:layout', { start: t0, end: performance.now() });
        // Drawn once the browser has painted the new SVG.
        requestAnimationFrame(() => setTimeout(() => performance.mark('stowage:drawn'), 0));
      },
      (err: unknown) => current && setError(String(err)),
    );
    return () => {
      current = false;
    };
  }, [graph, props.synced]);

  const namespaces = [...new Set([...props.claims, ...props.pods].map((o) => o.metadata.namespace ?? ''))].sort();
  const open = (id: string): void => {
    const m = /^claim:([^/]+)\/(.+)$/.exec(id);
    if (m?.[1] !== undefined && m[2] !== undefined) props.onOpenClaim(m[1], m[2]);
  };
  return (
    <section aria-label="Topology">
      <div class="filters">
        <Select name="namespace" label="Namespace" value={filters.namespace} options={namespaces} onChange={(namespace) => setFilters({ ...filters, namespace })} />
        <Select name="class" label="Class" value={filters.storageClass} options={props.classes.map((c) => c.metadata.name).sort()} onChange={(storageClass) => setFilters({ ...filters, storageClass })} />
        <Select name="node" label="Node" value={filters.node} options={props.nodes.map((n) => n.metadata.name).sort()} onChange={(node) => setFilters({ ...filters, node })} />
        <span class="muted" data-testid="counts">
          {graph.nodes.length} objects, {graph.edges.length} links
        </span>
      </div>
      <div class="legend hide-narrow">
        <span>class → claim → volume → backend volume → node (staging path) → pod (publish path)</span>
        <span>click a claim for its journey</span>
      </div>
      {error !== undefined && <p role="alert">layout failed: {error}</p>}
      <div class="graph" data-testid="graph">
        {placed !== undefined && (
          <svg width={placed.width} height={placed.height} viewBox={`0 0 ${placed.width} ${placed.height}`} role="img" aria-label="storage topology">
            <title>storage topology</title>
            <defs>
              <marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">
                <path d="M0,0 L8,4 L0,8 z" fill="#8a96a8" />
              </marker>
            </defs>
            <g transform="translate(12,12)">
              {placed.edges.map((e) => (
                <g key={e.id} data-edge={e.id}>
                  <path class="e" d={e.d}>
                    {e.title !== undefined && <title>{e.title}</title>}
                  </path>
                  {e.label !== undefined && e.labelAt !== undefined && (
                    <text class="el" x={e.labelAt.x} y={e.labelAt.y}>
                      {e.label}
                      {e.title !== undefined && <title>{e.title}</title>}
                    </text>
                  )}
                </g>
              ))}
              {placed.nodes.map((n) => (
                // biome-ignore lint/a11y/noStaticElementInteractions: SVG groups are the graph's nodes; claims get role="button" and Enter opens them too
                <g
                  key={n.id}
                  data-node={n.id}
                  class={`n k-${n.kind}${n.warning === undefined ? '' : ' bad'}`}
                  transform={`translate(${n.x},${n.y})`}
                  {...(n.kind === 'claim' ? { role: 'button', tabIndex: 0 } : {})}
                  onClick={() => open(n.id)}
                  onKeyDown={(e) => e.key === 'Enter' && open(n.id)}
                >
                  <title>{n.title}</title>
                  <rect width={n.width} height={n.height} rx="5" />
                  <text x="8" y="18">
                    {clip(n.label, n.width)}
                  </text>
                  <text class="sub" x="8" y="33">
                    {clip(n.sub, n.width)}
                  </text>
                  {n.warning !== undefined && (
                    <text class="warn" x="8" y="48" data-testid="warning">
                      {clip(n.warning, n.width)}
                    </text>
                  )}
                </g>
              ))}
            </g>
          </svg>
        )}
      </div>
    </section>
  );
}
