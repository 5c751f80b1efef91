// Label selectors in both Kubernetes forms: the string syntax of ?labelSelector= and kubectl -l
// ("app=web,tier!=db,env in (a,b),!legacy"), and the structured LabelSelector of PVC
// spec.selector (matchLabels + matchExpressions). Both become a list of requirements.
import type { LabelSelector, LabelSelectorOperator } from './types/meta.js';

export interface LabelRequirement {
  key: string;
  operator: LabelSelectorOperator | 'Equals' | 'NotEquals' | 'GreaterThan' | 'LessThan';
  values: string[];
}

export class SelectorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectorError';
  }
}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Splits on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  terms.push(current);
  return terms.map((t) => t.trim());
}

function checkKey(key: string, term: string): string {
  // A qualified name: an optional DNS-subdomain prefix (at most 253) and a name of at most 63.
  const slash = key.lastIndexOf('/');
  const tooLong = key.length - slash - 1 > 63 || slash > 253;
  if (!KEY.test(key) || tooLong) throw new SelectorError(`unable to parse requirement: invalid label key "${key}" in "${term}"`);
  return key;
}

function checkValue(value: string, term: string): string {
  if (!VALUE.test(value) || value.length > 63) {
    throw new SelectorError(`unable to parse requirement: invalid label value "${value}" in "${term}"`);
  }
  return value;
}

function parseTerm(term: string): LabelRequirement {
  if (term.startsWith('!')) return { key: checkKey(term.slice(1).trim(), term), operator: 'DoesNotExist', values: [] };
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
  if (set) {
    if ((set[3] ?? '').trim() === '') throw new SelectorError(`unable to parse requirement: for 'in', 'notin' operators, values set can't be empty in "${term}"`);
    const values = (set[3] ?? '').split(',').map((v) => checkValue(v.trim(), term));
    return { key: checkKey(set[1] ?? '', term), operator: set[2] === 'in' ? 'In' : 'NotIn', values };
  }
  const cmp = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
  if (cmp) {
    const value = checkValue((cmp[3] ?? '').trim(), term);
    return { key: checkKey(cmp[1] ?? '', term), operator: cmp[2] === '!=' ? 'NotEquals' : 'Equals', values: [value] };
  }
  // "key>N" / "key<N": Kubernetes' Gt and Lt, for integer label values.
  const order = /^([^=!<>\s]+)\s*(>|<)\s*(.*)$/.exec(term);
  if (order) {
    const value = (order[3] ?? '').trim();
    if (!/^[+-]?[0-9]+$/.test(value)) throw new SelectorError(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer in "${term}"`);
    return { key: checkKey(order[1] ?? '', term), operator: order[2] === '>' ? 'GreaterThan' : 'LessThan', values: [value] };
  }
  return { key: checkKey(term, term), operator: 'Exists', values: [] };
}

/** Parses the string form; an empty or absent selector selects everything. */
export function parseLabelSelector(text: string | undefined): LabelRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  return splitTerms(text).map((term) => {
    if (term === '') throw new SelectorError(`unable to parse requirement: found an empty term in "${text}"`);
    return parseTerm(term);
  });
}

/** The requirements of a structured selector; an empty selector selects everything. */
function requirementsOf(selector: LabelSelector): LabelRequirement[] {
  const fromLabels = Object.entries(selector.matchLabels ?? {}).map(([key, value]): LabelRequirement => ({ key, operator: 'Equals', values: [value] }));
  const fromExpressions = (selector.matchExpressions ?? []).map((e): LabelRequirement => ({ key: e.key, operator: e.operator, values: e.values ?? [] }));
  return [...fromLabels, ...fromExpressions];
}

function satisfies(req: LabelRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, req.key);
  const value = labels[req.key];
  switch (req.operator) {
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Equals':
    case 'In':
      return has && req.values.includes(value ?? '');
    case 'NotEquals':
    case 'NotIn':
      return !has || !req.values.includes(value ?? '');
    case 'GreaterThan':
    case 'LessThan': {
      // Only labels whose value is an integer can match, as in Kubernetes.
      if (!has || !/^[+-]?[0-9]+$/.test(value ?? '')) return false;
      const [a, b] = [BigInt(value ?? '0'), BigInt(req.values[0] ?? '0')];
      return req.operator === 'GreaterThan' ? a > b : a < b;
    }
  }
}

export function matchesLabels(requirements: readonly LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  return requirements.every((r) => satisfies(r, labels ?? {}));
}

/** Whether a structured selector (e.g. a PVC's spec.selector) selects an object with these labels. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  return matchesLabels(requirementsOf(selector), labels);
}

/**
 * A structured selector as text, as apimachinery's LabelSelectorAsSelector(...).String() writes
 * it ("app=web,tier in (a,b)"): requirements sorted by key, values sorted. Scale's status.selector
 * and kubectl's SELECTOR columns.
 */
export function selectorString(selector: LabelSelector | undefined): string {
  if (selector === undefined) return '';
  const parts: [string, string][] = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => [k, `${k}=${v}`]);
  for (const e of selector.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(',');
    const text = e.operator === 'In' ? `${e.key} in (${values})` : e.operator === 'NotIn' ? `${e.key} notin (${values})` : e.operator === 'Exists' ? e.key : `!${e.key}`;
    parts.push([e.key, text]);
  }
  return parts
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, t]) => t)
    .join(',');
}
