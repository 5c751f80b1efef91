// Manifests: YAML or JSON text holding one or more objects ("---"-separated documents, or a
// kind: List), as `kubectl apply -f` reads them. A document nested deeper than the API server
// takes (api/nesting.ts) is refused here, before the CLI's recursive walks (three-way merge,
// canonical JSON) could overflow the stack on it.
import { parseAllDocuments } from 'yaml';
import { checkValueDepth, isStackOverflow, MAX_NESTING_DEPTH, NestingError } from './nesting.js';
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
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { prettyErrors: true });
  } catch (err) {
    if (isStackOverflow(err)) throw new ManifestError(new NestingError(`${source}: document 1`, MAX_NESTING_DEPTH).message);
    throw err;
  }
  (Array.isArray(docs) ? docs : [docs]).forEach((doc, i) => {
    const where = `${source}: document ${i + 1}`;
    if (doc.errors.some(isStackOverflow)) throw new ManifestError(new NestingError(where, MAX_NESTING_DEPTH).message);
    if (doc.errors.length > 0) throw new ManifestError(`${where}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
    // YAML 1.2 core schema: "yes"/"on" stay strings and timestamps stay strings, as in JSON.
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
      checkValueDepth(value, where);
    } catch (err) {
      if (err instanceof NestingError) throw new ManifestError(err.message);
      if (isStackOverflow(err)) throw new ManifestError(new NestingError(where, MAX_NESTING_DEPTH).message);
      throw err;
    }
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
