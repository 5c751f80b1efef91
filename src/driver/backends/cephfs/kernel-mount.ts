/**
 * The kernel CephFS client (StorageClass `mounter: kernel`), mounted the way ceph-csi's kernel
 * mounter does it: `mount -t ceph <mon1,mon2>:<subvolume path> <staging> -o
 * name=<user>,secretfile=<file>,mds_namespace=<fs>[,ro][,mount flags][,kernelMountOptions],_netdev`
 * (the device string ceph-csi uses, which every kernel and mount.ceph accept; the newer
 * `<user>@<fsid>.<fs>=/<path>` form is not needed for it).
 *
 * The cephx key reaches mount.ceph in a secret file (0600, in the driver's 0700 state directory)
 * written just before the mount and removed right after: the kernel keeps the key, and a kernel
 * mount has no process that can die, so no repair needs it later. The ceph module must be loaded
 * (or load with modprobe): otherwise FAILED_PRECONDITION before anything is touched.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DeadlineExceededError, NotFoundError, PermissionDeniedError, UnavailableError } from '../../../csi/errors.js';
import { CommandFailedError, CommandTimeoutError, type CommandRunner } from '../../mount/exec.js';
import type { Mounter } from '../../mount/mount.js';
import { type HostProbe, realHostProbe, requireModule } from '../ceph/kernel-module.js';
import type { CephfsTarget } from './ceph-fuse.js';

export const CEPH_KERNEL_FSTYPE = 'ceph';
/** The kernel waits up to its mount_timeout (60 s) for monitors and MDS; a little more for the command. */
export const KERNEL_MOUNT_TIMEOUT_MS = 75_000;

export interface KernelMountOptions {
  runner: CommandRunner;
  mounter: Mounter;
  /** Where secret files live for the length of one mount (made 0700). */
  keyDir: string;
  host?: HostProbe;
  timeoutMs?: number;
}

export class CephKernelMount {
  private readonly host: HostProbe;
  private readonly timeoutMs: number;

  constructor(private readonly opts: KernelMountOptions) {
    this.host = opts.host ?? realHostProbe;
    this.timeoutMs = opts.timeoutMs ?? KERNEL_MOUNT_TIMEOUT_MS;
  }

  /** FAILED_PRECONDITION unless the ceph module is loaded (or loads now). */
  async requireModule(): Promise<void> {
    await requireModule(this.opts.runner, this.host, {
      module: 'ceph',
      mounter: 'mounter "kernel" (the kernel CephFS client)',
      instead: 'StorageClass parameter mounter "fuse" (ceph-fuse)',
    });
  }

  /** The argv of the mount: device string, mount point, then the options. */
  static args(t: CephfsTarget, mountPoint: string, secretFile: string, options: string[]): string[] {
    const all = [`name=${t.user}`, `secretfile=${secretFile}`, `mds_namespace=${t.fsName}`, ...options, '_netdev'];
    return ['-t', CEPH_KERNEL_FSTYPE, `${t.monitors.join(',')}:${t.path}`, mountPoint, '-o', all.join(',')];
  }

  /** Mounts the subvolume at mountPoint (made by the caller, through NodePaths). */
  async mount(t: CephfsTarget, secretKey: string, mountPoint: string, options: string[], log: Logger): Promise<void> {
    await this.requireModule();
    await mkdir(this.opts.keyDir, { recursive: true, mode: 0o700 });
    await chmod(this.opts.keyDir, 0o700);
    const secretFile = join(this.opts.keyDir, `ceph-${randomUUID()}.secret`);
    await writeFile(secretFile, secretKey, { mode: 0o600, flag: 'wx' });
    const what = `${t.fsName}:${t.path}`;
    try {
      await this.opts.runner.run('mount', CephKernelMount.args(t, mountPoint, secretFile, options), { timeoutMs: this.timeoutMs, secrets: [secretKey] });
    } catch (e) {
      throw mountError(e, t, what);
    } finally {
      await rm(secretFile, { force: true });
    }
    const m = await this.opts.mounter.mountAt(mountPoint);
    if (m?.fsType !== CEPH_KERNEL_FSTYPE) throw new Error(`mount -t ceph returned without mounting ${what} at ${mountPoint}`);
    log.info({ mountPoint, fsName: t.fsName, path: t.path }, 'cephfs mounted with the kernel client');
  }

  /** Removes secret files a driver killed in the middle of a mount left (called at start, before any mount). */
  async sweepSecretFiles(): Promise<void> {
    const names = await readdir(this.opts.keyDir).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith('ceph-') && n.endsWith('.secret')) await rm(join(this.opts.keyDir, n), { force: true });
  }

  /** 'ok', 'broken' (stat fails: ESTALE, EIO, a blocklisted client) or 'absent'. */
  async state(mountPoint: string): Promise<'ok' | 'broken' | 'absent'> {
    if (await this.opts.mounter.isCorrupted(mountPoint)) return 'broken';
    const m = await this.opts.mounter.mountAt(mountPoint);
    if (!m) return 'absent';
    return m.fsType === CEPH_KERNEL_FSTYPE ? 'ok' : 'broken';
  }
}

/** mount.ceph's "mount error N = <strerror>" (and the runner's timeout) as statuses. */
function mountError(e: unknown, t: CephfsTarget, what: string): unknown {
  const where = `ceph cluster ${t.clusterID} (monitors ${t.monitors.join(', ')})`;
  if (e instanceof CommandTimeoutError) {
    return new DeadlineExceededError(`mount -t ceph of ${what} timed out after ${Math.round(e.timeoutMs / 1000)} s: ${where} did not answer in time; retry`, { cause: e });
  }
  if (!(e instanceof CommandFailedError)) return e;
  const text = e.stderr;
  if (/error (1|13) =|Operation not permitted|Permission denied/.test(text)) {
    return new PermissionDeniedError(`${where} refused client.${t.user} mounting ${what} (check userID/userKey and the user's mds/osd caps): ${text}`, { cause: e });
  }
  if (/error 110 =|timed out/i.test(text)) {
    return new DeadlineExceededError(`mount -t ceph of ${what} timed out: ${where} did not answer in time; retry: ${text}`, { cause: e });
  }
  if (/error (111|107|113) =|Connection refused|No route to host/.test(text)) return new UnavailableError(`cannot reach ${where} to mount ${what}: ${text}`, { cause: e });
  if (/error 2 =|No such file or directory/.test(text)) return new NotFoundError(`${what} does not exist on ${where}: ${text}`, { cause: e });
  return e;
}
