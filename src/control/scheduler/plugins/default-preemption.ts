// DefaultPreemption, kube-scheduler's PostFilter: when no node takes a pod, find the nodes where
// removing pods of lower priority would make it fit, pick one, evict those pods ("victims") and
// nominate the node in the pod's status.nominatedNodeName. The pod is tried again when the victims
// are gone (their deletion requeues it) and is bound then; meanwhile the scheduler counts it on the
// nominated node for every pod of lower priority, so they do not take the room back.
//
// As upstream:
// - Not for pods with preemptionPolicy Never ("not eligible due to preemptionPolicy=Never."), nor
//   while a victim of an earlier preemption is still terminating on the pod's nominated node.
// - Only nodes whose Filter status was Unschedulable are looked at (UnschedulableAndUnresolvable:
//   removing pods cannot help); at least 100 candidates, or 10% of the nodes, are sought.
// - Victims on a node (SelectVictimsOnNode), on a copy of the attempt's CycleState whose PreFilter
//   data follows each pod taken away or put back (the plugins' RemovePod/AddPod: a victim's own
//   anti-affinity or spread count stops weighing): remove every pod of lower priority; if the pod still
//   does not fit, the node is no candidate (its Filter status says why); else add them back, most
//   important first (higher priority, then earlier start), keeping out only those without which it
//   no longer fits.
// - The node (pickOneNodeForPreemption): fewest PodDisruptionBudget violations, then the lowest
//   highest-victim priority, the smallest sum of priorities, the fewest victims, the latest start
//   among the highest-priority victims; then the first in node order (upstream: map order).
// - Each victim gets the DisruptionTarget=True condition (reason PreemptionByScheduler, "<scheduler>:
//   preempting to accommodate a higher priority pod"), is deleted gracefully, and gets the event
//   Normal Preempted "Preempted by pod <uid> on node <node>". Pods of lower priority nominated to
//   the node lose their nomination.
// - Nothing to do: "preemption: 0/N nodes are available: N No preemption victims found for incoming
//   pod." (FitError over the nodes' dry-run statuses; nodes not tried count as "Preemption is not
//   helpful for scheduling"), and the pod's nomination is cleared.
//
// PodDisruptionBudgets (filterPodsWithPDBViolation): a victim whose budget (same namespace, a
// non-empty selector taking it, not already in the budget's disruptedPods) would go below zero
// disruptions allowed violates it; victims violating one are reprieved first, and the count that
// could not be is the candidate's numPDBViolations. Preemption deletes its victims even so (a
// budget is respected as far as choosing allows, as upstream). Victims are pods bound to the node (pods only assumed there, waiting in PreBind, are not
// evicted: they have no node yet to be evicted from). Candidates are tried from the first node.
import { rfc3339 } from '../../api/time.js';
import { selectorMatches } from '../../api/label-selector.js';
import type { Pod } from '../../api/types/core.js';
import type { PodDisruptionBudget } from '../../api/types/policy.js';
import { fitErrorMessage, reasonCounts } from '../fit-error.js';
import { type CycleState, type PostFilterHandle, type PostFilterPlugin, type PostFilterResult, SUCCESS, type Status, unresolvable, unschedulable } from '../framework.js';
import type { Informer } from '../../controllers/informer.js';
import { NodeInfo } from '../node-info.js';
import type { PluginContext } from '../plugin-context.js';
import { moreImportantPod, podPriority, podStartMs, preemptsOthers } from '../pod-priority.js';

export const MSG_NOT_ELIGIBLE_NEVER = 'not eligible due to preemptionPolicy=Never.';
export const MSG_NOT_ELIGIBLE_TERMINATING = 'not eligible due to a terminating pod on the nominated node.';
export const MSG_NO_VICTIMS = 'No preemption victims found for incoming pod';
export const MSG_NOT_HELPFUL = 'Preemption is not helpful for scheduling';
export const REASON_PREEMPTION_BY_SCHEDULER = 'PreemptionByScheduler';

