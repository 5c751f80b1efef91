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

/**
 * Unmounts everything under dir (innermost first) and detaches its loop devices: a failed test's
 * clean-up. Loop devices on image files inside a pool are detached first, while the pool is still
 * mounted: once it is unmounted the kernel names their backing files relative to the detached
 * mount ("/volumes/x.img"), nothing says they were under dir any more, and they would keep the
 * pool's filesystem — and its own loop device — alive for good.
 */
export async function releaseAllUnder(dir: string): Promise<void> {
  // Deepest backing file first: volume images inside a pool before the pool's own image.
  const byDepth = loopsUnder(dir).sort((a, b) => b.backingFile.split('/').length - a.backingFile.split('/').length);
  for (const l of byDepth) {
    // A staged image is mounted from its loop device: unmount those first, then detach.
    for (const m of hostMounts().filter((x) => x.source === l.device).reverse()) await unmount(m.mountPoint).catch(() => undefined);
    await detachIfOurs(l.device, dir);
  }
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

/**
 * Processes whose command line names a path inside dir (a pod's container shim names its state
 * directory), with all their descendants: what a failed test leaves running. A container keeps its
 * volumes mounted in its own mount namespace, so a pool's loop device stays bound while it lives.
 */
export function processesUnder(dir: string): number[] {
  const parent = new Map<number, number>();
  const named: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      // The command name (field 2) may hold spaces and parentheses: the fields after its last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (pid !== process.pid && args.some((a) => isUnder(a, dir))) named.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  const found = new Set(named);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!found.has(pid) && found.has(ppid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  return [...found];
}

/** SIGKILLs processesUnder(dir) and waits (up to 5 s) for them to be gone. */
export async function killProcessesUnder(dir: string): Promise<void> {
  const pids = processesUnder(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const alive = (pid: number): boolean => {
    try {
      return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); // a zombie has let go of everything
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && pids.some(alive)) await new Promise((r) => setTimeout(r, 50));
}

/**
 * Whether a loop device has been told to detach and waits for its last user to close it
 * (LOOP_CLR_FD on a busy device sets autoclear; the driver never attaches with it). Once nothing
 * under a test's dir is mounted in this namespace, such a device is held by another mount
 * namespace — a container started elsewhere on the machine copies the host's mounts, the test's
 * pool among them — and goes when that namespace does: released, not leaked.
 */
export function detachPending(device: string): boolean {
  try {
    return readFileSync(`/sys/block/${device.replace('/dev/', '')}/loop/autoclear`, 'utf8').trim() === '1';
  } catch {
    return false; // gone
  }
}

/**
 * leftovers(dir) once they have had up to timeoutMs to go, without loop devices whose detach is
 * only waiting for another namespace to let go (see detachPending).
 */
export async function settledLeftovers(dir: string, timeoutMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  while (leftovers(dir).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (mountsUnder(dir).length > 0) return leftovers(dir);
  return [...loopsUnder(dir).filter((l) => !detachPending(l.device)).map((l) => `loop ${l.device} -> ${l.backingFile}`)];
}
