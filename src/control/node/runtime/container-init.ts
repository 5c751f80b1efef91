// The first process of a container, run by the shim under `unshare --mount --propagation unchanged
// --uts` in a PID namespace of its own: it is PID 1 there and alone in a mount namespace whose
// mounts it first turns into slaves of the node's (nothing it mounts reaches the node, except below
// a Bidirectional volume — a privileged container's, attached as a peer of the node's mount; what
// the node mounts may come in, which only HostToContainer and Bidirectional volumes keep: the others
// are private).
// It builds the container's root, then replaces itself (execve) with the container's command, which
// thus stays PID 1 as in a Kubernetes container: a PID 1 without a SIGTERM handler ignores SIGTERM
// and is SIGKILLed after the grace period, exactly as there.
//
// Why the mounts are made here, inside the new mount namespace, and not in the host's under the
// state dir: they then exist only for the container's processes and vanish with them, so the host's
// mount table never holds a container's overlay, binds, /proc or tmpfs, nothing can leak when the
// agent dies mid-way, and nothing has to be unmounted on removal. pivot_root then detaches the
// namespace's copy of every host mount, so a container never pins a volume it was not given
// (a private namespace that kept the copies would keep other pods' volumes mounted — busy — in it).
//
// The root: an overlay whose lower layer is the host's root filesystem (read through, never
// written) and whose upper layer is in the attempt's dir, so a write to /etc lands in the state dir;
// /proc for the container's own PID namespace; a /dev of its own (tmpfs with the default devices, as
// runc makes it) and the host's /sys (read-only); a private tmpfs on /tmp; each volume bound at its
// mountPath, read-only ones really read-only (every mount below them too), and each raw block
// volume's device file bound onto a file at its devicePath. Mount points are made inside the overlay, i.e. in the
// upper layer, never on the host. Only the root filesystem is seen through: other host mounts
// (/boot, a separate /home…) appear as their empty mount point directories.
//
// It tells the shim how the start went on fd 3 (one JSON line), closes it, and execs the command.
// Usage: node container-init.js <attempt dir>   (cwd: the attempt dir)
import { accessSync, closeSync, constants as fsConstants, lstatSync, mkdirSync, readlinkSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { SyscallError } from '../../../driver/mount/syscalls.js';
import { containerEnv, DEFAULT_PATH, readJsonSync, type LaunchFile } from './files.js';
import { processStartTicks } from './proc.js';
import type { InitReport } from './shim.js';
import type { ContainerMount } from './types.js';

const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;
const MS_SLAVE = 0x80000;
const MNT_DETACH = 0x2;
const MOUNT_ATTR_RDONLY = 0x1;
const AT_FDCWD = -100;
const AT_RECURSIVE = 0x8000;
const MOUNT_ATTR_SIZE = 32;
const SIGPIPE = 13;
const SIGXFSZ = 25;
/** pivot_root has no glibc wrapper: syscall(2) with the architecture's number. */
const SYS_PIVOT_ROOT: Partial<Record<NodeJS.Architecture, number>> = { x64: 155, arm64: 41, riscv64: 41, ia32: 217, arm: 218, ppc64: 203, s390x: 217 };
/** open_tree(2) and move_mount(2) (Linux 5.2): the same numbers on every architecture. */
const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const OPEN_TREE_CLONE = 0x1;
const OPEN_TREE_CLOEXEC = 0x80000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const REPORT_FD = 3;
/** Linux's HOST_NAME_MAX; Kubernetes truncates pod hostnames to 63 likewise. */
const HOSTNAME_MAX = 63;

// Synchronous bindings: this process does nothing else meanwhile, and after pivot_root a worker
// thread would be the wrong place to be surprised in.
const libc = koffi.load('libc.so.6');
const sys = {
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  mountSetattr: libc.func('int mount_setattr(int dirfd, const char *path, unsigned int flags, void *attr, size_t size)'),
  sethostname: libc.func('int sethostname(const char *name, size_t len)'),
  syscall: libc.func('long syscall(long number, ...)'),
  signal: libc.func('void *signal(int signum, void *handler)'),
};

function check(result: number, call: string, path?: string): void {
  if (result < 0) throw new SyscallError(call, koffi.errno(), path);
}

function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  check(sys.mount(source, target, fstype, flags, data) as number, `mount${fstype ? `(${fstype})` : ''}`, target);
}

