/**
 * What the kernel says about mounts and loop devices, read straight from /proc and /sys so the
 * test support code never depends on the driver code it is checking. Everything here is scoped
 * to one directory: tests share the machine with other engineers' loop devices and mounts.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface HostMount {
  mountId: number;
  mountPoint: string;
  /** Path inside the mounted filesystem that is mounted here ("/" unless a bind or subvolume). */
  root: string;
  fsType: string;
  source: string;
  readonly: boolean;
  /** Per-mount options and the filesystem's own (super) options. */
  options: string[];
  superOptions: string[];
}

export interface HostLoop {
  device: string;
  backingFile: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function hostMounts(): HostMount[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [left = '', right = ''] = line.split(' - ');
      const f = left.split(' ');
      const r = right.split(' ');
      return {
        mountId: Number(f[0]),
        root: unescapeOctal(f[3] ?? ''),
        mountPoint: unescapeOctal(f[4] ?? ''),
        readonly: (f[5] ?? '').split(',').includes('ro'),
        fsType: r[0] ?? '',
        source: unescapeOctal(r[1] ?? ''),
        options: (f[5] ?? '').split(','),
        superOptions: (r[2] ?? '').split(','),
      };
    });
}

/** Every bound loop device on the host, with its backing file (" (deleted)" removed). */
export function hostLoops(): HostLoop[] {
  const out: HostLoop[] = [];
  for (const name of readdirSync('/sys/block')) {
    if (!/^loop\d+$/.test(name)) continue;
    let backing: string;
    try {
      backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trimEnd();
    } catch {
      continue; // not bound
    }
    out.push({ device: `/dev/${name}`, backingFile: backing.replace(/ \(deleted\)$/, '') });
  }
  return out;
}

export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/** Mounts whose mount point (or path source) is dir or inside it. */
export function mountsUnder(dir: string): HostMount[] {
  return hostMounts().filter((m) => isUnder(m.mountPoint, dir) || isUnder(m.source, dir));
}

/** Loop devices whose backing file is inside dir. */
export function loopsUnder(dir: string): HostLoop[] {
  return hostLoops().filter((l) => isUnder(l.backingFile, dir));
}

/** How many mounts are stacked on path (more than one means a publish or stage was repeated). */
export function mountCount(path: string): number {
  return hostMounts().filter((m) => m.mountPoint === path).length;
}

export function mountAt(path: string): HostMount | undefined {
  // The last entry for a mount point is the one on top.
  return hostMounts()
    .filter((m) => m.mountPoint === path)
    .at(-1);
}

/** Unmounts path; a busy mount is detached lazily rather than leaked. */
export async function unmount(path: string): Promise<void> {
  try {
    await run('umount', [path]);
  } catch {
    await run('umount', ['-l', path]);
  }
}

/** Detaches a loop device, but only after re-checking that it is still backed by a file in dir. */
export async function detachIfOurs(device: string, dir: string): Promise<void> {
  const name = device.replace('/dev/', '');
  let backing = '';
  try {
    backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trimEnd().replace(/ \(deleted\)$/, '');
  } catch {
    return; // already unbound
  }
  if (!isUnder(backing, dir)) return; // the number now belongs to someone else's device
  await run('losetup', ['-d', device]).catch(() => undefined);
}

/** Unmounts everything under dir (innermost first) and detaches its loop devices: a failed test's clean-up. */
export async function releaseAllUnder(dir: string): Promise<void> {
  for (const m of mountsUnder(dir).reverse()) await unmount(m.mountPoint).catch(() => undefined);
  for (const l of loopsUnder(dir)) await detachIfOurs(l.device, dir);
}

/** Human-readable list of what is left, for assertion messages. */
export function leftovers(dir: string): string[] {
  return [
    ...mountsUnder(dir).map((m) => `mount ${m.mountPoint} (${m.fsType} ${m.source}${m.root === '/' ? '' : ` root=${m.root}`})`),
    ...loopsUnder(dir).map((l) => `loop ${l.device} -> ${l.backingFile}`),
  ];
}
