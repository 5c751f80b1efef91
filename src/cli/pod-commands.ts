// `stowage logs POD` and `stowage exec POD -- CMD…`: a pod's container output and a command run
// inside a running container. The pods of `stowage up` run on this machine, so both read the node's
// runtime state under <state-dir>/nodes/<node> (the pod's spec.nodeName) directly.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import pino from 'pino';
import type { Command } from 'commander';
import type { Pod } from '../control/api/types/core.js';
import { nodeRoot } from '../control/node/embedded-nodes.js';
import { PodRuntime } from '../control/node/runtime/pod-runtime.js';
import { ExecRunner } from '../driver/mount/exec.js';
import { ApiStatusError, resolveResource } from './api-client.js';
import { connect, globalFlags, namespaceOf, stateDirOf } from './connection.js';
import { clientAction, CliError, errorLine } from './errors.js';

const PODS = resolveResource('pods');

async function podAndRuntime(command: Command, name: string): Promise<{ pod: Pod; runtime: PodRuntime }> {
  const g = globalFlags(command);
  const client = await connect(g);
  let pod: Pod;
  try {
    pod = await client.get<Pod>(PODS, await namespaceOf(g), name);
  } catch (err) {
    if (err instanceof ApiStatusError) throw new CliError(errorLine(err));
    throw err;
  }
  const node = pod.spec.nodeName;
  if (!node) throw new CliError(`error: pod ${name} is not scheduled to a node yet`);
  const logger = pino({ level: 'silent' });
  return { pod, runtime: new PodRuntime({ rootDir: nodeRoot(stateDirOf(g), node), runner: new ExecRunner(logger), logger }) };
}

function containerOf(pod: Pod, wanted: string | undefined): string {
  const names = pod.spec.containers.map((c) => c.name);
  if (wanted !== undefined) {
    // -c may name an init container too, as kubectl's logs and exec allow.
    const valid = [...(pod.spec.initContainers ?? []).map((c) => c.name), ...names];
    if (!valid.includes(wanted)) throw new CliError(`error: container ${wanted} is not valid for pod ${pod.metadata.name ?? ''}`);
    return wanted;
  }
  if (names.length > 1) process.stderr.write(`Defaulted container "${names[0] ?? ''}" out of: ${names.join(', ')}\n`);
  return names[0] ?? '';
}

function restartCount(pod: Pod, container: string): number {
  type Counted = { name: string; restartCount?: number }[];
  const statuses = [...((pod.status?.['initContainerStatuses'] as Counted | undefined) ?? []), ...((pod.status?.['containerStatuses'] as Counted | undefined) ?? [])];
  return statuses.find((s) => s.name === container)?.restartCount ?? 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function registerPodCommands(program: Command): void {
  program
    .command('logs')
    .description("print a pod container's output: logs POD [-c CONTAINER] [-p] [-f]")
    .argument('<pod>', 'pod name')
    .option('-c, --container <name>', 'container (default: the first)')
    .option('-p, --previous', "the previous attempt's output (after a restart)")
    .option('-f, --follow', 'keep printing new output until the container exits')
    .action(
      clientAction(async (name: string, flags: { container?: string; previous?: boolean; follow?: boolean }, command: Command) => {
        const { pod, runtime } = await podAndRuntime(command, name);
        const container = containerOf(pod, flags.container);
        const uid = pod.metadata.uid ?? '';
        const current = restartCount(pod, container);
        if (flags.previous && current === 0) throw new CliError(`error: previous terminated container "${container}" in pod "${name}" not found`);
        const path = runtime.logPath(uid, container, flags.previous ? current - 1 : current);
        const info = await stat(path).catch(() => undefined);
        if (info === undefined) {
          const dir = await readdir(`${nodeRoot(stateDirOf(globalFlags(command)), pod.spec.nodeName ?? '')}/pods/${uid}`).catch(() => undefined);
          throw new CliError(dir === undefined ? `error: container "${container}" in pod "${name}" has no logs on this machine (is its node's state under --state-dir?)` : `error: container "${container}" in pod "${name}" is waiting to start`);
        }
        let offset = 0;
        const copy = async (): Promise<void> => {
          const size = (await stat(path)).size;
          if (size <= offset) return;
          await new Promise<void>((resolve, reject) => {
            const stream = createReadStream(path, { start: offset, end: size - 1 });
            stream.on('error', reject);
            stream.on('end', resolve);
            stream.pipe(process.stdout, { end: false });
          });
          offset = size;
        };
        await copy();
        if (!flags.follow) return;
        for (;;) {
          const status = await runtime.status(uid, container);
          await copy();
          if (status?.state !== 'running') return;
          await sleep(250);
        }
      }),
    );

  program
    .command('exec')
    .description('run a command in a running container: exec POD [-c CONTAINER] -- CMD [ARGS…]')
    .argument('<pod>', 'pod name')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('-c, --container <name>', 'container (default: the first)')
    .option('-i, --stdin', 'accepted for kubectl compatibility: stdin is always passed')
    .option('-t, --tty', 'accepted for kubectl compatibility')
    .action(
      clientAction(async (name: string, argv: string[], flags: { container?: string }, command: Command) => {
        const { pod, runtime } = await podAndRuntime(command, name);
        const container = containerOf(pod, flags.container);
        const status = await runtime.status(pod.metadata.uid ?? '', container);
        if (status?.state !== 'running') throw new CliError(`error: cannot exec into container "${container}" in pod "${name}": it is not running`);
        const child = runtime.exec(pod.metadata.uid ?? '', container, argv, 'inherit');
        const code = await new Promise<number>((resolve) => {
          child.on('error', (err) => {
            process.stderr.write(`error: ${err.message}\n`);
            resolve(126);
          });
          child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 + 9 : 1)));
        });
        if (code !== 0) throw new CliError('', code);
      }),
    );
}
