import { readFile } from 'node:fs/promises';

/** Linux capability numbers the driver cares about (include/uapi/linux/capability.h). */
export const CAP_SYS_RESOURCE = 24;

/** Whether this process holds a capability in its effective set. */
export async function hasCapability(cap: number): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8');
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> BigInt(cap)) & 1n) === 1n;
}