function makeReadOnlyRecursive(path: string): void {
  const attr = Buffer.alloc(MOUNT_ATTR_SIZE);
  attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_RDONLY), 0);
  check(sys.mountSetattr(AT_FDCWD, path, AT_RECURSIVE, attr, MOUNT_ATTR_SIZE) as number, 'mount_setattr(ro)', path);
}

/**
 * root + path with symlinks resolved as the container would see them: an absolute link restarts at
 * root and ".." stops at it, so a mount point never lands outside the container's root.
 */
export function resolveInRoot(root: string, path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  let resolved: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      // missing: it will be created as a plain directory
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > 40) throw new Error(`too many levels of symbolic links in ${path}`);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) resolved = [];
    parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return join(root, ...resolved);
}

/** Makes the mount point for a bind of source (a directory or a file) at target. */
function mountPoint(source: string, target: string): void {
  if (statSync(source).isDirectory()) {
    mkdirSync(target, { recursive: true });
  } else {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, '', { flag: 'a' });
  }
}

/** The device nodes every container gets, as runc gives them (bound from the host's). */
const DEFAULT_DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/**
 * The container's /dev: a tmpfs of its own with the default devices, /dev/pts, /dev/shm and the
 * fd links, as runc builds it; never the host's /dev, so the node's disks and loop devices (the
 * pool's) are not in it, and a raw block volume's device file (volumeDevices) is made here, not on
 * the host's devtmpfs.
 */
