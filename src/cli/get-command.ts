// `stowage get KIND[,KIND…] [NAME…] [-o wide|yaml|json|name] [-A] [-l SELECTOR]`: kubectl's
// tables (and YAML/JSON/names) of the objects the control plane holds.
import type { Command } from 'commander';
import type { ResourceInfo } from '../control/api/registry.js';
import type { Event } from '../control/api/types/core.js';
import type { KubeObject } from '../control/api/types/meta.js';
import { ApiStatusError, type ApiClient, resolveResource } from './api-client.js';
import { connect, globalFlags, namespaceOf } from './connection.js';
import { clientAction, CliError, errorLine, ReportedErrors } from './errors.js';
import { eventLastSeen, formatObjects, kindPrefix } from './format/columns.js';
import { asList, toJson, toYaml } from './output.js';

interface GetFlags {
  output?: string;
  allNamespaces?: boolean;
  selector?: string;
  fieldSelector?: string;
  headers: boolean;
  showManagedFields?: boolean;
}

const OUTPUTS = ['wide', 'yaml', 'json', 'name'];

/** What the arguments ask for: whole kinds, or named objects of kinds (KIND NAME… or KIND/NAME…). */
export interface Request {
  resource: ResourceInfo;
  /** Empty: every object of the kind. */
  names: string[];
}

export function parseTargets(args: readonly string[]): Request[] {
  if (args.length === 0) throw new CliError('error: you must specify the type of resource to get. Use "stowage get pvc", "stowage get pv", "stowage get sc"…');
  const first = args[0] ?? '';
  if (args.every((a) => a.includes('/'))) {
    return args.map((a) => {
      const [kind = '', name = ''] = a.split('/', 2);
      if (name === '') throw new CliError(`error: arguments in resource/name form must have a single resource and name: "${a}"`);
      return { resource: resolveResource(kind), names: [name] };
    });
  }
  if (args.some((a) => a.includes('/'))) throw new CliError('error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form');
  const kinds = first.split(',').filter((k) => k !== '');
  const names = args.slice(1);
  if (kinds.length > 1 && names.length > 0) throw new CliError('error: names cannot be given with several resource types; use TYPE/NAME');
  return kinds.map((k) => ({ resource: resolveResource(k), names }));
}

/** Server order (by name), except events: oldest first, as they happened. */
function sortForDisplay(resource: ResourceInfo, items: KubeObject[]): KubeObject[] {
  if (resource.plural !== 'events') return items;
  const when = (e: KubeObject): number => Date.parse(eventLastSeen(e as Event) ?? '') || 0;
  return [...items].sort((a, b) => when(a) - when(b));
}

export function registerGetCommand(program: Command): void {
  program
    .command('get')
    .description('show objects as kubectl does: get pvc | get pv | get sc | get KIND NAME -o yaml')
    .argument('<kind>', 'pvc, pv, sc, pod, node, csidriver, csinode, volumeattachment, event, namespace, secret, configmap, volumesnapshot… (several: pvc,pv)')
    .argument('[names...]', 'object names (default: all)')
    .option('-o, --output <format>', 'wide, yaml, json or name')
    .option('-A, --all-namespaces', 'list objects of every namespace')
    .option('-l, --selector <selector>', 'label selector, e.g. app=db,tier!=cache')
    .option('--field-selector <selector>', 'field selector, e.g. status.phase=Bound')
    .option('--no-headers', 'print tables without the header row')
    .option('--show-managed-fields', 'keep metadata.managedFields in -o yaml/json (left out by default, as kubectl does)')
    .action(
      clientAction(async (kind: string, names: string[], flags: GetFlags, command: Command) => {
        const g = globalFlags(command);
        if (flags.output !== undefined && !OUTPUTS.includes(flags.output)) {
          throw new CliError(`error: unable to match a printer suitable for the output format "${flags.output}", allowed formats are: ${OUTPUTS.join(',')}`);
        }
        const requests = parseTargets([kind, ...names]);
        const client = await connect(g);
        const namespace = await namespaceOf(g);
        await runGet(client, requests, { ...flags, namespace, out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
      }),
    );
}

/** kubectl leaves managedFields out of -o yaml/json unless --show-managed-fields. */
function withoutManagedFields(obj: KubeObject): KubeObject {
  if (obj.metadata.managedFields === undefined) return obj;
  const { managedFields: _managedFields, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

export interface GetOptions extends GetFlags {
  namespace: string;
  out: (text: string) => void;
  err: (text: string) => void;
}

export async function runGet(client: ApiClient, requests: readonly Request[], options: GetOptions): Promise<void> {
  const errors: string[] = [];
  const collected: { resource: ResourceInfo; items: KubeObject[] }[] = [];
  for (const { resource, names } of requests) {
    const ns = resource.namespaced && !options.allNamespaces ? options.namespace : undefined;
    let items: KubeObject[] = [];
    if (names.length === 0) {
      const list = await client.list(resource, {
        ...(ns === undefined ? {} : { namespace: ns }),
        ...(options.selector ? { labelSelector: options.selector } : {}),
        ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
      });
      items = sortForDisplay(resource, list.items);
    } else {
      const getNs = resource.namespaced ? options.namespace : undefined;
      for (const name of names) {
        try {
          items.push(await client.get(resource, getNs, name));
        } catch (err) {
          if (!(err instanceof ApiStatusError)) throw err;
          errors.push(errorLine(err));
        }
      }
    }
    collected.push({ resource, items });
  }

  const all = collected.flatMap((c) => c.items);
  const single = requests.length === 1 && (requests[0]?.names.length ?? 0) === 1;
  if (options.output === 'yaml' || options.output === 'json') {
    if (all.length > 0 || !single) {
      const shown = options.showManagedFields ? all : all.map(withoutManagedFields);
      const value = single && shown.length === 1 ? shown[0] : asList(shown);
      options.out(options.output === 'yaml' ? toYaml(value) : toJson(value));
    }
  } else if (options.output === 'name') {
    for (const { resource, items } of collected) for (const o of items) options.out(`${kindPrefix(resource)}/${o.metadata.name ?? ''}\n`);
  } else {
    const withKind = collected.length > 1;
    let first = true;
    for (const { resource, items } of collected) {
      if (items.length === 0) continue;
      if (!first) options.out('\n');
      first = false;
      options.out(
        formatObjects(resource, items, {
          wide: options.output === 'wide',
          withNamespace: options.allNamespaces === true,
          withKind,
          noHeaders: !options.headers,
        }),
      );
    }
  }
  if (all.length === 0 && errors.length === 0 && options.output !== 'yaml' && options.output !== 'json') {
    const namespaced = requests.some((r) => r.resource.namespaced);
    options.err(namespaced && !options.allNamespaces ? `No resources found in ${options.namespace} namespace.\n` : 'No resources found\n');
  }
  if (errors.length > 0) throw new ReportedErrors(errors);
}
