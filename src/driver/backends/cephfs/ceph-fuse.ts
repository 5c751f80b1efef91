/**
 * ceph-fuse mounts: how a node without the ceph kernel module reaches a subvolume. One ceph-fuse
 * process per staging, mounted right at the staging path with `-r <subvolume path>`, so the mount
 * shows only that subvolume and its quota (client_quota: writes past it fail with EDQUOT, and
 * statfs reports the quota as the filesystem's size).
 *
 * Credentials: the cephx key goes to ceph-fuse in a keyfile (0600, in the 0700 state directory),
 * never in argv or a log. The keyfile and the small conf beside it stay while the mount exists and
 * are removed when it is unmounted: a restarted driver repairs a mount whose ceph-fuse died
 * (ENOTCONN) without the secrets, which only NodeStage carries.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { CommandRunner } from '../../mount/exec.js';
import type { Mounter } from '../../mount/mount.js';
import { hasErrorCode, umount2 } from '../../mount/syscalls.js';
import { monHost } from '../ceph/cluster-config.js';

export interface CephfsTarget {
  clusterID: string;
  monitors: string[];
  fsName: string;
  /** The subvolume's path inside the filesystem (fs subvolume getpath). */
  path: string;
  /** Without "client.". */
  user: string;
}

export const CEPH_FUSE_FSTYPE = 'fuse.ceph-fuse';
const MNT_DETACH = 0x2;
const UMOUNT_NOFOLLOW = 0x8;
/** How long ceph-fuse may take to reach the MDS and mount (it waits up to the ceph timeout itself). */
const MOUNT_TIMEOUT_MS = 60_000;

export class CephFuse {
  constructor(
    private readonly dir: string,
    private readonly runner: CommandRunner,
    private readonly mounter: Mounter,
    private readonly timeoutSeconds: number,
  ) {}

  /** The name of a staging's credential files. */
  key(volumeId: string, stagingPath: string): string {
    return createHash('sha256').update(`${volumeId}\0${stagingPath}`).digest('hex').slice(0, 24);
  }

  private confPath(key: string): string {
    return join(this.dir, `${key}.conf`);
  }

  private keyfilePath(key: string): string {
    return join(this.dir, `${key}.secret`);
  }

  /** 'ok', 'broken' (mounted but ceph-fuse is gone: ENOTCONN/ESTALE) or 'absent'. */
  async state(mountPoint: string): Promise<'ok' | 'broken' | 'absent'> {
    if (await this.mounter.isCorrupted(mountPoint)) return 'broken';
    const m = await this.mounter.mountAt(mountPoint);
    if (!m) return 'absent';
    return m.fsType === CEPH_FUSE_FSTYPE ? 'ok' : 'broken';
  }

