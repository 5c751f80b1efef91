/**
 * Snapshots on Ceph, measured: rbd and cephfs CreateSnapshot and CreateVolume-from-snapshot
 * through the real driver's CSI socket, beside the raw Ceph calls that do the same work, in the
 * same run on the same one-node dev cluster at the same concurrency. Not a test: it prints a table
 * (ops/s, p50/p95 latency, retries, driver/raw ratio).
 *
 *   node dist/bench/ceph-snapshot-bench.js [--backend rbd|cephfs|both] [--n 16] [--concurrency 8]
 *                                          [--ceph-timeout 10] [--rpc-timeout 150] [--log-level warn]
 *
 * The driver side is called as external-provisioner and external-snapshotter call it: each call
 * with a deadline (--rpc-timeout: their --timeout, 150 s in our deploy/ manifests as in
 * ceph-csi's; the sidecars' own default is 15 s), and on ABORTED, DEADLINE_EXCEEDED or
 * UNAVAILABLE the same request again after a backoff that starts at 500 ms (the manifests'
 * --retry-interval-start) and doubles up to 5 min (--retry-interval-max's default). An op's time
 * runs from its first attempt to its success; the retries are counted and printed per row.
 *
 * Per backend, N operations, each from its own source volume (64 MiB, empty: what is measured is
 * the control path, not a data copy):
 * - rbd CreateSnapshot vs what the driver asks librbd for (clone v2, as ceph-csi; no protect):
 *   snap_create of a temporary snapshot on the source, rbd_clone3 into the snapshot image,
 *   snap_remove of the temporary one, snap_create on the snapshot image. A bare rbd_snap_create
 *   on the source is printed too, for scale (a snapshot that could not outlive its volume).
 * - rbd CreateVolume from snapshot vs rbd_clone3 (clone v2) of the snapshot image's snapshot.
 * - cephfs CreateSnapshot vs the mgr's `fs subvolume snapshot create` (the driver's own
 *   rados_mgr_command binding).
 * - cephfs CreateVolume from snapshot vs `fs subvolume snapshot clone`, then `fs clone status`
 *   polled until complete on the driver's own schedule (0.5 s, x1.5, at most 1 s apart).
 *
 * --ceph-timeout is the driver's --ceph-timeout (its default, 10 s, unless given). The raw side's
 * mgr commands wait as long as the mgr takes (RAW_MGR_WAIT_MS): what is measured there is the
 * mgr's own time, which under 8 concurrent clones is tens of seconds per command.
 *
 * Everything lives in one temp dir with its own cluster; volumes, snapshots, images and
 * subvolumes are deleted at the end (and checked gone), the driver stopped and the cluster taken
 * down, also after a failure or SIGINT/SIGTERM (the cluster goes down with all it holds).
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { DevCluster, DevClusterInfo } from '../src/ceph/dev-cluster.js';
import { status } from '@grpc/grpc-js';
import type { CsiClient } from '../src/csi/client.js';
import { CsiError } from '../src/csi/errors.js';
import { Rados, type IoCtx } from '../src/driver/backends/ceph/rados.js';
import { pollUntil } from '../src/driver/backends/cephfs/poll.js';
import { cloneImage, createImage, FEATURES, Image, removeImage } from '../src/driver/backends/rbd/librbd.js';
import { ExecRunner } from '../src/driver/mount/exec.js';
import { parseMountInfo } from '../src/driver/mount/mount.js';
import { umount2 } from '../src/driver/mount/syscalls.js';
import { CephBenchSession, MiB } from './ceph-bench-session.js';

const VOLUME_BYTES = 64 * MiB;
/** The driver's object order (4 MiB objects) and clone features. */
const ORDER = 22;
const CLONE_OPTS = { features: FEATURES['layering']! | FEATURES['deep-flatten']!, order: ORDER, cloneFormat: 2 as const };
const GROUP = 'csi';
const MNT_DETACH = 2;

