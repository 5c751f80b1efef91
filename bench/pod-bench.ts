/**
 * The pod benchmark: how long from applying a PVC and a pod that uses it to the pod Running, on an
 * embedded node (control plane, scheduler, provisioner, binder, node agent, pod runtime and the local
 * driver in this process, the same parts `stowage up` runs), beside the sum of the CSI calls that
 * took (CreateVolume + NodeStageVolume + NodePublishVolume) made straight to the same driver in the
 * same run. Not a test: it prints the figures.
 *
 *   node dist/bench/pod-bench.js [--n 50] [--size 64Mi] [--log-level warn]
 *
 * One pod at a time (latency, not throughput): apply PVC + pod through the API, wait until the pod
 * is Running, then delete both and wait until the volume is gone before the next. The raw phase
 * walks N fresh volumes through the same three calls, then unpublishes, unstages and deletes them
 * (untimed). Everything is removed at the end, also after a failure.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ApiClient, resolveResource } from '../src/cli/api-client.js';
import { CsiClient } from '../src/csi/client.js';
import type { PersistentVolumeClaim, Pod } from '../src/control/api/types/core.js';
import type { StorageClass } from '../src/control/api/types/storage.js';
import { startControlPlane } from '../src/control/control-plane.js';
import { declareEmbeddedNode, EmbeddedNodes, nodeRoot, nodeSocket } from '../src/control/node/embedded-nodes.js';
import { releasePool } from '../src/driver/backends/local/pool-release.js';

const NODE = 'bench-node';
const CLASS = 'bench-local';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

function ms(v: number): string {
  return `${v.toFixed(1)} ms`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string', default: '50' }, size: { type: 'string', default: '64Mi' }, 'log-level': { type: 'string', default: 'warn' } } });
  const n = Number(values.n);
  const dir = await mkdtemp(join(tmpdir(), 'stowage-pbench-'));
  const logger = pino({ level: values['log-level'] }, pino.destination(2));
  const plane = await startControlPlane({ stateDir: join(dir, 'state'), logger, controllers: { resyncMs: 0 } });
  const nodes = new EmbeddedNodes({ plane, stateDir: dir, backend: { kind: 'local', poolBytes: 8 * 2 ** 30 }, logLevel: values['log-level'] ?? 'warn', logger });
  try {
    declareEmbeddedNode(plane.store, NODE);
    nodes.watch();
    if ((await nodes.ensure(NODE)) === undefined) throw new Error('the node did not start');
    plane.store.create<StorageClass>({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: CLASS }, provisioner: 'local.csi.stowage.dev', reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate' });
    const api = new ApiClient({ server: plane.url });
    const PVCS = resolveResource('pvc');
    const PODS = resolveResource('pods');
    const PVS = resolveResource('pv');

    // ---- raw: the CSI calls one pod needs, straight to the driver
    const csi = new CsiClient(`unix://${nodeSocket(dir, NODE)}`);
    const capability = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };
    const raw: number[] = [];
    const rawDir = join(dir, 'raw');
    const made: { id: string; staging: string; target: string }[] = [];
    for (let i = 0; i < n; i++) {
      const staging = join(rawDir, `s${i}`);
      const target = join(rawDir, `t${i}`, 'mount');
      await mkdir(staging, { recursive: true });
      await mkdir(join(rawDir, `t${i}`), { recursive: true });
      const t0 = performance.now();
      const created = await csi.controller.CreateVolume({ name: `raw-${i}`, capacity_range: { required_bytes: 64 * 2 ** 20, limit_bytes: 0 }, volume_capabilities: [capability], parameters: {} });
      const id = created.volume?.volume_id ?? '';
      await csi.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: capability, publish_context: {}, secrets: {}, volume_context: created.volume?.volume_context ?? {} });
      await csi.node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: capability, readonly: false, publish_context: {}, secrets: {}, volume_context: created.volume?.volume_context ?? {} });
      raw.push(performance.now() - t0);
      made.push({ id, staging, target });
    }
    for (const v of made) {
      await csi.node.NodeUnpublishVolume({ volume_id: v.id, target_path: v.target });
      await csi.node.NodeUnstageVolume({ volume_id: v.id, staging_target_path: v.staging });
      await csi.controller.DeleteVolume({ volume_id: v.id, secrets: {} });
    }
    csi.close();

    // ---- through the control plane and the node agent
    const latencies: number[] = [];
    for (let i = 0; i < n; i++) {
      const claim: PersistentVolumeClaim = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `c${i}`, namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: values.size ?? '64Mi' } } } };
      const pod: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `p${i}`, namespace: 'default' },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.1; done"], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `c${i}` } }],
        },
      };
      const t0 = performance.now();
      await api.create(PVCS, claim);
      await api.create(PODS, pod);
      for (;;) {
        const p = await api.get<Pod>(PODS, 'default', `p${i}`);
        if (p.status?.phase === 'Running') break;
        await sleep(5);
      }
      latencies.push(performance.now() - t0);
      const pvName = (await api.get<PersistentVolumeClaim>(PVCS, 'default', `c${i}`)).spec.volumeName ?? '';
      await api.delete(PODS, 'default', `p${i}`);
      while ((await api.find(PODS, 'default', `p${i}`)) !== undefined) await sleep(20);
      await api.delete(PVCS, 'default', `c${i}`);
      while ((await api.find(PVS, undefined, pvName)) !== undefined) await sleep(20);
    }

    raw.sort((a, b) => a - b);
    latencies.sort((a, b) => a - b);
    const rawP50 = pct(raw, 0.5);
    const podP50 = pct(latencies, 0.5);
    process.stdout.write(
      [
        `pods: ${n}, one at a time, each with a new ${values.size} PVC (local driver, btrfs subvolume)`,
        `apply PVC + pod → Running:   p50 ${ms(podP50)}  p90 ${ms(pct(latencies, 0.9))}  max ${ms(latencies.at(-1) ?? NaN)}`,
        `CreateVolume + NodeStage + NodePublish straight to the driver (same run): p50 ${ms(rawP50)}  p90 ${ms(pct(raw, 0.9))}`,
        `ratio pod / CSI calls: ${(podP50 / rawP50).toFixed(1)}x (the rest: scheduling, binding, the store's commits, the runtime's shim and overlay)`,
        '',
      ].join('\n'),
    );
  } finally {
    await nodes.stop().catch(() => undefined);
    await plane.stop().catch(() => undefined);
    await releasePool(join(nodeRoot(dir, NODE), 'pool')).catch((err: unknown) => process.stderr.write(`could not release the pool: ${String(err)}\n`));
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`pod-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
