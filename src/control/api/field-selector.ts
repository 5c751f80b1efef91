// Field selectors (?fieldSelector=spec.nodeName=node-1,status.phase!=Bound). As in Kubernetes,
// only some fields may be selected on, per resource: metadata.name and metadata.namespace
// everywhere, plus the resource's own list in the registry. A missing field reads as "".
import { SelectorError } from './label-selector.js';
import type { ResourceInfo } from './registry.js';
import type { KubeObject } from './types/meta.js';

export interface FieldRequirement {
  field: string;
  operator: 'Equals' | 'NotEquals';
  value: string;
}

const COMMON_FIELDS = ['metadata.name', 'metadata.namespace'];
/** Checked in this order at every position, so "a==b" is "a" == "b", not "a" = "=b". */
const OPERATORS = ['!=', '==', '='] as const;

/** Splits on commas not escaped by a backslash (the backslash stays, for unescapeValue). */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (escaped) escaped = false;
    else if (ch === '\\') escaped = true;
    else if (ch === ',') {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

/** Splits a term at the first operator; the field side knows no escaping. */
function splitTerm(term: string): [string, (typeof OPERATORS)[number], string] | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const op of OPERATORS) if (term.startsWith(op, i)) return [term.slice(0, i), op, term.slice(i + op.length)];
  }
  return undefined;
}

/** A value with "\\", "\\," and "\\=" escapes; a bare "," or "=" is an error, as in Kubernetes. */
function unescapeValue(value: string): string {
  if (!/[\\,=]/.test(value)) return value;
  let out = '';
  let escaped = false;
  for (const ch of value) {
    if (escaped) {
      if (ch !== '\\' && ch !== ',' && ch !== '=') throw new SelectorError(`invalid field selector: invalid escape sequence: \\${ch}`);
      out += ch;
      escaped = false;
    } else if (ch === '\\') {
      escaped = true;
    } else if (ch === ',' || ch === '=') {
      // Go prints the rune with %v: its code point.
      throw new SelectorError(`invalid field selector: unescaped character in value: ${ch.codePointAt(0) ?? 0}`);
    } else {
      out += ch;
    }
  }
  if (escaped) throw new SelectorError('invalid field selector: invalid escape sequence: \\');
  return out;
}

/**
 * Parses a field selector exactly as fields.ParseSelector does (terms split on unescaped commas,
 * empty terms skipped, no trimming), then checks every field against what the resource supports
 * ("field label not supported: X", as the API server's field label conversion answers).
 */
export function parseFieldSelector(text: string | undefined, resource: ResourceInfo): FieldRequirement[] {
  if (text === undefined || text === '') return [];
  const requirements: FieldRequirement[] = [];
  for (const term of splitTerms(text).sort()) {
    if (term === '') continue;
    const split = splitTerm(term);
    if (split === undefined) throw new SelectorError(`invalid selector: '${text}'; can't understand '${term}'`);
    const [field, op, raw] = split;
    requirements.push({ field, operator: op === '!=' ? 'NotEquals' : 'Equals', value: unescapeValue(raw) });
  }
  for (const { field } of requirements) {
    if (!COMMON_FIELDS.includes(field) && !resource.fieldSelectors.includes(field)) throw new SelectorError(`field label not supported: ${field}`);
  }
  return requirements;
}

/** The selectable string value of a dotted field path: scalars as text, anything else "". */
export function fieldValue(obj: KubeObject, field: string): string {
  let current: unknown = obj;
  for (const part of field.split('.')) {
    if (current === null || typeof current !== 'object') return '';
    current = (current as Record<string, unknown>)[part];
  }
  return typeof current === 'string' || typeof current === 'number' || typeof current === 'boolean' ? String(current) : '';
}

export function matchesFields(requirements: readonly FieldRequirement[], obj: KubeObject): boolean {
  return requirements.every((r) => (fieldValue(obj, r.field) === r.value) === (r.operator === 'Equals'));
}
