/**
 * The control-plane benchmark: N PVCs applied at once against the real local driver, and the time
 * until every one is Bound, beside the driver's raw CreateVolume rate measured in the same run at
 * the same concurrency. Not a test: it prints the figures and whether the target was met.
 *
 *   node dist/bench/control-bench.js [--n 1000] [--concurrency 16] [--size 64Mi] [--log-level warn]
 *
 * The store commits in groups (one fsync per turn of the event loop, see src/control/store/store.ts);
 * "store commits" says how many fsyncs the run needed.
 *
 * Order: start the driver (a fresh sparse pool in a temp dir); raw phase (N CreateVolume calls
 * straight to the driver, then their DeleteVolumes, untimed); control-plane phase (store + API
 * server + controllers in this process, the driver registered through CSIDriver/CSINode, one
 * StorageClass, N PVCs created in one burst through the store; timed until all are Bound);
 * cleanup (PVCs deleted, wait until every PV and every volume is gone, stop, release the pool).
 * Everything is removed at the end, also after a failure or Ctrl-C.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { CsiClient } from '../src/csi/client.js';
import type { VolumeCapabilityInput } from '../src/csi/types.js';
import { canonicalQuantity, quantityValue } from '../src/control/api/quantity.js';
import type { PersistentVolumeClaim } from '../src/control/api/types/core.js';
import { type ControlPlane, startControlPlane } from '../src/control/control-plane.js';
import { registerDriver } from '../src/control/controllers/driver-registry.js';
import { spawnDriver, teardown, waitProbeReady, type RunningDriver } from './driver-process.js';
import { measure } from './raw-ops.js';

const TARGET_PVCS_PER_SEC = 200;
const CLASS = 'bench-local';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '16' },
      size: { type: 'string', default: '64Mi' },
      'log-level': { type: 'string', default: 'warn' },
      /** Where the store lives (default: inside the temp dir); e.g. /dev/shm/x to take fsync cost out. */
      'state-dir': { type: 'string' },
      /** Write a V8 CPU profile of the timed control-plane phase to this file. */
      'cpu-profile': { type: 'string' },
    },
  });
  const n = Number(values.n);
  const concurrency = Number(values.concurrency);
  const size = canonicalQuantity(values.size);
  const sizeBytes = quantityValue(size);
  const dir = await mkdtemp(join(tmpdir(), 'stowage-cbench-'));
  const logger = pino({ level: values['log-level'] }, pino.destination(2));
  let driver: RunningDriver | undefined;
  let client: CsiClient | undefined;
  let cp: ControlPlane | undefined;
  const ownStateDir = values['state-dir'] !== undefined && !existsSync(values['state-dir']) ? values['state-dir'] : undefined;

  const cleanup = async (): Promise<void> => {
    await cp?.stop().catch((e: unknown) => process.stderr.write(`control plane stop: ${(e as Error).message}\n`));
    cp = undefined;
    client?.close();
    await driver?.stop().catch(() => undefined);
    await teardown(dir);
    if (ownStateDir !== undefined) await rm(ownStateDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: cleaning up ${dir}\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // The pool promises no more than it holds (pool-capacity.ts): room for all n volumes at once.
    const poolGiB = Math.max(20, Math.ceil((n * sizeBytes * 1.2) / 2 ** 30) + 2);
    driver = spawnDriver({ dir, logLevel: 'warn', poolSize: `${poolGiB}Gi` });
    client = new CsiClient(driver.endpoint, { timeoutMs: 120_000 });
    await waitProbeReady(client);
    const cl = client;

    // ---- raw: the driver alone, at the provisioner's concurrency and with its request shape.
    const caps = await cl.controller.ControllerGetCapabilities({});
    const multiWriter = caps.capabilities.some((c) => c.rpc?.type === 'SINGLE_NODE_MULTI_WRITER');
    const cap: VolumeCapabilityInput = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: multiWriter ? 'SINGLE_NODE_MULTI_WRITER' : 'SINGLE_NODE_WRITER' } };
    const rawIds: string[] = [];
    process.stderr.write(`raw: ${n} CreateVolume at concurrency ${concurrency}\n`);
    const raw = await measure(n, concurrency, async (i) => {
      const r = await cl.controller.CreateVolume({ name: `raw-${i}`, capacity_range: { required_bytes: sizeBytes }, volume_capabilities: [cap], parameters: {} });
      rawIds[i] = r.volume?.volume_id ?? '';
    });
    await measure(n, concurrency, (i) => cl.controller.DeleteVolume({ volume_id: rawIds[i] ?? '' }));

    // ---- control plane
    const stateDir = values['state-dir'] ?? join(dir, 'state');
    cp = await startControlPlane({ stateDir, logger, controllers: { provisionerConcurrency: concurrency } });
    const store = cp.store;
    const reg = await registerDriver(store, { endpoint: driver.endpoint });
    store.create({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: CLASS },
      provisioner: reg.driverName,
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
    });

    const created = new Map<string, number>();
    const boundAt = new Map<string, number>();
    let allBound!: () => void;
    const done = new Promise<void>((resolve) => (allBound = resolve));
    const stopWatch = store.watch('persistentvolumeclaims', { namespace: 'default' }, (ev) => {
      const pvc = ev.object as PersistentVolumeClaim;
      const name = pvc.metadata.name ?? '';
      if (pvc.status?.phase === 'Bound' && !boundAt.has(name) && created.has(name)) {
        boundAt.set(name, performance.now());
        if (boundAt.size === n) allBound();
      }
    });
    const rv0 = Number(store.resourceVersion);
    const commits0 = store.commits;
    const profiler = values['cpu-profile'] === undefined ? undefined : new Session();
    if (profiler !== undefined) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    process.stderr.write(`control plane: ${n} PVCs of ${size} at once\n`);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const name = `bench-${i}`;
      created.set(name, performance.now());
      store.create<PersistentVolumeClaim>({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name, namespace: 'default' },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: size } } },
      });
    }
    // Applied = acknowledged: committed, as an API client's 201 would say.
    await store.flushed();
    const applied = performance.now() - t0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      done,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${boundAt.size} of ${n} PVCs bound after 300 s`)), 300_000);
      }),
    ]);
    clearTimeout(timer);
    const seconds = (performance.now() - t0) / 1000;
    if (profiler !== undefined) {
      const { profile } = await profiler.post('Profiler.stop');
      await writeFile(values['cpu-profile'] ?? '', JSON.stringify(profile));
      profiler.disconnect();
    }
    stopWatch();
    const writes = Number(store.resourceVersion) - rv0;
    const commits = store.commits - commits0;
    // Events wait while the controllers are busy (at most 5 s); time until they are all written too.
    while (!cp.controllers.idle()) await sleep(5);
    const settledMs = performance.now() - t0;
    const eventWrites = Number(store.resourceVersion) - rv0 - writes;
    const latencies = [...boundAt].map(([name, at]) => at - (created.get(name) ?? at)).sort((a, b) => a - b);
    const volumes = await cl.controller.ListVolumes({});
    const rate = n / seconds;

    const line = (k: string, v: string) => process.stdout.write(`${k.padEnd(40)} ${v}\n`);
    process.stdout.write(`\nstowage control plane: ${n} PVCs (${size}, class ${CLASS}, Immediate, Delete) against the local driver\n\n`);
    line('PVCs applied (store creates, committed)', `${applied.toFixed(0)} ms`);
    line('all Bound after', `${(seconds * 1000).toFixed(0)} ms`);
    line('PVCs bound per second', `${rate.toFixed(0)} /s`);
    line('time to Bound per PVC p50 / p99', `${pct(latencies, 0.5).toFixed(0)} / ${pct(latencies, 0.99).toFixed(0)} ms`);
    line('store writes until all Bound', `${writes} (${(writes / n).toFixed(1)} per PVC, ${(writes / seconds).toFixed(0)} /s)`);
    line('store commits (fsyncs) until all Bound', `${commits} (${(writes / Math.max(1, commits)).toFixed(1)} writes per commit)`);
    line('all events written after', `${settledMs.toFixed(0)} ms (${eventWrites} deferred event writes)`);
    line('driver volumes after the run', `${volumes.entries.length}`);
    line(`raw CreateVolume (concurrency ${concurrency})`, `${raw.opsPerSec.toFixed(0)} /s (p50 ${raw.p50Ms.toFixed(1)} ms, p99 ${raw.p99Ms.toFixed(1)} ms)`);
    line('bound PVCs / raw CreateVolume', `${((100 * rate) / raw.opsPerSec).toFixed(0)} %`);
    line(`target ≥ ${TARGET_PVCS_PER_SEC} PVCs/s`, rate >= TARGET_PVCS_PER_SEC ? 'met' : 'NOT met');
    process.stdout.write('\n');

    // ---- cleanup: delete every claim; the binder releases and deletes every volume.
    process.stderr.write('cleanup: deleting the PVCs, waiting for the PVs and volumes to go\n');
    const t1 = performance.now();
    for (let i = 0; i < n; i++) store.delete('persistentvolumeclaims', 'default', `bench-${i}`);
    const deadline = Date.now() + 300_000;
    for (;;) {
      const pvs = store.list('persistentvolumes').items.length;
      const left = (await cl.controller.ListVolumes({})).entries.length;
      if (pvs === 0 && left === 0) break;
      if (Date.now() > deadline) throw new Error(`cleanup: ${pvs} PVs and ${left} volumes remain after 300 s`);
      await sleep(100);
    }
    line('deleted (PVCs → PVs and volumes gone)', `${((performance.now() - t1) / 1000).toFixed(1)} s`);
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`control-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
