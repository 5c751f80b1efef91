// `stowage up`: the control plane and its nodes (a CSI driver and a node agent each), in the
// foreground. The implementation (up.ts) loads the store, the controllers and the driver, so it is
// imported only when run.
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { globalFlags } from './connection.js';

export const DEFAULT_STORAGE_CLASS = 'local';

export interface UpFlags {
  nodeName?: string;
  nodes?: string;
  backend: string;
  cephConfig?: string;
  poolSize: string;
  localOvercommit: string;
  listen?: string[];
  logLevel: string;
  localDriver: boolean;
  keepPool?: boolean;
  defaultStorageClass: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('start the control plane and its nodes (a CSI driver and a node agent each), in the foreground (Ctrl-C stops them; pods keep running)')
    .option('--node-name <name>', 'the node\'s name when there is one (Node, CSINode, topology)', hostname())
    .option('--nodes <n>', 'run N nodes on this machine (node-1…node-N), each with its own agent and CSI node plugin', '1')
    .option('--backend <name>', 'the nodes\' driver: local (a btrfs pool per node), rbd or cephfs (a Ceph cluster, see --ceph-config)', 'local')
    .option('--ceph-config <file>', 'rbd and cephfs: ceph-csi\'s cluster list, [{"clusterID": ..., "monitors": ["host:port", ...]}]')
    .option('--pool-size <size>', 'local: size of each node\'s pool image when it is created', '20Gi')
    .option('--local-overcommit <factor>', 'local: volumes may promise up to this many times each pool\'s usable size (1 = none)', '1')
    .option('--listen <address>', 'API address: unix:///path or http://127.0.0.1:PORT (repeatable; default unix://<state-dir>/api.sock)', collect)
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .option('--no-local-driver', 'run the control plane only (no nodes, no driver)')
    .option('--no-default-storage-class', `do not create the StorageClass "${DEFAULT_STORAGE_CLASS}"`)
    .option('--keep-pool', 'leave the pool mounted at exit (it is released when no volume uses it)')
    .action(async (flags: UpFlags, command: Command) => {
      const { runUp } = await import('./up.js');
      await runUp(flags, globalFlags(command));
    });
}
