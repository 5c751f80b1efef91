// The attacher: what external-attacher does in a cluster, for every registered CSI driver at once.
// It acts on VolumeAttachments (made by attach-detach.ts) whose spec.attacher is a registered driver:
//
//   attach   finalizer external-attacher/<driver> on the attachment (with the node's CSI node ID in
//            annotation csi.alpha.kubernetes.io/node-id, so that detaching works after the node is
//            gone) and on the PV; then ControllerPublishVolume(volume handle, node ID, capability from
//            the PV, readonly, controllerPublishSecretRef's secret, volumeAttributes) → status
//            attached=true with attachmentMetadata = the publish_context the node needs for
//            NodeStage/NodePublish. A failure → status.attachError {time, message} with the driver's
//            message, a Warning event, and a retry with backoff.
//   detach   the attachment deleted: ControllerUnpublishVolume, then its finalizer goes (and the
//            attachment with it); a failure → status.detachError and a retry. The PV's finalizer
//            goes once the PV is being deleted and no attachment names it.
//
// A driver without PUBLISH_UNPUBLISH_VOLUME has nothing to attach: its attachments are marked
// attached at once, without finalizers (external-attacher's trivial handler).
//
// Writes that record what is about to happen (finalizers, node ID) are made durable
// (store.flushed()) before the driver is called, so a crash never leaves an attachment the control
// plane has forgotten. Secrets are passed to the driver and never logged.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CsiError } from '../../csi/errors.js';
import type { ControllerPublishVolumeRequestInput, VolumeCapabilityInput } from '../../csi/types.js';
import { rfc3339 } from '../api/time.js';
import type { PersistentVolume, PersistentVolumeAccessMode, Secret, SecretReference } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { VolumeAttachment } from '../api/types/storage.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, driverUnavailable, type SyncResult } from './controller.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventSink } from './events.js';
import type { Informer, InformerFactory } from './informer.js';
import { describeError } from './provisioner.js';
import { isDeleting } from './volume-util.js';

/** On a VolumeAttachment: the CSI node ID it was published to (external-attacher's annotation). */
export const ANN_NODE_ID = 'csi.alpha.kubernetes.io/node-id';
const FINALIZER_PREFIX = 'external-attacher/';
/** external-attacher's fs type when the PV names none. */
const DEFAULT_FSTYPE = 'ext4';

/** external-attacher's finalizer for a driver: "external-attacher/" + the name with [^a-zA-Z0-9-] as "-". */
export function attacherFinalizer(driverName: string): string {
  let name = driverName.replace(/[^a-zA-Z0-9-]/g, '-');
  if (name.endsWith('-')) name += 'X';
  return FINALIZER_PREFIX + name;
}

/** A problem with an attachment's PV, node or secrets: recorded as attachError, retried with backoff. */
export class AttachError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttachError';
  }
}

type CsiAccessMode = NonNullable<VolumeCapabilityInput['access_mode']>['mode'];

/** A PV's access modes as one CSI access mode (csi-lib-utils' ToCSIAccessMode, used by the attacher and kubelet). */
export function csiAccessModeOf(modes: readonly PersistentVolumeAccessMode[] | undefined, singleNodeMultiWriter: boolean): CsiAccessMode {
  const m = new Set(modes ?? []);
  if (m.has('ReadWriteOncePod')) {
    if (m.size > 1) throw new AttachError('Kubernetes does not support use of ReadWriteOncePod with other access modes on the same PersistentVolume');
    return singleNodeMultiWriter ? 'SINGLE_NODE_SINGLE_WRITER' : 'SINGLE_NODE_WRITER';
  }
  if (m.has('ReadWriteMany')) return 'MULTI_NODE_MULTI_WRITER';
  if (m.has('ReadOnlyMany') && m.has('ReadWriteOnce')) throw new AttachError('CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume');
  if (m.has('ReadOnlyMany')) return 'MULTI_NODE_READER_ONLY';
  if (m.has('ReadWriteOnce')) return singleNodeMultiWriter ? 'SINGLE_NODE_MULTI_WRITER' : 'SINGLE_NODE_WRITER';
  throw new AttachError(`unsupported AccessMode combination: [${[...m].join(' ')}]`);
}

