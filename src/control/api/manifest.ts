// Manifests: YAML or JSON text holding one or more objects ("---"-separated documents, or a
// kind: List), as `kubectl apply -f` reads them.
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from './types/meta.js';

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function asObject(value: unknown, where: string): KubeObject {
  if (!isObject(value)) throw new ManifestError(`${where} is not a mapping`);
  if (typeof value['apiVersion'] !== 'string' || value['apiVersion'] === '') throw new ManifestError(`${where} has no apiVersion`);
  if (typeof value['kind'] !== 'string' || value['kind'] === '') throw new ManifestError(`${where} has no kind`);
  if (value['metadata'] !== undefined && value['metadata'] !== null && !isObject(value['metadata'])) {
    throw new ManifestError(`${where} has a metadata that is not a mapping`);
  }
  return { ...value, metadata: isObject(value['metadata']) ? value['metadata'] : {} } as unknown as KubeObject;
}

/** Every object in the text, in order; empty documents are skipped. Throws ManifestError. */
export function parseManifests(text: string, source = 'manifest'): KubeObject[] {
  const out: KubeObject[] = [];
  parseAllDocuments(text, { prettyErrors: true }).forEach((doc, i) => {
    const where = `${source}: document ${i + 1}`;
    if (doc.errors.length > 0) throw new ManifestError(`${where}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
    // YAML 1.2 core schema: "yes"/"on" stay strings and timestamps stay strings, as in JSON.
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const obj = asObject(value, where);
    const items = obj.kind === 'List' ? (value as { items?: unknown }).items : undefined;
    if (Array.isArray(items)) items.forEach((item, j) => {
      out.push(asObject(item, `${where}, item ${j + 1}`));
    });
    else out.push(obj);
  });
  return out;
}