  /**
   * Mounts the subvolume at mountPoint, which the caller has made (through NodePaths: a staging
   * path is never created here). secretKey is needed unless the credential files of an earlier
   * mount of this staging are still there (a repair).
   */
  async mount(key: string, t: CephfsTarget, secretKey: string | undefined, mountPoint: string, options: string[], log: Logger): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    if (secretKey !== undefined) await this.writeCredentials(key, t, secretKey);
    else {
      await stat(this.keyfilePath(key)).catch(() => {
        throw new Error(`cannot mount ${t.fsName}:${t.path} with ceph-fuse: no credentials left (stage the volume again)`);
      });
    }
    const args = [mountPoint, '-c', this.confPath(key), '--id', t.user, '--keyfile', this.keyfilePath(key), '-r', t.path];
    if (options.length > 0) args.push('-o', options.join(','));
    await this.runner.run('ceph-fuse', args, { timeoutMs: MOUNT_TIMEOUT_MS });
    const m = await this.mounter.mountAt(mountPoint);
    if (m?.fsType !== CEPH_FUSE_FSTYPE) throw new Error(`ceph-fuse exited without mounting ${t.fsName}:${t.path} at ${mountPoint}`);
    log.info({ mountPoint, fsName: t.fsName, path: t.path }, 'ceph-fuse mounted');
  }

  /**
   * Unmounts mountPoint (a ceph-fuse mount) and waits for its process to end, so the client's
   * session with the MDS is closed when NodeUnstage returns.
   */
  async unmount(mountPoint: string, log: Logger): Promise<void> {
    const pids = await this.processesOf(mountPoint);
    for (let attempt = 0; ; attempt++) {
      try {
        await umount2(mountPoint, UMOUNT_NOFOLLOW);
        break;
      } catch (e) {
        if (hasErrorCode(e, 'EINVAL', 'ENOENT')) break;
        if (hasErrorCode(e, 'ENOTCONN')) {
          await this.detachLazily(mountPoint);
          break;
        }
        if (!hasErrorCode(e, 'EBUSY') || attempt >= 50) throw e;
        await sleep(100);
      }
    }
    const left = await this.waitForExit(pids, 10_000);
    if (left.length > 0) log.warn({ mountPoint, pids: left }, 'ceph-fuse still running after its mount went (a bind mount of it is left somewhere)');
    else log.info({ mountPoint }, 'ceph-fuse unmounted');
  }

  /** Detaches a dead mount (ENOTCONN) without waiting for anyone. */
  async detachLazily(mountPoint: string): Promise<void> {
    try {
      await umount2(mountPoint, MNT_DETACH | UMOUNT_NOFOLLOW);
    } catch (e) {
      if (!hasErrorCode(e, 'EINVAL', 'ENOENT')) throw e;
    }
  }

  /** The key a staging's mount was made with (for repairs, which have no secrets). */
  async storedKey(key: string): Promise<string | undefined> {
    return readFile(this.keyfilePath(key), 'utf8').catch(() => undefined);
  }

  async removeCredentials(key: string): Promise<void> {
    for (const f of [this.confPath(key), this.keyfilePath(key), `${this.confPath(key)}.tmp`, `${this.keyfilePath(key)}.tmp`]) await rm(f, { force: true });
  }

  /** Keys of every credential file left in the state directory. */
  async keys(): Promise<string[]> {
    const names = await readdir(this.dir).catch((e: unknown) => {
      if (hasErrorCode(e, 'ENOENT')) return [] as string[];
      throw e;
    });
    return [...new Set(names.map((n) => n.replace(/\.(conf|secret)(\.tmp)?$/, '')).filter((n) => /^[0-9a-f]{24}$/.test(n)))];
  }

  private async writeCredentials(key: string, t: CephfsTarget, secretKey: string): Promise<void> {
    const conf = [
      '# Written by the stowage cephfs driver for one ceph-fuse mount; removed with it.',
      '[global]',
      `mon_host = ${monHost(t.monitors)}`,
      `client_mount_timeout = ${this.timeoutSeconds}`,
      `rados_mon_op_timeout = ${this.timeoutSeconds}`,
      'log_file = /dev/null',
      'admin_socket =',
      '[client]',
      `client_fs = ${t.fsName}`,
      // Enforce the subvolume's quota, and report it as the size in statfs (df shows the volume).
      'client_quota = true',
      'client_quota_df = true',
      '',
    ].join('\n');
    await writeAtomically(this.keyfilePath(key), secretKey);
    await writeAtomically(this.confPath(key), conf);
  }

  /** PIDs of ceph-fuse processes serving mountPoint (found by their command line). */
  async processesOf(mountPoint: string): Promise<number[]> {
    const out: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then(
        (t) => t.split('\0'),
        () => [] as string[],
      );
      if ((argv[0] ?? '').endsWith('ceph-fuse') && argv[1] === mountPoint) out.push(Number(entry));
    }
    return out;
  }

  /** Waits for the processes to end (or turn zombie); returns those still running at the deadline. */
  private async waitForExit(pids: number[], timeoutMs: number): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    const alive = async (pid: number) => {
      const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      return st !== '' && !/ Z /.test(st.slice(st.lastIndexOf(')') + 1, st.lastIndexOf(')') + 4));
    };
    for (const pid of pids) {
      while (Date.now() < deadline && (await alive(pid))) await sleep(20);
    }
    const left: number[] = [];
    for (const pid of pids) if (await alive(pid)) left.push(pid);
    return left;
  }
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, path);
}
