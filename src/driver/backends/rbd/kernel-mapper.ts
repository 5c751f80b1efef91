/**
 * The kernel's ways to map an rbd image, as ceph-csi drives them: krbd (`rbd map --device-type
 * krbd`: the kernel's rbd client, /dev/rbdN) and rbd-nbd (`rbd map --device-type nbd`: the
 * rbd-nbd daemon serving /dev/nbdN). Both go through the one command runner with a timeout; the
 * cephx key reaches `rbd` in a keyfile (0600, in the driver's 0700 state directory) written just
 * before the map and removed right after it, never in argv.
 *
 * Errors a user can act on are said as such:
 * - the module missing (neither /sys/module/<m> nor a `modprobe <m>` that works) →
 *   FAILED_PRECONDITION naming it and how to load it, or to use mounter "fuse";
 * - a map that times out (ours, or rbd's own "(110) Connection timed out", seed 000's
 *   `rbd: map failed ... timed out`) → DEADLINE_EXCEEDED naming the image and the time, after a
 *   best-effort unmap of the image (the kernel may finish the map after rbd gave up, as
 *   ceph-csi notes); the CO retries NodeStage;
 * - refusals by the cluster → PERMISSION_DENIED / NOT_FOUND, image features the kernel client
 *   lacks → FAILED_PRECONDITION naming them.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import {
  DeadlineExceededError,
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
} from '../../../csi/errors.js';
import { CommandFailedError, CommandTimeoutError, type CommandRunner } from '../../mount/exec.js';
import { monHost } from '../ceph/cluster-config.js';
import { type HostProbe, moduleLoaded, realHostProbe, requireModule } from '../ceph/kernel-module.js';
import type { ImageMapper, MappedDevice, MapTarget } from './mapper.js';

export type MapperHost = HostProbe;

/** The mapper to use when a class names none: krbd where the kernel has the rbd bus, else fuse. */
export async function defaultMapper(host: HostProbe = realHostProbe): Promise<'krbd' | 'fuse'> {
  return (await host.exists('/sys/bus/rbd')) ? 'krbd' : 'fuse';
}

/**
 * Above the kernel's own 60 s (libceph's mount_timeout), so rbd's "(110) Connection timed out"
 * usually comes first, and well inside the kubelet's two minutes for NodeStage.
 */
export const DEFAULT_MAP_TIMEOUT_MS = 75_000;
const LIST_TIMEOUT_MS = 30_000;

interface Flavour {
  /** --device-type */
  deviceType: 'krbd' | 'nbd';
  module: 'rbd' | 'nbd';
  /** The StorageClass value that asks for it. */
  mounter: string;
  /** Options ceph-csi always passes to map, each unless the class's options name it. */
  mapDefaults: string[];
  /** Options always passed to unmap. */
  unmapDefaults: string[];
  /** Key of the image name in `rbd device list --format json` (krbd "name", nbd "image"). */
  nameKey: 'name' | 'image';
}

const FLAVOURS: Record<'krbd' | 'nbd', Flavour> = {
  // noudev: map and unmap without waiting for udev, which a container may not have.
  krbd: { deviceType: 'krbd', module: 'rbd', mounter: 'rbd', mapDefaults: ['noudev'], unmapDefaults: ['noudev'], nameKey: 'name' },
  // netlink, a 300 s window for a restarted rbd-nbd to reattach, no I/O timeout: ceph-csi's defaults.
  nbd: {
    deviceType: 'nbd',
    module: 'nbd',
    mounter: 'rbd-nbd',
    mapDefaults: ['try-netlink', 'reattach-timeout=300', 'io-timeout=0'],
    unmapDefaults: [],
    nameKey: 'image',
  },
};

export interface KernelMapperOptions {
  runner: CommandRunner;
  /** Where keyfiles live for the length of one map (made 0700). */
  keyDir: string;
  host?: MapperHost;
  timeoutMs?: number;
}

export class KernelMapper implements ImageMapper {
  private readonly flavour: Flavour;
  private readonly host: MapperHost;
  private readonly timeoutMs: number;

  constructor(
    readonly kind: 'krbd' | 'nbd',
    private readonly opts: KernelMapperOptions,
  ) {
    this.flavour = FLAVOURS[kind];
    this.host = opts.host ?? realHostProbe;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_MAP_TIMEOUT_MS;
  }

