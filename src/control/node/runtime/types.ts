// What the node agent tells the pod runtime, and what the runtime reports back (CRI's shape, cut down
// to what a process-based runtime can do: no images, no cgroups).

/** One volume (or subPath of one) to appear inside a container. */
export interface ContainerMount {
  /** A directory or a file on the host (a subPath of a file, a configMap key file…). */
  hostPath: string;
  /** Absolute path inside the container. */
  containerPath: string;
  readOnly: boolean;
  /**
   * mountPropagation: None (default; private), HostToContainer (rslave: mounts the node makes below
   * a shared mount later appear in the container), Bidirectional (rshared, a peer of the node's
   * mount: what the container mounts below it appears on the node too; privileged containers only).
   */
  propagation?: 'None' | 'HostToContainer' | 'Bidirectional';
}

/** Who the command runs as (resolved by the agent from the securityContext); absent: root. */
export interface ContainerUser {
  uid: number;
  gid: number;
  /** Supplementary groups (the primary group, fsGroup, supplementalGroups). */
  groups: number[];
  /** HOME for a user other than root (its passwd home, else "/"); root keeps /root. */
  home?: string;
}

export interface ContainerSpec {
  podUid: string;
  namespace: string;
  podName: string;
  containerName: string;
  /** Recorded only: nothing is pulled, the container's root is an overlay of the host's. */
  image?: string;
  /** Already resolved: the container's command followed by its args. Empty is an error (no image entrypoint exists). */
  command: string[];
  env: Record<string, string>;
  /** Inside the container; "/" when unset (there is no image WORKDIR). Created if missing, as runc does. */
  workingDir?: string;
  mounts: ContainerMount[];
  user?: ContainerUser;
  /** The restart count: each attempt has its own log file (<attempt>.log) and its own writable layer. */
  attempt: number;
}

export type ContainerReason =
  /** Exited with code 0. */
  | 'Completed'
  /** Exited non-zero or was killed by a signal. */
  | 'Error'
  /** The command could not be started (not found, a mount failed…); exitCode 128 as containerd reports. */
  | 'StartError'
  /** Neither the process nor its shim is left to say how it ended (exitCode 137, as the kubelet reports). */
  | 'ContainerStatusUnknown';

export interface ContainerStatus {
  /** 'unknown': an attempt was begun but its shim never recorded a start (e.g. the agent died mid-start). */
  state: 'running' | 'exited' | 'unknown';
  /** Host PID of the container's first process (PID 1 in the container's PID namespace). */
  pid?: number;
  /** RFC 3339. */
  startedAt?: string;
  finishedAt?: string;
  /** 128 + signal number when killed by a signal (137 for SIGKILL), as Kubernetes reports it. */
  exitCode?: number;
  /** e.g. 'SIGKILL' when killed by a signal. */
  signal?: string;
  reason?: ContainerReason;
  /** Human-readable detail for StartError / ContainerStatusUnknown. */
  message?: string;
  attempt: number;
  image?: string;
}
