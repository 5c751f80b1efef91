// A claim's journey: one timeline of its events, its volume's and its pods', and the CSI calls made
// for its volume (method, node, path, duration, status); its snapshots and the claims cloned or
// restored from it as a tree; and its usage from the kubelet's volume stats on the node that mounts it.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Api } from './api.js';
import { bytes, metricValues, time } from './format.js';
import { usesClaim } from './model.js';
import { type CsiCall, eventTime, type KEvent, type KObject } from './types.js';

export interface JourneyProps {
  api: Api;
  namespace: string;
  name: string;
  claims: KObject[];
  volumes: KObject[];
  pods: KObject[];
  events: KEvent[];
  snapshots: KObject[];
  onClose: () => void;
  onOpenClaim: (namespace: string, name: string) => void;
}

interface Row {
  at: string;
  seq: number;
  source: string;
  what: string;
  detail: string;
  duration?: number;
  code?: string;
  warning: boolean;
}

function SnapshotTree(props: { ns: string; claim: string; claims: KObject[]; snapshots: KObject[]; depth: number; onOpenClaim: JourneyProps['onOpenClaim'] }) {
  if (props.depth > 6) return null;
  const inNs = (o: KObject): boolean => o.metadata.namespace === props.ns;
  const snaps = props.snapshots.filter((s) => inNs(s) && s.spec?.source?.persistentVolumeClaimName === props.claim);
  const fromSource = (kind: string, name: string) =>
    props.claims.filter((c) => {
      const src = c.spec?.dataSourceRef ?? c.spec?.dataSource;
      return inNs(c) && src?.kind === kind && src?.name === name;
    });
  const clones = fromSource('PersistentVolumeClaim', props.claim);
  if (snaps.length === 0 && clones.length === 0) return null;
  const claimItem = (c: KObject) => (
    <li key={`c-${c.metadata.name}`}>
      <button type="button" class="link" onClick={() => props.onOpenClaim(props.ns, c.metadata.name)}>
        claim {c.metadata.name}
      </button>{' '}
      <span class="muted">{c.status?.phase ?? 'Pending'}</span>
      <SnapshotTree {...props} claim={c.metadata.name} depth={props.depth + 1} />
    </li>
  );
  return (
    <ul class="tree">
      {snaps.map((s) => (
        <li key={`s-${s.metadata.name}`} data-testid="snapshot">
          snapshot {s.metadata.name} <span class="muted">{s.status?.readyToUse === true ? 'ready' : 'not ready'}</span>
          <ul class="tree">{fromSource('VolumeSnapshot', s.metadata.name).map(claimItem)}</ul>
        </li>
      ))}
      {clones.map(claimItem)}
    </ul>
  );
}