  async devices(t: MapTarget): Promise<MappedDevice[]> {
    // Without the module nothing can be mapped: no need to ask rbd (which may not even run).
    if (!(await this.moduleLoaded())) return [];
    const { stdout } = await this.opts.runner.run('rbd', ['device', 'list', '--format', 'json', '--device-type', this.flavour.deviceType], {
      timeoutMs: LIST_TIMEOUT_MS,
    });
    let list: Record<string, unknown>[];
    try {
      list = stdout.trim() === '' ? [] : (JSON.parse(stdout) as Record<string, unknown>[]);
    } catch (e) {
      throw new Error(`rbd device list --device-type ${this.flavour.deviceType} printed what is not JSON: ${stdout.slice(0, 200)}`, { cause: e });
    }
    const out: MappedDevice[] = [];
    for (const d of Array.isArray(list) ? list : []) {
      if (d['pool'] !== t.fuse.pool || d[this.flavour.nameKey] !== t.fuse.image) continue;
      if ((d['namespace'] ?? '') !== '' || (d['snap'] ?? '-') !== '-') continue;
      const device = String(d['device'] ?? '');
      if (!/^\/dev\/(rbd|nbd)\d+$/.test(device)) continue;
      const ro = (await this.host.readText(`/sys/block/${basename(device)}/ro`))?.trim() === '1';
      out.push({ device, readonly: ro });
    }
    return out;
  }

  async map(t: MapTarget, secretKey: string | undefined, readonly: boolean, log: Logger): Promise<string> {
    await this.requireModule();
    const existing = (await this.devices(t))[0];
    if (existing) return existing.device;
    const spec = `${t.fuse.pool}/${t.fuse.image}`;
    if (secretKey === undefined) {
      throw new FailedPreconditionError(`image ${spec} is not mapped (${this.kind}) on this node and no credentials are at hand: stage the volume again`);
    }
    const keyfile = await this.writeKeyfile(secretKey);
    let stdout: string;
    try {
      const args = ['--id', t.fuse.user, '-m', monHost(t.fuse.monitors), `--keyfile=${keyfile}`, 'map', spec];
      args.push(...this.deviceTypeAndOptions(this.flavour.mapDefaults, t.mapOptions ?? []));
      if (readonly) args.push('--read-only');
      ({ stdout } = await this.opts.runner.run('rbd', args, { timeoutMs: this.timeoutMs, secrets: [secretKey] }));
    } catch (e) {
      if (timedOut(e)) {
        // The kernel may still finish mapping after rbd gave up: undo it, so the retry starts clean.
        await this.unmapSpec(spec, t.unmapOptions ?? []).catch((u: unknown) =>
          log.warn({ image: spec, err: (u as Error).message }, 'could not unmap after a map that timed out'),
        );
        throw this.timeoutError('map', spec, t, e);
      }
      throw this.mapError(spec, t, e);
    } finally {
      await rm(keyfile, { force: true });
    }
    const printed = stdout.trim();
    const device = /^\/dev\/(rbd|nbd)\d+$/.test(printed) ? printed : (await this.devices(t))[0]?.device;
    if (!device) throw new Error(`rbd map ${spec} (${this.kind}) succeeded but printed no device ("${printed.slice(0, 200)}") and none is listed`);
    log.info({ image: spec, device, mapper: this.kind }, 'rbd image mapped');
    return device;
  }

  async release(t: MapTarget, others: MapTarget[], log: Logger): Promise<void> {
    if (others.some((o) => o.volumeId === t.volumeId || (o.fuse.pool === t.fuse.pool && o.fuse.image === t.fuse.image))) return;
    const spec = `${t.fuse.pool}/${t.fuse.image}`;
    const listed = (await this.devices(t)).map((d) => d.device);
    // The device noted at map time, no longer listed (its rbd-nbd died): unmapped too, best effort.
    if (t.device && !listed.includes(t.device) && (await this.moduleLoaded())) {
      await this.unmap(t.device, t.unmapOptions ?? []).catch((e: unknown) =>
        log.warn({ image: spec, device: t.device, err: (e as Error).message }, 'could not unmap a device no longer listed as the image\'s'),
      );
    }
    for (const device of listed) {
      try {
        await this.unmap(device, t.unmapOptions ?? []);
      } catch (e) {
        if (timedOut(e)) throw this.timeoutError('unmap', spec, t, e);
        if (e instanceof CommandFailedError && /not mapped|not a mapped/i.test(e.stderr)) continue;
        if (e instanceof CommandFailedError && /\(16\)|busy/i.test(e.stderr)) {
          throw new FailedPreconditionError(`cannot unmap ${device} (image ${spec}): still in use (mounted, or open by a process): ${e.stderr}`, { cause: e });
        }
        throw e;
      }
      log.info({ image: spec, device, mapper: this.kind }, 'rbd image unmapped');
    }
  }

  /** krbd re-reads the header when the image is resized, rbd-nbd resizes its device itself. */
  async refresh(): Promise<void> {}

