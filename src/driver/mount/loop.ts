/**
 * Loop devices through ioctls (LOOP_CTL_GET_FREE + LOOP_CONFIGURE), the same
 * calls losetup makes, without a fork/exec per attach. State is read from
 * sysfs (/sys/block/loopN/loop/backing_file), so lookups open no devices.
 */
import { constants as fsConstants } from 'node:fs';
import { readdir, readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { close, hasErrorCode, ioctl, O, open, withFd } from './syscalls.js';

export interface LoopDevice {
  device: string;
  backingFile: string;
  /** Attached read-only: writes through the device fail with EPERM/EROFS. */
  readonly: boolean;
}

export interface AttachOptions {
  readonly?: boolean;
  /** Bypass the page cache of the backing file (no double caching). */
  directIo?: boolean;
}

// include/uapi/linux/loop.h; these are plain numbers in the header, not _IOx-encoded.
const LOOP_CTL_GET_FREE = 0x4c82;
const LOOP_CLR_FD = 0x4c01;
const LOOP_SET_CAPACITY = 0x4c07;
const LOOP_CONFIGURE = 0x4c0a;
const LO_FLAGS_READ_ONLY = 1;
const LO_FLAGS_DIRECT_IO = 16;
/** struct loop_config { __u32 fd; __u32 block_size; struct loop_info64 info; __u64 __reserved[8]; } */
const LOOP_CONFIG_SIZE = 304;
/** Offsets inside loop_config of loop_info64's lo_flags and lo_file_name[64]. */
const LO_FLAGS_OFFSET = 8 + 52;
const LO_FILE_NAME_OFFSET = 8 + 56;
const LO_NAME_SIZE = 64;

const LOOP_DEVICE = /^\/dev\/loop\d+$/;
/** Another process may claim the device we were handed between GET_FREE and CONFIGURE. */
const MAX_ATTACH_ATTEMPTS = 16;

/** Attaches run one at a time in this process so they do not race each other for the same free device. */
let queue: Promise<unknown> = Promise.resolve();

function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => {});
  return run;
}

export class LoopDevices {
  /** Binds file to a free loop device and returns it ('/dev/loopN'). */
  attach(file: string, opts: AttachOptions = {}): Promise<string> {
    return exclusive(() => this.attachNow(file, opts));
  }

  /**
   * The device already backed by file, or a newly attached one. Safe against
   * concurrent callers in this process. An existing device is returned as it
   * is, even if it was attached with other options.
   */
  ensureAttached(file: string, opts: AttachOptions = {}): Promise<string> {
    return exclusive(async () => (await this.devicesFor(file))[0] ?? (await this.attachNow(file, opts)));
  }

  /** Unbinds device; already unbound or missing is fine. A device still open is detached when last closed. */
  async detach(device: string): Promise<void> {
    checkDevice(device);
    try {
      await withFd(device, O.RDONLY, (fd) => ioctl(fd, LOOP_CLR_FD, 0, 'LOOP_CLR_FD', device));
    } catch (err) {
      if (!hasErrorCode(err, 'ENXIO', 'ENOENT')) throw err; // ENXIO: not bound
    }
  }

  /** Devices backed by file (normally zero or one), also after the file was deleted. */
  async devicesFor(file: string): Promise<string[]> {
    return (await this.attachmentsOf(file)).map((l) => l.device);
  }

  /** The loop devices backed by file, with their read-only flag. */
  async attachmentsOf(file: string): Promise<LoopDevice[]> {
    const target = await realpath(file).catch((err: unknown) => {
      if (hasErrorCode(err, 'ENOENT')) return resolve(file);
      throw err;
    });
    // The kernel reports a backing file that was unlinked as "<path> (deleted)".
    const names = [target, `${target} (deleted)`];
    return (await this.list()).filter((l) => names.includes(l.backingFile));
  }

  /** Re-reads the backing file's size after it grew (LOOP_SET_CAPACITY). */
  async refreshCapacity(device: string): Promise<void> {
    checkDevice(device);
    await withFd(device, O.RDONLY, (fd) => ioctl(fd, LOOP_SET_CAPACITY, 0, 'LOOP_SET_CAPACITY', device));
  }

  /** Every bound loop device on the host, whoever attached it. */
  async list(): Promise<LoopDevice[]> {
    const names = (await readdir('/sys/block')).filter((n) => /^loop\d+$/.test(n));
    const found = await Promise.all(
      names.map(async (name): Promise<LoopDevice | undefined> => {
        try {
          const backingFile = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8')).trimEnd();
          const readonly = (await readFile(`/sys/block/${name}/ro`, 'utf8').catch(() => '0')).trim() === '1';
          return { device: `/dev/${name}`, backingFile, readonly };
        } catch (err) {
          // ENOENT: not bound. ENODEV: being detached right now (seen when another detach races this read).
          if (hasErrorCode(err, 'ENOENT', 'ENODEV')) return undefined;
          throw err;
        }
      }),
    );
    return found.filter((l) => l !== undefined);
  }

  private async attachNow(file: string, opts: AttachOptions): Promise<string> {
    const flags = (opts.readonly ? O.RDONLY : O.RDWR) | (opts.directIo ? fsConstants.O_DIRECT : 0);
    const backing = open(file, flags);
    try {
      const config = loopConfig(backing, file, opts);
      for (let attempt = 1; ; attempt++) {
        const index = await withFd('/dev/loop-control', O.RDWR, (fd) =>
          ioctl(fd, LOOP_CTL_GET_FREE, 0, 'LOOP_CTL_GET_FREE', '/dev/loop-control'),
        );
        const device = `/dev/loop${index}`;
        try {
          await withFd(device, O.RDWR, (fd) => ioctl(fd, LOOP_CONFIGURE, config, 'LOOP_CONFIGURE', device));
          return device;
        } catch (err) {
          if (!hasErrorCode(err, 'EBUSY') || attempt >= MAX_ATTACH_ATTEMPTS) throw err;
        }
      }
    } finally {
      close(backing); // the loop device holds its own reference to the file
    }
  }

}

function loopConfig(backingFd: number, file: string, opts: AttachOptions): Buffer {
  const config = Buffer.alloc(LOOP_CONFIG_SIZE);
  config.writeUInt32LE(backingFd, 0);
  // block_size 0: the kernel picks (and matches the backing file's direct-I/O alignment).
  config.writeUInt32LE((opts.readonly ? LO_FLAGS_READ_ONLY : 0) | (opts.directIo ? LO_FLAGS_DIRECT_IO : 0), LO_FLAGS_OFFSET);
  // Informational only (losetup shows it); the authoritative path is in sysfs.
  Buffer.from(file).copy(config, LO_FILE_NAME_OFFSET, 0, LO_NAME_SIZE - 1);
  return config;
}

function checkDevice(device: string): void {
  if (!LOOP_DEVICE.test(device)) throw new RangeError(`not a loop device path: ${JSON.stringify(device)}`);
}
