/**
 * The scheduler benchmark: how fast pods created through the API get a node, on hollow nodes (Node
 * objects with capacity, allocatable, a Ready condition and a Lease renewed every 10 s, and no agent,
 * as KWOK makes them), beside the API's own create rate measured in the same run. Not a test: it
 * prints the figures and whether the targets were met.
 *
 *   node dist/bench/scheduler-bench.js [--nodes 5000] [--pods 5000] [--variants basic,pvc,anti]
 *        [--concurrency 16] [--lease-renew-s 10] [--log-level warn] [--cpu-profile prefix]
 *
 * Per variant, a fresh control plane in this process (store, API server, every controller, the
 * scheduler with its default profile, on its own thread where the machine has a second core, as
 * `stowage up` runs it; no node agents), its hollow nodes created through the store
 * (untimed), then three phases with the same client (a worker thread, so the client does not share
 * the control plane's core):
 *   baseline  N pods (and, for pvc, N claims) created through the API at the given concurrency,
 *             with a schedulerName no profile has, so nothing schedules them: the API's create rate.
 *   queued    the controllers' loops held back (deferLoops), N pods for the default scheduler
 *             created the same way (untimed), then the loops started: from the start to the last
 *             pod bound, the scheduler's own rate (scheduler_perf's view: creates not the limit),
 *             and the process's CPU time per pod over it (the machine's other load changes the
 *             wall-clock rates a lot and this figure little).
 *   timed     the loops running, N more pods created the same way; from the first create to the
 *             last pod bound (spec.nodeName, seen on a store watch): pods scheduled per second, the
 *             figure the targets are for. The N queued pods are on the nodes by then.
 * Variants:
 *   basic     pods with cpu and memory requests (the full default plugin set runs).
 *   pvc       each pod with its own WaitForFirstConsumer claim of a class whose provisioner is a CSI
 *             driver every hollow node lists in its CSINode; the driver is a stub in this process
 *             that answers CreateVolume at once. A pod counts when it is bound, which the scheduler
 *             does only after its claim is Bound: selected-node (PreBind), the provisioner's
 *             CreateVolume and PV, the binder, then the pod's binding.
 *   anti      pods with a required pod anti-affinity on kubernetes.io/hostname against each other
 *             (each on its own node). Without the InterPodAffinity plugin in the build the rule is
 *             not read, and this measures the basic case again: the output says which.
 * Targets (issue 14): ≥ 1000 pods/s basic, ≥ 300 pods/s with claims, at 5000 nodes (none for anti).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { ApiClient, resolveResource } from '../src/cli/api-client.js';
import { rfc3339 } from '../src/control/api/time.js';
import type { Node, PersistentVolumeClaim, Pod } from '../src/control/api/types/core.js';
import { type ControlPlane, startControlPlane } from '../src/control/control-plane.js';
import { CONTROLLER_ENDPOINT_ANNOTATION } from '../src/control/controllers/driver-registry.js';
import { PLUGINS } from '../src/control/scheduler/profile.js';
import { schedulerThreadByDefault } from '../src/control/scheduler/thread.js';
import type { Store } from '../src/control/store/store.js';
import { startCsiServer } from '../src/csi/server.js';
import { measure } from './raw-ops.js';

/** Issue 14's targets: basic and with claims; it names none for required anti-affinity. */
const TARGETS: Record<string, number> = { basic: 1000, pvc: 300 };
const DRIVER = 'hollow.csi.stowage.dev';
const CLASS = 'hollow-wffc';
const NS = 'bench';
const QUEUED_NS = 'queued';
const BASELINE_NS = 'baseline';
const NOBODY = 'no-such-scheduler';

type Variant = 'basic' | 'pvc' | 'anti';

interface CreateJob {
  url: string;
  variant: Variant;
  namespace: string;
  schedulerName?: string;
  n: number;
  concurrency: number;
}

/** The pod (and claim) of index i of a variant. */
function objects(variant: Variant, namespace: string, i: number, schedulerName?: string): { pod: Pod; claim?: PersistentVolumeClaim } {
  const name = `p-${i}`;
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: `bench-${variant}` } },
    spec: {
      ...(schedulerName === undefined ? {} : { schedulerName }),
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
    },
  };
  if (variant === 'anti') {
    pod.spec.affinity = { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'bench-anti' } }, topologyKey: 'kubernetes.io/hostname' }] } };
  }
  if (variant !== 'pvc') return { pod };
  pod.spec.volumes = [{ name: 'data', persistentVolumeClaim: { claimName: `c-${i}` } }];
  const claim: PersistentVolumeClaim = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: `c-${i}`, namespace },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS, resources: { requests: { storage: '1Gi' } } },
  };
  return { pod, claim };
}

