// `stowage up`: the control plane and its nodes (a CSI driver and a node agent each), in the
// foreground. The implementation (up.ts) loads the store, the controllers and the driver, so it is
// imported only when run. `--controllers` chooses the controllers as kube-controller-manager's flag
// does (controllers/registry.ts); `up --help` lists them, reading the registry only then.
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { globalFlags } from './connection.js';

export const DEFAULT_STORAGE_CLASS = 'local';
/** kubectl's address by default (k3s's choice of port too); a free port when it is taken. */
export const DEFAULT_HTTPS_LISTEN = 'https://127.0.0.1:6443';

export interface UpFlags {
  nodeName?: string;
  nodes?: string;
  backend: string;
  cephConfig?: string;
  poolSize: string;
  localOvercommit: string;
  listen?: string[];
  logLevel: string;
  localDriver: boolean;
  keepPool?: boolean;
  defaultStorageClass: boolean;
  controllers: string;
  authorization: string;
  nodeMonitorGracePeriod: string;
  nodeLeaseDurationSeconds: string;
  defaultNotReadyTolerationSeconds: string;
  defaultUnreachableTolerationSeconds: string;
}

/**
 * The controllers `--controllers` knows, for `up --help`: read from the registry only when help is
 * shown (it loads every controller, which other commands need not).
 */
function controllersHelp(): string {
  const { CONTROLLERS } = createRequire(import.meta.url)('../control/controllers/registry.js') as typeof import('../control/controllers/registry.js');
  const width = Math.max(...CONTROLLERS.map((c) => c.name.length));
  return [
    '',
    "Controllers (--controllers, as kube-controller-manager's: '*' all, 'name' to enable, '-name' to disable;",
    "the first mention of a name decides; e.g. '*,-csi-provisioner' to run the official sidecar instead):",
    ...CONTROLLERS.map((c) => `  ${c.name.padEnd(width)}  ${c.description}${c.aliases === undefined ? '' : ` (also: ${c.aliases.join(', ')})`}`),
  ].join('\n');
}

function authHelp(): string {
  return [
    '',
    'Access: TCP listeners need the admin bearer token (<state-dir>/admin.token, or --token) for all but',
    '/healthz, /readyz, /livez, /version and the web console\'s page at /ui/ (`stowage ui` prints its',
    'address); https:// is served with a certificate from the CA in <state-dir>/pki/. `up` writes',
    '<state-dir>/kubeconfig (cluster and context "stowage", user "admin")',
    'for kubectl: `kubectl --kubeconfig <state-dir>/kubeconfig get ns`, or print it with `stowage kubeconfig`.',
    'The unix socket needs no token: only its owner may open it. ServiceAccount tokens (`kubectl create',
    'token NAME`) are accepted too; with --authorization RBAC they get what their bindings grant.',
  ].join('\n');
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('start the control plane and its nodes (a CSI driver and a node agent each), in the foreground (Ctrl-C stops them; pods keep running)')
    .option('--node-name <name>', 'the node\'s name when there is one (Node, CSINode, topology)', hostname())
    .option('--nodes <n>', 'run N nodes on this machine (node-1…node-N), each with its own agent and CSI node plugin', '1')
    .option('--backend <name>', 'the nodes\' driver: local (a btrfs pool per node), rbd or cephfs (a Ceph cluster, see --ceph-config)', 'local')
    .option('--ceph-config <file>', 'rbd and cephfs: ceph-csi\'s cluster list, [{"clusterID": ..., "monitors": ["host:port", ...]}]')
    .option('--pool-size <size>', 'local: size of each node\'s pool image when it is created', '20Gi')
    .option('--local-overcommit <factor>', 'local: volumes may promise up to this many times each pool\'s usable size (1 = none)', '1')
    .option(
      '--listen <address>',
      `API address: https://HOST:PORT, unix:///path, or http://127.0.0.1:PORT (plain http: loopback only) (repeatable; default unix://<state-dir>/api.sock and ${DEFAULT_HTTPS_LISTEN})`,
      collect,
    )
    .option('--authorization <mode>', 'who may do what besides the admin: AlwaysAllow (everyone with a token), or RBAC (ServiceAccount tokens get what their RoleBindings and ClusterRoleBindings grant)', 'AlwaysAllow')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .option('--no-local-driver', 'run the control plane only (no nodes, no driver)')
    .option('--no-default-storage-class', `do not create the StorageClass "${DEFAULT_STORAGE_CLASS}"`)
    .option('--keep-pool', 'leave the pool mounted at exit (it is released when no volume uses it)')
    .option('--controllers <list>', "the controllers to run, comma-separated: '*' all, 'name' one, '-name' not that one (names below)", '*')
    // Node lifecycle, under the flag names of the components that own them upstream.
    .option('--node-monitor-grace-period <duration>', "kube-controller-manager's: how long a node's kubelet may stay silent (lease and status) before the node is Unknown and tainted unreachable", '40s')
    .option('--node-lease-duration-seconds <n>', "the kubelet's nodeLeaseDurationSeconds: each node's Lease duration; renewed every quarter of it", '40')
    .option('--default-not-ready-toleration-seconds <n>', "kube-apiserver's: tolerationSeconds of the not-ready:NoExecute toleration every pod gets", '300')
    .option('--default-unreachable-toleration-seconds <n>', "kube-apiserver's: tolerationSeconds of the unreachable:NoExecute toleration every pod gets", '300')
    .addHelpText('after', () => `${authHelp()}\n${controllersHelp()}`)
    .action(async (flags: UpFlags, command: Command) => {
      const { runUp } = await import('./up.js');
      await runUp(flags, globalFlags(command));
    });
}