/** The volume capability of a PV: block for volumeMode Block, else mount with fsType (default ext4) and mountOptions. */
export function volumeCapabilityOf(pv: PersistentVolume, singleNodeMultiWriter: boolean): VolumeCapabilityInput {
  const csi = pv.spec.csi;
  if (csi === undefined) throw new AttachError(`persistentvolume "${pv.metadata.name ?? ''}" is not a CSI volume`);
  const access_mode = { mode: csiAccessModeOf(pv.spec.accessModes, singleNodeMultiWriter) };
  if (pv.spec.volumeMode === 'Block') return { block: {}, access_mode };
  return { mount: { fs_type: csi.fsType || DEFAULT_FSTYPE, mount_flags: [...(pv.spec.mountOptions ?? [])] }, access_mode };
}

/** A Secret's data, decoded; AttachError (Kubernetes' wording) when it does not exist. */
export function readSecretData(store: Store, ref: SecretReference): Record<string, string> {
  const secret = store.get('secrets', ref.namespace, ref.name ?? '') as Secret | undefined;
  if (secret === undefined) throw new AttachError(`failed to find Secret "${ref.name ?? ''}" in namespace "${ref.namespace ?? ''}": secrets "${ref.name ?? ''}" not found`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries(secret.stringData ?? {})) out[k] = v;
  return out;
}

function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return (obj.metadata.finalizers ?? []).includes(finalizer);
}

function withoutFinalizer<T extends KubeObject>(obj: T, finalizer: string): T {
  return { ...obj, metadata: { ...obj.metadata, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer) } };
}

function isNotFound(err: unknown): boolean {
  return err instanceof CsiError && err.code === grpcStatus.NOT_FOUND;
}

export interface AttacherOptions {
  store: Store;
  informers: InformerFactory;
  registry: DriverRegistry;
  recorder: EventSink;
  logger: Logger;
  /** ControllerPublish/Unpublish calls in flight at once. Default 16. */
  concurrency?: number;
  /** Deadline of one ControllerPublish/Unpublish call. Default 60 s. */
  timeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_VA_BY_ATTACHER = 'attacher:attachments-by-attacher';
const IDX_VA_BY_PV = 'attacher:attachments-by-volume';

export class Attacher {
  /** Keys: VolumeAttachment names. */
  readonly attachments: ControllerLoop;
  /** Keys: PV names (their finalizer). */
  readonly volumes: ControllerLoop;
  private readonly store: Store;
  private readonly vas: Informer<VolumeAttachment>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly registry: DriverRegistry;
  private readonly recorder: EventSink;
  private readonly log: Logger;
  private readonly timeoutMs: number;

  constructor(options: AttacherOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'csi-attacher' });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.attachments = new ControllerLoop({ name: 'csi-attacher', logger: options.logger, workers: options.concurrency ?? 16, sync: (key, signal) => this.syncAttachment(key, signal), ...backoff });
    this.volumes = new ControllerLoop({ name: 'csi-attacher-pv', logger: options.logger, sync: (key) => this.syncVolume(key), ...backoff });
    this.vas = options.informers.for('volumeattachments');
    this.pvs = options.informers.for('persistentvolumes');
    this.vas.addIndex(IDX_VA_BY_ATTACHER, (va) => [va.spec.attacher]);
    this.vas.addIndex(IDX_VA_BY_PV, (va) => (va.spec.source?.persistentVolumeName ? [va.spec.source.persistentVolumeName] : []));

