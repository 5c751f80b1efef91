// The Swagger 2.0 document (openapi.ts) in the protobuf encoding kube-apiserver also serves at
// /openapi/v2: gnostic's openapi.v2.Document, built from the very JSON text served (so the two share
// their ETag, as kube-openapi's do) the way gnostic's ParseDocument reads JSON: `type` and `items`
// become lists, `additionalProperties` a schema or a boolean, parameters split into body and
// query/path ones, and `default`, `example`, `enum` and every x-* vendor extension
// (x-kubernetes-group-version-kind, which kubectl maps kinds to definitions with) a YAML string.
import { stringify } from 'yaml';
import type { ServedDocument } from './openapi.js';
import type { JsonSchema } from './openapi-schemas.js';
import { documentType } from './openapi-v2-proto-schema.js';

type Message = Record<string, unknown>;

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);
const entries = (v: unknown): [string, unknown][] => (isObject(v) ? Object.entries(v) : []);

/** A value gnostic keeps as YAML text (its openapi.v2.Any). */
const any = (value: unknown): Message => ({ yaml: stringify(value) });

function vendorExtensions(node: JsonSchema): Message[] {
  return entries(node)
    .filter(([k]) => k.startsWith('x-'))
    .map(([name, value]) => ({ name, value: any(value) }));
}

/** Copies the keys of `node` whose JSON names and message field names agree, when present. */
function pick(node: JsonSchema, keys: readonly string[]): Message {
  const out: Message = {};
  for (const k of keys) if (node[k] !== undefined) out[k] = node[k];
  return out;
}

const SCHEMA_SCALARS = [
  'format',
  'title',
  'description',
  'multipleOf',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'maxProperties',
  'minProperties',
  'required',
  'discriminator',
  'readOnly',
] as const;

export function schemaMessage(node: JsonSchema): Message {
  const out = pick(node, SCHEMA_SCALARS);
  if (typeof node['$ref'] === 'string') out['ref'] = node['$ref'];
  if (node['default'] !== undefined) out['default'] = any(node['default']);
  if (node['example'] !== undefined) out['example'] = any(node['example']);
  if (Array.isArray(node['enum'])) out['enum'] = node['enum'].map(any);
  const type = node['type'];
  if (type !== undefined) out['type'] = { value: Array.isArray(type) ? type : [type] };
  const items = node['items'];
  if (items !== undefined) out['items'] = { schema: (Array.isArray(items) ? items : [items]).filter(isObject).map(schemaMessage) };
  const extra = node['additionalProperties'];
  if (typeof extra === 'boolean') out['additionalProperties'] = { boolean: extra };
  else if (isObject(extra)) out['additionalProperties'] = { schema: schemaMessage(extra) };
  if (Array.isArray(node['allOf'])) out['allOf'] = node['allOf'].filter(isObject).map(schemaMessage);
  if (isObject(node['properties'])) out['properties'] = { additionalProperties: namedSchemas(node['properties']) };
  const ext = vendorExtensions(node);
  if (ext.length > 0) out['vendorExtension'] = ext;
  return out;
}

const namedSchemas = (map: unknown): Message[] => entries(map).map(([name, s]) => ({ name, value: schemaMessage(isObject(s) ? s : {}) }));

const PRIMITIVE_KEYS = ['type', 'format', 'collectionFormat', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'multipleOf'] as const;

function primitive(node: JsonSchema, head: readonly string[]): Message {
  const out = pick(node, [...head, ...PRIMITIVE_KEYS]);
  if (isObject(node['items'])) out['items'] = primitive(node['items'], []);
  if (node['default'] !== undefined) out['default'] = any(node['default']);
  if (Array.isArray(node['enum'])) out['enum'] = node['enum'].map(any);
  const ext = vendorExtensions(node);
  if (ext.length > 0) out['vendorExtension'] = ext;
  return out;
}

function parameterItem(node: JsonSchema): Message | undefined {
  if (typeof node['$ref'] === 'string') return { jsonReference: { ref: node['$ref'] } };
  switch (node['in']) {
    case 'body': {
      const body = pick(node, ['description', 'name', 'in', 'required']);
      if (isObject(node['schema'])) body['schema'] = schemaMessage(node['schema']);
      return { parameter: { bodyParameter: body } };
    }
    case 'query':
      return { parameter: { nonBodyParameter: { queryParameterSubSchema: primitive(node, ['required', 'in', 'description', 'name', 'allowEmptyValue']) } } };
    case 'path':
      return { parameter: { nonBodyParameter: { pathParameterSubSchema: primitive(node, ['required', 'in', 'description', 'name']) } } };
    default:
      // Header and formData parameters: this server declares none (openapi.ts).
      return undefined;
  }
}

