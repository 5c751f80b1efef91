// Server-side field validation (?fieldValidation=Ignore|Warn|Strict), as kube-apiserver does it.
// A field the kind does not have is:
//   - Strict: refused, 400 `strict decoding error: unknown field "spec.foo"` (a create or update
//     says it as the decoder does: `Pod in version "v1" cannot be handled as a Pod: strict …`);
//   - Warn (the default): dropped, with a `Warning: 299 - "unknown field \"spec.foo\""` header;
//   - Ignore: dropped silently.
// Dropped, because decoding into Kubernetes' types keeps only the fields they have. A field given
// twice in a JSON body is a `duplicate field "metadata.name"` the same way (the last one counts).
//
// Which fields exist comes from the kinds' zod schemas; only objects marked closed
// (validation/schemas.ts: every kind's top level, ObjectMeta, PodSpec, Container, …) can have
// unknown fields. Inside the rest, everything is taken as known and kept.
import type { ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { ResourceInfo } from '../api/registry.js';
import { isClosed } from '../api/validation/schemas.js';
import { BadRequestError } from '../store/errors.js';
import type { FieldValidation } from './write-options.js';

interface Definition {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  getter?: () => z.ZodType;
}

function definition(schema: z.ZodType): Definition {
  return schema.def as unknown as Definition;
}

/** The schema under optional/default/pipe/lazy wrappers, and whether any layer is closed. */
function unwrap(schema: z.ZodType): { schema: z.ZodType; closed: boolean } {
  let current = schema;
  let closed = isClosed(current);
  for (;;) {
    const def = definition(current);
    const next = def.innerType ?? def.in ?? def.getter?.();
    if (next === undefined) return { schema: current, closed };
    current = next;
    closed ||= isClosed(current);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The paths ("spec.foo", "spec.containers[0].bar") of fields the schema says the kind lacks, in
 * document order; with `drop`, they are also removed from the value.
 */
export function unknownFields(schema: z.ZodType, value: unknown, drop = false, path = ''): string[] {
  const { schema: inner, closed } = unwrap(schema);
  const def = definition(inner);
  const out: string[] = [];
  if (def.type === 'array' && def.element !== undefined && Array.isArray(value)) {
    const element = def.element;
    value.forEach((item, i) => {
      out.push(...unknownFields(element, item, drop, `${path}[${i}]`));
    });
  } else if (def.type === 'object' && def.shape !== undefined && isObject(value)) {
    const shape = def.shape;
    for (const [k, v] of Object.entries(value)) {
      const fieldPath = path === '' ? k : `${path}.${k}`;
      const field = Object.hasOwn(shape, k) ? shape[k] : undefined;
      if (field !== undefined) out.push(...unknownFields(field, v, drop, fieldPath));
      else if (closed) {
        out.push(fieldPath);
        if (drop) delete value[k];
      }
    }
  }
  return out;
}

interface ObjectFrame {
  kind: 'object';
  path: string;
  keys: Set<string>;
  expectKey: boolean;
  lastKey: string;
}

interface ArrayFrame {
  kind: 'array';
  path: string;
  index: number;
}

/**
 * The paths of members given more than once in a JSON text (already known to be valid JSON), in
 * document order. One pass over the text, whatever it holds.
 */
export function duplicateFields(text: string): string[] {
  const out: string[] = [];
  const stack: (ObjectFrame | ArrayFrame)[] = [];
  const valuePath = (): string => {
    const top = stack.at(-1);
    if (top === undefined) return '';
    if (top.kind === 'array') return `${top.path}[${top.index}]`;
    return top.path === '' ? top.lastKey : `${top.path}.${top.lastKey}`;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      let escaped = false;
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\') {
          escaped = true;
          i++;
        }
      }
      const top = stack.at(-1);
      if (top?.kind === 'object' && top.expectKey) {
        const key = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
        top.expectKey = false;
        top.lastKey = key;
        if (top.keys.has(key)) out.push(valuePath());
        top.keys.add(key);
      }
    } else if (c === '{') {
      stack.push({ kind: 'object', path: valuePath(), keys: new Set(), expectKey: true, lastKey: '' });
    } else if (c === '[') {
      stack.push({ kind: 'array', path: valuePath(), index: 0 });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack.at(-1);
      if (top?.kind === 'array') top.index++;
      else if (top?.kind === 'object') top.expectKey = true;
    }
  }
  return out;
}

/**
 * Applies the directive to an object about to be written: throws for Strict; otherwise drops the
 * unknown fields and returns the warnings to send (none for Ignore). `decoded` names the kind for
 * a request body (create, update), whose error then says it could not be handled as that kind; a
 * patch's error does not. `duplicates` are duplicateFields() of the body.
 */
export function checkFields(schema: z.ZodType, obj: unknown, directive: FieldValidation, decoded?: ResourceInfo, duplicates: readonly string[] = []): string[] {
  const problems = [
    ...duplicates.map((p) => `duplicate field ${JSON.stringify(p)}`),
    ...unknownFields(schema, obj, directive !== 'Strict').map((p) => `unknown field ${JSON.stringify(p)}`),
  ];
  if (problems.length === 0 || directive === 'Ignore') return [];
  if (directive === 'Strict') {
    const prefix = decoded === undefined ? '' : `${decoded.kind} in version ${JSON.stringify(decoded.version)} cannot be handled as a ${decoded.kind}: `;
    throw new BadRequestError(`${prefix}strict decoding error: ${problems.join(', ')}`);
  }
  return problems;
}

/** Sets the Warning headers (code 299, as kube-apiserver sends them) on a response about to be sent. */
export function setWarnings(res: ServerResponse, warnings: readonly string[]): void {
  if (warnings.length > 0) res.setHeader('Warning', warnings.map((w) => `299 - ${JSON.stringify(w)}`));
}
