// The verbs on resources: list/watch and create on collections; get, update (PUT), patch and
// delete on items and their /status; POST on a pod's /binding; /scale (scale.ts). Writes take ?dryRun=All and
// ?fieldValidation (write-options.ts, field-validation.ts); patches come as JSON merge patch,
// strategic merge patch (built-in kinds only, as upstream) or JSON patch. Request objects, and
// patched ones, are checked against the URL (kind, name, namespace) before the store sees them.
// Lists page with ?limit and ?continue (store/continue-token.ts); query parameters and
// DeleteOptions are read as kube-apiserver reads them, a malformed one being a 400 (query.ts).
// Reads answer as the Accept header asks: a meta.k8s.io Table (what kubectl get prints),
// PartialObjectMetadata (client-go's metadata client), or the objects themselves; ?pretty indents them.
//
// Every answer waits for store.flushed(): a write is acknowledged only once it is durable, and a
// read never shows a client a write that a crash could still take back (the store commits in
// groups, see store.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { buildTable, INCLUDE_OBJECT_VALUES, type IncludeObject } from '../api/printers/table.js';
import type { ResourceInfo } from '../api/registry.js';
import type { KubeList, KubeObject } from '../api/types/meta.js';
import { ApiError, BadRequestError, MethodNotAllowedError, NotFoundError, TooLargeResourceVersionError, UnsupportedMediaTypeError } from '../store/errors.js';
import { parseBinding } from '../store/binding.js';
import type { Store } from '../store/store.js';
import { APPLY_PATCH, applyPatch, trackUpdate, updateManager } from './apply/field-manager.js';
import { bodyTypesFor, type ConversionKind, conversion, isPretty, mediaType, parseBody, readBody, sendJson } from './http-io.js';
import { patchMetaFor, supportsStrategicMerge } from '../api/patch-meta.js';
import { strategyFor } from '../api/kinds/strategies.js';
import { checkFields, duplicateFields, setWarnings } from './field-validation.js';
import { applyJsonPatch, decodeJsonPatch } from './json-patch.js';
import { mergePatch } from './merge-patch.js';
import { strategicMergePatch } from './strategic-merge-patch.js';
import { type FieldValidation, writeQuery } from './write-options.js';
import { boolParam, deleteOptions, intParam, listResourceVersion, type ResourceVersionMatch, resourceVersionMatch } from './query.js';
import type { Route } from './routes.js';
import { handleScale } from './scale.js';
import type { WatchStreams } from './watch-stream.js';

type CollectionRoute = Extract<Route, { type: 'collection' }>;
type ItemRoute = Extract<Route, { type: 'item' }>;

const MERGE_PATCH = 'application/merge-patch+json';
const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';
const PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH];
/** What kube-apiserver takes for custom resources: no strategic merge patch. */
const CUSTOM_RESOURCE_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH];

export interface HandlerContext {
  store: Store;
  watches: WatchStreams;
}

/** Sends the answer once everything it may reflect is committed. */
async function reply(store: Store, res: ServerResponse, code: number, body: unknown): Promise<void> {
  await store.flushed();
  sendJson(res, code, body);
}

/**
 * A read's answer: a meta.k8s.io Table when the Accept header asks for one, the objects' metadata
 * alone (PartialObjectMetadata[List], as client-go's metadata client asks), else the objects.
 */
interface ReadFormat {
  table: { apiVersion: string; includeObject: IncludeObject } | undefined;
  /** The apiVersion of PartialObjectMetadata answers. */
  partial: string | undefined;
  pretty: boolean;
}

function readFormat(req: IncomingMessage, query: URLSearchParams, allowed: readonly ConversionKind[]): ReadFormat {
  const pretty = isPretty(query);
  const asked = conversion(req, allowed);
  if (asked === undefined) return { table: undefined, partial: undefined, pretty };
  if (asked.as !== 'Table') return { table: undefined, partial: asked.apiVersion, pretty };
  const include = query.get('includeObject') || 'Metadata';
  if (!INCLUDE_OBJECT_VALUES.includes(include as IncludeObject)) throw new BadRequestError(`unrecognized includeObject value: ${JSON.stringify(include)}`);
  return { table: { apiVersion: asked.apiVersion, includeObject: include as IncludeObject }, partial: undefined, pretty };
}

function partialObject(obj: KubeObject, apiVersion: string): object {
  return { kind: 'PartialObjectMetadata', apiVersion, metadata: obj.metadata };
}

