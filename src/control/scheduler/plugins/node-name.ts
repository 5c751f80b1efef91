// NodeName: a pod that names its node (spec.nodeName) fits only that node. The scheduler does not
// place such pods, so this matters only to a profile run on a pod by hand (tests, future callers).
import type { Pod } from '../../api/types/core.js';
import { type FilterPlugin, SUCCESS, type Status, unresolvable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';

export const REASON_NODE_NAME = "node(s) didn't match the requested node name";

export class NodeName implements FilterPlugin {
  readonly name = 'NodeName';
  filter(_state: unknown, pod: Pod, node: NodeInfo): Status {
    return !pod.spec.nodeName || pod.spec.nodeName === node.name ? SUCCESS : unresolvable(REASON_NODE_NAME);
  }
}
