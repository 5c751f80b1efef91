// Kubernetes' garbage collector and namespace controller, run synchronously inside the store:
//  - dependents (ownerReferences) whose owners are all gone are deleted (Background);
//  - an owner deleted with Foreground carries the "foregroundDeletion" finalizer: its dependents
//    are deleted first, and the finalizer goes once none with blockOwnerDeletion remains;
//  - an owner deleted with Orphan carries the "orphan" finalizer: its dependents lose their
//    reference to it, then the finalizer goes;
//  - a terminating namespace has its content deleted, then loses its "kubernetes" spec finalizer.
// Each action is an ordinary write (its own resourceVersion and watch event).
//
// Work is driven by writes, not by scans: the store reports every write (noteWrite) and the
// collector queues only the objects that write can have made collectable — the dependents of a
// removed object, the deleting owners of a written dependent, the namespace of a removed object,
// an object that is itself marked for Orphan/Foreground deletion or has new owner references.
// So one deletion costs the size of its own neighbourhood, not of everything that is waiting on
// finalizers. A full scan (collectAll) runs at open, to finish what a crash interrupted.
import { NAMESPACE_FINALIZER } from '../api/kinds/namespace.js';
import { RESOURCES, resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Namespace } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { Database, ObjectKey } from './database.js';
import { cloneData } from './json.js';

const NAMESPACED = RESOURCES.filter((r) => r.namespaced);

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
  const next = cloneData(obj);
  next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== finalizer);
  if (next.metadata.finalizers.length === 0) delete next.metadata.finalizers;
  return next;
}

function ownerUidsOf(obj: KubeObject | undefined): readonly string[] {
  return (obj?.metadata.ownerReferences ?? []).map((r) => r.uid);
}

function waitsForCollector(resource: string, obj: KubeObject): boolean {
  if (obj.metadata.deletionTimestamp === undefined) return false;
  if (resource === 'namespaces') return true;
  const finalizers = obj.metadata.finalizers ?? [];
  return finalizers.includes(ORPHAN_FINALIZER) || finalizers.includes(FOREGROUND_FINALIZER);
}

export class GarbageCollector {
  constructor(
    private readonly db: Database,
    private readonly host: CollectorHost,
  ) {}

  private running = false;
  /** Objects to look at, in the order their reasons arose ("resource\0namespace\0name" → key). */
  private readonly pending = new Map<string, ObjectKey>();

  /**
   * Called by the store after each write (type DELETED: the object is gone): queues what the
   * write may have made collectable. Cheap for objects without owners or dependents: one
   * indexed lookup for a removal, nothing otherwise.
   */
  noteWrite(resource: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: KubeObject, previous: KubeObject | undefined, ownersChanged: boolean): void {
    const namespace = obj.metadata.namespace ?? '';
    const name = obj.metadata.name ?? '';
    if (type === 'DELETED') {
      // Its dependents may have lost their last owner; its namespace may wait for it.
      for (const key of this.db.dependentsOf(obj.metadata.uid ?? '')) this.enqueue(key);
      if (namespace !== '') this.enqueue({ resource: 'namespaces', namespace: '', name: namespace });
    } else {
      if (waitsForCollector(resource, obj)) this.enqueue({ resource, namespace, name });
      // New owner references may name no existing object.
      if (ownersChanged && ownerUidsOf(obj).length > 0) this.enqueue({ resource, namespace, name });
    }
    // Owners deleting in the foreground wait for their (blocking) dependents.
    const owners = ownerUidsOf(obj);
    const before = ownerUidsOf(previous);
    for (const uid of before.length === 0 ? owners : new Set([...owners, ...before])) {
      const owner = this.db.byUid(uid);
      if (owner !== undefined && owner.deleting === 1) this.enqueue({ resource: owner.resource, namespace: owner.namespace, name: owner.name });
    }
  }

  /** Queues every object that may need the collector (orphans and deleting objects), then collects. */
  collectAll(): void {
    for (const key of this.db.orphans()) this.enqueue(key);
    for (const key of this.db.deleting()) this.enqueue(key);
    this.collect();
  }

