// NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods tolerating the
// node.kubernetes.io/unschedulable:NoSchedule taint, as kube-scheduler allows.
import type { Pod } from '../../api/types/core.js';
import { type FilterPlugin, SUCCESS, type Status, unresolvable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import { tolerates } from './taint-toleration.js';

export const REASON_UNSCHEDULABLE = 'node(s) were unschedulable';
export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';

export class NodeUnschedulable implements FilterPlugin {
  readonly name = 'NodeUnschedulable';
  filter(_state: unknown, pod: Pod, node: NodeInfo): Status {
    if (!node.node.spec?.unschedulable) return SUCCESS;
    const ok = (pod.spec.tolerations ?? []).some((t) => tolerates(t, { key: TAINT_UNSCHEDULABLE, effect: 'NoSchedule' }));
    return ok ? SUCCESS : unresolvable(REASON_UNSCHEDULABLE);
  }
}
