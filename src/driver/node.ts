import { stat } from 'node:fs/promises';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../csi/errors.js';
import type { CallContext, NodeService } from '../csi/server.js';
import type { Backend, Capability, VolumeRecord } from './backends/backend.js';
import { parseRange } from './capacity.js';
import type { InFlight } from './inflight.js';
import { parseCapability, requireIdentifier, requirePath, requireStringMap, type WireCapability } from './validate.js';

export const NODE_CAPABILITIES = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER'] as const;

export interface NodeDeps {
  backend: Backend;
  inflight: InFlight;
  /** Paths the CO may never give us (the pool itself). */
  ownPaths: string[];
}

const volumeKey = (id: string) => `volume ${id}`;

/**
 * The CSI Node service: stage (attach, format if blank, mount at the staging path), publish
 * (bind into the pod's path), and their reverses, stats and expansion. Same order as the
 * controller: validate, lock, look up, work.
 */
export function nodeService({ backend, inflight, ownPaths }: NodeDeps): NodeService {
  const opCtx = (ctx: CallContext, secrets: Record<string, string>) => ({ log: ctx.log, secrets });
  const path = (field: string, value: string | undefined) => requirePath(field, value, ownPaths);
  /**
   * volume_path in stats and expansion names a path we published earlier. One that is relative
   * or doesn't exist can't be ours: NOT_FOUND, as csi-sanity expects, rather than INVALID_ARGUMENT.
   */
  const volumePathOf = (value: string | undefined): string => {
    if (value && !value.startsWith('/') && !value.includes('\0')) throw new NotFoundError(`volume path ${value} does not exist`);
    return path('volume_path', value);
  };

  async function volume(id: string): Promise<VolumeRecord> {
    const rec = await backend.volumes.get(id);
    if (!rec || rec.state !== 'ready') throw new NotFoundError(`volume ${id} does not exist`);
    return rec;
  }

  /** A capability the volume was not created with exceeds it: FAILED_PRECONDITION per the spec. */
  function checkFits(rec: VolumeRecord, cap: Capability): void {
    const why = backend.unsupportedCapability(cap);
    if (why) throw new InvalidArgumentError(why);
    if (cap.accessType !== rec.accessType) {
      throw new FailedPreconditionError(`volume ${rec.id} is a ${rec.accessType} volume and cannot be used as ${cap.accessType}`);
    }
    if (cap.accessType === 'mount' && cap.fsType !== '' && cap.fsType !== (rec.fsType || 'btrfs')) {
      throw new FailedPreconditionError(`volume ${rec.id} has fs type ${rec.fsType || 'btrfs'}, not ${cap.fsType}`);
    }
  }

  return {
    async NodeGetCapabilities() {
      return { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) };
    },

    async NodeGetInfo() {
      return {
        node_id: backend.nodeId,
        max_volumes_per_node: backend.maxVolumesPerNode,
        accessible_topology: { segments: backend.nodeTopology() },
      };
    },

    async NodeStageVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const stagingPath = path('staging_target_path', req.staging_target_path);
      const capability = parseCapability('volume_capability', req.volume_capability as WireCapability);
      const publishContext = requireStringMap('publish_context', req.publish_context);
      const volumeContext = requireStringMap('volume_context', req.volume_context);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await volume(id);
        checkFits(rec, capability);
        await backend.stage({ volume: rec, stagingPath, capability, publishContext, volumeContext }, opCtx(ctx, req.secrets ?? {}));
        ctx.log.info({ volumeId: id, stagingPath }, 'volume staged');
        return {};
      });
    },

    async NodeUnstageVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const stagingPath = path('staging_target_path', req.staging_target_path);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await backend.volumes.get(id);
        if (!rec) throw new NotFoundError(`volume ${id} does not exist`);
        await backend.unstage(rec, stagingPath, opCtx(ctx, {}));
        ctx.log.info({ volumeId: id, stagingPath }, 'volume unstaged');
        return {};
      });
    },

    async NodePublishVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const targetPath = path('target_path', req.target_path);
      const capability = parseCapability('volume_capability', req.volume_capability as WireCapability);
      // We advertise STAGE_UNSTAGE_VOLUME: the spec's answer to a publish without a staging path
      // is FAILED_PRECONDITION ("Staging target path not set"), after the arguments are checked.
      if (!req.staging_target_path) throw new FailedPreconditionError('staging_target_path is required: stage the volume first');
      const stagingPath = path('staging_target_path', req.staging_target_path);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await volume(id);
        checkFits(rec, capability);
        await backend.publish({ volume: rec, stagingPath, targetPath, capability, readonly: req.readonly === true }, opCtx(ctx, req.secrets ?? {}));
        ctx.log.info({ volumeId: id, targetPath, readonly: req.readonly === true }, 'volume published');
        return {};
      });
    },

    async NodeUnpublishVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const targetPath = path('target_path', req.target_path);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await backend.volumes.get(id);
        if (!rec) throw new NotFoundError(`volume ${id} does not exist`);
        await backend.unpublish(rec, targetPath, opCtx(ctx, {}));
        ctx.log.info({ volumeId: id, targetPath }, 'volume unpublished');
        return {};
      });
    },

    async NodeGetVolumeStats(req) {
      const id = requireIdentifier('volume_id', req.volume_id);
      if (!req.volume_path) throw new InvalidArgumentError('volume_path is required');
      const rec = await volume(id);
      const volumePath = volumePathOf(req.volume_path);
      if (!(await pathExists(volumePath))) throw new NotFoundError(`volume path ${volumePath} does not exist`);
      const u = await backend.usage(rec, volumePath);
      const usage =
        u.kind === 'block'
          ? [{ unit: 'BYTES' as const, total: u.totalBytes }]
          : [
              { unit: 'BYTES' as const, total: u.totalBytes, used: u.usedBytes ?? 0, available: u.availableBytes ?? 0 },
              // btrfs has no fixed inode count; report inodes only where they mean something.
              ...(u.totalInodes
                ? [{ unit: 'INODES' as const, total: u.totalInodes, used: u.usedInodes ?? 0, available: u.freeInodes ?? 0 }]
                : []),
            ];
      return { usage, volume_condition: u.health };
    },

    async NodeExpandVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      if (!req.volume_path) throw new InvalidArgumentError('volume_path is required');
      const stagingPath = req.staging_target_path ? path('staging_target_path', req.staging_target_path) : '';
      if (req.capacity_range) parseRange('capacity_range', req.capacity_range);
      if (req.volume_capability) parseCapability('volume_capability', req.volume_capability as WireCapability);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await volume(id);
        const volumePath = volumePathOf(req.volume_path);
        if (!(await pathExists(volumePath))) throw new NotFoundError(`volume path ${volumePath} does not exist`);
        const { capacityBytes } = await backend.nodeExpand(rec, volumePath, stagingPath, opCtx(ctx, req.secrets ?? {}));
        ctx.log.info({ volumeId: id, capacityBytes }, 'volume expanded on node');
        return { capacity_bytes: capacityBytes };
      });
    },
  };
}

async function pathExists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
