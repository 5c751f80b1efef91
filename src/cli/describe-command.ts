// `stowage describe KIND [NAME…]`: kubectl's describe text, with the Events about each object.
import type { Command } from 'commander';
import type { ResourceInfo } from '../control/api/registry.js';
import type { Event, Pod } from '../control/api/types/core.js';
import type { KubeObject } from '../control/api/types/meta.js';
import { ApiStatusError, type ApiClient, resolveResource } from './api-client.js';
import { connect, globalFlags, namespaceOf } from './connection.js';
import { clientAction, CliError, errorLine, ReportedErrors } from './errors.js';
import { describeObject } from './format/describe.js';
import { parseTargets } from './get-command.js';

const EVENTS = resolveResource('events');
const PODS = resolveResource('pods');

/** The Events about an object: same kind and name (and namespace, and uid when both have one). */
export async function eventsAbout(client: ApiClient, resource: ResourceInfo, obj: KubeObject): Promise<Event[]> {
  const selector = [`involvedObject.kind=${resource.kind}`, `involvedObject.name=${obj.metadata.name ?? ''}`];
  if (resource.namespaced) selector.push(`involvedObject.namespace=${obj.metadata.namespace ?? ''}`);
  const list = await client.list<Event>(EVENTS, { fieldSelector: selector.join(',') });
  const uid = obj.metadata.uid;
  return list.items.filter((e) => !uid || !e.involvedObject?.uid || e.involvedObject.uid === uid);
}

export async function describeOne(client: ApiClient, resource: ResourceInfo, obj: KubeObject): Promise<string> {
  const events = await eventsAbout(client, resource, obj);
  let pods: Pod[] | undefined;
  if (resource.plural === 'persistentvolumeclaims') pods = (await client.list<Pod>(PODS, { namespace: obj.metadata.namespace ?? '' })).items;
  return describeObject(resource, obj, { events, ...(pods ? { pods } : {}) });
}

export function registerDescribeCommand(program: Command): void {
  program
    .command('describe')
    .description('show an object in detail, with its events: describe pvc NAME')
    .argument('<kind>', 'pvc, pv, sc, pod, node, csidriver, csinode, volumeattachment, secret, configmap, volumesnapshot…')
    .argument('[names...]', 'object names (default: every object of the kind)')
    .option('-A, --all-namespaces', 'every namespace (without names)')
    .action(
      clientAction(async (kind: string, names: string[], flags: { allNamespaces?: boolean }, command: Command) => {
        const g = globalFlags(command);
        const requests = parseTargets([kind, ...names]);
        const client = await connect(g);
        const namespace = await namespaceOf(g);
        const texts: string[] = [];
        const errors: string[] = [];
        for (const { resource, names: wanted } of requests) {
          const ns = resource.namespaced ? namespace : undefined;
          let objects: KubeObject[] = [];
          if (wanted.length === 0) {
            objects = (await client.list(resource, flags.allNamespaces || ns === undefined ? {} : { namespace: ns })).items;
          } else {
            for (const name of wanted) {
              try {
                objects.push(await client.get(resource, ns, name));
              } catch (err) {
                if (!(err instanceof ApiStatusError)) throw err;
                errors.push(errorLine(err));
              }
            }
          }
          for (const obj of objects) texts.push(await describeOne(client, resource, obj));
        }
        // kubectl separates objects with a blank line.
        process.stdout.write(texts.join('\n\n'));
        if (texts.length === 0 && errors.length === 0) {
          throw new CliError(requests.some((r) => r.resource.namespaced) && !flags.allNamespaces ? `No resources found in ${namespace} namespace.` : 'No resources found', 0);
        }
        if (errors.length > 0) throw new ReportedErrors(errors);
      }),
    );
}
