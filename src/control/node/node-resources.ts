// What a node agent reports as its Node's status.capacity and status.allocatable, as the kubelet
// does from its machine: cpu (the CPUs this process may use), memory (the machine's), ephemeral-
// storage (the size of the node filesystem, when it could be read) and pods (110, the kubelet's
// default maxPods). Allocatable equals capacity: no system/kube reservation is taken off yet.
// These figures feed the scheduler's NodeResourcesFit.
import { availableParallelism, totalmem } from 'node:os';
import { bytesToQuantity } from '../api/quantity.js';

export const DEFAULT_MAX_PODS = '110';

/** cpu, memory and (if known) ephemeral-storage of this machine, as quantities. */
export function machineResources(nodefsBytes: number | undefined): Record<string, string> {
  const out: Record<string, string> = { cpu: String(availableParallelism()), memory: bytesToQuantity(totalmem()) };
  if (nodefsBytes !== undefined && nodefsBytes > 0) out['ephemeral-storage'] = bytesToQuantity(nodefsBytes);
  return out;
}
