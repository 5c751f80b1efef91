// The OpenAPI documents kube-apiserver publishes, for this server's resources: OpenAPI 3.0 per
// group/version (/openapi/v3/api/v1, /openapi/v3/apis/<group>/<version>), listed with their hashes
// at /openapi/v3, and one Swagger 2.0 document (/openapi/v2). Every resource has its paths and
// operations with the query parameters kube-apiserver declares, and each operation its
// x-kubernetes-action and x-kubernetes-group-version-kind: kubectl finds the PATCH operation of an
// object's kind and looks for `fieldValidation` among its parameters to decide whether the
// server validates fields itself, and explains kinds from the schemas (openapi-schemas.ts).
import { createHash } from 'node:crypto';
import { groupVersions, type GroupVersion, type ResourceInfo } from '../api/registry.js';
import {
  DELETE_OPTIONS,
  definitionName,
  type Flavor,
  isCustomResource,
  type JsonSchema,
  kindDefinition,
  listDefinition,
  metaDefinitions,
  PATCH,
  ref,
  STATUS,
} from './openapi-schemas.js';

/** The Kubernetes release whose API these documents follow (discovery.ts says the same). */
const INFO = { title: 'Kubernetes', version: 'v1.31.0' };

const BEARER = { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } };

interface Parameter {
  name: string;
  in: 'query' | 'path';
  description: string;
  type: 'string' | 'boolean' | 'integer';
  required?: boolean;
}

const q = (name: string, type: Parameter['type'], description: string): Parameter => ({ name, in: 'query', type, description });

