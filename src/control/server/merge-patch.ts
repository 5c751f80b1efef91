// JSON merge patch (RFC 7386), which is also how Stowage applies strategic merge patches: a list
// in the patch replaces the whole list, and strategic-merge directives ("$patch",
// "$setElementOrder/…", "$retainKeys", "$deleteFromPrimitiveList/…") are refused rather than
// half-applied.

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

/** The first strategic-merge directive in a patch, if any. */
export function findDirective(patch: unknown): string | undefined {
  if (Array.isArray(patch)) {
    for (const item of patch) {
      const found = findDirective(item);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isObject(patch)) return undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) return k;
    const found = findDirective(v);
    if (found !== undefined) return found;
  }
  return undefined;
}
