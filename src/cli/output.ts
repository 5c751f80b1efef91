// -o yaml|json as kubectl prints them: keys sorted at every level (Go marshals maps sorted),
// JSON indented by four spaces, YAML with list items flush with their key.
import { stringify } from 'yaml';
import type { KubeObject } from '../control/api/types/meta.js';

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(obj)
      .sort()
      .map((k) => [k, sortKeys(obj[k])]),
  );
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 4)}\n`;
}

export function toYaml(value: unknown): string {
  // YAML 1.1, as Go's yaml.v2 under kubectl: strings that 1.1 would read as something else
  // (timestamps, yes/no/on/off) are quoted.
  return stringify(sortKeys(value), { version: '1.1', indentSeq: false, lineWidth: 0 });
}

/** What -o yaml/json prints for several objects: a v1 List. */
export function asList(items: readonly KubeObject[]): Record<string, unknown> {
  return { apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } };
}
