// VolumeRestrictions: NoDiskConflict, an inline disk another pod on the node already uses that two
// pods cannot share ("node(s) had no available disk": the same GCE PD or iSCSI IQN or RBD image
// unless both mount it read-only, the same AWS EBS volume always); and ReadWriteOncePod, a claim
// with that access mode already used by another pod placed on a node (bound, not finished), which
// keeps this pod off every node.
import type { PersistentVolumeClaim, Pod, Volume } from '../../api/types/core.js';
import { keyOf } from '../../controllers/informer.js';
import { claimKey } from '../../controllers/volume-util.js';
import { IDX_ACTIVE_BY_CLAIM, podClaims } from '../claims.js';
import { type CycleState, type FilterPlugin, SUCCESS, type Status, unschedulable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';

export const REASON_DISK_CONFLICT = 'node(s) had no available disk';

export const REASON_RWOP_CONFLICT = 'node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode';

interface InlineDisks {
  gcePersistentDisk?: { pdName?: string; readOnly?: boolean };
  awsElasticBlockStore?: { volumeID?: string };
  iscsi?: { iqn?: string; readOnly?: boolean };
  rbd?: { monitors?: string[]; pool?: string; image?: string; readOnly?: boolean };
}

/** Kubernetes' isVolumeConflict: two pod volumes naming one disk that cannot be shared. */
export function volumesConflict(a: Volume, b: Volume): boolean {
  const x = a as InlineDisks;
  const y = b as InlineDisks;
  if (x.gcePersistentDisk && y.gcePersistentDisk) {
    return x.gcePersistentDisk.pdName === y.gcePersistentDisk.pdName && !(x.gcePersistentDisk.readOnly && y.gcePersistentDisk.readOnly);
  }
  if (x.awsElasticBlockStore && y.awsElasticBlockStore) return x.awsElasticBlockStore.volumeID === y.awsElasticBlockStore.volumeID;
  if (x.iscsi && y.iscsi) return x.iscsi.iqn === y.iscsi.iqn && !(x.iscsi.readOnly && y.iscsi.readOnly);
  if (x.rbd && y.rbd) {
    const overlap = (x.rbd.monitors ?? []).some((m) => (y.rbd?.monitors ?? []).includes(m));
    return overlap && (x.rbd.pool ?? 'rbd') === (y.rbd.pool ?? 'rbd') && x.rbd.image === y.rbd.image && !(x.rbd.readOnly && y.rbd.readOnly);
  }
  return false;
}

function hasInlineDisk(v: Volume): boolean {
  const d = v as InlineDisks;
  return d.gcePersistentDisk !== undefined || d.awsElasticBlockStore !== undefined || d.iscsi !== undefined || d.rbd !== undefined;
}

function readWriteOncePod(pvc: PersistentVolumeClaim): boolean {
  return (pvc.spec.accessModes ?? []).includes('ReadWriteOncePod');
}

export class VolumeRestrictions implements FilterPlugin {
  readonly name = 'VolumeRestrictions';
  constructor(private readonly ctx: PluginContext) {}

  filter(state: CycleState, pod: Pod, node: NodeInfo): Status {
    const disks = (pod.spec.volumes ?? []).filter(hasInlineDisk);
    if (disks.length > 0 && node.pods.some((p) => (p.spec.volumes ?? []).some((theirs) => disks.some((ours) => volumesConflict(ours, theirs))))) return unschedulable(REASON_DISK_CONFLICT);
    const inUse = podClaims(this.ctx, state, pod).some((c) => c.pvc !== undefined && readWriteOncePod(c.pvc) && this.ctx.pods.indexKeys(IDX_ACTIVE_BY_CLAIM, claimKey(c.pvc)).some((k) => k !== keyOf(pod)));
    return inUse ? unschedulable(REASON_RWOP_CONFLICT) : SUCCESS;
  }
}
