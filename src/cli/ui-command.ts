// `stowage ui`: prints the web console's address for the kubeconfig's server (the state
// directory's own kubeconfig unless --kubeconfig/--server say otherwise), with the token in the
// URL fragment (#token=…), which browsers never send to the server, so it reaches no log. It opens
// nothing by itself.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { connectionOptions, type GlobalFlags, globalFlags, stateDirOf } from './connection.js';
import { CliError } from './errors.js';
import { KUBECONFIG_FILE } from './kubeconfig.js';

/** The console's URL for the flags' server and token. */
export async function consoleUrl(flags: GlobalFlags): Promise<string> {
  const own = join(stateDirOf(flags), KUBECONFIG_FILE);
  const useOwn = flags.kubeconfig === undefined && flags.server === undefined && (await access(own).then(() => true, () => false));
  const options = await connectionOptions(useOwn ? { ...flags, kubeconfig: own } : flags);
  if (!/^https?:\/\//.test(options.server)) {
    throw new CliError(`error: the console is served on the API's https:// address, and ${options.server} is not one (run \`stowage up\` with its default listeners, or pass --kubeconfig or --server)`);
  }
  const base = `${options.server.replace(/\/+$/, '')}/ui/`;
  return options.token === undefined ? base : `${base}#token=${encodeURIComponent(options.token)}`;
}

export function registerUiCommand(program: Command): void {
  program
    .command('ui')
    .description('print the web console\'s address (with the token in the URL fragment); open it in a browser')
    .addHelpText(
      'after',
      [
        '',
        'The console is served by `stowage up` at /ui/ on its API address: topology, a claim\'s journey, capacity, pods, apply/delete YAML.',
        'The token travels in the fragment (#token=…), which the browser keeps to itself; the page keeps it for the tab only.',
        'The server\'s certificate is signed by <state-dir>/pki/ca.crt: trust that CA in the browser, or accept the warning.',
        '',
        'Example:',
        '  stowage ui            # https://127.0.0.1:6443/ui/#token=…',
      ].join('\n'),
    )
    .action(async (_flags: unknown, command: Command) => {
      process.stdout.write(`${await consoleUrl(globalFlags(command))}\n`);
    });
}
