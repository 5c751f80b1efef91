/**
 * The rbd backend's journal: ceph-csi's layout in the pool's RADOS omap, so both drivers (and
 * several controller replicas) agree on which request name owns which volume:
 *
 *   object csi.volumes.default   key csi.volume.<request name>  → <uuid>
 *   object csi.volume.<uuid>     csi.volname → <request name>, csi.imagename → csi-vol-<uuid>,
 *                                stowage.record → the VolumeRecord as JSON (ours)
 *   object csi.snaps.default     key csi.snap.<request name>    → <uuid>
 *   object csi.snap.<uuid>       csi.snapname, csi.imagename → csi-snap-<uuid>, csi.source → the
 *                                source image, stowage.record
 *
 * Reserving a name is one atomic compare-and-set on the directory object (the key must be absent),
 * so two controllers can never hand out two volumes for one name; the per-UUID object is written
 * after it. A crash between the two leaves a name key whose UUID object is missing: the next
 * lookup of that name, once the object is still missing a second later (another controller's
 * reservation in progress looks the same for a few milliseconds), takes it for stale and removes
 * it (with a compare, so only that exact key).
 * Removal goes the other way round (name key, then object), and a record whose name key is gone
 * is still found by ID, so a retried delete finishes the job. Every write is durable when Ceph
 * acknowledges it: `durable` needs no special handling.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError } from '../../../csi/errors.js';
import type { Journal, OpContext, SnapshotRecord, VolumeRecord } from '../backend.js';
import { isCephError, type IoCtx } from './rados.js';
import { decodeId, type CsiIdentifier } from './volume-id.js';

export const RECORD_KEY = 'stowage.record';

/** Waits before a name key whose UUID object is missing is taken for a crashed reservation (see byName). */
const STALE_RESERVATION_RECHECK_MS = [50, 250, 1000];

export interface JournalLayout {
  /** 'volume' | 'snapshot', for messages. */
  kind: string;
  directory: string;
  nameKeyPrefix: string;
  objectPrefix: string;
  nameKey: string;
  imageKey: string;
  imagePrefix: string;
}

export const VOLUME_LAYOUT: JournalLayout = {
  kind: 'volume',
  directory: 'csi.volumes.default',
  nameKeyPrefix: 'csi.volume.',
  objectPrefix: 'csi.volume.',
  nameKey: 'csi.volname',
  imageKey: 'csi.imagename',
  imagePrefix: 'csi-vol-',
};

export const SNAPSHOT_LAYOUT: JournalLayout = {
  kind: 'snapshot',
  directory: 'csi.snaps.default',
  nameKeyPrefix: 'csi.snap.',
  objectPrefix: 'csi.snap.',
  nameKey: 'csi.snapname',
  imageKey: 'csi.imagename',
  imagePrefix: 'csi-snap-',
};

/** Where records live: the backend resolves IDs and requests to a pool it has connected to. */
export interface JournalPools {
  /** Runs use on the pool an ID names; undefined when the ID is not ours or its pool is gone. */
  withIdPool<T>(id: CsiIdentifier, ctx: OpContext, use: (io: IoCtx) => Promise<T>): Promise<T | undefined>;
  /** The ID prefix (cluster + pool) and pool for a lookup by name; undefined when there is nowhere to look. */
  withNamePool<T>(ctx: OpContext, use: (io: IoCtx, idFor: (uuid: string) => string) => Promise<T>): Promise<T | undefined>;
}

/** A record with extra omap keys to write beside it (csi.source for snapshots). */
type Extra<T> = (rec: T) => Record<string, string>;

export class OmapJournal<T extends { id: string; name: string }> implements Journal<T> {
  /** Pools (I/O contexts) whose directory object is known to exist (it is created once, idempotently). */
  private readonly directories = new WeakSet<IoCtx>();

  constructor(
    private readonly layout: JournalLayout,
    private readonly pools: JournalPools,
    private readonly extra: Extra<T> = () => ({}),
  ) {}

  imageName(uuid: string): string {
    return `${this.layout.imagePrefix}${uuid}`;
  }

  async get(id: string, ctx: OpContext): Promise<T | undefined> {
    const parsed = decodeId(id);
    if (!parsed) return undefined;
    const found = await this.pools.withIdPool(parsed, ctx, (io) => this.read(io, parsed.uuid, id));
    return found ?? undefined;
  }

