import type { Command } from 'commander';
import { pino } from 'pino';
import { DevCluster, type DevClusterStatus } from '../ceph/dev-cluster.js';
import { parseQuantity } from './quantity.js';

interface CommonFlags {
  dir: string;
  logLevel: string;
}

/**
 * `stowage ceph-dev up|down|status --dir DIR`: a real one-node Ceph cluster on 127.0.0.1 for tests
 * and demos. `up` prints one JSON object on stdout (clusterID, monitors, userID, userKey, pool,
 * fsName, conf); progress goes to stderr.
 */
export function registerCephDevCommand(program: Command): void {
  const cmd = program
    .command('ceph-dev')
    .description('a one-node Ceph cluster (mon, mgr, memstore OSD, MDS) on 127.0.0.1 for tests and demos');

  const make = (flags: CommonFlags, memstoreSize?: string) =>
    new DevCluster(flags.dir, {
      // Command runner debug lines (every ceph call, with timings) at --log-level debug, on stderr.
      logger: pino({ level: flags.logLevel }, pino.destination(2)),
      progress: (msg) => process.stderr.write(`ceph-dev: ${msg}\n`),
      ...(memstoreSize ? { memstoreBytes: parseQuantity(memstoreSize) } : {}),
    });

  cmd
    .command('up')
    .description('install what is missing, start the cluster under DIR (or find it running) and print its connection JSON')
    .requiredOption('--dir <dir>', 'the cluster directory (created; everything lives in it)')
    .option('--memstore-size <size>', 'memory the OSD may use for data', '3Gi')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'warn')
    .action(async (flags: CommonFlags & { memstoreSize: string }) => {
      const info = await make(flags, flags.memstoreSize).up();
      process.stdout.write(`${JSON.stringify(info)}\n`);
    });

  cmd
    .command('down')
    .description('unmount what is mounted under DIR, stop the cluster\'s daemons and remove DIR')
    .requiredOption('--dir <dir>', 'the cluster directory')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'warn')
    .action(async (flags: CommonFlags) => {
      await make(flags).down();
    });

  cmd
    .command('status')
    .description('show each daemon (pid, alive) and the cluster health; exits 1 unless all run')
    .requiredOption('--dir <dir>', 'the cluster directory')
    .option('--json', 'print the status as JSON')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'warn')
    .action(async (flags: CommonFlags & { json?: boolean }) => {
      const s = await make(flags).status();
      process.stdout.write(flags.json ? `${JSON.stringify(s)}\n` : formatStatus(s));
      process.exitCode = s.allRunning ? 0 : 1;
    });
}

function formatStatus(s: DevClusterStatus): string {
  if (s.state === 'absent') return `no ceph-dev cluster in ${s.dir}\n`;
  const lines = [`cluster ${s.clusterID} in ${s.dir}: ${s.state}, mon ${s.monitors?.join(',')}`];
  for (const d of s.daemons) lines.push(`  ${d.name.padEnd(6)} pid ${String(d.pid || '-').padEnd(8)} ${d.alive ? 'running' : 'NOT RUNNING'}`);
  if (s.health) {
    lines.push(`  health: ${s.health.status}`);
    for (const [id, msg] of Object.entries(s.health.checks)) lines.push(`    ${id}: ${msg}`);
  } else if (s.healthError) {
    lines.push(`  health: unknown (${s.healthError.split('\n')[0]})`);
  }
  return `${lines.join('\n')}\n`;
}
