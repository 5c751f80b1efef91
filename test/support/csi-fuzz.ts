/**
 * One hostile request of a CSI fuzz property (fuzz-csi-node, fuzz-csi-controller): sent as
 * generated (undefined fields left out), its answer tallied by "RPC CODE", and checked to be a gRPC
 * status the RPC may give, from a driver that is still running.
 */
import assert from 'node:assert/strict';
import { CsiError } from '../../src/csi/errors.js';
import { status } from './csi-helpers.js';

export type RawCall = (req: unknown, options?: { timeoutMs?: number }) => Promise<unknown>;

export async function checkedCall(call: RawCall, rpc: string, req: Record<string, unknown>, allowed: ReadonlySet<status>, seen: Map<string, number>, driverPid: () => number | undefined): Promise<void> {
  const clean = Object.fromEntries(Object.entries(req).filter(([, v]) => v !== undefined));
  let code: status = status.OK;
  let message = '';
  try {
    await call(clean, { timeoutMs: 30_000 });
  } catch (e) {
    assert.ok(e instanceof CsiError, `${rpc}: not a gRPC status: ${String(e)}`);
    code = e.code;
    message = e.message;
  }
  const key = `${rpc} ${status[code]}`;
  seen.set(key, (seen.get(key) ?? 0) + 1);
  assert.ok(allowed.has(code), `${rpc}(${JSON.stringify(clean)}) → ${status[code]}: ${message}`);
  assert.notEqual(driverPid(), undefined, 'the driver is still running');
}
