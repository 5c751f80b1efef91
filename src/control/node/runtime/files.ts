// The runtime's on-disk state: all of it lives under the node's kubelet root, so a restarted agent
// (a new PodRuntime on the same root) knows everything a previous one started.
//
//   pods/<uid>/containers/<name>/current.json            {attempt}: which attempt is the container's
//   pods/<uid>/containers/<name>/logs/<attempt>.log      stdout+stderr, appended as written (plain
//                                                        bytes, not the kubelet's CRI log format)
//   pods/<uid>/containers/<name>/attempts/<attempt>/
//       launch.json   what to run (the agent writes it before starting the shim)
//       state.json    the shim's record: pid, start time, then exit code/signal and finish time
//       shim.log      the shim's own diagnostics
//       upper/ work/  the overlay's writable layer
//       rootfs/       the overlay's mount point — mounted only inside the container's mount namespace
//
// Written by the agent (current.json, launch.json) or by the shim (state.json), never both, each
// through a rename so a reader (or a process killed mid-write) never sees half a file.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerReason, ContainerSpec } from './types.js';

export interface LaunchFile {
  spec: ContainerSpec;
  logPath: string;
}

export interface StateFile {
  phase: 'starting' | 'running' | 'exited';
  shimPid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot): tells the shim from a process that reused its PID. */
  shimStartTicks: number;
  pid?: number;
  pidStartTicks?: number;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  signal?: string;
  reason?: ContainerReason;
  message?: string;
}

export interface CurrentFile {
  attempt: number;
}

/** Kubernetes' default PATH for a container whose image sets none (there is no image here). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The command's environment: the spec's env over PATH, HOSTNAME (the pod's name) and HOME, as a runtime sets them. */
export function containerEnv(spec: ContainerSpec): Record<string, string> {
  return { PATH: DEFAULT_PATH, HOSTNAME: spec.podName, HOME: spec.user?.home ?? '/root', ...spec.env };
}

export function containersDir(rootDir: string, podUid: string): string {
  return join(rootDir, 'pods', podUid, 'containers');
}

export function containerDir(rootDir: string, podUid: string, name: string): string {
  return join(containersDir(rootDir, podUid), name);
}

export function attemptDir(containerDirPath: string, attempt: number): string {
  return join(containerDirPath, 'attempts', String(attempt));
}

export function logFile(containerDirPath: string, attempt: number): string {
  return join(containerDirPath, 'logs', `${attempt}.log`);
}

/** Synchronous (the shim and init are tiny scripts); tmp + rename: atomic against crashes of the writer. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export function readJsonSync<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** undefined when the file does not exist. */
export async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function mkdirs(...dirs: string[]): void {
  for (const dir of dirs) mkdirSync(dir, { recursive: true, mode: 0o700 });
}
