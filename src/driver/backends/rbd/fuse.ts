/**
 * rbd-fuse mounts: how a node without the rbd or nbd kernel modules reaches an image. rbd-fuse
 * exposes images as files (`<mount>/<image>`); a loop device on that file is the block device the
 * rest of staging works with.
 *
 * One mount per image and credentials, shared by every staging of that image on the node. Why not
 * one per pool, as a first design had it: rbd-fuse opens an image the first time anything looks
 * at its file and keeps it open (and watched) until it is unmounted, and a pool-wide mount
 * opens every image of the pool on a plain `ls`. An image unstaged from a shared pool mount would
 * stay watched for as long as any other volume of the pool is staged on the node, and DeleteVolume
 * refuses watched images. With `-r <image>` the mount exposes only its image, and unmounting it
 * closes the image.
 *
 * The cephx key goes to rbd-fuse in a keyring file (0600, in the state directory, 0700), never in
 * argv; the files stay while the mount exists, because repairing a mount whose rbd-fuse died
 * (ENOTCONN) after a driver restart must happen without the secrets, which NodeStage alone carries.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { CommandRunner } from '../../mount/exec.js';
import type { Mounter } from '../../mount/mount.js';
import { hasErrorCode, umount2 } from '../../mount/syscalls.js';
import { monHost } from '../ceph/cluster-config.js';

export interface FuseTarget {
  clusterID: string;
  monitors: string[];
  pool: string;
  image: string;
  user: string;
}

const MNT_DETACH = 0x2;
const UMOUNT_NOFOLLOW = 0x8;
/** How long rbd-fuse may take to connect and mount (it waits up to the ceph timeout itself). */
const MOUNT_TIMEOUT_MS = 60_000;

export class FuseMounts {
  constructor(
    private readonly dir: string,
    private readonly runner: CommandRunner,
    private readonly mounter: Mounter,
    private readonly timeoutSeconds: number,
  ) {}

  /** The mount's name: the same image and user always give the same directory. */
  key(t: FuseTarget): string {
    return createHash('sha256').update(JSON.stringify([t.clusterID, t.pool, t.image, t.user])).digest('hex').slice(0, 24);
  }

  mountPoint(key: string): string {
    return join(this.dir, key);
  }

  imageFile(key: string, image: string): string {
    return join(this.mountPoint(key), image);
  }

  private confPath(key: string): string {
    return join(this.dir, `${key}.conf`);
  }

  private keyringPath(key: string): string {
    return join(this.dir, `${key}.keyring`);
  }

  private targetPath(key: string): string {
    return join(this.dir, `${key}.json`);
  }

  /** 'ok', 'broken' (mounted but its rbd-fuse is gone: ENOTCONN) or 'absent'. */
  async state(key: string): Promise<'ok' | 'broken' | 'absent'> {
    const mp = this.mountPoint(key);
    if (await this.mounter.isCorrupted(mp)) return 'broken';
    const m = await this.mounter.mountAt(mp);
    if (!m) return 'absent';
    return m.fsType.startsWith('fuse') ? 'ok' : 'broken';
  }

  /**
   * Makes sure the image's mount is up and its file is there; returns the file. A broken mount is
   * replaced. `secretKey` is needed only when the mount must be (re)made and no keyring file of an
   * earlier mount is left; without either, a missing mount is an error.
   */
  async ensure(t: FuseTarget, secretKey: string | undefined, log: Logger): Promise<string> {
    const key = this.key(t);
    const mp = this.mountPoint(key);
    const state = await this.state(key);
    if (state === 'broken') {
      log.warn({ mountPoint: mp, image: t.image }, 'rbd-fuse mount is broken (its process is gone); remounting');
      await this.detachLazily(mp);
    }
    if (state !== 'ok') {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await chmod(this.dir, 0o700);
      if (secretKey !== undefined) await this.writeCredentials(key, t, secretKey);
      else await stat(this.keyringPath(key)).catch(() => {
        throw new Error(`cannot mount ${t.pool}/${t.image} with rbd-fuse: no credentials (stage the volume again)`);
      });
      await mkdir(mp, { recursive: true, mode: 0o700 });
      const args = ['-c', this.confPath(key), '--id', t.user, '-p', t.pool, '-r', t.image, mp, '-o', 'attr_timeout=0'];
      await this.runner.run('rbd-fuse', args, { timeoutMs: MOUNT_TIMEOUT_MS });
      log.info({ mountPoint: mp, pool: t.pool, image: t.image }, 'rbd-fuse mounted');
    }
    const file = this.imageFile(key, t.image);
    try {
      await stat(file);
    } catch (e) {
      throw new Error(`rbd-fuse at ${mp} does not show image ${t.pool}/${t.image}: ${(e as Error).message}`, { cause: e });
    }
    return file;
  }

