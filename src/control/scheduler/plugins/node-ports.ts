// NodePorts: a pod's hostPorts must be free on the node. Two ports clash when protocol and port
// are equal and either host IP is 0.0.0.0 (or unset) or both are the same address, as kube-
// scheduler's HostPortInfo decides.
import type { Pod } from '../../api/types/core.js';
import { type CycleState, type FilterPlugin, type PreFilterPlugin, SKIP, SUCCESS, type Status, unschedulable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';

export const REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports";

interface HostPort {
  ip: string;
  protocol: string;
  port: number;
}

const STATE_KEY = 'NodePorts';
const ANY = '0.0.0.0';

/** The pod's host ports (containers and init containers). */
export function hostPorts(pod: Pod): HostPort[] {
  const out: HostPort[] = [];
  for (const c of [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])]) {
    for (const p of c.ports ?? []) {
      if (!p.hostPort || p.hostPort <= 0) continue;
      const ip = (p as { hostIP?: string }).hostIP;
      out.push({ ip: ip === undefined || ip === '' ? ANY : ip, protocol: p.protocol ?? 'TCP', port: p.hostPort });
    }
  }
  return out;
}

export function portsClash(a: HostPort, b: HostPort): boolean {
  return a.port === b.port && a.protocol === b.protocol && (a.ip === ANY || b.ip === ANY || a.ip === b.ip);
}

export class NodePorts implements PreFilterPlugin, FilterPlugin {
  readonly name = 'NodePorts';

  preFilter(state: CycleState, pod: Pod): Status {
    const wanted = hostPorts(pod);
    if (wanted.length === 0) return SKIP;
    state.write(STATE_KEY, wanted);
    return SUCCESS;
  }

  filter(state: CycleState, _pod: Pod, node: NodeInfo): Status {
    const wanted = state.read<HostPort[]>(STATE_KEY) ?? [];
    const used = node.pods.flatMap(hostPorts);
    return wanted.some((w) => used.some((u) => portsClash(w, u))) ? unschedulable(REASON_NODE_PORTS) : SUCCESS;
  }
}
