// All storage controllers of the embedded control plane, on one store: shared informers, the driver
// registry, the event recorder, and the binder, provisioner, protection, scheduler, attach/detach
// and attacher controllers.
//
// The informers (and with them the registry and the node agents' view of the store) run from the
// start; the controllers' loops may be held back (`deferLoops`) until start(): `stowage up` starts
// them only once its nodes' drivers listen, so that no controller dials a socket nobody serves yet.
// Keys queued meanwhile wait in the queues.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { PersistentVolumeClaim } from '../api/types/core.js';
import { AttachDetachController } from './attach-detach.js';
import { Attacher } from './attacher.js';
import { Binder } from './binder.js';
import { DriverRegistry } from './driver-registry.js';
import { EventBroadcaster, type EventSink } from './events.js';
import { InformerFactory } from './informer.js';
import { ProtectionController } from './protection.js';
import { Provisioner } from './provisioner.js';
import { Scheduler } from './scheduler.js';

export interface ControllerOptions {
  /** Resync period of the informers (every object re-synced): the level-triggered safety net. Default 30 s; 0 disables. */
  resyncMs?: number;
  /** CreateVolume calls in flight at once. Default 16. */
  provisionerConcurrency?: number;
  /** Deadline of one CreateVolume/DeleteVolume; timed-out calls are retried with the same name. Default 60 s. */
  csiTimeoutMs?: number;
  /** First retry delay after a failed sync (doubles per failure). Default 5 ms. */
  baseDelayMs?: number;
  /** Largest retry delay. Default 1000 s. */
  maxDelayMs?: number;
  /** Longest an Event waits while the controllers are busy (they go first). Default 5000 ms; 0: written at once. */
  eventMaxDelayMs?: number;
  /** Run the volume-aware pod scheduler (pods without spec.nodeName get a node). Default true. */
  scheduler?: boolean;
  /** Hold the controllers' loops back until Controllers.start() (informers run at once). Default false. */
  deferLoops?: boolean;
}

export interface Controllers {
  readonly informers: InformerFactory;
  readonly registry: DriverRegistry;
  readonly binder: Binder;
  readonly provisioner: Provisioner;
  readonly protection: ProtectionController;
  /** Undefined when started with scheduler: false. */
  readonly scheduler: Scheduler | undefined;
  readonly attachDetach: AttachDetachController;
  readonly attacher: Attacher;
  readonly events: EventBroadcaster;
  /** Whether every controller's queue is empty and no sync is running (retry timers may be pending). */
  idle(): boolean;
  /** Starts the controllers' loops (with deferLoops; idempotent, and a no-op once stopped). */
  start(): void;
  /** Whether the loops run. */
  readonly started: boolean;
  stop(): Promise<void>;
}

export function startControllers(store: Store, logger: Logger, options: ControllerOptions = {}): Controllers {
  const log = logger.child({ component: 'controllers' });
  const informers = new InformerFactory(store, { resyncMs: options.resyncMs ?? 30_000, logger: log });
  const registry = new DriverRegistry({
    csiDrivers: informers.for('csidrivers'),
    csiNodes: informers.for('csinodes'),
    logger: log,
    ...(options.csiTimeoutMs === undefined ? {} : { timeoutMs: options.csiTimeoutMs }),
  });
  const host = hostname();
  let loopsIdle = (): boolean => true;
  const events = new EventBroadcaster({
    store,
    logger: log,
    host,
    busy: () => !loopsIdle(),
    ...(options.eventMaxDelayMs === undefined ? {} : { maxDelayMs: options.eventMaxDelayMs }),
  });
  const backoff = { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) };
  // The scheduler hears of failed provisioning (to try another node for WaitForFirstConsumer claims).
  let scheduler: Scheduler | undefined;
  const provisionerEvents = events.recorder('stowage-csi-provisioner');
  const provisionerRecorder: EventSink = {
    event(obj, type, reason, message) {
      provisionerEvents.event(obj, type, reason, message);
      if (reason === 'ProvisioningFailed' && obj.kind === 'PersistentVolumeClaim') scheduler?.provisioningFailed(obj as PersistentVolumeClaim);
    },
  };
  const provisioner = new Provisioner({
    store,
    informers,
    registry,
    recorder: provisionerRecorder,
    logger: log,
    ...(options.provisionerConcurrency === undefined ? {} : { concurrency: options.provisionerConcurrency }),
    ...(options.csiTimeoutMs === undefined ? {} : { timeoutMs: options.csiTimeoutMs }),
    ...backoff,
  });
  const binder = new Binder({
    store,
    informers,
    registry,
    recorder: events.recorder('persistentvolume-controller'),
    deleter: provisioner,
    logger: log,
    ...(options.provisionerConcurrency === undefined ? {} : { volumeWorkers: options.provisionerConcurrency }),
    ...backoff,
  });
  const protection = new ProtectionController({ store, informers, logger: log, ...backoff });
  if (options.scheduler !== false) scheduler = new Scheduler({ store, informers, registry, recorder: events.recorder('default-scheduler'), logger: log, ...backoff });
  const attachDetach = new AttachDetachController({ store, informers, registry, recorder: events.recorder('attachdetach-controller'), logger: log, ...backoff });
  const attacher = new Attacher({
    store,
    informers,
    registry,
    recorder: events.recorder('csi-attacher'),
    logger: log,
    ...(options.provisionerConcurrency === undefined ? {} : { concurrency: options.provisionerConcurrency }),
    ...(options.csiTimeoutMs === undefined ? {} : { timeoutMs: options.csiTimeoutMs }),
    ...backoff,
  });

  const loops = [binder.claims, binder.volumes, provisioner.loop, protection.claims, protection.volumes, attachDetach.loop, attacher.attachments, attacher.volumes];
  if (scheduler !== undefined) loops.push(scheduler.loop);
  let started = false;
  // Loops held back are not busy: events are not kept waiting for them.
  loopsIdle = () => !started || loops.every((l) => l.idle);
  informers.start();
  let stopping: Promise<void> | undefined;
  const start = (): void => {
    if (started || stopping !== undefined) return;
    started = true;
    binder.start();
    provisioner.start();
    protection.start();
    scheduler?.start();
    attachDetach.start();
    attacher.start();
    log.info('storage controllers started');
  };
  if (options.deferLoops !== true) start();

  return {
    informers,
    registry,
    binder,
    provisioner,
    protection,
    scheduler,
    attachDetach,
    attacher,
    events,
    idle: () => loopsIdle() && events.pending === 0,
    start,
    get started() {
      return started;
    },
    stop: () =>
      (stopping ??= (async () => {
        informers.stop();
        await Promise.all([binder.stop(), provisioner.stop(), protection.stop(), scheduler?.stop(), attachDetach.stop(), attacher.stop()]);
        events.close();
        registry.close();
        log.info('storage controllers stopped');
      })()),
  };
}
