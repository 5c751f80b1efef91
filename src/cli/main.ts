import { Command } from 'commander';
import { addGlobalFlags } from './connection.js';
import { registerDriverCommand } from './driver-command.js';
import { CliError, exitCodeOf } from './errors.js';
import { CLI_VERSION } from './version.js';

/** kubectl spells boolean flags --wait=false and --no-headers=true; commander knows --no-wait and --no-headers. */
function normalizeBooleanFlags(argv: readonly string[]): string[] {
  return argv.flatMap((a) => {
    if (a === '--wait=true') return ['--wait'];
    if (a === '--wait=false') return ['--no-wait'];
    if (a === '--no-headers=true') return ['--no-headers'];
    if (a === '--no-headers=false') return [];
    if (a === '--insecure-skip-tls-verify=true') return ['--insecure-skip-tls-verify'];
    if (a === '--insecure-skip-tls-verify=false') return [];
    return [a];
  });
}

const program = new Command();
program.name('stowage').description('Kubernetes-style persistent storage: CSI driver and embedded control plane').version(CLI_VERSION);
addGlobalFlags(program);
// The driver is a long-running daemon whose memory counts: when it is what runs, none of the
// client commands (and the YAML, validation and table code they bring) is loaded.
if (process.argv[2] !== 'driver') {
  const commands = await Promise.all([
    import('./up-command.js'),
    import('./kubeconfig-command.js'),
    import('./apply-command.js'),
    import('./get-command.js'),
    import('./describe-command.js'),
    import('./delete-command.js'),
    import('./demo-command.js'),
    import('./node-command.js'),
    import('./pod-commands.js'),
    import('./doctor-command.js'),
    import('./down-command.js'),
    import('./ui-command.js'),
    import('./gc-command.js'),
  ]);
  const [up, kubeconfig, apply, get, describe, del, demo, node, pods, doctor, down, ui, gc] = commands;
  up.registerUpCommand(program);
  kubeconfig.registerKubeconfigCommand(program);
  apply.registerApplyCommand(program);
  get.registerGetCommand(program);
  describe.registerDescribeCommand(program);
  del.registerDeleteCommand(program);
  demo.registerDemoCommand(program);
  node.registerNodeCommand(program);
  pods.registerPodCommands(program);
  doctor.registerDoctorCommand(program);
  down.registerDownCommand(program);
  ui.registerUiCommand(program);
  gc.registerGcCommand(program);
}
registerDriverCommand(program);
if (process.argv[2] !== 'driver') (await import('./ceph-dev-command.js')).registerCephDevCommand(program);

program.parseAsync(normalizeBooleanFlags(process.argv)).catch((e: unknown) => {
  // Client commands fail with kubectl's wording, already one line per failure (CliError); the
  // others say who failed.
  const line = e instanceof CliError ? e.message : `stowage: ${e instanceof Error ? e.message : String(e)}`;
  if (line !== '') process.stderr.write(`${line}\n`);
  process.exit(exitCodeOf(e));
});
