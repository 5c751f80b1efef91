/**
 * A CephFS clone from CreateVolume's start to its end, and its stop from DeleteVolume, apart from
 * the journal and connections (cephfs-backend.ts) so that it can be driven against a fake mgr.
 *
 * Why a clone's mgr commands wait as long as the caller does, not --ceph-timeout (read in
 * Pacific 16.2's /usr/share/ceph/mgr/volumes/fs, and measured on ceph-dev):
 * - Every command of the module runs under its GlobalLock (operations/lock.py, taken by
 *   open_volume in volume.py), and so does a cloner thread at each state change of a clone
 *   (get_clone_state/set_clone_state and handle_clone_complete open the volume with it:
 *   async_cloner.py). `fs subvolume snapshot clone` also ends in Cloner.queue_job, which takes the
 *   AsyncJobs lock (async_job.py, through lock_timeout_log) that a cloner thread holds while it
 *   scans the clone index for its next job (get_job → get_next_clone_entry: libcephfs I/O).
 * - What makes each holder slow: the module's metadata writes (.meta files,
 *   operations/versions/metadata_manager.py flush: write, fsync, rename, under yet another
 *   module-wide lock) wait for the MDS, which in Pacific flushes its journal on its tick
 *   (mds_tick_interval, 5 s). Measured on ceph-dev: 8 clone commands sent at once came back after
 *   2.3 to 33.7 s, all 8 clones complete after 69 s; with mds_tick_interval 1 s, after 0.7 to
 *   4.4 s and 13 s. So the lead's reading (the AsyncJobs lock) is one of the locks, and the 5 s
 *   steps are the MDS tick.
 * So the mgr answers clone, clone status and the rest late exactly while clones run. Nothing the
 * driver does makes that faster; giving up at 10 s only turns each late answer into a retry that
 * queues one more command. So a clone's commands wait while the caller waits (its gRPC
 * deadline: external-provisioner's --timeout), up to CLONE_WAIT_LIMIT_MS; one left unanswered may
 * still take effect, and is tracked (unanswered.ts) so that no later call on the volume runs
 * before it.
 */
import type { Logger } from 'pino';
import { AbortedError, InternalError, NotFoundError } from '../../../csi/errors.js';
import { isCephError } from '../ceph/rados.js';
import { pollUntil } from './poll.js';
import type { CloneStatus, Subvolumes } from './subvolumes.js';

/** A clone waits at most this long inside one call (the caller's deadline usually ends it first). */
export const CLONE_WAIT_LIMIT_MS = 10 * 60_000;
/** DeleteVolume waits this long for a cancelled clone to stop (the mgr stops it within seconds). */
export const CANCEL_WAIT_LIMIT_MS = 30_000;

export const cloneRunning = (s: CloneStatus | undefined) => s?.state === 'pending' || s?.state === 'in-progress';

/** Where a clone's data comes from: a snapshot of a subvolume (temporary: made for this clone). */
export interface CloneSource {
  subvolume: string;
  group: string;
  snap: string;
  temporary: boolean;
}

export interface CloneJob {
  volumeId: string;
  /** Subvolumes of the clone's group, with the caller's patience. */
  sv: Subvolumes;
  /** The clone subvolume, named after the volume's reserved ID. */
  name: string;
  src: CloneSource;
  pool?: string | undefined;
  capacityBytes: number;
  signal?: AbortSignal | undefined;
  log: Logger;
  /** For tests; default CLONE_WAIT_LIMIT_MS. */
  limitMs?: number;
  /** For tests: polls of `fs clone status` (default 0.5 s, then x1.5, at most 1 s apart). */
  firstIntervalMs?: number;
  maxIntervalMs?: number;
}

/**
 * Starts the clone unless it exists (the name is the journal's: a retry, or a clone command an
 * earlier call sent that the mgr carried out late, finds it; EEXIST from the mgr is "started"),
 * then waits for the mgr to copy it while the caller waits: returns once complete, grown to the
 * requested size, its temporary snapshot removed. ABORTED while it is still pending or in progress
 * when the caller gives up (the clone goes on; a retry waits on). A failed clone is removed and
 * reported (INTERNAL); the retry starts over.
 */
