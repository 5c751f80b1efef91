// The CSI protocol at runtime: csi.proto as a protobufjs Root, and the gRPC
// service definitions the server and client are built on.
//
// Startup time matters (the driver's socket must be up within 250 ms of
// process start), so neither step uses the obvious tool:
// - The Root comes from gen/descriptor.ts, csi.proto pre-converted to
//   protobufjs JSON by `npm run gen:csi`, loaded with protobufjs/light.
//   Parsing the .proto text instead costs ~40 ms more, the full protobufjs
//   build ~15 ms more. A unit test fails if the descriptor is stale.
// - The service definitions are built here rather than by @grpc/proto-loader,
//   which also computes descriptor protos for every type (for server
//   reflection, which we do not serve): another ~40 ms. The (de)serializers
//   below are exactly proto-loader's, with its options, so the types it
//   generated into ./gen (see types.ts) describe these objects.
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs/light.js';
import { csiDescriptorJson } from './gen/descriptor.js';

export type * from './types.js';

export const CSI_PACKAGE = 'csi.v1';

/**
 * How decoded messages are shaped. Together with keepCase (applied when the
 * descriptor is generated) these are the flags `npm run gen:csi` passes to
 * proto-loader-gen-types: change both or neither.
 */
export const CONVERSION_OPTIONS: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  arrays: true,
  objects: true,
};

function loadRoot(): protobuf.Root {
  const root = protobuf.Root.fromJSON(JSON.parse(csiDescriptorJson) as protobuf.INamespace);
  root.resolveAll();
  return root;
}

/** Reflection over csi.proto, field options included. */
export const csiRoot: protobuf.Root = loadRoot();

/** A CSI message type by name within csi.v1 ('VolumeCapability.MountVolume') or full name. */
export function messageType(name: string): protobuf.Type {
  return csiRoot.lookupType(name.startsWith(`${CSI_PACKAGE}.`) ? name : `${CSI_PACKAGE}.${name}`);
}

function serializer(type: protobuf.Type): (value: object) => Buffer {
  return (value) => {
    const bytes = type.encode(type.fromObject(value)).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(type: protobuf.Type): (bytes: Buffer) => object {
  return (bytes) => type.toObject(type.decode(bytes), CONVERSION_OPTIONS);
}

function resolved(type: protobuf.Type | null, what: string): protobuf.Type {
  if (!type) throw new Error(`csi.proto: ${what} did not resolve`);
  return type;
}

export interface MethodTypes {
  request: protobuf.Type;
  response: protobuf.Type;
}

/** Message types of every served method, keyed by gRPC path. */
const typesByPath = new Map<string, MethodTypes>();

function serviceDefinition(service: string): ServiceDefinition {
  const methods: Record<string, MethodDefinition<object, object>> = {};
  for (const method of csiRoot.lookupService(`${CSI_PACKAGE}.${service}`).methodsArray) {
    const path = `/${CSI_PACKAGE}.${service}/${method.name}`;
    const request = resolved(method.resolvedRequestType, `${path} request`);
    const response = resolved(method.resolvedResponseType, `${path} response`);
    typesByPath.set(path, { request, response });
    methods[method.name] = {
      path,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
    };
  }
  return methods;
}

export const identityService: ServiceDefinition = serviceDefinition('Identity');
export const controllerService: ServiceDefinition = serviceDefinition('Controller');
export const nodeService: ServiceDefinition = serviceDefinition('Node');
export const groupControllerService: ServiceDefinition = serviceDefinition('GroupController');

/** The message types of a method given by its gRPC path ('/csi.v1.Node/NodeStageVolume'). */
export function methodTypes(path: string): MethodTypes {
  const types = typesByPath.get(path);
  if (!types) throw new Error(`csi.proto: no method ${path}`);
  return types;
}
