// VolumeZone: a bound PV labelled with a zone or region (topology.kubernetes.io/zone|region, or
// the older failure-domain.beta.kubernetes.io ones) fits only nodes with the same label value ("a__b"
// on the PV lists several zones); "node(s) had no available volume zone". A node without any such
// label takes anything, and a PV's beta label also matches the node's GA label, as in kube-scheduler.
import type { Pod } from '../../api/types/core.js';
import { podClaims, planClaim } from '../claims.js';
import { type CycleState, type FilterPlugin, type PreFilterPlugin, SKIP, SUCCESS, type Status, unresolvable } from '../framework.js';
import type { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';

export const REASON_VOLUME_ZONE = 'node(s) had no available volume zone';

const BETA_ZONE = 'failure-domain.beta.kubernetes.io/zone';
const BETA_REGION = 'failure-domain.beta.kubernetes.io/region';
const GA_ZONE = 'topology.kubernetes.io/zone';
const GA_REGION = 'topology.kubernetes.io/region';
const TOPOLOGY_LABELS = [BETA_ZONE, BETA_REGION, GA_ZONE, GA_REGION];
const TO_GA: Record<string, string> = { [BETA_ZONE]: GA_ZONE, [BETA_REGION]: GA_REGION };
const STATE_KEY = 'VolumeZone';

interface PvTopology {
  key: string;
  values: Set<string>;
}

export class VolumeZone implements PreFilterPlugin, FilterPlugin {
  readonly name = 'VolumeZone';
  constructor(private readonly ctx: PluginContext) {}

  preFilter(state: CycleState, pod: Pod): Status {
    const topologies: PvTopology[] = [];
    for (const c of podClaims(this.ctx, state, pod)) {
      if (c.pvc === undefined || !c.pvc.spec.volumeName) continue; // unbound claims are VolumeBinding's
      const plan = planClaim(this.ctx, c.pvc);
      if (typeof plan === 'string' || plan.kind !== 'bound') continue;
      const labels = plan.pv.metadata.labels ?? {};
      for (const key of TOPOLOGY_LABELS) {
        const v = labels[key];
        if (v !== undefined) topologies.push({ key, values: new Set(v.split('__').map((z) => z.trim())) });
      }
    }
    if (topologies.length === 0) return SKIP;
    state.write(STATE_KEY, topologies);
    return SUCCESS;
  }

  filter(state: CycleState, _pod: Pod, node: NodeInfo): Status {
    const labels = node.node.metadata.labels ?? {};
    if (!TOPOLOGY_LABELS.some((k) => labels[k] !== undefined)) return SUCCESS;
    for (const t of state.read<PvTopology[]>(STATE_KEY) ?? []) {
      const v = labels[t.key] ?? (TO_GA[t.key] === undefined ? undefined : labels[TO_GA[t.key] as string]);
      if (v === undefined || !t.values.has(v)) return unresolvable(REASON_VOLUME_ZONE);
    }
    return SUCCESS;
  }
}
