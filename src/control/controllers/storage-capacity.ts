// Storage capacity per (driver, node, StorageClass), for the scheduler: what kube-scheduler reads
// from CSIStorageCapacity objects, which external-provisioner's capacity feature fills from the
// driver's GetCapacity. Why: a WaitForFirstConsumer claim was sent to a node whose pool could not
// hold it, and only the provisioning failure (RESOURCE_EXHAUSTED) moved it elsewhere. The figures
// live here, in memory (the csi-capacity controller, csi-capacity.ts, publishes the same driver
// answers as CSIStorageCapacity objects), asked of the driver's
// Controller service (the node's own socket for a per-node controller) with the class parameters
// and the node's topology, and only for drivers whose CSIDriver says `storageCapacity: true`.
//
// The scheduler's filter is synchronous, so a lookup never waits: it answers what is known and
// starts a refresh when the figure is missing or older than the TTL; when a refresh brings a new
// figure, onChange() lets the scheduler try its pending pods again. A volume created or deleted
// voids every figure of its driver (invalidate): the next lookup is 'pending' until the driver has
// answered again, so a claim is never placed on the strength of the room a previous one took. (Like
// kube-scheduler, nothing is reserved between placing a claim and its volume being made: claims
// placed at the same moment can still meet a RESOURCE_EXHAUSTED, and are moved by the reschedule
// path.) A driver that cannot answer GetCapacity is no
// reason to keep pods off a node: its figure is "unknown" and the provisioner decides, as before.
import type { Logger } from 'pino';
import type { StorageClass } from '../api/types/storage.js';
import type { DriverRegistry } from './driver-registry.js';

export interface CapacityFigure {
  available: number;
  /** maximum_volume_size when the driver reports one. */
  maximum: number | undefined;
}

/** What the scheduler sees: a figure, 'pending' (being asked), or 'unknown' (the driver could not say). */
export type CapacityAnswer = CapacityFigure | 'pending' | 'unknown';

interface Entry {
  answer: CapacityFigure | 'unknown' | undefined;
  at: number;
  refreshing: boolean;
  /** Bumped by invalidate(): an answer asked before it is void. */
  generation: number;
}

export interface StorageCapacityOptions {
  registry: DriverRegistry;
  logger: Logger;
  /** Called when a refresh changed a figure. */
  onChange: () => void;
  /** How long a figure is used before it is asked again. Default 5 s. */
  ttlMs?: number;
  timeoutMs?: number;
}

/** Whether a claim of `bytes` fits, as kube-scheduler's volume binding decides it from a CSIStorageCapacity. */
export function capacityAdmits(figure: CapacityFigure, bytes: number): boolean {
  return figure.maximum !== undefined ? bytes <= figure.maximum : bytes <= figure.available;
}

export class StorageCapacity {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private readonly log: Logger;

  constructor(private readonly options: StorageCapacityOptions) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.log = options.logger.child({ component: 'storage-capacity' });
  }

  /** Whether the scheduler should consult capacity for this driver (its CSIDriver's storageCapacity). */
  tracks(driver: string): boolean {
    return this.options.registry.csiDriver(driver)?.spec?.storageCapacity === true;
  }

  lookup(driver: string, nodeName: string, sc: StorageClass, segments: Record<string, string>): CapacityAnswer {
    const key = `${driver}\u0000${nodeName}\u0000${sc.metadata.name ?? ''}`;
    let entry = this.entries.get(key);
    if (entry === undefined) this.entries.set(key, (entry = { answer: undefined, at: Number.NEGATIVE_INFINITY, refreshing: false, generation: 0 }));
    if (!entry.refreshing && performance.now() - entry.at > this.ttlMs) this.refresh(entry, driver, nodeName, sc, segments);
    return entry.answer ?? 'pending';
  }

  /** Volumes of the driver were created or deleted: every figure of it is void until asked again. */
  invalidate(driver: string): void {
    for (const [key, entry] of this.entries) {
      if (!key.startsWith(`${driver}\u0000`)) continue;
      entry.answer = undefined;
      entry.at = Number.NEGATIVE_INFINITY;
      entry.generation++;
    }
  }

  private refresh(entry: Entry, driver: string, nodeName: string, sc: StorageClass, segments: Record<string, string>): void {
    entry.refreshing = true;
    const generation = entry.generation;
    const client = this.options.registry.controllerClient(driver, nodeName);
    const asked =
      client === undefined
        ? Promise.reject(new Error(`driver ${driver} has no Controller service registered`))
        : client.controller.GetCapacity(
            { parameters: sc.parameters ?? {}, accessible_topology: Object.keys(segments).length > 0 ? { segments } : null },
            { timeoutMs: this.timeoutMs },
          );
    void asked
      .then(
        (res): CapacityFigure | 'unknown' => ({
          available: Number(res.available_capacity ?? 0),
          maximum: res.maximum_volume_size ? Number(res.maximum_volume_size.value) : undefined,
        }),
        (err: unknown) => {
          this.log.warn({ err, driver, node: nodeName, storageClass: sc.metadata.name }, 'GetCapacity failed; capacity unknown');
          return 'unknown' as const;
        },
      )
      .then((answer) => {
        entry.refreshing = false;
        if (generation !== entry.generation) {
          // Asked before a volume came or went: ask again.
          this.options.onChange();
          return;
        }
        const changed = JSON.stringify(answer) !== JSON.stringify(entry.answer);
        entry.answer = answer;
        entry.at = performance.now();
        if (changed) this.options.onChange();
      });
  }
}
