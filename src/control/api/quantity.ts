// Kubernetes resource quantities ("1Gi", "500m", "1.5", "2e3"): parsing, exact comparison and the
// canonical form the API server stores ("1024Mi" is stored as "1Gi", "0.5" as "500m").
//
// Values are kept exactly as BigInt nano-units, so 1Ei and 1n are both representable and
// comparisons never suffer floating-point rounding. Precision below 1n is rounded up, as in
// Kubernetes.

export type QuantityFormat = 'BinarySI' | 'DecimalSI' | 'DecimalExponent';

export interface ParsedQuantity {
  /** The value in units of 10^-9. */
  nanos: bigint;
  /** How the value was written; decides the suffix family of the canonical form. */
  format: QuantityFormat;
}

/** The messages Kubernetes gives for the three ways a quantity can be malformed. */
export const QUANTITY_FORMAT_MESSAGE =
  "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const NUMERIC_MESSAGE = 'unable to parse numeric part of quantity';
const SUFFIX_MESSAGE = "unable to parse quantity's suffix";

export class QuantityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantityError';
  }
}

const NANOS_PER_UNIT = 1_000_000_000n;
const SHAPE = /^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/;
const NUMBER = /^([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))$/;
const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;
const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
/** Exponents beyond this are refused rather than turned into astronomically large BigInts. */
const MAX_EXPONENT = 100;

function pow(base: bigint, exponent: number): bigint {
  return base ** BigInt(exponent);
}

function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  const q = numerator / denominator;
  return numerator % denominator > 0n ? q + 1n : q;
}

/** Parses a quantity as Kubernetes does; JSON numbers are accepted like their decimal text. */
export function parseQuantity(input: string | number): ParsedQuantity {
  const text = typeof input === 'number' ? String(input) : input.trim();
  const shape = SHAPE.exec(text);
  if (!shape) throw new QuantityError(QUANTITY_FORMAT_MESSAGE);
  const number = NUMBER.exec(shape[1] ?? '');
  if (!number) throw new QuantityError(NUMERIC_MESSAGE);
  const suffix = shape[2] ?? '';

  let format: QuantityFormat;
  let binaryPower = 0; // value multiplier 1024^binaryPower
  let exponent = 0; // value multiplier 10^exponent
  const binaryIndex = BINARY_SUFFIXES.indexOf(suffix as (typeof BINARY_SUFFIXES)[number]);
  if (suffix !== '' && binaryIndex > 0) {
    format = 'BinarySI';
    binaryPower = binaryIndex;
  } else if (suffix in DECIMAL_SUFFIXES) {
    format = 'DecimalSI';
    exponent = DECIMAL_SUFFIXES[suffix] ?? 0;
  } else if (/^[eE][+-]?[0-9]+$/.test(suffix)) {
    format = 'DecimalExponent';
    exponent = Number(suffix.slice(1));
    if (Math.abs(exponent) > MAX_EXPONENT) throw new QuantityError(NUMERIC_MESSAGE);
  } else {
    throw new QuantityError(SUFFIX_MESSAGE);
  }

  const sign = number[1] === '-' ? -1n : 1n;
  const whole = number[2] ?? '0';
  const fraction = number[3] ?? number[4] ?? '';
  const mantissa = BigInt(whole + fraction);
  // value = mantissa / 10^fraction.length * 1024^binaryPower * 10^exponent, in nano-units.
  const tenPower = 9 + exponent - fraction.length;
  let nanos = mantissa * pow(1024n, binaryPower);
  nanos = tenPower >= 0 ? nanos * pow(10n, tenPower) : ceilDiv(nanos, pow(10n, -tenPower));
  return { nanos: sign * nanos, format };
}

export function isQuantity(input: unknown): boolean {
  if (typeof input !== 'string' && typeof input !== 'number') return false;
  try {
    parseQuantity(input);
    return true;
  } catch {
    return false;
  }
}

function formatDecimal(nanos: bigint, scientific: boolean): string {
  if (nanos === 0n) return '0';
  const sign = nanos < 0n ? '-' : '';
  let mantissa = nanos < 0n ? -nanos : nanos;
  // Largest exponent (a multiple of 3 from -9 up) that keeps the mantissa an integer.
  let exponent = -9;
  while (mantissa % 1000n === 0n && (scientific || exponent < 18)) {
    mantissa /= 1000n;
    exponent += 3;
  }
  if (scientific) return `${sign}${mantissa}${exponent === 0 ? '' : `e${exponent}`}`;
  const suffix = Object.entries(DECIMAL_SUFFIXES).find(([, e]) => e === exponent)?.[0] ?? '';
  return `${sign}${mantissa}${suffix}`;
}

/** The canonical text Kubernetes would store and print for a parsed quantity. */
export function formatQuantity(q: ParsedQuantity): string {
  if (q.format === 'BinarySI') {
    const abs = q.nanos < 0n ? -q.nanos : q.nanos;
    // Kubernetes prints small or fractional binary quantities in decimal: 0.5Ki is "512", not "0.5Ki".
    if (abs % NANOS_PER_UNIT === 0n && abs >= 1024n * NANOS_PER_UNIT) {
      let value = abs / NANOS_PER_UNIT;
      let power = 0;
      while (value % 1024n === 0n && power < BINARY_SUFFIXES.length - 1) {
        value /= 1024n;
        power += 1;
      }
      return `${q.nanos < 0n ? '-' : ''}${value}${BINARY_SUFFIXES[power]}`;
    }
    return formatDecimal(q.nanos, false);
  }
  return formatDecimal(q.nanos, q.format === 'DecimalExponent');
}

export function canonicalQuantity(input: string | number): string {
  return formatQuantity(parseQuantity(input));
}

/** Exact comparison: negative, zero or positive like a sort comparator. */
export function compareQuantities(a: string | number, b: string | number): number {
  const x = parseQuantity(a).nanos;
  const y = parseQuantity(b).nanos;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The value rounded up to an integer (Kubernetes' Quantity.Value()), e.g. bytes of "1Gi". */
export function quantityValue(input: string | number): number {
  const { nanos } = parseQuantity(input);
  const value = nanos >= 0n ? ceilDiv(nanos, NANOS_PER_UNIT) : -ceilDiv(-nanos, NANOS_PER_UNIT);
  const result = Number(value);
  if (!Number.isSafeInteger(result)) throw new QuantityError(`quantity ${String(input)} is too large for an exact number`);
  return result;
}

/** A byte count as the canonical binary quantity a provisioner puts in a PV's capacity. */
export function bytesToQuantity(bytes: number): string {
  if (!Number.isSafeInteger(bytes)) throw new QuantityError(`${bytes} is not a whole number of bytes`);
  return formatQuantity({ nanos: BigInt(bytes) * NANOS_PER_UNIT, format: 'BinarySI' });
}

/** Rewrites every valid quantity of a resource list in canonical form; invalid ones are left for validation. */
export function canonicalizeResourceList(list: Record<string, string | number> | undefined): void {
  for (const [name, value] of Object.entries(list ?? {})) {
    if (list && isQuantity(value)) list[name] = canonicalQuantity(value);
  }
}
