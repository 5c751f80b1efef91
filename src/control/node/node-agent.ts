// The node agent: the kubelet's pod workers and volume manager for one node of the embedded control
// plane. For each pod bound to its node it waits until the pod's volumes are attached, stages and
// publishes them (NodeStageVolume / NodePublishVolume through the driver's node socket), sets up its
// other volumes, runs its containers through the runtime, and reports status; in reverse when the
// pod goes. Level-triggered: a sync is told only a pod UID and makes the node match the store.
//
// What is desired comes from the store (pods with spec.nodeName = this node); what exists comes
// from disk (vol_data.json records, the runtime's state), never from memory, so a restarted agent
// finds the volumes and containers a previous one left, keeps those its pods still use and cleans
// up the rest. A volume is unstaged only when no pod on the node publishes or still wants it.
import type { VolumeStats, VolumeStatsCache } from './volume-stats.js';
import { ephemeralClaimConflict, podVolumeClaims, type VolumeClaim, volumeClaim } from '../api/pod-claims.js';
import { readdir, rmdir, stat } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { filesystemStats } from '../../driver/mount/filesystem.js';
import type { Mounter } from '../../driver/mount/mount.js';
import type { Container, Node, PersistentVolume, PersistentVolumeClaim, Pod } from '../api/types/core.js';
import type { CSIDriver, VolumeAttachment } from '../api/types/storage.js';
import { ControllerLoop } from '../controllers/controller.js';
import { uniqueVolumeName } from '../controllers/attach-detach.js';
import type { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import type { InformerFactory } from '../controllers/informer.js';
import { decodeSecret } from '../controllers/provisioner.js';
import { nodeSelectorMatches } from '../controllers/volume-util.js';
import { ConflictError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { NodeCsiVolumes, podInfoAttributes } from './csi-volumes.js';
import { diskPressureCondition, underDiskPressure } from './disk-pressure.js';
import { NodeLayout } from './layout.js';
import { initRestartPolicy, nextInitStep } from './init-containers.js';
import { NodeExpansion } from './node-expansion.js';
import { computePodStatus, type ContainerView } from './pod-status.js';
import { PodVolumeError, PodVolumes, resolveSubPath } from './pod-volumes.js';
import type { ContainerMount, ContainerRuntime, ContainerUser } from './runtime-api.js';
import { containerUser, podSecurityContext } from './security-context.js';
import { DEFAULT_MAX_PODS, machineResources } from './node-resources.js';
import { sourceKinds, unsupportedReason } from './unsupported-volumes.js';
import { type FsGroupPolicy, rootNeedsChange, setVolumeOwnership } from './volume-ownership.js';

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
}

/** A pod's `csi:` volume (core/v1 CSIVolumeSource). */
interface InlineCsiSource {
  driver: string;
  readOnly?: boolean;
  fsType?: string;
  volumeAttributes?: Record<string, string>;
  nodePublishSecretRef?: { name?: string };
}

const MAX_RESTART_BACKOFF_MS = 300_000;
const HOST_IP = '127.0.0.1';

/** A step that cannot go on yet (not an error): the sync checks again shortly. */
class NotYet extends Error {}

function finished(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function rfc3339(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

/** One lock per key: staging and unstaging of a PV never interleave. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** PersistentVolumeSpec fields that are not a volume source. */
const PV_SPEC_FIELDS = ['capacity', 'accessModes', 'claimRef', 'persistentVolumeReclaimPolicy', 'storageClassName', 'mountOptions', 'volumeMode', 'nodeAffinity', 'volumeAttributesClassName'];

/**
 * A local PersistentVolume (`local.path` on this node, which its required node affinity names):
 * used where it is, as the kubelet's local volume plugin binds it. A missing path is the kubelet's
 * NewMounter error; a block device serves a Block PV (volumeDevices), never a Filesystem one (the
 * agent does not format disks). fsGroup as for other volumes, when the root does not have it yet.
 */
async function localVolume(pv: PersistentVolume, path: string, fsGroup: number | undefined): Promise<string> {
  const pvName = pv.metadata.name ?? '';
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new PodVolumeError(`MountVolume.NewMounter initialization failed for volume "${pvName}" : path "${path}" does not exist`);
  const block = pv.spec.volumeMode === 'Block';
  if (block && !info.isBlockDevice()) throw new PodVolumeError(`MapVolume.SetUpDevice failed for volume "${pvName}" : local path "${path}" is not a block device`);
  if (!block && !info.isDirectory()) {
    throw new PodVolumeError(`MountVolume.SetUp failed for volume "${pvName}" : local path "${path}" is not a directory (the embedded node agent does not format or mount local disks)`);
  }
  if (!block && fsGroup !== undefined && (await rootNeedsChange(path, fsGroup))) await setVolumeOwnership(path, fsGroup, undefined);
  return path;
}

/** A claim used as a device must be a Block volume and one used as a mount a Filesystem one (the kubelet's check). */
function checkVolumeMode(pod: Pod, name: string, pv: PersistentVolume): void {
  const mode = pv.spec.volumeMode ?? 'Filesystem';
  const containers = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  if (mode !== 'Filesystem' && containers.some((c) => (c.volumeMounts ?? []).some((m) => m.name === name))) {
    throw new PodVolumeError(`volume ${name} has volumeMode ${mode}, but is specified in volumeMounts`);
  }
  if (mode !== 'Block' && containers.some((c) => (c.volumeDevices ?? []).some((d) => d.name === name))) {
    throw new PodVolumeError(`volume ${name} has volumeMode ${mode}, but is specified in volumeDevices`);
  }
}

export class NodeAgent {
  readonly nodeName: string;
  readonly layout: NodeLayout;
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly runtime: ContainerRuntime;
  private readonly mounter: Mounter;
  private readonly csi: NodeCsiVolumes;
  private readonly volumes: PodVolumes;
  private readonly expansion: NodeExpansion;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly restartBackoffMs: number;
  private readonly heartbeatMs: number;
  private readonly nodefsPath: string;
  private readonly informers: InformerFactory;
  /** The pods bound to this node, by UID (kept by the informer's handlers). */
  private readonly pods = new Map<string, Pod>();
  private readonly pvLocks = new KeyedMutex();
  /** Last FailedMount message per pod, so a retry that fails the same way is not a new event. */
  private readonly lastVolumeError = new Map<string, string>();
  /** Last abnormal volume condition reported per "<pod uid>/<pv>", so one fault is one event, not one per heartbeat. */
  private readonly lastAbnormal = new Map<string, string>();
  private checkingHealth = false;
  private readonly volumeStats: VolumeStatsCache | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopped = false;

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
    this.nodefsPath = options.nodefsPath ?? options.rootDir;
    this.volumeStats = options.volumeStats;
    this.layout = new NodeLayout(options.rootDir);
    this.csi = new NodeCsiVolumes({ layout: this.layout, nodeClient: (driver) => this.registry.nodeClient(driver, this.nodeName), logger: this.log });
    this.expansion = new NodeExpansion({ store: this.store, recorder: this.recorder, csi: this.csi, nodeName: this.nodeName, logger: this.log });
    this.volumes = new PodVolumes(
      this.layout,
      options.mounter,
      {
        configMap: (ns, name) => this.store.get('configmaps', ns, name),
        secret: (ns, name) => this.store.get('secrets', ns, name),
      },
      this.log,
    );
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
    this.log.info({ root: this.layout.root }, 'node agent started');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.loop.stop();
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
      paths = await this.setUpVolumes(pod);
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
      if (m.mountPropagation === 'Bidirectional') {
        throw new Error(`volumeMount "${m.name}": mountPropagation Bidirectional is not supported by the embedded runtime (a container cannot mount onto the node)`);
      }
      if (m.mountPropagation === 'HostToContainer') {
        // The kubelet keeps its root rshared; here the volume's own mount (a CSI publish, a tmpfs) is made shared.
        if (await this.mounter.isMountPoint(base)) await this.mounter.makeShared(base);
        out.push({ hostPath, containerPath: m.mountPath, readOnly, propagation: 'HostToContainer' });
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

  // ------------------------------------------------------------------ volumes

  /** Every volume of the pod, set up; volume name → path on the host. */
  private async setUpVolumes(pod: Pod): Promise<Map<string, string>> {
    const uid = pod.metadata.uid ?? '';
    const namespace = pod.metadata.namespace ?? 'default';
    const paths = new Map<string, string>();
    let newlySetUp = false;
    for (const volume of pod.spec.volumes ?? []) {
      const claim = volumeClaim(pod, volume);
      const inline = volume['csi'] as InlineCsiSource | undefined;
      if (inline !== undefined) {
        paths.set(volume.name, await this.setUpInline(pod, volume.name, inline));
        continue;
      }
      if (claim === undefined) {
        const path = await this.volumes.setUp(uid, namespace, volume, podSecurityContext(pod).fsGroup);
        if (path !== undefined) paths.set(volume.name, path);
        continue;
      }
      const pv = this.boundVolume(pod, claim);
      const csi = pv.spec.csi;
      if (csi === undefined) {
        if (pv.spec.hostPath !== undefined) {
          const path = await this.volumes.setUp(uid, namespace, { name: volume.name, hostPath: pv.spec.hostPath });
          paths.set(volume.name, path ?? pv.spec.hostPath.path);
          continue;
        }
        checkVolumeMode(pod, volume.name, pv);
        this.checkNodeAffinity(pv);
        const local = pv.spec['local'] as { path?: string } | undefined;
        if (local?.path !== undefined) {
          paths.set(volume.name, await localVolume(pv, local.path, claim.readOnly === true ? undefined : podSecurityContext(pod).fsGroup));
          continue;
        }
        const kinds = sourceKinds(pv.spec, PV_SPEC_FIELDS);
        throw new PodVolumeError(`MountVolume.SetUp failed for volume "${pv.metadata.name ?? ''}" : ${unsupportedReason(kinds[0] ?? '(none)')}`);
      }
      checkVolumeMode(pod, volume.name, pv);
      const pvName = pv.metadata.name ?? '';
      if (this.csi.isSetUp(uid, pvName)) {
        // Set up by this agent already (the kubelet's actual state of the world): a running pod's
        // periodic sync only looks for a resize, it does not redo the checks nor rescan the node.
        paths.set(volume.name, this.csi.targetPath(uid, { pvName, block: pv.spec.volumeMode === 'Block' }));
        await this.pvLocks.run(pvName, () => this.expansion.run(pod, claim.claimName));
        continue;
      }
      newlySetUp = true;
      this.checkMultiAttach(pod, pv);
      this.checkNodeAffinity(pv);
      const publishContext = this.attachment(pv);
      const readOnly = claim.readOnly || csi.readOnly === true;
      const path = await this.pvLocks.run(pv.metadata.name ?? '', () =>
        this.csi.setUp({
          pv,
          podUid: uid,
          readOnly,
          publishContext,
          stageSecrets: this.secrets(csi.nodeStageSecretRef),
          publishSecrets: this.secrets(csi.nodePublishSecretRef),
          ...this.fsGroupOf(pod, csi.driver),
          ...(this.podInfoOnMount(csi.driver) ? { podInfo: podInfoAttributes(pod, false) } : {}),
        }),
      );
      // A volume its resizer grew: NodeExpandVolume now that it is published (expansion finished here).
      await this.pvLocks.run(pv.metadata.name ?? '', () => this.expansion.run(pod, claim.claimName));
      paths.set(volume.name, path);
    }
    if (newlySetUp) await this.reportVolumesInUse();
    return paths;
  }

  /** Whether the driver's CSIDriver asks for the pod's identity in NodePublishVolume's volume_context. */
  private podInfoOnMount(driver: string): boolean {
    return (this.registry.csiDriver(driver) as CSIDriver | undefined)?.spec?.podInfoOnMount === true;
  }

  /**
   * A CSI ephemeral inline volume (`csi:` in the pod spec): only for a driver whose CSIDriver lists
   * the Ephemeral lifecycle mode — refused otherwise in the kubelet's words — published with its
   * attributes and, when the CSIDriver asks, the pod's identity with csi.storage.k8s.io/ephemeral.
   */
  private async setUpInline(pod: Pod, volumeName: string, source: InlineCsiSource): Promise<string> {
    const csiDriver = this.registry.csiDriver(source.driver) as CSIDriver | undefined;
    const modes = csiDriver?.spec?.volumeLifecycleModes ?? ['Persistent'];
    if (csiDriver === undefined || !modes.includes('Ephemeral')) {
      const why = csiDriver === undefined ? 'no CSIDriver object' : `only supports [${modes.map((m) => JSON.stringify(m)).join(' ')}]`;
      throw new PodVolumeError(`MountVolume.NewMounter initialization failed for volume "${volumeName}" : volume mode "Ephemeral" not supported by driver ${source.driver} (${why})`);
    }
    const uid = pod.metadata.uid ?? '';
    return this.pvLocks.run(`inline/${uid}/${volumeName}`, () =>
      this.csi.setUpInline({
        podUid: uid,
        volumeName,
        driver: source.driver,
        fsType: source.fsType ?? '',
        readOnly: source.readOnly === true,
        volumeContext: { ...(source.volumeAttributes ?? {}), ...(csiDriver.spec?.podInfoOnMount ? podInfoAttributes(pod, true) : {}) },
        publishSecrets: source.nodePublishSecretRef?.name ? this.secrets({ name: source.nodePublishSecretRef.name, namespace: pod.metadata.namespace ?? 'default' }) : {},
        ...this.fsGroupOf(pod, source.driver),
      }),
    );
  }

  /** What SetVolumeOwnership needs for a pod's CSI volume: the pod's fsGroup and the driver's policy. */
  private fsGroupOf(pod: Pod, driver: string): { fsGroup?: number; fsGroupChangePolicy?: string; fsGroupPolicy?: FsGroupPolicy } {
    const sc = podSecurityContext(pod);
    if (sc.fsGroup === undefined) return {};
    const policy = (this.registry.csiDriver(driver) as CSIDriver | undefined)?.spec?.fsGroupPolicy;
    return { fsGroup: sc.fsGroup, ...(sc.fsGroupChangePolicy ? { fsGroupChangePolicy: sc.fsGroupChangePolicy } : {}), ...(policy ? { fsGroupPolicy: policy } : {}) };
  }

  private boundVolume(pod: Pod, { claimName, ephemeral }: VolumeClaim): PersistentVolume {
    const namespace = pod.metadata.namespace ?? 'default';
    const pvc = this.store.get('persistentvolumeclaims', namespace, claimName) as PersistentVolumeClaim | undefined;
    if (pvc === undefined) throw new NotYet(`persistentvolumeclaim "${claimName}" not found`);
    if (pvc.metadata.deletionTimestamp !== undefined) throw new PodVolumeError(`persistentvolumeclaim "${claimName}" is being deleted`);
    const notOurs = ephemeral ? ephemeralClaimConflict(pod, pvc) : undefined;
    if (notOurs !== undefined) throw new PodVolumeError(notOurs);
    if (pvc.status?.phase !== 'Bound' || !pvc.spec.volumeName) throw new NotYet(`persistentvolumeclaim "${claimName}" is not bound yet`);
    const pv = this.store.get('persistentvolumes', undefined, pvc.spec.volumeName);
    if (pv === undefined) throw new NotYet(`persistentvolume "${pvc.spec.volumeName}" not found`);
    return pv;
  }

  private checkNodeAffinity(pv: PersistentVolume): void {
    const node = this.store.get('nodes', undefined, this.nodeName);
    if (pv.spec.nodeAffinity?.required !== undefined && !nodeSelectorMatches(pv.spec.nodeAffinity.required, this.nodeName, node?.metadata.labels)) {
      throw new PodVolumeError(`volume "${pv.metadata.name ?? ''}" cannot be used on node ${this.nodeName}: its node affinity does not match the node (the volume lives on another node)`);
    }
  }

  /**
   * A ReadWriteOnce volume may be used on one node at a time. Drivers that attach get this from the
   * attach/detach controller; for the others (no VolumeAttachment) the agent refuses here, with the
   * words Kubernetes uses.
   */
  private checkMultiAttach(pod: Pod, pv: PersistentVolume): void {
    const modes = pv.spec.accessModes ?? [];
    if (modes.some((m) => m === 'ReadWriteMany' || m === 'ReadOnlyMany')) return;
    const claim = pv.spec.claimRef;
    const users = this.informers
      .for('pods')
      .list()
      .filter(
        (p) =>
          p.spec.nodeName !== undefined &&
          p.spec.nodeName !== this.nodeName &&
          !finished(p) &&
          p.metadata.namespace === claim?.namespace &&
          podVolumeClaims(p).some((c) => c.claimName === claim?.name),
      );
    if (users.length === 0) return;
    const names = users.map((p) => p.metadata.name ?? '').join(', ');
    const message = `Multi-Attach error for volume "${pv.metadata.name ?? ''}" Volume is already used by pod(s) ${names} on node ${users[0]?.spec.nodeName ?? ''}`;
    const csiDriver = this.registry.csiDriver(pv.spec.csi?.driver ?? '') as CSIDriver | undefined;
    if (csiDriver?.spec?.attachRequired !== false) throw new NotYet(message);
    if (this.lastVolumeError.get(pod.metadata.uid ?? '') !== message) {
      this.lastVolumeError.set(pod.metadata.uid ?? '', message);
      this.recorder.event(pod, 'Warning', 'FailedAttachVolume', message);
    }
    throw new NotYet(message);
  }

  /** The publish context from the volume's VolumeAttachment, once attached ({} if none is needed). */
  private attachment(pv: PersistentVolume): Record<string, string> {
    const driver = pv.spec.csi?.driver ?? '';
    const csiDriver = this.registry.csiDriver(driver) as CSIDriver | undefined;
    if (csiDriver?.spec?.attachRequired === false) return {};
    if (csiDriver === undefined && !this.registry.isRegistered(driver)) throw new NotYet(`CSI driver ${driver} is not registered`);
    const va = this.informers
      .for('volumeattachments')
      .list()
      .find((a: VolumeAttachment) => a.spec.source.persistentVolumeName === pv.metadata.name && a.spec.nodeName === this.nodeName);
    if (va?.status?.attached !== true) {
      const error = va?.status?.attachError?.message;
      throw new NotYet(error ? `AttachVolume.Attach failed for volume "${pv.metadata.name ?? ''}" : ${error}` : `waiting for volume "${pv.metadata.name ?? ''}" to be attached to ${this.nodeName}`);
    }
    return va.status.attachmentMetadata ?? {};
  }

  private secrets(ref: { name?: string; namespace?: string } | undefined): Record<string, string> {
    if (ref?.name === undefined) return {};
    const secret = this.store.get('secrets', ref.namespace ?? 'default', ref.name);
    if (secret === undefined) throw new PodVolumeError(`secret "${ref.namespace ?? 'default'}/${ref.name}" not found`);
    return decodeSecret(secret);
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
    if (pod === undefined || pod.metadata.deletionTimestamp !== undefined) await this.runtime.removePod(uid);
    for (const record of await this.csi.publishedOf(uid)) {
      await this.pvLocks.run(record.pvName, () => this.csi.tearDown(uid, record));
    }
    await this.volumes.tearDownAll(uid);
    if (pod === undefined || pod.metadata.deletionTimestamp !== undefined) {
      // Empty directories only: anything still mounted or holding data stops the removal.
      const volumesDir = `${this.layout.podDir(uid)}/volumes`;
      for (const plugin of await readdir(volumesDir).catch(() => [] as string[])) await rmdir(`${volumesDir}/${plugin}`).catch(() => undefined);
      await rmdir(volumesDir).catch(() => undefined);
      await rmdir(this.layout.podDir(uid)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') this.log.warn({ pod: uid, err: err.code }, 'pod directory not empty; left in place');
      });
    }
    await this.unstageUnused();
  }

  private async containerNames(uid: string, pod: Pod | undefined): Promise<string[]> {
    const names = new Set([...(pod?.spec.initContainers ?? []), ...(pod?.spec.containers ?? [])].map((c) => c.name));
    const dir = `${this.layout.podDir(uid)}/containers`;
    for (const name of await readdir(dir).catch(() => [] as string[])) names.add(name);
    return [...names];
  }

  /** PV names the node's pods use or are about to use: these stay staged. */
  private async wantedVolumes(): Promise<Set<string>> {
    const wanted = new Set<string>();
    for (const pod of this.pods.values()) {
      if (pod.metadata.deletionTimestamp !== undefined || finished(pod)) continue;
      for (const c of podVolumeClaims(pod)) {
        const pvc = this.store.get('persistentvolumeclaims', pod.metadata.namespace ?? 'default', c.claimName);
        if (pvc?.spec.volumeName) wanted.add(pvc.spec.volumeName);
      }
    }
    for (const uid of await readdir(this.layout.podsDir).catch(() => [] as string[])) {
      for (const record of await this.csi.publishedOf(uid)) wanted.add(record.pvName);
    }
    return wanted;
  }

  private async unstageUnused(): Promise<void> {
    const staged = await this.csi.staged();
    for (const record of staged) {
      await this.pvLocks.run(record.pvName, async () => {
        if ((await this.wantedVolumes()).has(record.pvName)) return;
        await this.csi.unstage(record);
      });
    }
    // Staging directories without a record, under the PV's lock: a setUp may be writing one.
    const recorded = new Set(staged.map((r) => r.pvName));
    for (const name of await this.csi.stagingNames()) {
      if (!recorded.has(name)) await this.pvLocks.run(name, () => this.csi.forgetUnrecorded(name));
    }
    await this.reportVolumesInUse();
  }

  // ------------------------------------------------------------------ node status

  /** Node.status.volumesInUse: volumes staged, published or wanted here (detach waits for them to go). */
  private async reportVolumesInUse(): Promise<void> {
    const names = new Set<string>();
    for (const r of await this.csi.staged()) names.add(uniqueVolumeName(r.driverName, r.volumeHandle));
    for (const uid of await readdir(this.layout.podsDir).catch(() => [] as string[])) {
      for (const r of await this.csi.publishedOf(uid)) names.add(uniqueVolumeName(r.driverName, r.volumeHandle));
    }
    for (const pvName of await this.wantedVolumes()) {
      const pv = this.store.get('persistentvolumes', undefined, pvName);
      if (pv?.spec.csi) names.add(uniqueVolumeName(pv.spec.csi.driver, pv.spec.csi.volumeHandle));
    }
    const volumesInUse = [...names].sort();
    this.updateNode((node) => {
      const current = node.status?.volumesInUse ?? [];
      if (isDeepStrictEqual(current, volumesInUse)) return undefined;
      return { ...node.status, volumesInUse };
    });
    await this.store.flushed();
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      const now = rfc3339();
      // statfs first (it is I/O); a filesystem that cannot answer leaves the condition as it was.
      let nodefsBytes: number | undefined;
      const pressure = await filesystemStats(this.nodefsPath).then(
        (fs) => {
          nodefsBytes = fs.totalBytes;
          return underDiskPressure(fs);
        },
        (err: unknown) => {
          this.log.warn({ err, path: this.nodefsPath }, 'cannot read the node filesystem for DiskPressure');
          return undefined;
        },
      );
      let event: string | undefined;
      this.updateNode((node) => {
        let conditions = node.status?.conditions ?? [];
        if (pressure !== undefined) {
          const disk = diskPressureCondition(conditions.find((c) => c.type === 'DiskPressure'), pressure, now);
          conditions = [...conditions.filter((c) => c.type !== 'DiskPressure'), disk.condition];
          event = disk.event;
        }
        const machine = machineResources(nodefsBytes);
        const before = conditions.find((c) => c.type === 'Ready');
        const ready = {
          type: 'Ready',
          status: 'True' as const,
          reason: 'KubeletReady',
          message: 'stowage node agent is posting ready status',
          lastHeartbeatTime: now,
          lastTransitionTime: before?.status === 'True' && before.lastTransitionTime ? before.lastTransitionTime : now,
        };
        return {
          ...node.status,
          conditions: [...conditions.filter((c) => c.type !== 'Ready'), ready],
          addresses: [
            { type: 'InternalIP', address: HOST_IP },
            { type: 'Hostname', address: this.nodeName },
          ],
          // The machine's figures (node-resources.ts) win; pods and extended resources set by hand stay.
          capacity: { pods: DEFAULT_MAX_PODS, ...node.status?.capacity, ...machine },
          allocatable: { pods: DEFAULT_MAX_PODS, ...node.status?.allocatable, ...machine },
          nodeInfo: { kubeletVersion: 'stowage', containerRuntimeVersion: 'stowage://embedded', operatingSystem: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch },
        };
      });
      if (event !== undefined) {
        const node = this.store.get('nodes', undefined, this.nodeName);
        if (node) this.recorder.event(node, 'Normal', event, `Node ${this.nodeName} status is now: ${event}`);
      }
    } catch (err) {
      this.log.warn({ err }, 'node heartbeat failed');
    }
    // Not awaited: a driver that hangs must not hold up the heartbeat (one check at a time).
    if (!this.checkingHealth) {
      this.checkingHealth = true;
      void this.checkVolumeHealth()
        .catch((err: unknown) => this.log.warn({ err }, 'volume health check failed'))
        .finally(() => (this.checkingHealth = false));
    }
  }

  /**
   * The kubelet's volume stats and health monitoring (CSIVolumeHealth): NodeGetVolumeStats for
   * every published CSI volume of this node's pods. Usage goes to the volume stats cache (the
   * kubelet_volume_stats_* metrics, by claim); an abnormal condition becomes a Warning
   * VolumeConditionAbnormal event "Volume <name>: <message>" on the pod, and on its claim (where
   * external-health-monitor would put it), once per fault. A driver that cannot answer is logged,
   * not fatal; its volumes drop out of the metrics until it answers again.
   */
  private async checkVolumeHealth(): Promise<void> {
    const seen = new Set<string>();
    const collected = new Map<string, VolumeStats>();
    for (const [uid, pod] of this.pods) {
      if (this.stopped) return;
      const namespace = pod.metadata.namespace ?? 'default';
      for (const record of await this.csi.publishedOf(uid)) {
        const key = `${uid}/${record.pvName}`;
        seen.add(key);
        let stats: Awaited<ReturnType<NodeCsiVolumes['volumeStats']>>;
        try {
          stats = await this.csi.volumeStats(uid, record);
        } catch (err) {
          this.log.warn({ err, pv: record.pvName, pod: uid }, 'NodeGetVolumeStats failed');
          continue;
        }
        const volume = (pod.spec.volumes ?? []).find((v) => {
          const claimName = volumeClaim(pod, v)?.claimName;
          return claimName !== undefined && this.store.get('persistentvolumeclaims', namespace, claimName)?.spec.volumeName === record.pvName;
        });
        const claimName = volume === undefined ? undefined : volumeClaim(pod, volume)?.claimName;
        if (stats !== undefined && claimName !== undefined) {
          collected.set(`${namespace}/${claimName}`, { namespace, claim: claimName, ...stats.usage, ...(stats.condition ? { abnormal: stats.condition.abnormal } : {}) });
        }
        const condition = stats?.condition;
        if (!condition?.abnormal) {
          this.lastAbnormal.delete(key);
          continue;
        }
        if (this.lastAbnormal.get(key) === condition.message) continue;
        this.lastAbnormal.set(key, condition.message);
        const name = volume?.name ?? record.pvName;
        this.recorder.event(pod, 'Warning', 'VolumeConditionAbnormal', `Volume ${name}: ${condition.message}`);
        const claim = claimName === undefined ? undefined : this.store.get('persistentvolumeclaims', namespace, claimName);
        if (claim) this.recorder.event(claim, 'Warning', 'VolumeConditionAbnormal', condition.message);
      }
    }
    for (const key of this.lastAbnormal.keys()) if (!seen.has(key)) this.lastAbnormal.delete(key);
    this.volumeStats?.replace(this.nodeName, [...collected.values()]);
  }

  /** Read-modify-write of this node's status; the Node is created if registration has not yet. */
  private updateNode(change: (node: Node) => Node['status'] | undefined): void {
    for (let i = 0; i < 5; i++) {
      let node = this.store.get('nodes', undefined, this.nodeName);
      try {
        if (node === undefined) {
          node = this.store.create<Node>({ apiVersion: 'v1', kind: 'Node', metadata: { name: this.nodeName, labels: { 'kubernetes.io/hostname': this.nodeName } } });
        }
        const status = change(node);
        if (status === undefined) return;
        this.store.update<Node>({ ...node, status }, { subresource: 'status' });
        return;
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
  }
}

