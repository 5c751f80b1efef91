/**
 * btrfs pool operations against a real filesystem: a sparse image on a loop
 * device, formatted and mounted in a private temp dir, once per quota mode.
 * Needs root. Everything created is undone in `after`, even on failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import {
  createSubvolume,
  deleteSubvolume,
  enableQuota,
  isBtrfs,
  isSubvolume,
  qgroupUsage,
  quotaStatus,
  removeStaleQgroups,
  reflinkCopy,
  setQgroupLimit,
  snapshotSubvolume,
  subvolumeId,
  syncFilesystem,
  type QuotaMode,
} from '../../src/driver/mount/btrfs.js';
import { ExecRunner } from '../../src/driver/mount/exec.js';
import { makeFilesystem } from '../../src/driver/mount/filesystem.js';
import { LoopDevices } from '../../src/driver/mount/loop.js';
import { Mounter } from '../../src/driver/mount/mount.js';

const MiB = 1024 * 1024;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices, mounts)' : false;

/**
 * Writes 1 MiB chunks up to `limit` bytes; returns bytes written and the error
 * that stopped it. Node (libuv) has no name for EDQUOT: its fs errors carry
 * code 'Unknown system error -122', so match on errno.
 */
async function fill(file: string, limit: number): Promise<{ written: number; code: string | undefined }> {
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(MiB, 0xab);
  let written = 0;
  try {
    while (written < limit) written += (await fh.write(chunk)).bytesWritten;
    await fh.sync();
    return { written, code: undefined };
  } catch (err) {
    const { errno, code } = err as NodeJS.ErrnoException;
    return { written, code: errno === -constants.errno.EDQUOT ? 'EDQUOT' : code };
  } finally {
    await fh.close();
  }
}

