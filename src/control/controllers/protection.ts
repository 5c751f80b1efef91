// Storage object in-use protection (Kubernetes' pvc-protection and pv-protection controllers).
//
// Every PVC gets the finalizer kubernetes.io/pvc-protection and every PV kubernetes.io/pv-protection.
// The control plane's store adds them in the create itself, as Kubernetes' admission plugin does
// (store/storage-object-in-use-protection.ts). For objects stored without them (a store opened
// without that plugin, objects from before it):
//   - a claim gets it with the binder's first write to it (binder.ts); this controller adds it to a
//     claim still without it after claimFinalizerGraceMs (a safety net: no extra write per claim);
//   - a provisioned volume is created with it; this controller adds it to any other at once. A deleted object keeps its finalizer, and so stays
// (Terminating), while it is in use:
//   - a PVC is in use while a Pod in its namespace that has not finished (phase not Succeeded or
//     Failed) names it in spec.volumes[].persistentVolumeClaim.claimName, or owns it as an
//     ephemeral volume's claim "<pod>-<volume>" (a same-named claim it does not own is not in use);
//   - a PV is in use while it is Bound.
// Once not in use, the finalizer is removed and the store completes the deletion.
import type { Logger } from 'pino';
import { isControlledBy, podVolumeClaims } from '../api/pod-claims.js';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { Store } from '../store/store.js';
import { ControllerLoop } from './controller.js';
import type { Informer, InformerFactory } from './informer.js';
import type { ControllerDescriptor } from './registry.js';
import { claimKey, isDeleting, PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER } from './volume-util.js';

export interface ProtectionOptions {
  store: Store;
  informers: InformerFactory;
  logger: Logger;
  /** Run the pvc-protection part (claims). Default true. */
  claims?: boolean;
  /** Run the pv-protection part (volumes). Default true. */
  volumes?: boolean;
  /** How long a new claim may go without the finalizer before this controller adds it. Default 1000 ms. */
  claimFinalizerGraceMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const IDX_POD_CLAIMS = 'protection:running-pods-by-claim';

/** Keys ("ns/claim") of the claims a pod uses. */
export function podClaimKeys(pod: Pod): string[] {
  const ns = pod.metadata.namespace ?? 'default';
  return podVolumeClaims(pod).map((c) => `${ns}/${c.claimName}`);
}

export function podIsFinished(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return (obj.metadata.finalizers ?? []).includes(finalizer);
}

function withFinalizer<T extends KubeObject>(obj: T, finalizer: string, present: boolean): T {
  const rest = (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer);
  return { ...obj, metadata: { ...obj.metadata, finalizers: present ? [...rest, finalizer] : rest } };
}

export class ProtectionController {
  readonly claims: ControllerLoop;
  readonly volumes: ControllerLoop;
  private readonly store: Store;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvs: Informer<PersistentVolume>;
  private readonly pods: Informer<Pod>;
  private readonly log: Logger;
  private readonly graceMs: number;
  /** The loops this instance runs (pvc-protection, pv-protection or both). */
  readonly loops: readonly ControllerLoop[];

  constructor(options: ProtectionOptions) {
    this.store = options.store;
    this.graceMs = options.claimFinalizerGraceMs ?? 1000;
    this.log = options.logger.child({ controller: 'storage-protection' });
    const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
    this.claims = new ControllerLoop({ name: 'pvc-protection', logger: options.logger, sync: (key) => this.syncClaim(key), ...backoff });
    this.volumes = new ControllerLoop({ name: 'pv-protection', logger: options.logger, sync: (key) => this.syncVolume(key), ...backoff });
    this.pvcs = options.informers.for('persistentvolumeclaims');
    this.pvs = options.informers.for('persistentvolumes');
    this.pods = options.informers.for('pods');
    const claims = options.claims !== false;
    const volumes = options.volumes !== false;
    this.loops = [...(claims ? [this.claims] : []), ...(volumes ? [this.volumes] : [])];
    if (claims) this.watchClaims();
    if (volumes) {
      const volumeNeedsWork = (pv: PersistentVolume): boolean => hasFinalizer(pv, PV_PROTECTION_FINALIZER) === isDeleting(pv);
      this.pvs.addEventHandler({
        add: (pv) => volumeNeedsWork(pv) && this.volumes.enqueue(pv.metadata.name ?? ''),
        update: (_old, pv) => volumeNeedsWork(pv) && this.volumes.enqueue(pv.metadata.name ?? ''),
      });
    }
  }

