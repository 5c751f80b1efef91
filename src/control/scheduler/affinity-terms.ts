// A pod's inter-pod (anti-)affinity terms, parsed once per pod object (pods are replaced, never
// changed in place) as kube-scheduler's PodInfo keeps them: the scheduler cache files pods with
// terms under their node (cache.ts), and InterPodAffinity matches them many times per attempt.
//
// A term selects pods by labelSelector (absent: no pod; {}: every pod), in its namespaces: the
// listed ones, those whose labels match namespaceSelector ({}: every namespace), or, with neither,
// the namespace of the pod that carries the term. matchLabelKeys / mismatchLabelKeys add
// "key in (my value)" / "key notin (my value)" for the carrier's labels, as kube-apiserver merges
// them into the selector.
import type { LabelRequirement } from '../api/label-selector.js';
import { matchesLabels } from '../api/label-selector.js';
import type { Pod } from '../api/types/core.js';
import type { LabelSelector } from '../api/types/meta.js';

export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

export interface PodAffinityTermSpec {
  labelSelector?: LabelSelector | null;
  namespaces?: string[];
  namespaceSelector?: LabelSelector | null;
  topologyKey: string;
  matchLabelKeys?: string[];
  mismatchLabelKeys?: string[];
}
interface WeightedSpec {
  weight: number;
  podAffinityTerm: PodAffinityTermSpec;
}
interface PodAffinitySpec {
  requiredDuringSchedulingIgnoredDuringExecution?: PodAffinityTermSpec[];
  preferredDuringSchedulingIgnoredDuringExecution?: WeightedSpec[];
}

export interface AffinityTerm {
  readonly topologyKey: string;
  readonly namespaces: ReadonlySet<string>;
  /** null: selects no namespace by labels; []: every namespace. */
  readonly namespaceSelector: readonly LabelRequirement[] | null;
  /** null: selects no pod. */
  readonly selector: readonly LabelRequirement[] | null;
}
export interface WeightedAffinityTerm {
  readonly term: AffinityTerm;
  readonly weight: number;
}
export interface PodTerms {
  readonly requiredAffinity: readonly AffinityTerm[];
  readonly requiredAntiAffinity: readonly AffinityTerm[];
  readonly preferredAffinity: readonly WeightedAffinityTerm[];
  readonly preferredAntiAffinity: readonly WeightedAffinityTerm[];
  /** affinity.podAffinity or podAntiAffinity is set (kube-scheduler's PodsWithAffinity). */
  readonly hasAffinity: boolean;
  /** A required anti-affinity term with another topology key than the hostname. */
  readonly hasNonHostScopedRequiredAntiAffinity: boolean;
  /** Terms that score other pods (required affinity, preferred terms): required anti-affinity alone does not. */
  readonly scoresOthers: boolean;
}

/** A list field as the API stored it (affinity is not validated by our API server: anything else is empty). */
function list<T>(value: T[] | null | undefined): T[] {
  return Array.isArray(value) ? value.filter((v) => typeof v === 'object' && v !== null) : [];
}

export function requirementsOf(selector: LabelSelector | null | undefined): LabelRequirement[] | null {
  if (typeof selector !== 'object' || selector === null) return null;
  const labels = typeof selector.matchLabels === 'object' && selector.matchLabels !== null ? selector.matchLabels : {};
  return [
    ...Object.entries(labels).map(([key, value]): LabelRequirement => ({ key, operator: 'Equals', values: [String(value)] })),
    ...list(selector.matchExpressions).map((e): LabelRequirement => ({ key: e.key, operator: e.operator, values: Array.isArray(e.values) ? e.values : [] })),
  ];
}

