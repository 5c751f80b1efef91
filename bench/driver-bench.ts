/**
 * The project benchmark (`npm run bench`): the real driver over its CSI socket at a fixed
 * concurrency, phase by phase, each beside the raw cost of the same kernel work measured in the
 * same run at the same concurrency, plus startup time and idle memory. Not a test: it prints a
 * table and says which targets were met.
 *
 *   node dist/bench/driver-bench.js [--n 400] [--n-image 100] [--concurrency 8] [--log-level info]
 *                                   [--warmup 400] [--starts 5] [--node-flags="--max-semi-space-size=1 ..."]
 *
 * Driver phases of a group (directory volumes, ext4 volumes) run first, then the matching raw
 * phases, so each side meets a mount table holding only its own mounts. The driver's CPU per op
 * is read from /proc/PID/stat. Runs in about 30–60 s on the 2-core dev machine.
 *
 * Cold and steady state. The driver runs on V8, whose JIT compiles the hot paths only after they
 * have run a few hundred times, so the first calls after a start cost about twice the CPU of later
 * ones. Both figures are reported:
 *   - "dir create" and the other phases of the directory group are COLD: "dir create" is the
 *     first n CreateVolume calls after the driver started (only one create/delete cycle, for the
 *     idle-RSS probe, comes before them);
 *   - "dir create (steady)" and "dir delete (steady)" are measured after a printed warm-up of
 *     --warmup CreateVolume+DeleteVolume pairs that are not counted: a long-running daemon's
 *     usual state.
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
import { createSubvolume, deleteSubvolume } from '../src/driver/mount/btrfs.js';
import { ExecRunner } from '../src/driver/mount/exec.js';
import { makeFilesystem } from '../src/driver/mount/filesystem.js';
import { LoopDevices } from '../src/driver/mount/loop.js';
import { Mounter } from '../src/driver/mount/mount.js';
import { cpuMsOf, rssMiB, teardown, type DriverSpec, type Resident, type RunningDriver } from './driver-process.js';
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
      warmup: { type: 'string', default: '400' },
    },
  });
  const n = Number(values.n);
  const nImage = Number(values['n-image']);
  const c = Number(values.concurrency);
  const warmup = Number(values.warmup);
  const began = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
  // The pool promises no more than it holds (pool-capacity.ts): it must hold every volume the
  // phases keep at once, with room for btrfs' own needs. Sparse: it costs nothing until written.
  const poolGiB = Math.ceil(((n * DIR_VOLUME_BYTES + nImage * IMAGE_VOLUME_BYTES) * 1.2) / (1024 * MiB)) + 2;
  const spec: DriverSpec = { dir, poolSize: `${Math.max(20, poolGiB)}Gi`, logLevel: values['log-level'], nodeFlags: values['node-flags'].split(' ').filter(Boolean) };
  let driver: RunningDriver | undefined;
  let client: CsiClient | undefined;
  const rows: Row[] = [];
  let startup: StartupStats;
  let idleRss: Resident;
  let loadedRss = 0;
  // Ctrl-C must not leave the pool mounted: tear down, then exit.
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: cleaning up ${dir}\n`);
    client?.close();
    void (driver?.stop().catch(() => undefined) ?? Promise.resolve())
      .then(() => teardown(dir))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
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

    /**
     * One phase: the driver's call and the raw kernel work it stands for. All driver phases of a
     * group run first, then all raw phases of the group, so that each side meets a mount table and
     * a pool holding only its own objects (the node calls read the mount table, whose size matters).
     */
    interface Phase {
      name: string;
      count: number;
      driver: (i: number) => Promise<unknown>;
      rawWhat: string;
      raw: (i: number) => Promise<unknown>;
    }
    const runGroup = async (phases: Phase[], between: { driver?: () => Promise<unknown>; raw?: () => Promise<unknown> } = {}) => {
      const group: Row[] = [];
      for (const p of phases) {
        const cpu0 = await cpuMsOf(d.pid);
        const stats = await measure(p.count, c, (i) => p.driver(i));
        const cpu = (await cpuMsOf(d.pid)) - cpu0;
        group.push({ phase: p.name, driver: { ...stats, driverCpuMsPerOp: cpu / p.count } });
        process.stderr.write(`  ${p.name}: ${stats.opsPerSec.toFixed(0)} ops/s\n`);
      }
      await between.driver?.();
      for (const [k, p] of phases.entries()) group[k]!.raw = { what: p.rawWhat, stats: await measure(p.count, c, (i) => p.raw(i)) };
      await between.raw?.();
      rows.push(...group);
    };

    // ---- directory (subvolume) volumes
    const dirIds: string[] = [];
    const stg = (i: number) => join(dir, 'staging', `dir-${i}`);
    const tgt = (i: number) => join(dir, 'target', `dir-${i}`);
    const rstg = (i: number) => join(dir, 'raw-staging', `dir-${i}`);
    const rtgt = (i: number) => join(dir, 'raw-target', `dir-${i}`);
    const rsub = (i: number) => join(rawDir, `v${i}`);
    await runGroup([
      {
        name: 'dir create',
        count: n,
        driver: async (i) => {
          const { volume } = await cl.controller.CreateVolume({ name: `bench-dir-${i}`, capacity_range: { required_bytes: DIR_VOLUME_BYTES }, volume_capabilities: [dirCap] });
          dirIds[i] = volume!.volume_id;
        },
        // The driver's own way: one SUBVOL_CREATE_V2 carrying the qgroup limit.
        rawWhat: 'subvolume create with qgroup limit (ioctl)',
        raw: (i) => createSubvolume(rawDir, `v${i}`, { maxBytes: DIR_VOLUME_BYTES }),
      },
      {
        name: 'dir stage',
        count: n,
        driver: (i) => cl.node.NodeStageVolume({ volume_id: dirIds[i]!, staging_target_path: stg(i), volume_capability: dirCap }),
        rawWhat: 'mkdir + bind mount (mount(2))',
        raw: async (i) => {
          await mkdir(rstg(i), { recursive: true });
          await mounter.bindMount(rsub(i), rstg(i));
        },
      },
      {
        name: 'dir publish',
        count: n,
        driver: (i) => cl.node.NodePublishVolume({ volume_id: dirIds[i]!, staging_target_path: stg(i), target_path: tgt(i), volume_capability: dirCap }),
        rawWhat: 'mkdir + bind mount (mount(2))',
        raw: async (i) => {
          await mkdir(rtgt(i), { recursive: true });
          await mounter.bindMount(rstg(i), rtgt(i));
        },
      },
      {
        name: 'dir unpublish',
        count: n,
        driver: (i) => cl.node.NodeUnpublishVolume({ volume_id: dirIds[i]!, target_path: tgt(i) }),
        rawWhat: 'umount2 + rmdir',
        raw: async (i) => {
          await mounter.unmount(rtgt(i));
          await rmdir(rtgt(i));
        },
      },
      {
        name: 'dir unstage',
        count: n,
        driver: (i) => cl.node.NodeUnstageVolume({ volume_id: dirIds[i]!, staging_target_path: stg(i) }),
        rawWhat: 'umount2',
        raw: (i) => mounter.unmount(rstg(i)),
      },
      {
        name: 'dir delete',
        count: n,
        driver: (i) => cl.controller.DeleteVolume({ volume_id: dirIds[i]! }),
        rawWhat: 'subvolume delete (ioctl)',
        raw: (i) => deleteSubvolume(rawDir, `v${i}`),
      },
    ]);

    // ---- steady state: a printed warm-up that is not counted, then creates and deletes again
    process.stderr.write(`  warm-up: ${warmup} create/delete pairs (not counted)\n`);
    await measure(warmup, c, async (i) => {
      const { volume } = await cl.controller.CreateVolume({ name: `bench-warm-${i}`, capacity_range: { required_bytes: DIR_VOLUME_BYTES }, volume_capabilities: [dirCap] });
      await cl.controller.DeleteVolume({ volume_id: volume!.volume_id });
    });
    const steadyIds: string[] = [];
    const steadyRow = async (phase: string, op: (i: number) => Promise<unknown>) => {
      const cpu0 = await cpuMsOf(d.pid);
      const stats = await measure(n, c, op);
      rows.push({ phase, driver: { ...stats, driverCpuMsPerOp: ((await cpuMsOf(d.pid)) - cpu0) / n } });
      process.stderr.write(`  ${phase}: ${stats.opsPerSec.toFixed(0)} ops/s\n`);
    };
    await steadyRow('dir create (steady)', async (i) => {
      const { volume } = await cl.controller.CreateVolume({ name: `bench-steady-${i}`, capacity_range: { required_bytes: DIR_VOLUME_BYTES }, volume_capabilities: [dirCap] });
      steadyIds[i] = volume!.volume_id;
    });
    await steadyRow('dir delete (steady)', (i) => cl.controller.DeleteVolume({ volume_id: steadyIds[i]! }));

    // ---- ext4 image volumes
    const imgIds: string[] = [];
    const istg = (i: number) => join(dir, 'staging', `img-${i}`);
    const ristg = (i: number) => join(dir, 'raw-staging', `img-${i}`);
    const rimg = (i: number) => join(rawDir, `img-${i}.img`);
    const rdev: string[] = [];
    const rawAttachMount = async (i: number, check: (device: string) => Promise<unknown>) => {
      const device = await loops.attach(rimg(i));
      rdev[i] = device;
      await check(device);
      await mkdir(ristg(i), { recursive: true });
      await mounter.mount(device, ristg(i), 'ext4', []);
    };
    const rawUnmountDetach = async (i: number) => {
      await mounter.unmount(ristg(i));
      await loops.detach(rdev[i]!);
    };
    await runGroup([
      {
        name: 'ext4 create',
        count: nImage,
        driver: async (i) => {
          const { volume } = await cl.controller.CreateVolume({ name: `bench-img-${i}`, capacity_range: { required_bytes: IMAGE_VOLUME_BYTES }, volume_capabilities: [ext4Cap] });
          imgIds[i] = volume!.volume_id;
        },
        rawWhat: 'create sparse file (open + ftruncate)',
        raw: async (i) => {
          const fh = await open(rimg(i), 'wx', 0o600);
          await fh.truncate(IMAGE_VOLUME_BYTES);
          await fh.close();
        },
      },
      {
        name: 'ext4 stage (format)',
        count: nImage,
        driver: (i) => cl.node.NodeStageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i), volume_capability: ext4Cap }),
        rawWhat: 'loop attach (ioctl) + mkfs.ext4 + mount(2)',
        raw: (i) => rawAttachMount(i, (device) => makeFilesystem(device, 'ext4', runner)),
      },
      {
        name: 'ext4 unstage',
        count: nImage,
        driver: (i) => cl.node.NodeUnstageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i) }),
        rawWhat: 'umount2 + loop detach (ioctl)',
        raw: rawUnmountDetach,
      },
      {
        name: 'ext4 restage (fsck)',
        count: nImage,
        driver: (i) => cl.node.NodeStageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i), volume_capability: ext4Cap }),
        rawWhat: 'loop attach (ioctl) + e2fsck -p + mount(2)',
        raw: (i) => rawAttachMount(i, (device) => runner.run('e2fsck', ['-p', device], { okExitCodes: [0, 1, 2] })),
      },
    ], {
      // Not measured: back to unstaged before the deletes.
      driver: () => measure(nImage, c, (i) => cl.node.NodeUnstageVolume({ volume_id: imgIds[i]!, staging_target_path: istg(i) })),
      raw: () => measure(nImage, c, rawUnmountDetach),
    });
    await runGroup([
      {
        name: 'ext4 delete',
        count: nImage,
        driver: (i) => cl.controller.DeleteVolume({ volume_id: imgIds[i]! }),
        rawWhat: 'unlink',
        raw: (i) => unlink(rimg(i)),
      },
    ]);
    await rmdir(rawDir);

    loadedRss = await rssMiB(d.pid);
  } finally {
    client?.close();
    await driver?.stop().catch(() => undefined);
    await teardown(dir);
  }

  printReport(rows, startup, idleRss, loadedRss, { n, nImage, c, warmup, logLevel: values['log-level'], nodeFlags: spec.nodeFlags ?? [], seconds: (performance.now() - began) / 1000 });
}

