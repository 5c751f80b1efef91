/**
 * Raw kernel-cost baselines for the OS layer: what a volume create/delete,
 * publish (bind mount) / unpublish and loop attach/detach cost with nothing of
 * the driver around them, through our ioctls/syscalls and, for comparison,
 * through spawned tools. Needs root; works in a private temp dir on scratch
 * loop-backed filesystems and removes everything it made.
 *
 *   node dist/bench/raw-ops.js [--n 500] [--concurrency 8] [--no-spawn]
 *
 * The project benchmark imports rawKernelBaselines() (or the pieces) from here.
 */
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createSubvolume, deleteSubvolume, enableQuota, setQgroupLimit, type QuotaMode } from '../src/driver/mount/btrfs.js';
import { ExecRunner } from '../src/driver/mount/exec.js';
import { makeFilesystem } from '../src/driver/mount/filesystem.js';
import { LoopDevices } from '../src/driver/mount/loop.js';
import { Mounter } from '../src/driver/mount/mount.js';

export interface OpStats {
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of this process (all threads) plus reaped children, per op. */
  cpuMsPerOp: number;
}

const runner = new ExecRunner(pino({ level: 'silent' }));
const LIMIT_BYTES = 10 * 1024 * 1024;

/** CPU ms used so far by this process and its waited-for children (/proc/self/stat cutime+cstime). */
async function cpuMs(): Promise<number> {
  const fields = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]?.split(' ') ?? [];
  const childTicks = Number(fields[13]) + Number(fields[14]); // fields 16 and 17 of proc(5)
  const self = process.cpuUsage();
  return (self.user + self.system) / 1000 + childTicks * 10; // USER_HZ is 100 on Linux
}

/** Runs op(i, worker) for i in [0, n) with `concurrency` workers; latency per op. */
export async function measure(
  n: number,
  concurrency: number,
  op: (i: number, worker: number) => Promise<unknown>,
): Promise<OpStats> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = await cpuMs();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < n) {
        const i = next++;
        const start = performance.now();
        await op(i, worker);
        latencies.push(performance.now() - start);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await cpuMs()) - cpu0;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(n - 1, Math.floor(n * p))] ?? NaN;
  return { ops: n, opsPerSec: n / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99), cpuMsPerOp: cpu / n };
}

/** A fresh temp dir, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A fresh quota-enabled btrfs on a sparse loop-backed image, mounted for fn and torn down after. */
export async function withScratchBtrfs<T>(quota: QuotaMode, fn: (pool: string) => Promise<T>, sizeBytes = 2 * 1024 ** 3): Promise<T> {
  return withTempDir(async (dir) => {
    const image = join(dir, 'pool.img');
    await writeFile(image, '');
    await truncate(image, sizeBytes);
    const loops = new LoopDevices();
    const device = await loops.attach(image);
    try {
      await makeFilesystem(device, 'btrfs', runner);
      const pool = join(dir, 'pool');
      await mkdir(pool);
      const mounter = new Mounter(runner);
      await mounter.mount(device, pool, 'btrfs', []);
      try {
        if ((await enableQuota(pool, quota)) !== quota) throw new Error(`could not enable ${quota} quotas`);
        return await fn(pool);
      } finally {
        await mounter.unmount(pool);
      }
    } finally {
      await loops.detach(device);
    }
  });
}

export type SubvolumeVariant = 'ioctl' | 'ioctl-2step' | 'spawn';

/**
 * Creates n subvolumes with a 10 MiB limit, then deletes them. 'ioctl' is one
 * SUBVOL_CREATE_V2 carrying the limit; 'ioctl-2step' adds a QGROUP_LIMIT;
 * 'spawn' runs `btrfs subvolume create` + `btrfs qgroup limit`.
 */
export async function subvolumeBaseline(
  pool: string,
  variant: SubvolumeVariant,
  n: number,
  concurrency: number,
): Promise<{ create: OpStats; delete: OpStats }> {
  const name = (i: number) => `v${i}`;
  const create = await measure(n, concurrency, async (i) => {
    if (variant === 'ioctl') return createSubvolume(pool, name(i), { maxBytes: LIMIT_BYTES });
    if (variant === 'ioctl-2step') {
      await createSubvolume(pool, name(i));
      return setQgroupLimit(join(pool, name(i)), LIMIT_BYTES);
    }
    await runner.run('btrfs', ['-q', 'subvolume', 'create', join(pool, name(i))]);
    return runner.run('btrfs', ['qgroup', 'limit', String(LIMIT_BYTES), join(pool, name(i))]);
  });
  const del = await measure(n, concurrency, (i) =>
    variant === 'spawn' ? runner.run('btrfs', ['-q', 'subvolume', 'delete', join(pool, name(i))]) : deleteSubvolume(pool, name(i)),
  );
  return { create, delete: del };
}

