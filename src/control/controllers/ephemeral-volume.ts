// kube-controller-manager's ephemeral-volume controller: a pod's generic ephemeral volume
// (`ephemeral.volumeClaimTemplate`) gets its claim "<pod>-<volume>", made from the template (its
// labels, annotations and spec) and controlled by the pod — so the garbage collector deletes the
// claim with the pod, and the claim's reclaim policy decides what becomes of the volume. A claim of
// that name that the pod does not control is never taken over: the pod stays Pending (the
// scheduler says why) until the user removes it.
//
// Level-triggered like upstream: a pod is synced when it appears or changes, and again when a claim
// it needs is deleted (the pod is still there: it gets a new one).
import type { Logger } from 'pino';
import { ephemeralClaimConflict, ephemeralClaimName } from '../api/pod-claims.js';
import type { PersistentVolumeClaim, Pod } from '../api/types/core.js';
import { AlreadyExistsError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import type { EventSink } from './events.js';
import { type Informer, type InformerFactory, keyOf } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { isDeleting } from './volume-util.js';

const IDX_POD_BY_EPHEMERAL_CLAIM = 'ephemeral:pod-by-claim';

/** The pod's generic ephemeral volumes. */
function ephemeralVolumes(pod: Pod) {
  return (pod.spec?.volumes ?? []).filter((v) => v.ephemeral !== undefined);
}

export interface EphemeralVolumeOptions {
  store: Store;
  informers: InformerFactory;
  recorder: EventSink;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class EphemeralVolumeController {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly pods: Informer<Pod>;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly recorder: EventSink;
  private readonly log: Logger;

  constructor(options: EphemeralVolumeOptions) {
    this.store = options.store;
    this.recorder = options.recorder;
    this.log = options.logger.child({ controller: 'ephemeral-volume' });
    this.loop = new ControllerLoop({
      name: 'ephemeral-volume',
      logger: options.logger,
      sync: (key) => this.sync(key),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.pods = options.informers.for('pods');
    this.pvcs = options.informers.for('persistentvolumeclaims');
    const wants = (pod: Pod): boolean => !isDeleting(pod) && ephemeralVolumes(pod).length > 0;
    this.pods.addIndex(IDX_POD_BY_EPHEMERAL_CLAIM, (pod) => (wants(pod) ? ephemeralVolumes(pod).map((v) => `${pod.metadata.namespace ?? 'default'}/${ephemeralClaimName(pod, v)}`) : []));
    this.pods.addEventHandler({
      add: (pod) => wants(pod) && this.loop.enqueue(keyOf(pod)),
      update: (_old, pod) => wants(pod) && this.loop.enqueue(keyOf(pod)),
    });
    this.pvcs.addEventHandler({
      delete: (pvc) => {
        for (const k of this.pods.indexKeys(IDX_POD_BY_EPHEMERAL_CLAIM, keyOf(pvc))) this.loop.enqueue(k);
      },
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private sync(key: string): SyncResult | void {
    const pod = this.pods.get(key);
    if (pod === undefined || isDeleting(pod)) return;
    const namespace = pod.metadata.namespace ?? 'default';
    let conflict = false;
    for (const volume of ephemeralVolumes(pod)) {
      const name = ephemeralClaimName(pod, volume);
      const existing = this.pvcs.getByName(namespace, name);
      if (existing !== undefined) {
        const why = ephemeralClaimConflict(pod, existing);
        if (why !== undefined) {
          // Not ours to take over or delete: the scheduler keeps the pod Pending with this reason.
          this.log.info({ pod: key, claim: `${namespace}/${name}` }, why);
          conflict = true;
        }
        continue;
      }
      const template = volume.ephemeral?.volumeClaimTemplate;
      if (template === undefined) continue; // validation refuses such a pod; nothing to make
      const pvc: PersistentVolumeClaim = {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: {
          name,
          namespace,
          ...(template.metadata?.labels ? { labels: { ...template.metadata.labels } } : {}),
          ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
          ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name ?? '', uid: pod.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
        },
        spec: structuredClone(template.spec),
      };
      try {
        this.store.create(pvc);
        this.log.debug({ pod: key, claim: `${namespace}/${name}` }, 'created the claim of an ephemeral volume');
      } catch (err) {
        // Made meanwhile (our informer is behind): the next sync checks whose it is.
        if (err instanceof AlreadyExistsError) return { requeue: true };
        this.recorder.event(pod, 'Warning', 'FailedBinding', `PVC creation failed: ${(err as Error).message}`);
        throw err;
      }
    }
    // A conflict is resolved by the user deleting the claim, which enqueues the pod again.
    if (conflict) return;
  }
}

/** kube-controller-manager's ephemeral-volume controller (registry.ts). */
export const EPHEMERAL_VOLUME: ControllerDescriptor = {
  name: 'ephemeral-volume-controller',
  aliases: ['ephemeral-volume'],
  description: "makes the claim \"<pod>-<volume>\" of a pod's generic ephemeral volume, owned by the pod",
  init(ctx) {
    const c = new EphemeralVolumeController({ store: ctx.store, informers: ctx.informers, recorder: ctx.events.recorder('ephemeral_volume'), logger: ctx.logger, ...ctx.backoff });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
