/**
 * The cephfs backend's benchmark: a one-node dev Ceph cluster (src/ceph/dev-cluster.ts) in a temp
 * dir, the real driver (`node bin/stowage.js driver --backend cephfs ...`) over its CSI socket and,
 * beside each driver phase, the raw cost of the same Ceph work measured in the same run at the
 * same concurrency. Not a test: it prints a table.
 *
 *   node dist/bench/cephfs-bench.js [--n 64] [--concurrency 8] [--n-stage 16] [--stage-concurrency 4]
 *                                   [--write-mib 256] [--log-level warn]
 *
 * 1. CreateVolume (64 MiB) vs the mgr's `fs subvolume create` sent through the driver's own
 *    rados_mgr_command binding (what the driver does, minus the journal and gRPC).
 * 2. NodeStage (ceph-fuse -r <subvolume path> at the staging path) vs the same ceph-fuse mount
 *    done directly through the command runner.
 * 3. Sequential write, 1 MiB blocks + one fsync, through a published volume vs into a direct
 *    ceph-fuse mount of a subvolume of the same filesystem.
 *
 * Everything lives under one temp dir; volumes and subvolumes are deleted, mounts unmounted,
 * ceph-fuse ended and the cluster taken down at the end, also after a failure or SIGINT.
 */
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import type { DevCluster, DevClusterInfo } from '../src/ceph/dev-cluster.js';
import { monHost } from '../src/driver/backends/ceph/cluster-config.js';
import { Rados } from '../src/driver/backends/ceph/rados.js';
import { ExecRunner } from '../src/driver/mount/exec.js';
import { parseMountInfo } from '../src/driver/mount/mount.js';
import { umount2 } from '../src/driver/mount/syscalls.js';
import type { OpStats } from './raw-ops.js';
import { CephBenchSession, MiB, parseCephBenchOptions } from './ceph-bench-session.js';

const VOLUME_BYTES = 64 * MiB;
const MNT_DETACH = 2;
const GROUP = 'csi';
const cap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' as const } };

interface Row {
  phase: string;
  n: number;
  c: number;
  driver: OpStats;
  raw: OpStats;
  rawWhat: string;
}

interface WriteRow {
  what: string;
  mbPerSec: number;
  seconds: number;
}

const runner = new ExecRunner(pino({ level: 'silent' }));

/** Writes `bytes` sequentially in 1 MiB blocks, then one fsync; MB/s (10^6) over open → fsync. */
async function ddWrite(path: string, bytes: number): Promise<{ mbPerSec: number; seconds: number }> {
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i); // not zeros
  const t0 = performance.now();
  const fh = await open(path, 'w', 0o600);
  try {
    for (let off = 0; off < bytes; off += MiB) await fh.write(block, 0, MiB, off);
    await fh.sync();
  } finally {
    await fh.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, mbPerSec: bytes / 1e6 / seconds };
}

/** PIDs of ceph-fuse processes serving mp. */
async function cephFusePids(mp: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then((t) => t.split('\0'), () => [] as string[]);
    if ((argv[0] ?? '').endsWith('ceph-fuse') && argv[1] === mp) pids.push(Number(entry));
  }
  return pids;
}

/** Unmounts a ceph-fuse mount and waits for its process to exit. */
async function releaseFuse(mp: string): Promise<void> {
  const pids = await cephFusePids(mp);
  for (let attempt = 0; ; attempt++) {
    try {
      await umount2(mp, 0);
      break;
    } catch (e) {
      if (attempt >= 50) throw e;
      await sleep(100);
    }
  }
  const deadline = Date.now() + 10_000;
  for (const pid of pids) {
    while (Date.now() < deadline) {
      const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      if (st === '' || / Z /.test(st.slice(st.lastIndexOf(')') + 1, st.lastIndexOf(')') + 4))) break;
      await sleep(20);
    }
  }
}

/** Unmounts everything of ours under root (lazily if need be); then the cluster goes down. */
async function teardown(root: string, cluster: DevCluster | undefined): Promise<string[]> {
  const problems: string[] = [];
  const under = (p: string) => p === root || p.startsWith(`${root}/`);
  for (let round = 0; round < 3; round++) {
    const ms = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'))
      .filter((m) => under(m.mountPoint))
      .sort((a, b) => b.mountId - a.mountId);
    if (ms.length === 0) break;
    for (const m of ms) await umount2(m.mountPoint, 0).catch(() => umount2(m.mountPoint, MNT_DETACH).catch((e: unknown) => problems.push(`umount ${m.mountPoint}: ${String(e)}`)));
    await sleep(300 * (round + 1));
  }
  if (cluster) await cluster.down().catch((e: unknown) => problems.push(`ceph-dev down: ${(e as Error).message}`));
  if (problems.length === 0) await rm(root, { recursive: true, force: true });
  return problems;
}

