/**
 * The rbd backend's benchmark: a one-node dev Ceph cluster (src/ceph/dev-cluster.ts) in a temp dir,
 * the real driver (`node bin/stowage.js driver --backend rbd ...`) over its CSI socket, and, beside
 * each driver phase, the raw cost of the same Ceph work measured in the same run at the same
 * concurrency. Not a test: it prints a table and says which targets were met.
 *
 *   node dist/bench/rbd-bench.js [--n 100] [--concurrency 8] [--n-stage 16] [--stage-concurrency 4]
 *                                [--write-mib 256] [--log-level warn]
 *
 * 1. CreateVolume (64 MiB, default features) vs rbd_create4 through the driver's own koffi binding.
 * 2. NodeStage ext4 (rbd-fuse + loop + mkfs.ext4 + mount) vs the same steps done directly (rbd-fuse
 *    through the command runner, loop/mkfs/mount through the driver's mount layer).
 * 3. Sequential write, 1 MiB blocks + one fsync, through a published ext4 volume vs the same into
 *    the raw rbd-fuse image file vs `rbd bench --io-type write --io-size 1M` on the same pool.
 *
 * Everything lives under one temp dir; volumes are deleted, mounts unmounted, loop devices
 * detached, rbd-fuse ended and the cluster taken down at the end, also after a failure or SIGINT.
 */
import { mkdir, open, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import type { DevCluster, DevClusterInfo } from '../src/ceph/dev-cluster.js';
import { monHost } from '../src/driver/backends/ceph/cluster-config.js';
import { createImage, FEATURES, removeImage } from '../src/driver/backends/rbd/librbd.js';
import { Rados, type IoCtx } from '../src/driver/backends/ceph/rados.js';
import { ExecRunner } from '../src/driver/mount/exec.js';
import { makeFilesystem } from '../src/driver/mount/filesystem.js';
import { LoopDevices } from '../src/driver/mount/loop.js';
import { Mounter, parseMountInfo } from '../src/driver/mount/mount.js';
import { umount2 } from '../src/driver/mount/syscalls.js';
import type { OpStats } from './raw-ops.js';
import { CephBenchSession, MiB, parseCephBenchOptions } from './ceph-bench-session.js';

const VOLUME_BYTES = 64 * MiB;
/** Object order the driver uses (4 MiB objects). */
const ORDER = 22;
const TARGET_CREATE_PER_S = 100;
const TARGET_WRITE_RATIO = 0.8;
const MNT_DETACH = 2;

const ext4Cap = { mount: { fs_type: 'ext4', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };

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
  note?: string;
}

const silent = pino({ level: 'silent' });
const runner = new ExecRunner(silent);
const mounter = new Mounter(runner);
const loops = new LoopDevices();

/** Writes `bytes` sequentially in 1 MiB blocks, then one fsync; MB/s (10^6) over open → fsync. */
async function ddWrite(path: string, bytes: number, flags: string): Promise<{ mbPerSec: number; seconds: number }> {
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i); // not zeros
  const t0 = performance.now();
  const fh = await open(path, flags, 0o600);
  try {
    for (let off = 0; off < bytes; off += MiB) await fh.write(block, 0, MiB, off);
    await fh.sync();
  } finally {
    await fh.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, mbPerSec: bytes / 1e6 / seconds };
}

/** Unmounts, detaches and ends everything of ours under root; then the cluster goes down. */
async function teardown(root: string, cluster: DevCluster | undefined): Promise<string[]> {
  const problems: string[] = [];
  const under = (p: string) => p === root || p.startsWith(`${root}/`);
  const mountsUnder = async () => parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).filter((m) => under(m.mountPoint));
  const unmountAll = async (which: (fsType: string) => boolean) => {
    const ms = (await mountsUnder()).filter((m) => which(m.fsType)).sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.mountId - a.mountId);
    for (const m of ms) await umount2(m.mountPoint, 0).catch(() => umount2(m.mountPoint, MNT_DETACH).catch((e: unknown) => problems.push(`umount ${m.mountPoint}: ${String(e)}`)));
  };
  for (let round = 0; round < 3; round++) {
    // Filesystems on loop devices first, then the loop devices, then the rbd-fuse mounts they sat on.
    await unmountAll((t) => !t.startsWith('fuse'));
    for (const l of await loops.list().catch(() => [])) {
      if (under(l.backingFile.replace(/ \(deleted\)$/, ''))) await loops.detach(l.device).catch(() => undefined);
    }
    await unmountAll((t) => t.startsWith('fuse'));
    const left = await mountsUnder();
    const leftLoops = (await loops.list().catch(() => [])).filter((l) => under(l.backingFile.replace(/ \(deleted\)$/, '')));
    if (left.length === 0 && leftLoops.length === 0) break;
    if (round === 2) problems.push(`left: ${[...left.map((m) => m.mountPoint), ...leftLoops.map((l) => l.device)].join(', ')}`);
    await sleep(300 * (round + 1));
  }
  // down() ends the cluster's rbd-fuse clients still running, stops the daemons, removes its dir.
  if (cluster) await cluster.down().catch((e: unknown) => problems.push(`ceph-dev down: ${(e as Error).message}`));
  if (problems.length === 0) await rm(root, { recursive: true, force: true });
  return problems;
}

