// The pods: phase, node, readiness, restarts, the claims they mount and where the node mounted
// them (the CSI publish paths of the journal), their latest event; and a delete button (click
// twice: the second click confirms). A pod's name opens its events and its containers' output
// (pod-logs.tsx, followed live).
import { useState } from 'preact/hooks';
import { type Api, ApiFailure } from './api.js';
import { time } from './format.js';
import { mountsFromJournal } from './model.js';
import { PodLogs } from './pod-logs.js';
import { type CsiCall, eventTime, type KEvent, type KObject, key } from './types.js';

export function Pods(props: { api: Api; pods: KObject[]; events: KEvent[]; calls: CsiCall[] }) {
  const { published } = mountsFromJournal(props.calls);
  const mountsOf = (p: KObject): string[] => {
    const uid = p.metadata.uid;
    if (uid === undefined) return [];
    return [...published.entries()].flatMap(([k, paths]) => (k.endsWith(`|${p.spec?.nodeName ?? ''}`) ? paths.filter((t) => t.includes(`/${uid}/`)) : []));
  };
  const [confirm, setConfirm] = useState<string | undefined>(undefined);
  const [open, setOpen] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const byPod = new Map<string, KEvent[]>();
  for (const e of props.events) {
    if (e.involvedObject?.kind !== 'Pod') continue;
    const k = `${e.involvedObject.namespace ?? ''}/${e.involvedObject.name ?? ''}`;
    byPod.set(k, [...(byPod.get(k) ?? []), e]);
  }
  for (const list of byPod.values()) list.sort((a, b) => Date.parse(eventTime(a)) - Date.parse(eventTime(b)));
  const del = async (p: KObject): Promise<void> => {
    const k = key(p);
    if (confirm !== k) {
      setConfirm(k);
      return;
    }
    setConfirm(undefined);
    try {
      await props.api.request(`/api/v1/namespaces/${encodeURIComponent(p.metadata.namespace ?? 'default')}/pods/${encodeURIComponent(p.metadata.name)}`, { method: 'DELETE' });
      setError(undefined);
    } catch (err) {
      setError(err instanceof ApiFailure ? (err.body.message ?? err.message) : String(err));
    }
  };
  const pods = [...props.pods].sort((a, b) => key(a).localeCompare(key(b)));
  return (
    <section class="card" aria-label="Pods">
      {error !== undefined && <p role="alert">{error}</p>}
      {pods.length === 0 && <p class="muted">No pods.</p>}
      <table data-testid="pods">
        <thead>
          <tr>
            <th>pod</th>
            <th>status</th>
            <th class="hide-narrow">node</th>
            <th class="hide-narrow">ready</th>
            <th class="hide-narrow">claims</th>
            <th class="hide-narrow">mounted at (node)</th>
            <th>latest event</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {pods.map((p) => {
            const statuses: { ready?: boolean; restartCount?: number }[] = p.status?.containerStatuses ?? [];
            const events = byPod.get(key(p)) ?? [];
            const e = events.at(-1);
            const claims = (p.spec?.volumes ?? []).flatMap((v: { persistentVolumeClaim?: { claimName: string } }) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
            return [
              <tr key={key(p)} data-pod={key(p)}>
                <td>
                  <button type="button" class="link" aria-expanded={open === key(p)} onClick={() => setOpen(open === key(p) ? undefined : key(p))}>
                    {key(p)}
                  </button>
                </td>
                <td>{p.metadata.deletionTimestamp ? 'Terminating' : (p.status?.phase ?? 'Pending')}</td>
                <td class="hide-narrow">{p.spec?.nodeName ?? ''}</td>
                <td class="hide-narrow">
                  {statuses.filter((s) => s.ready).length}/{(p.spec?.containers ?? []).length}
                  {statuses.some((s) => (s.restartCount ?? 0) > 0) ? ` (${statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0)} restarts)` : ''}
                </td>
                <td class="hide-narrow">{claims.join(', ')}</td>
                <td class="hide-narrow wrap" data-testid="mounts">
                  {mountsOf(p).map((t) => (
                    <div key={t}>{t}</div>
                  ))}
                </td>
                <td class={e?.type === 'Warning' ? 'wrap warning' : 'wrap'}>{e === undefined ? '' : `${time(eventTime(e))} ${e.reason ?? ''}: ${e.message ?? ''}`}</td>
                <td>
                  <button type="button" class="danger" onClick={() => void del(p)}>
                    {confirm === key(p) ? 'Confirm delete' : 'Delete'}
                  </button>
                </td>
              </tr>,
              open === key(p) && (
                <tr key={`${key(p)}/events`} data-events={key(p)}>
                  <td colSpan={8} class="wrap">
                    {events.length === 0 && <span class="muted">No events.</span>}
                    {events.map((ev) => (
                      <div key={ev.metadata.name} class={ev.type === 'Warning' ? 'warning' : ''}>
                        {time(eventTime(ev))} {ev.type} {ev.reason}: {ev.message}
                        {(ev.count ?? 1) > 1 ? ` (×${ev.count})` : ''}
                      </div>
                    ))}
                    {p.spec?.nodeName ? <PodLogs api={props.api} pod={p} /> : <p class="muted">Not on a node yet: no output.</p>}
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </section>
  );
}
