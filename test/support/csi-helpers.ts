/** Small helpers shared by the conformance and data tests: request builders, error checks, I/O. */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import { CsiError } from '../../src/csi/errors.js';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
export const TOPOLOGY_KEY = 'topology.stowage.dev/node';
export { status };

export type AccessModeName =
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export function mountCap(fsType = '', mode: AccessModeName = 'SINGLE_NODE_WRITER', mountFlags: string[] = []): VolumeCapabilityInput {
  return { mount: { fs_type: fsType, mount_flags: mountFlags }, access_mode: { mode } };
}

export function blockCap(mode: AccessModeName = 'SINGLE_NODE_WRITER'): VolumeCapabilityInput {
  return { block: {}, access_mode: { mode } };
}

/** A CO-style unique name. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/**
 * Awaits a call that must fail with `code`. Returns the error for further checks. A success,
 * an untyped error or another code fails the test with the server's message.
 */
export async function expectCode(call: Promise<unknown>, code: status, what = 'call'): Promise<CsiError> {
  let result: unknown;
  try {
    result = await call;
  } catch (e) {
    assert.ok(e instanceof CsiError, `${what}: expected a CsiError, got ${String(e)}`);
    assert.equal(
      status[e.code],
      status[code],
      `${what}: expected ${status[code]}, got ${status[e.code]}: ${e.message}`,
    );
    return e;
  }
  assert.fail(`${what}: expected ${status[code]}, but it succeeded: ${JSON.stringify(result)}`);
}

/** Awaits a call that must either succeed or fail with one of `codes`; returns the error if any. */
export async function expectOkOr(call: Promise<unknown>, codes: status[], what = 'call'): Promise<CsiError | undefined> {
  try {
    await call;
    return undefined;
  } catch (e) {
    assert.ok(e instanceof CsiError, `${what}: expected a CsiError, got ${String(e)}`);
    assert.ok(codes.includes(e.code), `${what}: expected OK or ${codes.map((c) => status[c]).join('/')}, got ${status[e.code]}: ${e.message}`);
    return e;
  }
}

/** Reproducible pseudo-random bytes (so a mismatch is not a coincidence of zeros). */
export function pattern(bytes: number): Buffer {
  return randomBytes(bytes);
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Writes data to a file (created or overwritten) and fsyncs it. */
export async function writeSynced(path: string, data: Buffer, flags = 'w'): Promise<void> {
  const fh = await open(path, flags);
  try {
    let off = 0;
    while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes data at `offset` of an existing file or block device (no truncation) and fsyncs. */
export async function writeAt(path: string, data: Buffer, offset: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    let done = 0;
    while (done < data.length) done += (await fh.write(data, done, data.length - done, offset + done)).bytesWritten;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function readAt(path: string, length: number, offset: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  } finally {
    await fh.close();
  }
}

/**
 * Writes 1 MiB chunks to a new file until `limit` bytes or an error. Returns the bytes written
 * and the error code that stopped it ('EDQUOT', 'ENOSPC'...). libuv has no name for EDQUOT, so
 * it is matched on errno.
 */
export async function fill(file: string, limit: number): Promise<{ written: number; code: string | undefined }> {
  const fh = await open(file, 'w');
  const chunk = randomBytes(MiB);
  let written = 0;
  try {
    while (written < limit) written += (await fh.write(chunk)).bytesWritten;
    await fh.sync();
    return { written, code: undefined };
  } catch (err) {
    const { errno, code } = err as NodeJS.ErrnoException;
    return { written, code: errno === -osConstants.errno.EDQUOT ? 'EDQUOT' : code };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Linux capability numbers (include/uapi/linux/capability.h). */
export const CAP_SYS_RESOURCE = 24;

/**
 * Whether this process (and so the driver it spawns) holds a capability. Online ext4 growth
 * (EXT4_IOC_RESIZE_FS) needs CAP_SYS_RESOURCE, which some containers drop even for root.
 */
export function hasCapability(cap: number): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${hex}`) >> BigInt(cap)) & 1n) === 1n;
}
