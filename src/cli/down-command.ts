// `stowage down`: stop everything `stowage up` left running in a state directory (pods, volume
// mounts, drivers, pools), leaving the objects for a later `up`; `--purge` deletes the volumes and
// the state directory too. The implementation (down.ts) loads the store and the drivers, so it is
// imported only when run.
import type { Command } from 'commander';
import { globalFlags } from './connection.js';

export function registerDownCommand(program: Command): void {
  program
    .command('down')
    .description('stop every pod of the state directory\'s nodes, unmount their volumes through the drivers, stop the drivers and release the pools (a running `stowage up` is stopped first); the objects stay for the next `up`')
    .option('--grace-period <seconds>', "how long each container may take to exit after SIGTERM before SIGKILL (-1: each pod's terminationGracePeriodSeconds)", '-1')
    .option('--purge', 'also delete every volume and snapshot in the backend and the state directory itself')
    .option('--backend <name>', 'the driver `up` ran: local, rbd or cephfs', 'local')
    .option('--ceph-config <file>', 'rbd and cephfs: ceph-csi\'s cluster list, as given to `up`')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'warn')
    .addHelpText('after', '\nExample:\n  stowage down --state-dir /var/lib/stowage            # stop; `stowage up` resumes\n  stowage down --state-dir /var/lib/stowage --purge    # stop and delete everything')
    .action(async (flags: { backend: string; cephConfig?: string; gracePeriod?: string; purge?: boolean; logLevel: string }, command: Command) => {
      const { runDown } = await import('./down.js');
      await runDown(flags, globalFlags(command));
    });
}