/** Sends a read's answer once what it reflects is committed. */
async function replyRead(store: Store, res: ServerResponse, body: unknown, format: ReadFormat): Promise<void> {
  await store.flushed();
  sendJson(res, 200, body, {}, format.pretty);
}

/** How long a list waits for the store to reach a resourceVersion it asks for, as kube-apiserver's watch cache. */
const TOO_LARGE_WAIT_MS = 3000;

/**
 * Where a list with ?resourceVersionMatch reads: NotOlderThan N waits (3 s at most) for the store
 * to reach N, then reads now; Exact N reads the snapshot at N (from the event log, through the
 * same path as a continued list: a continue token at N from the start), 410 once the log no
 * longer reaches back that far.
 */
async function versionedRead(store: Store, match: ResourceVersionMatch | undefined, resourceVersion: string | undefined): Promise<string | undefined> {
  if (match === undefined || resourceVersion === undefined || resourceVersion === '' || resourceVersion === '0') return undefined;
  const wanted = Number(resourceVersion);
  const deadline = Date.now() + TOO_LARGE_WAIT_MS;
  while (Number(store.resourceVersion) < wanted) {
    if (Date.now() >= deadline) throw new TooLargeResourceVersionError(wanted, Number(store.resourceVersion));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (match !== 'Exact' || wanted === Number(store.resourceVersion)) return undefined;
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: wanted, start: '\u0000' })).toString('base64url');
}

function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

/** The body as an object whose metadata is an object, as decoding into a Go struct demands. */
function asObject(body: unknown): KubeObject {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('the request body must be a JSON object');
  const obj = body as KubeObject;
  const metadata: unknown = obj.metadata;
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    throw new BadRequestError(`json: cannot unmarshal ${typeName(metadata)} into Go struct field .metadata of type v1.ObjectMeta`);
  }
  obj.metadata ??= {};
  return obj;
}

/** The body must be of the URL's kind, in the URL's namespace; a missing namespace is filled in. */
function checkAgainstUrl(obj: KubeObject, resource: ResourceInfo, namespace: string | undefined): void {
  if (obj.apiVersion !== resource.apiVersion || obj.kind !== resource.kind) {
    throw new BadRequestError(`the API version in the data (${obj.apiVersion}) and kind (${obj.kind}) do not match the URL's ${resource.apiVersion} ${resource.kind}`);
  }
  if (namespace === undefined) return;
  if (obj.metadata.namespace && obj.metadata.namespace !== namespace) {
    throw new BadRequestError('the namespace of the provided object does not match the namespace sent on the request');
  }
  obj.metadata.namespace = namespace;
}

/** Members given twice in a JSON body (YAML bodies with them do not parse at all). */
function jsonDuplicates(req: IncomingMessage, body: Buffer, directive: FieldValidation): string[] {
  return directive === 'Ignore' || mediaType(req) !== 'application/json' ? [] : duplicateFields(body.toString('utf8'));
}

