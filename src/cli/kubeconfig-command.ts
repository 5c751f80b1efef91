// `stowage kubeconfig`: prints the admin kubeconfig that `stowage up` wrote into the state
// directory, for `stowage kubeconfig > ~/.kube/config` or KUBECONFIG=<(stowage kubeconfig).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { globalFlags, stateDirOf } from './connection.js';
import { CliError } from './errors.js';
import { KUBECONFIG_FILE } from './kubeconfig.js';

export async function printKubeconfig(stateDir: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const path = join(stateDir, KUBECONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new CliError(`error: no kubeconfig in ${stateDir} (\`stowage up\` writes ${path} when it serves https://)`);
  }
  out.write(text);
}

export function registerKubeconfigCommand(program: Command): void {
  program
    .command('kubeconfig')
    .description('print the admin kubeconfig of `stowage up` (<state-dir>/kubeconfig), for kubectl and client-go tools')
    .addHelpText('after', '\nExample:\n  stowage kubeconfig > stowage.kubeconfig && kubectl --kubeconfig stowage.kubeconfig get ns')
    .action(async (_flags: unknown, command: Command) => {
      await printKubeconfig(stateDirOf(globalFlags(command)));
    });
}
