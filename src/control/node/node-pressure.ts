// The MemoryPressure and PIDPressure node conditions, read from the machine as the kubelet's
// eviction manager reads them. Why: a node short of memory or process IDs looked healthy until its
// pods failed; with the conditions the node-lifecycle controller taints it (memory-pressure,
// pid-pressure) and the scheduler's TaintToleration keeps new pods away.
//   memory: /proc/meminfo MemAvailable against the kubelet's default hard threshold
//           memory.available<100Mi;
//   pid:    /proc/sys/kernel/pid_max against the processes running (/proc/loadavg's 4th field
//           gives them); the kubelet has no default pid.available threshold, so one is ours:
//           pressure when fewer than 10% of pid_max are left.
// DiskPressure is disk-pressure.ts. The conditions' words (reasons, messages, events) are the
// kubelet's node status setters'.
import { readFile } from 'node:fs/promises';
import type { NodeCondition } from '../api/types/core.js';

/** The kubelet's default hard eviction threshold memory.available<100Mi. */
export const MEMORY_AVAILABLE_THRESHOLD_BYTES = 100 * 1024 * 1024;
/** PID pressure when fewer than this fraction of pid_max is free. */
export const PID_AVAILABLE_THRESHOLD = 0.1;

export type PressureType = 'MemoryPressure' | 'DiskPressure' | 'PIDPressure';

interface Words {
  reason: [string, string];
  message: [string, string];
  event: [string, string];
}

/** [no pressure, pressure] for each condition, as the kubelet words them. */
const WORDS: Record<PressureType, Words> = {
  MemoryPressure: {
    reason: ['KubeletHasSufficientMemory', 'KubeletHasInsufficientMemory'],
    message: ['kubelet has sufficient memory available', 'kubelet has insufficient memory available'],
    event: ['NodeHasSufficientMemory', 'NodeHasInsufficientMemory'],
  },
  DiskPressure: {
    reason: ['KubeletHasNoDiskPressure', 'KubeletHasDiskPressure'],
    message: ['kubelet has no disk pressure', 'kubelet has disk pressure'],
    event: ['NodeHasNoDiskPressure', 'NodeHasDiskPressure'],
  },
  PIDPressure: {
    reason: ['KubeletHasSufficientPID', 'KubeletHasInsufficientPID'],
    message: ['kubelet has sufficient PID available', 'kubelet has insufficient PID available'],
    event: ['NodeHasSufficientPID', 'NodeHasInsufficientPID'],
  },
};

/**
 * The condition for this heartbeat and the event to record on the Node when its status changed
 * (type Normal, message "Node <name> status is now: <event>"); none when unchanged.
 */
export function pressureCondition(type: PressureType, previous: NodeCondition | undefined, pressure: boolean, now: string): { condition: NodeCondition; event: string | undefined } {
  const i = pressure ? 1 : 0;
  const status = pressure ? 'True' : 'False';
  const changed = previous?.status !== status;
  const words = WORDS[type];
  return {
    condition: {
      type,
      status,
      reason: words.reason[i],
      message: words.message[i],
      lastHeartbeatTime: now,
      lastTransitionTime: !changed && previous?.lastTransitionTime ? previous.lastTransitionTime : now,
    },
    event: changed ? words.event[i] : undefined,
  };
}

/** MemAvailable from /proc/meminfo's text, in bytes (undefined when absent). */
export function memAvailableBytes(meminfo: string): number | undefined {
  const m = /^MemAvailable:\s+(\d+)\s+kB$/m.exec(meminfo);
  return m === null ? undefined : Number(m[1]) * 1024;
}

export function underMemoryPressure(availableBytes: number, thresholdBytes = MEMORY_AVAILABLE_THRESHOLD_BYTES): boolean {
  return availableBytes < thresholdBytes;
}

export function underPidPressure(pidMax: number, running: number, threshold = PID_AVAILABLE_THRESHOLD): boolean {
  if (pidMax <= 0) return false;
  return pidMax - running < pidMax * threshold;
}

/** The running process count from /proc/loadavg ("0.00 0.01 0.05 2/345 6789": 345). */
export function processCount(loadavg: string): number | undefined {
  const m = /^\S+ \S+ \S+ \d+\/(\d+) /.exec(loadavg);
  return m === null ? undefined : Number(m[1]);
}

/** This machine's memory and PID pressure; a figure that cannot be read is left undefined. */
export async function machinePressure(): Promise<{ memory: boolean | undefined; pid: boolean | undefined }> {
  const [meminfo, pidMax, loadavg] = await Promise.all(
    ['/proc/meminfo', '/proc/sys/kernel/pid_max', '/proc/loadavg'].map((p) => readFile(p, 'utf8').catch(() => undefined)),
  );
  const available = meminfo === undefined ? undefined : memAvailableBytes(meminfo);
  const max = pidMax === undefined ? Number.NaN : Number(pidMax.trim());
  const running = loadavg === undefined ? undefined : processCount(loadavg);
  return {
    memory: available === undefined ? undefined : underMemoryPressure(available),
    pid: running === undefined || !Number.isFinite(max) ? undefined : underPidPressure(max, running),
  };
}