  private watchClaims(): void {
    this.pods.addIndex(IDX_POD_CLAIMS, (pod) => (podIsFinished(pod) ? [] : podClaimKeys(pod)));

    // Work to do: a live object without its finalizer, or a deleted one still holding it.
    const claimNeedsWork = (pvc: PersistentVolumeClaim): boolean => hasFinalizer(pvc, PVC_PROTECTION_FINALIZER) === isDeleting(pvc);
    const claimChanged = (pvc: PersistentVolumeClaim): void => {
      if (!claimNeedsWork(pvc)) return;
      // A live claim without the finalizer: give the binder its chance to add it in its own write.
      if (isDeleting(pvc)) this.claims.enqueue(claimKey(pvc));
      else this.claims.queue.addAfter(claimKey(pvc), this.graceMs);
    };
    this.pvcs.addEventHandler({ add: claimChanged, update: (_old, pvc) => claimChanged(pvc) });
    // A pod that finishes or goes away may free the claims it used.
    const podChanged = (pod: Pod): void => {
      for (const k of podClaimKeys(pod)) {
        const pvc = this.pvcs.get(k);
        if (pvc !== undefined && isDeleting(pvc)) this.claims.enqueue(k);
      }
    };
    this.pods.addEventHandler({ update: (old, pod) => old !== pod && podChanged(pod), delete: podChanged });
  }

  start(): void {
    for (const loop of this.loops) loop.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.loops.map((l) => l.stop()));
  }

  /** Whether a running (not finished) pod uses the claim. */
  claimInUse(key: string): boolean {
    return this.pods.indexKeys(IDX_POD_CLAIMS, key).length > 0;
  }

  private syncClaim(key: string): void {
    const pvc = this.pvcs.get(key);
    if (pvc === undefined) return;
    const has = hasFinalizer(pvc, PVC_PROTECTION_FINALIZER);
    if (!isDeleting(pvc)) {
      if (!has) this.store.update(withFinalizer(pvc, PVC_PROTECTION_FINALIZER, true));
      return;
    }
    if (!has) return;
    // A generic ephemeral volume uses its claim only if the pod owns it (upstream's podUsesPVC): a
    // user's claim that happens to have the name is not kept by a pod that may never use it.
    const users = this.pods.indexKeys(IDX_POD_CLAIMS, key).filter((k) => {
      const pod = this.pods.get(k);
      return pod !== undefined && podVolumeClaims(pod).some((c) => c.claimName === pvc.metadata.name && (!c.ephemeral || isControlledBy(pvc, pod)));
    });
    if (users.length > 0) {
      this.log.debug({ claim: key, pods: users }, 'claim is in use; keeping it until its pods finish');
      return;
    }
    this.store.update(withFinalizer(pvc, PVC_PROTECTION_FINALIZER, false));
  }

  private syncVolume(name: string): void {
    const pv = this.pvs.get(name);
    if (pv === undefined) return;
    const has = hasFinalizer(pv, PV_PROTECTION_FINALIZER);
    if (!isDeleting(pv)) {
      if (!has) this.store.update(withFinalizer(pv, PV_PROTECTION_FINALIZER, true));
      return;
    }
    if (!has || pv.status?.phase === 'Bound') return;
    this.store.update(withFinalizer(pv, PV_PROTECTION_FINALIZER, false));
  }
}

/** kube-controller-manager's pvc-protection (registry.ts). */
export const PVC_PROTECTION: ControllerDescriptor = {
  name: 'persistentvolumeclaim-protection-controller',
  aliases: ['pvc-protection'],
  description: 'keeps a claim (finalizer kubernetes.io/pvc-protection) while a pod uses it',
  init(ctx) {
    const c = new ProtectionController({ store: ctx.store, informers: ctx.informers, logger: ctx.logger, volumes: false, ...ctx.backoff });
    return { loops: c.loops, start: () => c.start(), stop: () => c.stop() };
  },
};

/** kube-controller-manager's pv-protection (registry.ts). */
export const PV_PROTECTION: ControllerDescriptor = {
  name: 'persistentvolume-protection-controller',
  aliases: ['pv-protection'],
  description: 'keeps a volume (finalizer kubernetes.io/pv-protection) while it is bound',
  init(ctx) {
    const c = new ProtectionController({ store: ctx.store, informers: ctx.informers, logger: ctx.logger, claims: false, ...ctx.backoff });
    return { loops: c.loops, start: () => c.start(), stop: () => c.stop() };
  },
};
