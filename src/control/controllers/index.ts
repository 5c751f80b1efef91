// The storage controllers of the embedded control plane, on one store: shared informers, the driver
// registry, the event recorder, and the controllers registry.ts lists (binder, protection,
// attach/detach, provisioner, attacher, scheduler, resizer, snapshot controller, snapshotter, csi-capacity), those chosen by `controllers` (the value of
// `stowage up --controllers`, kube-controller-manager's syntax) built and started in its order.
//
// The informers (and with them the registry and the node agents' view of the store) run from the
// start; the controllers' loops may be held back (`deferLoops`) until start(): `stowage up` starts
// them only once its nodes' drivers listen, so that no controller dials a socket nobody serves yet.
// Keys queued meanwhile wait in the queues.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { CsiCallJournal } from '../../csi/call-journal.js';
import type { Store } from '../store/store.js';
import type { VolumeDeleter } from './binder.js';
import { DriverRegistry } from './driver-registry.js';
import { EventBroadcaster } from './events.js';
import { InformerFactory } from './informer.js';
import { LeaderLease } from './leader-lease.js';
import { CONTROLLERS, type ControllerContext, EXTERNAL_DELETER, parseControllers, type RunningController } from './registry.js';

export { CONTROLLER_NAMES, parseControllers, UnknownControllerError } from './registry.js';

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
  /**
   * Which controllers run (registry.ts), as kube-controller-manager's --controllers: `*` all,
   * `name` one, `-name` not that one. Default `*`.
   */
  controllers?: string | readonly string[];
  /** Records every CSI call the controllers and node agents make (the web console's journey of a volume). */
  csiCalls?: CsiCallJournal;
  /** Run the volume-aware pod scheduler (pods without spec.nodeName get a node). Default true; false is `-scheduler`. */
  scheduler?: boolean;
  /**
   * Run the scheduler on a thread of its own (scheduler/thread.ts), as kube-scheduler is a process
   * of its own. Default false here; the control plane turns it on where the machine has a core for it.
   */
  schedulerThread?: boolean;
  /** Hold the controllers' loops back until Controllers.start() (informers run at once). Default false. */
  deferLoops?: boolean;
  /** node-lifecycle-controller: how long a node may stay silent before it is Unknown. Default 40 s. */
  nodeMonitorGracePeriodMs?: number;
  /** node-lifecycle-controller: how often every node is looked at. Default 5 s. */
  nodeMonitorPeriodMs?: number;
  /** Hold the leader-election Leases kube-controller-manager and kube-scheduler in kube-system (`up`). Default false. */
  leaderElection?: boolean;
}

export interface Controllers {
  readonly informers: InformerFactory;
  readonly registry: DriverRegistry;
  readonly events: EventBroadcaster;
  /** The names of the controllers that run, in start order. */
  readonly enabled: readonly string[];
  /** Whether every controller's queue is empty and no sync is running (retry timers may be pending). */
  idle(): boolean;
  /** Starts the controllers' loops (with deferLoops; idempotent, and a no-op once stopped). */
  start(): void;
  /** Whether the loops run. */
  readonly started: boolean;
  stop(): Promise<void>;
}

export function startControllers(store: Store, logger: Logger, options: ControllerOptions = {}): Controllers {
  // Validated before anything starts: an unknown name throws UnknownControllerError.
  // scheduler: false comes first, so it wins over anything the list says (the first mention decides).
  const enabled = parseControllers([...(options.scheduler === false ? ['-scheduler'] : []), ...(typeof options.controllers === 'string' ? [options.controllers] : (options.controllers ?? ['*']))]);
  const log = logger.child({ component: 'controllers' });
  const resyncMs = options.resyncMs ?? 30_000;
  const informers = new InformerFactory(store, { resyncMs, logger: log });
  const registry = new DriverRegistry({
    csiDrivers: informers.for('csidrivers'),
    csiNodes: informers.for('csinodes'),
    logger: log,
    ...(options.csiTimeoutMs === undefined ? {} : { timeoutMs: options.csiTimeoutMs }),
    ...(options.csiCalls === undefined ? {} : { journal: options.csiCalls }),
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
  let deleter: VolumeDeleter = EXTERNAL_DELETER;
  const ctx: ControllerContext = {
    store,
    logger: log,
    informers,
    registry,
    events,
    enabled,
    backoff: { ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }), ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }) },
    resyncMs,
    schedulerThread: options.schedulerThread === true,
    concurrency: options.provisionerConcurrency,
    csiTimeoutMs: options.csiTimeoutMs,
    // Resolved at each call: whichever controller provides it may be built after its users.
    deleter: { canDelete: (pv) => deleter.canDelete(pv), deleteVolume: (pv, signal) => deleter.deleteVolume(pv, signal) },
    provideDeleter: (d) => {
      deleter = d;
    },
    nodeLifecycle: {
      ...(options.nodeMonitorGracePeriodMs === undefined ? {} : { gracePeriodMs: options.nodeMonitorGracePeriodMs }),
      ...(options.nodeMonitorPeriodMs === undefined ? {} : { monitorPeriodMs: options.nodeMonitorPeriodMs }),
    },
  };
  const running: RunningController[] = CONTROLLERS.filter((c) => enabled.includes(c.name)).map((c) => c.init(ctx));
  const loops = running.flatMap((c) => c.loops);
  let started = false;
  // Loops held back are not busy: events are not kept waiting for them.
  loopsIdle = () => !started || (loops.every((l) => l.idle) && running.every((c) => c.idle?.() ?? true));
  informers.start();
  let stopping: Promise<void> | undefined;
  // The leader-election Leases (leader-lease.ts): the scheduler's only when it runs.
  const leases =
    options.leaderElection === true
      ? ['kube-controller-manager', ...(enabled.includes('scheduler') ? ['kube-scheduler'] : [])].map((name) => new LeaderLease({ store, name, logger: log }))
      : [];
  const start = (): void => {
    if (started || stopping !== undefined) return;
    started = true;
    for (const l of leases) l.start();
    for (const c of running) c.start();
    log.info({ controllers: enabled }, 'storage controllers started');
  };
  if (options.deferLoops !== true) start();

  return {
    informers,
    registry,
    events,
    enabled,
    idle: () => loopsIdle() && events.pending === 0,
    start,
    get started() {
      return started;
    },
    stop: () =>
      (stopping ??= (async () => {
        informers.stop();
        for (const l of leases) l.stop();
        await Promise.all(running.map((c) => c.stop()));
        events.close();
        registry.close();
        log.info('storage controllers stopped');
      })()),
  };
}
