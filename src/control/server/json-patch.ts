// JSON patch (RFC 6902, application/json-patch+json), as kube-apiserver applies it through
// evanphx/json-patch: add, remove, replace, move, copy and test on JSON pointers (RFC 6901: "~1" is
// "/", "~0" is "~", "-" appends to an array). Kubernetes' answers: a body that is not a list of
// operations is a 400; more than MAX_OPERATIONS operations a 413; any operation that does not
// apply (a failed test, a missing path, an unknown op) a 422 whose message is the API server's
// fixed "the server rejected our request due to an error in our request".
//
// Hostile input is bounded: at most MAX_OPERATIONS operations, each walking one pointer, and
// copies may add at most MAX_COPY_BYTES in total (a chain of copies doubling a value would
// otherwise grow the document exponentially).
import { isDeepStrictEqual } from 'node:util';
import { ApiError, BadRequestError } from '../store/errors.js';

/** kube-apiserver's maxJSONPatchOperations. */
export const MAX_OPERATIONS = 10_000;
/** What copy operations may add to a document, in bytes of JSON (the request body limit). */
export const MAX_COPY_BYTES = 3 * 1024 * 1024;

export interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

/** Why an operation does not apply (the detail evanphx/json-patch gives; the client sees 422). */
export class JsonPatchError extends Error {}

/** The 422 kube-apiserver answers for a patch that does not apply. */
export class PatchNotAppliedError extends ApiError {
  constructor(readonly why: string) {
    super(422, 'Invalid', 'the server rejected our request due to an error in our request', {});
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Checks the shape of a decoded body: a list of objects whose members have the right JSON types. */
export function decodeJsonPatch(body: unknown): Operation[] {
  if (!Array.isArray(body)) throw new BadRequestError(`json: cannot unmarshal ${body === null ? 'null' : typeof body === 'object' ? 'object' : typeof body} into Go value of type jsonpatch.Patch`);
  if (body.length > MAX_OPERATIONS) {
    throw new ApiError(413, 'RequestEntityTooLarge', `The allowed maximum operations in a JSON patch is ${MAX_OPERATIONS}, got ${body.length}`);
  }
  return body.map((raw: unknown) => {
    if (!isObject(raw)) throw new BadRequestError(`json: cannot unmarshal ${Array.isArray(raw) ? 'array' : typeof raw} into Go value of type jsonpatch.Operation`);
    // A missing path is not the document's root (""): it is no pointer at all, and fails to apply.
    const op: Operation = { op: typeof raw.op === 'string' ? raw.op : '', path: typeof raw.path === 'string' ? raw.path : '(missing path)' };
    if (typeof raw.from === 'string') op.from = raw.from;
    if (Object.hasOwn(raw, 'value')) op.value = raw.value;
    return op;
  });
}

/** A JSON pointer's reference tokens, unescaped. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new JsonPatchError(`doc is missing path: ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/**
 * An array index token. As evanphx/json-patch (which kube-apiserver uses with its default of
 * negative indices on), "-n" counts from the end.
 */
function arrayIndex(token: string, length: number, forInsert: boolean, pointer: string): number {
  if (forInsert && token === '-') return length;
  if (!/^-?(0|[1-9][0-9]*)$/.test(token)) throw new JsonPatchError(`Unable to access invalid index: ${token}: ${pointer}`);
  let i = Number(token);
  if (i < 0) {
    if (i < -length) throw new JsonPatchError(`Unable to access invalid index: ${i}: ${pointer}`);
    i += length;
  }
  if (i > length || (!forInsert && i === length)) throw new JsonPatchError(`Unable to access invalid index: ${i}: ${pointer}`);
  return i;
}

/** The container holding the pointer's last token, and that token. */
function parentOf(doc: unknown, pointer: string): { parent: Record<string, unknown> | unknown[]; last: string } {
  const tokens = parsePointer(pointer);
  const last = tokens.pop();
  if (last === undefined) throw new JsonPatchError('doc is missing path: ""');
  let current: unknown = doc;
  for (const token of tokens) {
    if (Array.isArray(current)) current = current[arrayIndex(token, current.length, false, pointer)];
    else if (isObject(current) && Object.hasOwn(current, token)) current = current[token];
    else throw new JsonPatchError(`doc is missing path: ${JSON.stringify(pointer)}`);
  }
  if (!Array.isArray(current) && !isObject(current)) throw new JsonPatchError(`doc is missing path: ${JSON.stringify(pointer)}`);
  return { parent: current, last };
}

function setMember(obj: Record<string, unknown>, key: string, value: unknown): void {
  // "__proto__" is a member like any other, never the prototype.
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function get(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(last, parent.length, false, pointer)];
  if (!Object.hasOwn(parent, last)) throw new JsonPatchError(`doc is missing key: ${pointer}`);
  return parent[last];
}

function add(doc: unknown, pointer: string, value: unknown): unknown {
  if (pointer === '') return value;
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, true, pointer), 0, value);
  else setMember(parent, last, value);
  return doc;
}

