import {
  AbortedError,
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  CsiError,
  UnimplementedError,
} from '../csi/errors.js';
import { status } from '@grpc/grpc-js';
import type { ControllerService } from '../csi/server.js';
import { CONTROLLER_CAPABILITIES } from './backends/backend.js';
import type { Backend, Capability, ControllerCapability, Journal, OpContext, SnapshotRecord, Topology, VolumeRecord, VolumeSource } from './backends/backend.js';
import { parseRange, sizeFor } from './capacity.js';
import type { InFlight } from './inflight.js';
import { opContext } from './op-context.js';
import { paginate } from './pagination.js';
import { lockedVolume, readyVolume } from './volume-lookup.js';
import { parseCapabilities, parseCapability, requireIdentifier, requireStringMap, type WireCapability } from './validate.js';

/** Re-exported: the full list lives beside the Backend contract (backends pick subsets of it). */
export { CONTROLLER_CAPABILITIES };

/** Errors that mean "never", as opposed to "not now": a half-done create that ends in one is rolled back. */
const FINAL_CODES: ReadonlySet<number> = new Set([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.OUT_OF_RANGE,
  status.RESOURCE_EXHAUSTED,
  status.ALREADY_EXISTS,
]);

export interface ControllerDeps {
  backend: Backend;
  inflight: InFlight;
}

const volumeKey = (id: string) => `volume ${id}`;
const volumeNameKey = (name: string) => `volume name "${name}"`;
const snapshotKey = (id: string) => `snapshot ${id}`;
const snapshotNameKey = (name: string) => `snapshot name "${name}"`;

/**
 * The CSI Controller service. Every RPC follows one order: argument validation, then the
 * per-volume try-lock (ABORTED when busy), then lookup, then the backend's work.
 */
