// The kubelet's node lease: a coordination.k8s.io/v1 Lease in kube-node-lease named after the node,
// held by the node (holderIdentity, leaseDurationSeconds 40), owned by its Node (so it goes with
// it), its renewTime moved forward every quarter of the duration (10 s). Why: the lease is the
// cheap heartbeat the node-lifecycle controller watches; a node whose lease stops moving is
// declared Unknown and its pods evicted.
import type { Lease } from '../api/types/coordination.js';
import type { Node } from '../api/types/core.js';
import { AlreadyExistsError, ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
/** The kubelet's default nodeLeaseDurationSeconds. */
export const NODE_LEASE_DURATION_SECONDS = 40;
/** The kubelet renews every quarter of the duration (nodelease.renewIntervalFraction). */
export const RENEW_INTERVAL_FRACTION = 0.25;

/** metav1.MicroTime as the API serialises it: RFC 3339, UTC, six fractional digits. */
export function microTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Creates a namespace the API server keeps (kube-node-lease) when it is missing. */
export function ensureNamespace(store: Store, name: string): void {
  if (store.get('namespaces', undefined, name) !== undefined) return;
  try {
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
  }
}

/**
 * One renewal: the node's Lease created (with the Node as owner, when the Node exists) or its
 * renewTime, holder and duration set. Returns the Lease as stored.
 */
export function renewNodeLease(store: Store, nodeName: string, durationSeconds = NODE_LEASE_DURATION_SECONDS, now: Date = new Date()): Lease {
  const node = store.get('nodes', undefined, nodeName) as Node | undefined;
  const owner = node?.metadata.uid === undefined ? undefined : [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid: node.metadata.uid }];
  const spec = { holderIdentity: nodeName, leaseDurationSeconds: durationSeconds, renewTime: microTime(now) };
  for (let attempt = 0; ; attempt++) {
    const existing = store.get('leases', NODE_LEASE_NAMESPACE, nodeName) as Lease | undefined;
    try {
      if (existing === undefined) {
        ensureNamespace(store, NODE_LEASE_NAMESPACE);
        return store.create<Lease>({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: nodeName, namespace: NODE_LEASE_NAMESPACE, ...(owner === undefined ? {} : { ownerReferences: owner }) },
          spec,
        });
      }
      // A lease made before its Node existed gets its owner on a later renewal, as the kubelet's does.
      const ownerReferences = existing.metadata.ownerReferences?.length ? existing.metadata.ownerReferences : owner;
      return store.update<Lease>({
        ...existing,
        metadata: { ...existing.metadata, ...(ownerReferences === undefined ? {} : { ownerReferences }) },
        spec: { ...existing.spec, ...spec },
      });
    } catch (err) {
      if (attempt >= 4 || !(err instanceof ConflictError || err instanceof AlreadyExistsError)) throw err;
    }
  }
}