const P = {
  name: { name: 'name', in: 'path', type: 'string', required: true, description: 'name of the object' } as Parameter,
  namespace: { name: 'namespace', in: 'path', type: 'string', required: true, description: 'object name and auth scope, such as for teams and projects' } as Parameter,
  pretty: q('pretty', 'string', "If 'true', then the output is pretty printed."),
  dryRun: q('dryRun', 'string', 'When present, indicates that modifications should not be persisted. The only valid value is All: all dry run stages are processed.'),
  fieldManager: q('fieldManager', 'string', 'A name associated with the actor or entity that is making these changes: at most 128 printable characters.'),
  fieldValidation: q(
    'fieldValidation',
    'string',
    'How the server treats unknown and duplicate fields in the request: Ignore drops them silently, Warn (the default) drops them and sends a warning for each, Strict fails the request with a BadRequest listing them.',
  ),
  force: q('force', 'boolean', 'Force is going to "force" Apply requests: the request re-acquires conflicting fields owned by other managers. Must be unset for other patch types.'),
  allowWatchBookmarks: q('allowWatchBookmarks', 'boolean', 'allowWatchBookmarks requests watch events with type "BOOKMARK".'),
  continue: q('continue', 'string', 'The continue token of a previous list response, to retrieve the next page of results.'),
  fieldSelector: q('fieldSelector', 'string', 'A selector to restrict the list of returned objects by their fields. Defaults to everything.'),
  labelSelector: q('labelSelector', 'string', 'A selector to restrict the list of returned objects by their labels. Defaults to everything.'),
  limit: q('limit', 'integer', 'The maximum number of responses to return for a list call; a continue token is returned when there are more.'),
  resourceVersion: q('resourceVersion', 'string', 'Sets a constraint on what resource versions a request may be served from.'),
  resourceVersionMatch: q('resourceVersionMatch', 'string', 'Determines how resourceVersion is applied to list calls: Exact or NotOlderThan.'),
  sendInitialEvents: q('sendInitialEvents', 'boolean', 'With watch=true, begin the watch stream with synthetic events for the current state of all objects.'),
  timeoutSeconds: q('timeoutSeconds', 'integer', 'Timeout for the list/watch call, regardless of any activity or inactivity.'),
  watch: q('watch', 'boolean', 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.'),
  gracePeriodSeconds: q('gracePeriodSeconds', 'integer', 'The duration in seconds before the object should be deleted. Zero means delete immediately.'),
  ignoreStoreReadError: q(
    'ignoreStoreReadErrorWithClusterBreakingPotential',
    'boolean',
    'If set to true, an object that cannot be read from storage (corrupt) is deleted anyway. Unsafe.',
  ),
  orphanDependents: q('orphanDependents', 'boolean', 'Deprecated: please use the PropagationPolicy.'),
  propagationPolicy: q('propagationPolicy', 'string', "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
};

const LIST_PARAMS = [P.allowWatchBookmarks, P.continue, P.fieldSelector, P.labelSelector, P.limit, P.resourceVersion, P.resourceVersionMatch, P.sendInitialEvents, P.timeoutSeconds, P.watch];
const WRITE_PARAMS = [P.dryRun, P.fieldManager, P.fieldValidation];
const PATCH_PARAMS = [...WRITE_PARAMS, P.force];
const DELETE_PARAMS = [P.dryRun, P.gracePeriodSeconds, P.ignoreStoreReadError, P.orphanDependents, P.propagationPolicy];

const BUILT_IN_PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'];
// Custom resources take no strategic merge patch: kubectl then falls back to a merge patch.
const CUSTOM_PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
const BODY_TYPES = ['application/json', 'application/yaml'];

function encodeParameter(p: Parameter, flavor: Flavor): JsonSchema {
  const base = { name: p.name, in: p.in, description: p.description, ...(p.required ? { required: true } : {}) };
  return flavor === 'v3' ? { ...base, schema: { type: p.type, uniqueItems: true } } : { ...base, type: p.type, uniqueItems: true };
}

/** kube-apiserver's operation id parts: "CoreV1", "StorageV1", "SnapshotStorageK8sIoV1". */
function groupTag(resource: ResourceInfo): { id: string; tag: string } {
  const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  const version = cap(resource.version);
  if (resource.group === '') return { id: `Core${version}`, tag: `core_${resource.version}` };
  const words = isCustomResource(resource) ? resource.group.split('.') : [resource.group.replace(/\.k8s\.io$/, '')];
  const name = words.map((w, i) => (i === 0 ? w : cap(w))).join('');
  return { id: `${cap(name)}${version}`, tag: `${name}_${resource.version}` };
}

interface Operation {
  method: 'get' | 'put' | 'post' | 'patch' | 'delete';
  action: 'get' | 'list' | 'post' | 'put' | 'patch' | 'delete';
  description: string;
  params: Parameter[];
  /** The body a request carries, by definition name. */
  body?: { name: string; types: string[] };
  responses: Record<string, string>;
}

const STATUS_TEXT: Record<string, string> = { '200': 'OK', '201': 'Created', '202': 'Accepted' };

function operation(op: Operation, resource: ResourceInfo, opId: string, flavor: Flavor): JsonSchema {
  const { tag } = groupTag(resource);
  const schemaRef = (name: string): JsonSchema => ({ $ref: ref(flavor, name) });
  const responses: JsonSchema = {};
  for (const [code, name] of Object.entries(op.responses)) {
    const description = STATUS_TEXT[code] ?? code;
    responses[code] = flavor === 'v3' ? { description, content: { 'application/json': { schema: schemaRef(name) } } } : { description, schema: schemaRef(name) };
  }
  responses['401'] = { description: 'Unauthorized' };
  const parameters = op.params.map((p) => encodeParameter(p, flavor));
  const out: JsonSchema = { tags: [tag], description: op.description, operationId: opId };
  const body = op.body;
  if (flavor === 'v3') {
    if (body) out['requestBody'] = { content: Object.fromEntries(body.types.map((t) => [t, { schema: schemaRef(body.name) }])), required: op.method !== 'delete' };
  } else {
    if (body) {
      parameters.unshift({ name: 'body', in: 'body', ...(op.method === 'delete' ? {} : { required: true }), schema: schemaRef(body.name) });
      out['consumes'] = body.types;
    }
    out['produces'] = ['application/json'];
    out['schemes'] = ['https'];
  }
  if (parameters.length > 0) out['parameters'] = parameters;
  out['responses'] = responses;
  out['x-kubernetes-action'] = op.action;
  out['x-kubernetes-group-version-kind'] = { group: resource.group, kind: resource.kind, version: resource.version };
  return out;
}

/** The paths of one resource: its collections, its items and their /status. */
function resourcePaths(resource: ResourceInfo, flavor: Flavor): Record<string, JsonSchema> {
  const prefix = resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const scope = resource.namespaced ? `${prefix}/namespaces/{namespace}/${resource.plural}` : `${prefix}/${resource.plural}`;
  const { id } = groupTag(resource);
  const ns = resource.namespaced ? 'Namespaced' : '';
  const kind = resource.kind;
  const def = definitionName(resource);
  const list = definitionName(resource, `${kind}List`);
  const patchTypes = isCustomResource(resource) ? CUSTOM_PATCH_TYPES : BUILT_IN_PATCH_TYPES;
  const scopeParams = resource.namespaced ? [P.namespace] : [];
  const paths: Record<string, JsonSchema> = {};
  const path = (url: string, params: Parameter[], ops: [Operation, string][]): void => {
    const item: JsonSchema = {};
    for (const [op, opId] of ops) item[op.method] = operation(op, resource, opId, flavor);
    item['parameters'] = [...params, P.pretty].map((p) => encodeParameter(p, flavor));
    paths[url] = item;
  };
  const listOp: Operation = { method: 'get', action: 'list', description: `list or watch objects of kind ${kind}`, params: LIST_PARAMS, responses: { '200': list } };
  path(scope, scopeParams, [
    [listOp, `list${id}${ns}${kind}`],
    [{ method: 'post', action: 'post', description: `create a ${kind}`, params: WRITE_PARAMS, body: { name: def, types: BODY_TYPES }, responses: { '200': def, '201': def, '202': def } }, `create${id}${ns}${kind}`],
  ]);
  const item = (suffix: string, what: string): [Operation, string][] => [
    [{ method: 'get', action: 'get', description: `read ${what} of the specified ${kind}`, params: [], responses: { '200': def } }, `read${id}${ns}${kind}${suffix}`],
    [{ method: 'put', action: 'put', description: `replace ${what} of the specified ${kind}`, params: WRITE_PARAMS, body: { name: def, types: BODY_TYPES }, responses: { '200': def, '201': def } }, `replace${id}${ns}${kind}${suffix}`],
    [{ method: 'patch', action: 'patch', description: `partially update ${what} of the specified ${kind}`, params: PATCH_PARAMS, body: { name: PATCH, types: patchTypes }, responses: { '200': def, '201': def } }, `patch${id}${ns}${kind}${suffix}`],
  ];
  path(`${scope}/{name}`, [P.name, ...scopeParams], [
    ...item('', 'the'),
    [{ method: 'delete', action: 'delete', description: `delete a ${kind}`, params: DELETE_PARAMS, body: { name: DELETE_OPTIONS, types: BODY_TYPES }, responses: { '200': isCustomResource(resource) ? STATUS : def, '202': isCustomResource(resource) ? STATUS : def } }, `delete${id}${ns}${kind}`],
  ]);
  if (resource.hasStatus) path(`${scope}/{name}/status`, [P.name, ...scopeParams], item('Status', 'status'));
  if (resource.namespaced) path(`${prefix}/${resource.plural}`, [], [[listOp, `list${id}${kind}ForAllNamespaces`]]);
  return paths;
}

function definitions(resources: readonly ResourceInfo[], flavor: Flavor): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = { ...metaDefinitions(flavor) };
  for (const r of resources) {
    out[definitionName(r)] = kindDefinition(r, flavor);
    out[definitionName(r, `${r.kind}List`)] = listDefinition(r, flavor);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

function paths(resources: readonly ResourceInfo[], flavor: Flavor): Record<string, JsonSchema> {
  const all: Record<string, JsonSchema> = {};
  for (const r of resources) Object.assign(all, resourcePaths(r, flavor));
  return Object.fromEntries(Object.entries(all).sort(([a], [b]) => a.localeCompare(b)));
}

/** "api/v1" or "apis/storage.k8s.io/v1": a group/version's key in the v3 discovery document. */
export function groupVersionPath(gv: { group: string; version: string }): string {
  return gv.group === '' ? `api/${gv.version}` : `apis/${gv.group}/${gv.version}`;
}

export function openApiV3Document(gv: GroupVersion): JsonSchema {
  return {
    openapi: '3.0.0',
    info: INFO,
    paths: paths(gv.resources, 'v3'),
    components: { schemas: definitions(gv.resources, 'v3'), securitySchemes: BEARER },
  };
}

export function swaggerDocument(): JsonSchema {
  const resources = groupVersions().flatMap((gv) => gv.resources);
  return {
    swagger: '2.0',
    info: INFO,
    paths: paths(resources, 'v2'),
    definitions: definitions(resources, 'v2'),
    securityDefinitions: BEARER,
    security: [{ BearerToken: [] }],
  };
}

export interface ServedDocument {
  /** The JSON text, built once. */
  text: string;
  /** kube-openapi's ETag: the upper-case hex SHA-512 of the text. */
  hash: string;
}

function served(doc: JsonSchema): ServedDocument {
  const text = JSON.stringify(doc);
  return { text, hash: createHash('sha512').update(text).digest('hex').toUpperCase() };
}

let v3Cache: Map<string, ServedDocument> | undefined;
let v2Cache: ServedDocument | undefined;

/** Every group/version's v3 document, by its path ("api/v1", "apis/storage.k8s.io/v1"). */
export function v3Documents(): Map<string, ServedDocument> {
  v3Cache ??= new Map(groupVersions().map((gv) => [groupVersionPath(gv), served(openApiV3Document(gv))]));
  return v3Cache;
}

export function v2Document(): ServedDocument {
  v2Cache ??= served(swaggerDocument());
  return v2Cache;
}

/** The /openapi/v3 discovery document: where each group/version's document is, with its hash. */
export function v3Discovery(): { paths: Record<string, { serverRelativeURL: string }> } {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [path, doc] of v3Documents()) paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${doc.hash}` };
  return { paths };
}
