// The attach/detach controller (kube-controller-manager's): which CSI volumes must be attached to
// which nodes, expressed as VolumeAttachment objects for the attacher (attacher.ts) to act on.
//
// Desired state, per PersistentVolume: the nodes of the pods (spec.nodeName set, not Succeeded or
// Failed, node still registered) that use a claim bound to it — when the volume is CSI and its
// CSIDriver does not say attachRequired: false (no CSIDriver object → attach, as in Kubernetes).
//
//   attach   a VolumeAttachment "csi-<sha256(pv + driver + node)>" per desired (volume, node). A
//            volume whose access modes are only ReadWriteOnce/ReadWriteOncePod is attached to one
//            node at a time: while it is attached elsewhere the pod gets Kubernetes' Warning
//            FailedAttachVolume "Multi-Attach error for volume …" instead.
//   detach   a VolumeAttachment no pod on its node needs is deleted — but only once the node no
//            longer lists the volume in Node.status.volumesInUse (the node agent keeps
//            "kubernetes.io/csi/<driver>^<volumeHandle>" there while the volume is staged or
//            published), so nothing is detached under a mounted filesystem. A deleted Node needs
//            nothing: its attachments go at once.
//
// It also tells a pod when attaching its volume fails (the attacher's status.attachError), as
// Kubernetes' reconciler does: Warning FailedAttachVolume "AttachVolume.Attach failed for volume …".
//
// Keys are PV names; a sync looks at one volume's pods and attachments and does what is missing, so
// it is safe to run again at any time.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Node, PersistentVolume, PersistentVolumeClaim, Pod } from '../api/types/core.js';
import type { VolumeAttachment } from '../api/types/storage.js';
import { AlreadyExistsError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop } from './controller.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { podIsFinished } from './protection.js';
import { podClaimNames } from '../scheduler/claims.js';
import { claimRefKey, isDeleting } from './volume-util.js';

/** The in-tree plugin name Kubernetes gives every CSI volume. */
export const CSI_PLUGIN_NAME = 'kubernetes.io/csi';

/** The VolumeAttachment name Kubernetes' CSI attacher uses for (volume, driver, node). */
export function volumeAttachmentName(pvName: string, driverName: string, nodeName: string): string {
  return `csi-${createHash('sha256').update(`${pvName}${driverName}${nodeName}`).digest('hex')}`;
}

/** A CSI volume's unique name, as Node.status.volumesInUse lists it: "kubernetes.io/csi/<driver>^<handle>". */
export function uniqueVolumeName(driverName: string, volumeHandle: string): string {
  return `${CSI_PLUGIN_NAME}/${driverName}^${volumeHandle}`;
}

/** Node.status.volumesInUse (written by the node agent). */
export function volumesInUse(node: Node | undefined): string[] {
  return node?.status?.volumesInUse ?? [];
}

/** The VolumeAttachment of a volume to a node, if any (by its usual name, else by its spec). */
export function findVolumeAttachment(store: Store, pv: PersistentVolume, nodeName: string): VolumeAttachment | undefined {
  const name = pv.metadata.name ?? '';
  const driver = pv.spec.csi?.driver;
  if (driver !== undefined) {
    const va = store.get('volumeattachments', undefined, volumeAttachmentName(name, driver, nodeName));
    if (va !== undefined) return va;
  }
  return store
    .list('volumeattachments', { fieldSelector: `spec.source.persistentVolumeName=${name},spec.nodeName=${nodeName}` })
    .items.find((va) => driver === undefined || va.spec.attacher === driver);
}

/** Whether a volume may be attached to only one node at a time (only RWO / RWOP access modes). */
export function singleNodeOnly(pv: PersistentVolume): boolean {
  const modes = pv.spec.accessModes ?? [];
  return modes.length > 0 && modes.every((m) => m === 'ReadWriteOnce' || m === 'ReadWriteOncePod');
}

export interface AttachDetachOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  logger: Logger;
  /** A repeated Multi-Attach warning for the same pod is recorded at most this often. Default 30 s. */
  multiAttachReportMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_PODS_BY_CLAIM = 'attach-detach:scheduled-pods-by-claim';
