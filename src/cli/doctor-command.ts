// `stowage doctor`: checks this node for the traps seed 000 lists (kernel modules, Ceph client
// and cluster, kubelet mount propagation, stale fuse mounts, leftover loop devices, CSI sockets)
// and prints one line per check with its fix. Exit status 1 when a check FAILs.
import { type Command, Option } from 'commander';
import { pino } from 'pino';
import { ExecRunner } from '../driver/mount/exec.js';
import { globalFlags } from './connection.js';
import { CliError } from './errors.js';
import { probeSocket, realHost, tcpConnect } from './doctor/host.js';
import { exitStatus, formatResults, runDoctor } from './doctor/run.js';
import type { Backend } from './doctor/types.js';

interface DoctorFlags {
  cephConfig?: string;
  cephUser?: string;
  cephKeyfile?: string;
  kubeletDir: string[];
  backend?: string;
  endpoint?: string;
  output?: string;
}

const BACKENDS: Backend[] = ['local', 'rbd', 'cephfs'];

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this node for what blocks provisioning and mounting (modules, Ceph, propagation, stale mounts, loop devices, sockets); one line per check with its fix')
    .option('--ceph-config <file>', 'ceph-csi\'s config.json (clusterID → monitors): check each cluster\'s monitors')
    .option('--ceph-user <id>', 'Ceph user for the cluster version and mgr module checks (with --ceph-keyfile)')
    .option('--ceph-keyfile <file>', 'file holding that user\'s key (the key is never passed on the command line)')
    .addOption(new Option('--kubelet-dir <dir>', 'a kubelet root (repeatable)').argParser((v: string, acc: string[]) => [...acc, v]).default([], '/var/lib/kubelet'))
    .option('--backend <backend>', 'the backend this node serves (local, rbd, cephfs): what it needs missing is a FAIL')
    .option('--endpoint <endpoint>', 'the driver\'s CSI socket to Probe (default: those under --state-dir, when given)')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText(
      'after',
      [
        '',
        'Each check prints one line: ok|warn|FAIL  <check>: <finding> (fix: ...); -o json prints the same',
        'as a list of {check, status, finding, fix}. Exit status 1 when a check FAILs (something blocks',
        'provisioning or mounting), 0 with only warnings. The program-wide --state-dir names a `stowage up`',
        'state dir whose CSI sockets are probed and whose loop devices count as ours. Nothing is changed.',
      ].join('\n'),
    )
    .action(async (flags: DoctorFlags, command: Command) => {
      if (flags.backend !== undefined && !BACKENDS.includes(flags.backend as Backend)) throw new CliError(`error: --backend must be one of ${BACKENDS.join(', ')}`);
      if (flags.output !== 'text' && flags.output !== 'json') throw new CliError('error: --output must be text or json');
      if ((flags.cephUser === undefined) !== (flags.cephKeyfile === undefined)) throw new CliError('error: --ceph-user and --ceph-keyfile go together');
      const { stateDir } = globalFlags(command);
      const results = await runDoctor(
        { reader: realHost, runner: new ExecRunner(pino({ level: 'silent' })), tcpConnect, probe: probeSocket },
        {
          kubeletDirs: flags.kubeletDir,
          ...(flags.backend ? { backend: flags.backend as Backend } : {}),
          ...(stateDir ? { stateDir } : {}),
          ...(flags.endpoint ? { endpoint: flags.endpoint } : {}),
          ...(flags.cephConfig ? { cephConfig: flags.cephConfig } : {}),
          ...(flags.cephUser && flags.cephKeyfile ? { credentials: { user: flags.cephUser, keyfile: flags.cephKeyfile } } : {}),
        },
      );
      process.stdout.write(formatResults(results, flags.output));
      process.exitCode = exitStatus(results);
    });
}
