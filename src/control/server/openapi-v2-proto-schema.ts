// The messages of gnostic's openapi.v2 package (github.com/google/gnostic-models, openapiv2/
// OpenAPIv2.proto) that a Swagger 2.0 document of this server uses, as a protobufjs Root. client-go's
// OpenAPISchema() asks /openapi/v2 for this encoding and kube-openapi's proto parser reads it back
// (kubectl's client-side validation and `kubectl explain --output=plaintext-openapiv2`), so the
// field numbers here are exactly gnostic's; the names are ours (camelCase, `_ref` as `ref`). Messages
// our documents never carry (header and formData parameters, OAuth2 and basic-auth security,
// Xml, ExternalDocs, google.protobuf.Any) are left out: a decoder skips them as unknown fields.
// Declared as protobufjs JSON rather than parsed from .proto text: no parser at runtime, no file to
// ship beside dist/, and the light build the CSI code already loads.
import protobuf from 'protobufjs/light.js';

type Fields = Record<string, { type: string; id: number; rule?: 'repeated' }>;

const str = (id: number) => ({ type: 'string', id });
const bool = (id: number) => ({ type: 'bool', id });
const double = (id: number) => ({ type: 'double', id });
const int64 = (id: number) => ({ type: 'int64', id });
const msg = (type: string, id: number) => ({ type, id });
const many = (type: string, id: number) => ({ type, id, rule: 'repeated' as const });

/** A message whose fields form one oneof named `oneof`, as gnostic's union messages do. */
const union = (fields: Fields) => ({ oneofs: { oneof: { oneof: Object.keys(fields) } }, fields });

/** The primitive-parameter sub-schemas share their tail; `offset` is where `type` sits. */
function parameterSubSchema(head: Fields, offset: number): { fields: Fields } {
  const at = (i: number) => offset + i;
  return {
    fields: {
      ...head,
      type: str(at(0)),
      format: str(at(1)),
      items: msg('PrimitivesItems', at(2)),
      collectionFormat: str(at(3)),
      default: msg('Any', at(4)),
      maximum: double(at(5)),
      exclusiveMaximum: bool(at(6)),
      minimum: double(at(7)),
      exclusiveMinimum: bool(at(8)),
      maxLength: int64(at(9)),
      minLength: int64(at(10)),
      pattern: str(at(11)),
      maxItems: int64(at(12)),
      minItems: int64(at(13)),
      uniqueItems: bool(at(14)),
      enum: many('Any', at(15)),
      multipleOf: double(at(16)),
      vendorExtension: many('NamedAny', at(17)),
    },
  };
}

const named = (value: string) => ({ fields: { name: str(1), value: msg(value, 2) } });

