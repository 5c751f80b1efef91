// Friendly TypeScript names for the CSI v1 wire types (generated into ./gen
// by `npm run gen:csi`), and the request/response shapes of every RPC.
//
// Naming scheme, for every CSI message or enum Foo:
//   Foo       What arrives off the wire: a request a server handler receives,
//             a response a client gets back (proto-loader's `Foo__Output`).
//             Every field is present: scalars default to ''/0/false, repeated
//             fields to [], maps to {}, unset sub-messages to null. int64 is
//             a number, enums are value names ('SINGLE_NODE_WRITER'), and a
//             oneof's name holds the name of its set member
//             (`volume_content_source.type === 'snapshot'`).
//   FooInput  What you hand to the wire: a request a client sends, a response
//             a handler returns (proto-loader's `Foo`). Every field is
//             optional; enums may be names or numbers; int64 may be a number,
//             a decimal string or a Long.
// Nested types join their path without underscores:
//   VolumeCapability.AccessMode.Mode -> VolumeCapabilityAccessModeMode.
import type { MethodDefinition } from '@grpc/proto-loader';
import type { ControllerDefinition } from './gen/csi/v1/Controller.js';
import type { GroupControllerDefinition } from './gen/csi/v1/GroupController.js';
import type { IdentityDefinition } from './gen/csi/v1/Identity.js';
import type { NodeDefinition } from './gen/csi/v1/Node.js';

/** The four message shapes of one unary RPC. */
export interface Rpc<RequestInput, Request, ResponseInput, Response> {
  requestInput: RequestInput;
  request: Request;
  responseInput: ResponseInput;
  response: Response;
}

/**
 * RPC name -> Rpc shapes, read off a generated service definition so they
 * cannot drift from the proto. `string extends K` drops the index signature
 * the definitions inherit from grpc.ServiceDefinition.
 */
export type RpcsOf<Definition> = {
  [K in keyof Definition as string extends K ? never : K]: Definition[K] extends MethodDefinition<
    infer RequestInput,
    infer ResponseInput,
    infer Request,
    infer Response
  >
    ? Rpc<RequestInput, Request, ResponseInput, Response>
    : never;
};

export type IdentityRpcs = RpcsOf<IdentityDefinition>;
export type ControllerRpcs = RpcsOf<ControllerDefinition>;
export type NodeRpcs = RpcsOf<NodeDefinition>;
export type GroupControllerRpcs = RpcsOf<GroupControllerDefinition>;

