/**
 * The CSI GroupController service (src/driver/group-controller.ts) against the in-memory backend
 * and an in-memory GroupSnapshots, table-driven: each row a call, the status a CO would get, and
 * what is left in the journals — validation, idempotency by name, ALREADY_EXISTS for the name with
 * other volumes, NOT_FOUND before anything is written, a final refusal of the cut rolled back, a
 * transient one left for the retry to finish, and Get/Delete checking the member list.
 */
import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { CsiError, InvalidArgumentError, UnavailableError } from '../../src/csi/errors.js';
import type { CallContext, GroupControllerService } from '../../src/csi/server.js';
import type { GroupSnapshotRecord, GroupSnapshots, Journal } from '../../src/driver/backends/backend.js';
import { groupControllerService, memberName } from '../../src/driver/group-controller.js';
import { InFlight } from '../../src/driver/inflight.js';
import { FakeBackend } from '../support/fake-backend.js';

const MiB = 1024 * 1024;

class MemGroups implements GroupSnapshots {
  readonly records = new Map<string, GroupSnapshotRecord>();
  cuts = 0;
  failNext: Error | undefined;
  private seq = 0;
  readonly journal: Journal<GroupSnapshotRecord> = {
    get: async (id) => structuredClone(this.records.get(id)),
    byName: async (name) => structuredClone([...this.records.values()].find((r) => r.name === name)),
    list: async () => [...this.records.values()],
    put: async (rec) => void this.records.set(rec.id, structuredClone(rec)),
    remove: async (id) => void this.records.delete(id),
  };
  async newId(): Promise<string> {
    return `group-${++this.seq}`;
  }
  async create(_g: GroupSnapshotRecord, members: { snap: { sizeBytes: number } }[]): Promise<number[]> {
    const e = this.failNext;
    this.failNext = undefined;
    if (e) throw e;
    this.cuts++;
    return members.map((m) => m.snap.sizeBytes);
  }
}

function setup() {
  const backend = new FakeBackend();
  backend.addVolume({ id: 'vol-a', name: 'pvc-a', capacityBytes: 8 * MiB });
  backend.addVolume({ id: 'vol-b', name: 'pvc-b', capacityBytes: 16 * MiB });
  const groups = new MemGroups();
  const svc = groupControllerService({ backend, groups, inflight: new InFlight() }) as Required<GroupControllerService>;
  const ctx = { log: pino({ level: 'silent' }), signal: new AbortController().signal } as unknown as CallContext;
  return { backend, groups, svc, ctx };
}
type Setup = ReturnType<typeof setup>;

async function code(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return status.OK;
  } catch (e) {
    if (e instanceof CsiError) return e.code;
    throw e;
  }
}

const create = (s: Setup, name: string, ids: string[]) => s.svc.CreateVolumeGroupSnapshot({ name, source_volume_ids: ids, secrets: {}, parameters: {} }, s.ctx);