export function Journey(props: JourneyProps) {
  const claim = props.claims.find((c) => c.metadata.namespace === props.namespace && c.metadata.name === props.name);
  const pv = props.volumes.find((v) => v.metadata.name === claim?.spec?.volumeName);
  const handle: string | undefined = pv?.spec?.csi?.volumeHandle;
  const pods = claim === undefined ? [] : props.pods.filter((p) => usesClaim(p, claim));
  const [calls, setCalls] = useState<CsiCall[]>([]);
  const [usage, setUsage] = useState<{ used?: number; capacity?: number; node?: string }>({});
  const [error, setError] = useState<string | undefined>(undefined);
  const nodeName: string | undefined = pods.find((p) => p.spec?.nodeName)?.spec?.nodeName;
  const top = useRef<HTMLElement>(null);
  useEffect(() => top.current?.scrollIntoView({ block: 'nearest' }), [props.namespace, props.name]);

  useEffect(() => {
    let live = true;
    const names = [handle, pv?.metadata.name].filter((v): v is string => v !== undefined);
    const load = async (): Promise<void> => {
      try {
        if (names.length > 0) {
          const q = names.map((n) => `volume=${encodeURIComponent(n)}`).join('&');
          const list = await props.api.json<{ items: CsiCall[] }>(`/ui/api/csi-calls?${q}`);
          if (live) setCalls(list.items);
        }
        if (nodeName !== undefined) {
          const text = await props.api.text(`/api/v1/nodes/${encodeURIComponent(nodeName)}/proxy/metrics`);
          const mine = (m: { labels: Record<string, string> }): boolean => m.labels['namespace'] === props.namespace && m.labels['persistentvolumeclaim'] === props.name;
          const used = metricValues(text, 'kubelet_volume_stats_used_bytes').find(mine)?.value;
          const capacity = metricValues(text, 'kubelet_volume_stats_capacity_bytes').find(mine)?.value;
          if (live) setUsage({ ...(used === undefined ? {} : { used }), ...(capacity === undefined ? {} : { capacity }), node: nodeName });
        }
        if (live) setError(undefined);
      } catch (err) {
        if (live) setError(err instanceof Error ? err.message : String(err));
      }
    };
    void load();
    const timer = setInterval(() => void load(), 2000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [handle, pv?.metadata.name, nodeName, props.namespace, props.name]);

  if (claim === undefined) {
    return (
      <section class="card" aria-label="Journey">
        <p>
          Claim {props.namespace}/{props.name} does not exist (any more).{' '}
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        </p>
      </section>
    );
  }
  const about = (e: KEvent): boolean => {
    const o = e.involvedObject;
    if (o === undefined) return false;
    if (o.kind === 'PersistentVolumeClaim') return o.namespace === props.namespace && o.name === props.name;
    if (o.kind === 'PersistentVolume') return pv !== undefined && o.name === pv.metadata.name;
    if (o.kind === 'Pod') return pods.some((p) => p.metadata.namespace === o.namespace && p.metadata.name === o.name);
    return false;
  };
  const rows: Row[] = [
    ...props.events.filter(about).map(
      (e): Row => ({
        at: eventTime(e),
        seq: 0,
        source: `${e.involvedObject?.kind ?? ''} ${e.involvedObject?.name ?? ''}`,
        what: e.reason ?? '',
        detail: `${e.message ?? ''}${(e.count ?? 1) > 1 ? ` (×${e.count})` : ''}`,
        warning: e.type === 'Warning',
      }),
    ),
    ...calls.map(
      (c): Row => ({
        at: c.startTime,
        seq: c.seq,
        source: `CSI${c.node === undefined ? '' : ` on ${c.node}`}`,
        what: c.method,
        detail: [c.stagingTargetPath && `staging ${c.stagingTargetPath}`, c.targetPath && `target ${c.targetPath}`, c.message].filter(Boolean).join(' · '),
        duration: c.durationMs,
        code: c.code,
        warning: c.code !== 'OK',
      }),
    ),
    // Events carry whole seconds (truncated), calls milliseconds: compared as instants, an event
    // comes before the calls of its second, which is where it happened at the latest.
  ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || a.seq - b.seq);

  return (
    <section class="card" aria-label="Journey" data-testid="journey" ref={top}>
      <div class="filters">
        <h2 class="title">
          Journey of {props.namespace}/{props.name}
        </h2>
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
      <p>
        {claim.status?.phase ?? 'Pending'} · requested {claim.spec?.resources?.requests?.storage ?? '—'} · class {claim.spec?.storageClassName ?? '—'} · volume {pv?.metadata.name ?? '—'}
        {handle !== undefined && <> · handle {handle}</>}
      </p>
      <p data-testid="usage">
        Usage:{' '}
        {usage.capacity === undefined ? (
          <span class="muted">no volume stats yet{nodeName === undefined ? ' (not mounted by a pod)' : ''}</span>
        ) : (
          <>
            {bytes(usage.used)} of {bytes(usage.capacity)} on {usage.node}
          </>
        )}
      </p>
      {error !== undefined && <p role="alert">{error}</p>}
      <h3>Snapshots and clones</h3>
      <SnapshotTree ns={props.namespace} claim={props.name} claims={props.claims} snapshots={props.snapshots} depth={0} onOpenClaim={props.onOpenClaim} />
      <h3>Timeline</h3>
      <table data-testid="timeline">
        <thead>
          <tr>
            <th>time</th>
            <th>from</th>
            <th>what</th>
            <th class="num">ms</th>
            <th>status</th>
            <th>detail</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={`${r.at}-${r.seq}-${i}`} class={r.warning ? 'warning' : ''} data-what={r.what}>
              <td>{time(r.at)}</td>
              <td>{r.source}</td>
              <td>{r.what}</td>
              <td class="num">{r.duration === undefined ? '' : r.duration.toFixed(1)}</td>
              <td class={r.code === undefined ? '' : r.code === 'OK' ? 'code-ok' : 'code-bad'}>{r.code ?? ''}</td>
              <td class="wrap">{r.detail}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