const runner = new ExecRunner(pino({ level: 'silent' }));
/** The raw side's mgr commands: long enough for any answer the mgr gives. */
const RAW_MGR_WAIT_MS = 600_000;
/** What external-provisioner / external-snapshotter retry: the codes that do not mean "never". */
const RETRIED = new Set<number>([status.ABORTED, status.DEADLINE_EXCEEDED, status.UNAVAILABLE]);
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 300_000;

interface Stats {
  n: number;
  /** Attempts beyond the first, over all n ops (driver side: as the sidecars retry). */
  retries: number;
  /** The codes that were retried, counted. */
  retriedCodes: Record<string, number>;
  opsPerSec: number;
  p50Ms: number;
  p95Ms: number;
}

interface Row {
  backend: 'rbd' | 'cephfs';
  op: string;
  side: 'driver' | 'raw' | 'bare';
  stats: Stats;
  what: string;
}

interface Options {
  backends: ('rbd' | 'cephfs')[];
  n: number;
  c: number;
  logLevel: string;
  cephTimeout: number;
  rpcTimeout: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'both' },
      n: { type: 'string', default: '16' },
      concurrency: { type: 'string', default: '8' },
      'log-level': { type: 'string', default: 'warn' },
      'ceph-timeout': { type: 'string', default: '10' },
      'rpc-timeout': { type: 'string', default: '150' },
    },
  });
  const b = values.backend;
  if (b !== 'rbd' && b !== 'cephfs' && b !== 'both') throw new Error(`--backend must be rbd, cephfs or both, not ${b}`);
  const n = Number(values.n);
  const c = Number(values.concurrency);
  const cephTimeout = Number(values['ceph-timeout']);
  const rpcTimeout = Number(values['rpc-timeout']);
  if (![n, c, cephTimeout, rpcTimeout].every((x) => Number.isInteger(x) && x >= 1)) throw new Error('--n, --concurrency, --ceph-timeout and --rpc-timeout must be positive integers');
  return { backends: b === 'both' ? ['rbd', 'cephfs'] : [b], n, c, logLevel: values['log-level'], cephTimeout, rpcTimeout };
}

/** Nothing of this bench is mounted, but unmount whatever is under root anyway; then the cluster goes. */
async function teardown(root: string, cluster: DevCluster | undefined): Promise<string[]> {
  const problems: string[] = [];
  const under = (p: string) => p === root || p.startsWith(`${root}/`);
  const ms = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'))
    .filter((m) => under(m.mountPoint))
    .sort((a, b) => b.mountId - a.mountId);
  for (const m of ms) await umount2(m.mountPoint, 0).catch(() => umount2(m.mountPoint, MNT_DETACH).catch((e: unknown) => problems.push(`umount ${m.mountPoint}: ${String(e)}`)));
  if (cluster) await cluster.down().catch((e: unknown) => problems.push(`ceph-dev down: ${(e as Error).message}`));
  if (problems.length === 0) await rm(root, { recursive: true, force: true });
  return problems;
}

/** Retries counted while a row is measured (the driver calls add to it). */
class RetryCount {
  total = 0;
  readonly codes: Record<string, number> = {};
  add(code: number): void {
    this.total++;
    const name = status[code] ?? String(code);
    this.codes[name] = (this.codes[name] ?? 0) + 1;
  }
}

/**
 * session.measure() (stops on a signal) with each op's latency kept for p50/p95. The op gets the
 * row's retry count to add to (driver calls retry as the sidecars do).
 */
async function timed(session: CephBenchSession, n: number, c: number, op: (i: number, retries: RetryCount) => Promise<unknown>): Promise<Stats> {
  const lat: number[] = [];
  const retries = new RetryCount();
  const s = await session.measure(n, c, async (i) => {
    const t = performance.now();
    await op(i, retries);
    lat.push(performance.now() - t);
  });
  lat.sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? Number.NaN;
  return { n, retries: retries.total, retriedCodes: retries.codes, opsPerSec: s.opsPerSec, p50Ms: pct(0.5), p95Ms: pct(0.95) };
}

