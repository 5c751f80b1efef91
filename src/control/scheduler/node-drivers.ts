// The CSI drivers a node's CSINode lists, as the volume plugins read them per node per pod
// (NodeVolumeLimits' allocatable counts, VolumeBinding's "does the driver run there"): kept on the
// node's NodeInfo, and read again once any CSINode has changed (the registry's generation), so a
// filter pass over hundreds of nodes does not look every node's CSINode up again.
import type { CSINodeDriver } from '../api/types/storage.js';
import type { NodeInfo } from './node-info.js';
import type { PluginContext } from './plugin-context.js';

const MEMO = 'csi-drivers';

interface Kept {
  generation: number;
  drivers: ReadonlyMap<string, CSINodeDriver>;
}

/** The drivers of the node's CSINode, by name. */
export function nodeCsiDrivers(ctx: Pick<PluginContext, 'registry'>, node: NodeInfo): ReadonlyMap<string, CSINodeDriver> {
  const generation = ctx.registry.csiNodesGeneration;
  let kept = node.memo<Kept>(MEMO);
  if (kept === undefined || kept.generation !== generation) {
    kept = { generation, drivers: new Map(ctx.registry.nodeDrivers(node.name).map((d) => [d.name, d])) };
    node.setMemo(MEMO, kept);
  }
  return kept.drivers;
}
