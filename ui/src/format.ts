// Small formatting helpers shared by the views.
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A Kubernetes quantity ("1Gi", "500M", "1073741824") in bytes; NaN when it is not one. */
export function quantity(q: string | undefined): number {
  if (q === undefined) return Number.NaN;
  const m = /^([0-9.]+)([KMGTPE]i?|[kmun])?$/.exec(q.trim());
  if (m?.[1] === undefined) return Number.NaN;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  const bin: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  const dec: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, m: 1e-3, u: 1e-6, n: 1e-9 };
  return n * (bin[suffix] ?? dec[suffix] ?? 1);
}

export function time(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString(undefined, { hour12: false });
}

/** The values of one Prometheus metric, by its labels. */
export function metricValues(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{\s]+(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m?.[2] === undefined) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) if (l[1] !== undefined) labels[l[1]] = (l[2] ?? '').replace(/\\(.)/g, '$1');
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}