function remove(doc: unknown, pointer: string): unknown {
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, false, pointer), 1);
  else if (Object.hasOwn(parent, last)) delete parent[last];
  else throw new JsonPatchError(`Unable to remove nonexistent key: ${last}: missing value`);
  return doc;
}

function replace(doc: unknown, pointer: string, value: unknown): unknown {
  if (pointer === '') return value;
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent[arrayIndex(last, parent.length, false, pointer)] = value;
  else if (Object.hasOwn(parent, last)) setMember(parent, last, value);
  else throw new JsonPatchError(`Unable to replace nonexistent key: ${last}: missing value`);
  return doc;
}

function required(op: Operation, field: 'value' | 'from'): unknown {
  if (!Object.hasOwn(op, field)) throw new JsonPatchError(`${op.op} operation missing ${field}`);
  return op[field];
}

/** Applies the operations, in order, to a copy of doc; doc itself is not changed. */
export function applyJsonPatch(doc: unknown, operations: readonly Operation[]): unknown {
  let out = structuredClone(doc);
  let copied = 0;
  try {
    for (const op of operations) {
      switch (op.op) {
        case 'add':
          out = add(out, op.path, structuredClone(required(op, 'value')));
          break;
        case 'remove':
          out = remove(out, op.path);
          break;
        case 'replace':
          out = replace(out, op.path, structuredClone(required(op, 'value')));
          break;
        case 'move': {
          const from = required(op, 'from') as string;
          if (op.path === from) break;
          if (op.path.startsWith(`${from}/`)) throw new JsonPatchError(`Unable to move ${from} into its own child ${op.path}`);
          const value = get(out, from);
          out = add(remove(out, from), op.path, value);
          break;
        }
        case 'copy': {
          const value = get(out, required(op, 'from') as string);
          copied += JSON.stringify(value)?.length ?? 0;
          if (copied > MAX_COPY_BYTES) {
            throw new JsonPatchError(`Unable to complete the copy, the accumulated size increase of copy is ${copied}, exceeding the limit ${MAX_COPY_BYTES}`);
          }
          out = add(out, op.path, structuredClone(value));
          break;
        }
        case 'test': {
          const expected = required(op, 'value');
          let actual: unknown;
          try {
            actual = get(out, op.path);
          } catch {
            actual = undefined;
          }
          if (!(actual === undefined ? expected === null : isDeepStrictEqual(actual, expected))) throw new JsonPatchError(`testing value ${op.path} failed: test failed`);
          break;
        }
        default:
          throw new JsonPatchError(`Unexpected kind: ${op.op}`);
      }
    }
  } catch (err) {
    if (err instanceof JsonPatchError) throw new PatchNotAppliedError(err.message);
    throw err;
  }
  return out;
}