/** A node where the pod fits once these pods (most important first) are gone. */
export interface Candidate {
  readonly node: string;
  readonly victims: readonly Pod[];
  readonly numPDBViolations: number;
}

/** The pods on the node this pod may preempt: bound there, of lower priority. */
function preemptible(pod: Pod, on: Pod): boolean {
  return !!on.spec?.nodeName && podPriority(on) < podPriority(pod);
}

/**
 * SelectVictimsOnNode: the fewest most-important-kept victims that let the pod pass `fits` on the
 * node, or the status that rules the node out.
 */
export function selectVictimsOnNode(
  pod: Pod,
  node: NodeInfo,
  fits: (node: NodeInfo) => Status,
  pdbs: readonly PodDisruptionBudget[] = [],
  /** The PreFilter plugins' RemovePod / AddPod on the dry run's state, told of each pod taken away or put back. */
  extensions?: { removePod(other: Pod, node: NodeInfo): void; addPod(other: Pod, node: NodeInfo): void },
): { victims: Pod[]; numPDBViolations: number; status: Status } {
  let kept: Pod[] = [];
  const potential: Pod[] = [];
  for (const p of node.pods) (preemptible(pod, p) ? potential : kept).push(p);
  if (potential.length === 0) return { victims: [], numPDBViolations: 0, status: unresolvable(MSG_NO_VICTIMS) };
  // Every lower-priority pod taken away, one at a time, the plugins' counts following.
  if (extensions !== undefined) {
    let left = [...node.pods];
    for (const p of potential) {
      left = left.filter((q) => q !== p);
      extensions.removePod(p, new NodeInfo(node.node, left));
    }
    kept = left;
  }
  const without = fits(new NodeInfo(node.node, kept));
  if (without.code !== 'Success') return { victims: [], numPDBViolations: 0, status: without };
  potential.sort((a, b) => (moreImportantPod(a, b) ? -1 : moreImportantPod(b, a) ? 1 : 0));
  const { violating, nonViolating } = splitByBudgetViolation(potential, pdbs);
  const victims: Pod[] = [];
  let numPDBViolations = 0;
  const reprieve = (p: Pod): boolean => {
    kept.push(p);
    const withIt = new NodeInfo(node.node, kept);
    extensions?.addPod(p, withIt);
    if (fits(withIt).code === 'Success') return true;
    kept.pop();
    extensions?.removePod(p, new NodeInfo(node.node, kept));
    victims.push(p);
    return false;
  };
  for (const p of violating) if (!reprieve(p)) numPDBViolations++;
  for (const p of nonViolating) reprieve(p);
  // Violating victims went in first: back to most important first (pickOneNodeForPreemption reads
  // the highest-priority victim as the first).
  if (violating.length > 0 && nonViolating.length > 0) victims.sort((a, b) => (moreImportantPod(a, b) ? -1 : moreImportantPod(b, a) ? 1 : 0));
  return { victims, numPDBViolations, status: SUCCESS };
}

/**
 * filterPodsWithPDBViolation: the pods (in their order) whose removal, counted one after another
 * against each budget taking them, would leave a budget below zero disruptions allowed, and the rest.
 * Here an empty selector takes nothing, as in kube-scheduler.
 */
export function splitByBudgetViolation(pods: readonly Pod[], pdbs: readonly PodDisruptionBudget[]): { violating: Pod[]; nonViolating: Pod[] } {
  const allowed = pdbs.map((b) => b.status?.disruptionsAllowed ?? 0);
  const violating: Pod[] = [];
  const nonViolating: Pod[] = [];
  for (const pod of pods) {
    let violated = false;
    if (Object.keys(pod.metadata.labels ?? {}).length > 0) {
      pdbs.forEach((pdb, i) => {
        const selector = pdb.spec?.selector;
        if (pdb.metadata.namespace !== pod.metadata.namespace || selector === undefined) return;
        if (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0) return;
        if (!selectorMatches(selector, pod.metadata.labels)) return;
        if (pdb.status?.disruptedPods?.[pod.metadata.name ?? ''] !== undefined) return;
        allowed[i] = (allowed[i] as number) - 1;
        if ((allowed[i] as number) < 0) violated = true;
      });
    }
    (violated ? violating : nonViolating).push(pod);
  }
  return { violating, nonViolating };
}