/** The worker thread: creates the objects through the API and reports the create rate. */
async function createThroughApi(job: CreateJob): Promise<{ opsPerSec: number; p50Ms: number; p99Ms: number; ms: number }> {
  const api = new ApiClient({ server: job.url });
  const PODS = resolveResource('pods');
  const PVCS = resolveResource('pvc');
  const t0 = performance.now();
  const stats = await measure(job.n, job.concurrency, async (i) => {
    const { pod, claim } = objects(job.variant, job.namespace, i, job.schedulerName);
    if (claim !== undefined) await api.create(PVCS, claim);
    await api.create(PODS, pod);
  });
  return { opsPerSec: stats.opsPerSec, p50Ms: stats.p50Ms, p99Ms: stats.p99Ms, ms: performance.now() - t0 };
}

function runCreator(job: CreateJob): Promise<Awaited<ReturnType<typeof createThroughApi>>> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && reject(new Error(`creator exited with ${code}`)));
  });
}

function hollowNode(i: number): Node {
  const name = `hollow-${String(i).padStart(5, '0')}`;
  const resources = { cpu: '32', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti' };
  const now = rfc3339();
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', type: 'hollow' } },
    spec: {},
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'hollow node', lastHeartbeatTime: now, lastTransitionTime: now }],
    },
  } as Node;
}

/** Hollow nodes with their Leases (and, for pvc, CSINodes listing the driver); returns their names. */
function makeHollowNodes(store: Store, count: number, withDriver: boolean): string[] {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const node = store.create(hollowNode(i)) as Node;
    const name = node.metadata.name ?? '';
    names.push(name);
    store.create({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata.uid ?? '' }] },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: new Date().toISOString().replace('Z', '000Z') },
    });
    if (withDriver) {
      store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name }, spec: { drivers: [{ name: DRIVER, nodeID: name, topologyKeys: [] }] } });
    }
  }
  return names;
}

/** Renews every node's Lease once per period, spread over it (as many kubelets would). */
function renewLeases(store: Store, names: readonly string[], periodS: number): () => void {
  if (periodS <= 0 || names.length === 0) return () => undefined;
  const tickMs = 100;
  const perTick = Math.max(1, Math.ceil(names.length / ((periodS * 1000) / tickMs)));
  let next = 0;
  const timer = setInterval(() => {
    for (let k = 0; k < perTick; k++) {
      const name = names[next++ % names.length] as string;
      const lease = store.get('leases', 'kube-node-lease', name);
      if (lease === undefined) continue;
      store.update({ ...lease, spec: { ...(lease['spec'] as object), renewTime: new Date().toISOString().replace('Z', '000Z') } });
    }
  }, tickMs);
  return () => clearInterval(timer);
}

/** A CSI controller that makes every volume at once. */
async function startStubDriver(dir: string): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const endpoint = `unix://${join(dir, 'hollow-csi.sock')}`;
  const logger = pino({ level: 'silent' });
  const server = await startCsiServer({
    endpoint,
    logger,
    shutdownGraceMs: 1000,
    identity: {
      async GetPluginInfo() {
        return { name: DRIVER, vendor_version: '0.0.1' };
      },
      async GetPluginCapabilities() {
        return { capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }] };
      },
      async Probe() {
        return { ready: { value: true } };
      },
    },
    controller: {
      async ControllerGetCapabilities() {
        return { capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }] };
      },
      async CreateVolume(req) {
        return { volume: { volume_id: `hollow-${req.name}`, capacity_bytes: Number(req.capacity_range?.required_bytes ?? 0), volume_context: {}, accessible_topology: [] } };
      },
      async DeleteVolume() {
        return {};
      },
    },
  } as Parameters<typeof startCsiServer>[0]);
  return { endpoint, stop: () => server.stop() };
}

interface Result {
  variant: Variant;
  baseline: Awaited<ReturnType<typeof createThroughApi>>;
  queuedMs: number;
  queuedCpuMs: number;
  createMs: number;
  boundMs: number;
  /** CPU time of the whole process over the timed phase, and the event loop's utilization then. */
  timedCpuMs: number;
  timedLoopBusy: number;
  podsPerSec: number;
  distinctNodes: number;
  /** Store transactions (one fsync each) and writes (resourceVersions) during the timed phase. */
  commits: number;
  writes: number;
}

/**
 * Runs `begin`, then waits until `n` pods of the namespace are bound: the time from begin, and how
 * many nodes they are on. Bindings are seen through the control plane's own pod informer (as
 * scheduler_perf watches through an informer), so that measuring adds no watch of its own.
 */