/** n bind mount + unmount pairs of one source onto distinct targets: mount(2)/umount2(2), or mount(8)/umount(8). */
export async function bindBaseline(dir: string, variant: 'syscall' | 'spawn', n: number, concurrency: number): Promise<OpStats> {
  const mounter = new Mounter(runner);
  const source = join(dir, 'bind-source');
  await mkdir(source, { recursive: true });
  const targets = Array.from({ length: concurrency }, (_, w) => join(dir, `bind-${variant}-${w}`));
  await Promise.all(targets.map((t) => mkdir(t)));
  return measure(n, concurrency, async (_, worker) => {
    const target = targets[worker] ?? '';
    if (variant === 'syscall') {
      await mounter.bindMount(source, target);
      await mounter.unmount(target);
    } else {
      await runner.run('mount', ['--bind', source, target]);
      await runner.run('umount', [target]);
    }
  });
}

/** n loop attach + detach pairs: LOOP_CTL_GET_FREE + LOOP_CONFIGURE / LOOP_CLR_FD, or losetup. */
export async function loopBaseline(dir: string, variant: 'ioctl' | 'spawn', n: number, concurrency: number): Promise<OpStats> {
  const loops = new LoopDevices();
  const files = Array.from({ length: concurrency }, (_, w) => join(dir, `loop-${variant}-${w}.img`));
  for (const f of files) {
    await writeFile(f, '');
    await truncate(f, 16 << 20);
  }
  return measure(n, concurrency, async (_, worker) => {
    const file = files[worker] ?? '';
    if (variant === 'ioctl') {
      await loops.detach(await loops.attach(file));
    } else {
      const { stdout } = await runner.run('losetup', ['--find', '--show', file]);
      await runner.run('losetup', ['-d', stdout.trim()]);
    }
  });
}

/**
 * Every baseline, each on fresh scratch storage. Keys name the operation and
 * the path (e.g. 'subvolume create+limit / ioctl / full'). Spawned-tool
 * comparisons are included unless spawn is false.
 */
export async function rawKernelBaselines(opts: { n?: number; concurrency?: number; spawn?: boolean } = {}): Promise<Record<string, OpStats>> {
  const { n = 500, concurrency = 8, spawn = true } = opts;
  const out: Record<string, OpStats> = {};
  const subvolumeVariants: SubvolumeVariant[] = spawn ? ['ioctl', 'ioctl-2step', 'spawn'] : ['ioctl', 'ioctl-2step'];
  for (const quota of ['full', 'simple'] as const) {
    for (const variant of subvolumeVariants) {
      const r = await withScratchBtrfs(quota, (pool) => subvolumeBaseline(pool, variant, n, concurrency));
      out[`subvolume create+limit / ${variant} / ${quota}`] = r.create;
      out[`subvolume delete / ${variant} / ${quota}`] = r.delete;
    }
  }
  await withTempDir(async (dir) => {
    for (const variant of spawn ? (['syscall', 'spawn'] as const) : (['syscall'] as const)) {
      out[`bind mount+unmount / ${variant}`] = await bindBaseline(dir, variant, n, concurrency);
    }
    for (const variant of spawn ? (['ioctl', 'spawn'] as const) : (['ioctl'] as const)) {
      out[`loop attach+detach / ${variant}`] = await loopBaseline(dir, variant, n, concurrency);
    }
  });
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { n: { type: 'string', default: '500' }, concurrency: { type: 'string', default: '8' }, 'no-spawn': { type: 'boolean' } },
  });
  const n = Number(values.n);
  const concurrency = Number(values.concurrency);
  console.log(`raw kernel ops, n=${n}, concurrency=${concurrency}`);
  const results = await rawKernelBaselines({ n, concurrency, spawn: !values['no-spawn'] });
  const width = Math.max(...Object.keys(results).map((k) => k.length));
  console.log(`${'operation'.padEnd(width)}  ${'ops/s'.padStart(8)}  ${'p50 ms'.padStart(7)}  ${'p99 ms'.padStart(7)}  ${'cpu ms/op'.padStart(9)}`);
  for (const [name, s] of Object.entries(results)) {
    const cols = [s.opsPerSec.toFixed(0).padStart(8), s.p50Ms.toFixed(2).padStart(7), s.p99Ms.toFixed(2).padStart(7), s.cpuMsPerOp.toFixed(3).padStart(9)];
    console.log(`${name.padEnd(width)}  ${cols.join('  ')}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