/** The earliest start among the highest-priority victims (util.GetEarliestPodStartTime). */
function earliestStartOfHighest(victims: readonly Pod[]): number {
  const top = podPriority(victims[0] as Pod);
  let earliest = Number.POSITIVE_INFINITY;
  for (const v of victims) if (podPriority(v) === top) earliest = Math.min(earliest, podStartMs(v));
  return earliest;
}

/** pickOneNodeForPreemption: upstream's criteria in order, each keeping the best-scoring nodes. */
export function pickOneNodeForPreemption(candidates: readonly Candidate[]): Candidate | undefined {
  const criteria: ((c: Candidate) => number)[] = [
    (c) => -c.numPDBViolations,
    (c) => -podPriority(c.victims[0] as Pod),
    // Upstream adds MaxInt32+1 to each priority so that negative ones do not favour more victims.
    (c) => -c.victims.reduce((sum, v) => sum + podPriority(v) + 2 ** 31, 0),
    (c) => -c.victims.length,
    (c) => earliestStartOfHighest(c.victims),
  ];
  let left = candidates.filter((c) => c.victims.length > 0);
  for (const score of criteria) {
    if (left.length <= 1) break;
    const scores = left.map(score);
    const best = Math.max(...scores);
    left = left.filter((_, i) => scores[i] === best);
  }
  return left[0];
}

/** kube-scheduler's GetOffsetAndNumCandidates (the count): 10% of the nodes, at least 100. */
export function numCandidates(numNodes: number): number {
  return Math.min(numNodes, Math.max(100, Math.trunc((numNodes * 10) / 100)));
}

function terminatingByPreemption(pod: Pod): boolean {
  return !!pod.metadata.deletionTimestamp && (pod.status?.conditions ?? []).some((c) => c.type === 'DisruptionTarget' && c.status === 'True' && c.reason === REASON_PREEMPTION_BY_SCHEDULER);
}

export class DefaultPreemption implements PostFilterPlugin {
  readonly name = 'DefaultPreemption';
  private readonly budgets: Informer<PodDisruptionBudget>;
  constructor(private readonly ctx: PluginContext) {
    this.budgets = ctx.informers.for('poddisruptionbudgets');
  }

  postFilter(state: CycleState, pod: Pod, statuses: ReadonlyMap<string, Status>, handle: PostFilterHandle): PostFilterResult {
    const result = this.preempt(state, pod, statuses, handle);
    const msg = result.status.reasons.join(', ');
    return msg === '' ? result : { ...result, status: { code: result.status.code, reasons: [`preemption: ${msg}`] } };
  }

