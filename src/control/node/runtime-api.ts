// What the node agent needs from a container runtime (runtime/pod-runtime.ts implements it), so the
// agent can be driven by a fake runtime in unit tests.
import type { ChildProcess } from 'node:child_process';
import type { ContainerSpec, ContainerStatus } from './runtime/types.js';

export type { ContainerMount, ContainerSpec, ContainerStatus, ContainerUser } from './runtime/types.js';

export interface ContainerRuntime {
  startContainer(spec: ContainerSpec): Promise<ContainerStatus>;
  status(podUid: string, containerName: string): Promise<ContainerStatus | undefined>;
  stopContainer(podUid: string, containerName: string, gracePeriodSeconds: number): Promise<ContainerStatus>;
  removePod(podUid: string): Promise<void>;
  listPods(): Promise<string[]>;
  logPath(podUid: string, containerName: string, attempt?: number): string;
  exec(podUid: string, containerName: string, command: string[], stdio: 'inherit' | 'pipe'): ChildProcess;
}