async function main(): Promise<void> {
  const { n, concurrency: c, nStage, stageConcurrency: cStage, writeBytes, logLevel } = parseCephBenchOptions(64);
  const began = performance.now();
  const session = await CephBenchSession.open('cephfs-bench', 'mounts', teardown);
  const { drvDir, rawDir, cluster } = session;
  const measure = (count: number, conc: number, op: (i: number) => Promise<unknown>) => session.measure(count, conc, op);

  const rows: Row[] = [];
  const writes: WriteRow[] = [];
  let clusterUpSeconds = 0;
  let failure: unknown;
  try {
    process.stderr.write('bringing up the dev cluster…\n');
    const t0 = performance.now();
    const info: DevClusterInfo = await cluster.up();
    clusterUpSeconds = (performance.now() - t0) / 1000;

    await mkdir(drvDir, { recursive: true, mode: 0o700 });
    await mkdir(rawDir, { recursive: true, mode: 0o700 });
    const cl = await session.startDriver('cephfs', info, ['--cephfs-state-dir', join(drvDir, 'state')], logLevel);
    const secrets = { adminID: info.userID, adminKey: info.userKey, userID: info.userID, userKey: info.userKey };
    const parameters = { clusterID: info.clusterID, fsName: info.fsName };
    const createVolume = async (name: string, bytes: number) =>
      (await cl.controller.CreateVolume({ name, capacity_range: { required_bytes: bytes }, volume_capabilities: [cap], parameters, secrets })).volume!;
    const deleteVolume = (id: string) => cl.controller.DeleteVolume({ volume_id: id, secrets });

    // The raw side: the same librados binding, the same mgr commands; ceph-fuse with its own keyfile.
    const rados = (session.rados = await Rados.connect({ monitors: info.monitors, user: info.userID, key: info.userKey, timeoutSeconds: 10 }));
    const r = rados;
    const mgr = (prefix: string, args: Record<string, unknown>) => r.mgrCommand({ prefix, vol_name: info.fsName, group_name: GROUP, format: 'json', ...args });
    const rawCreate = (name: string, bytes: number) => mgr('fs subvolume create', { sub_name: name, size: bytes, mode: '0777' });
    const rawRemove = (name: string) => mgr('fs subvolume rm', { sub_name: name, force: true });
    const rawPath = async (name: string) => (await mgr('fs subvolume getpath', { sub_name: name })).out.trim();
    const keyfile = join(rawDir, 'admin.secret');
    const rawConf = join(rawDir, 'client.conf');
    await writeFile(keyfile, info.userKey, { mode: 0o600 });
    await writeFile(
      rawConf,
      ['[global]', `mon_host = ${monHost(info.monitors)}`, 'log_file = /dev/null', 'admin_socket =', '[client]', `client_fs = ${info.fsName}`, 'client_quota = true', ''].join('\n'),
      { mode: 0o600 },
    );
    const rawMount = async (path: string, mp: string) => {
      await mkdir(mp, { recursive: true });
      await runner.run('ceph-fuse', [mp, '-c', rawConf, '--id', info.userID, '--keyfile', keyfile, '-r', path], { timeoutMs: 60_000 });
    };

    // One untimed warm-up each (the group gets created, connections cached, code paths loaded).
    await deleteVolume((await createVolume('bench-warmup', VOLUME_BYTES)).volume_id);
    await rawCreate('bench-raw-warmup', VOLUME_BYTES);
    await rawRemove('bench-raw-warmup');

    // ---- phase 1: CreateVolume vs fs subvolume create
    process.stderr.write(`phase 1: CreateVolume ×${n} at concurrency ${c}\n`);
    const ids: string[] = [];
    const createStats = await measure(n, c, async (i) => {
      ids[i] = (await createVolume(`bench-create-${i}`, VOLUME_BYTES)).volume_id;
    });
    const rawCreateStats = await measure(n, c, (i) => rawCreate(`bench-raw-${i}`, VOLUME_BYTES));
    rows.push({ phase: 'CreateVolume', n, c, driver: createStats, raw: rawCreateStats, rawWhat: 'mgr `fs subvolume create` (same rados_mgr_command binding)' });
    await measure(n, c, (i) => deleteVolume(ids[i]!));
    await measure(n, c, (i) => rawRemove(`bench-raw-${i}`));

    // ---- phase 2: NodeStage vs ceph-fuse mount
    process.stderr.write(`phase 2: NodeStage ×${nStage} at concurrency ${cStage}\n`);
    const stageIds: string[] = [];
    await measure(nStage, c, async (i) => {
      stageIds[i] = (await createVolume(`bench-stage-${i}`, VOLUME_BYTES)).volume_id;
    });
    const rawPaths: string[] = [];
    await measure(nStage, c, async (i) => {
      await rawCreate(`bench-rawstage-${i}`, VOLUME_BYTES);
      rawPaths[i] = await rawPath(`bench-rawstage-${i}`);
    });
    const stg = (i: number) => join(drvDir, 'staging', `s${i}`);
    const rawStg = (i: number) => join(rawDir, 'staging', `s${i}`);
    for (let i = 0; i < nStage; i++) await mkdir(stg(i), { recursive: true });
    const stageStats = await measure(nStage, cStage, (i) =>
      cl.node.NodeStageVolume({ volume_id: stageIds[i]!, staging_target_path: stg(i), volume_capability: cap, secrets }),
    );
    const rawStageStats = await measure(nStage, cStage, (i) => rawMount(rawPaths[i]!, rawStg(i)));
    rows.push({ phase: 'NodeStage', n: nStage, c: cStage, driver: stageStats, raw: rawStageStats, rawWhat: 'ceph-fuse -r <subvolume path> (same keyfile kind of mount)' });
    const unstageStats = await measure(nStage, cStage, (i) => cl.node.NodeUnstageVolume({ volume_id: stageIds[i]!, staging_target_path: stg(i) }));
    const rawUnstageStats = await measure(nStage, cStage, (i) => releaseFuse(rawStg(i)));
    rows.push({ phase: 'NodeUnstage', n: nStage, c: cStage, driver: unstageStats, raw: rawUnstageStats, rawWhat: 'umount + wait for ceph-fuse to exit' });
    await measure(nStage, c, (i) => deleteVolume(stageIds[i]!));
    await measure(nStage, c, (i) => rawRemove(`bench-rawstage-${i}`));

    // ---- phase 3: sequential write throughput
    const volBytes = writeBytes + 64 * MiB;
    process.stderr.write(`phase 3: ${writeBytes / MiB} MiB sequential writes, 1 MiB blocks + fsync\n`);
    {
      const vol = await createVolume('bench-write', volBytes);
      const s = join(drvDir, 'staging', 'w');
      const t = join(drvDir, 'target', 'w');
      await mkdir(s, { recursive: true });
      await cl.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: s, volume_capability: cap, secrets });
      await cl.node.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: s, target_path: t, volume_capability: cap });
      writes.push({ what: 'published volume (driver: ceph-fuse at staging + bind mount), file', ...(await ddWrite(join(t, 'dd.bin'), writeBytes)) });
      await cl.node.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: t });
      await cl.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: s });
      await deleteVolume(vol.volume_id);
    }
    {
      await rawCreate('bench-rawwrite', volBytes);
      const mp = join(rawDir, 'w');
      await rawMount(await rawPath('bench-rawwrite'), mp);
      writes.push({ what: 'direct ceph-fuse mount of a subvolume (same filesystem), file', ...(await ddWrite(join(mp, 'dd.bin'), writeBytes)) });
      await releaseFuse(mp);
      await rawRemove('bench-rawwrite');
    }
  } catch (e) {
    failure = e;
  } finally {
    await session.finish(failure);
  }
  if (failure) throw failure;
  printReport(rows, writes, { seconds: (performance.now() - began) / 1000, clusterUpSeconds, writeMiB: writeBytes / MiB });
}

