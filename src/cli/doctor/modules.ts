// Kernel modules the mounters need (seed 000: `rbd map` fails on a kernel without rbd): each of
// rbd, nbd, ceph, fuse and loop is loaded (/proc/modules, /sys/module), loadable (modinfo, or the
// kernel's modules.dep/modules.builtin when modinfo is absent) or missing, and from that which
// mounters this node can use and which the driver picks when a class names none.
import type { Backend, CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';

export const MODULES = ['rbd', 'nbd', 'ceph', 'fuse', 'loop'] as const;
export type Module = (typeof MODULES)[number];
export type ModuleState = 'loaded' | 'loadable' | 'missing';

/** What each mounter needs from the kernel. */
const MOUNTERS: [string, Module][] = [
  ['rbd-fuse', 'fuse'],
  ['krbd', 'rbd'],
  ['rbd-nbd', 'nbd'],
  ['kernel cephfs', 'ceph'],
  ['ceph-fuse', 'fuse'],
  ['local (loop)', 'loop'],
];

/** The module a backend cannot work without here (its tested default mounter's). */
const REQUIRED: Record<Backend, Module> = { local: 'loop', rbd: 'fuse', cephfs: 'fuse' };

export async function moduleStates(deps: DoctorDeps): Promise<Map<Module, ModuleState>> {
  const { reader, runner } = deps;
  const procModules = (await reader.readText('/proc/modules')) ?? '';
  const loaded = new Set(procModules.split('\n').map((l) => l.split(' ')[0]));
  const sysModules = new Set(await reader.list('/sys/module'));
  const release = ((await reader.readText('/proc/sys/kernel/osrelease')) ?? '').trim();
  let shipped: string | undefined;
  const states = new Map<Module, ModuleState>();
  for (const m of MODULES) {
    if (loaded.has(m) || sysModules.has(m)) {
      states.set(m, 'loaded');
      continue;
    }
    let loadable: boolean | undefined;
    try {
      loadable = (await runner.run('modinfo', ['-F', 'filename', m], { okExitCodes: [0, 1], timeoutMs: 5_000 })).exitCode === 0;
    } catch {
      loadable = undefined; // no modinfo on this host
    }
    if (loadable === undefined) {
      shipped ??= `${(await reader.readText(`/lib/modules/${release}/modules.dep`)) ?? ''}\n${(await reader.readText(`/lib/modules/${release}/modules.builtin`)) ?? ''}`;
      loadable = new RegExp(`(^|/)${m}\\.ko(\\.[a-z]+)?:?`, 'm').test(shipped);
    }
    states.set(m, loadable ? 'loadable' : 'missing');
  }
  return states;
}

export async function checkModules(deps: DoctorDeps, backend: Backend | undefined): Promise<CheckResult[]> {
  const states = await moduleStates(deps);
  const out: CheckResult[] = [];
  for (const m of MODULES) {
    const state = states.get(m) ?? 'missing';
    const users = MOUNTERS.filter(([, mod]) => mod === m).map(([name]) => name).join(', ');
    if (state === 'loaded') out.push(result(`kernel module ${m}`, 'ok', `loaded (${users})`));
    else if (state === 'loadable') out.push(result(`kernel module ${m}`, 'ok', `not loaded, loadable (${users})`));
    else {
      const blocks = backend !== undefined && REQUIRED[backend] === m;
      const fix = m === 'fuse' || m === 'loop'
        ? `install the module for this kernel (linux-modules-extra) and \`modprobe ${m}\``
        : `\`modprobe ${m}\` (linux-modules-extra), or use mounter ${m === 'ceph' ? 'ceph-fuse' : 'rbd-fuse'}`;
      out.push(result(`kernel module ${m}`, blocks ? 'FAIL' : 'warn', `not loaded and not shipped with this kernel: ${users} unusable`, fix));
    }
  }
  // The fuse mounters open /dev/fuse: a container without it cannot use them even with the module loaded.
  if (states.get('fuse') !== 'missing' && (await deps.reader.statError('/dev/fuse')) !== undefined) {
    states.set('fuse', 'missing');
    out.push(result('device /dev/fuse', backend === 'rbd' || backend === 'cephfs' ? 'FAIL' : 'warn', 'missing: rbd-fuse and ceph-fuse cannot mount', 'give the plugin /dev (hostPath) or `mknod /dev/fuse c 10 229`'));
  }
  const usable = MOUNTERS.filter(([, m]) => states.get(m) !== 'missing').map(([name]) => name);
  const unusable = MOUNTERS.filter(([, m]) => states.get(m) === 'missing').map(([name]) => name);
  out.push(
    result(
      'mounters',
      usable.length === 0 ? 'FAIL' : 'ok',
      `usable: ${usable.join(', ') || 'none'}${unusable.length ? `; unusable: ${unusable.join(', ')}` : ''}`,
      'load the modules above',
    ),
  );
  // What the driver picks for a class without `mounter` (a module merely loadable does not count:
  // the driver looks for /sys/bus/rbd and /sys/module/ceph, i.e. loaded).
  const rbdDefault = states.get('rbd') === 'loaded' ? 'krbd (rbd module loaded)' : 'rbd-fuse (rbd module not loaded)';
  const cephfsDefault = states.get('ceph') === 'loaded' ? 'kernel (ceph module loaded)' : 'ceph-fuse (ceph module not loaded)';
  out.push(result('default mounters', 'ok', `a class without mounter gets: rbd → ${rbdDefault}; cephfs → ${cephfsDefault}`));
  return out;
}
