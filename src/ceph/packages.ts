/**
 * The Debian packages a dev cluster needs, installed only when missing.
 */
import { access } from 'node:fs/promises';
import type { CommandRunner } from '../driver/mount/exec.js';

/** Package → a file it installs (checked without running anything). */
export const CEPH_PACKAGES: Readonly<Record<string, string>> = {
  'ceph-mon': '/usr/bin/ceph-mon',
  'ceph-mgr': '/usr/bin/ceph-mgr',
  'ceph-osd': '/usr/bin/ceph-osd',
  'ceph-mds': '/usr/bin/ceph-mds',
  'ceph-common': '/usr/bin/ceph',
  'rbd-fuse': '/usr/bin/rbd-fuse',
  'ceph-fuse': '/usr/bin/ceph-fuse',
};

export async function missingCephPackages(): Promise<string[]> {
  const missing: string[] = [];
  for (const [pkg, file] of Object.entries(CEPH_PACKAGES)) {
    await access(file).catch(() => missing.push(pkg));
  }
  return missing;
}

/**
 * Installs the missing packages from Debian's archive (apt-get update first, only then).
 * Without recommends: ceph-mgr's pull in the dashboard and machine-learning stacks.
 */
export async function ensureCephPackages(runner: CommandRunner, progress: (msg: string) => void): Promise<void> {
  const missing = await missingCephPackages();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`ceph packages missing (${missing.join(' ')}); installing them needs root`);
  progress(`installing Debian packages: ${missing.join(' ')}`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  await runner.run('apt-get', ['update', '-qq'], { timeoutMs: 300_000, env });
  await runner.run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { timeoutMs: 900_000, env });
  const still = await missingCephPackages();
  if (still.length > 0) throw new Error(`apt-get install succeeded but these are still missing: ${still.join(' ')}`);
}
