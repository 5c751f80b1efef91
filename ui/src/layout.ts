// Lays the topology graph out with ELK's layered algorithm (left to right, in the order classes,
// claims, volumes, backends, nodes, pods), sizing boxes and edge labels from their text. ELK's
// crossing minimisation grows much faster than the graph (6 s for 3000 objects here), so beyond
// ELK_LIMIT objects the same columns are laid out directly: one column per kind, each object
// placed after the objects it comes from, in linear time.
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import type { Graph, GraphEdge, GraphNode } from './model.js';

export interface PlacedNode extends GraphNode {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge extends GraphEdge {
  /** SVG path data. */
  d: string;
  labelAt?: { x: number; y: number };
}

export interface Layout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

/** ELK is most of the bundle's weight: loaded (once) when a graph first needs it, not with the page. */
let elk: Promise<{ layout(graph: ElkNode): Promise<ElkNode> }> | undefined;
const loadElk = () => (elk ??= import('elkjs/lib/elk.bundled.js').then((m) => new m.default()));
const CHAR = 6.8;
const LINE = 15;

export function boxSize(n: GraphNode): { width: number; height: number } {
  const longest = Math.max(n.label.length, n.sub.length, Math.min(n.warning?.length ?? 0, 48));
  return { width: Math.max(90, Math.min(330, Math.ceil(longest * CHAR) + 20)), height: 12 + LINE * (n.warning === undefined ? 2 : 3) };
}

/** The warning as it fits in a box: cut, with the whole in the tooltip. */
export function clip(text: string, width: number): string {
  const max = Math.floor((width - 16) / CHAR);
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

export const ELK_LIMIT = 400;

const COLUMNS: GraphNode['kind'][] = ['class', 'claim', 'volume', 'backend', 'node', 'pod'];

/** Columns by kind; within a column, in the order of the objects they come from, then by name. */
export function columnLayout(graph: Graph): Layout {
  const incoming = new Map<string, string[]>();
  for (const e of graph.edges) incoming.set(e.target, [...(incoming.get(e.target) ?? []), e.source]);
  const rank = new Map<string, number>();
  const placed = new Map<string, PlacedNode>();
  let x = 0;
  let height = 0;
  for (const kind of COLUMNS) {
    const column = graph.nodes
      .filter((n) => n.kind === kind)
      .map((n) => ({ n, from: Math.min(...(incoming.get(n.id) ?? []).map((s) => rank.get(s) ?? Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER) }))
      .sort((a, b) => a.from - b.from || a.n.label.localeCompare(b.n.label));
    if (column.length === 0) continue;
    let y = 0;
    let width = 0;
    for (const [i, { n }] of column.entries()) {
      const size = boxSize(n);
      placed.set(n.id, { ...n, x, y, ...size });
      rank.set(n.id, i);
      y += size.height + 10;
      width = Math.max(width, size.width);
    }
    height = Math.max(height, y);
    x += width + 70;
  }
  const edges: PlacedEdge[] = graph.edges.flatMap((e) => {
    const a = placed.get(e.source);
    const b = placed.get(e.target);
    if (a === undefined || b === undefined) return [];
    const [x1, y1, x2, y2] = [a.x + a.width, a.y + a.height / 2, b.x, b.y + b.height / 2];
    return [{ ...e, d: `M${x1},${y1} L${x2},${y2}`, ...(e.label === undefined ? {} : { labelAt: { x: x1 + 4, y: y1 - 4 } }) }];
  });
  return { width: x + 24, height: height + 24, nodes: [...placed.values()], edges };
}

export async function layout(graph: Graph): Promise<Layout> {
  if (graph.nodes.length > ELK_LIMIT) return columnLayout(graph);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const root: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.spacing.nodeNode': '14',
      'elk.layered.spacing.nodeNodeBetweenLayers': '40',
      'elk.spacing.edgeLabel': '2',
      'elk.edgeLabels.inline': 'false',
      'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
      'elk.separateConnectedComponents': 'false',
    },
    children: graph.nodes.map((n) => ({ id: n.id, ...boxSize(n) })),
    edges: graph.edges.map(
      (e): ElkExtendedEdge => ({
        id: e.id,
        sources: [e.source],
        targets: [e.target],
        ...(e.label === undefined ? {} : { labels: [{ text: e.label, width: Math.min(e.label.length * 5.8, 260), height: 12 }] }),
      }),
    ),
  };
  const out = await (await loadElk()).layout(root);
  const nodes: PlacedNode[] = (out.children ?? []).flatMap((c) => {
    const n = byId.get(c.id);
    return n === undefined ? [] : [{ ...n, x: c.x ?? 0, y: c.y ?? 0, width: c.width ?? 0, height: c.height ?? 0 }];
  });
  const edgeById = new Map(graph.edges.map((e) => [e.id, e]));
  const edges: PlacedEdge[] = (out.edges ?? []).flatMap((e) => {
    const g = edgeById.get(e.id);
    const s = e.sections?.[0];
    if (g === undefined || s === undefined) return [];
    const points = [s.startPoint, ...(s.bendPoints ?? []), s.endPoint];
    const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
    const l = e.labels?.[0];
    return [{ ...g, d, ...(l?.x === undefined || l.y === undefined ? {} : { labelAt: { x: l.x, y: l.y + 9 } }) }];
  });
  return { width: (out.width ?? 0) + 24, height: (out.height ?? 0) + 24, nodes, edges };
}
