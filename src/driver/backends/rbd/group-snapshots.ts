// RBD group snapshots for the CSI GroupController (src/driver/group-controller.ts): the source
// images go into a temporary RBD group `csi-group-<uuid>`, one `rbd_group_snap_create` cuts them all
// at one point in time (librbd quiesces the writers), and each member's cut is then copied into an
// ordinary snapshot image `csi-snap-<uuid>` with its snapshot `csi-snap-<uuid>` — the layout every
// rbd snapshot has, so restores, deletes, gc and ListSnapshots treat members like any snapshot.
// (Pacific's librbd cannot clone from a group snapshot's per-image snapshot, so the copy is full.)
// The group and its snapshot are removed only once every member is whole: a retry after a crash
// finds the same cut and finishes the missing copies; a member is whole once it carries the
// `stowage.complete` mark, like a clone. Records go in the source pool's omap, ceph-csi's layout
// for groups (csi.groups.default / csi.volume.group.<uuid>).
import type { JournalLayout } from '../ceph/journal.js';
import type { IoCtx } from '../ceph/rados.js';
import { groupCreate, groupImageAdd, groupImageRemove, groupRemove, groupSnapCreate, groupSnapRemove, Image, type ImageOptions } from './librbd.js';

export const GROUP_LAYOUT: JournalLayout = {
  kind: 'group snapshot',
  directory: 'csi.groups.default',
  nameKeyPrefix: 'csi.volume.group.',
  objectPrefix: 'csi.volume.group.',
  nameKey: 'csi.groupname',
  imageKey: 'csi.imagename',
  imagePrefix: 'csi-group-',
};

export interface GroupMember {
  /** The source volume's image. */
  source: string;
  /** The member snapshot's image (and its snapshot's name). */
  snapImage: string;
}

export interface CutDeps {
  /** Whether a snapshot image is whole (carries the completion mark). */
  whole(image: string): Promise<boolean>;
  /** Makes a snapshot image with `make` and marks it whole (removing a half-made one first). */
  ensure(image: string, make: () => Promise<void>): Promise<void>;
  options: ImageOptions;
}

/** Cuts the members at one point in time into their snapshot images; idempotent. */
export async function cutGroup(io: IoCtx, group: string, members: readonly GroupMember[], deps: CutDeps): Promise<void> {
  const missing: GroupMember[] = [];
  for (const m of members) if (!(await deps.whole(m.snapImage))) missing.push(m);
  if (missing.length > 0) {
    await groupCreate(io, group);
    for (const m of members) await groupImageAdd(io, group, m.source);
    await groupSnapCreate(io, group, group);
    for (const m of missing) {
      await deps.ensure(m.snapImage, async () => {
        const copied = await Image.with(
          io,
          m.source,
          async (img) => {
            const id = await img.groupSnapId(group, group);
            if (id === undefined) throw new Error(`image ${io.poolName}/${m.source} has no snapshot of group snapshot ${group}@${group}`);
            await img.snapSetById(id);
            await img.copyTo(io, m.snapImage, deps.options);
            return true;
          },
          { readOnly: true },
        );
        if (!copied) throw new Error(`image ${io.poolName}/${m.source} does not exist`);
      });
    }
  }
  for (const m of members) {
    await Image.with(io, m.snapImage, async (img) => {
      if (!img.snapExists(m.snapImage)) await img.snapCreate(m.snapImage);
    });
  }
  await releaseGroup(io, group, members);
}

/** Removes the temporary group: its snapshot, its images (they stay, out of the group), the group. */
export async function releaseGroup(io: IoCtx, group: string, members: readonly GroupMember[]): Promise<void> {
  await groupSnapRemove(io, group, group);
  for (const m of members) await groupImageRemove(io, group, m.source);
  await groupRemove(io, group);
}
