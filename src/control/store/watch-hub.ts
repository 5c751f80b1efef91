// Delivery of watch events to in-process handlers: filtered per watcher (resource, namespace,
// selectors), strictly in resourceVersion order, synchronously after each write (the store commits
// writes in groups, so a handler may see a write before it is durable: see Store.flushed()).
//
// Everything goes through one FIFO queue. A handler that writes to the store (or starts a watch)
// while being called only adds to the queue, so every handler still sees events in commit order
// and a watch's replayed history always comes before its live events.
import { type FieldRequirement, matchesFields } from '../api/field-selector.js';
import { type LabelRequirement, matchesLabels } from '../api/label-selector.js';
import type { KubeObject, WatchEvent } from '../api/types/meta.js';
import type { EventRow } from './database.js';

export type WatchHandler<T extends KubeObject = KubeObject> = (event: WatchEvent<T>) => void;

export interface WatchFilter {
  resource: string;
  /** Undefined: all namespaces. */
  namespace: string | undefined;
  labels: readonly LabelRequirement[];
  fields: readonly FieldRequirement[];
}

interface Watcher {
  filter: WatchFilter;
  handler: WatchHandler;
  /** Live events up to this resourceVersion were covered by the watch's initial replay. */
  after: number;
  active: boolean;
}

/** A consumer of the stored text of every change to some resources (Store.watchRows). */
interface RowFeed {
  resources: ReadonlySet<string>;
  handler: (row: EventRow) => void;
  /** Rows up to this resourceVersion were in the feed's snapshot. */
  after: number;
  active: boolean;
}

type Task = { event: EventRow } | { watcher: Watcher; backlog: WatchEvent[] };

function matches(filter: WatchFilter, obj: KubeObject): boolean {
  return (
    (filter.namespace === undefined || (obj.metadata.namespace ?? '') === filter.namespace) &&
    matchesLabels(filter.labels, obj.metadata.labels) &&
    matchesFields(filter.fields, obj)
  );
}

/**
 * What a watcher with this filter sees of a stored event, as Kubernetes' watch cache does: an
 * object that starts matching is ADDED, one that stops matching is DELETED (in its last matching
 * state, at the event's resourceVersion).
 */
export function translate(filter: WatchFilter, row: EventRow): WatchEvent | undefined {
  if (row.resource !== filter.resource) return undefined;
  // An object's namespace never changes: another namespace's event is not parsed at all.
  if (filter.namespace !== undefined && row.namespace !== filter.namespace) return undefined;
  const object = JSON.parse(row.object) as KubeObject;
  const now = matches(filter, object);
  if (row.type !== 'MODIFIED') return now ? { type: row.type, object } : undefined;
  // Without label or field selectors only the namespace decides, and an update keeps it: the
  // previous state matched exactly when this one does (no need to read it).
  if (now && filter.labels.length === 0 && filter.fields.length === 0) return { type: 'MODIFIED', object };
  const previous = row.previous === null ? undefined : (JSON.parse(row.previous) as KubeObject);
  const before = previous !== undefined && matches(filter, previous);
  if (now) return { type: before ? 'MODIFIED' : 'ADDED', object };
  if (!before || previous === undefined) return undefined;
  previous.metadata.resourceVersion = String(row.rv);
  return { type: 'DELETED', object: previous };
}

export class WatchHub {
  /** By resource: an event is offered to its resource's watchers only. */
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly feeds = new Set<RowFeed>();
  /** How many feeds take each resource. */
  private readonly fed = new Map<string, number>();
  private readonly queue: Task[] = [];
  private draining = false;

  /** Registers a watcher; its backlog is delivered first, then live events after `after`. */
  add(filter: WatchFilter, handler: WatchHandler, after: number, backlog: WatchEvent[]): () => void {
    const watcher: Watcher = { filter, handler, after, active: true };
    let set = this.watchers.get(filter.resource);
    if (set === undefined) this.watchers.set(filter.resource, (set = new Set()));
    set.add(watcher);
    this.queue.push({ watcher, backlog });
    this.drain();
    return () => {
      watcher.active = false;
      const of = this.watchers.get(filter.resource);
      of?.delete(watcher);
      if (of?.size === 0) this.watchers.delete(filter.resource);
    };
  }

  /**
   * Hands every later change to these resources (after resourceVersion `after`) to handler as
   * stored, unparsed, in the same order as watchers see them.
   */
  addRows(resources: ReadonlySet<string>, handler: (row: EventRow) => void, after: number): () => void {
    const feed: RowFeed = { resources, handler, after, active: true };
    this.feeds.add(feed);
    for (const r of resources) this.fed.set(r, (this.fed.get(r) ?? 0) + 1);
    return () => {
      if (!feed.active) return;
      feed.active = false;
      this.feeds.delete(feed);
      for (const r of resources) {
        const n = (this.fed.get(r) ?? 1) - 1;
        if (n === 0) this.fed.delete(r);
        else this.fed.set(r, n);
      }
    };
  }

  publish(event: EventRow): void {
    if (!this.watchers.has(event.resource) && !this.fed.has(event.resource)) return;
    this.queue.push({ event });
    this.drain();
  }

  /** Stops every watcher (the store is closing). */
  clear(): void {
    for (const set of this.watchers.values()) for (const w of set) w.active = false;
    this.watchers.clear();
    for (const f of this.feeds) f.active = false;
    this.feeds.clear();
    this.fed.clear();
    this.queue.length = 0;
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let task = this.queue.shift(); task !== undefined; task = this.queue.shift()) {
        if ('backlog' in task) {
          for (const ev of task.backlog) deliver(task.watcher, ev);
          continue;
        }
        const row = task.event;
        const set = this.watchers.get(row.resource);
        if (set !== undefined) {
          for (const w of [...set]) {
            if (!w.active || row.rv <= w.after) continue;
            const ev = translate(w.filter, row);
            if (ev !== undefined) deliver(w, ev);
          }
        }
        if (this.fed.has(row.resource)) {
          for (const f of [...this.feeds]) if (f.active && row.rv > f.after && f.resources.has(row.resource)) feedRow(f, row);
        }
      }
    } finally {
      this.draining = false;
    }
  }
}

function feedRow(feed: RowFeed, row: EventRow): void {
  try {
    feed.handler(row);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

function deliver(watcher: Watcher, event: WatchEvent): void {
  if (!watcher.active) return;
  try {
    watcher.handler(event);
  } catch (err) {
    // The write that caused the event is done; a failing handler must not undo or fail it.
    // Rethrown outside the store so the bug is not silently lost.
    queueMicrotask(() => {
      throw err;
    });
  }
}
