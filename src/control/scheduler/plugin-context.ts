// What every scheduler plugin is built from: the scheduler's informers and the calls that put pods
// back into the queue. Plugins are built once per scheduler and shared by its profiles, so a
// plugin's informer indexes and event handlers (its "events to register") exist once.
import type { Logger } from 'pino';
import type { Node, PersistentVolume, PersistentVolumeClaim, Pod } from '../api/types/core.js';
import type { StorageClass } from '../api/types/storage.js';
import type { Store } from '../store/store.js';
import type { DriverRegistry } from '../controllers/driver-registry.js';
import type { EventSink } from '../controllers/events.js';
import type { Informer, InformerFactory } from '../controllers/informer.js';

/**
 * What the scheduler reads and writes outside its informers: the store itself, or, on the
 * scheduler's own thread (thread-worker.ts), a proxy whose reads come from that thread's copy and
 * whose writes are sent to the store's thread. A proxy's write returns before it is made: its
 * result is the object as sent, and a failure reaches the scheduler later (Scheduler.writeFailed),
 * which tries the pod again.
 */
export type SchedulerStore = Pick<Store, 'get' | 'update' | 'bindPod' | 'delete'> & {
  /**
   * Runs fn once the writes of the current attempt are made: at once for the store (a write that
   * returned is made), on the scheduler's thread once the store's thread has answered them, and
   * never if one of them failed.
   */
  afterWrites?(fn: () => void): void;
  /**
   * On the scheduler's thread: whether writes of an earlier attempt of this pod are still
   * unanswered (its binding in flight); if so, fn runs once they are all answered, whatever the
   * answers. The pod's next attempt waits for them, as kube-scheduler skips a pod being bound.
   */
  whenWritten?(key: string, fn: () => void): boolean;
};

export interface PluginContext {
  readonly store: SchedulerStore;
  readonly registry: DriverRegistry;
  readonly recorder: EventSink;
  readonly logger: Logger;
  readonly pods: Informer<Pod>;
  readonly nodes: Informer<Node>;
  readonly pvcs: Informer<PersistentVolumeClaim>;
  readonly pvs: Informer<PersistentVolume>;
  readonly classes: Informer<StorageClass>;
  /** Any other informer a plugin reads (namespaces, replicasets, statefulsets…). */
  readonly informers: InformerFactory;
  /** Another attempt for one pod. */
  enqueue(key: string): void;
  /** Another attempt for every pod still waiting for a node. */
  enqueuePending(): void;
  /** The pods waiting for a node whose status.nominatedNodeName is this node (preemption). */
  nominatedOn(nodeName: string): readonly Pod[];
  /** How long a node where a claim's provisioning failed is avoided for that claim. */
  readonly provisioningFailureMemoryMs: number;
  /** First wait before a claim given up by its only feasible node is sent there again. */
  readonly rescheduleBackoffMs: number;
}
