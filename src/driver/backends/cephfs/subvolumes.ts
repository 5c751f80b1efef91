/**
 * Subvolumes through the mgr `volumes` module (`ceph fs subvolume …`), sent as the JSON commands
 * the `ceph` CLI sends, over librados' rados_mgr_command: no CLI process, no key in an argv. One
 * instance per filesystem and subvolume group; the errors are CephErrors carrying the module's own
 * words ("subvolume 'x' does not exist"), which cephfs-backend.ts turns into gRPC statuses.
 *
 * The module does the real work (directories, quotas as ceph.quota.max_bytes, snapshots as
 * CephFS snapshots, clones by its cloner threads) and keeps its own metadata beside each
 * subvolume, so every command here is safe to repeat after a crash: create of an existing
 * subvolume keeps it, rm with force ignores a missing one.
 */
import { FailedPreconditionError } from '../../../csi/errors.js';
import { CephError, isCephError, type MgrPatience, type Rados } from '../ceph/rados.js';

/** What Subvolumes needs of a connection (a fake mgr in unit tests). */
export type MgrClient = Pick<Rados, 'mgrCommand'>;

export interface SubvolumeInfo {
  /** Bytes, or undefined for no quota ("infinite"). */
  quotaBytes: number | undefined;
  usedBytes: number;
  path: string;
  /** complete, snapshot-retained, pending, in-progress, failed, canceled… */
  state: string;
  dataPool: string;
}

export type CloneState = 'pending' | 'in-progress' | 'complete' | 'failed' | 'canceled';

export interface CloneStatus {
  state: CloneState;
  /** Why a failed clone failed (errno and message), when the module says. */
  failure?: string;
}

/** The module is off (or the mgr cannot serve it): what the admin should do, once, clearly. */
export function volumesModuleOff(e: unknown, clusterID: string): FailedPreconditionError | undefined {
  if (!(e instanceof CephError) || !e.op.startsWith('mgr command "fs ')) return undefined;
  if (/not enabled|No handler found|unknown command|not available/i.test(e.detail) || isCephError(e, 'EOPNOTSUPP', 'ENOTSUP')) {
    return new FailedPreconditionError(
      `the mgr volumes module does not serve "${e.op.slice(13, -1)}" on ceph cluster ${clusterID} (${e.detail || e.code}): ` +
        'enable it with `ceph mgr module enable volumes`',
      { cause: e },
    );
  }
  return undefined;
}

export class Subvolumes {
  constructor(
    private readonly rados: MgrClient,
    readonly fsName: string,
    readonly group: string,
    /** How long each command waits for the mgr (default --ceph-timeout), and who hears of those left unanswered. */
    private readonly patience: MgrPatience = {},
  ) {}

  /** The same filesystem and patience, another group. */
  inGroup(group: string): Subvolumes {
    return new Subvolumes(this.rados, this.fsName, group, this.patience);
  }

  private async run(prefix: string, args: Record<string, unknown>): Promise<string> {
    const { out } = await this.rados.mgrCommand({ prefix, vol_name: this.fsName, format: 'json', ...args }, this.patience);
    return out;
  }

  /** Creates the group unless it exists (the module makes this idempotent). */
  async ensureGroup(): Promise<void> {
    await this.run('fs subvolumegroup create', { group_name: this.group });
  }

  async create(name: string, opts: { sizeBytes: number; pool?: string }): Promise<void> {
    await this.run('fs subvolume create', {
      sub_name: name,
      group_name: this.group,
      size: opts.sizeBytes,
      ...(opts.pool ? { pool_layout: opts.pool } : {}),
      // ceph-csi's default: pods of any uid can use the volume's root.
      mode: '0777',
    });
  }

  /** Changes the quota; never shrinks (no_shrink). */
  async resize(name: string, sizeBytes: number): Promise<void> {
    await this.run('fs subvolume resize', { sub_name: name, group_name: this.group, new_size: String(sizeBytes), no_shrink: true });
  }

  async getpath(name: string): Promise<string> {
    return (await this.run('fs subvolume getpath', { sub_name: name, group_name: this.group })).trim();
  }

