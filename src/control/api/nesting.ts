// How deeply a document may nest objects and arrays. Everything downstream of a parser (merge
// patch, defaulting, validation, copies, comparisons) walks documents recursively, so a body
// nested thousands of levels deep would end in "Maximum call stack size exceeded" (a 500) rather
// than a clear refusal. The depth is therefore checked before anything recursive sees the
// document: on the raw text for JSON (a scan, no recursion, before JSON.parse), and on the parsed
// value for YAML (a walk with an explicit stack; the YAML parser's own overflow is caught too).
//
// Go's encoding/json, which kube-apiserver decodes with, stops at 10 000 levels. Every kind Stowage
// serves is at most a few dozen levels deep, so the limit here is far lower, low enough that every
// recursive walk of the server and the CLI stays well inside Node's default stack.

/** Objects and arrays may nest this deep (the top-level object is level 1). */
export const MAX_NESTING_DEPTH = 500;

export class NestingError extends Error {
  constructor(what: string, limit: number) {
    super(`${what} is nested too deeply: more than ${limit} levels of objects and arrays`);
    this.name = 'NestingError';
  }
}

/** Throws NestingError if JSON text opens more than `limit` levels; strings are skipped, the text is not otherwise checked. */
export function checkJsonTextDepth(text: string, what: string, limit = MAX_NESTING_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > limit) throw new NestingError(what, limit);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/** Throws NestingError if a parsed value nests more than `limit` levels; walks with an explicit stack. */
export function checkValueDepth(value: unknown, what: string, limit = MAX_NESTING_DEPTH): void {
  const stack: [unknown, number][] = [[value, 1]];
  const seen = new Map<object, number>();
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (v === null || typeof v !== 'object') continue;
    if (depth > limit) throw new NestingError(what, limit);
    // YAML aliases may share a node: walk it again only when reached deeper (keeps alias bombs cheap).
    if ((seen.get(v) ?? 0) >= depth) continue;
    seen.set(v, depth);
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
}

/**
 * Whether an error is V8's stack overflow (a parser that recursed too deep), or a parser's
 * report of one (the yaml package turns it into a parse error of its own).
 */
export function isStackOverflow(err: unknown): boolean {
  return (err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err)) && /Maximum call stack size exceeded/.test(String((err as { message: unknown }).message));
}
