// The controllers the embedded control plane can run, one descriptor each, as kube-controller-
// manager's controller list: a name, what it plays upstream, and how it is built on the shared
// informers. Each descriptor lives beside its controller (`<file>.ts` exports it); this list is the
// only place that names them all, so a new controller (the snapshot controller, the snapshotter,
// the resizer) is one file plus one line below.
//
// Names are upstream's where a counterpart exists: kube-controller-manager's current names, its
// older short names accepted as aliases (as it accepts them), and the sidecars' names:
//   persistentvolume-binder-controller           (persistentvolume-binder) the PV controller: binds
//                                                claims and volumes, hands claims to provisioners,
//                                                reclaims released volumes
//   persistentvolumeclaim-protection-controller  (pvc-protection) kubernetes.io/pvc-protection
//   persistentvolume-protection-controller       (pv-protection) kubernetes.io/pv-protection
//   persistentvolume-attach-detach-controller    (attachdetach) VolumeAttachments for pods' volumes
//   csi-provisioner                              the external-provisioner sidecar
//   csi-attacher                                 the external-attacher sidecar
//   ephemeral-volume-controller                  (ephemeral-volume) claims "<pod>-<volume>" for
//                                                generic ephemeral volumes, owned by the pod
//   scheduler                                    kube-scheduler, src/control/scheduler/ (its own binary
//                                                upstream, so not in kube-controller-manager's list)
//   csi-resizer                                  (persistentvolume-expander-controller,
//                                                persistentvolume-expander) the external-resizer
//                                                sidecar with the expand controller's part
//   snapshot-controller                          the common snapshot controller
//   csi-snapshotter                              the external-snapshotter sidecar
//   csi-capacity                                 external-provisioner's capacity feature
//                                                (--enable-capacity): CSIStorageCapacity objects
//   statefulset-controller                       (statefulset) pods and claims of StatefulSets
//   replicaset-controller                        (replicaset) pods of ReplicaSets
//   deployment-controller                        (deployment) ReplicaSets of Deployments, rolled
//   daemonset-controller                         (daemonset) a pod of a DaemonSet per fitting node
//   job-controller                               (job) pods of Jobs, run to completion
//   node-lifecycle-controller                    (nodelifecycle) silent nodes Unknown, taints
//                                                from conditions (TaintNodesByCondition)
//   taint-eviction-controller                    pods evicted by NoExecute taints
//   resourcequota-controller                     (resourcequota) ResourceQuotas' status.used
//   disruption-controller                        (disruption) PodDisruptionBudgets' status: the
//                                                disruptions the eviction API may allow
//
// `stowage up --controllers LIST` chooses among them as kube-controller-manager's --controllers
// does (parseControllers below): `*` all, `name` one, `-name` not that one; the first explicit
// mention of a name decides, and without `*` only the names given run. Turning off csi-provisioner
// or csi-attacher leaves their work to the official sidecars run against Stowage's API.
import type { Logger } from 'pino';
import type { PersistentVolume } from '../api/types/core.js';
import type { Store } from '../store/store.js';
import { ATTACH_DETACH } from './attach-detach.js';
import { CSI_ATTACHER } from './attacher.js';
import { CSI_CAPACITY } from './csi-capacity.js';
import { PERSISTENTVOLUME_BINDER, type VolumeDeleter } from './binder.js';
import type { ControllerLoop } from './controller.js';
import type { DriverRegistry } from './driver-registry.js';
import type { EventBroadcaster } from './events.js';
import type { InformerFactory } from './informer.js';
import { EPHEMERAL_VOLUME } from './ephemeral-volume.js';
import { PV_PROTECTION, PVC_PROTECTION } from './protection.js';
import { CSI_PROVISIONER } from './provisioner.js';
import { CSI_RESIZER } from './resizer.js';
import { SCHEDULER } from '../scheduler/scheduler.js';
import { SNAPSHOT_CONTROLLER } from './snapshot-controller.js';
import { STATEFULSET } from './statefulset.js';
import { REPLICASET } from './replicaset.js';
import { DEPLOYMENT } from './deployment.js';
import { DAEMONSET } from './daemonset.js';
import { JOB } from './job.js';
import { NODE_LIFECYCLE } from './node-lifecycle.js';
import { TAINT_EVICTION } from './taint-eviction.js';
import { RESOURCE_QUOTA } from './resource-quota.js';
import { DISRUPTION } from './disruption.js';
import { CSI_SNAPSHOTTER } from './snapshotter.js';

