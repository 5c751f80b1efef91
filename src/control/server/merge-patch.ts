// JSON merge patch (RFC 7386, application/merge-patch+json): maps merge recursively, null
// deletes a member, and anything else (lists included) replaces what was there. Strategic merge
// patch, which merges lists, is strategic-merge-patch.ts.

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    // A "__proto__" member is a member like any other (assigning it would set the prototype and
    // lose it, so that validation never saw it).
    else Object.defineProperty(out, k, { value: mergePatch(Object.hasOwn(out, k) ? out[k] : undefined, v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
