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

/** Splits on unescaped commas; "\," "\=" and "\\" stand for themselves. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? '';
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + (text[i + 1] ?? '');
      i += 1;
    } else if (ch === separator) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

function unescapeSelector(text: string): string {
  return text.replace(/\\(.)/g, '$1');
}

export function parseFieldSelector(text: string | undefined, resource: ResourceInfo): FieldRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  return splitUnescaped(text, ',').map((term) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(term.trim());
    if (!m) throw new SelectorError(`invalid field selector: "${term}"; expected field=value or field!=value`);
    const field = (m[1] ?? '').trim();
    if (!COMMON_FIELDS.includes(field) && !resource.fieldSelectors.includes(field)) {
      const allowed = [...COMMON_FIELDS, ...resource.fieldSelectors].map((f) => `"${f}"`).join(', ');
      throw new SelectorError(`field label not supported: "${field}" is not a known field selector for ${resource.plural}: only ${allowed}`);
    }
    return { field, operator: m[2] === '!=' ? 'NotEquals' : 'Equals', value: unescapeSelector(m[3] ?? '') };
  });
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
