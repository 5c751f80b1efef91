// Readable logs for a process in the foreground (`stowage up`): pino's JSON lines turned into
// short human lines, without a dependency:
//   12:04:05 INFO  [pv-controller] provisioned volume pv=pvc-1234 claim=default/data
// Colours only on a terminal, and never with NO_COLOR.
import { pino, type Logger } from 'pino';

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\x1b[90m'],
  20: ['DEBUG', '\x1b[36m'],
  30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'],
  50: ['ERROR', '\x1b[31m'],
  60: ['FATAL', '\x1b[35m'],
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

/** Fields every line has, or that name where the line comes from (shown in brackets). */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);
const COMPONENT_KEYS = ['component', 'controller', 'name'];

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value instanceof Object && 'message' in value && typeof (value as { message: unknown }).message === 'string') {
    return JSON.stringify((value as { message: string }).message);
  }
  return JSON.stringify(value) ?? String(value);
}

function clock(time: unknown): string {
  const d = typeof time === 'number' ? new Date(time) : new Date();
  return d.toTimeString().slice(0, 8);
}

/** One pino JSON line → one human line (no newline). Unparseable input is returned as it is. */
export function humanLine(json: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const [label, tint] = LEVELS[Number(rec['level'])] ?? ['LOG  ', ''];
  const component = COMPONENT_KEYS.map((k) => rec[k]).find((v) => typeof v === 'string');
  const parts: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (HIDDEN.has(k) || COMPONENT_KEYS.includes(k) || v === undefined) continue;
    if (k === 'err' && v instanceof Object) {
      parts.push(`err=${formatValue((v as { message?: unknown }).message ?? v)}`);
      continue;
    }
    parts.push(`${k}=${formatValue(v)}`);
  }
  const time = clock(rec['time']);
  const level = color ? `${tint}${label}${RESET}` : label;
  const where = component ? `[${String(component)}] ` : '';
  const fields = parts.length > 0 ? ` ${color ? DIM : ''}${parts.join(' ')}${color ? RESET : ''}` : '';
  return `${color ? DIM : ''}${time}${color ? RESET : ''} ${level} ${where}${String(rec['msg'] ?? '')}${fields}`;
}

/** A pino logger that writes human lines to `out` (default stdout). */
export function humanLogger(level: string, out: NodeJS.WritableStream = process.stdout, bindings: Record<string, unknown> = {}): Logger {
  const color = (out as { isTTY?: boolean }).isTTY === true && !process.env['NO_COLOR'];
  const stream = {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line.trim() !== '') out.write(`${humanLine(line, color)}\n`);
    },
  };
  return pino({ level, base: bindings }, stream);
}
