// The topology as a graph: StorageClasses → claims → PersistentVolumes → backend volumes (the
// PV's CSI volumeHandle and what its attributes say of where it lives) → nodes → pods. Edges from
// backend volumes to nodes carry the staging path, from nodes to pods the publish path, both read
// from the CSI call journal. An object whose latest event is a Warning carries that message.
import { type CsiCall, eventTime, type KEvent, type KObject, key } from './types.js';

export type NodeKind = 'class' | 'claim' | 'volume' | 'backend' | 'node' | 'pod';

export interface GraphNode {
  id: string;
  kind: NodeKind;
  label: string;
  sub: string;
  /** The latest event's message when it is a Warning. */
  warning?: string;
  /** Full text for the tooltip. */
  title: string;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  label?: string;
  title?: string;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface Filters {
  namespace: string;
  storageClass: string;
  node: string;
}

export interface TopologyInput {
  classes: KObject[];
  claims: KObject[];
  volumes: KObject[];
  pods: KObject[];
  nodes: KObject[];
  events: KEvent[];
  calls: CsiCall[];
}

export const nodeId = {
  class: (name: string) => `class:${name}`,
  claim: (ns: string, name: string) => `claim:${ns}/${name}`,
  volume: (name: string) => `volume:${name}`,
  backend: (handle: string) => `backend:${handle}`,
  node: (name: string) => `node:${name}`,
  pod: (ns: string, name: string) => `pod:${ns}/${name}`,
};

/** The latest Warning of each object (by kind/namespace/name), when it is also the object's latest event. */
export function warnings(events: KEvent[]): Map<string, string> {
  const latest = new Map<string, KEvent>();
  for (const e of events) {
    const o = e.involvedObject;
    if (o?.kind === undefined || o.name === undefined) continue;
    const k = `${o.kind}/${o.namespace ?? ''}/${o.name}`;
    const seen = latest.get(k);
    if (seen === undefined || eventTime(seen) <= eventTime(e)) latest.set(k, e);
  }
  const out = new Map<string, string>();
  for (const [k, e] of latest) if (e.type === 'Warning') out.set(k, `${e.reason ?? 'Warning'}: ${e.message ?? ''}`);
  return out;
}

/** "…/last/two" of a long path, at most `max` characters (the whole path goes in the tooltip). */
export function shortPath(path: string, parts = 2, max = 30): string {
  const segs = path.split('/').filter((s) => s !== '');
  const short = segs.length <= parts ? path : `…/${segs.slice(-parts).join('/')}`;
  return short.length <= max ? short : `…${short.slice(-(max - 1))}`;
}

const BACKEND_ATTRS = ['pool', 'imageName', 'subvolumeName', 'subvolumePath', 'fsName', 'clusterID'];

function claimNodes(claim: KObject, pv: KObject | undefined, pods: KObject[]): Set<string> {
  const out = new Set<string>();
  for (const p of pods) if (p.spec?.nodeName && usesClaim(p, claim)) out.add(p.spec.nodeName as string);
  for (const term of pv?.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? []) {
    for (const expr of term.matchExpressions ?? []) if (expr.operator === 'In' && String(expr.key).endsWith('/node')) for (const v of expr.values ?? []) out.add(v);
  }
  return out;
}

export function usesClaim(pod: KObject, claim: KObject): boolean {
  if (pod.metadata.namespace !== claim.metadata.namespace) return false;
  return (pod.spec?.volumes ?? []).some((v: { persistentVolumeClaim?: { claimName?: string } }) => v.persistentVolumeClaim?.claimName === claim.metadata.name);
}

/** What the journal says is staged and published now, per "volumeId|node": the latest successful stage and publishes not since undone. */
export function mountsFromJournal(calls: CsiCall[]): { staged: Map<string, string>; published: Map<string, string[]> } {
  const staged = new Map<string, string>();
  const published = new Map<string, string[]>();
  for (const c of calls) {
    if (c.code !== 'OK' || c.volumeId === undefined || c.node === undefined) continue;
    const k = `${c.volumeId}|${c.node}`;
    if (c.method === 'NodeStageVolume' && c.stagingTargetPath) staged.set(k, c.stagingTargetPath);
    if (c.method === 'NodeUnstageVolume') staged.delete(k);
    if (c.method === 'NodePublishVolume' && c.targetPath) published.set(k, [...(published.get(k) ?? []).filter((t) => t !== c.targetPath), c.targetPath]);
    if (c.method === 'NodeUnpublishVolume' && c.targetPath) published.set(k, (published.get(k) ?? []).filter((t) => t !== c.targetPath));
  }
  return { staged, published };
}

export function buildTopology(input: TopologyInput, filters: Filters): Graph {
  const warn = warnings(input.events);
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const add = (n: GraphNode, kind: string, ns: string, name: string): void => {
    const w = warn.get(`${kind}/${ns}/${name}`);
    nodes.set(n.id, w === undefined ? n : { ...n, warning: w, title: `${n.title}\n${w}` });
  };
  const link = (source: string, target: string, label?: string, title?: string): void => {
    const id = `${source}->${target}`;
    if (!edges.has(id)) edges.set(id, { id, source, target, ...(label === undefined ? {} : { label }), ...(title === undefined ? {} : { title }) });
  };

  const volumesByName = new Map(input.volumes.map((v) => [v.metadata.name, v]));
  const podPasses = (p: KObject): boolean => (filters.namespace === '' || p.metadata.namespace === filters.namespace) && (filters.node === '' || p.spec?.nodeName === filters.node);
  const claimOk = (c: KObject): boolean => {
    if (filters.namespace !== '' && c.metadata.namespace !== filters.namespace) return false;
    if (filters.storageClass !== '' && (c.spec?.storageClassName ?? '') !== filters.storageClass) return false;
    if (filters.node !== '' && !claimNodes(c, volumesByName.get(c.spec?.volumeName ?? ''), input.pods).has(filters.node)) return false;
    return true;
  };
  const claims = input.claims.filter(claimOk);
  const claimKeys = new Set(claims.map(key));
  const pods = input.pods.filter((p) => podPasses(p) && (filters.storageClass === '' || input.claims.some((c) => claimKeys.has(key(c)) && usesClaim(p, c))));

  const { staged, published } = mountsFromJournal(input.calls);

  const wantNode = (name: string): boolean => filters.node === '' || filters.node === name;
  for (const n of input.nodes) {
    if (!wantNode(n.metadata.name)) continue;
    const ready = (n.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready')?.status === 'True';
    add({ id: nodeId.node(n.metadata.name), kind: 'node', label: n.metadata.name, sub: ready ? 'Ready' : 'NotReady', title: `Node ${n.metadata.name}` }, 'Node', '', n.metadata.name);
  }
  for (const sc of input.classes) {
    if (filters.storageClass !== '' && sc.metadata.name !== filters.storageClass) continue;
    if ((filters.namespace !== '' || filters.node !== '') && !claims.some((c) => c.spec?.storageClassName === sc.metadata.name)) continue;
    const provisioner = (sc as KObject & { provisioner?: string }).provisioner ?? '';
    add({ id: nodeId.class(sc.metadata.name), kind: 'class', label: sc.metadata.name, sub: provisioner, title: `StorageClass ${sc.metadata.name}\nprovisioner ${provisioner}` }, 'StorageClass', '', sc.metadata.name);
  }

  const shownVolumes = new Set<string>();
  for (const c of claims) {
    const ns = c.metadata.namespace ?? '';
    const id = nodeId.claim(ns, c.metadata.name);
    const size = c.status?.capacity?.storage ?? c.spec?.resources?.requests?.storage ?? '';
    const phase = c.metadata.deletionTimestamp ? 'Terminating' : (c.status?.phase ?? 'Pending');
    add({ id, kind: 'claim', label: `${ns}/${c.metadata.name}`, sub: `${phase} ${size}`.trim(), title: `PersistentVolumeClaim ${ns}/${c.metadata.name}\n${phase} ${size}` }, 'PersistentVolumeClaim', ns, c.metadata.name);
    const sc = c.spec?.storageClassName as string | undefined;
    if (sc && nodes.has(nodeId.class(sc))) link(nodeId.class(sc), id);
    const pvName = c.spec?.volumeName as string | undefined;
    if (pvName && volumesByName.has(pvName)) {
      shownVolumes.add(pvName);
      link(id, nodeId.volume(pvName));
    }
  }
  const filtered = filters.namespace !== '' || filters.node !== '' || filters.storageClass !== '';
  for (const pv of input.volumes) {
    const name = pv.metadata.name;
    if (!shownVolumes.has(name) && filtered) continue;
    const phase = pv.metadata.deletionTimestamp ? 'Terminating' : (pv.status?.phase ?? '');
    add({ id: nodeId.volume(name), kind: 'volume', label: name, sub: `${phase} ${pv.spec?.capacity?.storage ?? ''}`.trim(), title: `PersistentVolume ${name}\n${phase}` }, 'PersistentVolume', '', name);
    const csi = pv.spec?.csi as { driver?: string; volumeHandle?: string; volumeAttributes?: Record<string, string> } | undefined;
    if (csi?.volumeHandle === undefined) continue;
    const handle = csi.volumeHandle;
    const attrs = csi.volumeAttributes ?? {};
    const where = BACKEND_ATTRS.filter((a) => attrs[a] !== undefined).map((a) => `${a}=${attrs[a]}`);
    const bid = nodeId.backend(handle);
    nodes.set(bid, {
      id: bid,
      kind: 'backend',
      label: handle.length > 36 ? `${handle.slice(0, 16)}…${handle.slice(-16)}` : handle,
      sub: csi.driver ?? '',
      title: [`volume ${handle}`, `driver ${csi.driver ?? ''}`, ...where].join('\n'),
    });
    link(nodeId.volume(name), bid);
    // Nodes: where the journal says it is staged, and where pods using its claim run.
    const claimRef = pv.spec?.claimRef as { namespace?: string; name?: string } | undefined;
    const onNodes = new Set<string>();
    for (const k of staged.keys()) if (k.startsWith(`${handle}|`)) onNodes.add(k.slice(handle.length + 1));
    for (const p of input.pods) {
      if (claimRef && p.spec?.nodeName && p.metadata.namespace === claimRef.namespace && (p.spec?.volumes ?? []).some((v: { persistentVolumeClaim?: { claimName?: string } }) => v.persistentVolumeClaim?.claimName === claimRef.name)) onNodes.add(p.spec.nodeName);
    }
    for (const n of onNodes) {
      if (!nodes.has(nodeId.node(n))) continue;
      const path = staged.get(`${handle}|${n}`);
      link(bid, nodeId.node(n), path === undefined ? undefined : `staged ${shortPath(path, 2, 26)}`, path);
    }
  }

  const handleOfClaim = new Map<string, string>();
  for (const pv of input.volumes) {
    const ref = pv.spec?.claimRef as { namespace?: string; name?: string } | undefined;
    if (ref && pv.spec?.csi?.volumeHandle) handleOfClaim.set(`${ref.namespace}/${ref.name}`, pv.spec.csi.volumeHandle);
  }
  for (const p of pods) {
    const ns = p.metadata.namespace ?? '';
    const id = nodeId.pod(ns, p.metadata.name);
    const phase = p.metadata.deletionTimestamp ? 'Terminating' : (p.status?.phase ?? 'Pending');
    add({ id, kind: 'pod', label: `${ns}/${p.metadata.name}`, sub: phase, title: `Pod ${ns}/${p.metadata.name}\n${phase}` }, 'Pod', ns, p.metadata.name);
    const nodeName = p.spec?.nodeName as string | undefined;
    if (nodeName && nodes.has(nodeId.node(nodeName))) {
      const uid = p.metadata.uid ?? '\0';
      const paths: string[] = [];
      for (const v of p.spec?.volumes ?? []) {
        const handle = v.persistentVolumeClaim?.claimName ? handleOfClaim.get(`${ns}/${v.persistentVolumeClaim.claimName}`) : undefined;
        if (handle === undefined) continue;
        for (const t of published.get(`${handle}|${nodeName}`) ?? []) if (t.includes(uid)) paths.push(t);
      }
      link(nodeId.node(nodeName), id, paths.length === 0 ? undefined : `published ${paths.map((t) => shortPath(t, 2, 26)).join(', ')}`, paths.join('\n') || undefined);
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()].filter((e) => nodes.has(e.source) && nodes.has(e.target)) };
}
