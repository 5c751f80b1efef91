// The CSI GroupController service: a snapshot of several volumes at one point in time, each member
// an ordinary snapshot (restorable by CreateVolume, listed by ListSnapshots with its
// group_snapshot_id). Served only by backends that provide GroupSnapshots (rbd), and then advertised
// (GROUP_CONTROLLER_SERVICE); the RPCs follow the Controller service's order: validation, the
// try-lock on the group's name and every source volume (ABORTED when busy), journal lookup, work.
// The group's record and its members' are written 'creating' before anything is cut, so a retry by
// the same name finishes the same group, and DeleteVolumeGroupSnapshot of its ID removes all of it.
import { status } from '@grpc/grpc-js';
import { AbortedError, AlreadyExistsError, CsiError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../csi/errors.js';
import type { GroupControllerService } from '../csi/server.js';
import type { ControllerBackend, GroupSnapshotRecord, GroupSnapshots, OpContext, SnapshotRecord, VolumeRecord } from './backends/backend.js';
import type { InFlight } from './inflight.js';
import { opContext } from './op-context.js';
import { requireIdentifier, requireStringMap } from './validate.js';
import { lockedVolume } from './volume-lookup.js';

/** Refusals no retry changes: a half-made group is rolled back before one is answered (as CreateSnapshot does). */
const FINAL_CODES: ReadonlySet<number> = new Set([status.INVALID_ARGUMENT, status.NOT_FOUND, status.OUT_OF_RANGE, status.RESOURCE_EXHAUSTED, status.ALREADY_EXISTS]);

const groupKey = (id: string) => `group snapshot ${id}`;
const groupNameKey = (name: string) => `group snapshot name "${name}"`;
const volumeKey = (id: string) => `volume ${id}`;

/** The name of a group's member snapshot for the i-th source volume. */
export function memberName(groupName: string, index: number): string {
  return `${groupName}-member-${index}`;
}

function timestamp(iso: string) {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

export function groupControllerService({ backend, groups, inflight }: { backend: ControllerBackend; groups: GroupSnapshots; inflight: InFlight }): GroupControllerService {

  const members = async (group: GroupSnapshotRecord, op: OpContext): Promise<SnapshotRecord[]> => {
    const out: SnapshotRecord[] = [];
    for (const id of group.snapshotIds) {
      const snap = await backend.snapshots.get(id, op);
      if (snap) out.push(snap);
    }
    return out;
  };

  const toWire = (group: GroupSnapshotRecord, snaps: readonly SnapshotRecord[]) => ({
    group_snapshot_id: group.id,
    snapshots: snaps.map((s) => ({
      snapshot_id: s.id,
      source_volume_id: s.sourceVolumeId,
      size_bytes: s.sizeBytes,
      creation_time: timestamp(s.createdAt),
      ready_to_use: s.state === 'ready',
      group_snapshot_id: group.id,
    })),
    creation_time: timestamp(group.createdAt),
    ready_to_use: group.state === 'ready' && snaps.every((s) => s.state === 'ready'),
  });

  const checkSnapshotIds = (group: GroupSnapshotRecord, given: readonly string[] | undefined): void => {
    if (given === undefined || given.length === 0) return;
    if (!sameSet(given, group.snapshotIds)) {
      throw new FailedPreconditionError(`snapshot_ids [${given.join(', ')}] are not the snapshots of group snapshot ${group.id} ([${group.snapshotIds.join(', ')}])`);
    }
  };

  return {
    async GroupControllerGetCapabilities() {
      return { capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }] };
    },

    async CreateVolumeGroupSnapshot(req, ctx) {
      const name = requireIdentifier('name', req.name);
      const sources = req.source_volume_ids ?? [];
      if (sources.length === 0) throw new InvalidArgumentError('source_volume_ids must name at least one volume');
      for (const [i, id] of sources.entries()) requireIdentifier(`source_volume_ids[${i}]`, id);
      if (new Set(sources).size !== sources.length) throw new InvalidArgumentError('source_volume_ids names a volume twice');
      const parameters = requireStringMap('parameters', req.parameters);
      backend.checkParameters(parameters, 'snapshot');
      const op = opContext(ctx, req.secrets, { parameters, sourceVolumeId: sources[0] ?? '' });
      return inflight.with([groupNameKey(name), ...sources.map(volumeKey)], async () => {
        let group = await groups.journal.byName(name, op);
        if (group && !sameSet(group.sourceVolumeIds, sources)) {
          throw new AlreadyExistsError(`group snapshot "${name}" already exists (${group.id}) for other volumes (${group.sourceVolumeIds.join(', ')})`);
        }
        if (group?.state === 'ready') return { group_snapshot: toWire(group, await members(group, op)) };
        const volumes: VolumeRecord[] = [];
        for (const id of sources) volumes.push(await lockedVolume(backend, id, { ...op, sourceVolumeId: id }));
        if (!group) {
          const snapshotIds: string[] = [];
          for (const id of sources) snapshotIds.push(await backend.newSnapshotId({ ...op, sourceVolumeId: id }));
          group = { id: await groups.newId(op), name, state: 'creating', sourceVolumeIds: sources, snapshotIds, createdAt: new Date().toISOString(), parameters };
          await groups.journal.put(group, true, op);
        }
        const cut = group;
        const snaps: { snap: SnapshotRecord; source: VolumeRecord }[] = [];
        for (const [i, source] of volumes.entries()) {
          const memberOp = { ...op, sourceVolumeId: source.id };
          const id = cut.snapshotIds[i] ?? '';
          let snap = await backend.snapshots.get(id, memberOp);
          if (!snap) {
            snap = {
              id,
              name: memberName(name, i),
              state: 'creating',
              sourceVolumeId: source.id,
              sourceAccessType: source.accessType,
              sourceFsType: source.fsType,
              sizeBytes: source.capacityBytes,
              createdAt: cut.createdAt,
              parameters,
              groupSnapshotId: cut.id,
            };
            await backend.snapshots.put(snap, true, memberOp);
          }
          snaps.push({ snap, source });
        }
        let sizes: number[];
        try {
          sizes = await groups.create(cut, snaps, op);
        } catch (e) {
          if (e instanceof CsiError && FINAL_CODES.has(e.code)) {
            try {
              for (const { snap } of snaps) {
                await backend.deleteSnapshot(snap, op);
                await backend.snapshots.remove(snap.id, op);
              }
              await groups.journal.remove(cut.id, op);
            } catch (cleanup) {
              ctx.log.warn({ groupSnapshotId: cut.id, err: (cleanup as Error).message }, 'could not undo a refused group snapshot; answering ABORTED so that the CO retries');
              throw new AbortedError(`group snapshot "${name}" was refused (${e.message}) and undoing it failed (${(cleanup as Error).message}); call again to finish`);
            }
          }
          throw e;
        }
        for (const [i, { snap, source }] of snaps.entries()) {
          snap.sizeBytes = sizes[i] ?? snap.sizeBytes;
          snap.state = 'ready';
          await backend.snapshots.put(snap, true, { ...op, sourceVolumeId: source.id });
        }
        cut.state = 'ready';
        await groups.journal.put(cut, true, op);
        ctx.log.info({ groupSnapshotId: cut.id, name, sourceVolumeIds: sources }, 'group snapshot created');
        return { group_snapshot: toWire(cut, snaps.map((s) => s.snap)) };
      });
    },

    async DeleteVolumeGroupSnapshot(req, ctx) {
      const id = requireIdentifier('group_snapshot_id', req.group_snapshot_id);
      const op = opContext(ctx, req.secrets);
      return inflight.with([groupKey(id)], async () => {
        const group = await groups.journal.get(id, op);
        if (!group) return {};
        checkSnapshotIds(group, req.snapshot_ids);
        await inflight.with([groupNameKey(group.name)], async () => {
          for (const snap of await members(group, op)) {
            await backend.deleteSnapshot(snap, op);
            await backend.snapshots.remove(snap.id, op);
          }
          await groups.journal.remove(id, op);
        });
        ctx.log.info({ groupSnapshotId: id }, 'group snapshot deleted');
        return {};
      });
    },

    async GetVolumeGroupSnapshot(req, ctx) {
      const id = requireIdentifier('group_snapshot_id', req.group_snapshot_id);
      const op = opContext(ctx, req.secrets);
      const group = await groups.journal.get(id, op);
      if (group?.state !== 'ready') throw new NotFoundError(`group snapshot ${id} does not exist`);
      checkSnapshotIds(group, req.snapshot_ids);
      return { group_snapshot: toWire(group, await members(group, op)) };
    },
  };
}
