// The kubelet's part of a volume expansion, for one node: once the resizer (controllers/resizer.ts)
// has grown a volume and said that a node must finish (the claim's FileSystemResizePending /
// allocatedResourceStatuses NodeResizePending, the PV's pre-resize-capacity annotation), the node
// agent calls NodeExpandVolume on a published volume: online for a pod already running, or right
// after the stage and publish of the next pod to start (offline). Only then does the claim's
// status.capacity become the new size, its conditions cleared, the PV's annotation removed, and a
// FileSystemResizeSuccessful event recorded on the pod and the claim. A failure is a Warning
// VolumeResizeFailed event on the pod and a NodeResizeError condition on the claim, retried with
// backoff; the pod keeps running.
//
// Nothing is remembered but the retry backoff: whether a volume needs expanding is read from the
// PV and the claim each time (nodeExpansionFor), so an agent or a whole `up` killed in the middle
// calls NodeExpandVolume (idempotent) again and finishes. The PV is written before the claim: a
// crash between the two leaves the claim still pending, which is redone, never the other way.
import type { Logger } from 'pino';
import { bytesToQuantity } from '../api/quantity.js';
import type { PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod } from '../api/types/core.js';
import type { EventSink } from '../controllers/events.js';
import { decodeSecret } from '../controllers/provisioner.js';
import { bytesOf, CONDITION, FS_RESIZE_PENDING_MESSAGE, hasCondition, infeasible, RESIZE_STATUS, resizeStatus, resizeStatusOf } from '../controllers/resizer.js';
import { ANN_PRE_RESIZE_CAPACITY, annotation, isBoundToClaim } from '../controllers/volume-util.js';
import { ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import type { NodeCsiVolumes } from './csi-volumes.js';

const STORAGE = 'storage';
const BASE_RETRY_MS = 500;
const MAX_RETRY_MS = 60_000;

/**
 * The size a node must grow a volume's filesystem to, or undefined: the claim is bound to the PV,
 * the PV is larger than the claim's capacity, the controller's part is done (not
 * ControllerResizeInProgress/Infeasible), and the claim or PV says a node must finish it.
 */
export function nodeExpansionFor(pvc: PersistentVolumeClaim, pv: PersistentVolume): number | undefined {
  if (pvc.status?.phase !== 'Bound' || pv.spec.csi === undefined || !isBoundToClaim(pv, pvc)) return undefined;
  if (pv.spec.volumeMode === 'Block') return undefined;
  const state = resizeStatusOf(pvc);
  if (state === RESIZE_STATUS.controllerInProgress || state === RESIZE_STATUS.controllerInfeasible) return undefined;
  const pvBytes = bytesOf(pv.spec.capacity?.[STORAGE]);
  const claimBytes = bytesOf(pvc.status.capacity?.[STORAGE]);
  if (pvBytes === undefined || (claimBytes !== undefined && pvBytes <= claimBytes)) return undefined;
  const pending =
    state === RESIZE_STATUS.nodePending || state === RESIZE_STATUS.nodeInProgress || state === RESIZE_STATUS.nodeInfeasible || hasCondition(pvc, CONDITION.fsResizePending) || annotation(pv, ANN_PRE_RESIZE_CAPACITY) !== undefined;
  return pending ? pvBytes : undefined;
}

export interface NodeExpansionOptions {
  store: Store;
  recorder: EventSink;
  csi: NodeCsiVolumes;
  nodeName: string;
  logger: Logger;
}

export class NodeExpansion {
  /**
   * Retry backoff per "<pod uid>/<pv>" after a failed NodeExpandVolume (the only state kept in
   * memory): a new pod, whose stage may grow what the old publication could not, tries at once.
   */
  private readonly backoff = new Map<string, { failures: number; notBefore: number }>();

  constructor(private readonly options: NodeExpansionOptions) {}

  /**
   * Expands a pod's published volume if its claim says so. Call with the PV's lock held. Never
   * throws for the driver's refusal (recorded, retried later); the pod's sync goes on.
   */
  async run(pod: Pod, claimName: string): Promise<void> {
    const { store } = this.options;
    const namespace = pod.metadata.namespace ?? 'default';
    const pvc = store.get('persistentvolumeclaims', namespace, claimName);
    const pv = pvc?.spec.volumeName ? store.get('persistentvolumes', undefined, pvc.spec.volumeName) : undefined;
    if (pvc === undefined || pv === undefined) return;
    const bytes = nodeExpansionFor(pvc, pv);
    const pvName = pv.metadata.name ?? '';
    const key = `${pod.metadata.uid ?? ''}/${pvName}`;
    if (bytes === undefined) {
      this.backoff.delete(key);
      return;
    }
    const wait = this.backoff.get(key);
    if (wait !== undefined && Date.now() < wait.notBefore) return;
    const csi = pv.spec.csi;
    if (csi === undefined) return;

    this.writeClaim(namespace, claimName, (c) => resizeStatus(c, { conditions: (c.status?.conditions ?? []).filter((x) => x.type === CONDITION.fsResizePending).map((x) => ({ type: x.type, ...(x.message ? { message: x.message } : {}) })), state: RESIZE_STATUS.nodeInProgress }));
    try {
      const secrets = csi.nodeExpandSecretRef?.name ? this.secret(csi.nodeExpandSecretRef.namespace ?? 'default', csi.nodeExpandSecretRef.name) : {};
      await this.options.csi.expand({ pv, podUid: pod.metadata.uid ?? '', bytes, secrets });
    } catch (err) {
      const failures = (wait?.failures ?? 0) + 1;
      this.backoff.set(key, { failures, notBefore: Date.now() + Math.min(BASE_RETRY_MS * 2 ** (failures - 1), MAX_RETRY_MS) });
      const message = err instanceof Error ? err.message : String(err);
      this.options.logger.warn({ pv: pvName, err: message, failures }, 'NodeExpandVolume failed; retrying');
      this.options.recorder.event(pod, 'Warning', 'VolumeResizeFailed', message);
      // Still waiting for a node (a driver that can only grow it at the next stage says so: the
      // pod must be restarted), with the node's error beside it.
      this.writeClaim(namespace, claimName, (c) =>
        resizeStatus(c, {
          conditions: [
            { type: CONDITION.fsResizePending, message: FS_RESIZE_PENDING_MESSAGE },
            { type: CONDITION.nodeError, message },
          ],
          state: infeasible((err as { cause?: unknown }).cause) ? RESIZE_STATUS.nodeInfeasible : RESIZE_STATUS.nodePending,
        }),
      );
      return;
    }
    for (const k of this.backoff.keys()) if (k.endsWith(`/${pvName}`)) this.backoff.delete(k);
    // The PV first (see the header), then the claim's capacity: the size the filesystem now has.
    for (let i = 0; i < 5; i++) {
      const current = store.get('persistentvolumes', undefined, pvName);
      if (current === undefined || annotation(current, ANN_PRE_RESIZE_CAPACITY) === undefined) break;
      const annotations = { ...current.metadata.annotations };
      delete annotations[ANN_PRE_RESIZE_CAPACITY];
      try {
        store.update({ ...current, metadata: { ...current.metadata, annotations } });
        break;
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
    const written = this.writeClaim(namespace, claimName, (c) => {
      const state = resizeStatusOf(c);
      // The resizer has started another expansion meanwhile: only the capacity is ours to change.
      if (state === RESIZE_STATUS.controllerInProgress || state === RESIZE_STATUS.controllerInfeasible) return { ...c.status, capacity: { ...c.status?.capacity, [STORAGE]: bytesToQuantity(bytes) } };
      return resizeStatus(c, { conditions: [], state: undefined, capacity: bytesToQuantity(bytes) });
    });
    const message = `MountVolume.NodeExpandVolume succeeded for volume "${pvName}" ${this.options.nodeName}`;
    this.options.recorder.event(pod, 'Normal', 'FileSystemResizeSuccessful', message);
    if (written !== undefined) this.options.recorder.event(written, 'Normal', 'FileSystemResizeSuccessful', message);
    this.options.logger.info({ pv: pvName, claim: `${namespace}/${claimName}`, bytes }, 'volume expanded on the node');
  }

  private secret(namespace: string, name: string): Record<string, string> {
    const secret = this.options.store.get('secrets', namespace, name);
    if (secret === undefined) throw new Error(`secret "${namespace}/${name}" not found`);
    return decodeSecret(secret);
  }

  private writeClaim(namespace: string, name: string, change: (pvc: PersistentVolumeClaim) => PersistentVolumeClaimStatus): PersistentVolumeClaim | undefined {
    for (let i = 0; ; i++) {
      const current = this.options.store.get('persistentvolumeclaims', namespace, name);
      if (current === undefined) return undefined;
      try {
        return this.options.store.update({ ...current, status: change(current) }, { subresource: 'status' });
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
  }
}