/**
 * A CSI call as external-provisioner makes it: a deadline per attempt, and the same request again
 * after a doubling backoff while the answer is ABORTED, DEADLINE_EXCEEDED or UNAVAILABLE.
 */
async function asSidecar<T>(call: () => Promise<T>, retries?: RetryCount): Promise<T> {
  let backoff = BACKOFF_FIRST_MS;
  for (;;) {
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof CsiError) || !RETRIED.has(e.code)) throw e;
      retries?.add(e.code);
      await sleep(backoff);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
    }
  }
}

/** Throws unless list is empty: the bench's own check that its clean-up left nothing in Ceph. */
function requireNone(what: string, list: string[]): void {
  if (list.length > 0) throw new Error(`left after clean-up: ${list.length} ${what}: ${list.slice(0, 8).join(', ')}`);
}

async function benchRbd(session: CephBenchSession, info: DevClusterInfo, rados: Rados, o: Options, rows: Row[]): Promise<void> {
  const { n, c } = o;
  const stateDir = join(session.drvDir, 'rbd-state');
  await mkdir(stateDir, { recursive: true });
  const cl = await session.startDriver('rbd', info, ['--rbd-state-dir', stateDir, '--ceph-timeout', String(o.cephTimeout)], o.logLevel);
  const secrets = { userID: info.userID, userKey: info.userKey };
  const parameters = { clusterID: info.clusterID, pool: info.pool };
  const cap = { mount: { fs_type: 'ext4', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };
  const d = driverCalls(cl, parameters, secrets, cap, o.rpcTimeout);

  const poolId = await rados.poolId(info.pool);
  if (poolId === undefined) throw new Error(`no pool ${info.pool}`);
  const io: IoCtx = await rados.ioctx(poolId, info.pool);
  const src = (i: number) => `bench-rawsrc-${i}`;
  const snapImg = (i: number) => `bench-rawsnap-${i}`;
  const restore = (i: number) => `bench-rawrestore-${i}`;
  // What the driver's createSnapshot asks librbd for, minus the journal, the marker and gRPC.
  const rawSnapshot = async (source: string, snap: string) => {
    await Image.with(io, source, async (parent) => {
      await parent.snapCreate(snap);
      await cloneImage(io, source, snap, io, snap, CLONE_OPTS);
      await parent.snapRemove(snap);
    });
    await Image.with(io, snap, (img) => img.snapCreate(snap));
  };
  const rawRestore = (snap: string, image: string) => cloneImage(io, snap, snap, io, image, CLONE_OPTS);
  const rawDeleteSnapshot = async (snap: string) => {
    await Image.with(io, snap, (img) => img.snapRemove(snap));
    await removeImage(io, snap);
  };

  // Untimed: sources on both sides, one warm-up of every call on each side.
  process.stderr.write(`rbd: ${n} source volumes and ${n} raw source images (untimed), warm-up\n`);
  const srcIds: string[] = [];
  await session.measure(n, c, async (i) => {
    srcIds[i] = await d.createVolume(`cs-rbd-src-${i}`);
  });
  await session.measure(n, c, (i) => createImage(io, src(i), VOLUME_BYTES, { features: FEATURES['layering']!, order: ORDER }));
  {
    const w = await d.createVolume('cs-rbd-warm');
    const ws = await d.createSnapshot('cs-rbd-warm-snap', w);
    await d.deleteVolume(await d.createVolume('cs-rbd-warm-restore', ws));
    await d.deleteSnapshot(ws);
    await d.deleteVolume(w);
    await createImage(io, 'bench-rawwarm', VOLUME_BYTES, { features: FEATURES['layering']!, order: ORDER });
    await rawSnapshot('bench-rawwarm', 'bench-rawwarm-snap');
    await rawRestore('bench-rawwarm-snap', 'bench-rawwarm-restore');
    await removeImage(io, 'bench-rawwarm-restore');
    await rawDeleteSnapshot('bench-rawwarm-snap');
    await removeImage(io, 'bench-rawwarm');
  }

  process.stderr.write(`rbd: CreateSnapshot ×${n} at concurrency ${c}, driver then raw\n`);
  const snapIds: string[] = [];
  const snapOp = 'CreateSnapshot';
  rows.push({ backend: 'rbd', op: snapOp, side: 'driver', what: 'CSI CreateSnapshot over the socket', stats: await timed(session, n, c, async (i, retries) => {
    snapIds[i] = await d.createSnapshot(`cs-rbd-snap-${i}`, srcIds[i]!, retries);
  }) });
  rows.push({ backend: 'rbd', op: snapOp, side: 'raw', what: 'librbd: snap_create tmp + clone3 v2 + snap_remove tmp + snap_create (the driver\'s Ceph work)', stats: await timed(session, n, c, (i) => rawSnapshot(src(i), snapImg(i))) });
  rows.push({ backend: 'rbd', op: snapOp, side: 'bare', what: 'librbd: open + rbd_snap_create + close on the source (for scale)', stats: await timed(session, n, c, (i) => Image.with(io, src(i), (img) => img.snapCreate('bare'))) });
  await session.measure(n, c, (i) => Image.with(io, src(i), (img) => img.snapRemove('bare')));

  process.stderr.write(`rbd: CreateVolume from snapshot ×${n} at concurrency ${c}, driver then raw\n`);
  const restoreIds: string[] = [];
  const restoreOp = 'CreateVolume from snapshot';
  rows.push({ backend: 'rbd', op: restoreOp, side: 'driver', what: 'CSI CreateVolume with a snapshot content source', stats: await timed(session, n, c, async (i, retries) => {
    restoreIds[i] = await d.createVolume(`cs-rbd-restore-${i}`, snapIds[i]!, retries);
  }) });
  rows.push({ backend: 'rbd', op: restoreOp, side: 'raw', what: 'librbd: rbd_clone3 v2 of the snapshot image\'s snapshot', stats: await timed(session, n, c, (i) => rawRestore(snapImg(i), restore(i))) });

  // Untimed clean-up, in dependency order, then a check that the pool is empty.
  process.stderr.write('rbd: deleting restores, snapshots and sources\n');
  await session.measure(n, c, (i) => d.deleteVolume(restoreIds[i]!));
  await session.measure(n, c, (i) => d.deleteSnapshot(snapIds[i]!));
  await session.measure(n, c, (i) => d.deleteVolume(srcIds[i]!));
  await session.measure(n, c, (i) => removeImage(io, restore(i)));
  await session.measure(n, c, (i) => rawDeleteSnapshot(snapImg(i)));
  await session.measure(n, c, (i) => removeImage(io, src(i)));
  const rbdCli = async (args: string[]) =>
    (JSON.parse((await runner.run('rbd', ['-c', info.conf, '--id', info.userID, ...args, '--format', 'json', info.pool], { timeoutMs: 60_000 })).stdout || '[]') as unknown[]).map((e) =>
      typeof e === 'string' ? e : JSON.stringify(e),
    );
  requireNone(`images in pool ${info.pool}`, await rbdCli(['ls']));
  requireNone(`images in the trash of pool ${info.pool}`, await rbdCli(['trash', 'ls']));
  await session.stopDriver();
}

async function benchCephfs(session: CephBenchSession, info: DevClusterInfo, rados: Rados, o: Options, rows: Row[]): Promise<void> {
  const { n, c } = o;
  const stateDir = join(session.drvDir, 'cephfs-state');
  await mkdir(stateDir, { recursive: true });
  const cl = await session.startDriver('cephfs', info, ['--cephfs-state-dir', stateDir, '--ceph-timeout', String(o.cephTimeout)], o.logLevel);
  const secrets = { adminID: info.userID, adminKey: info.userKey, userID: info.userID, userKey: info.userKey };
  const parameters = { clusterID: info.clusterID, fsName: info.fsName };
  const cap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' as const } };
  const d = driverCalls(cl, parameters, secrets, cap, o.rpcTimeout);

  // The raw side: the driver's own rados_mgr_command binding, the same commands and group.
  const mgr = async (prefix: string, args: Record<string, unknown>) =>
    (await rados.mgrCommand({ prefix, vol_name: info.fsName, format: 'json', ...args }, { waitMs: RAW_MGR_WAIT_MS })).out;
  const src = (i: number) => `bench-rawsrc-${i}`;
  const snap = (i: number) => `bench-rawsnap-${i}`;
  const clone = (i: number) => `bench-rawclone-${i}`;
  const rawCreate = (name: string) => mgr('fs subvolume create', { sub_name: name, group_name: GROUP, size: VOLUME_BYTES, mode: '0777' });
  const rawSnapshot = (sub: string, s: string) => mgr('fs subvolume snapshot create', { sub_name: sub, snap_name: s, group_name: GROUP });
  const rawRestore = async (sub: string, s: string, target: string) => {
    await mgr('fs subvolume snapshot clone', { sub_name: sub, snap_name: s, target_sub_name: target, group_name: GROUP, target_group_name: GROUP });
    const state = async () => (JSON.parse(await mgr('fs clone status', { clone_name: target, group_name: GROUP })) as { status: { state: string } }).status.state;
    const r = await pollUntil(state, (st) => st !== 'pending' && st !== 'in-progress', { limitMs: 300_000, firstIntervalMs: 500, maxIntervalMs: 1_000 });
    if (r.value !== 'complete') throw new Error(`clone ${target} of ${sub}@${s}: ${r.value}${r.settled ? '' : ' after 300 s'}`);
  };
  const rawRemove = (name: string) => mgr('fs subvolume rm', { sub_name: name, group_name: GROUP, force: true });
  const rawSnapRemove = (sub: string, s: string) => mgr('fs subvolume snapshot rm', { sub_name: sub, snap_name: s, group_name: GROUP, force: true });

  process.stderr.write(`cephfs: ${n} source volumes and ${n} raw source subvolumes (untimed), warm-up\n`);
  const srcIds: string[] = [];
  await session.measure(n, c, async (i) => {
    srcIds[i] = await d.createVolume(`cs-fs-src-${i}`);
  });
  await mgr('fs subvolumegroup create', { group_name: GROUP });
  await session.measure(n, c, (i) => rawCreate(src(i)));
  {
    const w = await d.createVolume('cs-fs-warm');
    const ws = await d.createSnapshot('cs-fs-warm-snap', w);
    await d.deleteVolume(await d.createVolume('cs-fs-warm-restore', ws));
    await d.deleteSnapshot(ws);
    await d.deleteVolume(w);
    await rawCreate('bench-rawwarm');
    await rawSnapshot('bench-rawwarm', 'warm');
    await rawRestore('bench-rawwarm', 'warm', 'bench-rawwarm-clone');
    await rawRemove('bench-rawwarm-clone');
    await rawSnapRemove('bench-rawwarm', 'warm');
    await rawRemove('bench-rawwarm');
  }

  process.stderr.write(`cephfs: CreateSnapshot ×${n} at concurrency ${c}, driver then raw\n`);
  const snapIds: string[] = [];
  const snapOp = 'CreateSnapshot';
  rows.push({ backend: 'cephfs', op: snapOp, side: 'driver', what: 'CSI CreateSnapshot over the socket', stats: await timed(session, n, c, async (i, retries) => {
    snapIds[i] = await d.createSnapshot(`cs-fs-snap-${i}`, srcIds[i]!, retries);
  }) });
  rows.push({ backend: 'cephfs', op: snapOp, side: 'raw', what: 'mgr: fs subvolume snapshot create', stats: await timed(session, n, c, (i) => rawSnapshot(src(i), snap(i))) });

  process.stderr.write(`cephfs: CreateVolume from snapshot ×${n} at concurrency ${c}, driver then raw\n`);
  const restoreIds: string[] = [];
  const restoreOp = 'CreateVolume from snapshot';
  rows.push({ backend: 'cephfs', op: restoreOp, side: 'driver', what: 'CSI CreateVolume with a snapshot content source (waits for the clone)', stats: await timed(session, n, c, async (i, retries) => {
    restoreIds[i] = await d.createVolume(`cs-fs-restore-${i}`, snapIds[i]!, retries);
  }) });
  rows.push({ backend: 'cephfs', op: restoreOp, side: 'raw', what: 'mgr: fs subvolume snapshot clone + fs clone status until complete (0.5 s, x1.5, ≤1 s)', stats: await timed(session, n, c, (i) => rawRestore(src(i), snap(i), clone(i))) });

  process.stderr.write('cephfs: deleting restores, snapshots and sources\n');
  await session.measure(n, c, (i) => d.deleteVolume(restoreIds[i]!));
  await session.measure(n, c, (i) => d.deleteSnapshot(snapIds[i]!));
  await session.measure(n, c, (i) => d.deleteVolume(srcIds[i]!));
  await session.measure(n, c, (i) => rawRemove(clone(i)));
  await session.measure(n, c, (i) => rawSnapRemove(src(i), snap(i)));
  await session.measure(n, c, (i) => rawRemove(src(i)));
  // A removed subvolume may linger a moment in the trash while the mgr purges it: not listed.
  const left = (JSON.parse(await mgr('fs subvolume ls', { group_name: GROUP })) as { name: string }[]).map((s) => s.name);
  requireNone(`subvolumes in group ${GROUP} of ${info.fsName}`, left);
  await session.stopDriver();
}

/**
 * The CSI calls as external-snapshotter and external-provisioner make them (asSidecar: a deadline
 * per attempt, retried while the answer is not final); the creates return the new ID.
 */
function driverCalls(
  cl: CsiClient,
  parameters: Record<string, string>,
  secrets: Record<string, string>,
  cap: { mount: { fs_type: string; mount_flags: string[] }; access_mode: { mode: 'SINGLE_NODE_WRITER' | 'MULTI_NODE_MULTI_WRITER' } },
  rpcTimeoutSeconds: number,
) {
  const deadline = { timeoutMs: rpcTimeoutSeconds * 1000 };
  return {
    createVolume: (name: string, fromSnapshot?: string, retries?: RetryCount) =>
      asSidecar(
        async () =>
          (
            await cl.controller.CreateVolume(
              {
                name,
                capacity_range: { required_bytes: VOLUME_BYTES },
                volume_capabilities: [cap],
                parameters,
                secrets,
                ...(fromSnapshot ? { volume_content_source: { snapshot: { snapshot_id: fromSnapshot } } } : {}),
              },
              deadline,
            )
          ).volume!.volume_id,
        retries,
      ),
    createSnapshot: (name: string, sourceVolumeId: string, retries?: RetryCount) =>
      asSidecar(async () => (await cl.controller.CreateSnapshot({ name, source_volume_id: sourceVolumeId, parameters, secrets }, deadline)).snapshot!.snapshot_id, retries),
    deleteVolume: (id: string) => asSidecar(() => cl.controller.DeleteVolume({ volume_id: id, secrets }, deadline)),
    deleteSnapshot: (id: string) => asSidecar(() => cl.controller.DeleteSnapshot({ snapshot_id: id, secrets }, deadline)),
  };
}

async function main(): Promise<void> {
  const o = options();
  const began = performance.now();
  const session = await CephBenchSession.open('ceph-snapshot-bench', 'the dev cluster\'s daemons', teardown);
  const rows: Row[] = [];
  let clusterUpSeconds = 0;
  let failure: unknown;
  try {
    process.stderr.write('bringing up the dev cluster…\n');
    const t0 = performance.now();
    const info = await session.cluster.up();
    clusterUpSeconds = (performance.now() - t0) / 1000;
    await mkdir(session.drvDir, { recursive: true, mode: 0o700 });
    const rados = (session.rados = await Rados.connect({ monitors: info.monitors, user: info.userID, key: info.userKey, timeoutSeconds: o.cephTimeout }));
    for (const b of o.backends) {
      if (b === 'rbd') await benchRbd(session, info, rados, o, rows);
      else await benchCephfs(session, info, rados, o, rows);
    }
  } catch (e) {
    failure = e;
  } finally {
    await session.finish(failure);
  }
  // What was measured before a failure is still a figure (e.g. which call gave up at this concurrency).
  if (rows.length > 0 || !failure) printReport(rows, o, { seconds: (performance.now() - began) / 1000, clusterUpSeconds });
  if (failure) {
    const current = rows.length > 0 ? 'the rows above were measured; the next one failed' : 'nothing was measured';
    process.stderr.write(`ceph-snapshot-bench FAILED (${current}): ${failure instanceof Error ? failure.message : String(failure)}\n`);
    process.exitCode = 1;
  }
}

function printReport(rows: Row[], o: Options, run: { seconds: number; clusterUpSeconds: number }): void {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const header = ['backend', 'operation', 'side', 'ops/s', 'p50 ms', 'p95 ms', 'retries', 'what'];
  const retried = (st: Stats) => (st.retries === 0 ? '0' : `${st.retries} (${Object.entries(st.retriedCodes).map(([k, v]) => `${v} ${k}`).join(', ')})`);
  const table = rows.map((r) => [r.backend, r.op, r.side, f(r.stats.opsPerSec), f(r.stats.p50Ms), f(r.stats.p95Ms), r.side === 'driver' ? retried(r.stats) : '-', r.what]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cols: string[]) => cols.map((col, i) => (i >= 3 && i <= 5 ? col.padStart(widths[i]!) : col.padEnd(widths[i]!))).join('  ').trimEnd();
  const out: string[] = [''];
  out.push(
    `stowage ceph snapshot bench: one-node dev Ceph (memstore OSD) on this machine; n=${o.n} per row, concurrency ${o.c}, driver --ceph-timeout ${o.cephTimeout} s, ` +
      `CSI calls with a ${o.rpcTimeout} s deadline retried as the sidecars do (ABORTED/DEADLINE_EXCEEDED/UNAVAILABLE, backoff ${BACKOFF_FIRST_MS} ms doubling), 64 MiB empty sources, each op its own source`,
  );
  out.push(line(header));
  for (const t of table) out.push(line(t));
  out.push('');
  out.push('driver/raw = time per op of the driver call ÷ the same Ceph work done raw (raw ops/s ÷ driver ops/s); 1.0x = no overhead');
  for (const r of rows.filter((x) => x.side === 'driver')) {
    const raw = rows.find((x) => x.backend === r.backend && x.op === r.op && x.side === 'raw');
    if (raw) out.push(`  ${`${r.backend} ${r.op}`.padEnd(34)} ${(raw.stats.opsPerSec / r.stats.opsPerSec).toFixed(2)}x   (p50 ${(r.stats.p50Ms / raw.stats.p50Ms).toFixed(2)}x)`);
  }
  out.push(`total bench time ${run.seconds.toFixed(1)} s (dev cluster up ${run.clusterUpSeconds.toFixed(1)} s)`);
  console.log(out.join('\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
