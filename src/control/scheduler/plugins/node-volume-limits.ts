// NodeVolumeLimits (CSI): the node's volumes per driver, plus the pod's new ones, against the
// driver's CSINode allocatable.count ("node(s) exceed max volume count"). Volumes are counted by
// unique handle (a claim still to be provisioned by its uid), over the pods bound or assumed there.
import type { Pod } from '../../api/types/core.js';
import { keyOf } from '../../controllers/informer.js';
import { type ClaimPlan, podClaimNames, podClaimPlans, planClaim } from '../claims.js';
import { type CycleState, type FilterPlugin, type PreFilterPlugin, SKIP, SUCCESS, type Status, unschedulable } from '../framework.js';
import { nodeCsiDrivers } from '../node-drivers.js';
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

export class NodeVolumeLimits implements PreFilterPlugin, FilterPlugin {
  readonly name = 'NodeVolumeLimits';
  /** The drivers some CSINode gives an allocatable.count, as of a generation of the CSINodes. */
  private limited: { generation: number; drivers: ReadonlySet<string> } | undefined;

  constructor(private readonly ctx: PluginContext) {}

  private limitedDrivers(): ReadonlySet<string> {
    const generation = this.ctx.registry.csiNodesGeneration;
    if (this.limited?.generation !== generation) {
      const drivers = new Set<string>();
      for (const n of this.ctx.informers.for('csinodes').list()) for (const d of n.spec?.drivers ?? []) if (d.allocatable?.count !== undefined) drivers.add(d.name);
      this.limited = { generation, drivers };
    }
    return this.limited.drivers;
  }

  /**
   * Skip (Filter not run) when the pod has no new volume of a driver that any node limits: no
   * node can then be over its count because of this pod.
   */
  preFilter(state: CycleState, pod: Pod): Status {
    return this.wanted(state, pod).size === 0 ? SKIP : SUCCESS;
  }

  /** The pod's new volumes per limited driver, the same for every node: worked out once per attempt. */
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
    if (wanted.size > 0) {
      const limited = this.limitedDrivers();
      for (const driver of [...wanted.keys()]) if (!limited.has(driver)) wanted.delete(driver);
    }
    state.write(STATE_WANTED, wanted);
    return wanted;
  }

  filter(state: CycleState, pod: Pod, node: NodeInfo): Status {
    const wanted = this.wanted(state, pod);
    if (wanted.size === 0) return SUCCESS;
    const drivers = nodeCsiDrivers(this.ctx, node);
    let limits: Map<string, number> | undefined;
    for (const driver of wanted.keys()) {
      const count = drivers.get(driver)?.allocatable?.count;
      if (count !== undefined) (limits ??= new Map()).set(driver, count);
    }
    if (limits === undefined) return SUCCESS;
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