  private preempt(state: CycleState, pod: Pod, statuses: ReadonlyMap<string, Status>, handle: PostFilterHandle): PostFilterResult {
    // 1. PodEligibleToPreemptOthers.
    if (!preemptsOthers(pod)) return { status: unschedulable(MSG_NOT_ELIGIBLE_NEVER) };
    const infos = handle.nodeInfos();
    const nominated = pod.status?.nominatedNodeName;
    if (nominated && statuses.get(nominated)?.code !== 'UnschedulableAndUnresolvable') {
      const info = infos.find((n) => n.name === nominated);
      const priority = podPriority(pod);
      if (info?.pods.some((p) => podPriority(p) < priority && terminatingByPreemption(p))) return { status: unschedulable(MSG_NOT_ELIGIBLE_TERMINATING) };
    }

    // 2. Candidates: the nodes where removing pods could help, dry-run.
    const pdbs = this.budgets.list();
    const potential = infos.filter((n) => statuses.get(n.name)?.code === 'Unschedulable');
    const dryRun = new Map<string, Status>();
    const candidates: Candidate[] = [];
    const wanted = numCandidates(potential.length);
    for (const node of potential) {
      if (candidates.length >= wanted) break;
      // Each node's dry run on its own copy of the attempt's state (the plugins' counts change in it).
      const dry = state.clone();
      const extensions = { removePod: (other: Pod, n: NodeInfo) => handle.removePod(dry, pod, other, n), addPod: (other: Pod, n: NodeInfo) => handle.addPod(dry, pod, other, n) };
      const { victims, numPDBViolations, status } = selectVictimsOnNode(pod, node, (n) => handle.runFilter(dry, pod, n), pdbs, extensions);
      if (status.code === 'Success') candidates.push({ node: node.name, victims, numPDBViolations });
      else dryRun.set(node.name, status);
    }
    if (candidates.length === 0) {
      const all = infos.map((n) => dryRun.get(n.name) ?? unresolvable(MSG_NOT_HELPFUL));
      return { status: unschedulable(fitErrorMessage(handle.numNodes, reasonCounts(all))), nominatedNodeName: '' };
    }

    // 3. The node, and the evictions.
    const best = pickOneNodeForPreemption(candidates) as Candidate;
    for (const victim of best.victims) this.evict(pod, victim, best.node);
    const priority = podPriority(pod);
    for (const other of this.ctx.nominatedOn(best.node)) {
      if (other.metadata.uid !== pod.metadata.uid && podPriority(other) < priority) this.clearNomination(other);
    }
    return { status: SUCCESS, nominatedNodeName: best.node };
  }

  /** DisruptionTarget, a graceful delete, the Preempted event. */
  private evict(preemptor: Pod, victim: Pod, nodeName: string): void {
    const store = this.ctx.store;
    const ns = victim.metadata.namespace ?? 'default';
    const name = victim.metadata.name ?? '';
    const current = store.get('pods', ns, name) as Pod | undefined;
    if (current === undefined || current.metadata.uid !== victim.metadata.uid) return;
    const conditions = current.status?.conditions ?? [];
    if (!conditions.some((c) => c.type === 'DisruptionTarget' && c.status === 'True' && c.reason === REASON_PREEMPTION_BY_SCHEDULER)) {
      const condition = {
        type: 'DisruptionTarget',
        status: 'True',
        reason: REASON_PREEMPTION_BY_SCHEDULER,
        message: `${preemptor.spec?.schedulerName || 'default-scheduler'}: preempting to accommodate a higher priority pod`,
        lastTransitionTime: rfc3339(),
      };
      store.update({ ...current, status: { ...current.status, conditions: [...conditions.filter((c) => c.type !== 'DisruptionTarget'), condition] } }, { subresource: 'status' });
    }
    if (!current.metadata.deletionTimestamp) store.delete('pods', ns, name, { preconditions: { uid: current.metadata.uid ?? '' } });
    this.ctx.recorder.event(current, 'Normal', 'Preempted', `Preempted by pod ${preemptor.metadata.uid ?? ''} on node ${nodeName}`);
    this.ctx.logger.info({ preemptor: `${preemptor.metadata.namespace}/${preemptor.metadata.name}`, victim: `${ns}/${name}`, node: nodeName }, 'preempted');
  }

  private clearNomination(pod: Pod): void {
    const current = this.ctx.store.get('pods', pod.metadata.namespace, pod.metadata.name ?? '') as Pod | undefined;
    if (current?.status?.nominatedNodeName === undefined) return;
    const { nominatedNodeName: _, ...status } = current.status;
    this.ctx.store.update({ ...current, status }, { subresource: 'status' });
  }
}
