// The DiskPressure node condition, as the kubelet sets it. Why: a node whose local pool is nearly
// full gave no sign of it until writes failed; the kubelet reports the same situation for its nodefs
// as DiskPressure, with its default hard eviction threshold nodefs.available<10%. Here the node's
// filesystem is its pool (local backend; the kubelet root otherwise), read with statfs like
// cAdvisor does: available (f_bavail) against total (f_blocks).
import type { NodeCondition } from '../api/types/core.js';
import { pressureCondition } from './node-pressure.js';

/** The kubelet's default hard eviction threshold for nodefs.available. */
export const NODEFS_AVAILABLE_THRESHOLD = 0.1;

export interface FsFigures {
  totalBytes: number;
  availableBytes: number;
}

/** Pressure when less than 10% of the filesystem is available (the kubelet's `nodefs.available<10%`). */
export function underDiskPressure(fs: FsFigures): boolean {
  if (fs.totalBytes <= 0) return false;
  return fs.availableBytes < fs.totalBytes * NODEFS_AVAILABLE_THRESHOLD;
}

/**
 * The condition for this heartbeat, worded as the kubelet's node status setter words it, and the
 * event it records on the Node when the status changes (type Normal, reason NodeHasDiskPressure /
 * NodeHasNoDiskPressure, message "Node <name> status is now: <reason>"); none when unchanged.
 */
export function diskPressureCondition(
  previous: NodeCondition | undefined,
  pressure: boolean,
  now: string,
): { condition: NodeCondition; event: string | undefined } {
  return pressureCondition('DiskPressure', previous, pressure, now);
}
