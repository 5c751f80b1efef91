import type { Command } from 'commander';
import { isAbsolute } from 'node:path';
import { DEFAULT_CEPHFS_STATE_DIR, DEFAULT_KUBELET_DIR, DEFAULT_RBD_STATE_DIR, DRIVER_NAMES } from '../driver/defaults.js';
import { parseQuantity } from './quantity.js';

interface DriverFlags {
  backend: string;
  endpoint?: string;
  nodeId?: string;
  localDir?: string;
  localPoolSize: string;
  localOvercommit: string;
  cephConfig?: string;
  rbdStateDir?: string;
  cephfsStateDir?: string;
  cephTimeout: string;
  rbdMaxCloneDepth: string;
  driverName?: string;
  controller?: boolean;
  node?: boolean;
  metricsAddress?: string;
  logLevel: string;
  maxVolumesPerNode: string;
  kubeletDir: string[];
}

const BACKENDS = ['local', 'rbd', 'cephfs'] as const;

export function registerDriverCommand(program: Command): void {
  program
    .command('driver')
    .description('serve the CSI Identity, Controller and Node services on a unix socket')
    .option('--backend <name>', 'storage backend: local, rbd or cephfs', 'local')
    .option('--endpoint <endpoint>', 'unix socket: unix:///path/csi.sock or /path (default $CSI_ENDPOINT)')
    .option('--node-id <id>', 'this node\'s ID, reported by NodeGetInfo')
    .option('--local-dir <dir>', 'local backend: the pool directory (btrfs, or a pool.img is created in it)')
    .option('--local-pool-size <size>', 'local backend: size of pool.img when one is created', '20Gi')
    .option('--local-overcommit <factor>', 'local backend: volumes may promise up to this many times the pool\'s usable size (1 = none; raise it knowingly: thin provisioning can ENOSPC)', '1')
    .option('--ceph-config <file>', 'rbd and cephfs backends: ceph-csi\'s cluster list, [{"clusterID": ..., "monitors": ["host:port", ...]}]')
    // Not --state-dir: that is the program-wide option naming `stowage up`'s state directory.
    .option('--rbd-state-dir <dir>', 'rbd backend: node state (staging records, rbd-fuse mounts)', DEFAULT_RBD_STATE_DIR)
    .option('--cephfs-state-dir <dir>', 'cephfs backend: node state (staging records, ceph-fuse keyfiles)', DEFAULT_CEPHFS_STATE_DIR)
    .option('--ceph-timeout <seconds>', 'rbd and cephfs backends: how long a Ceph connection or operation may take', '10')
    .option('--rbd-max-clone-depth <n>', 'rbd backend: clones with more parents than this are flattened', '4')
    .option('--driver-name <name>', 'CSI driver name (default <backend>.csi.stowage.dev)')
    .option('--controller', 'serve the Controller service')
    .option('--node', 'serve the Node service')
    .option(
      '--kubelet-dir <dir>',
      'node service: staging and target paths must lie beneath this directory (repeatable; default /var/lib/kubelet)',
      (dir: string, dirs: string[]) => [...dirs, dir],
      [] as string[],
    )
    .option('--max-volumes-per-node <n>', 'volume limit reported by NodeGetInfo', '256')
    .option('--metrics-address <host:port>', 'serve Prometheus metrics at http://host:port/metrics')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .action(async (flags: DriverFlags) => {
      const endpoint = flags.endpoint ?? process.env['CSI_ENDPOINT'];
      if (!endpoint) throw new Error('--endpoint is required (or set CSI_ENDPOINT)');
      if (!flags.nodeId) throw new Error('--node-id is required');
      const backend = BACKENDS.find((b) => b === flags.backend);
      if (!backend) throw new Error(`--backend ${flags.backend} is not available (backends: ${BACKENDS.join(', ')})`);
      if (flags.backend === 'local' && !flags.localDir) throw new Error('--local-dir is required for the local backend');
      if ((backend === 'rbd' || backend === 'cephfs') && !flags.cephConfig) throw new Error(`--ceph-config is required for the ${backend} backend`);
      const cephTimeout = Number(flags.cephTimeout);
      if (!Number.isSafeInteger(cephTimeout) || cephTimeout < 1) throw new Error('--ceph-timeout must be a whole number of seconds');
      const maxCloneDepth = Number(flags.rbdMaxCloneDepth);
      if (!Number.isSafeInteger(maxCloneDepth) || maxCloneDepth < 1) throw new Error('--rbd-max-clone-depth must be a whole number ≥ 1');
      const overcommit = parseOvercommit(flags.localOvercommit);
      const maxVolumes = Number(flags.maxVolumesPerNode);
      if (!Number.isSafeInteger(maxVolumes) || maxVolumes < 0) throw new Error('--max-volumes-per-node must be a whole number');
      for (const dir of flags.kubeletDir) if (!isAbsolute(dir)) throw new Error(`--kubelet-dir ${dir} is not an absolute path`);
      // Neither flag means both services, the usual single-node setup.
      const both = !flags.controller && !flags.node;
      // Loaded only when the driver runs: client commands need none of it.
      const { startDriver } = await import('../driver/driver.js');
      const driver = await startDriver({
        backend,
        endpoint,
        nodeId: flags.nodeId,
        driverName: flags.driverName ?? DRIVER_NAMES[backend],
        controller: both || flags.controller === true,
        node: both || flags.node === true,
        ...(flags.localDir ? { localDir: flags.localDir, localPoolSizeBytes: parseQuantity(flags.localPoolSize), localOvercommit: overcommit } : {}),
        ...(flags.cephConfig ? { cephConfig: flags.cephConfig } : {}),
        ...(backend === 'rbd' && flags.rbdStateDir ? { stateDir: flags.rbdStateDir } : {}),
        ...(backend === 'cephfs' && flags.cephfsStateDir ? { stateDir: flags.cephfsStateDir } : {}),
        cephTimeoutSeconds: cephTimeout,
        maxCloneDepth,
        maxVolumesPerNode: maxVolumes,
        kubeletDirs: flags.kubeletDir.length > 0 ? flags.kubeletDir : [DEFAULT_KUBELET_DIR],
        ...(flags.metricsAddress ? { metricsAddress: flags.metricsAddress } : {}),
        logLevel: flags.logLevel,
      });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`${signal}: finishing in-flight calls, then exiting\n`);
        driver.stop().then(
          () => process.exit(0),
          (e: Error) => {
            process.stderr.write(`stop failed: ${e.message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      driver.backendReady.catch((e: Error) => {
        process.stderr.write(`stowage driver: the backend could not start: ${e.message}\n`);
        process.exit(1);
      });
    });
}

/** --local-overcommit: a finite number ≥ 1 (below 1 would promise less than the pool holds: use a smaller pool). */
export function parseOvercommit(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 1) throw new Error(`--local-overcommit must be a number ≥ 1, not ${JSON.stringify(text)}`);
  return n;
}
