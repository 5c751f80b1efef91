/**
 * The project benchmark (`npm run bench`): the real driver over its CSI socket at a fixed
 * concurrency, phase by phase, each beside the raw cost of the same kernel work measured in the
 * same run at the same concurrency, plus startup time and idle memory. Not a test: it prints a
 * table and says which targets were met.
 *
 *   node dist/bench/driver-bench.js [--n 400] [--n-image 100] [--concurrency 8] [--log-level info]
 *                                   [--starts 5] [--node-flags "..."]
 *
 * Everything lives in a fresh temp dir (a sparse pool image the driver creates); all mounts, loop
 * devices and the pool are removed at the end, also after a failure.
 */
import { mkdir, mkdtemp, open, rmdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { CsiClient } from '../src/csi/client.js';
import { createSubvolume, deleteSubvolume, setQgroupLimit } from '../src/driver/mount/btrfs.js';
import { ExecRunner } from '../src/driver/mount/exec.js';
import { makeFilesystem } from '../src/driver/mount/filesystem.js';
import { LoopDevices } from '../src/driver/mount/loop.js';
import { Mounter } from '../src/driver/mount/mount.js';
import { cpuMsOf, rssMiB, teardown, type DriverSpec, type RunningDriver } from './driver-process.js';
import { measure, type OpStats } from './raw-ops.js';
import { idleRssAfterCycle, measureStartup, startTimed, type StartupStats } from './startup-bench.js';

const MiB = 1024 * 1024;
const DIR_VOLUME_BYTES = 64 * MiB;
const IMAGE_VOLUME_BYTES = 32 * MiB;

/** csi-driver-host-path at concurrency 8, measured earlier on this machine (not in this run). */
const HOSTPATH = { create: 1339, publish: 133, unpublish: 94, delete: 1354 } as const;
const TARGET_RSS_MB = 60;
const TARGET_SOCKET_READY_MS = 250;

interface Row {
  phase: string;
  driver: OpStats & { driverCpuMsPerOp: number };
  raw?: { what: string; stats: OpStats };
}

const dirCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };
const ext4Cap = { mount: { fs_type: 'ext4', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '400' },
      'n-image': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '8' },
      'log-level': { type: 'string', default: 'info' },
      starts: { type: 'string', default: '5' },
      'node-flags': { type: 'string', default: '' },
    },
  });
  const n = Number(values.n);
  const nImage = Number(values['n-image']);
  const c = Number(values.concurrency);
  const began = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
  const spec: DriverSpec = { dir, logLevel: values['log-level'], nodeFlags: values['node-flags'].split(' ').filter(Boolean) };
  let driver: RunningDriver | undefined;
  let client: CsiClient | undefined;
  const rows: Row[] = [];
  let startup: StartupStats;
  let idleRss: number;
  let loadedRss = 0;
  try {
    // First start creates and formats the pool; it is not timed.
    ({ driver, client } = await startTimed(spec));
    client.close();
    await driver.stop();
    startup = await measureStartup(spec, Number(values.starts));
    ({ driver, client } = await startTimed(spec));
    idleRss = await idleRssAfterCycle(driver, client);

    const d = driver;
    const cl = client;
    const poolRoot = join(d.localDir, 'pool');
    const rawDir = join(poolRoot, 'bench-raw');
    await mkdir(rawDir, { recursive: true });
    for (const sub of ['staging', 'target', 'raw-staging', 'raw-target']) await mkdir(join(dir, sub), { recursive: true });
    const mounter = new Mounter(new ExecRunner(pino({ level: 'silent' })));
    const runner = new ExecRunner(pino({ level: 'silent' }));
    const loops = new LoopDevices();

    /** A driver phase: latency from the client's side, CPU from the driver's /proc. */
    const phase = async (name: string, count: number, op: (i: number) => Promise<unknown>): Promise<Row> => {
      const cpu0 = await cpuMsOf(d.pid);
      const stats = await measure(count, c, (i) => op(i));
      const cpu = (await cpuMsOf(d.pid)) - cpu0;
      const row: Row = { phase: name, driver: { ...stats, driverCpuMsPerOp: cpu / count } };
      rows.push(row);
      process.stderr.write(`  ${name}: ${stats.opsPerSec.toFixed(0)} ops/s\n`);
      return row;
    };
    const raw = async (row: Row, what: string, count: number, op: (i: number) => Promise<unknown>) => {
      row.raw = { what, stats: await measure(count, c, (i) => op(i)) };
    };

    // ---- directory (subvolume) volumes
    const dirIds: string[] = [];
    const stg = (i: number) => join(dir, 'staging', `dir-${i}`);
    const tgt = (i: number) => join(dir, 'target', `dir-${i}`);
    const rstg = (i: number) => join(dir, 'raw-staging', `dir-${i}`);
    const rtgt = (i: number) => join(dir, 'raw-target', `dir-${i}`);
    const rsub = (i: number) => join(rawDir, `v${i}`);

    let row = await phase('dir create', n, async (i) => {
      const { volume } = await cl.controller.CreateVolume({ name: `bench-dir-${i}`, capacity_range: { required_bytes: DIR_VOLUME_BYTES }, volume_capabilities: [dirCap] });
      dirIds[i] = volume!.volume_id;
    });
    await raw(row, 'subvolume create + qgroup limit (ioctl)', n, async (i) => {
      await createSubvolume(rawDir, `v${i}`);
      await setQgroupLimit(rsub(i), DIR_VOLUME_BYTES);
    });

    row = await phase('dir stage', n, (i) => cl.node.NodeStageVolume({ volume_id: dirIds[i]!, staging_target_path: stg(i), volume_capability: dirCap }));
    await raw(row, 'mkdir + bind mount (mount(2))', n, async (i) => {
      await mkdir(rstg(i), { recursive: true });
      await mounter.bindMount(rsub(i), rstg(i));
    });

    row = await phase('dir publish', n, (i) =>
      cl.node.NodePublishVolume({ volume_id: dirIds[i]!, staging_target_path: stg(i), target_path: tgt(i), volume_capability: dirCap }),
    );
    await raw(row, 'mkdir + bind mount (mount(2))', n, async (i) => {
      await mkdir(rtgt(i), { recursive: true });
      await mounter.bindMount(rstg(i), rtgt(i));
    });

    row = await phase('dir unpublish', n, (i) => cl.node.NodeUnpublishVolume({ volume_id: dirIds[i]!, target_path: tgt(i) }));
    await raw(row, 'umount2 + rmdir', n, async (i) => {
      await mounter.unmount(rtgt(i));
      await rmdir(rtgt(i));
    });

    row = await phase('dir unstage', n, (i) => cl.node.NodeUnstageVolume({ volume_id: dirIds[i]!, staging_target_path: stg(i) }));
    await raw(row, 'umount2', n, (i) => mounter.unmount(rstg(i)));

    row = await phase('dir delete', n, (i) => cl.controller.DeleteVolume({ volume_id: dirIds[i]! }));
    await raw(row, 'subvolume delete (ioctl)', n, (i) => deleteSubvolume(rawDir, `v${i}`));

    // ---- ext4 image volumes
    const imgIds: string[] = [];
    const istg = (i: number) => join(dir, 'staging', `img-${i}`);
    const ristg = (i: number) => join(dir, 'raw-staging', `img-${i}`);
    const rimg = (i: number) => join(rawDir, `img-${i}.img`);
    const rdev: string[] = [];

    row = await phase('ext4 create', nImage, async (i) => {
      const { volume } = await cl.controller.CreateVolume({ name: `bench-img-${i}`, capacity_range: { required_bytes: IMAGE_VOLUME_BYTES }, volume_capabilities: [ext4Cap] });
      imgIds[i] = volume!.volume_id;
    });
    await raw(row, 'create sparse file (open + ftruncate)', nImage, async (i) => {
      const fh = await open(rimg(i), 'wx', 0o600);
      await fh.truncate(IMAGE_VOLUME_BYTES);
      await fh.close();
    });

    row = await phase('ext4 stage (format)', nImage, (i) =>
      cl.node.NodeStageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i), volume_capability: ext4Cap }),
    );
    await raw(row, 'loop attach (ioctl) + mkfs.ext4 + mount(2)', nImage, async (i) => {
      const device = await loops.attach(rimg(i));
      rdev[i] = device;
      await makeFilesystem(device, 'ext4', runner);
      await mkdir(ristg(i), { recursive: true });
      await mounter.mount(device, ristg(i), 'ext4', []);
    });

    row = await phase('ext4 unstage', nImage, (i) => cl.node.NodeUnstageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i) }));
    await raw(row, 'umount2 + loop detach (ioctl)', nImage, async (i) => {
      await mounter.unmount(ristg(i));
      await loops.detach(rdev[i]!);
    });

    row = await phase('ext4 restage (fsck)', nImage, (i) =>
      cl.node.NodeStageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i), volume_capability: ext4Cap }),
    );
    await raw(row, 'loop attach (ioctl) + e2fsck -p + mount(2)', nImage, async (i) => {
      const device = await loops.attach(rimg(i));
      rdev[i] = device;
      await runner.run('e2fsck', ['-p', device], { okExitCodes: [0, 1, 2] });
      await mounter.mount(device, ristg(i), 'ext4', []);
    });
    await measure(nImage, c, async (i) => {
      await cl.node.NodeUnstageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i) });
      await mounter.unmount(ristg(i));
      await loops.detach(rdev[i]!);
    });

    row = await phase('ext4 delete', nImage, (i) => cl.controller.DeleteVolume({ volume_id: imgIds[i]! }));
    await raw(row, 'unlink', nImage, (i) => unlink(rimg(i)));
    await rmdir(rawDir);

    loadedRss = await rssMiB(d.pid);
  } finally {
    client?.close();
    await driver?.stop().catch(() => undefined);
    await teardown(dir);
  }

  printReport(rows, startup, idleRss, loadedRss, { n, nImage, c, logLevel: values['log-level'], nodeFlags: spec.nodeFlags ?? [], seconds: (performance.now() - began) / 1000 });
}