  /** undefined when there is no such subvolume. EAGAIN while a clone is not complete. */
  async info(name: string): Promise<SubvolumeInfo | undefined> {
    try {
      const raw = JSON.parse(await this.run('fs subvolume info', { sub_name: name, group_name: this.group })) as Record<string, unknown>;
      const quota = raw['bytes_quota'];
      return {
        quotaBytes: typeof quota === 'number' ? quota : undefined,
        usedBytes: typeof raw['bytes_used'] === 'number' ? raw['bytes_used'] : 0,
        path: typeof raw['path'] === 'string' ? raw['path'] : '',
        state: String(raw['state'] ?? 'complete'),
        dataPool: String(raw['data_pool'] ?? ''),
      };
    } catch (e) {
      if (isCephError(e, 'ENOENT')) return undefined;
      throw e;
    }
  }

  /**
   * Removes the subvolume (missing is fine). With retainSnapshots its snapshots stay (the
   * subvolume is in state snapshot-retained) and the module purges it when the last one goes.
   */
  async remove(name: string, opts: { retainSnapshots?: boolean } = {}): Promise<void> {
    await this.run('fs subvolume rm', { sub_name: name, group_name: this.group, force: true, ...(opts.retainSnapshots ? { retain_snapshots: true } : {}) });
  }

  async snapshotCreate(sub: string, snap: string): Promise<void> {
    try {
      await this.run('fs subvolume snapshot create', { sub_name: sub, snap_name: snap, group_name: this.group });
    } catch (e) {
      if (!isCephError(e, 'EEXIST')) throw e;
    }
  }

  /** Missing snapshot (or subvolume) is fine. EAGAIN while clones of it are pending. */
  async snapshotRemove(sub: string, snap: string): Promise<void> {
    try {
      await this.run('fs subvolume snapshot rm', { sub_name: sub, snap_name: snap, group_name: this.group, force: true });
    } catch (e) {
      if (!isCephError(e, 'ENOENT')) throw e;
    }
  }

  async snapshots(sub: string): Promise<string[]> {
    try {
      return (JSON.parse(await this.run('fs subvolume snapshot ls', { sub_name: sub, group_name: this.group })) as { name: string }[]).map((s) => s.name);
    } catch (e) {
      if (isCephError(e, 'ENOENT')) return [];
      throw e;
    }
  }

  /** Starts cloning sub@snap (of srcGroup) into a new subvolume target of this group. */
  async clone(srcGroup: string, sub: string, snap: string, target: string, pool?: string): Promise<void> {
    await this.run('fs subvolume snapshot clone', {
      sub_name: sub,
      snap_name: snap,
      target_sub_name: target,
      group_name: srcGroup,
      target_group_name: this.group,
      ...(pool ? { pool_layout: pool } : {}),
    });
  }

  /** undefined when there is no such subvolume. A subvolume that was never a clone says complete. */
  async cloneStatus(name: string): Promise<CloneStatus | undefined> {
    try {
      const raw = JSON.parse(await this.run('fs clone status', { clone_name: name, group_name: this.group })) as {
        status: { state: CloneState; failure?: { errno?: string; error_msg?: string } };
      };
      const f = raw.status.failure;
      return { state: raw.status.state, ...(f ? { failure: `${f.error_msg ?? ''}${f.errno ? ` (errno ${f.errno})` : ''}`.trim() } : {}) };
    } catch (e) {
      if (isCephError(e, 'ENOENT')) return undefined;
      // Not a clone at all (a plain subvolume of that name): there is nothing to wait for.
      if (isCephError(e, 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP') && /not a clone|not allowed|unsupported/i.test(e.detail)) return { state: 'complete' };
      throw e;
    }
  }

  /** Stops a pending or running clone (one that is not running any more is fine). */
  async cloneCancel(name: string): Promise<void> {
    try {
      await this.run('fs clone cancel', { clone_name: name, group_name: this.group });
    } catch (e) {
      if (!isCephError(e, 'ENOENT', 'EINVAL')) throw e;
    }
  }
}
