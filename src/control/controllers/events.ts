// Core v1 Events about objects, as client-go's event machinery writes them:
//  - one Event per (object, type, reason, message, component); a repeat raises its count and
//    lastTimestamp instead of adding another Event (client-go's aggregation/correlation);
//  - recording never blocks or fails the caller: events are queued and written by a broadcaster
//    (client-go writes them from a goroutine, and drops them when its queue is full). Every store
//    write costs CPU (and its share of a commit), so under load the broadcaster lets reconciliation
//    go first: it writes when the controllers are idle, or once the oldest queued event has waited
//    maxDelayMs.
import type { Logger } from 'pino';
import { rfc3339 } from '../api/time.js';
import type { Event, ObjectReference } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import { NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';

export type EventType = 'Normal' | 'Warning';

/** Messages longer than this are cut (the API server's limit is 1 KiB). */
const MAX_MESSAGE_LENGTH = 1024;
/** Aggregation entries kept (least recently used dropped first). */
const CACHE_SIZE = 4096;
/** Queued events beyond this are dropped (client-go's broadcaster queue is 1000 deep). */
const DEFAULT_QUEUE_LIMIT = 10_000;

export function referenceTo(obj: KubeObject): ObjectReference {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
    name: obj.metadata.name ?? '',
    uid: obj.metadata.uid ?? '',
    ...(obj.metadata.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
  };
}

/** What controllers record events through. */
export interface EventSink {
  event(obj: KubeObject, type: EventType, reason: string, message: string): void;
}

interface Pending {
  involved: ObjectReference;
  namespace: string;
  type: EventType;
  reason: string;
  message: string;
  component: string;
  /** Occurrences not yet written. */
  count: number;
  first: string;
  last: string;
  queuedAt: number;
}

export interface EventBroadcasterOptions {
  store: Store;
  logger: Logger;
  host?: string;
  /** Whether the controllers have work in hand; events wait while they do (up to maxDelayMs). */
  busy?: () => boolean;
  /** Longest an event waits for the controllers to go idle. Default 5000 ms; 0 writes at once (synchronously). */
  maxDelayMs?: number;
  /** Check interval while events are queued. Default 20 ms. */
  pollMs?: number;
  queueLimit?: number;
}

export class EventBroadcaster {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly host: string | undefined;
  private readonly busy: () => boolean;
  private readonly maxDelayMs: number;
  private readonly pollMs: number;
  private readonly queueLimit: number;
  /** aggregation key → queued occurrences */
  private readonly queue = new Map<string, Pending>();
  /** aggregation key → the Event already written for it */
  private readonly written = new Map<string, { namespace: string; name: string }>();
  private timer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private sequence = 0;
  private closed = false;

  constructor(options: EventBroadcasterOptions) {
    this.store = options.store;
    this.log = options.logger;
    this.host = options.host;
    this.busy = options.busy ?? (() => false);
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.pollMs = options.pollMs ?? 20;
    this.queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
  }

  /** A recorder that signs its events with this component name (source.component). */
  recorder(component: string): EventSink {
    return { event: (obj, type, reason, message) => this.record(component, obj, type, reason, message) };
  }

  /** Events queued but not yet written. */
  get pending(): number {
    return this.queue.size;
  }

  record(component: string, obj: KubeObject, type: EventType, reason: string, message: string): void {
    if (this.closed) return;
    const text = message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH - 3)}...` : message;
    const involved = referenceTo(obj);
    // Events about cluster-scoped objects live in "default", as client-go puts them.
    const namespace = involved.namespace ?? 'default';
    const key = [involved.uid, involved.kind, namespace, involved.name, type, reason, text, component].join('\u0000');
    const now = rfc3339();
    this.log.debug({ object: `${involved.kind} ${namespace}/${involved.name}`, type, reason, message: text }, 'event');
    const queued = this.queue.get(key);
    if (queued !== undefined) {
      queued.count++;
      queued.last = now;
      queued.involved = involved;
    } else {
      if (this.queue.size >= this.queueLimit) {
        if (this.dropped++ % 1000 === 0) this.log.warn({ queued: this.queue.size }, 'event queue full; dropping events');
        return;
      }
      this.queue.set(key, { involved, namespace, type, reason, message: text, component, count: 1, first: now, last: now, queuedAt: Date.now() });
    }
    if (this.maxDelayMs <= 0) this.flush();
    else this.schedule();
  }

  /** Writes every queued event now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = [...this.queue];
    this.queue.clear();
    for (const [key, p] of batch) this.write(key, p);
  }

  /** Writes what is queued and stops accepting events (call before the store closes). */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick();
    }, this.pollMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.closed || this.queue.size === 0) return;
    if (!this.busy()) {
      this.flush();
      return;
    }
    // Busy: write only what has waited too long, and look again soon.
    const now = Date.now();
    for (const [key, p] of [...this.queue]) {
      if (now - p.queuedAt < this.maxDelayMs) break; // insertion order = age order
      this.queue.delete(key);
      this.write(key, p);
    }
    if (this.queue.size > 0) this.schedule();
  }

  private write(key: string, p: Pending): void {
    try {
      const known = this.written.get(key);
      if (known !== undefined) {
        this.written.delete(key);
        this.written.set(key, known);
        const existing = this.store.get('events', known.namespace, known.name);
        if (existing !== undefined) {
          this.store.update({ ...existing, count: (existing.count ?? 1) + p.count, lastTimestamp: p.last, involvedObject: p.involved });
          return;
        }
      }
      // client-go's name: the object's, then the time in nanoseconds since the epoch in hex
      // (milliseconds here, with a sequence in the sub-millisecond digits so names never repeat).
      const name = `${p.involved.name}.${(BigInt(Date.now()) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16)}`;
      const ev: Event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace: p.namespace },
        involvedObject: p.involved,
        reason: p.reason,
        message: p.message,
        type: p.type,
        source: { component: p.component, ...(this.host ? { host: this.host } : {}) },
        firstTimestamp: p.first,
        lastTimestamp: p.last,
        count: p.count,
        reportingComponent: p.component,
        reportingInstance: this.host ?? '',
      };
      this.store.create(ev);
      this.written.set(key, { namespace: p.namespace, name });
      if (this.written.size > CACHE_SIZE) {
        const oldest = this.written.keys().next().value;
        if (oldest !== undefined) this.written.delete(oldest);
      }
    } catch (err) {
      // Namespace gone or terminating, store closing…: the event is lost, nothing else is.
      if (!(err instanceof NotFoundError)) this.log.warn({ err, reason: p.reason, object: `${p.namespace}/${p.involved.name}` }, 'could not record event');
    }
  }
}

/** A recorder that writes each event at once (tests, and tools without a running control plane). */
export class EventRecorder implements EventSink {
  private readonly broadcaster: EventBroadcaster;
  private readonly sink: EventSink;

  constructor(store: Store, component: string, log: Logger, host?: string) {
    this.broadcaster = new EventBroadcaster({ store, logger: log, ...(host === undefined ? {} : { host }), maxDelayMs: 0 });
    this.sink = this.broadcaster.recorder(component);
  }

  event(obj: KubeObject, type: EventType, reason: string, message: string): void {
    this.sink.event(obj, type, reason, message);
  }
}