  async problem(t: MapTarget): Promise<string | undefined> {
    if ((await this.devices(t)).length > 0) return undefined;
    return `image ${t.fuse.pool}/${t.fuse.image} is not mapped (${this.kind}) on this node`;
  }

  async readOnlyDevice(t: MapTarget): Promise<string> {
    throw new FailedPreconditionError(
      `volume ${t.volumeId} is staged read-write through ${this.kind}; a read-only block publication needs a read-only stage (or mounter "fuse")`,
    );
  }

  /** Removes keyfiles a driver killed in the middle of a map left (called at start, before any map). */
  async sweepKeyfiles(): Promise<void> {
    const names = await readdir(this.opts.keyDir).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(`${this.kind}-`) && n.endsWith('.key')) await rm(join(this.opts.keyDir, n), { force: true });
  }

  // ------------------------------------------------------------------ helpers

  /** "--device-type X" then each default option the class does not set itself, then the class's options. */
  private deviceTypeAndOptions(defaults: string[], user: string[]): string[] {
    const args = ['--device-type', this.flavour.deviceType];
    const names = new Set(user.map((o) => o.split('=')[0]));
    for (const d of defaults) if (!names.has(d.split('=')[0])) args.push('--options', d);
    if (user.length > 0) args.push('--options', user.join(','));
    return args;
  }

  private unmap(deviceOrSpec: string, unmapOptions: string[]): Promise<unknown> {
    const args = ['unmap', deviceOrSpec, ...this.deviceTypeAndOptions(this.flavour.unmapDefaults, unmapOptions)];
    return this.opts.runner.run('rbd', args, { timeoutMs: this.timeoutMs });
  }

  private async unmapSpec(spec: string, unmapOptions: string[]): Promise<void> {
    try {
      await this.unmap(spec, unmapOptions);
    } catch (e) {
      if (e instanceof CommandFailedError && /not mapped|not a mapped/i.test(e.stderr)) return;
      throw e;
    }
  }

  private async moduleLoaded(): Promise<boolean> {
    return moduleLoaded(this.host, this.flavour.module);
  }

  private async requireModule(): Promise<void> {
    await requireModule(this.opts.runner, this.host, {
      module: this.flavour.module,
      mounter: `mounter "${this.flavour.mounter}" (${this.kind})`,
      instead: 'StorageClass parameter mounter "fuse" (rbd-fuse)',
    });
  }

  private async writeKeyfile(secretKey: string): Promise<string> {
    await mkdir(this.opts.keyDir, { recursive: true, mode: 0o700 });
    await chmod(this.opts.keyDir, 0o700);
    const path = join(this.opts.keyDir, `${this.kind}-${randomUUID()}.key`);
    await writeFile(path, secretKey, { mode: 0o600, flag: 'wx' });
    return path;
  }

  private timeoutError(op: 'map' | 'unmap', spec: string, t: MapTarget, e: unknown): DeadlineExceededError {
    const after = e instanceof CommandTimeoutError ? `after ${Math.round(e.timeoutMs / 1000)} s` : `(rbd: ${(e as CommandFailedError).stderr || (e as Error).message})`;
    return new DeadlineExceededError(
      `rbd ${op} of image ${spec} (${this.kind}) timed out ${after}: ceph cluster ${t.fuse.clusterID} (monitors ${t.fuse.monitors.join(', ')}) did not answer in time; ` +
        `${op === 'map' ? 'nothing is left mapped, ' : ''}retry`,
      { cause: e },
    );
  }

  private mapError(spec: string, t: MapTarget, e: unknown): unknown {
    if (!(e instanceof CommandFailedError)) return e;
    const text = e.stderr;
    if (/\((1|13)\) (Operation not permitted|Permission denied)/.test(text)) {
      return new PermissionDeniedError(`ceph cluster ${t.fuse.clusterID} refused client.${t.fuse.user} mapping ${spec} (check userID/userKey and the user's caps): ${text}`, { cause: e });
    }
    const features = /unsupported features?:?\s*(.*)/i.exec(text);
    if (features || /\(6\) No such device or address/.test(text)) {
      return new FailedPreconditionError(
        `the ${this.kind} client on this node cannot map ${spec}${features ? ` (image features it does not support: ${features[1]?.trim()})` : ''}: ` +
          `give the class imageFeatures the kernel supports (layering), or use mounter "rbd-nbd" or "fuse": ${text}`,
        { cause: e },
      );
    }
    if (/\(2\) No such file or directory/.test(text)) return new NotFoundError(`image ${spec} does not exist in ceph cluster ${t.fuse.clusterID}: ${text}`, { cause: e });
    return e;
  }
}

function timedOut(e: unknown): boolean {
  return e instanceof CommandTimeoutError || (e instanceof CommandFailedError && /\(110\)|Connection timed out|timed out/i.test(e.stderr));
}