async function main(): Promise<void> {
  const { n, concurrency: c, nStage, stageConcurrency: cStage, writeBytes, logLevel } = parseCephBenchOptions(100);
  const began = performance.now();
  const session = await CephBenchSession.open('rbd-bench', 'loop devices, mounts', teardown);
  const { root, drvDir, rawDir, cluster } = session;
  const measure = (count: number, conc: number, op: (i: number) => Promise<unknown>) => session.measure(count, conc, op);
  const rows: Row[] = [];
  const writes: WriteRow[] = [];
  let clusterUpSeconds = 0;
  let failure: unknown;
  try {
    // ---- cluster and driver (not timed as part of any phase)
    process.stderr.write('bringing up the dev cluster…\n');
    const t0 = performance.now();
    const info: DevClusterInfo = await cluster.up();
    clusterUpSeconds = (performance.now() - t0) / 1000;
    const adminKeyring = join(cluster.dir, 'ceph.client.admin.keyring');
    // The raw side's rbd/rbd-fuse conf: the cluster's mon, the admin keyring file (the key never in argv).
    const rawConf = join(root, 'raw-client.conf');
    await writeFile(
      rawConf,
      ['[global]', `mon_host = ${monHost(info.monitors)}`, `keyring = ${adminKeyring}`, 'log_file = /dev/null', 'admin_socket =', ''].join('\n'),
      { mode: 0o600 },
    );
    const cli = (args: string[], timeoutMs = 120_000) => runner.run('rbd', ['-c', rawConf, '--id', info.userID, ...args], { timeoutMs });

    await mkdir(drvDir, { recursive: true, mode: 0o700 });
    for (const d of ['staging', 'target', 'rbd-state']) await mkdir(join(drvDir, d), { recursive: true });
    for (const d of ['fuse', 'staging']) await mkdir(join(rawDir, d), { recursive: true });
    const cl = await session.startDriver('rbd', info, ['--rbd-state-dir', join(drvDir, 'rbd-state')], logLevel);
    const secrets = { userID: info.userID, userKey: info.userKey };
    const parameters = { clusterID: info.clusterID, pool: info.pool };
    const createVolume = async (name: string, bytes: number) =>
      (await cl.controller.CreateVolume({ name, capacity_range: { required_bytes: bytes }, volume_capabilities: [ext4Cap], parameters, secrets })).volume!;
    const deleteVolume = (id: string) => cl.controller.DeleteVolume({ volume_id: id, secrets });

    const rados = (session.rados = await Rados.connect({ monitors: info.monitors, user: info.userID, key: info.userKey, timeoutSeconds: 10 }));
    const poolId = await rados.poolId(info.pool);
    if (poolId === undefined) throw new Error(`no pool ${info.pool}`);
    const io: IoCtx = await rados.ioctx(poolId, info.pool);
    const rawCreate = (name: string, bytes: number) => createImage(io, name, bytes, { features: FEATURES['layering']!, order: ORDER });

    // One untimed warm-up each: connections cached, code paths loaded.
    await deleteVolume((await createVolume('bench-warmup', VOLUME_BYTES)).volume_id);
    await rawCreate('bench-raw-warmup', VOLUME_BYTES);
    await removeImage(io, 'bench-raw-warmup');

    // ---- phase 1: CreateVolume vs rbd_create4
    process.stderr.write(`phase 1: CreateVolume ×${n} at concurrency ${c}\n`);
    const ids: string[] = [];
    const createStats = await measure(n, c, async (i) => {
      ids[i] = (await createVolume(`bench-create-${i}`, VOLUME_BYTES)).volume_id;
    });
    const rawCreateStats = await measure(n, c, (i) => rawCreate(`bench-raw-${i}`, VOLUME_BYTES));
    rows.push({ phase: 'CreateVolume', n, c, driver: createStats, raw: rawCreateStats, rawWhat: 'rbd_create4 (same koffi binding, same features/order)' });
    // Not timed: the phase-1 volumes and images go.
    await measure(n, c, (i) => deleteVolume(ids[i]!));
    await measure(n, c, (i) => removeImage(io, `bench-raw-${i}`));

    // ---- phase 2: NodeStage (ext4) vs rbd-fuse + loop + mkfs.ext4 + mount
    process.stderr.write(`phase 2: NodeStage ext4 ×${nStage} at concurrency ${cStage}\n`);
    const stageIds: string[] = [];
    await measure(nStage, c, async (i) => {
      stageIds[i] = (await createVolume(`bench-stage-${i}`, VOLUME_BYTES)).volume_id;
    });
    await measure(nStage, c, (i) => rawCreate(`bench-rawstage-${i}`, VOLUME_BYTES));
    const stg = (i: number) => join(drvDir, 'staging', `s${i}`);
    for (let i = 0; i < nStage; i++) await mkdir(stg(i), { recursive: true });
    const stageStats = await measure(nStage, cStage, (i) =>
      cl.node.NodeStageVolume({ volume_id: stageIds[i]!, staging_target_path: stg(i), volume_capability: ext4Cap, secrets }),
    );
    const rawFuse = (i: number) => join(rawDir, 'fuse', `f${i}`);
    const rawStg = (i: number) => join(rawDir, 'staging', `s${i}`);
    const rawDevs: string[] = [];
    const rawFuseMount = async (mp: string, image: string) => {
      await mkdir(mp, { recursive: true, mode: 0o700 });
      await runner.run('rbd-fuse', ['-c', rawConf, '--id', info.userID, '-p', info.pool, '-r', image, mp, '-o', 'attr_timeout=0'], { timeoutMs: 60_000 });
      const file = join(mp, image);
      await stat(file);
      return file;
    };
    const rawStageStats = await measure(nStage, cStage, async (i) => {
      const file = await rawFuseMount(rawFuse(i), `bench-rawstage-${i}`);
      const device = await loops.attach(file);
      rawDevs[i] = device;
      await makeFilesystem(device, 'ext4', runner);
      await mkdir(rawStg(i), { recursive: true });
      await mounter.mount(device, rawStg(i), 'ext4', []);
    });
    rows.push({ phase: 'NodeStage ext4', n: nStage, c: cStage, driver: stageStats, raw: rawStageStats, rawWhat: 'rbd-fuse -r IMG + stat + loop attach + mkfs.ext4 + mount(2)' });
    // Not timed: back down, and the images go.
    await measure(nStage, cStage, (i) => cl.node.NodeUnstageVolume({ volume_id: stageIds[i]!, staging_target_path: stg(i) }));
    await measure(nStage, cStage, async (i) => {
      await mounter.unmount(rawStg(i));
      await loops.detach(rawDevs[i]!);
      await releaseFuse(rawFuse(i));
    });
    await measure(nStage, c, (i) => deleteVolume(stageIds[i]!));
    await measure(nStage, c, (i) => removeImage(io, `bench-rawstage-${i}`));

    // ---- phase 3: sequential write throughput
    const volBytes = writeBytes + 128 * MiB; // room for ext4's metadata and journal
    process.stderr.write(`phase 3: ${writeBytes / MiB} MiB sequential writes, 1 MiB blocks + fsync\n`);
    {
      const vol = await createVolume('bench-write', volBytes);
      const s = join(drvDir, 'staging', 'w');
      const t = join(drvDir, 'target', 'w');
      await mkdir(s, { recursive: true });
      await cl.node.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: s, volume_capability: ext4Cap, secrets });
      await cl.node.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: s, target_path: t, volume_capability: ext4Cap });
      const r = await ddWrite(join(t, 'dd.bin'), writeBytes, 'w');
      writes.push({ what: 'published ext4 volume (driver: rbd-fuse + loop + ext4), file', ...r });
      await cl.node.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: t });
      await cl.node.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: s });
      await deleteVolume(vol.volume_id);
    }
    {
      await rawCreate('bench-rawwrite', volBytes);
      const mp = join(rawDir, 'fuse', 'w');
      const file = await rawFuseMount(mp, 'bench-rawwrite');
      const r = await ddWrite(file, writeBytes, 'r+');
      writes.push({ what: 'raw rbd-fuse image file (same pool)', ...r });
      await releaseFuse(mp);
      await removeImage(io, 'bench-rawwrite');
    }
    {
      await rawCreate('bench-rbdbench', volBytes);
      const args = ['bench', '--io-type', 'write', '--io-size', '1M', '--io-total', `${writeBytes / MiB}M`, `${info.pool}/bench-rbdbench`];
      const t1 = performance.now();
      const { stdout } = await cli(args);
      const seconds = (performance.now() - t1) / 1000;
      // Pacific's last line: "elapsed: 3   ops: 256   ops/sec: 80.4   bytes/sec: 80 MiB/s"
      const m = /elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops\/sec:\s*([\d.]+)/.exec(stdout);
      const own = m ? (Number(m[3]) * MiB) / 1e6 : NaN;
      writes.push({
        what: 'rbd bench --io-type write --io-size 1M (librbd, 16 threads, seq)',
        mbPerSec: writeBytes / 1e6 / seconds,
        seconds,
        note: Number.isFinite(own) ? `rbd's own figure ${own.toFixed(1)} MB/s (excludes connect)` : `unparsed: ${stdout.trim().split('\n').pop() ?? ''}`,
      });
      await removeImage(io, 'bench-rbdbench');
    }
  } catch (e) {
    failure = e;
  } finally {
    await session.finish(failure);
  }
  if (failure) throw failure;
  printReport(rows, writes, { seconds: (performance.now() - began) / 1000, clusterUpSeconds, writeMiB: writeBytes / MiB });
}

