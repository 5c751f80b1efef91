// One entry of the CSI call journal (call-journal.ts), as `/ui/api/csi-calls` serves it. Its own
// file with no imports, so the web console (ui/, browser code) shares the type instead of a copy.
export interface CsiCallRecord {
  /** Increasing per journal: the order calls started in. */
  seq: number;
  /** The RPC's short name: "CreateVolume", "NodeStageVolume", … */
  method: string;
  /** The volume the call is about (volume_id, or for CreateVolume the name asked for until the answer names the ID). */
  volumeId?: string;
  /** CreateVolume's name (the PV's name for the embedded provisioner). */
  volumeName?: string;
  snapshotId?: string;
  /** The node: a Node call's node agent, ControllerPublish's node_id. */
  node?: string;
  stagingTargetPath?: string;
  targetPath?: string;
  /** The plugin's socket. */
  endpoint: string;
  /** ISO time the call started. */
  startTime: string;
  durationMs: number;
  /** gRPC status name: "OK", "NOT_FOUND", … */
  code: string;
  message?: string;
}