const OPENAPI_V2: protobuf.INamespace = {
  nested: {
    openapi: {
      nested: {
        v2: {
          nested: {
            Document: {
              fields: {
                swagger: str(1),
                info: msg('Info', 2),
                host: str(3),
                basePath: str(4),
                schemes: many('string', 5),
                consumes: many('string', 6),
                produces: many('string', 7),
                paths: msg('Paths', 8),
                definitions: msg('Definitions', 9),
                security: many('SecurityRequirement', 12),
                securityDefinitions: msg('SecurityDefinitions', 13),
                vendorExtension: many('NamedAny', 16),
              },
            },
            Info: { fields: { title: str(1), version: str(2), description: str(3), termsOfService: str(4), vendorExtension: many('NamedAny', 7) } },
            // Field 1 is a google.protobuf.Any, which no Kubernetes document uses: values travel as YAML.
            Any: { fields: { yaml: str(2) } },
            NamedAny: named('Any'),
            NamedSchema: named('Schema'),
            NamedPathItem: named('PathItem'),
            NamedResponseValue: named('ResponseValue'),
            NamedSecurityDefinitionsItem: named('SecurityDefinitionsItem'),
            NamedStringArray: named('StringArray'),
            StringArray: { fields: { value: many('string', 1) } },
            TypeItem: { fields: { value: many('string', 1) } },
            ItemsItem: { fields: { schema: many('Schema', 1) } },
            Properties: { fields: { additionalProperties: many('NamedSchema', 1) } },
            Definitions: { fields: { additionalProperties: many('NamedSchema', 1) } },
            AdditionalPropertiesItem: union({ schema: msg('Schema', 1), boolean: bool(2) }),
            Schema: {
              fields: {
                ref: str(1),
                format: str(2),
                title: str(3),
                description: str(4),
                default: msg('Any', 5),
                multipleOf: double(6),
                maximum: double(7),
                exclusiveMaximum: bool(8),
                minimum: double(9),
                exclusiveMinimum: bool(10),
                maxLength: int64(11),
                minLength: int64(12),
                pattern: str(13),
                maxItems: int64(14),
                minItems: int64(15),
                uniqueItems: bool(16),
                maxProperties: int64(17),
                minProperties: int64(18),
                required: many('string', 19),
                enum: many('Any', 20),
                additionalProperties: msg('AdditionalPropertiesItem', 21),
                type: msg('TypeItem', 22),
                items: msg('ItemsItem', 23),
                allOf: many('Schema', 24),
                properties: msg('Properties', 25),
                discriminator: str(26),
                readOnly: bool(27),
                example: msg('Any', 30),
                vendorExtension: many('NamedAny', 31),
              },
            },
            Paths: { fields: { vendorExtension: many('NamedAny', 1), path: many('NamedPathItem', 2) } },
            PathItem: {
              fields: {
                ref: str(1),
                get: msg('Operation', 2),
                put: msg('Operation', 3),
                post: msg('Operation', 4),
                delete: msg('Operation', 5),
                options: msg('Operation', 6),
                head: msg('Operation', 7),
                patch: msg('Operation', 8),
                parameters: many('ParametersItem', 9),
                vendorExtension: many('NamedAny', 10),
              },
            },
            Operation: {
              fields: {
                tags: many('string', 1),
                summary: str(2),
                description: str(3),
                operationId: str(5),
                produces: many('string', 6),
                consumes: many('string', 7),
                parameters: many('ParametersItem', 8),
                responses: msg('Responses', 9),
                schemes: many('string', 10),
                deprecated: bool(11),
                security: many('SecurityRequirement', 12),
                vendorExtension: many('NamedAny', 13),
              },
            },
            ParametersItem: union({ parameter: msg('Parameter', 1), jsonReference: msg('JsonReference', 2) }),
            JsonReference: { fields: { ref: str(1), description: str(2) } },
            Parameter: union({ bodyParameter: msg('BodyParameter', 1), nonBodyParameter: msg('NonBodyParameter', 2) }),
            BodyParameter: {
              fields: { description: str(1), name: str(2), in: str(3), required: bool(4), schema: msg('Schema', 5), vendorExtension: many('NamedAny', 6) },
            },
            NonBodyParameter: union({ queryParameterSubSchema: msg('QueryParameterSubSchema', 3), pathParameterSubSchema: msg('PathParameterSubSchema', 4) }),
            QueryParameterSubSchema: parameterSubSchema({ required: bool(1), in: str(2), description: str(3), name: str(4), allowEmptyValue: bool(5) }, 6),
            PathParameterSubSchema: parameterSubSchema({ required: bool(1), in: str(2), description: str(3), name: str(4) }, 5),
            PrimitivesItems: parameterSubSchema({}, 1),
            Responses: { fields: { responseCode: many('NamedResponseValue', 1), vendorExtension: many('NamedAny', 2) } },
            ResponseValue: union({ response: msg('Response', 1), jsonReference: msg('JsonReference', 2) }),
            Response: { fields: { description: str(1), schema: msg('SchemaItem', 2), vendorExtension: many('NamedAny', 5) } },
            SchemaItem: union({ schema: msg('Schema', 1) }),
            SecurityRequirement: { fields: { additionalProperties: many('NamedStringArray', 1) } },
            SecurityDefinitions: { fields: { additionalProperties: many('NamedSecurityDefinitionsItem', 1) } },
            SecurityDefinitionsItem: union({ apiKeySecurity: msg('ApiKeySecurity', 2) }),
            ApiKeySecurity: { fields: { type: str(1), name: str(2), in: str(3), description: str(4), vendorExtension: many('NamedAny', 5) } },
          },
        },
      },
    },
  },
};

let root: protobuf.Root | undefined;

/** gnostic's openapi.v2.Document, for encoding the served document and decoding it in tests. */
export function documentType(): protobuf.Type {
  root ??= protobuf.Root.fromJSON(OPENAPI_V2);
  return root.lookupType('openapi.v2.Document');
}