const IDX_PODS_BY_NODE = 'attach-detach:pods-by-node';
const IDX_VA_BY_PV = 'attach-detach:attachments-by-volume';
const IDX_VA_BY_NODE = 'attach-detach:attachments-by-node';
const IDX_PV_BY_DRIVER = 'attach-detach:volumes-by-driver';

function podNeedsVolumes(pod: Pod): boolean {
  return Boolean(pod.spec?.nodeName) && !podIsFinished(pod);
}

function podClaimKeys(pod: Pod): string[] {
  const ns = pod.metadata.namespace ?? 'default';
  return podClaimNames(pod).map((c) => `${ns}/${c.name}`);
}

export class AttachDetachController {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly pods: Informer<Pod>;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly nodes: Informer<Node>;
  private readonly vas: Informer<VolumeAttachment>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly log: Logger;
  private readonly reportMs: number;
  /** pod uid → [message, when] of the last Multi-Attach warning. */
  private readonly reported = new Map<string, [string, number]>();
  /** attachment name → the attachError last reported to its pods. */
  private readonly attachErrors = new Map<string, string>();

  constructor(options: AttachDetachOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'attachdetach' });
    this.reportMs = options.multiAttachReportMs ?? 30_000;
    this.loop = new ControllerLoop({
      name: 'attachdetach',
      logger: options.logger,
      sync: (key) => this.sync(key),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.pods = options.informers.for('pods');
    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');
    this.nodes = options.informers.for('nodes');
    this.vas = options.informers.for('volumeattachments');

    this.pods.addIndex(IDX_PODS_BY_CLAIM, (pod) => (podNeedsVolumes(pod) ? podClaimKeys(pod) : []));
    this.pods.addIndex(IDX_PODS_BY_NODE, (pod) => (pod.spec?.nodeName ? [pod.spec.nodeName] : []));
    this.vas.addIndex(IDX_VA_BY_PV, (va) => (va.spec.source?.persistentVolumeName ? [va.spec.source.persistentVolumeName] : []));
    this.vas.addIndex(IDX_VA_BY_NODE, (va) => [va.spec.nodeName]);
    this.pvs.addIndex(IDX_PV_BY_DRIVER, (pv) => (pv.spec.csi ? [pv.spec.csi.driver] : []));

    const podVolumes = (pod: Pod): void => {
      const ns = pod.metadata.namespace ?? 'default';
      for (const c of podClaimNames(pod)) {
        const volumeName = this.pvcs.getByName(ns, c.name)?.spec.volumeName;
        if (volumeName) this.loop.enqueue(volumeName);
      }
    };
    this.pods.addEventHandler({
      add: (pod) => pod.spec?.nodeName && podVolumes(pod),
      // Status updates (phase Running…) matter only when the pod finishes.
      update: (old, pod) => (old === pod || old.spec?.nodeName !== pod.spec?.nodeName || podIsFinished(old) !== podIsFinished(pod)) && podVolumes(pod),
      delete: (pod) => {
        this.reported.delete(pod.metadata.uid ?? '');
        podVolumes(pod);
      },
    });
    const claimChanged = (old: PersistentVolumeClaim | undefined, pvc: PersistentVolumeClaim): void => {
      if (pvc.spec.volumeName) this.loop.enqueue(pvc.spec.volumeName);
      if (old?.spec.volumeName && old.spec.volumeName !== pvc.spec.volumeName) this.loop.enqueue(old.spec.volumeName);
    };
    this.pvcs.addEventHandler({ add: (pvc) => claimChanged(undefined, pvc), update: claimChanged, delete: (pvc) => claimChanged(undefined, pvc) });
    const volumeChanged = (pv: PersistentVolume): void => this.loop.enqueue(pv.metadata.name ?? '');
    this.pvs.addEventHandler({ add: volumeChanged, update: (_old, pv) => volumeChanged(pv), delete: volumeChanged });
    const attachmentChanged = (va: VolumeAttachment): void => {
      const pv = va.spec.source?.persistentVolumeName;
      if (pv) this.loop.enqueue(pv);
    };
    this.vas.addEventHandler({
      add: attachmentChanged,
      update: (_old, va) => attachmentChanged(va),
      delete: (va) => {
        this.attachErrors.delete(va.metadata.name ?? '');
        attachmentChanged(va);
      },
    });
    const nodeAttachments = (node: Node): void => {
      for (const va of this.vas.byIndex(IDX_VA_BY_NODE, node.metadata.name ?? '')) attachmentChanged(va);
    };
    this.nodes.addEventHandler({
      // A node (re)appearing makes its pods' volumes wanted again.
      add: (node) => {
        for (const pod of this.pods.byIndex(IDX_PODS_BY_NODE, node.metadata.name ?? '')) podVolumes(pod);
        nodeAttachments(node);
      },
      update: (old, node) => (old === node || volumesInUse(old).join('\n') !== volumesInUse(node).join('\n')) && nodeAttachments(node),
      delete: nodeAttachments,
    });
    this.registry.onChange((driver) => {
      for (const k of this.pvs.indexKeys(IDX_PV_BY_DRIVER, driver)) this.loop.enqueue(k);
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Whether the driver's volumes need a VolumeAttachment (CSIDriver spec.attachRequired, default true). */
  attachRequired(driverName: string): boolean {
    return this.registry.csiDriver(driverName)?.spec?.attachRequired !== false;
  }

  /** node name → the pods there that need the volume attached. */
  desiredNodes(pv: PersistentVolume): Map<string, Pod[]> {
    const desired = new Map<string, Pod[]>();
    const csi = pv.spec.csi;
    if (csi === undefined || !this.attachRequired(csi.driver)) return desired;
    const claim = claimRefKey(pv);
    if (claim === undefined) return desired;
    const pvc = this.pvcs.get(claim);
    if (pvc === undefined || pvc.spec.volumeName !== pv.metadata.name) return desired;
    if (pv.spec.claimRef?.uid && pv.spec.claimRef.uid !== pvc.metadata.uid) return desired;
    for (const pod of this.pods.byIndex(IDX_PODS_BY_CLAIM, claim)) {
      const node = pod.spec.nodeName ?? '';
      if (this.nodes.get(node) === undefined) continue;
      let list = desired.get(node);
      if (list === undefined) desired.set(node, (list = []));
      list.push(pod);
    }
    return desired;
  }

  private sync(pvName: string): void {
    const pv = this.pvs.get(pvName);
    const attachments = this.vas.byIndex(IDX_VA_BY_PV, pvName);
    const desired = pv === undefined ? new Map<string, Pod[]>() : this.desiredNodes(pv);
    const driver = pv?.spec.csi?.driver;

    if (pv !== undefined && driver !== undefined && desired.size > 0) {
      // The node whose pod came first is served first when only one node may have the volume.
      const order = [...desired].sort(([na, a], [nb, b]) => oldest(a).localeCompare(oldest(b)) || na.localeCompare(nb));
      for (const [node, pods] of order) {
        const existing = attachments.find((va) => va.spec.nodeName === node && va.spec.attacher === driver);
        if (existing !== undefined) {
          this.reportAttachError(existing, pv, pods);
          continue;
        }
        if (singleNodeOnly(pv)) {
          const elsewhere = attachments.filter((va) => va.spec.nodeName !== node);
          if (elsewhere.length > 0) {
            this.reportMultiAttach(pv, pods, elsewhere);
            continue;
          }
        }
        const va = this.attach(pv, driver, node);
        if (va !== undefined) attachments.push(va);
      }
    }

    for (const va of attachments) {
      const node = va.spec.nodeName;
      if (desired.has(node) && va.spec.attacher === driver) continue;
      if (isDeleting(va)) continue;
      const handle = pv?.spec.csi?.volumeHandle;
      if (handle !== undefined && volumesInUse(this.nodes.get(node)).includes(uniqueVolumeName(va.spec.attacher, handle))) {
        this.log.debug({ volume: pvName, node }, 'volume no longer needed but still in use on the node; detach waits');
        continue;
      }
      this.log.info({ volume: pvName, node, attachment: va.metadata.name }, 'detaching');
      try {
        this.store.delete('volumeattachments', undefined, va.metadata.name ?? '');
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
  }

  private attach(pv: PersistentVolume, driver: string, node: string): VolumeAttachment | undefined {
    const pvName = pv.metadata.name ?? '';
    const name = volumeAttachmentName(pvName, driver, node);
    this.log.info({ volume: pvName, node, attachment: name }, 'attaching');
    try {
      return this.store.create<VolumeAttachment>({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'VolumeAttachment',
        metadata: { name },
        spec: { attacher: driver, nodeName: node, source: { persistentVolumeName: pvName } },
      });
    } catch (err) {
      // Still being deleted (its detach not finished): its deletion requeues the volume.
      if (err instanceof AlreadyExistsError) return undefined;
      throw err;
    }
  }

  /** Kubernetes' reportMultiAttachError: each waiting pod learns which pods of its namespace hold the volume. */
  private reportMultiAttach(pv: PersistentVolume, pods: readonly Pod[], elsewhere: readonly VolumeAttachment[]): void {
    const claim = claimRefKey(pv) ?? '';
    const nodes = new Set(elsewhere.map((va) => va.spec.nodeName));
    const holders = this.pods.byIndex(IDX_PODS_BY_CLAIM, claim).filter((p) => nodes.has(p.spec.nodeName ?? ''));
    const pvName = pv.metadata.name ?? '';
    for (const pod of pods) {
      let message: string;
      if (holders.length === 0) {
        message = `Multi-Attach error for volume "${pvName}" Volume is already exclusively attached to one node and can't be attached to another`;
      } else {
        const ns = pod.metadata.namespace ?? 'default';
        const local = holders.filter((p) => (p.metadata.namespace ?? 'default') === ns).map((p) => p.metadata.name ?? '');
        const others = holders.length - local.length;
        let detail = local.length > 0 ? `Volume is already used by pod(s) ${local.join(', ')}` : `Volume is already used by ${others} pod(s) in different namespaces`;
        if (local.length > 0 && others > 0) detail += ` and ${others} pod(s) in different namespaces`;
        message = `Multi-Attach error for volume "${pvName}" ${detail}`;
      }
      const uid = pod.metadata.uid ?? '';
      const last = this.reported.get(uid);
      const now = Date.now();
      if (last !== undefined && last[0] === message && now - last[1] < this.reportMs) continue;
      this.reported.set(uid, [message, now]);
      this.recorder.event(pod, 'Warning', 'FailedAttachVolume', message);
    }
  }

  /** Passes an attacher's status.attachError on to the pods waiting for the attachment, once per error. */
  private reportAttachError(va: VolumeAttachment, pv: PersistentVolume, pods: readonly Pod[]): void {
    const error = va.status?.attachError;
    const name = va.metadata.name ?? '';
    if (error?.message === undefined) {
      this.attachErrors.delete(name);
      return;
    }
    const id = `${error.time ?? ''} ${error.message}`;
    if (this.attachErrors.get(name) === id) return;
    this.attachErrors.set(name, id);
    for (const pod of pods) this.recorder.event(pod, 'Warning', 'FailedAttachVolume', `AttachVolume.Attach failed for volume "${pv.metadata.name ?? ''}" : ${error.message}`);
  }
}

function oldest(pods: readonly Pod[]): string {
  return pods.map((p) => p.metadata.creationTimestamp ?? '').sort()[0] ?? '';
}

/** kube-controller-manager's attachdetach (registry.ts). */
export const ATTACH_DETACH: ControllerDescriptor = {
  name: 'persistentvolume-attach-detach-controller',
  aliases: ['attachdetach'],
  description: "VolumeAttachments for the volumes of pods on nodes, deleted once the node no longer uses them",
  init(ctx) {
    const c = new AttachDetachController({ store: ctx.store, informers: ctx.informers, registry: ctx.registry, recorder: ctx.events.recorder('attachdetach-controller'), logger: ctx.logger, ...ctx.backoff });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
