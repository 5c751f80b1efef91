// Capacity per Ceph pool, beside the node pools: what /ui/api/ceph-pools reads from Ceph itself
// (the Ceph drivers publish no CSIStorageCapacity): per cluster and pool, the StorageClasses that
// provision into it, used (the pool's stored bytes), provisioned (its PVs' sizes) and free
// (max_avail), as one bar each; a cluster that could not be asked shows why. Without a Ceph
// backend the server does not serve the endpoint (404) and the table is not shown.
import { useEffect, useState } from 'preact/hooks';
import { type Api, ApiFailure } from './api.js';
import { bytes } from './format.js';
import { UsageBar } from './usage-bar.js';

interface CephPoolRow {
  clusterID: string;
  pool: string;
  filesystem?: string;
  storageClasses: string[];
  provisionedBytes: number;
  volumes: number;
  usedBytes?: number;
  freeBytes?: number;
  error?: string;
}

export function CephPools(props: { api: Api }) {
  /** undefined: not loaded yet; null: the server has no Ceph backend. */
  const [rows, setRows] = useState<CephPoolRow[] | null | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);
  useEffect(() => {
    let live = true;
    const load = (): void => {
      props.api.json<{ items: CephPoolRow[] }>('/ui/api/ceph-pools').then(
        (list) => {
          if (!live) return;
          setRows(list.items);
          setFailure(undefined);
        },
        (e: unknown) => {
          if (!live) return;
          if (e instanceof ApiFailure && e.status === 404) setRows(null);
          else setFailure(e instanceof Error ? e.message : String(e));
        },
      );
    };
    load();
    const timer = setInterval(load, 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [props.api]);
  if (rows === null) return null;
  return (
    <section class="card" aria-label="Ceph pools">
      <h2>Ceph pools</h2>
      <p class="muted">
        Per Ceph pool (read from the cluster's <code>df</code>): <span class="swatch used" /> used (stored) · <span class="swatch provisioned" /> provisioned (PV sizes) · <span class="swatch free" /> free (max_avail)
      </p>
      {failure !== undefined && <p role="alert">{failure}</p>}
      {rows === undefined && failure === undefined && <p class="muted">Asking the clusters…</p>}
      {rows !== undefined && rows.length === 0 && <p class="muted">No StorageClass provisions into a Ceph pool yet.</p>}
      <table data-testid="ceph-pools">
        <thead>
          <tr>
            <th>cluster</th>
            <th>pool</th>
            <th>class</th>
            <th class="num">used</th>
            <th class="num">provisioned</th>
            <th class="num">free</th>
            <th class="hide-narrow wide" />
          </tr>
        </thead>
        <tbody>
          {(rows ?? []).map((p) => {
            const pool = p.pool || `(data pool of ${p.filesystem ?? '?'})`;
            return (
              <tr key={`${p.clusterID}|${p.pool}|${p.filesystem ?? ''}`} data-cluster={p.clusterID} data-pool={p.pool}>
                <td class="wrap">{p.clusterID}</td>
                <td class="wrap">
                  {pool}
                  {p.filesystem !== undefined && p.pool !== '' && <span class="muted"> ({p.filesystem})</span>}
                  {p.error !== undefined && <div class="error">{p.error}</div>}
                </td>
                <td>{p.storageClasses.join(', ')}</td>
                <td class="num">{bytes(p.usedBytes)}</td>
                <td class="num" title={`${p.volumes} volume(s)`}>
                  {bytes(p.provisionedBytes)}
                </td>
                <td class="num">{bytes(p.freeBytes)}</td>
                <td class="hide-narrow">
                  <UsageBar used={p.usedBytes} provisioned={p.provisionedBytes} free={p.freeBytes} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
