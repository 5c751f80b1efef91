/**
 * Loop devices, ext4 images, bind mounts and unmounts against the real kernel,
 * inside a private temp dir. Needs root. Only devices and mounts this file
 * made are ever detached or unmounted, and all of them are, even on failure.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ExecRunner } from '../../src/driver/mount/exec.js';
import {
  blockDeviceSize,
  checkFilesystem,
  filesystemStats,
  growFilesystem,
  makeFilesystem,
  probeFilesystem,
} from '../../src/driver/mount/filesystem.js';
import { LoopDevices } from '../../src/driver/mount/loop.js';
import { MountBusyError, Mounter } from '../../src/driver/mount/mount.js';

const MiB = 1024 * 1024;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices, mounts)' : false;

/** Whether this process holds capability number `bit` (CapEff in /proc/self/status). */
function hasCapability(bit: number): boolean {
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${eff}`) >> BigInt(bit)) & 1n) === 1n;
}

describe('block devices and mounts', { skip }, () => {
  const runner = new ExecRunner(pino({ level: 'silent' }));
  const mounter = new Mounter(runner);
  const loops = new LoopDevices();
  const attached = new Set<string>();
  const mounted: string[] = [];
  let dir = '';

  async function attach(file: string, opts?: { readonly?: boolean; directIo?: boolean }): Promise<string> {
    const device = await loops.attach(file, opts);
    attached.add(device);
    return device;
  }

  /** Detach, and forget: the number may soon belong to someone else's device. */
  async function detach(device: string): Promise<void> {
    await loops.detach(device);
    attached.delete(device);
  }

  async function mountTracked(fn: () => Promise<void>, target: string): Promise<void> {
    mounted.push(target);
    await fn();
  }

  async function sparseFile(name: string, size: number): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, '');
    await truncate(file, size);
    return file;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-block-'));
  });

  after(async () => {
    const report = (err: unknown) => console.error('cleanup step failed:', err);
    // Unmount newest first; a mount a failed test left busy gets a lazy unmount rather than leaking.
    for (const target of mounted.reverse()) {
      // A path can hold stacked mounts; a few rounds clear any a failed test left.
      for (let round = 0; round < 3 && (await mounter.isMountPoint(target).catch(() => false)); round++) {
        await mounter.unmount(target).catch(() => runner.run('umount', ['-l', target]).catch(report));
      }
    }
    for (const device of attached) await detach(device).catch(report);
    await rm(dir, { recursive: true, force: true }).catch(report);
  });

  it('takes an ext4 image through attach, probe, mkfs, mount, unmount and detach', async () => {
    const image = await sparseFile('ext4.img', 64 * MiB);
    const device = await attach(image);
    assert.match(device, /^\/dev\/loop\d+$/);
    assert.equal(await loops.ensureAttached(image), device);
    assert.deepEqual(await loops.devicesFor(image), [device]);
    assert.ok((await loops.list()).some((l) => l.device === device && l.backingFile === image));

    assert.equal(await probeFilesystem(device, runner), null);
    await makeFilesystem(device, 'ext4', runner, { label: 'stowage-test' });
    assert.equal(await probeFilesystem(device, runner), 'ext4');
    assert.equal(await checkFilesystem(device, 'ext4', runner), 'clean');
    assert.equal(await blockDeviceSize(device), 64 * MiB);

    const mnt = join(dir, 'ext4-mnt');
    await mkdir(mnt);
    await mountTracked(() => mounter.mount(device, mnt, 'ext4', ['noatime', 'nodev', 'nofail', 'data=ordered']), mnt);
    const entry = await mounter.mountAt(mnt);
    assert.equal(entry?.fsType, 'ext4');
    assert.equal(entry.source, device);
    assert.ok(entry.options.includes('noatime') && entry.options.includes('nodev'), entry.options.join(','));
    assert.equal(await mounter.isMountPoint(mnt), true);
    assert.equal(await mounter.isCorrupted(mnt), false);

    await writeFile(join(mnt, 'hello'), 'world');
    const before = await filesystemStats(mnt);
    assert.ok(before.totalBytes > 50 * MiB && before.totalBytes <= 64 * MiB, String(before.totalBytes));
    assert.ok(before.usedBytes > 0 && before.availableBytes > 0 && before.usedInodes > 10 && before.freeInodes > 0);

    await mounter.unmount(mnt);
    assert.equal(await mounter.isMountPoint(mnt), false);
    assert.equal(await mounter.mountAt(mnt), undefined);
    await detach(device);
    // Idempotent, shown on a device that does not exist: re-detaching ours could hit a device
    // someone else attached under the same number in between.
    await loops.detach('/dev/loop987654');
    assert.deepEqual(await loops.devicesFor(image), []);
  });

  /** Grows image, loop device and the filesystem mounted from it. */
  async function growMounted(fstype: string, fromBytes: number, toBytes: number): Promise<void> {
    const image = await sparseFile(`grow-${fstype}.img`, fromBytes);
    const device = await attach(image);
    await makeFilesystem(device, fstype, runner);
    const mnt = join(dir, `grow-${fstype}`);
    await mkdir(mnt);
    await mountTracked(() => mounter.mount(device, mnt, fstype, []), mnt);
    const before = (await filesystemStats(mnt)).totalBytes;
    await truncate(image, toBytes);
    await loops.refreshCapacity(device);
    assert.equal(await blockDeviceSize(device), toBytes);
    await growFilesystem(device, mnt, fstype, runner);
    const after = (await filesystemStats(mnt)).totalBytes;
    assert.ok(after - before > (toBytes - fromBytes) * 0.9, `${before} -> ${after}`);
    await mounter.unmount(mnt);
    await detach(device);
  }

  it('grows a mounted xfs', () => growMounted('xfs', 320 * MiB, 400 * MiB));

  it('grows a mounted btrfs', () => growMounted('btrfs', 256 * MiB, 320 * MiB));

  // Online ext4 resize is an EXT4_IOC_RESIZE_FS, which the kernel gates on CAP_SYS_RESOURCE:
  // with it the filesystem grows; without it (this sandbox, CI) resize2fs must fail and leave the
  // mounted filesystem as it was — never skipped, each machine checks the case it has.
  it('grows a mounted ext4 with CAP_SYS_RESOURCE, and refuses cleanly without it', async () => {
    if (hasCapability(24)) return growMounted('ext4', 64 * MiB, 128 * MiB);
    const image = await sparseFile('grow-ext4.img', 64 * MiB);
    const device = await attach(image);
    await makeFilesystem(device, 'ext4', runner);
    const mnt = join(dir, 'grow-ext4');
    await mkdir(mnt);
    await mountTracked(() => mounter.mount(device, mnt, 'ext4', []), mnt);
    const before = (await filesystemStats(mnt)).totalBytes;
    await truncate(image, 128 * MiB);
    await loops.refreshCapacity(device);
    await assert.rejects(growFilesystem(device, mnt, 'ext4', runner), /resize2fs/);
    assert.equal((await filesystemStats(mnt)).totalBytes, before);
    await mounter.unmount(mnt);
    await detach(device);
  });

  it('attaches read-only and with direct I/O', async () => {
    const image = await sparseFile('flags.img', 16 * MiB);
    const ro = await attach(image, { readonly: true });
    const name = ro.slice('/dev/'.length);
    assert.equal((await readFile(`/sys/block/${name}/ro`, 'utf8')).trim(), '1');
    await detach(ro);
    const dio = await attach(image, { directIo: true });
    assert.equal((await readFile(`/sys/block/${dio.slice('/dev/'.length)}/loop/dio`, 'utf8')).trim(), '1');
    await detach(dio);
  });

  it('gives concurrent ensureAttached calls for one file the same device', async () => {
    const image = await sparseFile('shared.img', 16 * MiB);
    const devices = await Promise.all(Array.from({ length: 4 }, () => loops.ensureAttached(image)));
    for (const d of devices) attached.add(d);
    assert.equal(new Set(devices).size, 1);
    assert.deepEqual(await loops.devicesFor(image), [devices[0]]);
    await detach(devices[0] ?? '');
  });

  it('still finds the device of an image file that was deleted', async () => {
    const image = await sparseFile('deleted.img', 8 * MiB);
    const device = await attach(image);
    await rm(image);
    assert.deepEqual(await loops.devicesFor(image), [device]);
    await detach(device);
  });

  it('refuses to detach something that is not a loop device', async () => {
    await assert.rejects(loops.detach('/dev/sda'), RangeError);
    await assert.rejects(loops.detach('/dev/loop0/../sda'), RangeError);
  });

  it('bind-mounts read-only, rejecting writes and keeping the source mount flags', async () => {
    // The source is a nosuid,nodev tmpfs: a read-only bind of it must stay nosuid,nodev.
    const src = join(dir, 'bind-src');
    const target = join(dir, 'bind-ro');
    await mkdir(src);
    await mkdir(target);
    await mountTracked(() => mounter.mount('tmpfs', src, 'tmpfs', ['nosuid', 'nodev', 'size=1m']), src);
    await writeFile(join(src, 'file'), 'data');

    await mountTracked(() => mounter.bindMount(src, target, { readonly: true }), target);
    assert.equal(await readFile(join(target, 'file'), 'utf8'), 'data');
    await assert.rejects(writeFile(join(target, 'new'), 'x'), { code: 'EROFS' });
    await writeFile(join(src, 'still-writable'), 'x');
    const entry = await mounter.mountAt(target);
    assert.equal(entry?.readonly, true);
    for (const flag of ['ro', 'nosuid', 'nodev']) assert.ok(entry.options.includes(flag), entry.options.join(','));

    const rw = join(dir, 'bind-rw');
    await mkdir(rw);
    await mountTracked(() => mounter.mount(src, rw, 'none', ['bind', 'noexec']), rw);
    await writeFile(join(rw, 'via-rw'), 'x');
    assert.deepEqual((await mounter.mountAt(rw))?.options.includes('noexec'), true);

    await mounter.unmount(rw);
    await mounter.unmount(target);
    await mounter.unmount(src);
  });

  it('bind-mounts a device node onto a file', async () => {
    const image = await sparseFile('raw.img', 8 * MiB);
    const device = await attach(image);
    const target = join(dir, 'raw-target');
    await writeFile(target, '');
    await mountTracked(() => mounter.bindMount(device, target), target);
    assert.equal(await mounter.isMountPoint(target), true);
    assert.equal(await blockDeviceSize(target), 8 * MiB);
    await mounter.unmount(target);
    await detach(device);
  });

  it('unmounts idempotently and reports a busy mount clearly', async () => {
    const plain = join(dir, 'never-mounted');
    await mkdir(plain);
    await mounter.unmount(plain);
    await mounter.unmount(join(dir, 'does-not-exist'));
    assert.equal(await mounter.isMountPoint(plain), false);
    assert.equal(await mounter.isMountPoint(join(dir, 'does-not-exist')), false);

    const busy = join(dir, 'busy');
    await mkdir(busy);
    await mountTracked(() => mounter.mount('tmpfs', busy, 'tmpfs', ['size=1m']), busy);
    const fh = await open(join(busy, 'held-open'), 'w');
    try {
      const err = await mounter.unmount(busy).catch((e: unknown) => e);
      assert.ok(err instanceof MountBusyError, String(err));
      assert.equal(err.code, 'EBUSY');
      assert.match(err.message, /busy/);
    } finally {
      await fh.close();
    }
    await mounter.unmount(busy);
    await mounter.unmount(busy);
    assert.equal(await mounter.isMountPoint(busy), false);
  });

  it('lists mounts from mountinfo, with escaped paths decoded', async () => {
    const target = join(dir, 'with space');
    await mkdir(target);
    await mountTracked(() => mounter.mount('tmpfs', target, 'tmpfs', ['size=1m']), target);
    assert.ok((await mounter.mounts()).some((m) => m.mountPoint === target && m.fsType === 'tmpfs'));
    assert.equal((await mounter.mountAt(target))?.mountPoint, target);
    await mounter.unmount(target);
  });
});
