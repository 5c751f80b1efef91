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
const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;
const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const SUFFIX_CHARS = 'eEinumkKMGTP';
/** Kubernetes caps binary quantities at the largest int64 (a simple cap, as in ParseQuantity). */
const MAX_BINARY_NANOS = (2n ** 63n - 1n) * NANOS_PER_UNIT;
/**
 * Values of 10^MAX_EXPONENT and beyond are refused rather than turned into astronomically large
 * BigInts. Kubernetes would accept them (as a scale of up to 2^31); nothing measured in bytes,
 * cores or objects comes anywhere near.
 */
const MAX_EXPONENT = 1000;

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

function pow(base: bigint, exponent: number): bigint {
  return base ** BigInt(exponent);
}

function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  const q = numerator / denominator;
  return numerator % denominator > 0n ? q + 1n : q;
}

interface Scanned {
  positive: boolean;
  /** The number as written, sign and leading zeros included ("-01.5"): what the slow path parses. */
  value: string;
  /** Integer digits without leading zeros ("0" when none). */
  num: string;
  /** Fraction digits. */
  denom: string;
  suffix: string;
}

/** apimachinery's parseQuantityString: a scanner, not a regular expression, with its quirks ("+", "." and "1." are numbers). */
function scan(str: string): Scanned {
  let positive = true;
  let pos = 0;
  const end = str.length;
  if (str[0] === '-') {
    positive = false;
    pos++;
  } else if (str[0] === '+') {
    pos++;
  }
  while (pos < end && str[pos] === '0') pos++;
  if (pos >= end) return { positive, value: '0', num: '0', denom: '', suffix: '' };
  let i = pos;
  while (i < end && isDigit(str[i])) i++;
  let num = str.slice(pos, i);
  if (i >= end) return { positive, value: str, num, denom: '', suffix: '' };
  pos = i;
  if (num === '') num = '0';
  let denom = '';
  if (str[pos] === '.') {
    pos++;
    i = pos;
    while (i < end && isDigit(str[i])) i++;
    denom = str.slice(pos, i);
    if (i >= end) return { positive, value: str, num, denom, suffix: '' };
    pos = i;
  }
  const value = str.slice(0, pos);
  const suffixStart = pos;
  while (pos < end && SUFFIX_CHARS.includes(str[pos] ?? '')) pos++;
  if (pos < end && (str[pos] === '-' || str[pos] === '+')) pos++;
  while (pos < end && isDigit(str[pos])) pos++;
  // A character that is neither a suffix letter, a sign nor a digit, or one out of that order.
  if (pos < end) throw new QuantityError(QUANTITY_FORMAT_MESSAGE);
  return { positive, value, num, denom, suffix: str.slice(suffixStart) };
}

/** quantitySuffixer.interpret: decimal and binary suffixes by table, then "e<int>"/"E<int>". */
function interpret(suffix: string): { base: 2 | 10; exponent: number; format: QuantityFormat } {
  const decimal = DECIMAL_SUFFIXES[suffix];
  if (Object.hasOwn(DECIMAL_SUFFIXES, suffix) && decimal !== undefined) return { base: 10, exponent: decimal, format: 'DecimalSI' };
  const binary = BINARY_SUFFIXES.indexOf(suffix as (typeof BINARY_SUFFIXES)[number]);
  if (binary > 0) return { base: 2, exponent: binary * 10, format: 'BinarySI' };
  if (suffix.length > 1 && (suffix[0] === 'e' || suffix[0] === 'E')) {
    const digits = suffix.slice(1);
    // strconv.ParseInt(…, 10, 64), then a cast to int32 (which wraps, as Go's does).
    if (/^[+-]?[0-9]+$/.test(digits)) {
      const parsed = BigInt(digits);
      if (parsed >= -(2n ** 63n) && parsed < 2n ** 63n) return { base: 10, exponent: Number(BigInt.asIntN(32, parsed)), format: 'DecimalExponent' };
    }
  }
  throw new QuantityError(SUFFIX_MESSAGE);
}

/**
 * Parses a quantity exactly as Kubernetes' resource.ParseQuantity does: no surrounding space, an
 * optional sign, digits with an optional fraction, then a suffix. JSON numbers are accepted like
 * their decimal text. (A JSON *string* with surrounding space is trimmed by the API decoding
 * first, as Quantity.UnmarshalJSON does: see decodeQuantity.)
 */