function buildDev(dev: string): void {
  mount('tmpfs', dev, 'tmpfs', MS_NOSUID, 'mode=755,size=65536k');
  for (const name of DEFAULT_DEVICES) {
    const target = join(dev, name);
    writeFileSync(target, '', { flag: 'a' });
    mount(`/dev/${name}`, target, null, MS_BIND, null);
  }
  mkdirSync(join(dev, 'pts'));
  mount('/dev/pts', join(dev, 'pts'), null, MS_BIND | MS_REC, null);
  symlinkSync('pts/ptmx', join(dev, 'ptmx'));
  symlinkSync('/proc/self/fd', join(dev, 'fd'));
  for (const [fd, name] of ['stdin', 'stdout', 'stderr'].entries()) symlinkSync(`/proc/self/fd/${fd}`, join(dev, name));
  mkdirSync(join(dev, 'shm'));
  mount('shm', join(dev, 'shm'), 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777,size=65536k');
}

function buildRoot(dir: string, launch: LaunchFile): void {
  const { spec } = launch;
  const root = join(dir, 'rootfs');
  // Bidirectional volumes: a detached copy of each, taken while the namespace's copies are still
  // peers of the node's mounts — it stays a peer, so what the container mounts below it reaches the
  // node (the kubelet's rshared). Attached below the container's root once that is built.
  const peers = new Map<ContainerMount, number>();
  for (const m of launch.spec.mounts) {
    if (m.propagation !== 'Bidirectional') continue;
    const fd = Number(sys.syscall(SYS_OPEN_TREE, 'int', AT_FDCWD, 'str', m.hostPath, 'uint', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    check(fd, 'open_tree', m.hostPath);
    peers.set(m, fd);
  }
  // Before anything is mounted: every copy of the node's mounts becomes a slave (receives, never sends).
  mount(null, '/', null, MS_REC | MS_SLAVE, null);
  // Relative upper/work (cwd is the attempt dir): the state dir's path never meets the option parser's commas.
  mount('overlay', root, 'overlay', 0, 'lowerdir=/,upperdir=upper,workdir=work');
  mount('proc', join(root, 'proc'), 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC, null);
  buildDev(join(root, 'dev'));
  mount('/sys', join(root, 'sys'), null, MS_BIND | MS_REC, null);
  makeReadOnlyRecursive(join(root, 'sys'));
  mkdirSync(join(root, 'tmp'), { recursive: true });
  mount('tmpfs', join(root, 'tmp'), 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777');

  // Parents before children, so /data/sub lands on the volume at /data.
  const mounts = [...spec.mounts].sort((a, b) => depth(a.containerPath) - depth(b.containerPath));
  for (const m of mounts) {
    const target = resolveInRoot(root, m.containerPath);
    mountPoint(m.hostPath, target);
    const peer = peers.get(m);
    if (peer !== undefined) {
      check(Number(sys.syscall(SYS_MOVE_MOUNT, 'int', peer, 'str', '', 'int', AT_FDCWD, 'str', target, 'uint', MOVE_MOUNT_F_EMPTY_PATH)), 'move_mount', target);
    } else {
      mount(m.hostPath, target, null, MS_BIND | MS_REC, null);
      // A bind of a slave is a slave of the same master: HostToContainer keeps that, None cuts it.
      mount(null, target, null, MS_REC | (m.propagation === 'HostToContainer' ? MS_SLAVE : MS_PRIVATE), null);
    }
    if (m.readOnly) makeReadOnlyRecursive(target);
  }

  const hostname = spec.podName.slice(0, HOSTNAME_MAX).replace(/[-.]+$/, '');
  check(sys.sethostname(hostname, Buffer.byteLength(hostname)) as number, 'sethostname');

  const pivotRoot = SYS_PIVOT_ROOT[process.arch];
  if (pivotRoot === undefined) throw new Error(`pivot_root: unsupported architecture ${process.arch}`);
  process.chdir(root);
  // pivot_root(".", "."): the old root ends up stacked on the new one, then detached.
  check(sys.syscall(pivotRoot, 'str', '.', 'str', '.') as number, 'pivot_root', root);
  check(sys.umount2('.', MNT_DETACH) as number, 'umount2(old root)');
  process.chdir('/');
}

function depth(path: string): number {
  return posix.normalize(path).split('/').filter((p) => p !== '').length;
}

function findExecutable(name: string, path: string): string {
  if (name.includes('/')) return name;
  for (const dir of path.split(':')) {
    const candidate = join(dir === '' ? '.' : dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`exec: ${JSON.stringify(name)}: executable file not found in $PATH`);
}

function report(value: InitReport): void {
  writeSync(REPORT_FD, `${JSON.stringify(value)}\n`);
}

function main(dir: string): void {
  // Before the new /proc hides the host's view: our host PID and start time.
  const pid = Number(readlinkSync('/proc/self'));
  const startTicks = processStartTicks(pid);
  let file: string;
  let env: Record<string, string>;
  let argv: string[];
  let user: LaunchFile['spec']['user'];
  try {
    const launch = readJsonSync<LaunchFile>(join(dir, 'launch.json'));
    user = launch.spec.user;
    argv = launch.spec.command;
    if (argv.length === 0) throw new Error('no command specified');
    for (const m of launch.spec.mounts) {
      if (!isAbsolute(m.containerPath)) throw new Error(`mount path ${JSON.stringify(m.containerPath)} is not absolute`);
    }
    env = containerEnv(launch.spec);
    buildRoot(dir, launch);
    const workingDir = launch.spec.workingDir || '/';
    mkdirSync(workingDir, { recursive: true });
    process.chdir(workingDir);
    file = findExecutable(argv[0]!, env.PATH ?? DEFAULT_PATH);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`stowage: cannot start container: ${message}\n`);
    report({ ok: false, message });
    process.exit(128);
  }
  try {
    // Last, once the root is built: groups, then group, then user (after setuid nothing else may change).
    if (user !== undefined) {
      process.setgroups!(user.groups);
      process.setgid!(user.gid);
      process.setuid!(user.uid);
    }
  } catch (err) {
    const message = `cannot run as the securityContext's user: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`stowage: cannot start container: ${message}\n`);
    report({ ok: false, message });
    process.exit(128);
  }
  report({ ok: true, pid, startTicks });
  closeSync(REPORT_FD);
  // Node ignores these; an ignored signal stays ignored across execve, and a container must not inherit that.
  sys.signal(SIGPIPE, null);
  sys.signal(SIGXFSZ, null);
  try {
    process.execve!(file, argv, env);
  } catch (err) {
    process.stderr.write(`stowage: exec ${JSON.stringify(file)}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(127);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2]) main(process.argv[2]);
