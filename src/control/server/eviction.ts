// The eviction subresource (POST /api/v1/namespaces/{ns}/pods/{name}/eviction, a policy/v1
// Eviction): a pod deletion that honours its PodDisruptionBudget, what `kubectl drain` and every
// node-maintenance tool call. As kube-apiserver's EvictionREST:
// - a pod that is Pending, Succeeded, Failed or already being deleted goes at once (the budget
//   cannot be hurt by it);
// - no budget selects the pod (a budget with an empty selector selects none here): it goes; more than one: 500, "This pod has more than one
//   PodDisruptionBudget, which the eviction subresource does not support.";
// - an unready pod goes without using the budget when the budget says AlwaysAllow, or when the
//   application is healthy anyway (currentHealthy ≥ desiredHealthy > 0), guarded by a
//   resourceVersion precondition so that it cannot become ready in between;
// - otherwise the budget must allow a disruption: 429 "Cannot evict pod as it would violate the
//   pod's disruption budget." (cause DisruptionBudget: "The disruption budget B needs N healthy pods
//   and has M currently", or "... is still being processed by the server." while the controller has
//   not seen the budget's latest generation, with Retry-After: 10); a negative count is 403. When it
//   does, disruptionsAllowed is decremented and the pod recorded in status.disruptedPods (so the
//   disruption controller does not count it healthy meanwhile), then the pod gets the
//   DisruptionTarget condition (EvictionByEvictionAPI) and is deleted with the Eviction's
//   deleteOptions (gracefully, as any pod deletion).
// ?dryRun=All (or deleteOptions.dryRun) checks everything and changes nothing.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import { rfc3339 } from '../api/time.js';
import type { Pod } from '../api/types/core.js';
import type { PodDisruptionBudget } from '../api/types/policy.js';
import { budgetSelects, withAllowedCondition } from '../controllers/disruption.js';
import { isReady } from '../controllers/workload-util.js';
import { BadRequestError, ConflictError, ForbiddenError, MethodNotAllowedError, NotFoundError, TooManyRequestsError } from '../store/errors.js';
import type { DeleteOptions, Store } from '../store/store.js';
import { mediaType, parseBody, readBody, sendJson } from './http-io.js';
import { deleteOptions } from './query.js';

const EVICTION_VERSIONS = ['policy/v1', 'policy/v1beta1'];
/** policyv1.DisruptionBudgetCause. */
export const DISRUPTION_BUDGET_CAUSE = 'DisruptionBudget';
export const VIOLATES_BUDGET = "Cannot evict pod as it would violate the pod's disruption budget.";
export const MULTIPLE_BUDGETS = 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.';
/** Upstream's MaxDisruptedPodSize: past it, evictions wait for the controller to catch up. */
const MAX_DISRUPTED_PODS = 2000;
/** How many times a budget update that lost a race is tried again (upstream's EvictionsRetry steps). */
const CONFLICT_RETRIES = 5;

const pdbResource = (): ResourceInfo => resourceForName('poddisruptionbudgets') as ResourceInfo;
const podResource = (): ResourceInfo => resourceForName('pods') as ResourceInfo;

function stillProcessing(pdb: string): TooManyRequestsError {
  return new TooManyRequestsError(VIOLATES_BUDGET, 10, [{ type: DISRUPTION_BUDGET_CAUSE, message: `The disruption budget ${pdb} is still being processed by the server.` }]);
}