async function timeUntilBound(plane: ControlPlane, namespace: string, n: number, begin: () => Promise<void>, cpuProfile?: string): Promise<{ ms: number; cpuMs: number; loopBusy: number; nodes: number; commits: number; writes: number }> {
  const store = plane.store;
  const commits0 = store.commits;
  const rv0 = Number(store.resourceVersion);
  const boundAt = new Map<string, string>();
  let allBound!: () => void;
  const done = new Promise<void>((resolve) => (allBound = resolve));
  let watching = true;
  const seen = (pod: Pod): void => {
    if (!watching || pod.metadata.namespace !== namespace || !pod.spec?.nodeName || boundAt.has(pod.metadata.name ?? '')) return;
    boundAt.set(pod.metadata.name ?? '', pod.spec.nodeName);
    if (boundAt.size === n) allBound();
  };
  plane.controllers.informers.for('pods').addEventHandler({ add: seen, update: (_old, pod) => seen(pod) });
  const stop = (): void => {
    watching = false;
  };
  const profiler = cpuProfile === undefined ? undefined : new Session();
  if (profiler !== undefined) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  await begin();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      done,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${boundAt.size} of ${n} pods in ${namespace} bound after 600 s`)), 600_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    stop();
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const loopBusy = performance.eventLoopUtilization(elu0).utilization;
  if (profiler !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    await writeFile(cpuProfile ?? '', JSON.stringify(profile));
    profiler.disconnect();
  }
  return { ms, cpuMs, loopBusy, nodes: new Set(boundAt.values()).size, commits: store.commits - commits0, writes: Number(store.resourceVersion) - rv0 };
}

async function runVariant(variant: Variant, opts: { nodes: number; pods: number; concurrency: number; leaseRenewS: number; logLevel: string; cpuProfile?: string }): Promise<Result> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-sbench-${variant}-`));
  const logger = pino({ level: opts.logLevel }, pino.destination(2));
  let plane: ControlPlane | undefined;
  let driver: { stop: () => Promise<void> } | undefined;
  let stopLeases = (): void => undefined;
  try {
    plane = await startControlPlane({ stateDir: join(dir, 'state'), logger, controllers: { resyncMs: 0, provisionerConcurrency: 32, deferLoops: true } });
    const store = plane.store;
    for (const ns of [NS, QUEUED_NS, BASELINE_NS, 'kube-node-lease']) if (store.get('namespaces', undefined, ns) === undefined) store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    if (variant === 'pvc') {
      const stub = await startStubDriver(dir);
      driver = stub;
      store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: DRIVER, annotations: { [CONTROLLER_ENDPOINT_ANNOTATION]: stub.endpoint } }, spec: { attachRequired: false } });
      store.create({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: CLASS }, provisioner: DRIVER, reclaimPolicy: 'Delete', volumeBindingMode: 'WaitForFirstConsumer' });
    }
    process.stderr.write(`${variant}: ${opts.nodes} hollow nodes\n`);
    const names = makeHollowNodes(store, opts.nodes, variant === 'pvc');
    await store.flushed();
    stopLeases = renewLeases(store, names, opts.leaseRenewS);

    // ---- baseline: the API's create rate, nothing scheduled (the loops held back: nothing to do)
    process.stderr.write(`${variant}: baseline, ${opts.pods} creates through the API at concurrency ${opts.concurrency}\n`);
    const baseline = await runCreator({ url: plane.url, variant, namespace: BASELINE_NS, schedulerName: NOBODY, n: opts.pods, concurrency: opts.concurrency });

    // ---- queued: the pods are there, then the loops start
    process.stderr.write(`${variant}: queued, ${opts.pods} pods created, then the controllers started\n`);
    await runCreator({ url: plane.url, variant, namespace: QUEUED_NS, n: opts.pods, concurrency: opts.concurrency });
    await store.flushed();
    const queuedMs = await timeUntilBound(plane, QUEUED_NS, opts.pods, async () => plane?.controllers.start(), opts.cpuProfile === undefined ? undefined : `${opts.cpuProfile}-${variant}-queued.cpuprofile`);
    while (!plane.controllers.idle()) await sleep(20);

    // ---- timed: created through the API, until every pod is bound
    process.stderr.write(`${variant}: timed, ${opts.pods} pods through the API\n`);
    let created: Promise<Awaited<ReturnType<typeof createThroughApi>>> | undefined;
    const bound = await timeUntilBound(
      plane,
      NS,
      opts.pods,
      async () => {
        created = runCreator({ url: plane?.url ?? '', variant, namespace: NS, n: opts.pods, concurrency: opts.concurrency });
      },
      opts.cpuProfile === undefined ? undefined : `${opts.cpuProfile}-${variant}.cpuprofile`,
    );
    const createMs = (await (created as Promise<Awaited<ReturnType<typeof createThroughApi>>>)).ms;
    const boundMs = bound.ms;
    const result: Result = { variant, baseline, queuedMs: queuedMs.ms, queuedCpuMs: queuedMs.cpuMs, createMs, boundMs, timedCpuMs: bound.cpuMs, timedLoopBusy: bound.loopBusy, podsPerSec: opts.pods / (boundMs / 1000), distinctNodes: bound.nodes, commits: bound.commits, writes: bound.writes };
    return result;
  } finally {
    stopLeases();
    await plane?.stop().catch((e: unknown) => process.stderr.write(`control plane stop: ${(e as Error).message}\n`));
    await driver?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '5000' },
      pods: { type: 'string', default: '5000' },
      variants: { type: 'string', default: 'basic,pvc,anti' },
      concurrency: { type: 'string', default: '16' },
      'lease-renew-s': { type: 'string', default: '10' },
      'log-level': { type: 'string', default: 'warn' },
      /** Write a V8 CPU profile of each timed phase to <prefix>-<variant>.cpuprofile. */
      'cpu-profile': { type: 'string' },
    },
  });
  const opts = {
    nodes: Number(values.nodes),
    pods: Number(values.pods),
    concurrency: Number(values.concurrency),
    leaseRenewS: Number(values['lease-renew-s']),
    logLevel: values['log-level'] ?? 'warn',
    ...(values['cpu-profile'] === undefined ? {} : { cpuProfile: values['cpu-profile'] }),
  };
  const variants = (values.variants ?? '').split(',').filter(Boolean) as Variant[];
  const hasInterPodAffinity = 'InterPodAffinity' in PLUGINS;
  const results: Result[] = [];
  for (const v of variants) results.push(await runVariant(v, opts));

  const line = (k: string, val: string) => process.stdout.write(`  ${k.padEnd(44)} ${val}\n`);
  process.stdout.write(`\nstowage scheduler: ${opts.pods} pods on ${opts.nodes} hollow nodes, created through the API (concurrency ${opts.concurrency}, leases renewed every ${opts.leaseRenewS} s; the scheduler ${schedulerThreadByDefault() ? 'on its own thread' : "on the control plane's event loop (one core)"})\n`);
  for (const r of results) {
    const target = TARGETS[r.variant];
    const title = r.variant === 'anti' ? `anti (${hasInterPodAffinity ? 'InterPodAffinity on' : 'InterPodAffinity not in this build: the rule is ignored, the basic case again'})` : r.variant;
    process.stdout.write(`\n${title}\n`);
    line('baseline: API creates (nothing scheduled)', `${r.baseline.opsPerSec.toFixed(0)} pods/s (p50 ${r.baseline.p50Ms.toFixed(1)} ms, p99 ${r.baseline.p99Ms.toFixed(1)} ms per ${r.variant === 'pvc' ? 'claim + pod' : 'pod'})`);
    line('queued: all bound after the loops started', `${r.queuedMs.toFixed(0)} ms: ${(opts.pods / (r.queuedMs / 1000)).toFixed(0)} pods/s`);
    // CPU time of this process (every thread) over the phase: what the machine's other load does not change much.
    line('queued: CPU per pod', `${(r.queuedCpuMs / opts.pods).toFixed(2)} ms: ${(opts.pods / (r.queuedCpuMs / 1000)).toFixed(0)} pods per CPU-second`);
    line('timed: all created after', `${r.createMs.toFixed(0)} ms`);
    line('timed: all bound after', `${r.boundMs.toFixed(0)} ms`);
    // Every thread of the process (control plane, the client's thread, checkpoints) against the wall
    // clock, and how much of it the control plane's event loop was busy: what is left to spend.
    line('timed: CPU in use, event loop busy', `${(r.timedCpuMs / r.boundMs).toFixed(2)} cores, ${(100 * r.timedLoopBusy).toFixed(0)} %`);
    line('timed: store writes / commits (fsyncs)', `${r.writes} / ${r.commits}: ${(r.writes / Math.max(1, r.commits)).toFixed(1)} writes per fsync`);
    line('pods scheduled per second', `${r.podsPerSec.toFixed(0)} /s`);
    line('scheduled / baseline creates', `${((100 * r.podsPerSec) / r.baseline.opsPerSec).toFixed(0)} %`);
    line('nodes used', `${r.distinctNodes}`);
    if (target !== undefined) line(`target ≥ ${target} pods/s`, r.podsPerSec >= target ? 'met' : 'NOT met');
    else line('target', `none named (basic's ≥ ${TARGETS['basic']} pods/s: ${r.podsPerSec >= (TARGETS['basic'] ?? 0) ? 'met' : 'not met'})`);
  }
  process.stdout.write('\n');
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`scheduler-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
} else {
  createThroughApi(workerData as CreateJob).then(
    (r) => parentPort?.postMessage(r),
    (err: unknown) => {
      process.stderr.write(`creator failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
