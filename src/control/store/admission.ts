// Admission: everything between a request's object and what the store writes — resolving the
// kind, decoding, resetting system fields, defaulting, validating, and the admission plugins
// Kubernetes runs by default that matter for storage (NamespaceLifecycle, DefaultStorageClass,
// PersistentVolumeClaimResize).
import { randomInt, randomUUID } from 'node:crypto';
import { strategyFor } from '../api/kinds/strategies.js';
import { compareQuantities, isQuantity } from '../api/quantity.js';
import { resourceForKind, resourceForName, type ResourceInfo } from '../api/registry.js';
import { rfc3339 } from '../api/time.js';
import type { Namespace, PersistentVolumeClaim } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import type { StorageClass } from '../api/types/storage.js';
import type { FieldError } from '../api/validation/field-errors.js';
import { decodeObject, validateObject, validateObjectUpdate } from '../api/validation/validate.js';
import { BadRequestError, ForbiddenError, InvalidError, NotFoundError } from './errors.js';
import { cloneData, jsonEqual, withoutNulls } from './json.js';

/** Read access to the store for the admission plugins. */
export interface Reader {
  get(resource: ResourceInfo, namespace: string, name: string): KubeObject | undefined;
  /** Every object of the resource, or only those of one namespace. */
  list(resource: ResourceInfo, namespace?: string): KubeObject[];
}

const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';
const BETA_CLASS_ANNOTATION = 'volume.beta.kubernetes.io/storage-class';
/** Characters of generated name suffixes: no vowels (no words), no look-alikes. */
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function registryEntry(plural: string): ResourceInfo {
  const r = resourceForName(plural);
  if (r === undefined) throw new Error(`${plural} missing from the registry`);
  return r;
}

const NAMESPACES = registryEntry('namespaces');
const STORAGE_CLASSES = registryEntry('storageclasses');

/** The resource a caller names ("pvc", "persistentvolumeclaims", "storageclasses.storage.k8s.io", …). */
export function resourceNamed(name: string): ResourceInfo {
  const r = resourceForName(name);
  if (r === undefined) throw new BadRequestError(`the server doesn't have a resource type "${name}"`);
  return r;
}

export function resourceOfObject(obj: unknown): ResourceInfo {
  const o = obj as Partial<KubeObject> | null;
  if (o === null || typeof o !== 'object') throw new BadRequestError('the request body is not an object');
  if (typeof o.kind !== 'string' || o.kind === '') throw new BadRequestError("Object 'Kind' is missing");
  if (typeof o.apiVersion !== 'string' || o.apiVersion === '') throw new BadRequestError("Object 'apiVersion' is missing");
  const r = resourceForKind(o.apiVersion, o.kind);
  if (r === undefined) throw new BadRequestError(`no matches for kind "${o.kind}" in version "${o.apiVersion}"`);
  return r;
}

/** The namespace an object of this resource lives in: "" when cluster-scoped. */
export function namespaceOf(resource: ResourceInfo, namespace: string | undefined): string {
  return resource.namespaced ? namespace || 'default' : '';
}

function invalid(resource: ResourceInfo, name: string, causes: readonly FieldError[]): InvalidError {
  return new InvalidError(resource.kind, resource.group, name, causes);
}

function assertValid(resource: ResourceInfo, name: string, causes: readonly FieldError[]): void {
  if (causes.length > 0) throw invalid(resource, name, causes);
}

/** A private, decoded copy of a request object; type mismatches of known fields are Invalid. */
export function decodeInput(input: KubeObject, resource: ResourceInfo): KubeObject {
  // JSON null means "absent" in Kubernetes objects (kubectl sends creationTimestamp: null).
  const obj = withoutNulls(input) as KubeObject;
  obj.metadata = (obj.metadata as KubeObject['metadata'] | undefined) ?? {};
  assertValid(resource, obj.metadata.name ?? '', decodeObject(obj, resource));
  return obj;
}

export function generateName(prefix: string): string {
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)];
  return prefix + suffix;
}

/** Sets what the server owns on a new object, then the kind's own preparation and defaults. */
export function prepareCreate(obj: KubeObject, resource: ResourceInfo): void {
  const meta = obj.metadata;
  if (meta.resourceVersion) throw new BadRequestError('resourceVersion should not be set on objects to be created');
  if (resource.namespaced) meta.namespace = namespaceOf(resource, meta.namespace);
  else delete meta.namespace;
  if (!meta.name && meta.generateName) meta.name = generateName(meta.generateName);
  meta.uid = randomUUID();
  meta.creationTimestamp = rfc3339();
  meta.generation = 1;
  delete meta.deletionTimestamp;
  delete meta.deletionGracePeriodSeconds;
  const strategy = strategyFor(resource);
  strategy.prepareForCreate?.(obj);
  strategy.defaults?.(obj);
  assertValid(resource, meta.name ?? '', validateObject(obj, resource));
}

