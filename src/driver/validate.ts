import { isAbsolute, normalize } from 'node:path';
import { InvalidArgumentError } from '../csi/errors.js';
import type { AccessMode, Capability } from './backends/backend.js';

/**
 * Argument validation shared by every CSI service. Each check throws InvalidArgumentError with a
 * message naming the field and what is wrong, before any lock is taken or anything is touched.
 */

/** CSI's size limit for names and IDs. */
const MAX_ID_BYTES = 128;
const MAX_PATH_BYTES = 4096;
/** NAME_MAX: no filesystem here takes a longer file name. */
const MAX_NAME_BYTES = 255;

/** A name or ID: required, bounded, and never something a path could be built from unsafely. */
export function requireIdentifier(field: string, value: string | undefined | null): string {
  if (value === undefined || value === null || value === '') {
    throw new InvalidArgumentError(`${field} is required`);
  }
  if (Buffer.byteLength(value) > MAX_ID_BYTES) {
    throw new InvalidArgumentError(`${field} is longer than ${MAX_ID_BYTES} bytes`);
  }
  if (value.includes('\0')) throw new InvalidArgumentError(`${field} contains a NUL byte`);
  if (value.includes('/')) throw new InvalidArgumentError(`${field} "${value}" contains "/"`);
  if (value === '.' || value.includes('..')) throw new InvalidArgumentError(`${field} "${value}" contains ".."`);
  // Control characters in IDs only ever come from broken or hostile callers.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  if (/[\x00-\x1f\x7f]/.test(value)) throw new InvalidArgumentError(`${field} contains control characters`);
  return value;
}

/**
 * Paths the CO gives us (staging, target, volume path): present, absolute, bounded, no NUL and no
 * "..". Where they may point is the Node service's next check (backends/node-paths.ts): beneath
 * the kubelet directories only, never at a symlink or the driver's own storage.
 */
export function requirePath(field: string, value: string | undefined | null): string {
  if (value === undefined || value === null || value === '') throw new InvalidArgumentError(`${field} is required`);
  if (value.includes('\0')) throw new InvalidArgumentError(`${field} contains a NUL byte`);
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) throw new InvalidArgumentError(`${field} is longer than ${MAX_PATH_BYTES} bytes`);
  if (!isAbsolute(value)) throw new InvalidArgumentError(`${field} "${value}" is not an absolute path`);
  if (value.split('/').includes('..')) throw new InvalidArgumentError(`${field} "${value}" contains ".."`);
  if (value.split('/').some((part) => Buffer.byteLength(part) > MAX_NAME_BYTES)) {
    throw new InvalidArgumentError(`${field} has a component longer than ${MAX_NAME_BYTES} bytes`);
  }
  return normalize(value).replace(/\/+$/, '') || '/';
}

const ACCESS_MODES: ReadonlySet<string> = new Set<AccessMode>([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'MULTI_NODE_READER_ONLY',
  'MULTI_NODE_SINGLE_WRITER',
  'MULTI_NODE_MULTI_WRITER',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

/** The wire shape of csi.v1.VolumeCapability as the loader decodes it. */
export interface WireCapability {
  access_type?: string | null;
  block?: object | null;
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null;
  access_mode?: { mode?: string | number } | null;
}

const FLAG_PATTERN = /^[A-Za-z0-9_.:=+@-]+$/;

export function parseCapability(field: string, wire: WireCapability | null | undefined): Capability {
  if (!wire) throw new InvalidArgumentError(`${field} is required`);
  const mode = wire.access_mode?.mode;
  if (mode === undefined || mode === 'UNKNOWN' || typeof mode !== 'string' || !ACCESS_MODES.has(mode)) {
    throw new InvalidArgumentError(`${field}.access_mode is required and must be a known mode (got ${String(mode ?? 'nothing')})`);
  }
  if (wire.block) {
    return { accessType: 'block', fsType: '', mountFlags: [], accessMode: mode as AccessMode };
  }
  if (wire.mount) {
    const fsType = wire.mount.fs_type ?? '';
    if (fsType !== '' && !/^[a-z0-9]+$/.test(fsType)) {
      throw new InvalidArgumentError(`${field}.mount.fs_type "${fsType}" is not a filesystem name`);
    }
    const flags = wire.mount.mount_flags ?? [];
    flags.forEach((flag, i) => {
      if (!FLAG_PATTERN.test(flag)) {
        throw new InvalidArgumentError(`${field}.mount.mount_flags[${i}] "${flag}" is not a valid mount option`);
      }
    });
    return { accessType: 'mount', fsType, mountFlags: flags, accessMode: mode as AccessMode };
  }
  throw new InvalidArgumentError(`${field} must set an access type (block or mount)`);
}

export function parseCapabilities(field: string, wire: WireCapability[] | null | undefined): Capability[] {
  if (!wire || wire.length === 0) throw new InvalidArgumentError(`${field} must list at least one capability`);
  return wire.map((c, i) => parseCapability(`${field}[${i}]`, c));
}

/** int64 sizes arrive as JS numbers; anything negative, fractional or non-finite is malformed. */
export function requireSize(field: string, value: number | string | undefined | null): number {
  const n = value === undefined || value === null || value === '' ? 0 : Number(value);
  if (!Number.isFinite(n) || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`${field} must be a non-negative integer number of bytes (got ${String(value)})`);
  }
  return n;
}

/** Maps of strings (parameters, contexts): keys and values must be plain text. */
export function requireStringMap(field: string, value: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value ?? {})) {
    if (k.includes('\0') || String(v).includes('\0')) throw new InvalidArgumentError(`${field}["${k}"] contains a NUL byte`);
    out[k] = String(v);
  }
  return out;
}