  /**
   * Works through the queue until it is empty (actions queue further work through noteWrite).
   * Re-entry (a collection's own deletions ask for one) is a no-op: the running loop picks up
   * whatever they queued.
   */
  collect(): void {
    if (this.running || this.pending.size === 0) return;
    this.running = true;
    try {
      for (;;) {
        const next = this.pending.entries().next();
        if (next.done === true) break;
        const [id, key] = next.value;
        this.pending.delete(id);
        this.process(key);
      }
    } finally {
      this.running = false;
    }
  }

  /** Whether a collection is running (its writes are part of the write that set it off). */
  get busy(): boolean {
    return this.running;
  }

  /** Forgets queued work (the store failed or is closing). */
  clear(): void {
    this.pending.clear();
  }

  private enqueue(key: ObjectKey): void {
    const id = `${key.resource}\u0000${key.namespace}\u0000${key.name}`;
    if (!this.pending.has(id)) this.pending.set(id, { resource: key.resource, namespace: key.namespace, name: key.name });
  }

  private process(key: ObjectKey): void {
    const resource = resourceOf(key.resource);
    const obj = this.host.read(resource, key.namespace, key.name);
    if (obj === undefined) return;
    if (obj.metadata.deletionTimestamp === undefined) {
      if (this.db.isOrphan(key)) this.host.deleteObject(resource, key.namespace, key.name, 'Background');
      return;
    }
    const finalizers = obj.metadata.finalizers ?? [];
    if (finalizers.includes(ORPHAN_FINALIZER)) this.orphanDependents(resource, obj);
    else if (finalizers.includes(FOREGROUND_FINALIZER)) this.deleteDependentsFirst(resource, obj);
    else if (resource.plural === 'namespaces') this.finalizeNamespace(resource, obj as Namespace);
  }

  private dependents(owner: KubeObject): { resource: ResourceInfo; obj: KubeObject }[] {
    return this.db.dependentsOf(owner.metadata.uid ?? '').flatMap((key) => {
      const resource = resourceOf(key.resource);
      const obj = this.host.read(resource, key.namespace, key.name);
      return obj === undefined ? [] : [{ resource, obj }];
    });
  }

  private orphanDependents(resource: ResourceInfo, owner: KubeObject): void {
    for (const dep of this.dependents(owner)) {
      const next = cloneData(dep.obj);
      next.metadata.ownerReferences = (next.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.metadata.uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.host.writeInternal(dep.resource, next, dep.obj);
    }
    this.host.writeInternal(resource, withoutFinalizer(owner, ORPHAN_FINALIZER), owner);
  }

  private deleteDependentsFirst(resource: ResourceInfo, owner: KubeObject): void {
    for (const dep of this.dependents(owner)) {
      if (dep.obj.metadata.deletionTimestamp !== undefined) continue;
      this.host.deleteObject(dep.resource, dep.obj.metadata.namespace ?? '', dep.obj.metadata.name ?? '', 'Foreground');
    }
    const blocking = this.dependents(owner).some(({ obj }) =>
      (obj.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid && r.blockOwnerDeletion === true),
    );
    if (blocking) return;
    // The owner may have changed meanwhile (its dependents' deletions are writes too).
    const current = this.host.read(resource, owner.metadata.namespace ?? '', owner.metadata.name ?? '');
    if (current === undefined || current.metadata.uid !== owner.metadata.uid) return;
    this.host.writeInternal(resource, withoutFinalizer(current, FOREGROUND_FINALIZER), current);
  }

  private finalizeNamespace(resource: ResourceInfo, ns: Namespace): void {
    if (!(ns.spec?.finalizers ?? []).includes(NAMESPACE_FINALIZER)) return;
    const name = ns.metadata.name ?? '';
    let remaining = false;
    for (const r of NAMESPACED) {
      for (const objName of this.db.liveInNamespace(r.plural, name)) this.host.deleteObject(r, name, objName, 'Background');
      remaining ||= this.db.anyInNamespace(r.plural, name);
    }
    if (remaining) return;
    const current = this.host.read(resource, '', name) as Namespace | undefined;
    if (current === undefined || current.metadata.uid !== ns.metadata.uid) return;
    const next = cloneData(current);
    next.spec = { ...next.spec, finalizers: (current.spec?.finalizers ?? []).filter((f) => f !== NAMESPACE_FINALIZER) };
    this.host.writeInternal(resource, next, current);
  }
}
