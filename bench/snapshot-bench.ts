/**
 * The snapshot benchmark: N VolumeSnapshots of N bound PVCs until every one is readyToUse, then N
 * PVCs restored from them until every one is Bound, against the real local driver, beside the
 * driver's raw CreateSnapshot and CreateVolume(from snapshot) rates measured in the same run at
 * the same concurrency. Not a test: it prints the figures and whether the target (the control
 * plane costs less than 2x the raw driver rate: at least 50% of it) was met.
 *
 *   node dist/bench/snapshot-bench.js [--n 100] [--concurrency 16] [--size 64Mi] [--log-level warn]
 *
 * Order: start the driver (a fresh sparse pool in a temp dir); raw phase (N source volumes, untimed;
 * N CreateSnapshot, timed; N CreateVolume from those snapshots, timed; all deleted, untimed);
 * control-plane phase (store + controllers in this process, the driver registered, a StorageClass
 * and a VolumeSnapshotClass; N PVCs Bound, untimed; N VolumeSnapshots created in one burst, timed
 * until all are readyToUse; N restore PVCs in one burst, timed until all are Bound); cleanup
 * (restores, snapshots and sources deleted, wait until the driver has no volume and no snapshot).
 * Everything is removed at the end, also after a failure or Ctrl-C.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { CsiClient } from '../src/csi/client.js';
import type { VolumeCapabilityInput } from '../src/csi/types.js';
import { canonicalQuantity, quantityValue } from '../src/control/api/quantity.js';
import type { PersistentVolumeClaim } from '../src/control/api/types/core.js';
import type { VolumeSnapshot } from '../src/control/api/types/snapshot.js';
import { type ControlPlane, startControlPlane } from '../src/control/control-plane.js';
import type { Store } from '../src/control/store/store.js';
import { registerDriver } from '../src/control/controllers/driver-registry.js';
import { spawnDriver, teardown, waitProbeReady, type RunningDriver } from './driver-process.js';
import { measure } from './raw-ops.js';

const TARGET_FRACTION = 0.5;
const CLASS = 'bench-local';
const SNAP_CLASS = 'bench-snapshots';

/** Resolves with the elapsed seconds once `count` objects of the resource satisfy `done`. */
function timeUntil(store: Store, resource: 'volumesnapshots' | 'persistentvolumeclaims', prefix: string, count: number, done: (obj: VolumeSnapshot | PersistentVolumeClaim) => boolean): { started: () => void; finished: Promise<number>; stop: () => void } {
  const seen = new Set<string>();
  let t0 = 0;
  let resolve!: (s: number) => void;
  let reject!: (e: Error) => void;
  const finished = new Promise<number>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const stopWatch = store.watch(resource, { namespace: 'default' }, (ev) => {
    const obj = ev.object as VolumeSnapshot | PersistentVolumeClaim;
    const name = obj.metadata.name ?? '';
    if (!name.startsWith(prefix) || seen.has(name) || !done(obj)) return;
    seen.add(name);
    if (seen.size === count) resolve((performance.now() - t0) / 1000);
  });
  const timer = setTimeout(() => reject(new Error(`only ${seen.size} of ${count} ${resource} done after 300 s`)), 300_000);
  void finished.finally(() => clearTimeout(timer)).catch(() => undefined);
  return {
    started: () => {
      t0 = performance.now();
    },
    finished,
    stop: () => {
      stopWatch();
      clearTimeout(timer);
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '16' },
      size: { type: 'string', default: '64Mi' },
      'log-level': { type: 'string', default: 'warn' },
    },
  });
  const n = Number(values.n);
  const concurrency = Number(values.concurrency);
  const size = canonicalQuantity(values.size);
  const sizeBytes = quantityValue(size);
  const dir = await mkdtemp(join(tmpdir(), 'stowage-sbench-'));
  const logger = pino({ level: values['log-level'] }, pino.destination(2));
  let driver: RunningDriver | undefined;
  let client: CsiClient | undefined;
  let cp: ControlPlane | undefined;

  const cleanup = async (): Promise<void> => {
    await cp?.stop().catch((e: unknown) => process.stderr.write(`control plane stop: ${(e as Error).message}\n`));
    cp = undefined;
    client?.close();
    await driver?.stop().catch(() => undefined);
    await teardown(dir);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: cleaning up ${dir}\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    driver = spawnDriver({ dir, logLevel: 'warn', poolSize: '20Gi' });
    client = new CsiClient(driver.endpoint, { timeoutMs: 120_000 });
    await waitProbeReady(client);
    const cl = client;

    // ---- raw: the driver alone, with the snapshotter's and the provisioner's request shapes.
    const caps = await cl.controller.ControllerGetCapabilities({});
    const multiWriter = caps.capabilities.some((c) => c.rpc?.type === 'SINGLE_NODE_MULTI_WRITER');
    const cap: VolumeCapabilityInput = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: multiWriter ? 'SINGLE_NODE_MULTI_WRITER' : 'SINGLE_NODE_WRITER' } };
    const sources: string[] = [];
    const snapshots: string[] = [];
    const restores: string[] = [];
    process.stderr.write(`raw: ${n} source volumes (untimed), ${n} CreateSnapshot, ${n} CreateVolume from snapshot at concurrency ${concurrency}\n`);
    await measure(n, concurrency, async (i) => {
      const r = await cl.controller.CreateVolume({ name: `raw-src-${i}`, capacity_range: { required_bytes: sizeBytes }, volume_capabilities: [cap], parameters: {} });
      sources[i] = r.volume?.volume_id ?? '';
    });
    const rawSnap = await measure(n, concurrency, async (i) => {
      const r = await cl.controller.CreateSnapshot({ name: `raw-snap-${i}`, source_volume_id: sources[i] ?? '', parameters: {} });
      snapshots[i] = r.snapshot?.snapshot_id ?? '';
    });
    const rawRestore = await measure(n, concurrency, async (i) => {
      const r = await cl.controller.CreateVolume({
        name: `raw-restore-${i}`,
        capacity_range: { required_bytes: sizeBytes },
        volume_capabilities: [cap],
        parameters: {},
        volume_content_source: { snapshot: { snapshot_id: snapshots[i] ?? '' } },
      });
      restores[i] = r.volume?.volume_id ?? '';
    });
    await measure(n, concurrency, (i) => cl.controller.DeleteVolume({ volume_id: restores[i] ?? '' }));
    await measure(n, concurrency, (i) => cl.controller.DeleteSnapshot({ snapshot_id: snapshots[i] ?? '' }));
    await measure(n, concurrency, (i) => cl.controller.DeleteVolume({ volume_id: sources[i] ?? '' }));

    // ---- control plane
    cp = await startControlPlane({ stateDir: join(dir, 'state'), logger, controllers: { provisionerConcurrency: concurrency } });
    const store = cp.store;
    const reg = await registerDriver(store, { endpoint: driver.endpoint });
    store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: CLASS }, provisioner: reg.driverName, reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate' });
    store.create({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass', metadata: { name: SNAP_CLASS }, driver: reg.driverName, deletionPolicy: 'Delete' });
    const claim = (name: string, dataSource?: PersistentVolumeClaim['spec']['dataSource']): PersistentVolumeClaim => ({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: 'default' },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: size } }, ...(dataSource === undefined ? {} : { dataSource }) },
    });

    process.stderr.write(`control plane: ${n} source PVCs (untimed)\n`);
    const sourcesBound = timeUntil(store, 'persistentvolumeclaims', 'src-', n, (o) => (o as PersistentVolumeClaim).status?.phase === 'Bound');
    sourcesBound.started();
    for (let i = 0; i < n; i++) store.create(claim(`src-${i}`));
    await sourcesBound.finished;
    sourcesBound.stop();

    process.stderr.write(`control plane: ${n} VolumeSnapshots at once\n`);
    const ready = timeUntil(store, 'volumesnapshots', 'snap-', n, (o) => (o as VolumeSnapshot).status?.readyToUse === true);
    ready.started();
    for (let i = 0; i < n; i++) {
      store.create<VolumeSnapshot>({ apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: `snap-${i}`, namespace: 'default' }, spec: { source: { persistentVolumeClaimName: `src-${i}` }, volumeSnapshotClassName: SNAP_CLASS } });
    }
    const snapSeconds = await ready.finished;
    ready.stop();

    process.stderr.write(`control plane: ${n} restores at once\n`);
    const restored = timeUntil(store, 'persistentvolumeclaims', 'restore-', n, (o) => (o as PersistentVolumeClaim).status?.phase === 'Bound');
    restored.started();
    for (let i = 0; i < n; i++) store.create(claim(`restore-${i}`, { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: `snap-${i}` }));
    const restoreSeconds = await restored.finished;
    restored.stop();

    const snapRate = n / snapSeconds;
    const restoreRate = n / restoreSeconds;
    const line = (k: string, v: string) => process.stdout.write(`${k.padEnd(44)} ${v}\n`);
    process.stdout.write(`\nstowage snapshots: ${n} VolumeSnapshots and ${n} restores (${size}, local driver, concurrency ${concurrency})\n\n`);
    line('VolumeSnapshots readyToUse per second', `${snapRate.toFixed(0)} /s (all after ${(snapSeconds * 1000).toFixed(0)} ms)`);
    line(`raw CreateSnapshot (concurrency ${concurrency})`, `${rawSnap.opsPerSec.toFixed(0)} /s (p50 ${rawSnap.p50Ms.toFixed(1)} ms, p99 ${rawSnap.p99Ms.toFixed(1)} ms)`);
    line('snapshots / raw CreateSnapshot', `${((100 * snapRate) / rawSnap.opsPerSec).toFixed(0)} %`);
    line('restored PVCs Bound per second', `${restoreRate.toFixed(0)} /s (all after ${(restoreSeconds * 1000).toFixed(0)} ms)`);
    line(`raw CreateVolume from snapshot (conc. ${concurrency})`, `${rawRestore.opsPerSec.toFixed(0)} /s (p50 ${rawRestore.p50Ms.toFixed(1)} ms, p99 ${rawRestore.p99Ms.toFixed(1)} ms)`);
    line('restores / raw CreateVolume from snapshot', `${((100 * restoreRate) / rawRestore.opsPerSec).toFixed(0)} %`);
    const met = snapRate >= TARGET_FRACTION * rawSnap.opsPerSec && restoreRate >= TARGET_FRACTION * rawRestore.opsPerSec;
    line('target: control plane < 2x the raw cost', met ? 'met' : 'NOT met');
    process.stdout.write('\n');

    // ---- cleanup: restores, then snapshots (Delete: DeleteSnapshot), then sources.
    process.stderr.write('cleanup: deleting restores, snapshots and sources\n');
    for (let i = 0; i < n; i++) store.delete('persistentvolumeclaims', 'default', `restore-${i}`);
    for (let i = 0; i < n; i++) store.delete('volumesnapshots', 'default', `snap-${i}`);
    for (let i = 0; i < n; i++) store.delete('persistentvolumeclaims', 'default', `src-${i}`);
    const deadline = Date.now() + 300_000;
    for (;;) {
      const volumes = (await cl.controller.ListVolumes({})).entries.length;
      const snaps = (await cl.controller.ListSnapshots({})).entries.length;
      if (volumes === 0 && snaps === 0 && store.list('persistentvolumes').items.length === 0) break;
      if (Date.now() > deadline) throw new Error(`cleanup: ${volumes} volumes and ${snaps} snapshots remain after 300 s`);
      await sleep(100);
    }
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`snapshot-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
