import { NotFoundError } from '../csi/errors.js';
import type { Backend, ControllerBackend, NodeCall, OpContext, VolumeRecord } from './backends/backend.js';

/**
 * Looking volumes up by ID.
 *
 * CreateVolume writes the 'creating' reservation durably before any storage exists, but marks the
 * volume 'ready' without waiting for the disk: the mark rides on the journal's next group sync,
 * which halves the syncs a create waits for. If power fails in that window, the record still says
 * 'creating' although the CO was told the volume exists. Such a record has whole storage, so a
 * caller that holds the volume's lock finishes it instead of answering NOT_FOUND.
 */

/** A ready volume, for calls that do not hold its lock: anything unfinished is NOT_FOUND. */
export async function readyVolume(backend: ControllerBackend, id: string, ctx: OpContext): Promise<VolumeRecord> {
  const rec = await backend.volumes.get(id, ctx);
  if (rec?.state !== 'ready') throw new NotFoundError(`volume ${id} does not exist`);
  return rec;
}

/** A ready volume, for calls that hold its lock: a created volume whose mark was lost is finished first. */
export async function lockedVolume(backend: ControllerBackend, id: string, ctx: OpContext): Promise<VolumeRecord> {
  return finishIfLost(backend, id, await backend.volumes.get(id, ctx), ctx);
}

/**
 * The node side's view of a volume (NodeStage, NodePublish, NodeExpand), for calls that hold its
 * lock: Backend.nodeVolume, which for rbd is the stash written at stage when the call has no secrets.
 * The whole Backend: a volume whose ready mark was lost is finished with the controller half.
 */
export async function nodeVolume(backend: Backend, id: string, ctx: OpContext, call: NodeCall): Promise<VolumeRecord> {
  return finishIfLost(backend, id, await backend.nodeVolume(id, ctx, call), ctx);
}

/** The same without the lock (NodeGetVolumeStats): anything unfinished is NOT_FOUND. */
export async function readyNodeVolume(backend: Backend, id: string, ctx: OpContext): Promise<VolumeRecord> {
  const rec = await backend.nodeVolume(id, ctx, 'stats');
  if (rec?.state !== 'ready') throw new NotFoundError(`volume ${id} does not exist`);
  return rec;
}

async function finishIfLost(backend: ControllerBackend, id: string, rec: VolumeRecord | undefined, ctx: OpContext): Promise<VolumeRecord> {
  if (!rec) throw new NotFoundError(`volume ${id} does not exist`);
  if (rec.state === 'ready') return rec;
  if (!(await backend.hasStorage(rec))) throw new NotFoundError(`volume ${id} does not exist`);
  ctx.log.info({ volumeId: id }, 'finishing a volume whose ready mark was lost');
  await backend.createVolume(rec, ctx);
  rec.state = 'ready';
  await backend.volumes.put(rec, true, ctx);
  return rec;
}
