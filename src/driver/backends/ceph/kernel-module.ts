/**
 * Whether a kernel module a mounter needs (rbd for krbd, nbd for rbd-nbd, ceph for the kernel
 * CephFS client) is there, shared by both backends' node sides. Loaded means /sys/module/<m>
 * exists (a module, or built into the kernel); when it does not, `modprobe <m>` is tried through
 * the command runner, as ceph-csi does at start. When neither works the mounter cannot be used:
 * FAILED_PRECONDITION naming the module, how to load it, and the mounter to use instead.
 */
import { access, readFile } from 'node:fs/promises';
import { FailedPreconditionError } from '../../../csi/errors.js';
import { CommandFailedError, type CommandRunner } from '../../mount/exec.js';

/** How the node sides look at the host (faked in unit tests). */
export interface HostProbe {
  exists(path: string): Promise<boolean>;
  readText(path: string): Promise<string | undefined>;
}

export const realHostProbe: HostProbe = {
  exists: (path) =>
    access(path).then(
      () => true,
      () => false,
    ),
  readText: (path) => readFile(path, 'utf8').catch(() => undefined),
};

const MODPROBE_TIMEOUT_MS = 10_000;

export async function moduleLoaded(host: HostProbe, module: string): Promise<boolean> {
  return host.exists(`/sys/module/${module}`);
}

export interface ModuleNeed {
  module: 'rbd' | 'nbd' | 'ceph';
  /** How the StorageClass asked for it: `mounter "rbd-nbd"`. */
  mounter: string;
  /** What to use instead: `mounter "fuse"`. */
  instead: string;
}

/** Returns when the module is loaded or loads now; FAILED_PRECONDITION otherwise. */
export async function requireModule(runner: CommandRunner, host: HostProbe, need: ModuleNeed): Promise<void> {
  const m = need.module;
  if (await moduleLoaded(host, m)) return;
  let why: string;
  try {
    await runner.run('modprobe', [m], { timeoutMs: MODPROBE_TIMEOUT_MS });
    if (await moduleLoaded(host, m)) return;
    why = `\`modprobe ${m}\` succeeded but /sys/module/${m} is still missing`;
  } catch (e) {
    why = e instanceof CommandFailedError && e.exitCode === null ? 'no modprobe in the plugin' : `\`modprobe ${m}\` failed: ${e instanceof CommandFailedError ? e.stderr || e.message : (e as Error).message}`;
  }
  const release = (await host.readText('/proc/sys/kernel/osrelease'))?.trim();
  throw new FailedPreconditionError(
    `${need.mounter} needs the ${m} kernel module, which is not loaded on this node${release ? ` (kernel ${release})` : ''} (${why}): ` +
      `load it on the host with \`modprobe ${m}\` (Debian/Ubuntu ship it in linux-modules-extra-$(uname -r)) and give the plugin /lib/modules, or use ${need.instead}`,
  );
}