export function controllerService({ backend, inflight }: ControllerDeps): ControllerService {
  /** The default for a journal that cannot list (Journal.list left out): not served. */
  const listAll = <T extends { id: string; name: string }>(journal: Journal<T>, rpc: string, op: OpContext): Promise<T[]> => {
    if (!journal.list) throw new UnimplementedError(`${rpc} is not supported by the ${backend.kind} backend`);
    return journal.list(op);
  };
  /** Not advertised, so not served: UNIMPLEMENTED rather than a half-working answer. */
  const requireCapability = (cap: ControllerCapability, rpc: string) => {
    if (!backend.controllerCapabilities.includes(cap)) {
      throw new UnimplementedError(`${rpc} is not supported by the ${backend.kind} backend (no ${cap} capability)`);
    }
  };


  function toWireVolume(rec: VolumeRecord) {
    return {
      volume_id: rec.id,
      capacity_bytes: rec.capacityBytes,
      volume_context: rec.volumeContext,
      content_source: rec.source
        ? rec.source.kind === 'snapshot'
          ? { snapshot: { snapshot_id: rec.source.id } }
          : { volume: { volume_id: rec.source.id } }
        : null,
      accessible_topology: rec.accessibleTopology.map((segments) => ({ segments })),
    };
  }

  function toWireSnapshot(s: SnapshotRecord) {
    const ms = Date.parse(s.createdAt);
    return {
      snapshot_id: s.id,
      source_volume_id: s.sourceVolumeId,
      size_bytes: s.sizeBytes,
      creation_time: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
      ready_to_use: s.state === 'ready',
      group_snapshot_id: s.groupSnapshotId ?? '',
    };
  }

  async function volumeStatus(rec: VolumeRecord, op: OpContext) {
    return {
      published_node_ids: [] as string[],
      volume_condition: backend.controllerCapabilities.includes('VOLUME_CONDITION') ? await backend.controllerHealth(rec, op) : null,
    };
  }

  /** All capabilities of one request must be servable and agree on block vs mount and fs type. */
  function volumeShape(caps: Capability[]): { accessType: 'mount' | 'block'; fsType: string } {
    for (const cap of caps) {
      const why = backend.unsupportedCapability(cap);
      if (why) throw new InvalidArgumentError(why);
    }
    const types = new Set(caps.map((c) => c.accessType));
    if (types.size > 1) throw new InvalidArgumentError('volume_capabilities mix block and mount access types');
    const fsTypes = new Set(caps.map((c) => c.fsType).filter((f) => f !== ''));
    if (fsTypes.size > 1) throw new InvalidArgumentError(`volume_capabilities ask for different fs types: ${[...fsTypes].join(', ')}`);
    return { accessType: caps[0]!.accessType, fsType: [...fsTypes][0] ?? '' };
  }

  function parseTopology(list: { segments?: Record<string, string> }[] | undefined): Topology[] {
    return (list ?? []).map((t) => requireStringMap('topology segments', t.segments));
  }

  const describe = (s: { accessType: string; fsType: string }) => describeShape(s, backend.defaultFsType);
  /** Same access type and, for mount, the same filesystem: '' is the backend's default, so it equals naming it. */
  const sameShape = (a: { accessType: string; fsType: string }, b: { accessType: string; fsType: string }) =>
    a.accessType === b.accessType && (a.accessType !== 'mount' || (a.fsType || backend.defaultFsType) === (b.fsType || backend.defaultFsType));

  /** The backend's pool admission, or just the write for backends without one (their storage enforces its own). */
  const reserve = (bytes: number, purpose: 'create' | 'expand', volumeId: string, commit: () => Promise<void>): Promise<void> =>
    backend.reserveCapacity ? backend.reserveCapacity({ bytes, purpose, volumeId }, commit) : commit();

  function sameSource(a: VolumeSource | undefined, b: VolumeSource | undefined): boolean {
    return (a?.kind ?? '') === (b?.kind ?? '') && (a?.id ?? '') === (b?.id ?? '');
  }

  /**
   * The first parameter of `asked` that `made` (a volume's parameters) does not have with that
   * value; both ways when `both`. The sidecars' csi.storage.k8s.io/* keys describe the CO's
   * objects, not the volume: they never count.
   */
  function differingParameter(made: Record<string, string>, asked: Record<string, string>, both: boolean): string | undefined {
    const keys = both ? new Set([...Object.keys(made), ...Object.keys(asked)]) : new Set(Object.keys(asked));
    return [...keys].sort().find((k) => !k.startsWith('csi.storage.k8s.io/') && made[k] !== asked[k]);
  }

  return {
    async ControllerGetCapabilities() {
      const served = backend.controllerCapabilities;
      return { capabilities: CONTROLLER_CAPABILITIES.filter((c) => served.includes(c)).map((type) => ({ rpc: { type } })) };
    },

    async CreateVolume(req, ctx) {
      const name = requireIdentifier('name', req.name);
      const caps = parseCapabilities('volume_capabilities', req.volume_capabilities as WireCapability[]);
      const shape = volumeShape(caps);
      const parameters = requireStringMap('parameters', req.parameters);
      backend.checkParameters(parameters, 'volume');
      const range = parseRange('capacity_range', req.capacity_range);
      let source: VolumeSource | undefined;
      const content = req.volume_content_source;
      if (content?.snapshot) source = { kind: 'snapshot', id: requireIdentifier('volume_content_source.snapshot.snapshot_id', content.snapshot.snapshot_id) };
      else if (content?.volume) source = { kind: 'volume', id: requireIdentifier('volume_content_source.volume.volume_id', content.volume.volume_id) };
      else if (content) throw new InvalidArgumentError('volume_content_source must name a snapshot or a volume');
      const requirement = req.accessibility_requirements;
      const topology = backend.placeVolume(parseTopology(requirement?.requisite), parseTopology(requirement?.preferred));
      const op = opContext(ctx, req.secrets, { parameters });

      const keys = [volumeNameKey(name)];
      if (source?.kind === 'volume') keys.push(volumeKey(source.id));
      // Restores from one snapshot run side by side (a StatefulSet's replicas from one backup);
      // DeleteSnapshot, which takes the snapshot alone, waits for them.
      const sharedKeys = source?.kind === 'snapshot' ? [snapshotKey(source.id)] : [];
      return inflight.with(keys, async () => {
        // The size a source implies: a restore is never smaller than what it restores.
        let sourceBytes = 0;
        if (source?.kind === 'snapshot') {
          const snap = await backend.snapshots.get(source.id, op);
          if (snap?.state !== 'ready') throw new NotFoundError(`snapshot ${source.id} does not exist`);
          const from = { accessType: snap.sourceAccessType, fsType: snap.sourceFsType };
          if (!sameShape(from, shape)) {
            throw new InvalidArgumentError(`snapshot ${source.id} holds a ${describe(from)} volume; it cannot be restored as ${describe(shape)}`);
          }
          sourceBytes = snap.sizeBytes;
        } else if (source?.kind === 'volume') {
          const from = await backend.volumes.get(source.id, op);
          if (from?.state !== 'ready') throw new NotFoundError(`source volume ${source.id} does not exist`);
          if (!sameShape(from, shape)) {
            throw new InvalidArgumentError(`volume ${source.id} is a ${describe(from)} volume; it cannot be cloned as ${describe(shape)}`);
          }
          sourceBytes = from.capacityBytes;
        }
        if (range.limit > 0 && sourceBytes > range.limit) {
          throw new OutOfRangeError(`the source holds ${sourceBytes} bytes, more than limit_bytes ${range.limit}`);
        }
        const capacityBytes = sizeFor(backend, range, shape, sourceBytes);

        let rec = await backend.volumes.byName(name, op);
        if (rec) {
          const fits =
            rec.capacityBytes >= range.required &&
            (range.limit === 0 || rec.capacityBytes <= range.limit) &&
            sameShape(rec, shape) &&
            sameSource(rec.source, source) &&
            // The spec lists parameters among what makes a same-named request incompatible.
            differingParameter(rec.parameters, parameters, true) === undefined;
          if (rec.state === 'ready') {
            if (!fits) throw new AlreadyExistsError(`volume "${name}" already exists (${rec.id}) with a different size, type, source or parameters`);
            return { volume: toWireVolume(rec) };
          }
          if (!fits) {
            // A create that crashed halfway and is now retried differently: undo it, then start over.
            ctx.log.info({ volumeId: rec.id, name }, 'rolling back a half-created volume');
            await backend.deleteVolume(rec, op);
            await backend.volumes.remove(rec.id, op);
            rec = undefined;
          }
        }
        if (!rec) {
          rec = {
            id: await backend.newVolumeId(op),
            name,
            state: 'creating',
            capacityBytes,
            accessType: shape.accessType,
            fsType: shape.fsType,
            accessModes: caps.map((c) => c.accessMode),
            parameters,
            ...(source ? { source } : {}),
            accessibleTopology: topology,
            volumeContext: {},
            publishedNodes: [],
            createdAt: new Date().toISOString(),
          };
          // The reservation is durable before any storage exists, so a crash never orphans storage.
          // It is also the capacity promise: admitted under the pool's lock, so concurrent creates
          // cannot together pass the limit, and from then on it counts (a retry is not re-admitted).
          const reserved = rec;
          await reserve(capacityBytes, 'create', reserved.id, () => backend.volumes.put(reserved, true, op));
        }
        const done = rec;
        await inflight.with([volumeKey(done.id)], async () => {
          try {
            await backend.createVolume(done, op);
          } catch (e) {
            // A refusal that no retry will change: undo the reservation rather than leave it half-done.
            // A final code tells the CO that nothing exists under the name (it may move the claim to
            // another node, or forget a deleted one): only once the undoing is done. Until then
            // the answer is ABORTED, so that the CO calls again by the same name, which finishes it.
            if (e instanceof CsiError && FINAL_CODES.has(e.code)) {
              try {
                await backend.deleteVolume(done, op);
                await backend.volumes.remove(done.id, op);
              } catch (cleanup) {
                ctx.log.warn({ volumeId: done.id, err: (cleanup as Error).message }, 'could not undo a refused volume; answering ABORTED so that the CO retries');
                throw new AbortedError(`volume "${name}" was refused (${e.message}) and undoing its reservation failed (${(cleanup as Error).message}); call again to finish`);
              }
            }
            throw e;
          }
          done.state = 'ready';
          // Not waited for: the mark rides on the next group sync (see volume-lookup.ts).
          await backend.volumes.put(done, false, op);
        });
        ctx.log.info({ volumeId: done.id, name, capacityBytes: done.capacityBytes }, 'volume created');
        return { volume: toWireVolume(done) };
      }, sharedKeys);
    },

    async DeleteVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const op = opContext(ctx, req.secrets);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await backend.volumes.get(id, op);
        if (!rec) return {};
        return inflight.with([volumeNameKey(rec.name)], async () => {
          const busy = await backend.volumeInUse(rec, op);
          if (busy) throw new FailedPreconditionError(busy);
          await backend.deleteVolume(rec, op);
          await backend.volumes.remove(id, op);
          ctx.log.info({ volumeId: id, name: rec.name }, 'volume deleted');
          return {};
        });
      });
    },

    async ValidateVolumeCapabilities(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      const caps = parseCapabilities('volume_capabilities', req.volume_capabilities as WireCapability[]);
      const parameters = requireStringMap('parameters', req.parameters);
      const rec = await readyVolume(backend, id, opContext(ctx, req.secrets));
      // Confirmed means all of it: parameters and a volume context the volume was not made with are not.
      const param = differingParameter(rec.parameters, parameters, false);
      if (param !== undefined) {
        return { message: `volume ${id} was created with parameter ${param} ${JSON.stringify(rec.parameters[param] ?? null)}, not ${JSON.stringify(parameters[param] ?? null)}` };
      }
      // No backend serves MODIFY_VOLUME: a volume has no mutable parameters, so none can be confirmed.
      const mutable = Object.keys(requireStringMap('mutable_parameters', req.mutable_parameters)).sort();
      if (mutable.length > 0) {
        return { message: `volume ${id} has no mutable parameters (${mutable.join(', ')} asked): the ${backend.kind} backend does not modify volumes` };
      }
      const volumeContext = requireStringMap('volume_context', req.volume_context);
      const mismatch = Object.keys(volumeContext).find((k) => volumeContext[k] !== rec.volumeContext[k]);
      if (mismatch !== undefined) {
        return { message: `volume_context ${mismatch} ${JSON.stringify(volumeContext[mismatch])} is not volume ${id}'s (${JSON.stringify(rec.volumeContext[mismatch] ?? null)})` };
      }
      const fsType = rec.fsType || backend.defaultFsType;
      for (const cap of caps) {
        const why =
          backend.unsupportedCapability(cap) ??
          (cap.accessType !== rec.accessType
            ? `volume ${id} is a ${rec.accessType} volume, not ${cap.accessType}`
            : cap.accessType === 'mount' && cap.fsType !== '' && cap.fsType !== fsType
              ? `volume ${id} has fs type ${fsType}, not ${cap.fsType}`
              : undefined);
        if (why) return { message: why };
      }
      return {
        confirmed: {
          volume_context: volumeContext,
          volume_capabilities: req.volume_capabilities,
          parameters,
          mutable_parameters: {},
        },
      };
    },

    async ListVolumes(req, ctx) {
      requireCapability('LIST_VOLUMES', 'ListVolumes');
      const op = opContext(ctx, {});
      const all = (await listAll(backend.volumes, 'ListVolumes', op)).filter((v) => v.state === 'ready');
      const { page, nextToken } = paginate(all, req.starting_token ?? '', Number(req.max_entries ?? 0));
      const entries = [];
      for (const rec of page) entries.push({ volume: toWireVolume(rec), status: await volumeStatus(rec, op) });
      return { entries, next_token: nextToken };
    },

    async ControllerGetVolume(req, ctx) {
      requireCapability('GET_VOLUME', 'ControllerGetVolume');
      const id = requireIdentifier('volume_id', req.volume_id);
      const op = opContext(ctx, {});
      const rec = await readyVolume(backend, id, op);
      return { volume: toWireVolume(rec), status: await volumeStatus(rec, op) };
    },

    async GetCapacity(req) {
      requireCapability('GET_CAPACITY', 'GetCapacity');
      // The default for a backend without figures of its own: not served.
      const capacity = backend.capacity?.bind(backend);
      if (!capacity) throw new UnimplementedError(`GetCapacity is not supported by the ${backend.kind} backend`);
      const caps = (req.volume_capabilities ?? []).map((c, i) => parseCapability(`volume_capabilities[${i}]`, c as WireCapability));
      if (caps.some((c) => backend.unsupportedCapability(c))) return { available_capacity: 0 };
      const parameters = requireStringMap('parameters', req.parameters);
      backend.checkParameters(parameters, 'volume');
      const segments = req.accessible_topology?.segments;
      if (segments && Object.keys(segments).length > 0) {
        const mine = backend.nodeTopology();
        if (!Object.entries(segments).every(([k, v]) => mine[k] === v)) return { available_capacity: 0 };
      }
      // For the local backend: exactly what CreateVolume would admit now (see pool-capacity.ts).
      const c = await capacity();
      return {
        available_capacity: c.availableBytes,
        maximum_volume_size: { value: Math.min(c.maximumVolumeSize, c.availableBytes) },
        minimum_volume_size: { value: c.minimumVolumeSize },
      };
    },

    async ControllerExpandVolume(req, ctx) {
      const id = requireIdentifier('volume_id', req.volume_id);
      if (!req.capacity_range) throw new InvalidArgumentError('capacity_range is required');
      const range = parseRange('capacity_range', req.capacity_range);
      if (range.required === 0 && range.limit === 0) throw new InvalidArgumentError('capacity_range must set required_bytes or limit_bytes');
      const op = opContext(ctx, req.secrets);
      return inflight.with([volumeKey(id)], async () => {
        const rec = await lockedVolume(backend, id, op);
        if (req.volume_capability) {
          const cap = parseCapability('volume_capability', req.volume_capability as WireCapability);
          if (cap.accessType !== rec.accessType) throw new InvalidArgumentError(`volume ${id} is a ${rec.accessType} volume, not ${cap.accessType}`);
        }
        // Volumes never shrink: a range whose limit is below the present size cannot be met (the
        // spec's example of OUT_OF_RANGE), while one the present size already meets is done.
        if (range.limit > 0 && rec.capacityBytes > range.limit) {
          throw new OutOfRangeError(`volume ${id} already has ${rec.capacityBytes} bytes, more than limit_bytes ${range.limit}; volumes cannot shrink`);
        }
        // A range without required_bytes asks for no growth: the present size is its lower bound
        // (otherwise the default size for a new volume would be picked, growing it unasked).
        const wanted = sizeFor(backend, { required: range.required || rec.capacityBytes, limit: range.limit }, rec);
        if (wanted <= rec.capacityBytes) {
          return { capacity_bytes: rec.capacityBytes, node_expansion_required: false };
        }
        let nodeExpansionRequired = false;
        // Only the growth needs admitting; the record's new size is the promise from then on.
        await reserve(wanted - rec.capacityBytes, 'expand', rec.id, async () => {
          ({ nodeExpansionRequired } = await backend.expandVolume(rec, wanted, op));
          rec.capacityBytes = wanted;
          await backend.volumes.put(rec, true, op);
        });
        ctx.log.info({ volumeId: id, capacityBytes: wanted }, 'volume expanded');
        return { capacity_bytes: wanted, node_expansion_required: nodeExpansionRequired };
      });
    },

    async CreateSnapshot(req, ctx) {
      const name = requireIdentifier('name', req.name);
      const sourceId = requireIdentifier('source_volume_id', req.source_volume_id);
      const parameters = requireStringMap('parameters', req.parameters);
      backend.checkParameters(parameters, 'snapshot');
      const op = opContext(ctx, req.secrets, { parameters, sourceVolumeId: sourceId });
      return inflight.with([snapshotNameKey(name), volumeKey(sourceId)], async () => {
        let snap = await backend.snapshots.byName(name, op);
        if (snap && snap.sourceVolumeId !== sourceId) {
          throw new AlreadyExistsError(`snapshot "${name}" already exists (${snap.id}) for another volume (${snap.sourceVolumeId})`);
        }
        if (snap?.state === 'ready') return { snapshot: toWireSnapshot(snap) };
        const source = await lockedVolume(backend, sourceId, op);
        if (!snap) {
          snap = {
            id: await backend.newSnapshotId(op),
            name,
            state: 'creating',
            sourceVolumeId: sourceId,
            sourceAccessType: source.accessType,
            sourceFsType: source.fsType,
            sizeBytes: source.capacityBytes,
            createdAt: new Date().toISOString(),
            parameters,
          };
          await backend.snapshots.put(snap, true, op);
        }
        const cut = snap;
        let sizeBytes: number;
        try {
          ({ sizeBytes } = await backend.createSnapshot(cut, source, op));
        } catch (e) {
          // As for volumes: a refusal no retry will change leaves no half-cut record (the CO never
          // got its ID, so no DeleteSnapshot would ever remove it, and it would hold the name).
          if (e instanceof CsiError && FINAL_CODES.has(e.code)) {
            try {
              await backend.deleteSnapshot(cut, op);
              await backend.snapshots.remove(cut.id, op);
            } catch (cleanup) {
              ctx.log.warn({ snapshotId: cut.id, err: (cleanup as Error).message }, 'could not undo a refused snapshot; answering ABORTED so that the CO retries');
              throw new AbortedError(`snapshot "${cut.name}" was refused (${e.message}) and undoing it failed (${(cleanup as Error).message}); call again to finish`);
            }
          }
          throw e;
        }
        snap.sizeBytes = sizeBytes;
        snap.state = 'ready';
        await backend.snapshots.put(snap, true, op);
        ctx.log.info({ snapshotId: snap.id, name, sourceVolumeId: sourceId }, 'snapshot created');
        return { snapshot: toWireSnapshot(snap) };
      });
    },

    async DeleteSnapshot(req, ctx) {
      const id = requireIdentifier('snapshot_id', req.snapshot_id);
      const op = opContext(ctx, req.secrets);
      return inflight.with([snapshotKey(id)], async () => {
        const snap = await backend.snapshots.get(id, op);
        if (!snap) return {};
        await inflight.with([snapshotNameKey(snap.name)], async () => {
          await backend.deleteSnapshot(snap, op);
          await backend.snapshots.remove(id, op);
        });
        ctx.log.info({ snapshotId: id }, 'snapshot deleted');
        return {};
      });
    },

    async ListSnapshots(req, ctx) {
      requireCapability('LIST_SNAPSHOTS', 'ListSnapshots');
      let all = (await listAll(backend.snapshots, 'ListSnapshots', opContext(ctx, req.secrets))).filter((s) => s.state === 'ready');
      if (req.snapshot_id) all = all.filter((s) => s.id === req.snapshot_id);
      if (req.source_volume_id) all = all.filter((s) => s.sourceVolumeId === req.source_volume_id);
      const { page, nextToken } = paginate(all, req.starting_token ?? '', Number(req.max_entries ?? 0));
      return { entries: page.map((s) => ({ snapshot: toWireSnapshot(s) })), next_token: nextToken };
    },

    async GetSnapshot(req, ctx) {
      // No capability of its own (csi-sanity of this spec does not know GET_SNAPSHOT): served
      // wherever snapshots can be listed.
      requireCapability('LIST_SNAPSHOTS', 'GetSnapshot');
      const id = requireIdentifier('snapshot_id', req.snapshot_id);
      const snap = await backend.snapshots.get(id, opContext(ctx, req.secrets));
      if (snap?.state !== 'ready') throw new NotFoundError(`snapshot ${id} does not exist`);
      return { snapshot: toWireSnapshot(snap) };
    },
  };
}

function describeShape(s: { accessType: string; fsType: string }, defaultFsType: string): string {
  return s.accessType === 'block' ? 'raw block' : `${s.fsType || defaultFsType} filesystem`;
}

