import { quantityValue } from '../control/api/quantity.js';

/** A size flag ("20Gi", "512Mi", "1073741824") in bytes: Kubernetes' quantity syntax, and positive. */
export function parseQuantity(text: string): number {
  let bytes: number;
  try {
    bytes = quantityValue(text.trim());
  } catch {
    throw new Error(`"${text}" is not a size (examples: 20Gi, 512Mi, 1073741824)`);
  }
  if (bytes <= 0) throw new Error(`"${text}" is not a usable size`);
  return bytes;
}
