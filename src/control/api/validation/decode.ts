// Structural decoding: checks the JSON types of the fields a kind declares (with zod) and turns
// each mismatch into a Kubernetes-style field error. Values are not changed and unknown fields
// are kept; semantic checks (formats, required fields, enums) come after, in each kind's validator.
import type { z } from 'zod';
import { child, type FieldError, required, typeInvalid } from './field-errors.js';

/** The parts of a zod definition needed to follow a path through a schema. */
interface Definition {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  getter?: () => z.ZodType;
}

function definition(schema: z.ZodType): Definition {
  return schema.def as unknown as Definition;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    const def = definition(current);
    const next = def.innerType ?? def.in ?? def.getter?.();
    if (next === undefined) return current;
    current = next;
  }
}

/**
 * Renders a zod issue path as a Kubernetes field path. Map keys are written [key] and struct
 * fields .name, which needs the schema: both are strings in the path.
 */
function fieldPath(schema: z.ZodType, path: readonly PropertyKey[]): string {
  let out = '';
  let current: z.ZodType | undefined = schema;
  for (const segment of path) {
    const def: Definition | undefined = current === undefined ? undefined : definition(unwrap(current));
    if (typeof segment === 'number') {
      out += `[${segment}]`;
      current = def?.type === 'array' ? def.element : undefined;
    } else if (def?.type === 'record') {
      out += `[${String(segment)}]`;
      current = def.valueType;
    } else {
      out = child(out, String(segment));
      current = def?.type === 'object' ? def.shape?.[String(segment)] : undefined;
    }
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

/** Field errors for every type mismatch of input against schema; empty when it decodes. */
export function decode(schema: z.ZodType, input: unknown): FieldError[] {
  const result = schema.safeParse(input);
  if (result.success) return [];
  return result.error.issues.map((issue) => {
    const field = fieldPath(schema, issue.path);
    const value = valueAt(input, issue.path);
    if (value === undefined) return required(field);
    if (issue.code === 'invalid_type') return typeInvalid(field, value, `must be of type ${issue.expected}`);
    return typeInvalid(field, value, issue.message);
  });
}
