import { stat } from 'node:fs/promises';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, OutOfRangeError } from '../csi/errors.js';
import type { CallContext, NodeService } from '../csi/server.js';
import type { Backend, Capability, VolumeRecord } from './backends/backend.js';
import type { NodePaths } from './backends/node-paths.js';
import { parseRange } from './capacity.js';
import { nodeVolume, readyNodeVolume } from './volume-lookup.js';
import type { InFlight } from './inflight.js';
import { parseCapability, requireIdentifier, requirePath, requireStringMap, type WireCapability } from './validate.js';

export const NODE_CAPABILITIES = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER'] as const;

export interface NodeDeps {
  backend: Backend;
  inflight: InFlight;
  /** Where staging, target and volume paths may be: beneath the kubelet directories, off our own storage. */
  paths: NodePaths;
}

const volumeKey = (id: string) => `volume ${id}`;

/**
 * The CSI Node service: stage (attach, format if blank, mount at the staging path), publish
 * (bind into the pod's path), and their reverses, stats and expansion. Same order as the
 * controller: validate, lock, look up, work.
 */
export function nodeService({ backend, inflight, paths }: NodeDeps): NodeService {
  const opCtx = (ctx: CallContext, secrets: Record<string, string> | undefined) => ({ log: ctx.log, secrets: secrets ?? {} });
  /** Part of validation: well-formed (validate.ts), then beneath a kubelet directory and canonical (node-paths.ts). */
  const path = (field: string, value: string | undefined) => paths.resolve(field, requirePath(field, value));
  /**
   * volume_path in stats and expansion names a path we published earlier. One that is relative
   * or doesn't exist can't be ours: NOT_FOUND, as csi-sanity expects, rather than INVALID_ARGUMENT.
   */
  const volumePathOf = (value: string | undefined): Promise<string> => {
    if (value && !value.startsWith('/') && !value.includes('\0')) throw new NotFoundError(`volume path ${value} does not exist`);
    return path('volume_path', value);
  };


  /** A capability the volume was not created with exceeds it: FAILED_PRECONDITION per the spec. */
  function checkFits(rec: VolumeRecord, cap: Capability): void {
    const why = backend.unsupportedCapability(cap);
    if (why) throw new InvalidArgumentError(why);
    if (cap.accessType !== rec.accessType) {
      throw new FailedPreconditionError(`volume ${rec.id} is a ${rec.accessType} volume and cannot be used as ${cap.accessType}`);
    }
    const fsType = rec.fsType || backend.defaultFsType;
    if (cap.accessType === 'mount' && cap.fsType !== '' && cap.fsType !== fsType) {
      throw new FailedPreconditionError(`volume ${rec.id} has fs type ${fsType}, not ${cap.fsType}`);
    }
  }

  return {
    async NodeGetCapabilities() {
      return { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) };
    },

    async NodeGetInfo() {
      const segments = backend.nodeTopology();
      return {
        node_id: backend.nodeId,
        max_volumes_per_node: backend.maxVolumesPerNode,
        // A backend reachable from every node (rbd) has no topology and advertises none.
        accessible_topology: Object.keys(segments).length > 0 ? { segments } : null,
      };
    },

    async NodeStageVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const stagingPath = await path('staging_target_path', req.staging_target_path);
      const capability = parseCapability('volume_capability', req.volume_capability as WireCapability);
      const publishContext = requireStringMap('publish_context', req.publish_context);
      const volumeContext = requireStringMap('volume_context', req.volume_context);
      return inflight.with([volumeKey(id)], async () => {
        const op = opCtx(ctx, req.secrets);
        const rec = await nodeVolume(backend, id, op, 'stage');
        checkFits(rec, capability);
        await backend.stage({ volume: rec, stagingPath, capability, publishContext, volumeContext }, op);
        ctx.log.info({ volumeId: id, stagingPath }, 'volume staged');
        return {};
      });
    },

    async NodeUnstageVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const stagingPath = await path('staging_target_path', req.staging_target_path);
      return inflight.with([volumeKey(id)], async () => {
        await backend.unstage(id, stagingPath, opCtx(ctx, {}));
        ctx.log.info({ volumeId: id, stagingPath }, 'volume unstaged');
        return {};
      });
    },

    async NodePublishVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const targetPath = await path('target_path', req.target_path);
      const capability = parseCapability('volume_capability', req.volume_capability as WireCapability);
      // We advertise STAGE_UNSTAGE_VOLUME: the spec's answer to a publish without a staging path
      // is FAILED_PRECONDITION ("Staging target path not set"), after the arguments are checked.
      if (!req.staging_target_path) throw new FailedPreconditionError('staging_target_path is required: stage the volume first');
      const stagingPath = await path('staging_target_path', req.staging_target_path);
      return inflight.with([volumeKey(id)], async () => {
        const op = opCtx(ctx, req.secrets);
        const rec = await nodeVolume(backend, id, op, 'publish');
        checkFits(rec, capability);
        await backend.publish({ volume: rec, stagingPath, targetPath, capability, readonly: req.readonly === true }, op);
        ctx.log.info({ volumeId: id, targetPath, readonly: req.readonly === true }, 'volume published');
        return {};
      });
    },

    async NodeUnpublishVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const targetPath = await path('target_path', req.target_path);
      return inflight.with([volumeKey(id)], async () => {
        await backend.unpublish(id, targetPath, opCtx(ctx, {}));
        ctx.log.info({ volumeId: id, targetPath }, 'volume unpublished');
        return {};
      });
    },

    async NodeGetVolumeStats(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      if (!req.volume_path) throw new InvalidArgumentError('volume_path is required');
      const rec = await readyNodeVolume(backend, id, opCtx(ctx, {}));
      const volumePath = await volumePathOf(req.volume_path);
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
      const stagingPath = req.staging_target_path ? await path('staging_target_path', req.staging_target_path) : '';
      const range = req.capacity_range ? parseRange('capacity_range', req.capacity_range) : undefined;
      const capability = req.volume_capability ? parseCapability('volume_capability', req.volume_capability as WireCapability) : undefined;
      return inflight.with([volumeKey(id)], async () => {
        const op = opCtx(ctx, req.secrets);
        const rec = await nodeVolume(backend, id, op, 'expand');
        // Spec: a capability the volume does not have "exceeds capabilities" (INVALID_ARGUMENT here,
        // unlike stage and publish); a limit below its size is a shrink, "unsupported capacity".
        if (capability) {
          const fsType = rec.fsType || backend.defaultFsType;
          if (capability.accessType !== rec.accessType) throw new InvalidArgumentError(`volume ${id} is a ${rec.accessType} volume, not ${capability.accessType}`);
          if (capability.accessType === 'mount' && capability.fsType !== '' && capability.fsType !== fsType) {
            throw new InvalidArgumentError(`volume ${id} has fs type ${fsType}, not ${capability.fsType}`);
          }
        }
        if (range && range.limit > 0 && rec.capacityBytes > range.limit) {
          throw new OutOfRangeError(`volume ${id} already has ${rec.capacityBytes} bytes, more than limit_bytes ${range.limit}; volumes cannot shrink`);
        }
        const volumePath = await volumePathOf(req.volume_path);
        if (!(await pathExists(volumePath))) throw new NotFoundError(`volume path ${volumePath} does not exist`);
        const { capacityBytes } = await backend.nodeExpand(rec, volumePath, stagingPath, op);
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
  } catch (e) {
    // A mount whose filesystem stopped answering (a FUSE daemon gone) is there, just broken: the
    // backend reports that as an abnormal volume condition rather than "no such path".
    return ['ENOTCONN', 'ESTALE', 'EIO'].includes((e as NodeJS.ErrnoException).code ?? '');
  }
}
