// Kubernetes' garbage collector and namespace controller, run synchronously inside the store:
//  - dependents (ownerReferences) whose owners are all gone are deleted (Background);
//  - an owner deleted with Foreground carries the "foregroundDeletion" finalizer: its dependents
//    are deleted first, and the finalizer goes once none with blockOwnerDeletion remains;
//  - an owner deleted with Orphan carries the "orphan" finalizer: its dependents lose their
//    reference to it, then the finalizer goes;
//  - a terminating namespace has its content deleted, then loses its "kubernetes" spec finalizer.
// Each action is an ordinary write (its own resourceVersion and watch event); the pass repeats
// until nothing changes, and resumes at the next open if the process dies half-way.
import { NAMESPACE_FINALIZER } from '../api/kinds/namespace.js';
import { RESOURCES, resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Namespace } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { Database } from './database.js';

export const FOREGROUND_FINALIZER = 'foregroundDeletion';
export const ORPHAN_FINALIZER = 'orphan';

export type PropagationPolicy = 'Foreground' | 'Background' | 'Orphan';

/** What the collector needs from the store. */
export interface CollectorHost {
  read(resource: ResourceInfo, namespace: string, name: string): KubeObject | undefined;
  /** The store's delete, without preconditions. */
  deleteObject(resource: ResourceInfo, namespace: string, name: string, policy: PropagationPolicy): void;
  /** Writes a server-side change (no admission); removes the object if it is finalized. */
  writeInternal(resource: ResourceInfo, next: KubeObject, old: KubeObject): void;
}

function resourceOf(plural: string): ResourceInfo {
  const r = resourceForName(plural);
  if (r === undefined) throw new Error(`stored resource ${plural} is not in the registry`);
  return r;
}

function withoutFinalizer(obj: KubeObject, finalizer: string): KubeObject {
  const next = structuredClone(obj);
  next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== finalizer);
  if (next.metadata.finalizers.length === 0) delete next.metadata.finalizers;
  return next;
}

export class GarbageCollector {
  constructor(
    private readonly db: Database,
    private readonly host: CollectorHost,
  ) {}

  private running = false;

  /**
   * Runs passes until one changes nothing. Re-entry (a collection's own deletions ask for one)
   * is a no-op: the running loop makes another pass after any action.
   */
  collect(): void {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pass()) {
        // each action may free further objects
      }
    } finally {
      this.running = false;
    }
  }

  private pass(): boolean {
    let progress = false;
    for (const key of this.db.orphans()) {
      const resource = resourceOf(key.resource);
      const obj = this.host.read(resource, key.namespace, key.name);
      if (obj === undefined || obj.metadata.deletionTimestamp !== undefined) continue;
      this.host.deleteObject(resource, key.namespace, key.name, 'Background');
      progress = true;
    }
    for (const row of this.db.deleting()) {
      const resource = resourceOf(row.resource);
      const stale = JSON.parse(row.body) as KubeObject;
      const obj = this.host.read(resource, stale.metadata.namespace ?? '', stale.metadata.name ?? '');
      if (obj === undefined) continue;
      const finalizers = obj.metadata.finalizers ?? [];
      if (finalizers.includes(ORPHAN_FINALIZER)) progress = this.orphanDependents(resource, obj) || progress;
      else if (finalizers.includes(FOREGROUND_FINALIZER)) progress = this.deleteDependentsFirst(resource, obj) || progress;
      else if (resource.plural === 'namespaces') progress = this.finalizeNamespace(resource, obj as Namespace) || progress;
    }
    return progress;
  }

  private dependents(owner: KubeObject): { resource: ResourceInfo; obj: KubeObject }[] {
    return this.db.dependentsOf(owner.metadata.uid ?? '').flatMap((key) => {
      const resource = resourceOf(key.resource);
      const obj = this.host.read(resource, key.namespace, key.name);
      return obj === undefined ? [] : [{ resource, obj }];
    });
  }

  private orphanDependents(resource: ResourceInfo, owner: KubeObject): boolean {
    for (const dep of this.dependents(owner)) {
      const next = structuredClone(dep.obj);
      next.metadata.ownerReferences = (next.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.metadata.uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.host.writeInternal(dep.resource, next, dep.obj);
    }
    this.host.writeInternal(resource, withoutFinalizer(owner, ORPHAN_FINALIZER), owner);
    return true;
  }

  private deleteDependentsFirst(resource: ResourceInfo, owner: KubeObject): boolean {
    let progress = false;
    for (const dep of this.dependents(owner)) {
      if (dep.obj.metadata.deletionTimestamp !== undefined) continue;
      this.host.deleteObject(dep.resource, dep.obj.metadata.namespace ?? '', dep.obj.metadata.name ?? '', 'Foreground');
      progress = true;
    }
    const blocking = this.dependents(owner).some(({ obj }) =>
      (obj.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid && r.blockOwnerDeletion === true),
    );
    if (blocking) return progress;
    this.host.writeInternal(resource, withoutFinalizer(owner, FOREGROUND_FINALIZER), owner);
    return true;
  }

  private finalizeNamespace(resource: ResourceInfo, ns: Namespace): boolean {
    if (!(ns.spec?.finalizers ?? []).includes(NAMESPACE_FINALIZER)) return false;
    const name = ns.metadata.name ?? '';
    let progress = false;
    let remaining = 0;
    for (const r of RESOURCES.filter((x) => x.namespaced)) {
      for (const objName of this.db.liveInNamespace(r.plural, name)) {
        this.host.deleteObject(r, name, objName, 'Background');
        progress = true;
      }
      remaining += this.db.countInNamespace(r.plural, name);
    }
    if (remaining > 0) return progress;
    const next = structuredClone(ns);
    next.spec = { ...next.spec, finalizers: (ns.spec?.finalizers ?? []).filter((f) => f !== NAMESPACE_FINALIZER) };
    this.host.writeInternal(resource, next, ns);
    return true;
  }
}
