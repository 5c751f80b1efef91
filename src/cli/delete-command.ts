// `stowage delete -f FILE | KIND NAME… | KIND --all`: deletes objects and, like kubectl, waits
// until they are gone (finalizers removed) unless --wait=false.
import type { Command } from 'commander';
import type { ResourceInfo } from '../control/api/registry.js';
import { ApiStatusError, type ApiClient } from './api-client.js';
import { mapResource, place } from './apply.js';
import { collect } from './apply-command.js';
import { connect, globalFlags, namespaceOf } from './connection.js';
import { clientAction, CliError, errorLine, ReportedErrors } from './errors.js';
import { kindPrefix } from './format/columns.js';
import { parseTargets } from './get-command.js';
import { readManifests } from './manifests.js';

interface DeleteFlags {
  filename?: string[];
  recursive?: boolean;
  all?: boolean;
  wait: boolean;
  timeout: string;
  ignoreNotFound?: boolean;
  gracePeriod?: string;
  force?: boolean;
}

/** --grace-period / --force as DeleteOptions (kubectl: --force alone means --grace-period=0). */
function graceOptions(flags: DeleteFlags): { gracePeriodSeconds?: number } {
  if (flags.force) {
    if (flags.gracePeriod !== undefined && Number(flags.gracePeriod) !== 0) throw new CliError('error: --force requires --grace-period=0');
    process.stderr.write('Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.\n');
    return { gracePeriodSeconds: 0 };
  }
  if (flags.gracePeriod === undefined) return {};
  const seconds = Number(flags.gracePeriod);
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new CliError(`error: --grace-period must be a whole number of seconds, not ${JSON.stringify(flags.gracePeriod)}`);
  // kubectl: 0 without --force means 1 (the node still gets to stop the pod).
  return { gracePeriodSeconds: seconds === 0 ? 1 : seconds };
}

interface Target {
  resource: ResourceInfo;
  namespace: string | undefined;
  name: string;
}

/** "30s", "2m", "1h", "500ms", or plain seconds; 0 means no limit. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new CliError(`error: invalid duration "${text}" (examples: 30s, 2m, 1h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000;
  return Number(m[1]) * unit;
}

/** `persistentvolumeclaim "x" deleted`, as kubectl 1.32 words it. */
export function deletedLine(resource: ResourceInfo, name: string): string {
  return `${kindPrefix(resource)} "${name}" deleted`;
}

async function waitGone(client: ApiClient, targets: readonly (Target & { uid: string | undefined })[], timeoutMs: number): Promise<string[]> {
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let pending = [...targets];
  for (let delay = 100; pending.length > 0; delay = Math.min(delay * 2, 1000)) {
    const still: typeof pending = [];
    for (const t of pending) {
      const obj = await client.find(t.resource, t.namespace, t.name);
      if (obj !== undefined && (t.uid === undefined || obj.metadata.uid === t.uid)) still.push(t);
    }
    pending = still;
    if (pending.length === 0) break;
    if (Date.now() >= deadline) {
      return pending.map((t) => `error: timed out waiting for the condition on ${kindPrefix(t.resource)}/${t.name}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
  }
  return [];
}

export function registerDeleteCommand(program: Command): void {
  program
    .command('delete')
    .description('delete objects by manifest (-f) or by kind and name, and wait until they are gone')
    .argument('[kind]', 'pvc, pv, sc, … (or KIND/NAME)')
    .argument('[names...]', 'object names')
    .option('-f, --filename <path>', 'delete the objects of a manifest file, directory or - (repeatable)', collect)
    .option('-R, --recursive', 'descend into subdirectories of -f directories')
    .option('--all', 'every object of the kind in the namespace')
    .option('--wait', 'wait until the objects are gone, finalizers done (--wait=false: return at once)', true)
    .option('--no-wait', 'return as soon as deletion has begun')
    .option('--timeout <duration>', 'how long to wait, e.g. 60s; 0 waits without limit', '0')
    .option('--ignore-not-found', 'treat "not found" as success')
    .option('--grace-period <seconds>', 'pods: seconds their node may take to stop them (0: remove at once; default the pod\'s own)')
    .option('--force', 'with --grace-period=0: remove pods at once, without waiting for their node')
    .action(
      clientAction(async (kind: string | undefined, names: string[], flags: DeleteFlags, command: Command) => {
        const g = globalFlags(command);
        const namespace = await namespaceOf(g);
        const timeoutMs = parseDuration(flags.timeout);
        const errors: string[] = [];
        let client: ApiClient | undefined;
        const targets: Target[] = [];

        if (flags.filename && flags.filename.length > 0) {
          if (kind !== undefined) throw new CliError('error: resources and -f cannot both be given');
          const manifests = await readManifests(flags.filename, flags.recursive === true);
          errors.push(...manifests.errors);
          for (const item of manifests.objects) {
            try {
              const resource = mapResource(item);
              const obj = place(resource, item.object, { namespace, explicit: Boolean(g.namespace) });
              targets.push({ resource, namespace: obj.metadata.namespace, name: obj.metadata.name ?? '' });
            } catch (err) {
              errors.push(errorLine(err));
            }
          }
        } else {
          if (kind === undefined) throw new CliError('error: you must provide one or more resources by argument or filename');
          const requests = parseTargets([kind, ...names]);
          client = await connect(g);
          for (const { resource, names: wanted } of requests) {
            const ns = resource.namespaced ? namespace : undefined;
            if (flags.all) {
              if (wanted.length > 0) throw new CliError('error: names and --all cannot both be given');
              const list = await client.list(resource, ns === undefined ? {} : { namespace: ns });
              for (const o of list.items) targets.push({ resource, namespace: ns, name: o.metadata.name ?? '' });
            } else {
              if (wanted.length === 0) throw new CliError(`error: resource(s) were provided, but no name was specified (use --all to delete every ${resource.singular})`);
              for (const name of wanted) targets.push({ resource, namespace: ns, name });
            }
          }
        }

        const deleted: (Target & { uid: string | undefined })[] = [];
        if (targets.length > 0) {
          client ??= await connect(g);
          for (const t of targets) {
            try {
              const last = await client.delete(t.resource, t.namespace, t.name, graceOptions(flags));
              deleted.push({ ...t, uid: last.metadata.uid });
              process.stdout.write(`${deletedLine(t.resource, t.name)}\n`);
            } catch (err) {
              if (flags.ignoreNotFound && err instanceof ApiStatusError && err.code === 404) continue;
              errors.push(errorLine(err));
            }
          }
          if (flags.wait && deleted.length > 0) errors.push(...(await waitGone(client, deleted, timeoutMs)));
        } else if (errors.length === 0 && !flags.all) {
          throw new CliError('error: no objects passed to delete');
        } else if (errors.length === 0) {
          process.stderr.write('No resources found\n');
        }
        if (errors.length > 0) throw new ReportedErrors(errors);
      }),
    );
}

