// A pod's quality-of-service class (status.qosClass), as the API server sets it at creation
// (Kubernetes' GetPodQOS): only cpu and memory count, and zero quantities are as absent.
//   BestEffort  no container requests or limits cpu or memory
//   Guaranteed  every container limits both, and the pod's summed requests equal its summed limits
//   Burstable   anything else
import { parseQuantity } from './quantity.js';
import type { Container, Pod } from './types/core.js';

export type QOSClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

const COMPUTE = ['cpu', 'memory'] as const;

function nanos(q: string | number | undefined): bigint {
  if (q === undefined) return 0n;
  try {
    return parseQuantity(q).nanos;
  } catch {
    return 0n;
  }
}

export function podQOSClass(pod: Pod): QOSClass {
  const requests = new Map<string, bigint>();
  const limits = new Map<string, bigint>();
  let guaranteed = true;
  const containers: Container[] = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  for (const c of containers) {
    for (const name of COMPUTE) {
      const r = nanos(c.resources?.requests?.[name]);
      if (r > 0n) requests.set(name, (requests.get(name) ?? 0n) + r);
    }
    let limitsFound = 0;
    for (const name of COMPUTE) {
      const l = nanos(c.resources?.limits?.[name]);
      if (l > 0n) {
        limits.set(name, (limits.get(name) ?? 0n) + l);
        limitsFound++;
      }
    }
    if (limitsFound < COMPUTE.length) guaranteed = false;
  }
  if (requests.size === 0 && limits.size === 0) return 'BestEffort';
  if (guaranteed) {
    for (const [name, r] of requests) if (limits.get(name) !== r) guaranteed = false;
  }
  return guaranteed && requests.size === limits.size ? 'Guaranteed' : 'Burstable';
}
