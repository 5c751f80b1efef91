import { InvalidArgumentError, OutOfRangeError } from '../csi/errors.js';
import type { AccessType, ControllerBackend } from './backends/backend.js';
import { requireSize } from './validate.js';

const GiB = 1024 ** 3;
/** What a CreateVolume without a capacity range gets. */
export const DEFAULT_VOLUME_BYTES = GiB;

export interface CapacityRangeWire {
  required_bytes?: number | string;
  limit_bytes?: number | string;
}

export interface SizeRange {
  required: number;
  limit: number;
}

export function parseRange(field: string, wire: CapacityRangeWire | null | undefined): SizeRange {
  const required = requireSize(`${field}.required_bytes`, wire?.required_bytes);
  const limit = requireSize(`${field}.limit_bytes`, wire?.limit_bytes);
  if (limit > 0 && required > limit) {
    throw new InvalidArgumentError(`${field}: required_bytes ${required} is more than limit_bytes ${limit}`);
  }
  return { required, limit };
}

/**
 * The size to allocate for a range: the request (or the default, or a source's size), rounded up
 * to the backend's granularity, and refused with OUT_OF_RANGE when that breaks the limit or the
 * backend's maximum.
 */
export function sizeFor(
  backend: ControllerBackend,
  range: SizeRange,
  cap: { accessType: AccessType; fsType: string },
  atLeast = 0,
): number {
  const base = range.required > 0 ? range.required : range.limit > 0 ? Math.min(DEFAULT_VOLUME_BYTES, range.limit) : DEFAULT_VOLUME_BYTES;
  const size = backend.allocationSize(Math.max(base, atLeast), cap);
  if (range.limit > 0 && size > range.limit) {
    throw new OutOfRangeError(`the smallest size this volume can have is ${size} bytes, more than limit_bytes ${range.limit}`);
  }
  if (size > backend.maximumVolumeBytes) {
    throw new OutOfRangeError(`${size} bytes is more than the largest volume this backend can create (${backend.maximumVolumeBytes} bytes)`);
  }
  return size;
}