/** Validates an object again after a mutating admission plugin changed it (kube-apiserver validates after mutation). */
export function revalidate(obj: KubeObject, resource: ResourceInfo): void {
  assertValid(resource, obj.metadata.name ?? '', validateObject(obj, resource));
}

/** Equal as stored: JSON drops undefined members, so compare what JSON would keep. */
export function sameJson(a: unknown, b: unknown): boolean {
  return jsonEqual(a, b);
}

/** Everything except metadata and status: a change here bumps metadata.generation. */
function content(obj: KubeObject): Record<string, unknown> {
  const { metadata: _metadata, status: _status, ...rest } = obj as KubeObject & { status?: unknown };
  return rest;
}

/**
 * The object an update would store. A main update keeps the old status; a status update keeps
 * everything but status. Fields the server owns are carried over from the old object.
 */
export function prepareUpdate(input: KubeObject, old: KubeObject, resource: ResourceInfo, subresource: 'status' | undefined): KubeObject {
  let obj: KubeObject & { status?: unknown };
  if (subresource === 'status') {
    obj = cloneData(old);
    const status = (input as { status?: unknown }).status;
    if (status === undefined) delete obj.status;
    else obj.status = status;
  } else {
    obj = input;
    if (resource.hasStatus) {
      const oldStatus = (old as { status?: unknown }).status;
      if (oldStatus === undefined) delete obj.status;
      else obj.status = cloneData(oldStatus);
    }
    strategyFor(resource).prepareForUpdate?.(obj, old);
  }
  const meta = obj.metadata;
  const oldMeta = old.metadata;
  meta.uid ||= oldMeta.uid;
  meta.resourceVersion = oldMeta.resourceVersion;
  meta.creationTimestamp = oldMeta.creationTimestamp;
  meta.generation = oldMeta.generation;
  if (resource.namespaced) meta.namespace ||= oldMeta.namespace;
  else delete meta.namespace;
  // Only delete() sets these; an update can neither set nor clear them.
  if (oldMeta.deletionTimestamp === undefined) delete meta.deletionTimestamp;
  else meta.deletionTimestamp = oldMeta.deletionTimestamp;
  if (oldMeta.deletionGracePeriodSeconds === undefined) delete meta.deletionGracePeriodSeconds;
  else meta.deletionGracePeriodSeconds = oldMeta.deletionGracePeriodSeconds;
  strategyFor(resource).defaults?.(obj);
  assertValid(resource, meta.name ?? '', validateObjectUpdate(obj, old, resource));
  if (!sameJson(content(obj), content(old))) meta.generation = (oldMeta.generation ?? 0) + 1;
  return obj;
}

// ------------------------------------------------------------------ admission plugins

/** NamespaceLifecycle: no new objects in a namespace that does not exist or is terminating. */
export function admitNamespace(reader: Reader, resource: ResourceInfo, obj: KubeObject): void {
  if (!resource.namespaced) return;
  const namespace = obj.metadata.namespace ?? '';
  const ns = reader.get(NAMESPACES, '', namespace) as Namespace | undefined;
  if (ns === undefined) throw new NotFoundError(NAMESPACES, namespace);
  if (ns.metadata.deletionTimestamp !== undefined || ns.status?.phase === 'Terminating') {
    throw new ForbiddenError(resource, obj.metadata.name ?? '', `unable to create new content in namespace ${namespace} because it is being terminated`);
  }
}

/** DefaultStorageClass: a claim that names no class gets the default one, if there is one. */
export function admitDefaultStorageClass(reader: Reader, pvc: PersistentVolumeClaim): void {
  if (pvc.spec.storageClassName !== undefined) return;
  const defaults = (reader.list(STORAGE_CLASSES) as StorageClass[]).filter((sc) => sc.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  // Several defaults: the newest wins, as in Kubernetes.
  defaults.sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  const chosen = defaults[0]?.metadata.name;
  if (chosen !== undefined) pvc.spec.storageClassName = chosen;
}

/** PersistentVolumeClaimResize: a claim may grow only if its class allows volume expansion. */
export function admitResize(reader: Reader, resource: ResourceInfo, pvc: PersistentVolumeClaim, old: PersistentVolumeClaim): void {
  const next = pvc.spec.resources?.requests?.['storage'];
  const before = old.spec.resources?.requests?.['storage'];
  if (next === undefined || before === undefined || !isQuantity(next) || !isQuantity(before) || compareQuantities(next, before) <= 0) return;
  // As Kubernetes: the class (the beta annotation first) must be the same before and after, and
  // allow expansion; a claim without a class cannot grow.
  const classOf = (c: PersistentVolumeClaim): string => c.metadata.annotations?.[BETA_CLASS_ANNOTATION] ?? c.spec.storageClassName ?? '';
  const className = classOf(pvc);
  const sc = className && className === classOf(old) ? (reader.get(STORAGE_CLASSES, '', className) as StorageClass | undefined) : undefined;
  if (sc?.allowVolumeExpansion !== true) {
    throw new ForbiddenError(
      resource,
      pvc.metadata.name ?? '',
      'only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize',
    );
  }
}