export async function handleCollection(ctx: HandlerContext, r: CollectionRoute, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const { store } = ctx;
  const namespace = r.namespace;
  if (req.method === 'GET') {
    const options = {
      ...(namespace === undefined ? {} : { namespace }),
      ...(query.has('labelSelector') ? { labelSelector: query.get('labelSelector') ?? '' } : {}),
      ...(query.has('fieldSelector') ? { fieldSelector: query.get('fieldSelector') ?? '' } : {}),
    };
    const watch = boolParam(query, 'watch');
    const format = readFormat(req, query, watch ? ['Table', 'PartialObjectMetadata'] : ['Table', 'PartialObjectMetadataList']);
    const match = resourceVersionMatch(query, watch);
    if (watch) {
      const timeout = intParam(query, 'timeoutSeconds');
      const resourceVersion = query.get('resourceVersion');
      const table = format.table;
      // As kube-apiserver: each event's object is a one-row Table; only the first carries the columns.
      const partial = format.partial;
      const transform =
        table !== undefined
          ? (obj: KubeObject, first: boolean) => {
              const t = buildTable(r.resource, [obj], { ...table, metadata: { resourceVersion: obj.metadata.resourceVersion ?? '' } });
              return first ? t : { ...t, columnDefinitions: [] };
            }
          : partial !== undefined
            ? (obj: KubeObject) => partialObject(obj, partial)
            : undefined;
      // A bookmark's object: the kind (or an empty Table) with only metadata.resourceVersion.
      const bookmark = !boolParam(query, 'allowWatchBookmarks')
        ? undefined
        : (rv: string) =>
            table !== undefined
              ? { kind: 'Table', apiVersion: table.apiVersion, metadata: { resourceVersion: rv }, columnDefinitions: [], rows: [] }
              : partial !== undefined
                ? { kind: 'PartialObjectMetadata', apiVersion: partial, metadata: { resourceVersion: rv } }
                : { kind: r.resource.kind, apiVersion: r.resource.apiVersion, metadata: { resourceVersion: rv } };
      const stream = { ...(transform === undefined ? {} : { transform }), ...(bookmark === undefined ? {} : { bookmark }) };
      ctx.watches.serve(store, r.resource, { ...options, ...(resourceVersion === null ? {} : { resourceVersion }) }, timeout, res, stream);
      return;
    }
    const limit = intParam(query, 'limit');
    const resourceVersion = listResourceVersion(query);
    const exactAt = await versionedRead(store, match, resourceVersion);
    const listOptions = {
      ...options,
      ...(limit === undefined ? {} : { limit }),
      ...(query.get('continue') ? { continue: query.get('continue') ?? '' } : {}),
      ...(resourceVersion === undefined || exactAt !== undefined ? {} : { resourceVersion }),
      ...(exactAt === undefined ? {} : { continue: exactAt }),
    };
    let list: ReturnType<Store['list']>;
    try {
      list = store.list(r.resource.plural, listOptions);
    } catch (err) {
      if (exactAt !== undefined && err instanceof ApiError && err.code === 410) throw new ApiError(410, 'Expired', 'The resourceVersion for the provided list is too old.');
      throw err;
    }
    const metadata = {
      resourceVersion: list.resourceVersion,
      ...(list.continue === undefined ? {} : { continue: list.continue }),
      ...(list.remainingItemCount === undefined ? {} : { remainingItemCount: list.remainingItemCount }),
    };
    if (format.table !== undefined) {
      await replyRead(store, res, buildTable(r.resource, list.items, { ...format.table, metadata }), format);
      return;
    }
    if (format.partial !== undefined) {
      const partial = format.partial;
      await replyRead(store, res, { kind: 'PartialObjectMetadataList', apiVersion: partial, metadata, items: list.items.map((o) => partialObject(o, partial)) }, format);
      return;
    }
    const body: KubeList = { apiVersion: r.resource.apiVersion, kind: `${r.resource.kind}List`, metadata, items: list.items };
    await replyRead(store, res, body, format);
    return;
  }
  if (req.method === 'POST') {
    const options = writeQuery(query, 'CreateOptions');
    const body = await readBody(req);
    const obj = asObject(parseBody(body, mediaType(req), bodyTypesFor(r.resource.apiVersion, r.resource.kind)));
    checkAgainstUrl(obj, r.resource, namespace);
    const manageFields = trackUpdate(r.resource, updateManager('CreateOptions', query, req.headers['user-agent']));
    const warnings = checkFields(strategyFor(r.resource).schema, obj, options.fieldValidation, r.resource, jsonDuplicates(req, body, options.fieldValidation));
    const created = store.create(obj, { dryRun: options.dryRun, manageFields });
    setWarnings(res, warnings);
    await reply(store, res, 201, created);
    return;
  }
  throw new MethodNotAllowedError(req.method ?? '', `the ${r.resource.plural} collection`);
}