function printReport(
  rows: Row[],
  startup: StartupStats,
  idleRssMiB: number,
  loadedRssMiB: number,
  run: { n: number; nImage: number; c: number; logLevel: string; nodeFlags: string[]; seconds: number },
): void {
  const f0 = (x: number) => x.toFixed(0);
  const f2 = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const header = ['phase', 'n', 'ops/s', 'p50 ms', 'p99 ms', 'drv cpu ms/op', 'raw ops/s', 'raw p50', 'raw p99', 'driver/raw', 'raw = same kernel work'];
  const table = rows.map((r) => {
    const ratio = r.raw ? r.raw.stats.opsPerSec / r.driver.opsPerSec : NaN;
    return [
      r.phase,
      String(r.driver.ops),
      f0(r.driver.opsPerSec),
      f2(r.driver.p50Ms),
      f2(r.driver.p99Ms),
      f2(r.driver.driverCpuMsPerOp),
      r.raw ? f0(r.raw.stats.opsPerSec) : '-',
      r.raw ? f2(r.raw.stats.p50Ms) : '-',
      r.raw ? f2(r.raw.stats.p99Ms) : '-',
      r.raw ? `${ratio.toFixed(1)}x` : '-',
      r.raw?.what ?? '',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cols: string[]) => cols.map((col, i) => (i === 0 || i === cols.length - 1 ? col.padEnd(widths[i]!) : col.padStart(widths[i]!))).join('  ');
  const out: string[] = [];
  out.push('');
  out.push(`stowage driver bench: concurrency ${run.c}, n=${run.n} (image phases n=${run.nImage}), driver --log-level ${run.logLevel}${run.nodeFlags.length ? `, node ${run.nodeFlags.join(' ')}` : ''}`);
  out.push('driver/raw = time per op of the driver call ÷ the raw kernel work (same run, same concurrency); 1.0x = no overhead');
  out.push(line(header));
  for (const t of table) out.push(line(t));

  const get = (phase: string) => rows.find((r) => r.phase === phase)?.driver.opsPerSec ?? NaN;
  const ours = { create: get('dir create'), publish: get('dir publish'), unpublish: get('dir unpublish'), delete: get('dir delete') };
  out.push('');
  out.push('reference: csi-driver-host-path, concurrency 8, measured EARLIER on this machine (not in this run)');
  for (const k of ['create', 'publish', 'unpublish', 'delete'] as const) {
    const ok = ours[k] >= HOSTPATH[k];
    out.push(`  ${`${k}s/s`.padEnd(13)} hostpath ${String(HOSTPATH[k]).padStart(5)}   stowage ${f0(ours[k]).padStart(5)}   ${(ours[k] / HOSTPATH[k]).toFixed(2)}x   target ≥${HOSTPATH[k]}: ${ok ? 'MET' : 'MISSED'}`);
  }
  const rssMB = (idleRssMiB * MiB) / 1e6;
  out.push('');
  out.push(`socket ready (spawn → GetPluginInfo answered, existing pool): median ${f0(startup.medianSocketReadyMs)} ms of [${startup.socketReadyMs.map(f0).join(', ')}]   target ≤${TARGET_SOCKET_READY_MS} ms: ${startup.medianSocketReadyMs <= TARGET_SOCKET_READY_MS ? 'MET' : 'MISSED'}`);
  out.push(`probe ready  (spawn → Probe ready):                          median ${f0(startup.medianProbeReadyMs)} ms of [${startup.probeReadyMs.map(f0).join(', ')}]`);
  out.push(`idle RSS (startup + 1 create/delete + 2 s idle): ${rssMB.toFixed(1)} MB (${idleRssMiB.toFixed(1)} MiB)   target ≤${TARGET_RSS_MB} MB: ${rssMB <= TARGET_RSS_MB ? 'MET' : 'MISSED'}`);
  out.push(`RSS after the whole run (not a target): ${((loadedRssMiB * MiB) / 1e6).toFixed(1)} MB`);
  out.push(`total bench time ${run.seconds.toFixed(1)} s`);
  console.log(out.join('\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
