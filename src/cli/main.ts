import { Command } from 'commander';
import { registerApplyCommand } from './apply-command.js';
import { addGlobalFlags } from './connection.js';
import { registerDeleteCommand } from './delete-command.js';
import { registerDemoCommand } from './demo-command.js';
import { registerDescribeCommand } from './describe-command.js';
import { registerDriverCommand } from './driver-command.js';
import { CliError, exitCodeOf } from './errors.js';
import { registerGetCommand } from './get-command.js';
import { registerUpCommand } from './up-command.js';

/** kubectl spells boolean flags --wait=false and --no-headers=true; commander knows --no-wait and --no-headers. */
function normalizeBooleanFlags(argv: readonly string[]): string[] {
  return argv.flatMap((a) => {
    if (a === '--wait=true') return ['--wait'];
    if (a === '--wait=false') return ['--no-wait'];
    if (a === '--no-headers=true') return ['--no-headers'];
    if (a === '--no-headers=false') return [];
    return [a];
  });
}

const program = new Command();
program.name('stowage').description('Kubernetes-style persistent storage: CSI driver and embedded control plane').version('0.1.0');
addGlobalFlags(program);
registerUpCommand(program);
registerApplyCommand(program);
registerGetCommand(program);
registerDescribeCommand(program);
registerDeleteCommand(program);
registerDemoCommand(program);
registerDriverCommand(program);
(await import('./ceph-dev-command.js')).registerCephDevCommand(program);

program.parseAsync(normalizeBooleanFlags(process.argv)).catch((e: unknown) => {
  // Client commands fail with kubectl's wording, already one line per failure (CliError); the
  // others say who failed.
  const line = e instanceof CliError ? e.message : `stowage: ${e instanceof Error ? e.message : String(e)}`;
  if (line !== '') process.stderr.write(`${line}\n`);
  process.exit(exitCodeOf(e));
});
