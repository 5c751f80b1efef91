// The kubelet's volume manager for one embedded node. The desired state is the volumes of the pods
// bound to the node (the pod workers' map, read through pods()); the actual state is what the node
// has: the CSI plugin's vol_data.json records of staged and published volumes (csi-volumes.ts,
// read from disk, so a restarted agent finds what an earlier one did), the set-up marks of this
// agent's own calls (isSetUp), and the other pod volumes' directories (pod-volumes.ts). The pod
// workers ask it to bring one pod's volumes up (setUp) or down (tearDownPod), and after every
// teardown it reconciles the node as a whole: a staged volume no pod publishes or wants any more is
// unstaged (unstageUnused), and Node.status.volumesInUse is reported from the records (the
// attach/detach controller waits for it). The heartbeat has it collect volume stats and health.
// Every step on a PV runs under that PV's lock, so staging and unstaging never interleave.
//
// A volume already set up for a pod is not checked again on the pod's periodic sync (only a resize
// is looked for): the kubelet's actual state of the world, and what keeps a node with a hundred
// pods from rescanning all of them every second.
import { readdir, rmdir, stat } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Mounter } from '../../driver/mount/mount.js';
import { ephemeralClaimConflict, podVolumeClaims, type VolumeClaim, volumeClaim } from '../api/pod-claims.js';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from '../api/types/core.js';
import type { CSIDriver, VolumeAttachment } from '../api/types/storage.js';
import { uniqueVolumeName } from '../controllers/attach-detach.js';
import type { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import type { InformerFactory } from '../controllers/informer.js';
import { decodeSecret } from '../controllers/provisioner.js';
import { nodeSelectorMatches } from '../controllers/volume-util.js';
import type { Store } from '../store/store.js';
import { NodeCsiVolumes, podInfoAttributes } from './csi-volumes.js';
import type { NodeLayout } from './layout.js';
import { NodeExpansion } from './node-expansion.js';
import type { NodeStatusManager } from './node-status.js';
import { PodVolumeError, PodVolumes } from './pod-volumes.js';
import { podSecurityContext } from './security-context.js';
import { sourceKinds, unsupportedReason } from './unsupported-volumes.js';
import type { VolumeStats, VolumeStatsCache } from './volume-stats.js';
import { type FsGroupPolicy, rootNeedsChange, setVolumeOwnership } from './volume-ownership.js';

/** A step that cannot go on yet (not an error): the pod's sync checks again shortly. */
export class NotYet extends Error {}

export function finished(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
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

/** A pod's `csi:` volume (core/v1 CSIVolumeSource). */
interface InlineCsiSource {
  driver: string;
  readOnly?: boolean;
  fsType?: string;
  volumeAttributes?: Record<string, string>;
  nodePublishSecretRef?: { name?: string };
}

export interface VolumeManagerOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  nodeName: string;
  layout: NodeLayout;
  mounter: Mounter;
  logger: Logger;
  nodeStatus: NodeStatusManager;
  /** The desired state: the pods bound to this node, by UID (the pod workers' map). */
  pods: () => ReadonlyMap<string, Pod>;
  /** Where volume stats go (the kubelet_volume_stats_* metrics); none: not kept. */
  volumeStats?: VolumeStatsCache;
}

export class VolumeManager {
  private readonly store: Store;
  private readonly informers: InformerFactory;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly nodeName: string;
  private readonly layout: NodeLayout;
  private readonly log: Logger;
  private readonly nodeStatus: NodeStatusManager;
  private readonly pods: () => ReadonlyMap<string, Pod>;
  private readonly volumeStats: VolumeStatsCache | undefined;
  private readonly csi: NodeCsiVolumes;
  private readonly volumes: PodVolumes;
  private readonly expansion: NodeExpansion;
  private readonly pvLocks = new KeyedMutex();
  /** Last Multi-Attach message per pod, so a retry that fails the same way is not a new event. */
  private readonly lastAttachError = new Map<string, string>();
  /** Last abnormal volume condition reported per "<pod uid>/<pv>", so one fault is one event, not one per heartbeat. */
  private readonly lastAbnormal = new Map<string, string>();

  constructor(options: VolumeManagerOptions) {
    this.store = options.store;
    this.informers = options.informers;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.nodeName = options.nodeName;
    this.layout = options.layout;
    this.log = options.logger;
    this.nodeStatus = options.nodeStatus;
    this.pods = options.pods;
    this.volumeStats = options.volumeStats;
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
  }

  /** Forgets what was remembered for a pod that is gone. */
  forget(uid: string): void {
    this.lastAttachError.delete(uid);
  }

  /**
   * Unpublishes the pod's CSI volumes and releases its other volumes; with removeDirs (the pod is
   * gone or being deleted) its volume directories go too — empty ones only: anything still mounted
   * or holding data stops the removal. Safe to run again at any point.
   */
  async tearDownPod(uid: string, removeDirs: boolean): Promise<void> {
    for (const record of await this.csi.publishedOf(uid)) {
      await this.pvLocks.run(record.pvName, () => this.csi.tearDown(uid, record));
    }
    await this.volumes.tearDownAll(uid);
    if (!removeDirs) return;
    const volumesDir = `${this.layout.podDir(uid)}/volumes`;
    for (const plugin of await readdir(volumesDir).catch(() => [] as string[])) await rmdir(`${volumesDir}/${plugin}`).catch(() => undefined);
    await rmdir(volumesDir).catch(() => undefined);
    await rmdir(this.layout.podDir(uid)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') this.log.warn({ pod: uid, err: err.code }, 'pod directory not empty; left in place');
    });
  }

  /** Every volume of the pod, set up; volume name → path on the host. */
  async setUp(pod: Pod): Promise<Map<string, string>> {
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
    if (this.lastAttachError.get(pod.metadata.uid ?? '') !== message) {
      this.lastAttachError.set(pod.metadata.uid ?? '', message);
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

  /** PV names the node's pods use or are about to use: these stay staged. */
  private async wantedVolumes(): Promise<Set<string>> {
    const wanted = new Set<string>();
    for (const pod of this.pods().values()) {
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

  /** Unstages every staged volume no pod on the node publishes or still wants (and forgets unrecorded staging dirs). */
  async unstageUnused(): Promise<void> {
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

  /** Node.status.volumesInUse: volumes staged, published or wanted here (detach waits for them to go). */
  async reportVolumesInUse(): Promise<void> {
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
    this.nodeStatus.update((node) => {
      const current = node.status?.volumesInUse ?? [];
      if (isDeepStrictEqual(current, volumesInUse)) return undefined;
      return { ...node.status, volumesInUse };
    });
    await this.store.flushed();
  }

  /**
   * The kubelet's volume stats and health monitoring (CSIVolumeHealth): NodeGetVolumeStats for
   * every published CSI volume of this node's pods. Usage goes to the volume stats cache (the
   * kubelet_volume_stats_* metrics, by claim); an abnormal condition becomes a Warning
   * VolumeConditionAbnormal event "Volume <name>: <message>" on the pod, and on its claim (where
   * external-health-monitor would put it), once per fault. A driver that cannot answer is logged,
   * not fatal; its volumes drop out of the metrics until it answers again.
   */
  async collectStats(stopped: () => boolean): Promise<void> {
    const seen = new Set<string>();
    const collected = new Map<string, VolumeStats>();
    for (const [uid, pod] of this.pods()) {
      if (stopped()) return;
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

}
