// Every backend the driver can serve, in one table (as ceph-csi's one driver switch): what the
// driver must know of each — whether its volumes are tied to a node, which paths are its own
// storage (never a CO's to name), and how to open it. A new backend is its folder plus one entry
// here; nothing else in the driver asks which backend it runs. Each backend's modules are loaded
// only when it is opened: the local backend never loads librados, the Ceph ones never btrfs code.
import type { Logger } from 'pino';
import type { DriverOptions } from '../driver.js';
import { DEFAULT_CEPHFS_STATE_DIR, DEFAULT_RBD_STATE_DIR } from '../defaults.js';
import type { ExecRunner } from '../mount/exec.js';
import type { LoopDevices } from '../mount/loop.js';
import type { Mounter } from '../mount/mount.js';
import type { Backend } from './backend.js';
import type { NodePaths } from './node-paths.js';

/** What every backend is opened with; `stoppers` run when the driver stops (watchers, timers). */
export interface OpenDeps {
  runner: ExecRunner;
  mounter: Mounter;
  loops: LoopDevices;
  log: Logger;
  paths: NodePaths;
  stoppers: (() => void)[];
}

export interface BackendEntry {
  /** Volumes reachable from one node only: the driver advertises accessibility constraints. */
  accessibilityConstraints: boolean;
  /** Group snapshots (Backend.groupSnapshots): the GroupController service is served and advertised. */
  groupSnapshots?: boolean;
  /** Why not, when a CO may well ask (GroupController calls answer UNIMPLEMENTED saying so). */
  noGroupSnapshots?: string;
  /** The backend's own storage, which the node service refuses as a staging or target path. */
  ownPaths(opts: DriverOptions): string[];
  open(opts: DriverOptions, deps: OpenDeps): Promise<Backend>;
}

/** ceph-csi's cluster list, followed while the driver runs (its ConfigMap is edited in place). */
async function cephConfig(opts: DriverOptions, deps: OpenDeps) {
  if (!opts.cephConfig) throw new Error(`the ${opts.backend} backend needs --ceph-config`);
  const { ClusterConfig } = await import('./ceph/cluster-config.js');
  const config = await ClusterConfig.load(opts.cephConfig);
  deps.stoppers.push(config.follow(opts.cephConfig, deps.log));
  return config;
}

function backendDeps(deps: OpenDeps) {
  const { stoppers: _stoppers, ...rest } = deps;
  return rest;
}

export const BACKENDS: Record<DriverOptions['backend'], BackendEntry> = {
  local: {
    accessibilityConstraints: true,
    ownPaths: (opts) => [opts.localDir ?? ''],
    async open(opts, deps) {
      if (!opts.localDir || opts.localPoolSizeBytes === undefined) throw new Error('the local backend needs --local-dir');
      const { LocalBackend } = await import('./local/local-backend.js');
      const b = await LocalBackend.open({
        dir: opts.localDir,
        poolSizeBytes: opts.localPoolSizeBytes,
        overcommit: opts.localOvercommit ?? 1,
        nodeId: opts.nodeId,
        maxVolumesPerNode: opts.maxVolumesPerNode,
        ...backendDeps(deps),
      });
      deps.log.info({ root: b.root }, 'local backend ready');
      return b;
    },
  },
  rbd: {
    // rbd volumes are reachable from every node: no accessibility constraints to advertise.
    accessibilityConstraints: false,
    groupSnapshots: true,
    ownPaths: (opts) => [opts.stateDir ?? DEFAULT_RBD_STATE_DIR],
    async open(opts, deps) {
      const config = await cephConfig(opts, deps);
      // Loaded only for rbd: koffi bindings to librados and librbd.
      const { RbdBackend } = await import('./rbd/rbd-backend.js');
      const stateDir = opts.stateDir ?? DEFAULT_RBD_STATE_DIR;
      const b = await RbdBackend.open({
        config,
        stateDir,
        nodeId: opts.nodeId,
        maxVolumesPerNode: opts.maxVolumesPerNode,
        timeoutSeconds: opts.cephTimeoutSeconds ?? 10,
        maxCloneDepth: opts.maxCloneDepth ?? 4,
        node: opts.node,
        ...backendDeps(deps),
      });
      deps.log.info({ clusters: config.clusters.map((c) => c.clusterID), stateDir }, 'rbd backend ready');
      return b;
    },
  },
  cephfs: {
    accessibilityConstraints: false,
    noGroupSnapshots:
      'the cephfs backend does not cut group snapshots: CephFS snapshots several subvolumes at one point in time only by quiescing them first (the mgr\'s `ceph fs quiesce`), which Ceph Pacific does not have; snapshot the volumes one by one',
    ownPaths: (opts) => [opts.stateDir ?? DEFAULT_CEPHFS_STATE_DIR],
    async open(opts, deps) {
      const config = await cephConfig(opts, deps);
      // Loaded only for cephfs: koffi bindings to librados and libcephfs.
      const { CephfsBackend } = await import('./cephfs/cephfs-backend.js');
      const stateDir = opts.stateDir ?? DEFAULT_CEPHFS_STATE_DIR;
      const b = await CephfsBackend.open({
        config,
        stateDir,
        nodeId: opts.nodeId,
        maxVolumesPerNode: opts.maxVolumesPerNode,
        timeoutSeconds: opts.cephTimeoutSeconds ?? 10,
        node: opts.node,
        ...backendDeps(deps),
      });
      deps.log.info({ clusters: config.clusters.map((c) => c.clusterID), stateDir }, 'cephfs backend ready');
      return b;
    },
  },
};