  /** Unmounts the image's mount, waits for its rbd-fuse to close the image, removes its files. */
  async release(key: string, log: Logger): Promise<void> {
    const mp = this.mountPoint(key);
    const pids = await this.processesOf(mp);
    if (await this.mounter.isMountPoint(mp)) {
      for (let attempt = 0; ; attempt++) {
        try {
          await umount2(mp, UMOUNT_NOFOLLOW);
          break;
        } catch (e) {
          // A loop device released a moment ago may still hold the file for an instant.
          if (hasErrorCode(e, 'EINVAL', 'ENOENT')) break;
          if (!hasErrorCode(e, 'EBUSY') || attempt >= 50) throw e;
          await sleep(100);
        }
      }
    }
    // rbd-fuse closes the image (dropping its watch) on its way out: DeleteVolume right after
    // NodeUnstage must not find the image still watched.
    await this.waitForExit(pids, 10_000);
    await rmdir(mp).catch((e: unknown) => {
      if (!hasErrorCode(e, 'ENOENT')) throw e;
    });
    for (const f of [this.confPath(key), this.keyringPath(key), this.targetPath(key)]) await rm(f, { force: true });
    log.info({ mountPoint: mp }, 'rbd-fuse released');
  }

  /** Keys of every mount directory (or leftover credential file) in the state directory. */
  async keys(): Promise<string[]> {
    const names = await readdir(this.dir).catch((e: unknown) => {
      if (hasErrorCode(e, 'ENOENT')) return [] as string[];
      throw e;
    });
    return [...new Set(names.map((n) => n.replace(/\.(conf|keyring|json|tmp)$/, '')).filter((n) => /^[0-9a-f]{24}$/.test(n)))];
  }

  private async writeCredentials(key: string, t: FuseTarget, secretKey: string): Promise<void> {
    const keyring = `[client.${t.user}]\n\tkey = ${secretKey}\n`;
    const conf = [
      '# Written by the stowage rbd driver for one rbd-fuse mount; removed with it.',
      '[global]',
      `mon_host = ${monHost(t.monitors)}`,
      `keyring = ${this.keyringPath(key)}`,
      `client_mount_timeout = ${this.timeoutSeconds}`,
      `rados_mon_op_timeout = ${this.timeoutSeconds}`,
      'log_file = /dev/null',
      'admin_socket =',
      '',
    ].join('\n');
    await writeAtomically(this.keyringPath(key), keyring);
    await writeAtomically(this.confPath(key), conf);
    await writeAtomically(this.targetPath(key), JSON.stringify(t));
  }

  /** What a mount was made for (from its files), to remake it without the request. */
  async target(key: string): Promise<FuseTarget | undefined> {
    try {
      return JSON.parse(await readFile(this.targetPath(key), 'utf8')) as FuseTarget;
    } catch {
      return undefined;
    }
  }

  private async detachLazily(mp: string): Promise<void> {
    try {
      await umount2(mp, MNT_DETACH | UMOUNT_NOFOLLOW);
    } catch (e) {
      if (!hasErrorCode(e, 'EINVAL', 'ENOENT')) throw e;
    }
  }

  /** PIDs of rbd-fuse processes serving mp (found by their command line). */
  private async processesOf(mp: string): Promise<number[]> {
    const out: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then(
        (t) => t.split('\0'),
        () => [] as string[],
      );
      if ((argv[0] ?? '').endsWith('rbd-fuse') && argv.includes(mp)) out.push(Number(entry));
    }
    return out;
  }

  private async waitForExit(pids: number[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const pid of pids) {
      while (Date.now() < deadline) {
        const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        // Gone, or a zombie nobody reaps (PID 1 in some containers): either way it has closed the image.
        if (st === '' || / Z /.test(st.slice(st.lastIndexOf(')') + 1, st.lastIndexOf(')') + 4))) break;
        await sleep(20);
      }
    }
  }
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, path);
}