function printReport(rows: Row[], writes: WriteRow[], run: { seconds: number; clusterUpSeconds: number; writeMiB: number }): void {
  const f0 = (x: number) => x.toFixed(0);
  const f2 = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const header = ['phase', 'n', 'conc', 'ops/s', 'p50 ms', 'p99 ms', 'raw ops/s', 'raw p50', 'raw p99', 'driver/raw', 'raw = same Ceph work'];
  const table = rows.map((r) => [
    r.phase,
    String(r.n),
    String(r.c),
    f0(r.driver.opsPerSec),
    f2(r.driver.p50Ms),
    f2(r.driver.p99Ms),
    f0(r.raw.opsPerSec),
    f2(r.raw.p50Ms),
    f2(r.raw.p99Ms),
    `${(r.raw.opsPerSec / r.driver.opsPerSec).toFixed(2)}x`,
    r.rawWhat,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cols: string[]) => cols.map((col, i) => (i === 0 || i === cols.length - 1 ? col.padEnd(widths[i]!) : col.padStart(widths[i]!))).join('  ');
  const out: string[] = [''];
  out.push('stowage cephfs bench: one-node dev Ceph (memstore OSD, one MDS) on this machine; driver --backend cephfs over its CSI socket');
  out.push('driver/raw = time per op of the driver call ÷ the raw Ceph work (same run, same concurrency); 1.0x = no overhead');
  out.push(line(header));
  for (const t of table) out.push(line(t));
  out.push('');
  out.push(`sequential write, ${run.writeMiB} MiB in 1 MiB blocks + fsync (MB = 10^6 bytes)`);
  const ww = Math.max(...writes.map((w) => w.what.length));
  for (const w of writes) out.push(`  ${w.what.padEnd(ww)}  ${w.mbPerSec.toFixed(1).padStart(7)} MB/s  (${w.seconds.toFixed(2)} s)`);
  if (writes[0] && writes[1]) out.push(`published-volume write ÷ direct ceph-fuse: ${(writes[0].mbPerSec / writes[1].mbPerSec).toFixed(2)}x`);
  out.push(`total bench time ${run.seconds.toFixed(1)} s (dev cluster up ${run.clusterUpSeconds.toFixed(1)} s)`);
  console.log(out.join('\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