/** Unmounts an rbd-fuse mount and waits for its rbd-fuse to exit (it closes the image on its way out). */
async function releaseFuse(mp: string): Promise<void> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then((t) => t.split('\0'), () => [] as string[]);
    if ((argv[0] ?? '').endsWith('rbd-fuse') && argv.includes(mp)) pids.push(Number(entry));
  }
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
  await rmdir(mp).catch(() => undefined);
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
    `${(r.raw.opsPerSec / r.driver.opsPerSec).toFixed(1)}x`,
    r.rawWhat,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cols: string[]) => cols.map((col, i) => (i === 0 || i === cols.length - 1 ? col.padEnd(widths[i]!) : col.padStart(widths[i]!))).join('  ');
  const out: string[] = [''];
  out.push('stowage rbd bench: one-node dev Ceph (memstore OSD) on this machine; driver --backend rbd over its CSI socket');
  out.push('driver/raw = time per op of the driver call ÷ the raw Ceph work (same run, same concurrency); 1.0x = no overhead');
  out.push(line(header));
  for (const t of table) out.push(line(t));
  out.push('');
  out.push(`sequential write, ${run.writeMiB} MiB in 1 MiB blocks + fsync (MB = 10^6 bytes)`);
  const ww = Math.max(...writes.map((w) => w.what.length));
  for (const w of writes) out.push(`  ${w.what.padEnd(ww)}  ${w.mbPerSec.toFixed(1).padStart(7)} MB/s  (${w.seconds.toFixed(2)} s)${w.note ? `  ${w.note}` : ''}`);
  out.push('');
  const create = rows.find((r) => r.phase === 'CreateVolume');
  if (create) {
    const v = create.driver.opsPerSec;
    out.push(`CreateVolume at concurrency ${create.c}: ${v.toFixed(0)}/s   target ≥${TARGET_CREATE_PER_S}/s: ${v >= TARGET_CREATE_PER_S ? 'MET' : 'MISSED'}`);
  }
  const pub = writes[0];
  const raw = writes[1];
  if (pub && raw) {
    const ratio = pub.mbPerSec / raw.mbPerSec;
    out.push(`published-volume write ÷ raw rbd-fuse file: ${ratio.toFixed(2)}x   target ≥${TARGET_WRITE_RATIO}x: ${ratio >= TARGET_WRITE_RATIO ? 'MET' : 'MISSED'}`);
  }
  const bench = writes[2];
  if (pub && bench) out.push(`published-volume write ÷ rbd bench (not a target): ${(pub.mbPerSec / bench.mbPerSec).toFixed(2)}x`);
  out.push(`total bench time ${run.seconds.toFixed(1)} s (dev cluster up ${run.clusterUpSeconds.toFixed(1)} s)`);
  console.log(out.join('\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