function printReport(
  rows: Row[],
  startup: StartupStats,
  idleRss: Resident,
  loadedRssMiB: number,
  run: { n: number; nImage: number; c: number; warmup: number; logLevel: string; nodeFlags: string[]; seconds: number },
): void {
  const f0 = (x: number) => x.toFixed(0);
  const f2 = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const header = ['phase', 'n', 'ops/s', 'p50 ms', 'p99 ms', 'drv cpu ms/op', 'bench cpu ms/op', 'raw ops/s', 'raw p50', 'raw p99', 'driver/raw', 'raw = same kernel work'];
  const table = rows.map((r) => {
    const ratio = r.raw ? r.raw.stats.opsPerSec / r.driver.opsPerSec : NaN;
    return [
      r.phase,
      String(r.driver.ops),
      f0(r.driver.opsPerSec),
      f2(r.driver.p50Ms),
      f2(r.driver.p99Ms),
      f2(r.driver.driverCpuMsPerOp),
      f2(r.driver.cpuMsPerOp),
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
  out.push('drv cpu = the driver process (all threads); bench cpu = this process, the CSI client (it shares the 2 cores with the driver)');
  out.push(`COLD: "dir create" = the first ${run.n} creates after the driver started. STEADY: "(steady)" rows come after a warm-up of ${run.warmup} create/delete pairs, not counted.`);
  out.push(line(header));
  for (const t of table) out.push(line(t));

  const stats = (phase: string) => rows.find((r) => r.phase === phase)?.driver;
  const f1 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1));
  out.push('');
  out.push('reference: csi-driver-host-path, concurrency 8, measured EARLIER on this machine (not in this run)');
  const targets: [string, keyof typeof HOSTPATH, string][] = [
    ['creates/s, cold', 'create', 'dir create'],
    ['creates/s, steady', 'create', 'dir create (steady)'],
    ['publishes/s', 'publish', 'dir publish'],
    ['unpublishes/s', 'unpublish', 'dir unpublish'],
    ['deletes/s', 'delete', 'dir delete'],
    ['deletes/s, steady', 'delete', 'dir delete (steady)'],
  ];
  for (const [label, k, phase] of targets) {
    const st = stats(phase);
    const ours = st?.opsPerSec ?? NaN;
    const ok = ours >= HOSTPATH[k];
    out.push(
      `  ${label.padEnd(18)} hostpath ${String(HOSTPATH[k]).padStart(5)}   stowage ${f0(ours).padStart(5)}   ${(ours / HOSTPATH[k]).toFixed(2)}x   ` +
        `p50 ${f1(st?.p50Ms)} ms  p99 ${f1(st?.p99Ms)} ms   target ≥${HOSTPATH[k]}: ${ok ? 'MET' : 'MISSED'}`,
    );
  }
  const mb = (mib: number) => (mib * MiB) / 1e6;
  const rssMB = mb(idleRss.rss);
  out.push('');
  out.push(`socket ready (spawn → GetPluginInfo answered, existing pool): median ${f0(startup.medianSocketReadyMs)} ms of [${startup.socketReadyMs.map(f0).join(', ')}]   target ≤${TARGET_SOCKET_READY_MS} ms: ${startup.medianSocketReadyMs <= TARGET_SOCKET_READY_MS ? 'MET' : 'MISSED'}`);
  out.push(`probe ready  (spawn → Probe ready):                          median ${f0(startup.medianProbeReadyMs)} ms of [${startup.probeReadyMs.map(f0).join(', ')}]`);
  out.push(
    `idle RSS (startup + 1 create/delete + 2 s idle): ${rssMB.toFixed(1)} MB (${idleRss.rss.toFixed(1)} MiB; anonymous ${mb(idleRss.anon).toFixed(1)} MB, ` +
      `file-backed ${mb(idleRss.file).toFixed(1)} MB)   target ≤${TARGET_RSS_MB} MB: ${rssMB <= TARGET_RSS_MB ? 'MET' : 'MISSED'}`,
  );
  out.push(`RSS after the whole run (not a target): ${((loadedRssMiB * MiB) / 1e6).toFixed(1)} MB`);
  out.push(`total bench time ${run.seconds.toFixed(1)} s`);
  console.log(out.join('\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