export async function cloneAndWait(job: CloneJob): Promise<void> {
  const { sv, name, src, log } = job;
  const srcSv = sv.inGroup(src.group);
  const limitMs = job.limitMs ?? CLONE_WAIT_LIMIT_MS;
  if (!(await sv.cloneStatus(name))) {
    if (src.temporary) await srcSv.snapshotCreate(src.subvolume, src.snap);
    try {
      await sv.clone(src.group, src.subvolume, src.snap, name, job.pool);
    } catch (e) {
      if (isCephError(e, 'ENOENT')) throw new NotFoundError(`the source of volume ${job.volumeId} (${src.subvolume}@${src.snap}) does not exist`, { cause: e });
      if (!isCephError(e, 'EEXIST')) throw e;
    }
    log.info({ volumeId: job.volumeId, from: `${src.group}/${src.subvolume}@${src.snap}`, to: name }, 'cephfs clone started');
  }
  const started = Date.now();
  // Asked every half second at first, then once a second: a small clone is done in seconds and
  // each second late is the caller's, while every ask queues in the mgr behind the same locks.
  const waited = await pollUntil(() => sv.cloneStatus(name), (s) => !cloneRunning(s), {
    signal: job.signal,
    limitMs,
    firstIntervalMs: job.firstIntervalMs ?? 500,
    maxIntervalMs: job.maxIntervalMs ?? 1_000,
  });
  const status = waited.value;
  log.debug({ volumeId: job.volumeId, clone: name, state: status?.state, seconds: (Date.now() - started) / 1000, polls: waited.polls }, 'waited for a cephfs clone');
  if (!status) throw new InternalError(`the clone ${name} of ${src.subvolume}@${src.snap} vanished after it was started`);
  switch (status.state) {
    case 'pending':
    case 'in-progress':
      throw new AbortedError(
        `volume ${job.volumeId} is still being cloned from ${src.subvolume}@${src.snap} by the mgr (${status.state}) after ${waited.gaveUp === 'caller' ? 'the caller stopped waiting' : `${limitMs / 1000} s`}; ` +
          'a retry of CreateVolume waits on, DeleteVolume of this ID cancels and removes it',
      );
    case 'failed':
    case 'canceled': {
      log.warn({ volumeId: job.volumeId, clone: name, state: status.state, failure: status.failure }, 'removing a failed cephfs clone');
      await sv.remove(name);
      if (src.temporary) await srcSv.snapshotRemove(src.subvolume, src.snap);
      throw new InternalError(
        `cloning ${src.subvolume}@${src.snap} into ${name} ${status.state}${status.failure ? `: ${status.failure}` : ''}; the partial clone was removed and a retry starts over`,
      );
    }
    default:
      break;
  }
  if (src.temporary) await srcSv.snapshotRemove(src.subvolume, src.snap);
  // A clone carries its source's quota: make it the requested size.
  const info = await sv.info(name);
  if (info && (info.quotaBytes === undefined || info.quotaBytes < job.capacityBytes)) await sv.resize(name, job.capacityBytes);
}

/**
 * A clone whose CreateVolume caller gave up, stopped for DeleteVolume: cancelled if still pending
 * or in progress, and waited for until the mgr has stopped copying (then it is removed like any
 * subvolume, its source snapshot no longer pinned). ABORTED if it has not stopped in time.
 */
export async function stopClone(sv: Subvolumes, name: string, volumeId: string, opts: { signal?: AbortSignal | undefined; log: Logger; limitMs?: number }): Promise<void> {
  const st = await sv.cloneStatus(name).catch((e: unknown) => {
    // Only "not a clone after all" may be ignored; a mgr that did not answer must not be.
    if (isCephError(e, 'ETIMEDOUT', 'ECANCELED')) throw e;
    return undefined;
  });
  if (!cloneRunning(st)) return;
  opts.log.info({ volumeId, clone: name, state: st?.state }, 'cancelling a clone still in progress');
  await sv.cloneCancel(name);
  const stopped = await pollUntil(() => sv.cloneStatus(name), (s) => !cloneRunning(s), { signal: opts.signal, limitMs: opts.limitMs ?? CANCEL_WAIT_LIMIT_MS });
  if (!stopped.settled) throw new AbortedError(`the clone ${name} of volume ${volumeId} was cancelled but is still ${stopped.value?.state}; retry DeleteVolume`);
}