function parseTerm(pod: Pod, spec: PodAffinityTermSpec): AffinityTerm {
  const selector = requirementsOf(spec.labelSelector);
  const labels = pod.metadata.labels ?? {};
  if (selector !== null) {
    for (const key of Array.isArray(spec.matchLabelKeys) ? spec.matchLabelKeys : []) if (Object.hasOwn(labels, key)) selector.push({ key, operator: 'In', values: [labels[key] ?? ''] });
    for (const key of Array.isArray(spec.mismatchLabelKeys) ? spec.mismatchLabelKeys : []) if (Object.hasOwn(labels, key)) selector.push({ key, operator: 'NotIn', values: [labels[key] ?? ''] });
  }
  const namespaceSelector = requirementsOf(spec.namespaceSelector);
  const namespaces = Array.isArray(spec.namespaces) ? spec.namespaces : [];
  const own = namespaces.length === 0 && namespaceSelector === null;
  return { topologyKey: String(spec.topologyKey ?? ''), namespaces: new Set(own ? [pod.metadata.namespace ?? 'default'] : namespaces), namespaceSelector, selector };
}

const EMPTY: PodTerms = Object.freeze({ requiredAffinity: [], requiredAntiAffinity: [], preferredAffinity: [], preferredAntiAffinity: [], hasAffinity: false, hasNonHostScopedRequiredAntiAffinity: false, scoresOthers: false });
const parsed = new WeakMap<Pod, PodTerms>();

/** The pod's terms (read only; cached per pod object). */
export function podTerms(pod: Pod): PodTerms {
  const known = parsed.get(pod);
  if (known !== undefined) return known;
  const affinity = pod.spec?.affinity as { podAffinity?: PodAffinitySpec | null; podAntiAffinity?: PodAffinitySpec | null } | undefined;
  const a = affinity?.podAffinity ?? undefined;
  const anti = affinity?.podAntiAffinity ?? undefined;
  let terms = EMPTY;
  if (a !== undefined || anti !== undefined) {
    const weighted = (terms: WeightedSpec[] | undefined): WeightedAffinityTerm[] =>
      list(terms)
        .filter((w) => typeof w.podAffinityTerm === 'object' && w.podAffinityTerm !== null)
        .map((w) => ({ term: parseTerm(pod, w.podAffinityTerm), weight: Number(w.weight) || 0 }));
    const requiredAffinity = list(a?.requiredDuringSchedulingIgnoredDuringExecution).map((t) => parseTerm(pod, t));
    const requiredAntiAffinity = list(anti?.requiredDuringSchedulingIgnoredDuringExecution).map((t) => parseTerm(pod, t));
    const preferredAffinity = weighted(a?.preferredDuringSchedulingIgnoredDuringExecution);
    const preferredAntiAffinity = weighted(anti?.preferredDuringSchedulingIgnoredDuringExecution);
    terms = {
      requiredAffinity,
      requiredAntiAffinity,
      preferredAffinity,
      preferredAntiAffinity,
      hasAffinity: true,
      hasNonHostScopedRequiredAntiAffinity: requiredAntiAffinity.some((t) => t.topologyKey !== HOSTNAME_LABEL),
      scoresOthers: requiredAffinity.length > 0 || preferredAffinity.length > 0 || preferredAntiAffinity.length > 0,
    };
  }
  parsed.set(pod, terms);
  return terms;
}

/** kube-scheduler's AffinityTerm.Matches: the pod is in one of the term's namespaces and its labels match. */
export function termMatches(term: AffinityTerm, pod: Pod, namespaceLabels: Record<string, string> | undefined): boolean {
  if (term.selector === null) return false;
  const inNamespace = term.namespaces.has(pod.metadata.namespace ?? 'default') || (term.namespaceSelector !== null && matchesLabels(term.namespaceSelector, namespaceLabels));
  return inNamespace && matchesLabels(term.selector, pod.metadata.labels);
}

/** Non-empty and the pod matches every term (affinity: one pod must satisfy them all). */
export function podMatchesAllTerms(terms: readonly AffinityTerm[], pod: Pod): boolean {
  if (terms.length === 0) return false;
  for (const t of terms) if (!termMatches(t, pod, undefined)) return false;
  return true;
}