describe('GroupController: CreateVolumeGroupSnapshot', () => {
  const rows: { name: string; before?: (s: Setup) => Promise<void>; call: (s: Setup) => Promise<unknown>; code: number; after?: (s: Setup) => void }[] = [
    { name: 'no name: INVALID_ARGUMENT', call: (s) => create(s, '', ['vol-a']), code: status.INVALID_ARGUMENT },
    { name: 'no volumes: INVALID_ARGUMENT', call: (s) => create(s, 'g', []), code: status.INVALID_ARGUMENT },
    { name: 'a volume twice: INVALID_ARGUMENT', call: (s) => create(s, 'g', ['vol-a', 'vol-a']), code: status.INVALID_ARGUMENT },
    {
      name: 'an unknown volume: NOT_FOUND, nothing written',
      call: (s) => create(s, 'g', ['vol-a', 'vol-x']),
      code: status.NOT_FOUND,
      after: (s) => {
        assert.equal(s.groups.records.size, 0);
        assert.equal(s.backend.snapshots.records.size, 0);
      },
    },
    {
      name: 'two volumes: one group, two ready members named after it, sized as their sources',
      call: (s) => create(s, 'g', ['vol-a', 'vol-b']),
      code: status.OK,
      after: (s) => {
        const [group] = [...s.groups.records.values()];
        assert.equal(group?.state, 'ready');
        const members = [...s.backend.snapshots.records.values()];
        assert.deepEqual(members.map((m) => [m.name, m.sourceVolumeId, m.state, m.sizeBytes, m.groupSnapshotId]), [
          [memberName('g', 0), 'vol-a', 'ready', 8 * MiB, group?.id],
          [memberName('g', 1), 'vol-b', 'ready', 16 * MiB, group?.id],
        ]);
      },
    },
    {
      name: 'again by name (any order): the same group, not cut twice',
      before: async (s) => void (await create(s, 'g', ['vol-a', 'vol-b'])),
      call: (s) => create(s, 'g', ['vol-b', 'vol-a']),
      code: status.OK,
      after: (s) => {
        assert.equal(s.groups.records.size, 1);
        assert.equal(s.groups.cuts, 1);
      },
    },
    { name: 'the name with other volumes: ALREADY_EXISTS', before: async (s) => void (await create(s, 'g', ['vol-a', 'vol-b'])), call: (s) => create(s, 'g', ['vol-a']), code: status.ALREADY_EXISTS },
    {
      name: 'a cut refused for good: rolled back, the name free',
      before: async (s) => {
        s.groups.failNext = new InvalidArgumentError('not in one pool');
      },
      call: (s) => create(s, 'g', ['vol-a', 'vol-b']),
      code: status.INVALID_ARGUMENT,
      after: (s) => {
        assert.equal(s.groups.records.size, 0);
        assert.equal(s.backend.snapshots.records.size, 0);
      },
    },
    {
      name: 'a cut that failed for now: kept creating, and the retry finishes the same group',
      before: async (s) => {
        s.groups.failNext = new UnavailableError('monitors down');
        assert.equal(await code(create(s, 'g', ['vol-a', 'vol-b'])), status.UNAVAILABLE);
        assert.equal([...s.groups.records.values()][0]?.state, 'creating');
      },
      call: (s) => create(s, 'g', ['vol-a', 'vol-b']),
      code: status.OK,
      after: (s) => {
        assert.equal(s.groups.records.size, 1);
        assert.equal([...s.groups.records.values()][0]?.state, 'ready');
        assert.equal(s.backend.snapshots.records.size, 2);
      },
    },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const s = setup();
      await row.before?.(s);
      assert.equal(await code(row.call(s)), row.code);
      row.after?.(s);
    });
  }
});

describe('GroupController: Get and Delete', () => {
  const rows: { name: string; call: (s: Setup, id: string, members: string[]) => Promise<unknown>; code: number; left?: number }[] = [
    { name: 'Get: the members', call: (s, id, m) => s.svc.GetVolumeGroupSnapshot({ group_snapshot_id: id, snapshot_ids: [...m].reverse(), secrets: {} }, s.ctx), code: status.OK, left: 2 },
    { name: 'Get: an unknown ID is NOT_FOUND', call: (s) => s.svc.GetVolumeGroupSnapshot({ group_snapshot_id: 'group-9', snapshot_ids: [], secrets: {} }, s.ctx), code: status.NOT_FOUND },
    { name: 'Get: other members is FAILED_PRECONDITION', call: (s, id, m) => s.svc.GetVolumeGroupSnapshot({ group_snapshot_id: id, snapshot_ids: m.slice(1), secrets: {} }, s.ctx), code: status.FAILED_PRECONDITION },
    { name: 'Delete: other members is FAILED_PRECONDITION, nothing removed', call: (s, id) => s.svc.DeleteVolumeGroupSnapshot({ group_snapshot_id: id, snapshot_ids: ['x'], secrets: {} }, s.ctx), code: status.FAILED_PRECONDITION, left: 2 },
    { name: 'Delete: every member removed', call: (s, id, m) => s.svc.DeleteVolumeGroupSnapshot({ group_snapshot_id: id, snapshot_ids: m, secrets: {} }, s.ctx), code: status.OK, left: 0 },
    { name: 'Delete: an unknown ID is OK', call: (s) => s.svc.DeleteVolumeGroupSnapshot({ group_snapshot_id: 'group-9', snapshot_ids: [], secrets: {} }, s.ctx), code: status.OK, left: 2 },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const s = setup();
      const made = (await create(s, 'g', ['vol-a', 'vol-b'])).group_snapshot;
      const members = (made?.snapshots ?? []).map((m) => m.snapshot_id ?? '');
      assert.equal(await code(row.call(s, made?.group_snapshot_id ?? '', members)), row.code);
      if (row.left !== undefined) assert.equal(s.backend.snapshots.records.size, row.left);
    });
  }
});
