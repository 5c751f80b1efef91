// `stowage apply -f FILE|DIR|-`: create or update objects from manifests, as `kubectl apply`.
import type { Command } from 'commander';
import { applyAll } from './apply.js';
import { connect, globalFlags, namespaceOf } from './connection.js';
import { clientAction, CliError, ReportedErrors } from './errors.js';
import { readManifests } from './manifests.js';

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerApplyCommand(program: Command): void {
  program
    .command('apply')
    .description('create or update objects from YAML/JSON manifests (kubectl apply semantics)')
    .option('-f, --filename <path>', 'a manifest file, a directory of them, or - for stdin (repeatable)', collect)
    .option('-R, --recursive', 'descend into subdirectories of -f directories')
    .action(
      clientAction(async (flags: { filename?: string[]; recursive?: boolean }, command: Command) => {
        const g = globalFlags(command);
        if (!flags.filename || flags.filename.length === 0) throw new CliError('error: must specify one of -f and -k');
        const manifests = await readManifests(flags.filename, flags.recursive === true);
        const errors = [...manifests.errors];
        if (manifests.objects.length > 0) {
          const client = await connect(g);
          const placement = { namespace: await namespaceOf(g), explicit: Boolean(g.namespace) };
          errors.push(...(await applyAll(client, manifests.objects, placement, (line) => process.stdout.write(`${line}\n`))));
        } else if (errors.length === 0) {
          throw new CliError('error: no objects passed to apply');
        }
        if (errors.length > 0) throw new ReportedErrors(errors);
      }),
    );
}