const parameters = (list: unknown): Message[] =>
  (Array.isArray(list) ? list : []).filter(isObject).flatMap((p) => {
    const item = parameterItem(p);
    return item === undefined ? [] : [item];
  });

function responseValue(node: JsonSchema): Message {
  if (typeof node['$ref'] === 'string') return { jsonReference: { ref: node['$ref'] } };
  const response = pick(node, ['description']);
  if (isObject(node['schema'])) response['schema'] = { schema: schemaMessage(node['schema']) };
  const ext = vendorExtensions(node);
  if (ext.length > 0) response['vendorExtension'] = ext;
  return { response };
}

function operationMessage(node: JsonSchema): Message {
  const out = pick(node, ['tags', 'summary', 'description', 'operationId', 'produces', 'consumes', 'schemes', 'deprecated']);
  const params = parameters(node['parameters']);
  if (params.length > 0) out['parameters'] = params;
  const codes = entries(node['responses']).filter(([code]) => !code.startsWith('x-'));
  out['responses'] = { responseCode: codes.map(([name, r]) => ({ name, value: responseValue(isObject(r) ? r : {}) })) };
  if (Array.isArray(node['security'])) out['security'] = node['security'].filter(isObject).map(securityRequirement);
  const ext = vendorExtensions(node);
  if (ext.length > 0) out['vendorExtension'] = ext;
  return out;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;

function pathItem(node: JsonSchema): Message {
  const out: Message = {};
  if (typeof node['$ref'] === 'string') out['ref'] = node['$ref'];
  for (const m of METHODS) if (isObject(node[m])) out[m] = operationMessage(node[m]);
  const params = parameters(node['parameters']);
  if (params.length > 0) out['parameters'] = params;
  const ext = vendorExtensions(node);
  if (ext.length > 0) out['vendorExtension'] = ext;
  return out;
}

const securityRequirement = (node: JsonSchema): Message => ({
  additionalProperties: entries(node).map(([name, scopes]) => ({ name, value: { value: Array.isArray(scopes) ? scopes : [] } })),
});

function securityDefinitions(node: unknown): Message {
  const items = entries(node).flatMap(([name, d]) => {
    // Only API keys (the bearer token): basic and OAuth2 schemes are not declared by this server.
    if (!isObject(d) || d['type'] !== 'apiKey') return [];
    return [{ name, value: { apiKeySecurity: { ...pick(d, ['type', 'name', 'in', 'description']), vendorExtension: vendorExtensions(d) } } }];
  });
  return { additionalProperties: items };
}

/** The openapi.v2.Document message of a Swagger 2.0 JSON document. */
export function documentMessage(doc: JsonSchema): Message {
  const out = pick(doc, ['swagger', 'host', 'basePath', 'schemes', 'consumes', 'produces']);
  if (isObject(doc['info'])) out['info'] = { ...pick(doc['info'], ['title', 'version', 'description', 'termsOfService']), vendorExtension: vendorExtensions(doc['info']) };
  out['paths'] = {
    vendorExtension: vendorExtensions(isObject(doc['paths']) ? doc['paths'] : {}),
    path: entries(doc['paths'])
      .filter(([k]) => !k.startsWith('x-'))
      .map(([name, item]) => ({ name, value: pathItem(isObject(item) ? item : {}) })),
  };
  out['definitions'] = { additionalProperties: namedSchemas(doc['definitions']) };
  if (Array.isArray(doc['security'])) out['security'] = doc['security'].filter(isObject).map(securityRequirement);
  if (doc['securityDefinitions'] !== undefined) out['securityDefinitions'] = securityDefinitions(doc['securityDefinitions']);
  const ext = vendorExtensions(doc);
  if (ext.length > 0) out['vendorExtension'] = ext;
  return out;
}

/** The protobuf bytes of a Swagger 2.0 JSON text. */
export function encodeSwagger(jsonText: string): Uint8Array {
  const type = documentType();
  const doc = JSON.parse(jsonText) as JsonSchema;
  return type.encode(type.fromObject(documentMessage(doc))).finish();
}

let cache: { bytes: Uint8Array; hash: string } | undefined;

/** /openapi/v2 as protobuf, built once, with the JSON form's hash (kube-openapi serves both under one ETag). */
export function v2ProtobufDocument(json: ServedDocument): { bytes: Uint8Array; hash: string } {
  if (cache?.hash !== json.hash) cache = { bytes: encodeSwagger(json.text), hash: json.hash };
  return cache;
}