/** What every controller is built from: the one store, informers, driver registry and event recorder. */
export interface ControllerContext {
  readonly store: Store;
  readonly logger: Logger;
  readonly informers: InformerFactory;
  readonly registry: DriverRegistry;
  readonly events: EventBroadcaster;
  /** The names of the controllers that run (--controllers), in start order. */
  readonly enabled: readonly string[];
  /** Retry backoff of every loop (undefined: the loop's defaults). */
  readonly backoff: { baseDelayMs?: number; maxDelayMs?: number };
  /** CreateVolume/DeleteVolume/ControllerPublish calls in flight at once (undefined: default). */
  readonly concurrency: number | undefined;
  /** Deadline of one CSI call (undefined: default). */
  readonly csiTimeoutMs: number | undefined;
  /**
   * Deletes released volumes for the binder: the csi-provisioner, when it runs (as external-
   * provisioner deletes what it provisioned). Without it the binder leaves CSI volumes to an
   * external provisioner.
   */
  readonly deleter: VolumeDeleter;
  /** Called by the controller that deletes volumes (csi-provisioner) when it is built. */
  provideDeleter(deleter: VolumeDeleter): void;
  /** Informers' resync period (ms; 0: none), for informers built elsewhere (the scheduler's thread). */
  readonly resyncMs: number;
  /** Run the scheduler on a thread of its own (scheduler/thread.ts). */
  readonly schedulerThread: boolean;
  /** node-lifecycle-controller: --node-monitor-grace-period and --node-monitor-period (undefined: defaults). */
  readonly nodeLifecycle?: { gracePeriodMs?: number; monitorPeriodMs?: number };
}

/** A built controller: its loops (for idle()), started once the nodes' drivers answer. */
export interface RunningController {
  readonly loops: readonly ControllerLoop[];
  /** Whether work done outside `loops` (the scheduler's thread) is idle too. */
  idle?(): boolean;
  start(): void;
  stop(): Promise<void>;
}

export interface ControllerDescriptor {
  /** The name `--controllers` knows it by (upstream's where there is one). */
  readonly name: string;
  /** Other names `--controllers` accepts for it (upstream's older ones). */
  readonly aliases?: readonly string[];
  /** What it plays in Kubernetes, for `up --help` and logs. */
  readonly description: string;
  /** Builds it: informer handlers and indexes are added now; nothing runs before start(). */
  init(ctx: ControllerContext): RunningController;
}

/**
 * Every controller, in the order they are built (their informer handlers registered) and started:
 * the order the control plane has always used (the provisioner's handlers first); under load,
 * building the binder first measurably delayed the provisioner's CreateVolume calls
 * (control-controllers-provisioner: "keeps up to 16 CreateVolume calls in flight").
 */
export const CONTROLLERS: readonly ControllerDescriptor[] = [
  CSI_PROVISIONER,
  PERSISTENTVOLUME_BINDER,
  PVC_PROTECTION,
  PV_PROTECTION,
  EPHEMERAL_VOLUME,
  SCHEDULER,
  ATTACH_DETACH,
  CSI_ATTACHER,
  CSI_RESIZER,
  SNAPSHOT_CONTROLLER,
  CSI_SNAPSHOTTER,
  CSI_CAPACITY,
  STATEFULSET,
  REPLICASET,
  DEPLOYMENT,
  DAEMONSET,
  JOB,
  NODE_LIFECYCLE,
  TAINT_EVICTION,
  RESOURCE_QUOTA,
  DISRUPTION,
];

export const CONTROLLER_NAMES: readonly string[] = CONTROLLERS.map((c) => c.name);

/** Every name and alias → the controller's name. */
const CANONICAL: ReadonlyMap<string, string> = new Map(CONTROLLERS.flatMap((c) => [c.name, ...(c.aliases ?? [])].map((n) => [n, c.name] as const)));

/** A --controllers value that names no known controller. */
export class UnknownControllerError extends Error {
  constructor(names: readonly string[]) {
    super(
      `${names.map((n) => `"${n}"`).join(', ')} ${names.length === 1 ? 'is' : 'are'} not in the list of known controllers: ${CONTROLLER_NAMES.join(', ')} ` +
        `(or their older names: ${CONTROLLERS.flatMap((c) => c.aliases ?? []).join(', ')}; ` +
        "--controllers takes '*' for all, 'name' to enable, '-name' to disable, comma-separated)",
    );
    this.name = 'UnknownControllerError';
  }
}

/**
 * The controllers a --controllers value enables, in start order: kube-controller-manager's rules
 * (IsControllerEnabled): items are comma-separated, the first item naming a controller (`name` or
 * `-name`) decides for it, and `*` enables every one not mentioned. Unknown names (and `-*`) throw
 * UnknownControllerError listing the known ones.
 */
export function parseControllers(value: string | readonly string[]): string[] {
  const items = (typeof value === 'string' ? [value] : value)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  const unknown = items.filter((i) => i !== '*' && !CANONICAL.has(i.startsWith('-') ? i.slice(1) : i));
  if (unknown.length > 0) throw new UnknownControllerError(unknown);
  const star = items.includes('*');
  // Each item as [controller name, enabled], aliases resolved.
  const choices = items.filter((i) => i !== '*').map((i): [string | undefined, boolean] => (i.startsWith('-') ? [CANONICAL.get(i.slice(1)), false] : [CANONICAL.get(i), true]));
  return CONTROLLER_NAMES.filter((name) => choices.find(([n]) => n === name)?.[1] ?? star);
}

/** A deleter for when no controller deletes volumes: CSI volumes are left to an external provisioner. */
export const EXTERNAL_DELETER: VolumeDeleter = {
  canDelete: (pv: PersistentVolume) => (pv.spec.csi === undefined ? 'no' : 'external'),
  deleteVolume: () => Promise.reject(new Error('volumes are deleted by an external provisioner')),
};