  async byName(name: string, ctx: OpContext): Promise<T | undefined> {
    const found = await this.pools.withNamePool(ctx, async (io, idFor) => {
      const key = this.layout.nameKeyPrefix + name;
      const uuid = (await io.omapGet(this.layout.directory, [key]))?.get(key);
      if (!uuid) return undefined;
      let rec = await this.read(io, uuid, idFor(uuid));
      // No UUID object yet: a reservation cut short between its two writes (a crash), or one
      // being made right now by another controller, whose second write follows its first within
      // milliseconds. Taking the key away from the latter would let this caller reserve the name
      // too (two volumes for one name), so the object is looked for again before the key is
      // called stale.
      for (const waitMs of STALE_RESERVATION_RECHECK_MS) {
        if (rec) return rec;
        await sleep(waitMs);
        if ((await io.omapGet(this.layout.directory, [key]))?.get(key) !== uuid) return undefined; // changed meanwhile: the caller reserves (and meets whoever holds it)
        rec = await this.read(io, uuid, idFor(uuid));
      }
      if (rec) return rec;
      // A reservation cut short between its two writes: drop the stale key, only if unchanged.
      ctx.log.info({ name, uuid, pool: io.poolName }, `removing a stale ${this.layout.kind} name reservation`);
      await this.removeNameKey(io, key, uuid);
      return undefined;
    });
    return found ?? undefined;
  }

  async put(rec: T, _durable: boolean, ctx: OpContext): Promise<void> {
    const parsed = decodeId(rec.id);
    if (!parsed) throw new Error(`${rec.id} is not an rbd ${this.layout.kind} ID`);
    const done = await this.pools.withIdPool(parsed, ctx, async (io) => {
      const key = this.layout.nameKeyPrefix + rec.name;
      if ((rec as { state?: string }).state === 'creating') await this.reserveName(io, key, parsed.uuid, rec.name);
      await io.write(this.layout.objectPrefix + parsed.uuid, [
        { create: 'idempotent' },
        {
          omapSet: {
            [this.layout.nameKey]: rec.name,
            [this.layout.imageKey]: this.imageName(parsed.uuid),
            ...this.extra(rec),
            [RECORD_KEY]: JSON.stringify(rec),
          },
        },
      ]);
      return true;
    });
    if (!done) throw new Error(`the pool of ${this.layout.kind} ${rec.id} does not exist`);
  }

  async remove(id: string, ctx: OpContext): Promise<void> {
    const parsed = decodeId(id);
    if (!parsed) return;
    await this.pools.withIdPool(parsed, ctx, async (io) => {
      const oid = this.layout.objectPrefix + parsed.uuid;
      const name = (await io.omapGet(oid, [this.layout.nameKey]))?.get(this.layout.nameKey);
      if (name !== undefined) await this.removeNameKey(io, this.layout.nameKeyPrefix + name, parsed.uuid);
      await io.write(oid, [{ remove: true }]).catch((e: unknown) => {
        if (!isCephError(e, 'ENOENT')) throw e;
      });
    });
  }

  /** The record in the UUID object, or undefined when there is none. */
  private async read(io: IoCtx, uuid: string, id: string): Promise<T | undefined> {
    const keys = await io.omapGet(this.layout.objectPrefix + uuid, [RECORD_KEY, this.layout.nameKey]);
    const json = keys?.get(RECORD_KEY);
    if (!json) return undefined;
    const rec = JSON.parse(json) as T;
    // The ID is derived from where the record was found: a pool renumbered by a restore still works.
    return { ...rec, id };
  }

  /** Points the name at uuid unless it already points elsewhere (another controller won: ABORTED). */
  private async reserveName(io: IoCtx, key: string, uuid: string, name: string): Promise<void> {
    const ensureDirectory = async () => {
      await io.write(this.layout.directory, [{ create: 'idempotent' }]);
      this.directories.add(io);
    };
    const casName = () => io.write(this.layout.directory, [{ omapEquals: [key, ''] }, { omapSet: { [key]: uuid } }]);
    if (!this.directories.has(io)) await ensureDirectory();
    try {
      await casName().catch(async (e: unknown) => {
        if (!isCephError(e, 'ENOENT')) throw e;
        await ensureDirectory(); // removed behind our back (a test's clean-up): create it again
        await casName();
      });
    } catch (e) {
      if (!isCephError(e, 'ECANCELED')) throw e;
      const holder = (await io.omapGet(this.layout.directory, [key]))?.get(key);
      if (holder === uuid) return; // our own earlier reservation (a retried put)
      throw new AbortedError(`another request is creating ${this.layout.kind} "${name}" (as ${holder}); retry`);
    }
  }

  private async removeNameKey(io: IoCtx, key: string, uuid: string): Promise<void> {
    try {
      await io.write(this.layout.directory, [{ omapEquals: [key, uuid] }, { omapRemove: [key] }]);
    } catch (e) {
      // ECANCELED: the name now belongs to another volume; ENOENT: no directory at all.
      if (!isCephError(e, 'ECANCELED', 'ENOENT')) throw e;
    }
  }
}

export type VolumeJournal = OmapJournal<VolumeRecord>;
export type SnapshotJournal = OmapJournal<SnapshotRecord>;
