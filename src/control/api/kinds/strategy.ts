// A kind's strategy, in the sense of the Kubernetes API server's registry strategies: how its
// objects are decoded, defaulted, prepared and validated. Metadata rules are shared (meta.ts).
import type { z } from 'zod';
import type { KubeObject } from '../types/meta.js';
import type { FieldError } from '../validation/field-errors.js';

export interface KindStrategy<T extends KubeObject = KubeObject> {
  /** The JSON types of the kind's known fields (decode.ts). */
  schema: z.ZodType;
  /** The name format; RFC 1123 subdomain when absent. */
  nameCheck?: (name: string) => string[];
  /** Clears what a client may not choose at creation (usually status) and sets initial state. */
  prepareForCreate?(obj: T): void;
  /** Restores what a main update may not change beyond status (e.g. a namespace's spec.finalizers). */
  prepareForUpdate?(obj: T, old: T): void;
  /** Kubernetes' defaulting; runs on every write, before validation. */
  defaults?(obj: T): void;
  /** The kind's own fields; runs on every write. */
  validate(obj: T): FieldError[];
  /** Immutability and transition rules; runs on updates after validate. */
  validateUpdate?(obj: T, old: T): FieldError[];
}

/**
 * Erases the object type so strategies of all kinds fit one table. Sound because every
 * strategy function runs only after its schema has decoded the object.
 */
export function defineStrategy<T extends KubeObject>(strategy: KindStrategy<T>): KindStrategy {
  return strategy as unknown as KindStrategy;
}
