// Every collection the console shows (collection.ts: list + watch, or polled), and one change
// signal for all of them. Changes are batched, so a thousand ADDED events cost one redraw, not a
// thousand. A browser opens at most six HTTP/1.1 connections to a server
// and a watch holds one for good: the four collections that change most are watched, the others
// listed again every few seconds, so that requests always have a connection left.
import type { Api } from './api.js';
import { Collection } from './collection.js';
import type { KObject } from './types.js';

const POLL_MS = 3000;

/** What the console shows, by name: its path, and whether it is polled rather than watched. */
export const RESOURCES = {
  claims: { path: '/api/v1/persistentvolumeclaims' },
  volumes: { path: '/api/v1/persistentvolumes' },
  pods: { path: '/api/v1/pods' },
  events: { path: '/api/v1/events' },
  storageclasses: { path: '/apis/storage.k8s.io/v1/storageclasses', pollMs: POLL_MS },
  nodes: { path: '/api/v1/nodes', pollMs: POLL_MS },
  snapshots: { path: '/apis/snapshot.storage.k8s.io/v1/volumesnapshots', pollMs: POLL_MS },
  capacities: { path: '/apis/storage.k8s.io/v1/csistoragecapacities', pollMs: POLL_MS },
} as const satisfies Record<string, { path: string; pollMs?: number }>;

export type ResourceName = keyof typeof RESOURCES;

/** Every collection the console shows, and one change signal for all of them (at most one per animation frame). */
export class Cluster {
  readonly collections: Record<ResourceName, Collection>;
  private listeners = new Set<() => void>();
  private scheduled = false;

  constructor(api: Api) {
    const changed = (): void => this.schedule();
    this.collections = Object.fromEntries(Object.entries(RESOURCES).map(([name, r]) => [name, new Collection(api, r.path, changed, 'pollMs' in r ? r.pollMs : undefined)])) as Record<ResourceName, Collection>;
  }

  start(): void {
    for (const c of Object.values(this.collections)) c.start();
  }

  stop(): void {
    for (const c of Object.values(this.collections)) c.stop();
  }

  list(name: ResourceName): KObject[] {
    return this.collections[name].values();
  }

  get synced(): boolean {
    return Object.values(this.collections).every((c) => c.synced);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const fire = (): void => {
      this.scheduled = false;
      for (const l of this.listeners) l();
    };
    // A hidden tab gets no animation frames: a timer then.
    if (document.visibilityState === 'visible') requestAnimationFrame(fire);
    else setTimeout(fire, 100);
  }
}
