// The node agent: the kubelet for one node of the embedded control plane, split the way the
// kubelet is split:
//   - pod workers (here): one work queue keyed by pod UID; a sync is told only a UID and makes the
//     node match the store — volumes first (through the volume manager), then init containers in
//     order, then the app containers through the runtime (restart policy, back-off), in reverse
//     when the pod goes (containers stopped within the grace period, volumes released, the pod
//     deleted for good);
//   - the volume manager (volume-manager.ts): desired state from the pods bound here, actual state
//     from the CSI records on disk, staging/publishing and the node-wide reconcile (unstage what
//     no pod uses, volumesInUse), volume stats and health;
//   - the status managers: the pod's status computed from what the runtime reports
//     (pod-status.ts, written here), the Node's by node-status.ts (heartbeat, conditions,
//     resources).
// What exists is read from disk (vol_data.json records, the runtime's state), never from memory,
// so a restarted agent finds the volumes and containers a previous one left, keeps those its pods
// still use and cleans up the rest.
import { readdir } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Mounter } from '../../driver/mount/mount.js';
import { volumeClaim } from '../api/pod-claims.js';
import type { Container, Pod } from '../api/types/core.js';
import { ControllerLoop } from '../controllers/controller.js';
import type { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import type { InformerFactory } from '../controllers/informer.js';
import { ConflictError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { initRestartPolicy, nextInitStep } from './init-containers.js';
import { NodeLayout } from './layout.js';
import { NODE_LEASE_DURATION_SECONDS, RENEW_INTERVAL_FRACTION, renewNodeLease } from './node-lease.js';
import { HOST_IP, NodeStatusManager } from './node-status.js';
import { computePodStatus, type ContainerView } from './pod-status.js';
import { resolveSubPath } from './pod-volumes.js';
import type { ContainerMount, ContainerRuntime, ContainerUser } from './runtime-api.js';
import { containerUser } from './security-context.js';
import { finished, NotYet, VolumeManager } from './volume-manager.js';
import type { VolumeStatsCache } from './volume-stats.js';

export interface NodeAgentOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  nodeName: string;
  /** The node's kubelet root (<state>/nodes/<node>). */
  rootDir: string;
  runtime: ContainerRuntime;
  mounter: Mounter;
  logger: Logger;
  /** How often running pods are checked for exited containers. Default 1000 ms. */
  pollMs?: number;
  /** First container restart back-off; doubles per restart up to 5 min (Kubernetes: 10 s). */
  restartBackoffMs?: number;
  /** Node heartbeat (Ready and DiskPressure conditions). Default 10 s. */
  heartbeatMs?: number;
  /**
   * The filesystem whose free space decides DiskPressure (the kubelet's nodefs): the node's local
   * pool when it has one. Default: the kubelet root.
   */
  nodefsPath?: string;
  /** Retry delays of failed syncs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  workers?: number;
  /** Where the heartbeat's volume stats go (the kubelet_volume_stats_* metrics); none: not kept. */
  volumeStats?: VolumeStatsCache;
  /** The node Lease's duration (the kubelet's nodeLeaseDurationSeconds, 40); renewed every quarter of it. */
  leaseDurationSeconds?: number;
}

const MAX_RESTART_BACKOFF_MS = 300_000;

export class NodeAgent {
  readonly nodeName: string;
  readonly layout: NodeLayout;
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly runtime: ContainerRuntime;
  private readonly mounter: Mounter;
  /** The kubelet's volume manager: the pods' volumes, set up and torn down (volume-manager.ts). */
  private readonly volumeManager: VolumeManager;
  /** The Node's status: heartbeat, conditions, resources (node-status.ts). */
  private readonly nodeStatus: NodeStatusManager;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly restartBackoffMs: number;
  private readonly heartbeatMs: number;
  private readonly informers: InformerFactory;
  /** The pods bound to this node, by UID (kept by the informer's handlers). */
  private readonly pods = new Map<string, Pod>();
  /** Last FailedMount message per pod, so a retry that fails the same way is not a new event. */
  private readonly lastVolumeError = new Map<string, string>();
  private checkingHealth = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private readonly leaseDurationSeconds: number;
  private stopped = false;
  /** Frozen (tests): no heartbeat, no lease renewal, no pod sync, as a hung kubelet. */
  private paused = false;

  constructor(options: NodeAgentOptions) {
    this.nodeName = options.nodeName;
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.runtime = options.runtime;
    this.mounter = options.mounter;
    this.informers = options.informers;
    this.log = options.logger.child({ node: options.nodeName });
    this.pollMs = options.pollMs ?? 1000;
    this.restartBackoffMs = options.restartBackoffMs ?? 10_000;
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
    this.leaseDurationSeconds = options.leaseDurationSeconds ?? NODE_LEASE_DURATION_SECONDS;
    this.layout = new NodeLayout(options.rootDir);
    this.nodeStatus = new NodeStatusManager({ store: this.store, recorder: this.recorder, nodeName: this.nodeName, nodefsPath: options.nodefsPath ?? options.rootDir, logger: this.log });
    this.volumeManager = new VolumeManager({
      store: this.store,
      informers: this.informers,
      registry: this.registry,
      recorder: this.recorder,
      nodeName: this.nodeName,
      layout: this.layout,
      mounter: options.mounter,
      logger: this.log,
      nodeStatus: this.nodeStatus,
      pods: () => this.pods,
      ...(options.volumeStats === undefined ? {} : { volumeStats: options.volumeStats }),
    });
    this.loop = new ControllerLoop({
      name: `node-agent/${options.nodeName}`,
      workers: options.workers ?? 4,
      logger: this.log,
      sync: (uid) => this.sync(uid),
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 30_000,
    });
  }

  async start(): Promise<void> {
    const pods = this.informers.for('pods');
    pods.addEventHandler({
      add: (p) => this.observe(undefined, p),
      update: (old, p) => this.observe(old, p),
      delete: (p) => this.observe(p, undefined),
    });
    // A volume or attachment changing may unblock a waiting pod: look at this node's pods again.
    const again = (): void => {
      for (const uid of this.pods.keys()) this.loop.enqueue(uid);
    };
    this.informers.for('persistentvolumeclaims').addEventHandler({ add: again, update: (o, n) => o !== n && again() });
    this.informers.for('persistentvolumes').addEventHandler({ add: again, update: (o, n) => o !== n && again() });
    this.informers.for('volumeattachments').addEventHandler({ add: again, update: (o, n) => o !== n && again() });
    this.informers.for('csinodes').addEventHandler({ add: again, update: (o, n) => o !== n && again() });
    // What a previous agent left on disk: pods that may no longer exist.
    for (const uid of await this.podsOnDisk()) this.loop.enqueue(uid);
    this.loop.start();
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
    this.renewLease();
    this.leaseTimer = setInterval(() => this.renewLease(), this.leaseDurationSeconds * 1000 * RENEW_INTERVAL_FRACTION);
    this.leaseTimer.unref();
    this.log.info({ root: this.layout.root }, 'node agent started');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    await this.loop.stop();
  }

  /**
   * Freezes the agent as a hung kubelet or a lost network would (tests): no status, no lease
   * renewal, no pod sync, while its containers keep running. resume() picks everything up again.
   */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.renewLease();
    void this.beat();
    for (const uid of this.pods.keys()) this.loop.enqueue(uid);
  }

  /** The node's Lease moved forward (node-lease.ts); a failure waits for the next renewal. */
  private renewLease(): void {
    if (this.stopped || this.paused) return;
    try {
      renewNodeLease(this.store, this.nodeName, this.leaseDurationSeconds);
    } catch (err) {
      this.log.warn({ err }, 'failed to renew the node lease');
    }
  }

  /** Pods bound to this node right now (for tests and the CLI). */
  podUids(): string[] {
    return [...this.pods.keys()];
  }

  private observe(old: Pod | undefined, pod: Pod | undefined): void {
    if (old !== undefined && old === pod) {
      // Resync: check it again.
      if (pod.spec.nodeName === this.nodeName) this.loop.enqueue(pod.metadata.uid ?? '');
      return;
    }
    const uidOld = old?.metadata.uid;
    if (uidOld !== undefined && old?.spec.nodeName === this.nodeName && (pod === undefined || pod.metadata.uid !== uidOld || pod.spec.nodeName !== this.nodeName)) {
      this.pods.delete(uidOld);
      this.loop.enqueue(uidOld);
    }
    if (pod !== undefined && pod.spec.nodeName === this.nodeName && pod.metadata.uid) {
      this.pods.set(pod.metadata.uid, pod);
      this.loop.enqueue(pod.metadata.uid);
    }
  }

  private async podsOnDisk(): Promise<string[]> {
    const dirs = await readdir(this.layout.podsDir).catch(() => [] as string[]);
    const runtime = await this.runtime.listPods().catch(() => [] as string[]);
    return [...new Set([...dirs, ...runtime])];
  }

  // ------------------------------------------------------------------ sync

  private async sync(uid: string): Promise<{ requeueAfterMs?: number } | void> {
    if (this.stopped) return;
    // Frozen: looked at again by resume().
    if (this.paused) return;
    const pod = this.pods.get(uid);
    if (pod === undefined) {
      await this.cleanUp(uid, 0);
      return;
    }
    if (pod.metadata.deletionTimestamp !== undefined) {
      await this.terminate(pod);
      return;
    }
    if (finished(pod)) {
      // A finished pod keeps its status; its volumes are released (the kubelet unmounts them too).
      await this.cleanUp(uid, 0, pod);
      return;
    }
    return this.run(pod);
  }

  private async run(pod: Pod): Promise<{ requeueAfterMs?: number } | void> {
    const uid = pod.metadata.uid ?? '';
    let paths: Map<string, string>;
    try {
      paths = await this.volumeManager.setUp(pod);
      this.lastVolumeError.delete(uid);
    } catch (err) {
      if (err instanceof NotYet) {
        await this.writeStatus(pod, await this.views(pod, 'ContainerCreating', err.message), false);
        return { requeueAfterMs: 300 };
      }
      const message = err instanceof Error ? err.message : String(err);
      if (this.lastVolumeError.get(uid) !== message) {
        this.lastVolumeError.set(uid, message);
        this.recorder.event(pod, 'Warning', 'FailedMount', message);
      }
      await this.writeStatus(pod, await this.views(pod, 'ContainerCreating', message), false);
      throw err;
    }

    const init = await this.syncInitContainers(pod, paths);
    if (!init.done) {
      const waiting = pod.spec.containers.map((container) => ({ container, status: undefined, waiting: { reason: 'PodInitializing' } }));
      const updated = await this.writeStatus(pod, waiting, true, init.views);
      if (updated?.status?.phase === 'Failed') {
        this.loop.enqueue(uid);
        return;
      }
      return { requeueAfterMs: init.checkInMs ?? this.pollMs };
    }
    const views: ContainerView[] = [];
    let nextCheck: number | undefined;
    for (const container of pod.spec.containers) {
      const view = await this.syncContainer(pod, container, paths);
      views.push(view.view);
      if (view.checkInMs !== undefined) nextCheck = Math.min(nextCheck ?? Infinity, view.checkInMs);
    }
    const updated = await this.writeStatus(pod, views, true, init.views);
    const phase = updated?.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      // Finished: release the volumes now; the pod object stays with its status.
      this.loop.enqueue(uid);
      return;
    }
    return { requeueAfterMs: nextCheck ?? this.pollMs };
  }

  /**
   * The init containers, one at a time in order (init-containers.ts decides the step): done once
   * all have completed; otherwise the current one is started, restarted or watched.
   */
  private async syncInitContainers(pod: Pod, paths: Map<string, string>): Promise<{ done: boolean; views: ContainerView[]; checkInMs?: number }> {
    const inits = pod.spec.initContainers ?? [];
    const uid = pod.metadata.uid ?? '';
    const statuses = await Promise.all(inits.map((c) => this.runtime.status(uid, c.name)));
    const step = nextInitStep(pod, statuses);
    if (step.kind === 'done') return { done: true, views: inits.map((container, i) => ({ container, status: statuses[i] })) };
    const views: ContainerView[] = [];
    let checkInMs: number | undefined;
    for (const [i, container] of inits.entries()) {
      if (i < step.index || (i === step.index && step.kind === 'failed')) views.push({ container, status: statuses[i] });
      else if (i > step.index) views.push({ container, status: undefined, waiting: { reason: 'PodInitializing' } });
      else {
        const synced = await this.syncContainer(pod, container, paths, initRestartPolicy(pod));
        views.push(synced.view);
        checkInMs = synced.checkInMs;
      }
    }
    return { done: false, views, ...(checkInMs === undefined ? {} : { checkInMs }) };
  }

  /** Starts, restarts (with back-off) or leaves a container, and says what it is doing. */
  private async syncContainer(
    pod: Pod,
    container: Container,
    paths: Map<string, string>,
    policy: NonNullable<Pod['spec']['restartPolicy']> = pod.spec.restartPolicy ?? 'Always',
  ): Promise<{ view: ContainerView; checkInMs?: number }> {
    const uid = pod.metadata.uid ?? '';
    const current = await this.runtime.status(uid, container.name);
    if (current?.state === 'running' || current?.state === 'unknown') return { view: { container, status: current }, checkInMs: this.pollMs };
    if (current !== undefined) {
      const restart = policy === 'Always' || (policy === 'OnFailure' && current.exitCode !== 0);
      if (!restart) return { view: { container, status: current } };
      const backoff = Math.min(this.restartBackoffMs * 2 ** Math.max(0, current.attempt), MAX_RESTART_BACKOFF_MS);
      const since = current.finishedAt ? Date.now() - Date.parse(current.finishedAt) : backoff;
      if (since < backoff) {
        const message = `back-off ${Math.round(backoff / 1000)}s restarting failed container=${container.name} pod=${pod.metadata.name ?? ''}_${pod.metadata.namespace ?? 'default'}(${uid})`;
        return { view: { container, status: current, last: current, waiting: { reason: 'CrashLoopBackOff', message } }, checkInMs: backoff - since };
      }
      this.recorder.event(pod, 'Warning', 'BackOff', `Back-off restarting failed container ${container.name} in pod ${pod.metadata.name ?? ''}_${pod.metadata.namespace ?? 'default'}(${uid})`);
    }
    const attempt = current === undefined ? 0 : current.attempt + 1;
    const command = [...(container.command ?? []), ...(container.args ?? [])];
    if (command.length === 0) {
      const message = `container "${container.name}" has no command: images are recorded, not pulled, so the embedded runtime needs spec.containers[].command`;
      this.recorder.event(pod, 'Warning', 'Failed', `Error: ${message}`);
      return { view: { container, status: current, waiting: { reason: 'CreateContainerError', message } } };
    }
    let mounts: ContainerMount[];
    let user: ContainerUser | undefined;
    try {
      mounts = await this.containerMounts(pod, container, paths);
      user = containerUser(pod, container);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.recorder.event(pod, 'Warning', 'Failed', `Error: ${message}`);
      return { view: { container, status: current, waiting: { reason: 'CreateContainerConfigError', message } }, checkInMs: 5_000 };
    }
    if (attempt === 0) {
      this.recorder.event(pod, 'Normal', 'Pulled', `Container image "${container.image ?? ''}" recorded, not pulled: the embedded runtime runs the command over the node's root filesystem`);
    }
    const env: Record<string, string> = {};
    for (const e of (container['env'] as { name: string; value?: string }[] | undefined) ?? []) env[e.name] = e.value ?? '';
    const status = await this.runtime.startContainer({
      podUid: uid,
      namespace: pod.metadata.namespace ?? 'default',
      podName: pod.metadata.name ?? '',
      containerName: container.name,
      ...(container.image === undefined ? {} : { image: container.image }),
      command,
      env,
      ...(typeof container['workingDir'] === 'string' ? { workingDir: container['workingDir'] } : {}),
      mounts,
      ...(user ? { user } : {}),
      attempt,
    });
    this.recorder.event(pod, 'Normal', 'Created', `Created container ${container.name}`);
    if (status.state === 'running') this.recorder.event(pod, 'Normal', 'Started', `Started container ${container.name}`);
    else this.recorder.event(pod, 'Warning', 'Failed', `Error: container ${container.name} did not start: ${status.reason ?? 'unknown reason'}`);
    return { view: { container, status, ...(current ? { last: current } : {}) }, checkInMs: this.pollMs };
  }

  private async containerMounts(pod: Pod, container: Container, paths: Map<string, string>): Promise<ContainerMount[]> {
    const out: ContainerMount[] = [];
    for (const m of container.volumeMounts ?? []) {
      const base = paths.get(m.name);
      if (base === undefined) throw new Error(`volumeMount "${m.name}" names no volume of the pod`);
      const hostPath = m.subPath ? await resolveSubPath(base, m.subPath) : base;
      const volume = pod.spec.volumes?.find((v) => v.name === m.name);
      const readOnly = m.readOnly === true || (volume !== undefined && volumeClaim(pod, volume)?.readOnly === true);
      if (m.mountPropagation === 'Bidirectional' && (container['securityContext'] as { privileged?: boolean } | undefined)?.privileged !== true) {
        // The API refuses it already; a pod written before that check is refused here, as the kubelet would.
        throw new Error(`volumeMount "${m.name}": Bidirectional mount propagation is available only to privileged containers`);
      }
      if (m.mountPropagation === 'HostToContainer' || m.mountPropagation === 'Bidirectional') {
        // The kubelet keeps its root rshared; here the volume's own mount (a CSI publish, a tmpfs) is made shared.
        if (await this.mounter.isMountPoint(base)) await this.mounter.makeShared(base);
        out.push({ hostPath, containerPath: m.mountPath, readOnly, propagation: m.mountPropagation });
        continue;
      }
      out.push({ hostPath, containerPath: m.mountPath, readOnly });
    }
    // Raw block: the published device file, bound onto a file at devicePath in the container.
    for (const d of container.volumeDevices ?? []) {
      const hostPath = paths.get(d.name);
      if (hostPath === undefined) throw new Error(`volumeDevice "${d.name}" names no volume of the pod`);
      const volume = pod.spec.volumes?.find((v) => v.name === d.name);
      out.push({ hostPath, containerPath: d.devicePath, readOnly: volume !== undefined && volumeClaim(pod, volume)?.readOnly === true });
    }
    return out;
  }

  /** What the pod's containers are doing, for status while its volumes are not ready. */
  private async views(pod: Pod, reason: string, message: string): Promise<ContainerView[]> {
    const uid = pod.metadata.uid ?? '';
    const out: ContainerView[] = [];
    // A pod with init containers: the app containers wait for them (PodInitializing), as in the kubelet.
    const initializing = (pod.spec.initContainers ?? []).length > 0 ? { reason: 'PodInitializing' } : undefined;
    for (const container of pod.spec.containers) {
      const status = await this.runtime.status(uid, container.name).catch(() => undefined);
      out.push(status?.state === 'running' ? { container, status } : { container, status, waiting: initializing ?? { reason, message } });
    }
    return out;
  }

  /** The init containers as the runtime has them (those never started wait with PodInitializing). */
  private async initViews(pod: Pod): Promise<ContainerView[]> {
    const uid = pod.metadata.uid ?? '';
    const out: ContainerView[] = [];
    for (const container of pod.spec.initContainers ?? []) {
      const status = await this.runtime.status(uid, container.name).catch(() => undefined);
      out.push(status === undefined ? { container, status, waiting: { reason: 'PodInitializing' } } : { container, status });
    }
    return out;
  }

  private async writeStatus(pod: Pod, views: ContainerView[], volumesReady: boolean, initViews?: ContainerView[]): Promise<Pod | undefined> {
    const latest = this.store.get('pods', pod.metadata.namespace, pod.metadata.name ?? '');
    if (latest === undefined || latest.metadata.uid !== pod.metadata.uid) return undefined;
    const inits = initViews ?? (await this.initViews(pod));
    const status = computePodStatus({ pod: latest, views, initViews: inits, volumesReady, hostIP: HOST_IP });
    if (isDeepStrictEqual(status, latest.status)) return latest;
    try {
      return this.store.update<Pod>({ ...latest, status }, { subresource: 'status' });
    } catch (err) {
      if (err instanceof ConflictError || err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  // ------------------------------------------------------------------ teardown

  /** Graceful deletion: stop the containers within the grace period, release volumes, then remove the pod. */
  private async terminate(pod: Pod): Promise<void> {
    const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    await this.cleanUp(pod.metadata.uid ?? '', grace, pod);
    try {
      this.store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid ?? '' } });
      await this.store.flushed();
    } catch (err) {
      if (!(err instanceof NotFoundError || err instanceof ConflictError)) throw err;
    }
  }

  /**
   * Stops a pod's containers, unpublishes its volumes and removes its directory; then unstages
   * the volumes no pod on the node uses any more. Safe to run again at any point.
   */
  private async cleanUp(uid: string, graceSeconds: number, pod?: Pod): Promise<void> {
    for (const name of await this.containerNames(uid, pod)) {
      const status = await this.runtime.status(uid, name);
      if (status?.state === 'running' || status?.state === 'unknown') {
        if (pod) this.recorder.event(pod, 'Normal', 'Killing', `Stopping container ${name}`);
        await this.runtime.stopContainer(uid, name, graceSeconds);
      }
    }
    const gone = pod === undefined || pod.metadata.deletionTimestamp !== undefined;
    if (gone) await this.runtime.removePod(uid);
    await this.volumeManager.tearDownPod(uid, gone);
    if (pod === undefined) {
      this.lastVolumeError.delete(uid);
      this.volumeManager.forget(uid);
    }
    await this.volumeManager.unstageUnused();
  }

  /**
   * The heartbeat: the node's status, then (not awaited: a driver that hangs must not hold up the
   * heartbeat; one collection at a time) the volumes' stats and health.
   */
  private async beat(): Promise<void> {
    if (this.stopped || this.paused) return;
    await this.nodeStatus.beat();
    if (!this.checkingHealth) {
      this.checkingHealth = true;
      void this.volumeManager
        .collectStats(() => this.stopped)
        .catch((err: unknown) => this.log.warn({ err }, 'volume health check failed'))
        .finally(() => (this.checkingHealth = false));
    }
  }

  private async containerNames(uid: string, pod: Pod | undefined): Promise<string[]> {
    const names = new Set([...(pod?.spec.initContainers ?? []), ...(pod?.spec.containers ?? [])].map((c) => c.name));
    const dir = `${this.layout.podDir(uid)}/containers`;
    for (const name of await readdir(dir).catch(() => [] as string[])) names.add(name);
    return [...names];
  }

}
