// --grace-period's value: a Go-style duration ("1h", "90m", "1h30m", "45s", "0") or a bare number
// of seconds, as both kubectl (seconds) and Kubernetes' duration flags are spelt.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  if (t === '' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(t)) return undefined;
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0);
  return Number.isFinite(total) ? Math.round(total) : undefined;
}
