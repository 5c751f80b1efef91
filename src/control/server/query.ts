// Query parameters and DeleteOptions bodies, read as kube-apiserver reads them: a malformed one is
// a 400 naming it, never silently ignored (a list with ?limit=abc must not quietly return
// everything) and never a crash.
import { type FieldError, forbidden, notSupported } from '../api/validation/field-errors.js';
import type { PropagationPolicy } from '../store/garbage-collector.js';
import { BadRequestError, InvalidError } from '../store/errors.js';
import type { DeleteOptions } from '../store/store.js';
import { writeQuery } from './write-options.js';

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** Kubernetes' string → bool conversion for query parameters: "", "0" and "false" (any case) are false, anything else true. */
export function boolParam(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null) return false;
  return !(value === '' || value === '0' || value.toLowerCase() === 'false');
}

/** An int64 parameter as strconv.ParseInt reads it; undefined when absent. */
export function intParam(query: URLSearchParams, name: string): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  return parseInt64(value, name);
}

function parseInt64(value: string, name: string): number {
  if (!/^[+-]?[0-9]+$/.test(value)) throw new BadRequestError(`${name}: strconv.ParseInt: parsing ${JSON.stringify(value)}: invalid syntax`);
  const n = BigInt(value);
  if (n > INT64_MAX || n < INT64_MIN) throw new BadRequestError(`${name}: strconv.ParseInt: parsing ${JSON.stringify(value)}: value out of range`);
  // Past 2^53 the exact value no longer matters to anything here (a limit, a timeout, a grace period).
  return Number(n);
}

/** The resourceVersion of a list: a non-negative integer or empty. */
export function listResourceVersion(query: URLSearchParams): string | undefined {
  const value = query.get('resourceVersion');
  if (value === null) return undefined;
  if (value !== '' && !/^[0-9]+$/.test(value)) {
    throw new BadRequestError(`invalid resource version: resourceVersion: Invalid value: ${JSON.stringify(value)}: strconv.ParseUint: parsing ${JSON.stringify(value)}: invalid syntax`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function wrongType(field: string, want: string, got: unknown): BadRequestError {
  const kind = got === null ? 'null' : Array.isArray(got) ? 'array' : typeof got;
  return new BadRequestError(`DeleteOptions.${field}: expected ${want}, got ${kind}`);
}

/** DeleteOptions from the body (if any) and the query, which wins, as in Kubernetes. */
export function deleteOptions(body: unknown, query: URLSearchParams): DeleteOptions {
  if (body !== undefined && !isObject(body)) throw new BadRequestError('the request body must be a DeleteOptions object');
  const b = body ?? {};
  const { propagationPolicy, orphanDependents, preconditions, gracePeriodSeconds, dryRun } = b;
  if (propagationPolicy !== undefined && propagationPolicy !== null && typeof propagationPolicy !== 'string') throw wrongType('propagationPolicy', 'string', propagationPolicy);
  if (orphanDependents !== undefined && orphanDependents !== null && typeof orphanDependents !== 'boolean') throw wrongType('orphanDependents', 'boolean', orphanDependents);
  if (gracePeriodSeconds !== undefined && gracePeriodSeconds !== null && !Number.isSafeInteger(gracePeriodSeconds)) throw wrongType('gracePeriodSeconds', 'integer', gracePeriodSeconds);
  if (dryRun !== undefined && dryRun !== null && (!Array.isArray(dryRun) || dryRun.some((v) => typeof v !== 'string'))) throw wrongType('dryRun', 'array of strings', dryRun);
  const write = writeQuery(query, 'DeleteOptions', Array.isArray(dryRun) ? (dryRun as string[]) : []);
  let pre: DeleteOptions['preconditions'];
  if (preconditions !== undefined && preconditions !== null) {
    if (!isObject(preconditions)) throw wrongType('preconditions', 'object', preconditions);
    const { uid, resourceVersion } = preconditions;
    if (uid !== undefined && uid !== null && typeof uid !== 'string') throw wrongType('preconditions.uid', 'string', uid);
    if (resourceVersion !== undefined && resourceVersion !== null && typeof resourceVersion !== 'string') throw wrongType('preconditions.resourceVersion', 'string', resourceVersion);
    pre = { ...(typeof uid === 'string' ? { uid } : {}), ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}) };
  }
  const grace = intParam(query, 'gracePeriodSeconds') ?? (typeof gracePeriodSeconds === 'number' ? gracePeriodSeconds : undefined);
  const policy = query.get('propagationPolicy') ?? (typeof propagationPolicy === 'string' ? propagationPolicy : undefined) ?? (orphanDependents === true ? 'Orphan' : undefined);
  return {
    ...(policy === undefined ? {} : { propagationPolicy: policy as PropagationPolicy }),
    ...(pre === undefined ? {} : { preconditions: pre }),
    ...(grace === undefined ? {} : { gracePeriodSeconds: grace }),
    ...(write.dryRun ? { dryRun: true } : {}),
  };
}

export type ResourceVersionMatch = 'Exact' | 'NotOlderThan';

const MATCH = 'resourceVersionMatch';

/**
 * ?resourceVersionMatch, checked by kube-apiserver's ValidateListOptions rules (a 422 for a
 * meta.k8s.io ListOptions): it needs a resourceVersion and no continue token; a list takes Exact
 * or NotOlderThan (Exact not with "0"); a watch takes it only with sendInitialEvents, which this
 * server refuses as kube-apiserver does without the WatchList feature.
 */
export function resourceVersionMatch(query: URLSearchParams, watch: boolean): ResourceVersionMatch | undefined {
  const match = query.get(MATCH) ?? '';
  const resourceVersion = query.get('resourceVersion') ?? '';
  const hasContinue = (query.get('continue') ?? '') !== '';
  const initialEvents = query.has('sendInitialEvents');
  const errs: FieldError[] = [];
  if (watch) {
    if (initialEvents) {
      if (match !== 'NotOlderThan') errs.push(forbidden(MATCH, 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan'));
      errs.push(forbidden('sendInitialEvents', 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled'));
    }
    if (match !== '') {
      if (!initialEvents) errs.push(forbidden(MATCH, 'resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided'));
      if (match !== 'NotOlderThan') errs.push(notSupported(MATCH, match, ['NotOlderThan']));
      if (hasContinue) errs.push(forbidden(MATCH, 'resourceVersionMatch is forbidden when continue is provided'));
    }
  } else {
    if (match !== '') {
      if (resourceVersion === '') errs.push(forbidden(MATCH, 'resourceVersionMatch is forbidden unless resourceVersion is provided'));
      if (hasContinue) errs.push(forbidden(MATCH, 'resourceVersionMatch is forbidden when continue is provided'));
      if (match !== 'Exact' && match !== 'NotOlderThan') errs.push(notSupported(MATCH, match, ['Exact', 'NotOlderThan', '']));
      if (match === 'Exact' && resourceVersion === '0') errs.push(forbidden(MATCH, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'));
    }
    if (initialEvents) errs.push(forbidden('sendInitialEvents', 'sendInitialEvents is forbidden for list'));
  }
  if (errs.length > 0) {
    const err = new InvalidError('ListOptions', 'meta.k8s.io', '', errs);
    // kube-apiserver names the kind with its group here: ListOptions.meta.k8s.io "" is invalid: …
    err.message = err.message.replace(/^ListOptions /, 'ListOptions.meta.k8s.io ');
    throw err;
  }
  return match === '' ? undefined : (match as ResourceVersionMatch);
}
