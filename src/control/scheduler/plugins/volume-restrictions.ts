// VolumeRestrictions, ReadWriteOncePod: a claim with that access mode already used by another pod
// placed on a node (bound, not finished) keeps this pod off every node.
import type { PersistentVolumeClaim, Pod } from '../../api/types/core.js';
import { keyOf } from '../../controllers/informer.js';
import { claimKey } from '../../controllers/volume-util.js';
import { IDX_ACTIVE_BY_CLAIM, podClaims } from '../claims.js';
import { type CycleState, type FilterPlugin, SUCCESS, type Status, unschedulable } from '../framework.js';
import type { PluginContext } from '../plugin-context.js';

export const REASON_RWOP_CONFLICT = 'node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode';

function readWriteOncePod(pvc: PersistentVolumeClaim): boolean {
  return (pvc.spec.accessModes ?? []).includes('ReadWriteOncePod');
}

export class VolumeRestrictions implements FilterPlugin {
  readonly name = 'VolumeRestrictions';
  constructor(private readonly ctx: PluginContext) {}

  filter(state: CycleState, pod: Pod): Status {
    const inUse = podClaims(this.ctx, state, pod).some((c) => c.pvc !== undefined && readWriteOncePod(c.pvc) && this.ctx.pods.indexKeys(IDX_ACTIVE_BY_CLAIM, claimKey(c.pvc)).some((k) => k !== keyOf(pod)));
    return inUse ? unschedulable(REASON_RWOP_CONFLICT) : SUCCESS;
  }
}