/** Reads and checks the Eviction body: the pod's name, a known version, and its deleteOptions. */
function readEviction(raw: unknown, namespace: string, name: string, query: URLSearchParams): DeleteOptions {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BadRequestError('the request body must be an Eviction object');
  const body = raw as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown }; deleteOptions?: unknown };
  if (body.kind !== undefined && body.kind !== 'Eviction') throw new BadRequestError(`not a Eviction object: ${String(body.kind)}`);
  if (body.apiVersion !== undefined && !EVICTION_VERSIONS.includes(String(body.apiVersion))) {
    throw new BadRequestError(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (policy/v1)`);
  }
  if (body.metadata?.name !== name) throw new BadRequestError('name in URL does not match name in Eviction object');
  if (body.metadata.namespace !== undefined && body.metadata.namespace !== '' && body.metadata.namespace !== namespace) {
    throw new BadRequestError('the namespace of the provided object does not match the namespace sent on the request');
  }
  const fromBody = body.deleteOptions === undefined || body.deleteOptions === null ? undefined : body.deleteOptions;
  const bodyDryRun = (fromBody as { dryRun?: unknown } | undefined)?.dryRun;
  const queryDryRun = query.getAll('dryRun');
  if (Array.isArray(bodyDryRun) && bodyDryRun.length > 0 && queryDryRun.length > 0 && JSON.stringify(bodyDryRun) !== JSON.stringify(queryDryRun)) {
    throw new BadRequestError(`Non-matching dry-run options in request and content: [${queryDryRun.join(' ')}] and [${bodyDryRun.join(' ')}]`);
  }
  return deleteOptions(fromBody, query);
}

/** Pods the budget cannot be hurt by: not running yet, finished, or already going (canIgnorePDB). */
function canIgnoreBudget(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending' || pod.metadata.deletionTimestamp !== undefined;
}

/**
 * Whether the budget guards the pod's eviction (getPodDisruptionBudgets): its selector takes the
 * pod, and is neither missing nor empty. An empty selector guards nothing here, though the
 * disruption controller counts every pod of the namespace for it (as kube-apiserver does).
 */
function guards(pdb: PodDisruptionBudget, pod: Pod): boolean {
  const selector = pdb.spec?.selector;
  if (selector === undefined || (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)) return false;
  try {
    return budgetSelects(pdb, pod);
  } catch {
    return false; // an invalid selector matches nothing
  }
}

/** Whether a deletion should be guarded by the pod's resourceVersion (shouldEnforceResourceVersion). */
function guardsVersion(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return !(phase === 'Succeeded' || phase === 'Failed' || pod.metadata.deletionTimestamp !== undefined);
}

function withVersion(options: DeleteOptions, pod: Pod): DeleteOptions {
  if (options.preconditions?.resourceVersion !== undefined) return options;
  return { ...options, preconditions: { ...options.preconditions, ...(pod.metadata.resourceVersion === undefined ? {} : { resourceVersion: pod.metadata.resourceVersion }) } };
}

/** Checks the budget allows one more disruption and takes it (checkAndDecrement), retrying lost races. */
function takeDisruption(store: Store, first: PodDisruptionBudget, podName: string, dryRun: boolean): void {
  let pdb = first;
  for (let attempt = 0; ; attempt++) {
    const name = pdb.metadata.name ?? '';
    const status = pdb.status ?? {};
    if ((status.observedGeneration ?? 0) < (pdb.metadata.generation ?? 0)) throw stillProcessing(name);
    const allowed = status.disruptionsAllowed ?? 0;
    if (allowed < 0) throw new ForbiddenError(pdbResource(), name, 'pdb disruptions allowed is negative');
    if (Object.keys(status.disruptedPods ?? {}).length > MAX_DISRUPTED_PODS) {
      throw new ForbiddenError(pdbResource(), name, 'DisruptedPods map too big - too many evictions not confirmed by PDB controller');
    }
    if (allowed === 0) {
      throw new TooManyRequestsError(VIOLATES_BUDGET, 0, [
        { type: DISRUPTION_BUDGET_CAUSE, message: `The disruption budget ${name} needs ${status.desiredHealthy ?? 0} healthy pods and has ${status.currentHealthy ?? 0} currently` },
      ]);
    }
    if (dryRun) return;
    const next = { ...status, disruptionsAllowed: allowed - 1, disruptedPods: { ...status.disruptedPods, [podName]: rfc3339() } };
    if (next.disruptionsAllowed === 0) next.conditions = withAllowedCondition(status.conditions, next);
    try {
      store.update({ ...pdb, status: next }, { subresource: 'status' });
      return;
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= CONFLICT_RETRIES) throw err;
      const fresh = store.get('poddisruptionbudgets', pdb.metadata.namespace, name) as PodDisruptionBudget | undefined;
      if (fresh === undefined) throw new NotFoundError(pdbResource(), name);
      pdb = fresh;
    }
  }
}

/** The DisruptionTarget condition, then the deletion (addConditionAndDeletePod). */
function deletePod(store: Store, pod: Pod, options: DeleteOptions): void {
  if (!options.dryRun) {
    const pre = options.preconditions;
    if (pre?.uid !== undefined && pre.uid !== pod.metadata.uid) {
      throw new ConflictError(podResource(), pod.metadata.name ?? '', `the UID in the precondition (${pre.uid}) does not match the UID in record (${pod.metadata.uid ?? ''}). The object might have been deleted and then recreated`);
    }
    if (pre?.resourceVersion !== undefined && pre.resourceVersion !== pod.metadata.resourceVersion) {
      throw new ConflictError(podResource(), pod.metadata.name ?? '', `the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ResourceVersion in record (${pod.metadata.resourceVersion ?? ''}). The object might have been modified`);
    }
    const conditions = (pod.status?.conditions ?? []).filter((c) => c.type !== 'DisruptionTarget');
    conditions.push({ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting', lastTransitionTime: rfc3339() });
    const updated = store.update({ ...pod, status: { ...pod.status, conditions } }, { subresource: 'status' }) as Pod;
    // Our own write moved the resourceVersion the caller's (or our) precondition named.
    if (pre?.resourceVersion !== undefined) options = { ...options, preconditions: { ...pre, ...(updated.metadata.resourceVersion === undefined ? {} : { resourceVersion: updated.metadata.resourceVersion }) } };
  }
  store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', options);
}

const SUCCESS = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 };

export async function handleEviction(store: Store, namespace: string, name: string, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  if (req.method !== 'POST') throw new MethodNotAllowedError(req.method ?? '', 'pods/eviction');
  const options = readEviction(parseBody(await readBody(req), mediaType(req)), namespace, name, query);
  const reply = async (code: number, body: object): Promise<void> => {
    await store.flushed();
    sendJson(res, code, body);
  };
  const pod = store.get('pods', namespace, name) as Pod | undefined;
  if (pod === undefined) throw new NotFoundError(podResource(), name);

  if (canIgnoreBudget(pod)) {
    deletePod(store, pod, guardsVersion(pod) ? withVersion(options, pod) : options);
    await reply(201, SUCCESS);
    return;
  }
  const budgets = (store.list('poddisruptionbudgets', { namespace }).items as PodDisruptionBudget[]).filter((b) => guards(b, pod));
  if (budgets.length > 1) {
    await reply(500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: MULTIPLE_BUDGETS, code: 500 });
    return;
  }
  let guarded = false;
  const pdb = budgets[0];
  if (pdb !== undefined) {
    const status = pdb.status ?? {};
    const healthyAnyway = (status.currentHealthy ?? 0) >= (status.desiredHealthy ?? 0) && (status.desiredHealthy ?? 0) > 0;
    if (!isReady(pod) && (pdb.spec?.unhealthyPodEvictionPolicy === 'AlwaysAllow' || healthyAnyway)) guarded = true;
    else takeDisruption(store, pdb, name, options.dryRun === true);
  }
  try {
    deletePod(store, pod, guarded ? withVersion(options, pod) : options);
  } catch (err) {
    // The unready pod changed (became ready?) since it was judged: the caller tries again.
    if (err instanceof ConflictError && guarded && options.preconditions?.resourceVersion === undefined) throw stillProcessing(pdb?.metadata.name ?? '');
    throw err;
  }
  await reply(201, SUCCESS);
}