    const enqueue = (va: VolumeAttachment): void => this.attachments.enqueue(va.metadata.name ?? '');
    this.vas.addEventHandler({
      add: enqueue,
      update: (old, va) => {
        // Our own status writes (attachError…) must not bypass the retry backoff.
        const statusOnly = old !== va && old.metadata.deletionTimestamp === va.metadata.deletionTimestamp && (old.metadata.finalizers ?? []).join() === (va.metadata.finalizers ?? []).join() && old.metadata.generation === va.metadata.generation;
        if (!statusOnly) enqueue(va);
      },
      delete: (va) => {
        const pv = va.spec.source?.persistentVolumeName;
        if (pv) this.volumes.enqueue(pv);
      },
    });
    const volumeChanged = (pv: PersistentVolume): void => {
      if (isDeleting(pv) && (pv.metadata.finalizers ?? []).some((f) => f.startsWith(FINALIZER_PREFIX))) this.volumes.enqueue(pv.metadata.name ?? '');
    };
    this.pvs.addEventHandler({ add: volumeChanged, update: (_old, pv) => volumeChanged(pv) });
    this.registry.onChange((driver) => {
      for (const k of this.vas.indexKeys(IDX_VA_BY_ATTACHER, driver)) this.attachments.enqueue(k);
    });
  }

  start(): void {
    this.attachments.start();
    this.volumes.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.attachments.stop(), this.volumes.stop()]);
  }

  private async syncAttachment(name: string, signal: AbortSignal): Promise<SyncResult | void> {
    const va = this.vas.get(name);
    if (va === undefined) return;
    const driver = va.spec.attacher;
    // Not ours (yet): registration requeues it.
    if (!this.registry.isRegistered(driver)) return;
    if (!va.spec.source?.persistentVolumeName) return; // inline volumes: not supported
    if (isDeleting(va)) return this.detach(va, signal);
    if (va.status?.attached === true) return;

    let publish: boolean;
    try {
      publish = (await this.registry.controllerCapabilities(driver)).has('PUBLISH_UNPUBLISH_VOLUME');
    } catch (err) {
      if (signal.aborted) return;
      this.attachFailed(va, err);
      return this.retryOrThrow(err);
    }
    if (!publish) {
      this.markAttached(name, {});
      return;
    }

    let request: ControllerPublishVolumeRequestInput;
    try {
      request = await this.publishRequest(va);
      this.addFinalizers(name, request.node_id ?? '');
    } catch (err) {
      this.attachFailed(this.vas.get(name) ?? va, err);
      return this.retryOrThrow(err);
    }
    // The finalizers (and the node ID detach will need) must be durable before the volume is attached.
    await this.store.flushed();
    if (signal.aborted) return;
    const client = this.registry.controllerClient(driver);
    if (client === undefined) return;
    let context: Record<string, string>;
    try {
      const response = await client.controller.ControllerPublishVolume(request, { timeoutMs: this.timeoutMs, signal });
      context = response.publish_context;
    } catch (err) {
      if (signal.aborted) return;
      this.attachFailed(this.vas.get(name) ?? va, err);
      return this.retryOrThrow(err);
    }
    this.log.debug({ attachment: name, volume: va.spec.source.persistentVolumeName, node: va.spec.nodeName }, 'ControllerPublishVolume done');
    // Deleted meanwhile: the detach path unpublishes it.
    const current = this.vas.get(name);
    if (current === undefined || isDeleting(current)) return;
    this.markAttached(name, context);
  }

  private async publishRequest(va: VolumeAttachment): Promise<ControllerPublishVolumeRequestInput> {
    const driver = va.spec.attacher;
    const pvName = va.spec.source.persistentVolumeName ?? '';
    const pv = this.pvs.get(pvName);
    if (pv === undefined) throw new AttachError(`persistentvolume "${pvName}" not found`);
    const csi = pv.spec.csi;
    if (csi === undefined) throw new AttachError(`persistentvolume "${pvName}" is not a CSI volume`);
    if (csi.driver !== driver) throw new AttachError(`persistentvolume "${pvName}" belongs to driver ${csi.driver}, not ${driver}`);
    const nodeID = this.registry.nodeDriver(driver, va.spec.nodeName)?.nodeID;
    if (!nodeID) throw new AttachError(`CSINode ${va.spec.nodeName} does not contain driver ${driver}`);
    const multiWriter = (await this.registry.controllerCapabilities(driver)).has('SINGLE_NODE_MULTI_WRITER');
    const secrets = csi.controllerPublishSecretRef ? readSecretData(this.store, csi.controllerPublishSecretRef) : {};
    return {
      volume_id: csi.volumeHandle,
      node_id: nodeID,
      volume_capability: volumeCapabilityOf(pv, multiWriter),
      readonly: csi.readOnly ?? false,
      secrets,
      volume_context: { ...csi.volumeAttributes },
    };
  }

  /** Finalizer + node ID on the attachment, finalizer on the PV (each written only if missing). */
  private addFinalizers(name: string, nodeID: string): void {
    const va = this.vas.get(name);
    if (va === undefined) return;
    const finalizer = attacherFinalizer(va.spec.attacher);
    if (!hasFinalizer(va, finalizer) || va.metadata.annotations?.[ANN_NODE_ID] !== nodeID) {
      this.store.update({
        ...va,
        metadata: {
          ...va.metadata,
          annotations: { ...va.metadata.annotations, [ANN_NODE_ID]: nodeID },
          finalizers: [...(va.metadata.finalizers ?? []).filter((f) => f !== finalizer), finalizer],
        },
      });
    }
    const pv = this.pvs.get(va.spec.source.persistentVolumeName ?? '');
    if (pv !== undefined && !hasFinalizer(pv, finalizer)) {
      this.store.update({ ...pv, metadata: { ...pv.metadata, finalizers: [...(pv.metadata.finalizers ?? []), finalizer] } });
    }
  }

  private markAttached(name: string, context: Record<string, string>): void {
    const va = this.vas.get(name);
    if (va === undefined) return;
    this.store.update({ ...va, status: { attached: true, attachmentMetadata: { ...context } } }, { subresource: 'status' });
  }

  private attachFailed(va: VolumeAttachment, err: unknown): void {
    const message = describeError(err);
    const pv = va.spec.source.persistentVolumeName ?? '';
    this.recorder.event(va, 'Warning', 'FailedAttachVolume', `AttachVolume.Attach failed for volume "${pv}" : ${message}`);
    const current = this.vas.get(va.metadata.name ?? '');
    if (current === undefined || isDeleting(current)) return;
    this.store.update({ ...current, status: { ...current.status, attached: false, attachError: { time: rfc3339(), message } } }, { subresource: 'status' });
  }

  /** An unreachable driver is a typed outcome (retried soon, see controller.ts); anything else is a failure. */
  private retryOrThrow(err: unknown): SyncResult {
    const unavailable = driverUnavailable(err);
    if (unavailable !== undefined) return { unavailable };
    throw err;
  }

  private async detach(va: VolumeAttachment, signal: AbortSignal): Promise<SyncResult | void> {
    const name = va.metadata.name ?? '';
    const driver = va.spec.attacher;
    const finalizer = attacherFinalizer(driver);
    if (!hasFinalizer(va, finalizer)) return;
    const pvName = va.spec.source.persistentVolumeName ?? '';
    try {
      const pv = this.pvs.get(pvName);
      const csi = pv?.spec.csi;
      if (csi === undefined) throw new AttachError(`persistentvolume "${pvName}" not found`);
      const nodeID = va.metadata.annotations?.[ANN_NODE_ID] || this.registry.nodeDriver(driver, va.spec.nodeName)?.nodeID;
      if (!nodeID) throw new AttachError(`CSINode ${va.spec.nodeName} does not contain driver ${driver}`);
      const secrets = csi.controllerPublishSecretRef ? readSecretData(this.store, csi.controllerPublishSecretRef) : {};
      const client = this.registry.controllerClient(driver);
      if (client === undefined) return;
      await this.store.flushed();
      if (signal.aborted) return;
      try {
        await client.controller.ControllerUnpublishVolume({ volume_id: csi.volumeHandle, node_id: nodeID, secrets }, { timeoutMs: this.timeoutMs, signal });
      } catch (err) {
        // Already gone from the node (or the volume is gone): detached.
        if (!isNotFound(err)) throw err;
      }
    } catch (err) {
      if (signal.aborted) return;
      const message = describeError(err);
      this.recorder.event(va, 'Warning', 'FailedDetachVolume', `DetachVolume.Detach failed for volume "${pvName}" : ${message}`);
      const current = this.vas.get(name);
      if (current !== undefined) this.store.update({ ...current, status: { ...(current.status ?? { attached: true }), detachError: { time: rfc3339(), message } } }, { subresource: 'status' });
      return this.retryOrThrow(err);
    }
    this.log.debug({ attachment: name, volume: pvName, node: va.spec.nodeName }, 'ControllerUnpublishVolume done');
    const current = this.vas.get(name);
    // Removing the last finalizer completes the deletion.
    if (current !== undefined && hasFinalizer(current, finalizer)) this.store.update(withoutFinalizer(current, finalizer));
    this.volumes.enqueue(pvName);
  }

  /** A PV being deleted keeps an attacher finalizer only while some attachment names it. */
  private syncVolume(name: string): void {
    const pv = this.pvs.get(name);
    if (pv === undefined || !isDeleting(pv)) return;
    const attachers = new Set(this.vas.byIndex(IDX_VA_BY_PV, name).map((va) => attacherFinalizer(va.spec.attacher)));
    const drop = (pv.metadata.finalizers ?? []).filter((f) => f.startsWith(FINALIZER_PREFIX) && !attachers.has(f));
    if (drop.length === 0) return;
    this.store.update({ ...pv, metadata: { ...pv.metadata, finalizers: (pv.metadata.finalizers ?? []).filter((f) => !drop.includes(f)) } });
  }
}