export type {
  BlockMetadata__Output as BlockMetadata,
  BlockMetadata as BlockMetadataInput,
} from './gen/csi/v1/BlockMetadata.js';
export type {
  BlockMetadataType__Output as BlockMetadataType,
  BlockMetadataType as BlockMetadataTypeInput,
} from './gen/csi/v1/BlockMetadataType.js';
export type {
  CapacityRange__Output as CapacityRange,
  CapacityRange as CapacityRangeInput,
} from './gen/csi/v1/CapacityRange.js';
export type {
  ControllerExpandVolumeRequest__Output as ControllerExpandVolumeRequest,
  ControllerExpandVolumeRequest as ControllerExpandVolumeRequestInput,
} from './gen/csi/v1/ControllerExpandVolumeRequest.js';
export type {
  ControllerExpandVolumeResponse__Output as ControllerExpandVolumeResponse,
  ControllerExpandVolumeResponse as ControllerExpandVolumeResponseInput,
} from './gen/csi/v1/ControllerExpandVolumeResponse.js';
export type {
  ControllerGetCapabilitiesRequest__Output as ControllerGetCapabilitiesRequest,
  ControllerGetCapabilitiesRequest as ControllerGetCapabilitiesRequestInput,
} from './gen/csi/v1/ControllerGetCapabilitiesRequest.js';
export type {
  ControllerGetCapabilitiesResponse__Output as ControllerGetCapabilitiesResponse,
  ControllerGetCapabilitiesResponse as ControllerGetCapabilitiesResponseInput,
} from './gen/csi/v1/ControllerGetCapabilitiesResponse.js';
export type {
  ControllerGetVolumeRequest__Output as ControllerGetVolumeRequest,
  ControllerGetVolumeRequest as ControllerGetVolumeRequestInput,
} from './gen/csi/v1/ControllerGetVolumeRequest.js';
export type {
  ControllerGetVolumeResponse__Output as ControllerGetVolumeResponse,
  ControllerGetVolumeResponse as ControllerGetVolumeResponseInput,
  _csi_v1_ControllerGetVolumeResponse_VolumeStatus__Output as ControllerGetVolumeResponseVolumeStatus,
  _csi_v1_ControllerGetVolumeResponse_VolumeStatus as ControllerGetVolumeResponseVolumeStatusInput,
} from './gen/csi/v1/ControllerGetVolumeResponse.js';
export type {
  ControllerModifyVolumeRequest__Output as ControllerModifyVolumeRequest,
  ControllerModifyVolumeRequest as ControllerModifyVolumeRequestInput,
} from './gen/csi/v1/ControllerModifyVolumeRequest.js';
export type {
  ControllerModifyVolumeResponse__Output as ControllerModifyVolumeResponse,
  ControllerModifyVolumeResponse as ControllerModifyVolumeResponseInput,
} from './gen/csi/v1/ControllerModifyVolumeResponse.js';
export type {
  ControllerPublishVolumeRequest__Output as ControllerPublishVolumeRequest,
  ControllerPublishVolumeRequest as ControllerPublishVolumeRequestInput,
} from './gen/csi/v1/ControllerPublishVolumeRequest.js';
export type {
  ControllerPublishVolumeResponse__Output as ControllerPublishVolumeResponse,
  ControllerPublishVolumeResponse as ControllerPublishVolumeResponseInput,
} from './gen/csi/v1/ControllerPublishVolumeResponse.js';
export type {
  ControllerServiceCapability__Output as ControllerServiceCapability,
  ControllerServiceCapability as ControllerServiceCapabilityInput,
  _csi_v1_ControllerServiceCapability_RPC__Output as ControllerServiceCapabilityRPC,
  _csi_v1_ControllerServiceCapability_RPC as ControllerServiceCapabilityRPCInput,
  _csi_v1_ControllerServiceCapability_RPC_Type__Output as ControllerServiceCapabilityRPCType,
  _csi_v1_ControllerServiceCapability_RPC_Type as ControllerServiceCapabilityRPCTypeInput,
} from './gen/csi/v1/ControllerServiceCapability.js';
export type {
  ControllerUnpublishVolumeRequest__Output as ControllerUnpublishVolumeRequest,
  ControllerUnpublishVolumeRequest as ControllerUnpublishVolumeRequestInput,
} from './gen/csi/v1/ControllerUnpublishVolumeRequest.js';
export type {
  ControllerUnpublishVolumeResponse__Output as ControllerUnpublishVolumeResponse,
  ControllerUnpublishVolumeResponse as ControllerUnpublishVolumeResponseInput,
} from './gen/csi/v1/ControllerUnpublishVolumeResponse.js';
export type {
  CreateSnapshotRequest__Output as CreateSnapshotRequest,
  CreateSnapshotRequest as CreateSnapshotRequestInput,
} from './gen/csi/v1/CreateSnapshotRequest.js';
export type {
  CreateSnapshotResponse__Output as CreateSnapshotResponse,
  CreateSnapshotResponse as CreateSnapshotResponseInput,
} from './gen/csi/v1/CreateSnapshotResponse.js';
export type {
  CreateVolumeGroupSnapshotRequest__Output as CreateVolumeGroupSnapshotRequest,
  CreateVolumeGroupSnapshotRequest as CreateVolumeGroupSnapshotRequestInput,
} from './gen/csi/v1/CreateVolumeGroupSnapshotRequest.js';
export type {
  CreateVolumeGroupSnapshotResponse__Output as CreateVolumeGroupSnapshotResponse,
  CreateVolumeGroupSnapshotResponse as CreateVolumeGroupSnapshotResponseInput,
} from './gen/csi/v1/CreateVolumeGroupSnapshotResponse.js';
export type {
  CreateVolumeRequest__Output as CreateVolumeRequest,
  CreateVolumeRequest as CreateVolumeRequestInput,
} from './gen/csi/v1/CreateVolumeRequest.js';
export type {
  CreateVolumeResponse__Output as CreateVolumeResponse,
  CreateVolumeResponse as CreateVolumeResponseInput,
} from './gen/csi/v1/CreateVolumeResponse.js';
export type {
  DeleteSnapshotRequest__Output as DeleteSnapshotRequest,
  DeleteSnapshotRequest as DeleteSnapshotRequestInput,
} from './gen/csi/v1/DeleteSnapshotRequest.js';
export type {
  DeleteSnapshotResponse__Output as DeleteSnapshotResponse,
  DeleteSnapshotResponse as DeleteSnapshotResponseInput,
} from './gen/csi/v1/DeleteSnapshotResponse.js';
export type {
  DeleteVolumeGroupSnapshotRequest__Output as DeleteVolumeGroupSnapshotRequest,
  DeleteVolumeGroupSnapshotRequest as DeleteVolumeGroupSnapshotRequestInput,
} from './gen/csi/v1/DeleteVolumeGroupSnapshotRequest.js';
export type {
  DeleteVolumeGroupSnapshotResponse__Output as DeleteVolumeGroupSnapshotResponse,
  DeleteVolumeGroupSnapshotResponse as DeleteVolumeGroupSnapshotResponseInput,
} from './gen/csi/v1/DeleteVolumeGroupSnapshotResponse.js';
export type {
  DeleteVolumeRequest__Output as DeleteVolumeRequest,
  DeleteVolumeRequest as DeleteVolumeRequestInput,
} from './gen/csi/v1/DeleteVolumeRequest.js';
export type {
  DeleteVolumeResponse__Output as DeleteVolumeResponse,
  DeleteVolumeResponse as DeleteVolumeResponseInput,
} from './gen/csi/v1/DeleteVolumeResponse.js';
export type {
  GetCapacityRequest__Output as GetCapacityRequest,
  GetCapacityRequest as GetCapacityRequestInput,
} from './gen/csi/v1/GetCapacityRequest.js';
export type {
  GetCapacityResponse__Output as GetCapacityResponse,
  GetCapacityResponse as GetCapacityResponseInput,
} from './gen/csi/v1/GetCapacityResponse.js';
export type {
  GetMetadataAllocatedRequest__Output as GetMetadataAllocatedRequest,
  GetMetadataAllocatedRequest as GetMetadataAllocatedRequestInput,
} from './gen/csi/v1/GetMetadataAllocatedRequest.js';
export type {
  GetMetadataAllocatedResponse__Output as GetMetadataAllocatedResponse,
  GetMetadataAllocatedResponse as GetMetadataAllocatedResponseInput,
} from './gen/csi/v1/GetMetadataAllocatedResponse.js';
export type {
  GetMetadataDeltaRequest__Output as GetMetadataDeltaRequest,
  GetMetadataDeltaRequest as GetMetadataDeltaRequestInput,
} from './gen/csi/v1/GetMetadataDeltaRequest.js';
export type {
  GetMetadataDeltaResponse__Output as GetMetadataDeltaResponse,
  GetMetadataDeltaResponse as GetMetadataDeltaResponseInput,
} from './gen/csi/v1/GetMetadataDeltaResponse.js';
export type {
  GetPluginCapabilitiesRequest__Output as GetPluginCapabilitiesRequest,
  GetPluginCapabilitiesRequest as GetPluginCapabilitiesRequestInput,
} from './gen/csi/v1/GetPluginCapabilitiesRequest.js';
export type {
  GetPluginCapabilitiesResponse__Output as GetPluginCapabilitiesResponse,
  GetPluginCapabilitiesResponse as GetPluginCapabilitiesResponseInput,
} from './gen/csi/v1/GetPluginCapabilitiesResponse.js';
export type {
  GetPluginInfoRequest__Output as GetPluginInfoRequest,
  GetPluginInfoRequest as GetPluginInfoRequestInput,
} from './gen/csi/v1/GetPluginInfoRequest.js';
export type {
  GetPluginInfoResponse__Output as GetPluginInfoResponse,
  GetPluginInfoResponse as GetPluginInfoResponseInput,
} from './gen/csi/v1/GetPluginInfoResponse.js';
export type {
  GetSnapshotRequest__Output as GetSnapshotRequest,
  GetSnapshotRequest as GetSnapshotRequestInput,
} from './gen/csi/v1/GetSnapshotRequest.js';
export type {
  GetSnapshotResponse__Output as GetSnapshotResponse,
  GetSnapshotResponse as GetSnapshotResponseInput,
} from './gen/csi/v1/GetSnapshotResponse.js';
export type {
  GetVolumeGroupSnapshotRequest__Output as GetVolumeGroupSnapshotRequest,
  GetVolumeGroupSnapshotRequest as GetVolumeGroupSnapshotRequestInput,
} from './gen/csi/v1/GetVolumeGroupSnapshotRequest.js';
export type {
  GetVolumeGroupSnapshotResponse__Output as GetVolumeGroupSnapshotResponse,
  GetVolumeGroupSnapshotResponse as GetVolumeGroupSnapshotResponseInput,
} from './gen/csi/v1/GetVolumeGroupSnapshotResponse.js';
export type {
  GroupControllerGetCapabilitiesRequest__Output as GroupControllerGetCapabilitiesRequest,
  GroupControllerGetCapabilitiesRequest as GroupControllerGetCapabilitiesRequestInput,
} from './gen/csi/v1/GroupControllerGetCapabilitiesRequest.js';
export type {
  GroupControllerGetCapabilitiesResponse__Output as GroupControllerGetCapabilitiesResponse,
  GroupControllerGetCapabilitiesResponse as GroupControllerGetCapabilitiesResponseInput,
} from './gen/csi/v1/GroupControllerGetCapabilitiesResponse.js';
export type {
  GroupControllerServiceCapability__Output as GroupControllerServiceCapability,
  GroupControllerServiceCapability as GroupControllerServiceCapabilityInput,
  _csi_v1_GroupControllerServiceCapability_RPC__Output as GroupControllerServiceCapabilityRPC,
  _csi_v1_GroupControllerServiceCapability_RPC as GroupControllerServiceCapabilityRPCInput,
  _csi_v1_GroupControllerServiceCapability_RPC_Type__Output as GroupControllerServiceCapabilityRPCType,
  _csi_v1_GroupControllerServiceCapability_RPC_Type as GroupControllerServiceCapabilityRPCTypeInput,
} from './gen/csi/v1/GroupControllerServiceCapability.js';
export type {
  ListSnapshotsRequest__Output as ListSnapshotsRequest,
  ListSnapshotsRequest as ListSnapshotsRequestInput,
} from './gen/csi/v1/ListSnapshotsRequest.js';
export type {
  ListSnapshotsResponse__Output as ListSnapshotsResponse,
  ListSnapshotsResponse as ListSnapshotsResponseInput,
  _csi_v1_ListSnapshotsResponse_Entry__Output as ListSnapshotsResponseEntry,
  _csi_v1_ListSnapshotsResponse_Entry as ListSnapshotsResponseEntryInput,
} from './gen/csi/v1/ListSnapshotsResponse.js';
export type {
  ListVolumesRequest__Output as ListVolumesRequest,
  ListVolumesRequest as ListVolumesRequestInput,
} from './gen/csi/v1/ListVolumesRequest.js';
export type {
  ListVolumesResponse__Output as ListVolumesResponse,
  ListVolumesResponse as ListVolumesResponseInput,
  _csi_v1_ListVolumesResponse_Entry__Output as ListVolumesResponseEntry,
  _csi_v1_ListVolumesResponse_Entry as ListVolumesResponseEntryInput,
  _csi_v1_ListVolumesResponse_VolumeStatus__Output as ListVolumesResponseVolumeStatus,
  _csi_v1_ListVolumesResponse_VolumeStatus as ListVolumesResponseVolumeStatusInput,
} from './gen/csi/v1/ListVolumesResponse.js';
export type {
  NodeExpandVolumeRequest__Output as NodeExpandVolumeRequest,
  NodeExpandVolumeRequest as NodeExpandVolumeRequestInput,
} from './gen/csi/v1/NodeExpandVolumeRequest.js';
export type {
  NodeExpandVolumeResponse__Output as NodeExpandVolumeResponse,
  NodeExpandVolumeResponse as NodeExpandVolumeResponseInput,
} from './gen/csi/v1/NodeExpandVolumeResponse.js';
export type {
  NodeGetCapabilitiesRequest__Output as NodeGetCapabilitiesRequest,
  NodeGetCapabilitiesRequest as NodeGetCapabilitiesRequestInput,
} from './gen/csi/v1/NodeGetCapabilitiesRequest.js';
export type {
  NodeGetCapabilitiesResponse__Output as NodeGetCapabilitiesResponse,
  NodeGetCapabilitiesResponse as NodeGetCapabilitiesResponseInput,
} from './gen/csi/v1/NodeGetCapabilitiesResponse.js';
export type {
  NodeGetInfoRequest__Output as NodeGetInfoRequest,
  NodeGetInfoRequest as NodeGetInfoRequestInput,
} from './gen/csi/v1/NodeGetInfoRequest.js';
export type {
  NodeGetInfoResponse__Output as NodeGetInfoResponse,
  NodeGetInfoResponse as NodeGetInfoResponseInput,
} from './gen/csi/v1/NodeGetInfoResponse.js';
export type {
  NodeGetVolumeStatsRequest__Output as NodeGetVolumeStatsRequest,
  NodeGetVolumeStatsRequest as NodeGetVolumeStatsRequestInput,
} from './gen/csi/v1/NodeGetVolumeStatsRequest.js';
export type {
  NodeGetVolumeStatsResponse__Output as NodeGetVolumeStatsResponse,
  NodeGetVolumeStatsResponse as NodeGetVolumeStatsResponseInput,
} from './gen/csi/v1/NodeGetVolumeStatsResponse.js';
export type {
  NodePublishVolumeRequest__Output as NodePublishVolumeRequest,
  NodePublishVolumeRequest as NodePublishVolumeRequestInput,
} from './gen/csi/v1/NodePublishVolumeRequest.js';
export type {
  NodePublishVolumeResponse__Output as NodePublishVolumeResponse,
  NodePublishVolumeResponse as NodePublishVolumeResponseInput,
} from './gen/csi/v1/NodePublishVolumeResponse.js';
export type {
  NodeServiceCapability__Output as NodeServiceCapability,
  NodeServiceCapability as NodeServiceCapabilityInput,
  _csi_v1_NodeServiceCapability_RPC__Output as NodeServiceCapabilityRPC,
  _csi_v1_NodeServiceCapability_RPC as NodeServiceCapabilityRPCInput,
  _csi_v1_NodeServiceCapability_RPC_Type__Output as NodeServiceCapabilityRPCType,
  _csi_v1_NodeServiceCapability_RPC_Type as NodeServiceCapabilityRPCTypeInput,
} from './gen/csi/v1/NodeServiceCapability.js';
export type {
  NodeStageVolumeRequest__Output as NodeStageVolumeRequest,
  NodeStageVolumeRequest as NodeStageVolumeRequestInput,
} from './gen/csi/v1/NodeStageVolumeRequest.js';
export type {
  NodeStageVolumeResponse__Output as NodeStageVolumeResponse,
  NodeStageVolumeResponse as NodeStageVolumeResponseInput,
} from './gen/csi/v1/NodeStageVolumeResponse.js';
export type {
  NodeUnpublishVolumeRequest__Output as NodeUnpublishVolumeRequest,
  NodeUnpublishVolumeRequest as NodeUnpublishVolumeRequestInput,
} from './gen/csi/v1/NodeUnpublishVolumeRequest.js';
export type {
  NodeUnpublishVolumeResponse__Output as NodeUnpublishVolumeResponse,
  NodeUnpublishVolumeResponse as NodeUnpublishVolumeResponseInput,
} from './gen/csi/v1/NodeUnpublishVolumeResponse.js';
export type {
  NodeUnstageVolumeRequest__Output as NodeUnstageVolumeRequest,
  NodeUnstageVolumeRequest as NodeUnstageVolumeRequestInput,
} from './gen/csi/v1/NodeUnstageVolumeRequest.js';
export type {
  NodeUnstageVolumeResponse__Output as NodeUnstageVolumeResponse,
  NodeUnstageVolumeResponse as NodeUnstageVolumeResponseInput,
} from './gen/csi/v1/NodeUnstageVolumeResponse.js';
export type {
  PluginCapability__Output as PluginCapability,
  PluginCapability as PluginCapabilityInput,
  _csi_v1_PluginCapability_Service__Output as PluginCapabilityService,
  _csi_v1_PluginCapability_Service as PluginCapabilityServiceInput,
  _csi_v1_PluginCapability_Service_Type__Output as PluginCapabilityServiceType,
  _csi_v1_PluginCapability_Service_Type as PluginCapabilityServiceTypeInput,
  _csi_v1_PluginCapability_VolumeExpansion__Output as PluginCapabilityVolumeExpansion,
  _csi_v1_PluginCapability_VolumeExpansion as PluginCapabilityVolumeExpansionInput,
  _csi_v1_PluginCapability_VolumeExpansion_Type__Output as PluginCapabilityVolumeExpansionType,
  _csi_v1_PluginCapability_VolumeExpansion_Type as PluginCapabilityVolumeExpansionTypeInput,
} from './gen/csi/v1/PluginCapability.js';
export type {
  ProbeRequest__Output as ProbeRequest,
  ProbeRequest as ProbeRequestInput,
} from './gen/csi/v1/ProbeRequest.js';
export type {
  ProbeResponse__Output as ProbeResponse,
  ProbeResponse as ProbeResponseInput,
} from './gen/csi/v1/ProbeResponse.js';
export type { Snapshot__Output as Snapshot, Snapshot as SnapshotInput } from './gen/csi/v1/Snapshot.js';
export type { Topology__Output as Topology, Topology as TopologyInput } from './gen/csi/v1/Topology.js';
export type {
  TopologyRequirement__Output as TopologyRequirement,
  TopologyRequirement as TopologyRequirementInput,
} from './gen/csi/v1/TopologyRequirement.js';
export type {
  ValidateVolumeCapabilitiesRequest__Output as ValidateVolumeCapabilitiesRequest,
  ValidateVolumeCapabilitiesRequest as ValidateVolumeCapabilitiesRequestInput,
} from './gen/csi/v1/ValidateVolumeCapabilitiesRequest.js';
export type {
  ValidateVolumeCapabilitiesResponse__Output as ValidateVolumeCapabilitiesResponse,
  ValidateVolumeCapabilitiesResponse as ValidateVolumeCapabilitiesResponseInput,
  _csi_v1_ValidateVolumeCapabilitiesResponse_Confirmed__Output as ValidateVolumeCapabilitiesResponseConfirmed,
  _csi_v1_ValidateVolumeCapabilitiesResponse_Confirmed as ValidateVolumeCapabilitiesResponseConfirmedInput,
} from './gen/csi/v1/ValidateVolumeCapabilitiesResponse.js';
export type { Volume__Output as Volume, Volume as VolumeInput } from './gen/csi/v1/Volume.js';
export type {
  VolumeCapability__Output as VolumeCapability,
  VolumeCapability as VolumeCapabilityInput,
  _csi_v1_VolumeCapability_BlockVolume__Output as VolumeCapabilityBlockVolume,
  _csi_v1_VolumeCapability_BlockVolume as VolumeCapabilityBlockVolumeInput,
  _csi_v1_VolumeCapability_MountVolume__Output as VolumeCapabilityMountVolume,
  _csi_v1_VolumeCapability_MountVolume as VolumeCapabilityMountVolumeInput,
  _csi_v1_VolumeCapability_AccessMode__Output as VolumeCapabilityAccessMode,
  _csi_v1_VolumeCapability_AccessMode as VolumeCapabilityAccessModeInput,
  _csi_v1_VolumeCapability_AccessMode_Mode__Output as VolumeCapabilityAccessModeMode,
  _csi_v1_VolumeCapability_AccessMode_Mode as VolumeCapabilityAccessModeModeInput,
} from './gen/csi/v1/VolumeCapability.js';
export type {
  VolumeCondition__Output as VolumeCondition,
  VolumeCondition as VolumeConditionInput,
} from './gen/csi/v1/VolumeCondition.js';
export type {
  VolumeContentSource__Output as VolumeContentSource,
  VolumeContentSource as VolumeContentSourceInput,
  _csi_v1_VolumeContentSource_SnapshotSource__Output as VolumeContentSourceSnapshotSource,
  _csi_v1_VolumeContentSource_SnapshotSource as VolumeContentSourceSnapshotSourceInput,
  _csi_v1_VolumeContentSource_VolumeSource__Output as VolumeContentSourceVolumeSource,
  _csi_v1_VolumeContentSource_VolumeSource as VolumeContentSourceVolumeSourceInput,
} from './gen/csi/v1/VolumeContentSource.js';
export type {
  VolumeGroupSnapshot__Output as VolumeGroupSnapshot,
  VolumeGroupSnapshot as VolumeGroupSnapshotInput,
} from './gen/csi/v1/VolumeGroupSnapshot.js';
export type {
  VolumeUsage__Output as VolumeUsage,
  VolumeUsage as VolumeUsageInput,
  _csi_v1_VolumeUsage_Unit__Output as VolumeUsageUnit,
  _csi_v1_VolumeUsage_Unit as VolumeUsageUnitInput,
} from './gen/csi/v1/VolumeUsage.js';