export function parseQuantity(input: string | number): ParsedQuantity {
  const str = typeof input === 'number' ? String(input) : input;
  if (str === '') throw new QuantityError(QUANTITY_FORMAT_MESSAGE);
  if (str === '0') return { nanos: 0n, format: 'DecimalSI' };
  const { positive, value, num, denom, suffix } = scan(str);
  const { base, exponent, format: written } = interpret(suffix);
  let format = written;
  // Where Kubernetes takes its exact-decimal (slow) path, the number is parsed as written, and a
  // number without a single digit ("." with a small suffix) is refused.
  const slow = base === 2 ? denom !== '' || 15 - num.length - Math.floor((exponent * 3) / 10) - 1 < 0 : 18 - (num.length + denom.length) < 0 || exponent - denom.length < -9;
  if (slow && !/[0-9]/.test(value)) throw new QuantityError(NUMERIC_MESSAGE);
  if (base === 10 && exponent >= MAX_EXPONENT) throw new QuantityError(NUMERIC_MESSAGE);

  const mantissa = BigInt(num + denom);
  let nanos: bigint;
  if (base === 2) {
    // value = mantissa / 10^denom * 2^exponent, in nano-units, rounded up.
    nanos = ceilDiv(mantissa * pow(2n, exponent) * NANOS_PER_UNIT, pow(10n, denom.length));
  } else {
    const tenPower = 9 + exponent - denom.length;
    if (tenPower >= 0) nanos = mantissa * pow(10n, tenPower);
    // Below 1n: rounded up to 1n, as Kubernetes does (so a tiny request still asks for something).
    else if (-tenPower > num.length + denom.length) nanos = mantissa === 0n ? 0n : 1n;
    else nanos = ceilDiv(mantissa, pow(10n, -tenPower));
  }
  if (format === 'BinarySI' && nanos > MAX_BINARY_NANOS) nanos = MAX_BINARY_NANOS;
  if (format === 'BinarySI' && nanos > 0n && nanos < NANOS_PER_UNIT) format = 'DecimalSI';
  return { nanos: positive ? nanos : -nanos, format };
}

/** A quantity as the API decodes it from JSON or YAML: surrounding white space trimmed, then parseQuantity. */
/** The quantity, or undefined when there is none or it does not parse (admission reads what validation already refused). */
export function parseQuantityOrUndefined(input: string | number | undefined): ParsedQuantity | undefined {
  if (input === undefined) return undefined;
  try {
    return parseQuantity(input);
  } catch {
    return undefined;
  }
}

export function decodeQuantity(input: string | number): ParsedQuantity {
  return parseQuantity(typeof input === 'number' ? input : trimSpace(input));
}

/** Go's strings.TrimSpace: Unicode white space at both ends. */
function trimSpace(text: string): string {
  return text.replace(/^[\s\u0085]+|[\s\u0085]+$/gu, '');
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
  const digits = (nanos < 0n ? -nanos : nanos).toString();
  // Largest exponent (a multiple of 3 from -9 up; at most 18 with a suffix) that keeps the
  // mantissa an integer: counted on the digits (dividing a huge BigInt by 1000 again and again
  // would take quadratic time).
  let zeros = 0;
  while (zeros < digits.length - 1 && digits[digits.length - 1 - zeros] === '0') zeros++;
  const groups = scientific ? Math.floor(zeros / 3) : Math.min(Math.floor(zeros / 3), 9);
  const mantissa = digits.slice(0, digits.length - 3 * groups);
  const exponent = -9 + 3 * groups;
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

/** A quantity field's value as the API server stores it: canonical if it decodes, untouched (for validation to report) if not. */
export function canonicalizeQuantityField<T>(value: T): T | string {
  if (typeof value !== 'string' && typeof value !== 'number') return value;
  try {
    return formatQuantity(decodeQuantity(value));
  } catch {
    return value;
  }
}

/**
 * Rewrites every valid quantity of a resource list in canonical form, as the API server stores
 * it (decoded as Quantity.UnmarshalJSON does: " 1Gi" becomes "1Gi"); invalid ones are left for
 * validation.
 */
export function canonicalizeResourceList(list: Record<string, string | number> | undefined): void {
  for (const [name, value] of Object.entries(list ?? {})) {
    if (!list || (typeof value !== 'string' && typeof value !== 'number')) continue;
    try {
      list[name] = formatQuantity(decodeQuantity(value));
    } catch {
      // left as it is, for validation to report
    }
  }
}