for (const mode of ['full', 'simple'] as const satisfies QuotaMode[]) {
  describe(`btrfs pool with ${mode} quotas`, { skip }, () => {
    const runner = new ExecRunner(pino({ level: 'silent' }));
    const mounter = new Mounter(runner);
    const loops = new LoopDevices();
    const undo: (() => Promise<unknown>)[] = [];
    let dir = '';
    let pool = '';

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `stowage-btrfs-${mode}-`));
      undo.push(() => rm(dir, { recursive: true, force: true }));
      const image = join(dir, 'pool.img');
      await writeFile(image, '');
      await truncate(image, 512 * MiB);
      const device = await loops.attach(image);
      undo.push(() => loops.detach(device));
      await makeFilesystem(device, 'btrfs', runner);
      pool = join(dir, 'mnt');
      await mkdir(pool);
      await mounter.mount(device, pool, 'btrfs', []);
      // A failed test may leave a file open: fall back to a lazy unmount rather than leak the mount.
      undo.push(() => mounter.unmount(pool).catch(() => runner.run('umount', ['-l', pool])));
      assert.equal(await enableQuota(pool, mode), mode);
    });

    after(async () => {
      for (const step of undo.reverse()) {
        await step().catch((err: unknown) => console.error('cleanup step failed:', err));
      }
    });

    it('recognises btrfs, subvolumes and their ids', async () => {
      assert.equal(await isBtrfs(pool), true);
      assert.equal(await isBtrfs(dir), false);
      await createSubvolume(pool, 'ids');
      await mkdir(join(pool, 'plain-dir'));
      assert.equal(await isSubvolume(join(pool, 'ids')), true);
      assert.equal(await isSubvolume(join(pool, 'plain-dir')), false);
      assert.equal(await subvolumeId(pool), 5); // the top-level subvolume
      assert.ok((await subvolumeId(join(pool, 'ids'))) > 255);
      assert.equal((await quotaStatus(pool))?.mode, mode);
      await assert.rejects(createSubvolume(pool, 'ids'), { code: 'EEXIST' });
      for (const bad of ['', '.', '..', 'a/b', 'nul\0x']) await assert.rejects(createSubvolume(pool, bad), RangeError);
    });

    it('a 10 MiB qgroup limit stops a 20 MiB write with EDQUOT near 10 MiB', async () => {
      await createSubvolume(pool, 'limited');
      const vol = join(pool, 'limited');
      await setQgroupLimit(vol, 10 * MiB);
      const { written, code } = await fill(join(vol, 'big'), 20 * MiB);
      assert.equal(code, 'EDQUOT');
      assert.ok(written >= 8 * MiB && written <= 10 * MiB, `wrote ${written} bytes`);
      await syncFilesystem(pool);
      const usage = await qgroupUsage(vol);
      assert.ok(usage);
      assert.equal(usage.limitBytes, 10 * MiB);
      assert.ok(usage.referencedBytes >= 8 * MiB && usage.referencedBytes <= 10 * MiB, `referenced ${usage.referencedBytes}`);
    });

    it('creates a subvolume with its limit in one ioctl, and clears a limit', async () => {
      await createSubvolume(pool, 'born-limited', { maxBytes: 10 * MiB });
      const vol = join(pool, 'born-limited');
      assert.equal((await qgroupUsage(vol))?.limitBytes, 10 * MiB);
      assert.equal((await fill(join(vol, 'big'), 20 * MiB)).code, 'EDQUOT');
      await setQgroupLimit(vol, null);
      assert.equal((await qgroupUsage(vol))?.limitBytes, null);
    });

    it('snapshots read-only and writable, keeping the data', async () => {
      await createSubvolume(pool, 'origin');
      const data = randomBytes(256 * 1024);
      await writeFile(join(pool, 'origin', 'f'), data);
      await snapshotSubvolume(join(pool, 'origin'), pool, 'snap-ro', { readonly: true, maxBytes: 3 * MiB });
      await snapshotSubvolume(join(pool, 'origin'), pool, 'snap-rw', { maxBytes: 5 * MiB });
      assert.ok((await readFile(join(pool, 'snap-ro', 'f'))).equals(data));
      assert.equal(await isSubvolume(join(pool, 'snap-ro')), true);
      await assert.rejects(writeFile(join(pool, 'snap-ro', 'g'), 'x'), { code: 'EROFS' });
      await writeFile(join(pool, 'snap-rw', 'g'), 'x');
      assert.equal((await qgroupUsage(join(pool, 'snap-rw')))?.limitBytes, 5 * MiB);
      assert.equal((await qgroupUsage(join(pool, 'snap-ro')))?.limitBytes, 3 * MiB);
    });

    it('reflink-copies a file, refusing to overwrite or to cross filesystems', async () => {
      await createSubvolume(pool, 'images');
      const src = join(pool, 'images', 'a.img');
      const data = randomBytes(4 * MiB);
      await writeFile(src, data);
      await reflinkCopy(src, join(pool, 'images', 'b.img'));
      assert.ok((await readFile(join(pool, 'images', 'b.img'))).equals(data));
      await assert.rejects(reflinkCopy(src, join(pool, 'images', 'b.img')), { code: 'EEXIST' });
      const outside = join(dir, 'outside.img');
      await assert.rejects(reflinkCopy(src, outside), { code: 'EXDEV' });
      await assert.rejects(readFile(outside), { code: 'ENOENT' }); // nothing left behind
    });

    it('deletes idempotently, and the qgroup goes once the cleaner has dropped the subvolume', async () => {
      await createSubvolume(pool, 'doomed', { maxBytes: 10 * MiB });
      await writeFile(join(pool, 'doomed', 'f'), randomBytes(MiB));
      const id = await subvolumeId(join(pool, 'doomed'));
      await syncFilesystem(pool);
      assert.notEqual(await qgroupUsage(pool, id), null);
      await deleteSubvolume(pool, 'doomed');
      await deleteSubvolume(pool, 'doomed');
      await deleteSubvolume(pool, 'never-existed');
      await assert.rejects(readFile(join(pool, 'doomed', 'f')), { code: 'ENOENT' });
      // The transaction commit wakes the cleaner; the kernel then removes the qgroup itself.
      await syncFilesystem(pool);
      const deadline = Date.now() + 20_000;
      while ((await qgroupUsage(pool, id)) !== null && Date.now() < deadline) await sleep(100);
      assert.equal(await qgroupUsage(pool, id), null, `qgroup 0/${id} still exists`);
    });

    it('leaves no qgroup when a subvolume dies before the snapshot sharing its data', async () => {
      // With simple quotas the origin's qgroup stays charged for extents the snapshot still
      // uses, and outlives both: removeStaleQgroups() is what clears it.
      await createSubvolume(pool, 'parent', { maxBytes: 10 * MiB });
      await writeFile(join(pool, 'parent', 'f'), randomBytes(2 * MiB));
      const id = await subvolumeId(join(pool, 'parent'));
      await snapshotSubvolume(join(pool, 'parent'), pool, 'child');
      const child = await subvolumeId(join(pool, 'child'));
      await createSubvolume(pool, 'bystander'); // live and empty: must survive the sweep
      const bystander = await subvolumeId(join(pool, 'bystander'));
      await deleteSubvolume(pool, 'parent');
      await syncFilesystem(pool);
      await runner.run('btrfs', ['subvolume', 'sync', pool, String(id)]); // until the cleaner dropped it
      await deleteSubvolume(pool, 'child');
      const removed: number[] = [];
      const deadline = Date.now() + 20_000;
      while ((await qgroupUsage(pool, id)) !== null && Date.now() < deadline) {
        await syncFilesystem(pool);
        removed.push(...(await removeStaleQgroups(pool)));
        await sleep(100);
      }
      assert.equal(await qgroupUsage(pool, id), null, `qgroup 0/${id} still exists`);
      assert.notEqual(await qgroupUsage(pool, bystander), null);
      // The parent was dropped while the child still held its extents: only full qgroups
      // clean that up without help. The sweep may also catch the child's own qgroup between the
      // cleaner dropping the child and the kernel removing its emptied qgroup (a race, not a
      // leak); it never touches a live subvolume's.
      if (mode === 'simple') {
        assert.ok(removed.includes(id), `the parent's qgroup 0/${id} was swept: ${removed.join(', ')}`);
        assert.deepEqual(removed.filter((q) => q !== id && q !== child), [], `only dead subvolumes' qgroups are swept: ${removed.join(', ')}`);
      } else {
        // Full quotas drop dead qgroups themselves; the sweep can only win the same race for a
        // subvolume already gone (the parent or the child), never a live one.
        assert.deepEqual(removed.filter((q) => q !== id && q !== child), [], `only dead subvolumes' qgroups are swept: ${removed.join(', ')}`);
      }
    });
  });
}
