/**
 * Driver startup and idle memory:
 *   - socket-ready time: spawn → the socket answers GetPluginInfo, on an existing pool (median of k starts);
 *   - probe-ready time: spawn → Probe says ready (the backend is open);
 *   - idle RSS: VmRSS after startup + one create/delete cycle and 2 s idle, with its anonymous
 *     (heap, malloc, stacks) and file-backed (mostly the node binary's code) parts.
 *
 *   node dist/bench/startup-bench.js [--starts 5] [--node-flags="--max-semi-space-size=1 ..."]
 *                                     [--no-compile-cache]   (sets NODE_DISABLE_COMPILE_CACHE=1 for the driver)
 *
 * driver-bench.ts uses these functions; run alone, this makes its own pool and removes it.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CsiClient } from '../src/csi/client.js';
import { residentMiB, spawnDriver, teardown, waitProbeReady, waitSocketReady, type DriverSpec, type Resident, type RunningDriver } from './driver-process.js';

const MiB = 1024 * 1024;

export interface StartupStats {
  socketReadyMs: number[];
  probeReadyMs: number[];
  medianSocketReadyMs: number;
  medianProbeReadyMs: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Starts the driver and waits for its socket and for Probe ready; returns the timings. */
export async function startTimed(spec: DriverSpec): Promise<{ driver: RunningDriver; client: CsiClient; socketMs: number; probeMs: number }> {
  const t0 = performance.now();
  const driver = spawnDriver(spec);
  const socketMs = await waitSocketReady(driver, t0);
  const client = new CsiClient(driver.endpoint, { timeoutMs: 60_000 });
  await waitProbeReady(client);
  return { driver, client, socketMs, probeMs: performance.now() - t0 };
}

/** `starts` cold starts of the driver on the (already created) pool in spec.dir, each stopped with SIGTERM. */
export async function measureStartup(spec: DriverSpec, starts: number): Promise<StartupStats> {
  const socketReadyMs: number[] = [];
  const probeReadyMs: number[] = [];
  for (let i = 0; i < starts; i++) {
    const { driver, client, socketMs, probeMs } = await startTimed(spec);
    client.close();
    await driver.stop();
    socketReadyMs.push(socketMs);
    probeReadyMs.push(probeMs);
  }
  return { socketReadyMs, probeReadyMs, medianSocketReadyMs: median(socketReadyMs), medianProbeReadyMs: median(probeReadyMs) };
}

/** One CreateVolume + DeleteVolume of a directory volume, then `idleMs` of nothing; resident memory in MiB. */
export async function idleRssAfterCycle(driver: RunningDriver, client: CsiClient, idleMs = 2_000): Promise<Resident> {
  const { volume } = await client.controller.CreateVolume({
    name: `rss-probe-${process.pid}`,
    capacity_range: { required_bytes: 64 * MiB },
    volume_capabilities: [{ mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
  });
  await client.controller.DeleteVolume({ volume_id: volume!.volume_id });
  await sleep(idleMs);
  return residentMiB(driver.pid);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      starts: { type: 'string', default: '5' },
      'node-flags': { type: 'string', default: '' },
      'no-compile-cache': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'warn' },
    },
  });
  const dir = await mkdtemp(join(tmpdir(), 'stowage-startup-'));
  const spec: DriverSpec = {
    dir,
    logLevel: values['log-level'],
    nodeFlags: values['node-flags'].split(' ').filter(Boolean),
    ...(values['no-compile-cache'] ? { env: { NODE_DISABLE_COMPILE_CACHE: '1' } } : {}),
  };
  try {
    // The first start creates and formats the pool: not what we time.
    const first = await startTimed(spec);
    first.client.close();
    await first.driver.stop();
    const s = await measureStartup(spec, Number(values.starts));
    const last = await startTimed(spec);
    const rss = await idleRssAfterCycle(last.driver, last.client);
    last.client.close();
    await last.driver.stop();
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
    console.log(`node flags: ${spec.nodeFlags?.join(' ') || '(none)'}; compile cache ${values['no-compile-cache'] ? 'disabled' : 'as configured'}`);
    console.log(`socket ready (spawn → GetPluginInfo): median ${s.medianSocketReadyMs.toFixed(0)} ms  [${fmt(s.socketReadyMs)}]`);
    console.log(`probe ready  (spawn → Probe ready):   median ${s.medianProbeReadyMs.toFixed(0)} ms  [${fmt(s.probeReadyMs)}]`);
    console.log(
      `idle RSS after startup + 1 create/delete + 2 s: ${((rss.rss * MiB) / 1e6).toFixed(1)} MB (${rss.rss.toFixed(1)} MiB; ` +
        `anonymous ${((rss.anon * MiB) / 1e6).toFixed(1)} MB, file-backed ${((rss.file * MiB) / 1e6).toFixed(1)} MB)`,
    );
  } finally {
    await teardown(dir);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
