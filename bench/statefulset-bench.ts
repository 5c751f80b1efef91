/**
 * The StatefulSet benchmark: a StatefulSet of N replicas with one claim each (volumeClaimTemplates
 * on the local backend), from the apply to every pod Running, on an embedded node (control plane,
 * statefulset controller, provisioner, binder, scheduler, node agent, pod runtime and the local
 * driver in this process: the parts `stowage up` runs), beside the CSI calls the same work needs
 * (CreateVolume + NodeStageVolume + NodePublishVolume per replica) made straight to the same
 * driver in the same run, one after the other. Not a test: it prints the figures.
 *
 *   node dist/bench/statefulset-bench.js [--n 100] [--policy OrderedReady|Parallel] [--size 32Mi] [--log-level warn]
 *
 * Everything is removed at the end, also after a failure.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ApiClient, resolveResource } from '../src/cli/api-client.js';
import type { StatefulSet } from '../src/control/api/types/apps.js';
import type { Pod } from '../src/control/api/types/core.js';
import type { StorageClass } from '../src/control/api/types/storage.js';
import { startControlPlane } from '../src/control/control-plane.js';
import { declareEmbeddedNode, EmbeddedNodes, nodeRoot, nodeSocket } from '../src/control/node/embedded-nodes.js';
import { CsiClient } from '../src/csi/client.js';
import { releasePool } from '../src/driver/backends/local/pool-release.js';

const NODE = 'bench-node';
const CLASS = 'bench-local';

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { n: { type: 'string', default: '100' }, policy: { type: 'string', default: 'OrderedReady' }, size: { type: 'string', default: '32Mi' }, 'log-level': { type: 'string', default: 'warn' } },
  });
  const n = Number(values.n);
  const policy = values.policy === 'Parallel' ? 'Parallel' : 'OrderedReady';
  const sizeBytes = 32 * 2 ** 20;
  const dir = await mkdtemp(join(tmpdir(), 'stowage-stsbench-'));
  const logger = pino({ level: values['log-level'] }, pino.destination(2));
  const plane = await startControlPlane({ stateDir: join(dir, 'state'), logger, controllers: { resyncMs: 0 } });
  const nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: 'local', poolBytes: 16 * 2 ** 30 }, logLevel: values['log-level'] ?? 'warn', logger });
  const api = new ApiClient({ server: plane.url });
  const STS = resolveResource('sts');
  const PODS = resolveResource('pods');
  const PVCS = resolveResource('pvc');
  const PVS = resolveResource('pv');
  try {
    declareEmbeddedNode(plane.store, NODE);
    nodes.watch();
    if ((await nodes.ensure(NODE)) === undefined) throw new Error('the node did not start');
    plane.store.create<StorageClass>({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: CLASS }, provisioner: 'local.csi.stowage.dev', reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate' });

    // ---- raw: the CSI calls N replicas need, straight to the driver, one after the other
    const csi = new CsiClient(`unix://${nodeSocket(dir, NODE)}`);
    const capability = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };
    // Beneath the node's kubelet directory: the only place its node service accepts paths.
    const rawDir = join(nodeRoot(dir, NODE), 'bench-raw');
    const made: { id: string; staging: string; target: string }[] = [];
    const r0 = performance.now();
    for (let i = 0; i < n; i++) {
      const staging = join(rawDir, `s${i}`);
      const target = join(rawDir, `t${i}`, 'mount');
      await mkdir(staging, { recursive: true });
      await mkdir(join(rawDir, `t${i}`), { recursive: true });
      const created = await csi.controller.CreateVolume({ name: `raw-${i}`, capacity_range: { required_bytes: sizeBytes, limit_bytes: 0 }, volume_capabilities: [capability], parameters: {} });
      const id = created.volume?.volume_id ?? '';
      const context = created.volume?.volume_context ?? {};
      await csi.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: capability, publish_context: {}, secrets: {}, volume_context: context });
      await csi.node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: capability, readonly: false, publish_context: {}, secrets: {}, volume_context: context });
      made.push({ id, staging, target });
    }
    const rawMs = performance.now() - r0;
    for (const v of made) {
      await csi.node.NodeUnpublishVolume({ volume_id: v.id, target_path: v.target });
      await csi.node.NodeUnstageVolume({ volume_id: v.id, staging_target_path: v.staging });
      await csi.controller.DeleteVolume({ volume_id: v.id, secrets: {} });
    }
    csi.close();

    // ---- the StatefulSet, through the API
    const set: StatefulSet = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'bench', namespace: 'default' },
      spec: {
        replicas: n,
        podManagementPolicy: policy,
        selector: { matchLabels: { app: 'bench' } },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Delete' },
        template: {
          metadata: { labels: { app: 'bench' } },
          spec: {
            terminationGracePeriodSeconds: 2,
            containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 1; done"], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
          },
        },
        volumeClaimTemplates: [
          { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: values.size ?? '32Mi' } } } },
        ],
      },
    };
    const t0 = performance.now();
    await api.create(STS, set);
    let firstRunningMs = NaN;
    for (;;) {
      const pods = (await api.list<Pod>(PODS, { namespace: 'default' })).items;
      const running = pods.filter((p) => p.status?.phase === 'Running').length;
      if (running > 0 && Number.isNaN(firstRunningMs)) firstRunningMs = performance.now() - t0;
      if (running === n) break;
      await sleep(20);
    }
    const stsMs = performance.now() - t0;

    process.stdout.write(
      [
        `StatefulSet of ${n} replicas (${policy}), one ${values.size} claim each (local driver, btrfs subvolumes)`,
        `apply → all ${n} pods Running:   ${secs(stsMs)}  (${(stsMs / n).toFixed(1)} ms per replica; first pod Running after ${secs(firstRunningMs)})`,
        `${n} × (CreateVolume + NodeStage + NodePublish) straight to the driver, in sequence (same run): ${secs(rawMs)}  (${(rawMs / n).toFixed(1)} ms per replica)`,
        `ratio StatefulSet / CSI calls: ${(stsMs / rawMs).toFixed(1)}x`,
        '',
      ].join('\n'),
    );

    // ---- clean-up through the API: the set (its pods and, under Delete, its claims) and the volumes
    await api.delete(STS, 'default', 'bench');
    for (;;) {
      const left = (await api.list(PODS, { namespace: 'default' })).items.length + (await api.list(PVCS, { namespace: 'default' })).items.length + (await api.list(PVS)).items.length;
      if (left === 0) break;
      await sleep(100);
    }
  } finally {
    await nodes.stop().catch(() => undefined);
    await plane.stop().catch(() => undefined);
    await releasePool(join(nodeRoot(dir, NODE), 'pool')).catch((err: unknown) => process.stderr.write(`could not release the pool: ${String(err)}\n`));
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`statefulset-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
