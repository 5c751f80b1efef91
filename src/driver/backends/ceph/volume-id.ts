/**
 * ceph-csi's volume and snapshot IDs ("CSI identifiers"), so volumes are portable between the two
 * drivers:
 *
 *   0001-0024-f640c054-52a1-46a5-b091-85c5ba706ba9-0000000000000001-1b4e28ba-2fa1-11d2-883f-0016d3cca427
 *   │    │    │                                    │                │
 *   │    │    clusterID                            pool ID (16 hex) object UUID (image csi-vol-<uuid>)
 *   │    length of clusterID (4 hex)
 *   encoding version (4 hex)
 *
 * Decoding is strict: anything else (csi-sanity's "fake-vol-id", a truncated or padded ID, upper
 * case hex) is not an ID this driver issued, and the lookups that get it answer NOT_FOUND.
 */

import { InvalidArgumentError } from '../../../csi/errors.js';

export const ID_VERSION = 1;
/** CSI's limit on IDs. */
const MAX_ID_BYTES = 128;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface CsiIdentifier {
  clusterID: string;
  poolId: number;
  uuid: string;
}

export function encodeId(id: CsiIdentifier): string {
  if (!UUID.test(id.uuid)) throw new RangeError(`not a UUID: ${id.uuid}`);
  if (!Number.isSafeInteger(id.poolId) || id.poolId < 0) throw new RangeError(`bad pool ID ${id.poolId}`);
  const out = [hex(ID_VERSION, 4), hex(id.clusterID.length, 4), id.clusterID, hex(id.poolId, 16), id.uuid].join('-');
  if (Buffer.byteLength(out) > MAX_ID_BYTES) throw new RangeError(`clusterID "${id.clusterID}" makes IDs longer than ${MAX_ID_BYTES} bytes`);
  return out;
}

/** The parts of an ID, or undefined when it is not one this driver (or ceph-csi) issues. */
export function decodeId(text: string): CsiIdentifier | undefined {
  if (Buffer.byteLength(text) > MAX_ID_BYTES) return undefined;
  const m = /^([0-9a-f]{4})-([0-9a-f]{4})-/.exec(text);
  if (!m || parseInt(m[1]!, 16) !== ID_VERSION) return undefined;
  const length = parseInt(m[2]!, 16);
  const rest = text.slice(10);
  // clusterID, '-', 16 hex, '-', 36 characters of UUID: nothing more, nothing less.
  if (length === 0 || rest.length !== length + 1 + 16 + 1 + 36) return undefined;
  const clusterID = rest.slice(0, length);
  const tail = rest.slice(length);
  const t = /^-([0-9a-f]{16})-(.{36})$/.exec(tail);
  if (!t) return undefined;
  const uuid = t[2]!;
  if (!UUID.test(uuid)) return undefined;
  const poolId = Number.parseInt(t[1]!, 16);
  if (!Number.isSafeInteger(poolId)) return undefined;
  return { clusterID, poolId, uuid };
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** Why a snapshot's parameters must agree with its source's ID (both backends). */
export const SNAPSHOT_BESIDE_SOURCE = 'a snapshot is taken where its source volume is';

/**
 * A request parameter that repeats what an ID already says (cluster, pool, filesystem) must say
 * the same: absent is fine, anything else is INVALID_ARGUMENT naming both values.
 */
export function requireAgreement(parameter: string, given: string | undefined, actual: string, what: string, why: string): void {
  if (given === undefined || given === actual) return;
  throw new InvalidArgumentError(`parameter ${parameter} "${given}" does not match ${what} ("${actual}"): ${why}`);
}
