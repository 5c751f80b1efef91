// NodeVolumeLimits (CSI): the node's volumes per driver, plus the pod's new ones, against the
// driver's CSINode allocatable.count ("node(s) exceed max volume count"). Volumes are counted by
// unique handle (a claim still to be provisioned by its uid), over the pods bound or assumed there.
import type { Pod } from '../../api/types/core.js';
import { keyOf } from '../../controllers/informer.js';
import { type ClaimPlan, podClaimNames, podClaimPlans, planClaim } from '../claims.js';
import { type CycleState, type FilterPlugin, SUCCESS, type Status, unschedulable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';

export const REASON_MAX_VOLUME_COUNT = 'node(s) exceed max volume count';
const STATE_WANTED = 'NodeVolumeLimits/wanted';

/** Adds a claim's volume (driver → unique ids) to a tally. */
export function addVolume(tally: Map<string, Set<string>>, plan: ClaimPlan): void {
  let driver: string | undefined;
  let id: string;
  const pv = plan.kind === 'bound' ? plan.pv : plan.prebound;
  if (pv !== undefined) {
    driver = pv.spec.csi?.driver;
    id = `${driver ?? ''}^${pv.spec.csi?.volumeHandle ?? ''}`;
  } else if (plan.kind === 'delayed') {
    driver = plan.sc.provisioner;
    id = `claim:${plan.pvc.metadata.uid ?? ''}`;
  } else return;
  if (driver === undefined) return;
  let set = tally.get(driver);
  if (set === undefined) tally.set(driver, (set = new Set()));
  set.add(id);
}

const MEMO_LIMITS = 'NodeVolumeLimits/limits';

/** A node's CSINode volume limits by driver, as of a generation of the CSINodes. */
interface NodeLimits {
  generation: number;
  byDriver: ReadonlyMap<string, number>;
}

export class NodeVolumeLimits implements FilterPlugin {
  readonly name = 'NodeVolumeLimits';
  /** Bumped on every CSINode change: a node's limits kept on its NodeInfo are read again then. */
  private generation = 0;

  constructor(private readonly ctx: PluginContext) {
    const bump = (): void => {
      this.generation++;
    };
    ctx.informers.for('csinodes').addEventHandler({ add: bump, update: bump, delete: bump });
  }

  /** The node's allocatable.count per driver (drivers without one left out), kept on its NodeInfo. */
  private limitsOf(node: NodeInfo): ReadonlyMap<string, number> {
    const generation = this.generation;
    return node.memo<NodeLimits>(
      MEMO_LIMITS,
      (m) => m.generation === generation,
      () => {
        const byDriver = new Map<string, number>();
        for (const d of this.ctx.registry.nodeDrivers(node.name)) if (d.allocatable?.count !== undefined) byDriver.set(d.name, d.allocatable.count);
        return { generation, byDriver };
      },
    ).byDriver;
  }

  /** The pod's new volumes per driver, the same for every node: worked out once per attempt. */
  private wanted(state: CycleState, pod: Pod): Map<string, Set<string>> {
    let wanted = state.read<Map<string, Set<string>>>(STATE_WANTED);
    if (wanted !== undefined) return wanted;
    wanted = new Map();
    for (const { plan } of podClaimPlans(this.ctx, state, pod)) {
      // A claim no node can use is VolumeBinding's to report.
      if (typeof plan === 'string') {
        wanted.clear();
        break;
      }
      addVolume(wanted, plan);
    }
    state.write(STATE_WANTED, wanted);
    return wanted;
  }

  filter(state: CycleState, pod: Pod, node: NodeInfo): Status {
    const wanted = this.wanted(state, pod);
    if (wanted.size === 0) return SUCCESS;
    const all = this.limitsOf(node);
    if (all.size === 0) return SUCCESS;
    const limits = new Map<string, number>();
    for (const driver of wanted.keys()) {
      const count = all.get(driver);
      if (count !== undefined) limits.set(driver, count);
    }
    if (limits.size === 0) return SUCCESS;
    const used = new Map<string, Set<string>>();
    const key = keyOf(pod);
    for (const p of node.pods) {
      if (keyOf(p) === key) continue;
      const ns = p.metadata.namespace ?? 'default';
      for (const c of podClaimNames(p)) {
        const pvc = this.ctx.pvcs.getByName(ns, c.name);
        if (pvc === undefined) continue;
        const plan = planClaim(this.ctx, pvc);
        if (typeof plan !== 'string') addVolume(used, plan);
      }
    }
    for (const [driver, limit] of limits) {
      const all = new Set([...(used.get(driver) ?? []), ...(wanted.get(driver) ?? [])]);
      const added = [...(wanted.get(driver) ?? [])].filter((v) => !(used.get(driver) ?? new Set()).has(v)).length;
      if (added > 0 && all.size > limit) return unschedulable(REASON_MAX_VOLUME_COUNT);
    }
    return SUCCESS;
  }
}
