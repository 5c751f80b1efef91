// `stowage apply -f FILE|DIR|-`: create or update objects from manifests, as `kubectl apply`.
import type { Command } from 'commander';
import { applyAll } from './apply.js';
import { connect, globalFlags, namespaceOf } from './connection.js';
import { clientAction, CliError, ReportedErrors } from './errors.js';
import { readManifests } from './manifests.js';

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** kubectl's --validate values and the fieldValidation each sends. */
const VALIDATE_MODES: Record<string, 'Strict' | 'Warn' | 'Ignore'> = { strict: 'Strict', true: 'Strict', warn: 'Warn', ignore: 'Ignore', false: 'Ignore' };

export function registerApplyCommand(program: Command): void {
  program
    .command('apply')
    .description('create or update objects from YAML/JSON manifests (kubectl apply semantics)')
    .option('-f, --filename <path>', 'a manifest file, a directory of them, or - for stdin (repeatable)', collect)
    .option('-R, --recursive', 'descend into subdirectories of -f directories')
    .option('--validate <mode>', "strict (unknown fields are refused), warn (dropped with a warning) or ignore, as kubectl's --validate; true = strict, false = ignore", 'strict')
    .action(
      clientAction(async (flags: { filename?: string[]; recursive?: boolean; validate: string }, command: Command) => {
        const g = globalFlags(command);
        const fieldValidation = VALIDATE_MODES[flags.validate.toLowerCase()];
        if (fieldValidation === undefined) throw new CliError(`error: invalid - validate option "${flags.validate}"; must be one of: strict (or true), warn, ignore (or false)`);
        if (!flags.filename || flags.filename.length === 0) throw new CliError('error: must specify one of -f and -k');
        const manifests = await readManifests(flags.filename, flags.recursive === true);
        const errors = [...manifests.errors];
        if (manifests.objects.length > 0) {
          const client = await connect(g, { fieldValidation });
          const placement = { namespace: await namespaceOf(g), explicit: Boolean(g.namespace) };
          errors.push(...(await applyAll(client, manifests.objects, placement, (line) => process.stdout.write(`${line}\n`))));
        } else if (errors.length === 0) {
          throw new CliError('error: no objects passed to apply');
        }
        if (errors.length > 0) throw new ReportedErrors(errors);
      }),
    );
}
