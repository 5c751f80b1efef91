// A bounded, in-memory record of the CSI calls a control plane makes (controllers and node agents
// alike), for the web console's "journey of a volume": which RPC, for which volume, on which node,
// with which staging/target path, when, how long it took and how it ended. Only those fields are
// copied out of a request, by name, so secrets and parameters never enter it; the oldest calls fall
// off once `capacity` is reached.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { CsiCallRecord } from './call-record.js';

export type { CsiCallRecord } from './call-record.js';

/** What a client tells its observer about one finished call. */
export interface CsiCallObservation {
  method: string;
  endpoint: string;
  request: object;
  response: unknown;
  started: number;
  durationMs: number;
  /** The node whose plugin served the call, when the caller knows it. */
  node?: string;
  /** gRPC status code number; 0 = OK. */
  code: number;
  message?: string;
}

export type CsiCallObserver = (call: CsiCallObservation) => void;

export const DEFAULT_JOURNAL_CAPACITY = 5000;

const CODE_NAMES = new Map<number, string>(Object.entries(grpcStatus).flatMap(([name, n]) => (typeof n === 'number' ? [[n, name] as [number, string]] : [])));

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[key] : undefined;
}

export class CsiCallJournal {
  private readonly ring: CsiCallRecord[] = [];
  private next = 0;
  private seq = 0;

  constructor(readonly capacity = DEFAULT_JOURNAL_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`journal capacity must be a positive integer, not ${capacity}`);
  }

  /**
   * An observer for CsiClient: records the calls that name a volume, a snapshot or a node; Probe
   * and capability calls are left out, and so are the volume stats polls that succeed (one per
   * volume every few seconds: they would push every volume's journey out of the ring).
   */
  readonly observe: CsiCallObserver = (call) => {
    const { request, response } = call;
    if (call.method === 'NodeGetVolumeStats' && call.code === 0) return;
    const volumeId = str(field(request, 'volume_id')) ?? str(field(field(response, 'volume'), 'volume_id')) ?? str(field(request, 'source_volume_id'));
    const volumeName = call.method === 'CreateVolume' ? str(field(request, 'name')) : undefined;
    const snapshotId = str(field(request, 'snapshot_id')) ?? str(field(field(response, 'snapshot'), 'snapshot_id'));
    if (volumeId === undefined && volumeName === undefined && snapshotId === undefined) return;
    const node = str(field(request, 'node_id')) ?? call.node;
    const record: CsiCallRecord = {
      seq: ++this.seq,
      method: call.method,
      endpoint: call.endpoint,
      startTime: new Date(call.started).toISOString(),
      durationMs: Math.round(call.durationMs * 1000) / 1000,
      code: CODE_NAMES.get(call.code) ?? String(call.code),
    };
    if (volumeId !== undefined) record.volumeId = volumeId;
    if (volumeName !== undefined) record.volumeName = volumeName;
    if (snapshotId !== undefined) record.snapshotId = snapshotId;
    if (node !== undefined) record.node = node;
    const staging = str(field(request, 'staging_target_path'));
    if (staging !== undefined) record.stagingTargetPath = staging;
    const target = str(field(request, 'target_path'));
    if (target !== undefined) record.targetPath = target;
    if (call.code !== 0 && call.message !== undefined) record.message = call.message;
    this.add(record);
  };

  private add(record: CsiCallRecord): void {
    if (this.ring.length < this.capacity) this.ring.push(record);
    else this.ring[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
  }

  /** The calls kept, oldest first; with `volume`, those about that volume ID (or CreateVolume name). */
  calls(volume?: string): CsiCallRecord[] {
    const all = this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return volume === undefined ? all : all.filter((c) => c.volumeId === volume || c.volumeName === volume);
  }
}
