// `stowage gc`: orphans in both directions — volumes and snapshots a driver holds that no
// PersistentVolume / VolumeSnapshotContent refers to, and PVs / contents whose storage is gone or
// whose driver is no longer registered. Dry-run by default; --delete removes what is older than
// --grace-period, through the driver (storage) or the API (objects). The work is in gc/.
import { type Command, Option } from 'commander';
import { connect, globalFlags, stateDirOf } from './connection.js';
import { CliError } from './errors.js';
import type { BackendLister } from './gc/run.js';

interface GcFlags {
  delete?: boolean;
  yes?: boolean;
  gracePeriod: string;
  endpoint: string[];
  cephConfig?: string;
}

export function registerGcCommand(program: Command): void {
  program
    .command('gc')
    .description('list orphaned volumes and snapshots (in the drivers, and PVs / VolumeSnapshotContents whose storage or driver is gone); --delete removes them')
    .option('--delete', 'delete what is listed and older than the grace period (asks first on a terminal)')
    .option('-y, --yes', 'with --delete: do not ask')
    .option('--grace-period <duration>', 'never touch anything younger than this (e.g. 1h, 30m, 0)', '1h')
    .addOption(new Option('--endpoint <socket>', "a driver's CSI controller socket to list (repeatable)").argParser((v: string, acc: string[]) => [...acc, v]).default([], "the sockets of --state-dir's `stowage up`"))
    .option('--ceph-config <file>', "ceph-csi's cluster list (clusterID → monitors): also list the rbd and cephfs journals of the StorageClasses' pools")
    .addHelpText(
      'after',
      [
        '',
        'Columns: KIND (Volume, Snapshot: in a driver; PersistentVolume, VolumeSnapshotContent: in the API),',
        'DRIVER, ID/NAME, WHERE (node, pool, or api), AGE, WHY. A volume whose driver reports no creation',
        'time is aged from the first gc run that saw it unreferenced (kept in the state directory).',
        'Never touched: anything younger than --grace-period, a create still in flight (reserved in the',
        "driver's journal, not complete: listed, so an abandoned one is found), a member of a group snapshot,",
        "anything not in a driver's journal. Storage is deleted through the driver's Controller service with",
        'the Secret its class names; API objects are deleted, and their finalizers removed only when their',
        'driver is not registered (said on the line).',
        '',
        'Examples:',
        '  stowage gc                                  # list',
        '  stowage gc --delete --grace-period 2h       # delete what is older than 2h, after asking',
      ].join('\n'),
    )
    .action(async (flags: GcFlags, command: Command) => {
      const { parseDuration } = await import('./gc/duration.js');
      const graceMs = parseDuration(flags.gracePeriod);
      if (graceMs === undefined) throw new CliError(`error: --grace-period must be a duration such as 1h, 30m, 45s or 0, not ${JSON.stringify(flags.gracePeriod)}`);
      if (flags.yes && !flags.delete) throw new CliError('error: --yes goes with --delete');
      const g = globalFlags(command);
      const { runGc, terminalConfirm } = await import('./gc/run.js');
      const listers: BackendLister[] = flags.cephConfig === undefined ? [] : [(await import('./gc/ceph-inventory.js')).cephLister(flags.cephConfig)];
      const confirm = terminalConfirm();
      await runGc(await connect(g), {
        graceMs,
        delete: flags.delete === true,
        yes: flags.yes === true,
        endpoints: flags.endpoint,
        stateDir: stateDirOf(g),
        listers,
        ...(confirm === undefined ? {} : { confirm }),
      });
    });
}
