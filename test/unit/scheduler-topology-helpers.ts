// For the InterPodAffinity and PodTopologySpread tables: labelled pods placed on labelled nodes, a
// plugin context whose informers serve a few fixed objects, and one scheduling attempt of a plugin
// over a cluster (PreFilter, Filter per node, and the FitError text the scheduler would write).
import type { Namespace, Node, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { CycleState, type FilterPlugin, type NodeScore, type PreFilterPlugin, type PreScorePlugin, type ScorePlugin, type Status } from '../../src/control/scheduler/framework.js';
import { NodeInfo } from '../../src/control/scheduler/node-info.js';
import type { PluginContext } from '../../src/control/scheduler/plugin-context.js';
import { fitErrorMessage, reasonCounts } from '../../src/control/scheduler/scheduler.js';
import { snapshotOf, writeSnapshot } from '../../src/control/scheduler/snapshot.js';
import { ctr, node, podOf } from './scheduler-helpers.js';

export const ZONE = 'topology.kubernetes.io/zone';
export const HOST = 'kubernetes.io/hostname';

/** A node in a zone (no zone label when zone is undefined). */
export function zoned(name: string, zone: string | undefined, extra: Record<string, string> = {}): Node {
  return node(name, { labels: { ...(zone === undefined ? {} : { [ZONE]: zone }), ...extra } });
}

/** A pod with labels (and more spec), in a namespace. */
export function labelled(name: string, labels: Record<string, string>, spec: Partial<Pod['spec']> = {}, namespace = 'default', meta: Partial<Pod['metadata']> = {}): Pod {
  const p = podOf(name, [ctr('c')], spec);
  return { ...p, metadata: { ...p.metadata, namespace, labels, ...meta } };
}

export function namespace(name: string, labels: Record<string, string> = {}): Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } } as Namespace;
}

/** A context whose informers serve these objects (by resource) and whose pod events go nowhere. */
export function fakeContext(objects: Record<string, KubeObject[]> = {}): PluginContext {
  const informer = (items: KubeObject[]) => ({
    get: (key: string) => items.find((o) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name) === key),
    getByName: (ns: string | undefined, name: string) => items.find((o) => o.metadata.name === name && (o.metadata.namespace ?? undefined) === ns),
    list: () => items,
    addEventHandler: () => undefined,
  });
  return { pods: informer([]), enqueue: () => undefined, informers: { for: (r: string) => informer(objects[r] ?? []) } } as unknown as PluginContext;
}

export interface Placed {
  node: Node;
  pods?: Pod[];
}

export interface Attempt {
  preFilter: Status;
  /** Each node's Filter status (all Success when PreFilter skipped). */
  statuses: Map<string, Status>;
  /** Names of the nodes that pass. */
  feasible: string[];
  /** The scheduler's FitError text for the refused nodes. */
  message: string;
  state: CycleState;
  infos: NodeInfo[];
}

export function attempt(plugin: PreFilterPlugin & FilterPlugin, pod: Pod, cluster: Placed[]): Attempt {
  const infos = cluster.map((c) => new NodeInfo(c.node, c.pods ?? []));
  const state = new CycleState();
  writeSnapshot(state, snapshotOf(infos));
  const preFilter = plugin.preFilter(state, pod);
  const statuses = new Map<string, Status>();
  for (const i of infos) statuses.set(i.name, preFilter.code === 'Skip' ? { code: 'Success', reasons: [] } : { ...plugin.filter(state, pod, i), plugin: plugin.name });
  const refused = [...statuses.values()].filter((s) => s.code !== 'Success');
  return { preFilter, statuses, feasible: [...statuses].filter(([, s]) => s.code === 'Success').map(([n]) => n), message: fitErrorMessage(infos.length, reasonCounts(refused)), state, infos };
}

/** PreScore, Score and NormalizeScore over the nodes: the normalized scores by node, or 'Skip'. */
export function scores(plugin: PreScorePlugin & ScorePlugin, pod: Pod, cluster: Placed[], feasible?: string[]): Record<string, number> | 'Skip' {
  const infos = cluster.map((c) => new NodeInfo(c.node, c.pods ?? []));
  const state = new CycleState();
  writeSnapshot(state, snapshotOf(infos));
  const candidates = feasible === undefined ? infos : infos.filter((i) => feasible.includes(i.name));
  const pre = plugin.preScore(state, pod, candidates);
  if (pre.code === 'Skip') return 'Skip';
  const list: NodeScore[] = candidates.map((i) => ({ name: i.name, score: plugin.score(state, pod, i) }));
  plugin.normalizeScore?.(state, pod, list);
  return Object.fromEntries(list.map((s) => [s.name, s.score]));
}
