/** Parses Kubernetes-style quantities ("20Gi", "512Mi", "1G", "1048576") into bytes. */
const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

export function parseQuantity(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kMGTP]i?|Ki)?$/.exec(text.trim());
  const unit = UNITS[m?.[2] ?? ''];
  if (!m || unit === undefined) throw new Error(`"${text}" is not a size (examples: 20Gi, 512Mi, 1073741824)`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`"${text}" is not a usable size`);
  return bytes;
}
