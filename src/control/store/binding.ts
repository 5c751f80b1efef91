// Kubernetes' pods/binding subresource: the one way a pod's spec.nodeName is set after creation.
// The pod strategy keeps spec immutable (as Kubernetes does), so the scheduler does not update the
// pod: it POSTs a Binding {target: {kind: Node, name}} and the server sets nodeName if — and only
// if — it is still empty, with the PodScheduled condition True, in one write. Two schedulers (or a
// scheduler retrying after a crash) can therefore never move a pod once it is bound.
import type { ResourceInfo } from '../api/registry.js';
import { rfc3339 } from '../api/time.js';
import type { Pod } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import { validateSubdomain } from '../api/validation/common.js';
import { notSupported, required } from '../api/validation/field-errors.js';
import { BadRequestError, ConflictError, InvalidError } from './errors.js';
import { cloneData } from './json.js';

/** The v1 Binding object a client POSTs to …/pods/{name}/binding. */
export interface Binding {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; annotations?: Record<string, string> };
  target: { kind?: string; name?: string; apiVersion?: string; namespace?: string };
}

export interface BindOptions {
  /** Bind only the pod with this uid (the scheduler's precondition: not a pod recreated under the same name). */
  uid?: string;
  /** Added to the pod's annotations, as the Binding's metadata.annotations are in Kubernetes. */
  annotations?: Record<string, string>;
}

/** Checks a Binding request body; returns the node name and options it asks for. */
export function parseBinding(body: unknown, podName: string): { nodeName: string; options: BindOptions } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('the request body must be a JSON object');
  const b = body as Partial<Binding>;
  if (b.kind !== undefined && b.kind !== 'Binding') throw new BadRequestError(`the kind in the data (${b.kind}) does not match the URL's Binding`);
  if (b.metadata?.name && b.metadata.name !== podName) throw new BadRequestError(`the name of the object (${b.metadata.name}) does not match the name on the URL (${podName})`);
  const target = b.target;
  const nodeName = target?.name ?? '';
  const causes = nodeName === '' ? [required('target.name')] : validateSubdomain('target.name', nodeName);
  if (target?.kind && target.kind !== 'Node') causes.push(notSupported('target.kind', target.kind, ['Node']));
  if (causes.length > 0) throw new InvalidError('Binding', '', podName, causes);
  return {
    nodeName,
    options: { ...(b.metadata?.uid ? { uid: b.metadata.uid } : {}), ...(b.metadata?.annotations ? { annotations: b.metadata.annotations } : {}) },
  };
}

/**
 * The pod as the binding leaves it: spec.nodeName set, PodScheduled True. Throws ConflictError if
 * the pod is already bound, is being deleted, or is not the uid the caller expects.
 */
export function boundPod(old: KubeObject, resource: ResourceInfo, nodeName: string, options: BindOptions = {}): Pod {
  const pod = cloneData(old) as Pod;
  const name = pod.metadata.name ?? '';
  const causes = validateSubdomain('target.name', nodeName);
  if (nodeName === '') causes.push(required('target.name'));
  if (causes.length > 0) throw new InvalidError('Binding', '', name, causes);
  if (options.uid !== undefined && options.uid !== pod.metadata.uid) {
    throw new ConflictError(resource, name, `Precondition failed: UID in precondition: ${options.uid}, UID in object meta: ${pod.metadata.uid ?? ''}`);
  }
  if (pod.metadata.deletionTimestamp !== undefined) throw new ConflictError(resource, name, `pod ${name} is being deleted, cannot be assigned to a host`);
  if (pod.spec.nodeName) throw new ConflictError(resource, name, `pod ${name} is already assigned to node "${pod.spec.nodeName}"`);
  pod.spec.nodeName = nodeName;
  if (options.annotations !== undefined) pod.metadata.annotations = { ...pod.metadata.annotations, ...options.annotations };
  const status = (pod.status ??= {});
  const conditions = (status.conditions ?? []).filter((c) => c.type !== 'PodScheduled');
  const previous = status.conditions?.find((c) => c.type === 'PodScheduled');
  conditions.push({ type: 'PodScheduled', status: 'True', lastTransitionTime: previous?.status === 'True' ? (previous.lastTransitionTime ?? rfc3339()) : rfc3339() });
  status.conditions = conditions;
  return pod;
}
