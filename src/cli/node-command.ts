// `stowage node join --name N`: adds a node to a running `stowage up`. The node is declared in the
// store (a Node annotated stowage.dev/embedded-node=true); `up` sees it and starts the node's
// local CSI driver, pool and agent, which register it (CSINode, topology) and mark it Ready.
import type { Command } from 'commander';
import type { Node } from '../control/api/types/core.js';
import { ApiStatusError, resolveResource } from './api-client.js';
import { connect, globalFlags } from './connection.js';
import { clientAction, CliError, errorLine } from './errors.js';

const NODES = resolveResource('nodes');
const CSINODES = resolveResource('csinodes');
const EMBEDDED_NODE_ANNOTATION = 'stowage.dev/embedded-node';
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function registerNodeCommand(program: Command): void {
  const node = program.command('node').description('the nodes of `stowage up`');
  node
    .command('join')
    .description('add a node (own pool, CSI node plugin and agent) to the running `stowage up`')
    .requiredOption('--name <name>', 'the new node\'s name (a DNS label)')
    .option('--timeout <seconds>', 'how long to wait for the node to be Ready', '60')
    .action(
      clientAction(async (flags: { name: string; timeout: string }, command: Command) => {
        if (!NAME.test(flags.name) || flags.name.length > 63) throw new CliError(`error: invalid node name ${JSON.stringify(flags.name)}: must be a lowercase DNS label (a-z, 0-9, "-")`);
        const client = await connect(globalFlags(command));
        const existing = await client.find<Node>(NODES, undefined, flags.name);
        try {
          if (existing === undefined) {
            await client.create<Node>(NODES, {
              apiVersion: 'v1',
              kind: 'Node',
              metadata: { name: flags.name, labels: { 'kubernetes.io/hostname': flags.name }, annotations: { [EMBEDDED_NODE_ANNOTATION]: 'true' } },
            });
          } else if (existing.metadata.annotations?.[EMBEDDED_NODE_ANNOTATION] !== 'true') {
            await client.patch(NODES, undefined, flags.name, { metadata: { annotations: { [EMBEDDED_NODE_ANNOTATION]: 'true' } } });
          }
        } catch (err) {
          if (err instanceof ApiStatusError) throw new CliError(errorLine(err));
          throw err;
        }
        const deadline = Date.now() + Number(flags.timeout) * 1000;
        for (;;) {
          const n = await client.find<Node>(NODES, undefined, flags.name);
          const ready = n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
          const csiNode = await client.find(CSINODES, undefined, flags.name);
          if (ready && csiNode !== undefined) break;
          if (Date.now() > deadline) throw new CliError(`error: node ${flags.name} did not become Ready within ${flags.timeout}s (is \`stowage up\` running? see its log)`);
          await sleep(200);
        }
        process.stdout.write(`node/${flags.name} joined\n`);
      }),
    );
}