export async function handleItem(ctx: HandlerContext, r: ItemRoute, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const { store } = ctx;
  const { resource, name, subresource } = r;
  if (subresource === 'status' && !resource.hasStatus) throw new NotFoundError(resource, name);
  const current = (): KubeObject => {
    const obj = store.get(resource.plural, r.namespace, name);
    if (obj === undefined) throw new NotFoundError(resource, name);
    return obj;
  };
  if (subresource === 'binding') {
    if (req.method !== 'POST') throw new MethodNotAllowedError(req.method ?? '', `${resource.plural}/binding`);
    const { dryRun } = writeQuery(query, 'CreateOptions');
    const { nodeName, options } = parseBinding(parseBody(await readBody(req), mediaType(req)), name);
    store.bindPod(r.namespace, name, nodeName, { ...options, dryRun });
    await reply(store, res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
    return;
  }
  if (subresource === 'scale') {
    await handleScale(store, resource, r.namespace, name, req, res, query);
    return;
  }
  const updateOptions = subresource === 'status' ? { subresource } : {};

  switch (req.method) {
    case 'GET': {
      const format = readFormat(req, query, ['Table', 'PartialObjectMetadata']);
      const obj = current();
      const rv = obj.metadata.resourceVersion;
      const body =
        format.table !== undefined
          ? buildTable(resource, [obj], { ...format.table, metadata: rv === undefined ? {} : { resourceVersion: rv } })
          : format.partial !== undefined
            ? partialObject(obj, format.partial)
            : obj;
      await replyRead(store, res, body, format);
      return;
    }
    case 'PUT': {
      const options = writeQuery(query, 'UpdateOptions');
      const body = await readBody(req);
      const obj = asObject(parseBody(body, mediaType(req), bodyTypesFor(resource.apiVersion, resource.kind)));
      checkAgainstUrl(obj, resource, r.namespace);
      if (obj.metadata.name !== name) {
        throw new BadRequestError(`the name of the object (${obj.metadata.name ?? ''}) does not match the name on the URL (${name})`);
      }
      const manageFields = trackUpdate(resource, updateManager('UpdateOptions', query, req.headers['user-agent']), subresource);
      const warnings = checkFields(strategyFor(resource).schema, obj, options.fieldValidation, resource, jsonDuplicates(req, body, options.fieldValidation));
      const updated = store.update(obj, { ...updateOptions, dryRun: options.dryRun, manageFields });
      setWarnings(res, warnings);
      await reply(store, res, 200, updated);
      return;
    }
    case 'PATCH': {
      const options = writeQuery(query, 'PatchOptions');
      const type = mediaType(req);
      const accepted = supportsStrategicMerge(resource) ? PATCH_TYPES : CUSTOM_RESOURCE_PATCH_TYPES;
      if (!accepted.includes(type)) throw new UnsupportedMediaTypeError(type, accepted);
      if (type === APPLY_PATCH) {
        // Server-side apply: YAML (or JSON) body, may create the object (see apply/field-manager.ts).
        const applied = applyPatch(store, { resource, namespace: r.namespace, name, ...updateOptions, dryRun: options.dryRun }, parseBody(await readBody(req), 'application/yaml'), query);
        await reply(store, res, applied.code, applied.object);
        return;
      }
      const manageFields = trackUpdate(resource, updateManager('PatchOptions', query, req.headers['user-agent']), subresource);
      const patch = parseBody(await readBody(req), type, accepted);
      let patchedBody: unknown;
      if (type === JSON_PATCH) patchedBody = applyJsonPatch(current(), decodeJsonPatch(patch));
      else if (type === STRATEGIC_MERGE_PATCH) patchedBody = strategicMergePatch(current(), patch, patchMetaFor(resource));
      else patchedBody = mergePatch(current(), patch);
      const patched = asObject(patchedBody);
      // What a patch made of the object must still be the object of the URL (kube-apiserver's checkName).
      if (patched.metadata.name !== name) {
        throw new BadRequestError(`the name of the object (${patched.metadata.name ?? ''}) does not match the name on the URL (${name})`);
      }
      const patchedNamespace = patched.metadata.namespace;
      if (r.namespace !== undefined && patchedNamespace && patchedNamespace !== r.namespace) {
        throw new BadRequestError(`the namespace of the object (${patchedNamespace}) does not match the namespace on the request (${r.namespace})`);
      }
      checkAgainstUrl(patched, resource, r.namespace);
      const warnings = checkFields(strategyFor(resource).schema, patched, options.fieldValidation);
      const updated = store.update(patched, { ...updateOptions, dryRun: options.dryRun, manageFields });
      setWarnings(res, warnings);
      await reply(store, res, 200, updated);
      return;
    }
    case 'DELETE': {
      if (subresource !== undefined) throw new MethodNotAllowedError('DELETE', `${resource.plural}/${subresource}`);
      const body = await readBody(req);
      const options = deleteOptions(body.length > 0 ? parseBody(body, mediaType(req)) : undefined, query);
      const last = store.delete(resource.plural, r.namespace, name, options);
      // 200 once the object is gone; 202 while finalizers hold it (a dry run: would hold it).
      const pending = options.dryRun
        ? last.metadata.deletionTimestamp !== undefined
        : store.get(resource.plural, r.namespace, name)?.metadata.uid === last.metadata.uid;
      await reply(store, res, pending ? 202 : 200, last);
      return;
    }
    default:
      throw new MethodNotAllowedError(req.method ?? '', subresource === undefined ? resource.plural : `${resource.plural}/${subresource}`);
  }
}
